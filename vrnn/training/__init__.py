"""Training: :func:`vrnn.training.trainer.fit` (``vrnn train``) and its parts.

* :mod:`.config`       the run's :class:`~.config.Config`: ``[model]``, ``[data]`` and ``[train]``
* :mod:`.options`      ``[train]`` settings (:class:`TrainConfig`)
* :mod:`.bounds`       the objectives (ELBO, IWAE, FIVO) in one table, and the module DDP wraps
* :mod:`.learner`      what one rank trains (model, objective, optimiser, generators) and its step
* :mod:`.run`          the run folder: its files, lock and log, and what a resumed run continues from
* :mod:`.schedules`    learning rate, KL weight, batches and chunks: pure functions of the step
* :mod:`.distributed`  multi-process training with ``torchrun`` (DistributedDataParallel)
* :mod:`.averaging`    the weight average of ``train.ema`` (on torch's ``AveragedModel``)
* :mod:`.trainer`      the loop: batch, step, validate, checkpoint, stop

Nothing below :mod:`vrnn.training` imports it (a checkpoint rebuilds its model from ``[model]``
alone), so this ``__init__`` could re-export any of these without an import cycle.
"""
