"""The Python API; the CLI is a thin layer over these functions."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import checkpoint_data_config, load_model
from .data import DataConfig, SequenceData, load_dataset, validate_sequences
from .data.dequantize import Dequantizer
from .data.resolve import locate
from .device import resolve_device
from .emissions import check_emission_data, emission_class
from .errors import VrnnError, check_count
from .inference.evaluate import EVAL_SEED, evaluate, split_keys
from .outputs import write_samples
from .inference.sampling import sample

WHOLE = "all"  # the report's split when every sequence of the data is scored


def _device(device: str | torch.device) -> torch.device:
    """``auto``, ``cpu``, ``cuda[:N]`` (errors name ``--device``) or a torch.device as it is."""
    return device if isinstance(device, torch.device) else resolve_device(device, setting="--device")


def evaluate_checkpoint(path: str | Path, split: str = "test", iw_samples: int = 40, batch_size: int = 64,
                        data_source: str | None = None, seed: int = EVAL_SEED, device: str | torch.device = "cpu",
                        data: SequenceData | None = None, per_sequence: bool = False, whole: bool = False,
                        estimator: str = "is", particles: tuple[int, ...] = ()) -> dict:
    """``vrnn eval``: the report of :func:`vrnn.inference.evaluate.evaluate` for a checkpoint file.

    The data are the checkpoint's own data set, or ``data_source`` (a prepared name or a file), or ``data``
    already loaded (e.g. a :class:`~vrnn.data.SequenceData` built from numpy arrays, which a checkpoint of a
    run trained on in-memory data needs);
    ``whole`` scores every sequence of every split (in the order train, valid, test; the report's
    ``split`` is ``"all"`` and ``splits`` counts each), each with the same noise, and so the same
    numbers, as in its own split's evaluation. ``per_sequence`` adds every sequence's numbers (see
    :func:`vrnn.inference.evaluate.evaluate`); ``particles`` adds the particle filter's estimates at each K
    (``smc_particles``). ``device``: ``auto``, ``cpu``, ``cuda[:N]`` or a torch.device.
    """
    check_count(iw_samples, "--iw-samples")
    check_count(batch_size, "--batch-size")
    device = _device(device)
    model, norm, ckpt = load_model(path)
    if data is None:  # the checkpoint's own data (or one line saying which --data to pass), or --data
        if data_source is not None:
            locate(data_source, "--data")  # errors name the option
        data = load_dataset(checkpoint_data_config(ckpt) if data_source is None else DataConfig(source=data_source))
    parts = list(data.splits) if whole else [split]
    seqs, keys = [], []
    for s in parts:
        where = f"{data.meta.get('source', data.name)} [{s}]"
        part = validate_sequences(data.splits[s], where, model.cfg.x_dim)
        check_emission_data(model.cfg.emission.name, part, where)
        seqs += part
        keys += split_keys(s, len(part))
    model.to(device)
    deq = Dequantizer(ckpt["config"]["data"].get("dequantize", 0.0),
                      emission_class(model.cfg.emission.name).normalized_columns)
    report = evaluate(model, seqs, norm, iw_samples, batch_size, seed, device, dataset=data.name,
                      split=WHOLE if whole else split, per_sequence=per_sequence, keys=keys, estimator=estimator,
                      particles=tuple(particles), dequantize=deq)
    if whole:
        report["splits"] = {s: len(data.splits[s]) for s in parts}
    report["checkpoint"] = str(path)
    report["step"] = ckpt["step"]
    return report


def sample_checkpoint(path: str | Path, steps: int, out: str | Path, n: int = 1, seed: int = 0,
                      overwrite: bool = False, bias: float = 0.0, temperature: float = 1.0,
                      device: str | torch.device = "cpu") -> list[Path]:
    """``vrnn sample``: generate and write files; returns the paths written.

    ``bias``/``temperature``: biased sampling of pen-stroke models (Graves 2013, §5.4);
    ``device`` as in :func:`evaluate_checkpoint`.
    """
    check_count(steps, "--steps")
    check_count(n, "--num")
    device = _device(device)
    model, norm, ckpt = load_model(path)
    x = sample(model.to(device), steps, n, norm, seed, bias=bias, temperature=temperature)
    return write_samples(x, Path(out), ckpt.get("data_meta", {}), overwrite, title=f"{model.display_name} sample")
