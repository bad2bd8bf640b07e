"""Training: :func:`vrnn.training.trainer.fit` (``vrnn train``) and its parts.

* :mod:`.options`      ``[train]`` settings (:class:`TrainConfig`)
* :mod:`.schedules`    learning rate, KL weight, batches and chunks: pure functions of the step
* :mod:`.distributed`  multi-process training with ``torchrun`` (DistributedDataParallel)
* :mod:`.averaging`    the weight average of ``train.ema`` (on torch's ``AveragedModel``)
* :mod:`.trainer`      the loop: batch, step, validate, checkpoint, stop

This package's ``__init__`` imports nothing, so :mod:`vrnn.config` can import
:mod:`.options` without importing the trainer.
"""
