"""Checkpoints: one file rebuilds its model, its data normalisation and its training state.

Files are written atomically (a temporary file in the same folder, then ``os.replace``),
so a crash mid-write never leaves a half checkpoint and never destroys the previous one.
They hold only tensors and plain data and load with ``weights_only=True``.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from .data import Normalizer
from .errors import VrnnError
from .io import atomic_write
from .models import SequenceModel, build_model, model_config_from_dict

FORMAT = "vrnn-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` as a checkpoint at ``path``, atomically and fsynced (:func:`vrnn.io.atomic_write`)."""
    path = Path(path)
    # serialised in memory first: torch's zip writer reports a full disk as an opaque RuntimeError,
    # Python's write as the OSError (ENOSPC) that atomic_write turns into one line naming the path
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    with atomic_write(path) as tmp:
        tmp.write_bytes(buf.getbuffer())


def copy_checkpoint(src: Path, dest: Path) -> None:
    """``dest`` becomes a byte-for-byte copy of checkpoint ``src``, atomically."""
    data = Path(src).read_bytes()
    with atomic_write(dest) as tmp:
        tmp.write_bytes(data)


EVAL_KEYS = ("config", "model", "normalizer", "data_meta", "step", "epoch", "best_valid_elbo", "best_valid", "elapsed")


def export_checkpoint(src: str | Path, dest: str | Path, extra: dict | None = None, half: bool = False) -> int:
    """Copy ``src`` keeping only what evaluation and sampling need (no optimiser or RNG
    state), plus ``extra`` entries; returns the new file's size in bytes.

    ``half`` stores the weights in float16 (half the bytes; they load into the float32 model
    as they are, so whatever is computed from the exported file is computed from exactly those
    weights — evaluate the export, not the source, when the two must agree)."""
    ckpt = load_checkpoint(src)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    kept = {k: ckpt[k] for k in EVAL_KEYS if k in ckpt}
    if half:
        kept["model"] = {k: v.half() if v.is_floating_point() else v for k, v in kept["model"].items()}
    save_checkpoint(dest, {**kept, **(extra or {})})
    return dest.stat().st_size


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise VrnnError(f"{path}: checkpoint not found; give the path of a .pt file written by `vrnn train`")
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle before failing on it; the error says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file can fail inside torch.load in many ways; all mean "unreadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VrnnError(f"{path}: not a readable vrnn checkpoint ({first}); retrain or use another file") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise VrnnError(f"{path}: not a vrnn checkpoint (no '{FORMAT}' header); pass a file written by `vrnn train`")
    if ckpt.get("version", 0) > VERSION:
        raise VrnnError(f"{path}: checkpoint version {ckpt['version']} is newer than this vrnn; upgrade vrnn")
    ckpt["path"] = str(path)
    return ckpt


def model_from_checkpoint(ckpt: dict) -> tuple[SequenceModel, Normalizer]:
    # [model] alone rebuilds the model: a checkpoint needs no [data] or [train] that this vrnn can read
    model = build_model(model_config_from_dict(ckpt["config"]["model"], ckpt.get("path", "checkpoint")))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise VrnnError(f"{ckpt.get('path')}: weights do not fit the stored config ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, Normalizer(**ckpt["normalizer"])


def load_model(path: str | Path) -> tuple[SequenceModel, Normalizer, dict]:
    """Model (eval mode, CPU), its data normaliser and the raw checkpoint."""
    ckpt = load_checkpoint(path)
    model, norm = model_from_checkpoint(ckpt)
    return model, norm, ckpt
