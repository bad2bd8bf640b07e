"""The Python API; the CLI is a thin layer over these functions."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import load_model
from .data import DataConfig, SequenceData, load_dataset, validate_sequences
from .emissions import check_emission_data
from .errors import VrnnError
from .evaluate import EVAL_SEED, evaluate
from .outputs import write_samples
from .sampling import sample


def _check_steps(v: int, name: str) -> None:
    if v < 1:
        raise VrnnError(f"{name} must be >= 1, got {v}")


def evaluate_checkpoint(path: str | Path, split: str = "test", iw_samples: int = 40, batch_size: int = 64,
                        data_source: str | None = None, seed: int = EVAL_SEED, device: str = "cpu",
                        data: SequenceData | None = None, per_sequence: bool = False) -> dict:
    """``vrnn eval``: the report of :func:`vrnn.evaluate.evaluate` for a checkpoint file.

    The data are the checkpoint's own data set, or ``data_source``, or ``data`` already loaded;
    ``per_sequence`` adds every sequence's numbers (see :func:`vrnn.evaluate.evaluate`).
    """
    _check_steps(iw_samples, "--iw-samples")
    _check_steps(batch_size, "--batch-size")
    model, norm, ckpt = load_model(path)
    if data is None:
        data_cfg = DataConfig(**ckpt["config"]["data"])
        if data_source is not None:
            data_cfg = DataConfig(source=data_source)
        data = load_dataset(data_cfg)
    seqs = data.splits[split]
    where = f"{data.meta['source']} [{split}]"
    validate_sequences(seqs, where, model.cfg.x_dim)
    check_emission_data(model.cfg.emission.name, seqs, where)
    model.to(device)
    report = evaluate(model, seqs, norm, iw_samples, batch_size, seed, device, dataset=data.meta["name"], split=split,
                      per_sequence=per_sequence)
    report["checkpoint"] = str(path)
    report["step"] = ckpt["step"]
    return report


def sample_checkpoint(path: str | Path, steps: int, out: str | Path, n: int = 1, seed: int = 0,
                      overwrite: bool = False, bias: float = 0.0, temperature: float = 1.0) -> list[Path]:
    """``vrnn sample``: generate and write files; returns the paths written.

    ``bias``/``temperature``: biased sampling of pen-stroke models (Graves 2013, §5.4).
    """
    _check_steps(steps, "--steps")
    _check_steps(n, "--num")
    model, norm, ckpt = load_model(path)
    x = sample(model, steps, n, norm, seed, bias=bias, temperature=temperature)
    return write_samples(x, Path(out), ckpt.get("data_meta", {}), overwrite, title=f"{model.display_name} sample")
