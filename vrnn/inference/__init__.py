"""The estimators: every driver of a model's one step that scores or draws sequences.

* :mod:`.objectives`  ELBO, importance-sampled log-likelihood, the training losses, the three normalisations
* :mod:`.smc`         the particle filter (SMC evaluation, the FIVO bound) and continuation of a prefix
* :mod:`.evaluate`    the evaluation report of a model on sequences (``vrnn eval``)
* :mod:`.sampling`    unconditional samples in the data's units (``vrnn sample``)
* :mod:`.scoring`     per-step scores and continuations of a file (``vrnn score``, ``sample --prime``)

The forward (ELBO/IWAE) and generation drivers are written once in :mod:`vrnn.models.base`.
"""
