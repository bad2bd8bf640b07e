"""Sequence data: readers, prepared data sets, normalisation and padded batches.

A data set is a :class:`SequenceData`: for each split a list of float32 arrays of shape
(T_i, D), plus metadata. Variable lengths are batched with a mask; no reduction ever
looks at a padded step.
"""
from .core import (
    DataConfig,
    Normalizer,
    SequenceData,
    data_dir,
    load_prepared,
    pad_batch,
    save_prepared,
    validate_sequences,
)
from .sources import load_dataset
from .readers import read_arrays, read_boulanger, read_srnn_npz

__all__ = [
    "DataConfig", "Normalizer", "SequenceData", "data_dir", "load_dataset", "load_prepared", "pad_batch",
    "save_prepared", "validate_sequences", "read_arrays", "read_boulanger", "read_srnn_npz",
]
