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

from .data import DataConfig, Normalizer
from .data.resolve import checkpoint_source, moved_data_entries
from .errors import VrnnError
from .io import atomic_write, check_readable
from .models import SequenceModel, build_model, model_config_from_dict

FORMAT = "vrnn-checkpoint"
VERSION = 2  # the newest version this vrnn reads; 2 adds 8-bit weights (``model_scales``)
WEIGHTS = ("float32", "float16", "int8")  # how export_checkpoint can store the weights


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` as a checkpoint at ``path``, atomically and fsynced (:func:`vrnn.io.atomic_write`)."""
    path = Path(path)
    # serialised in memory first: torch's zip writer reports a full disk as an opaque RuntimeError,
    # Python's write as the OSError (ENOSPC) that atomic_write turns into one line naming the path
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": 1, **payload}, buf)
    with atomic_write(path) as tmp:
        tmp.write_bytes(buf.getbuffer())


def copy_checkpoint(src: Path, dest: Path) -> None:
    """``dest`` becomes a byte-for-byte copy of checkpoint ``src``, atomically."""
    data = Path(src).read_bytes()
    with atomic_write(dest) as tmp:
        tmp.write_bytes(data)


EVAL_KEYS = ("config", "model", "normalizer", "data_meta", "data_ref", "step", "epoch", "best_valid_elbo",
             "best_valid", "elapsed")


def export_checkpoint(src: str | Path, dest: str | Path, extra: dict | None = None, weights: str = "float32",
                      bench_dir: str | Path | None = None) -> int:
    """Copy ``src`` keeping only what evaluation and sampling need (no optimiser or RNG
    state), plus ``extra`` entries; returns the new file's size in bytes.

    The data reference moves along (:func:`vrnn.data.resolve.moved_data_entries`): a data file's path
    relative to the folder is made relative to ``dest``'s, or ``{data_dir}/...`` inside ``bench_dir``.

    ``weights`` is how they are stored (:data:`WEIGHTS`): ``"float16"`` halves the bytes, ``"int8"`` quarters
    them (:func:`quantize_weights`). Either way they load into the float32 model as stored, so whatever is
    computed from the exported file is computed from exactly those weights: evaluate the export, not the
    source, when the two must agree."""
    if weights not in WEIGHTS:
        raise VrnnError(f"export weights {weights!r}: choose one of {', '.join(WEIGHTS)}")
    ckpt = load_checkpoint(src)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    kept = {k: ckpt[k] for k in EVAL_KEYS if k in ckpt}
    kept |= moved_data_entries(ckpt, Path(src).parent, dest.parent, bench_dir)
    if weights == "int8":  # matrices in 8 bits, from the float32 weights; the vectors left go to float16
        kept["model"], kept["model_scales"] = quantize_weights(kept["model"])
        kept["version"] = 2
    if weights != "float32":
        kept["model"] = {k: v.half() if v.is_floating_point() else v for k, v in kept["model"].items()}
    save_checkpoint(dest, {**kept, **(extra or {})})
    return dest.stat().st_size


def stored_weights(path: str | Path) -> str:
    """How a checkpoint file stores its weights: one of :data:`WEIGHTS` (read without dequantizing)."""
    dtypes = {v.dtype for v in torch.load(path, map_location="cpu", weights_only=True)["model"].values()}
    return "int8" if torch.int8 in dtypes else "float16" if torch.float16 in dtypes else "float32"


def quantize_weights(state: dict) -> tuple[dict, dict]:
    """Every floating tensor of two or more dimensions as int8 with one float32 scale per output row
    (symmetric, round to nearest: each weight moves by at most half its row's scale, max|row| / 254);
    biases and other vectors stay as they are. Returns (state, scales); :func:`dequantize_weights` undoes it."""
    out, scales = dict(state), {}
    for k, v in state.items():
        if v.is_floating_point() and v.dim() >= 2:
            rows = v.float().flatten(1)
            scale = rows.abs().amax(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny) / 127
            out[k] = torch.round(rows / scale).to(torch.int8).reshape(v.shape)
            scales[k] = scale.reshape(-1)
    return out, scales


def dequantize_weights(state: dict, scales: dict) -> dict:
    """The float32 weights an int8 checkpoint stores (:func:`quantize_weights`)."""
    return {k: (v.float().flatten(1) * scales[k][:, None]).reshape(v.shape) if k in scales else v
            for k, v in state.items()}


WRITTEN_BY_TRAIN = "give a .pt file written by `vrnn train` (best.pt or last.pt in its --out folder)"


def load_checkpoint(path: str | Path) -> dict:
    path = check_readable(path, "checkpoint", "a checkpoint (.pt)",
                          "give the path of a .pt file written by `vrnn train`", run_file="best.pt")
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle before failing on it; the error says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file can fail inside torch.load in many ways; all mean "unreadable"
        raise VrnnError(_not_a_checkpoint(path, e)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise VrnnError(f"{path} is not a vrnn checkpoint (no '{FORMAT}' header); {WRITTEN_BY_TRAIN}")
    if ckpt.get("version", 0) > VERSION:
        raise VrnnError(f"{path}: checkpoint version {ckpt['version']} is newer than this vrnn; upgrade vrnn")
    if "model_scales" in ckpt:  # 8-bit weights: the model always sees floats
        ckpt["model"] = dequantize_weights(ckpt["model"], ckpt.pop("model_scales"))
    ckpt["path"] = str(path)
    return ckpt


def _not_a_checkpoint(path: Path, err: Exception) -> str:
    """The one line for a file ``torch.load`` cannot read as a checkpoint: what the file is instead (a run's
    training log, a text file, a damaged archive, a pickle of other objects) and what to give."""
    with open(path, "rb") as f:
        head = f.read(512)
    if path.suffix == ".jsonl" or head.startswith(b'{"step"'):  # log.jsonl, which `vrnn train` writes beside best.pt
        ckpt = next((path.parent / n for n in ("best.pt", "last.pt") if (path.parent / n).is_file()), None)
        use = f"use {ckpt}" if ckpt else f"use the best.pt `vrnn train` writes beside it ({path.parent / 'best.pt'})"
        return f"{path} is a training log, not a checkpoint; {use}"
    if head.startswith(b"PK\x03\x04"):
        what = "a damaged or truncated torch file: " + (str(err).strip().split(". ")[0] or type(err).__name__)
    elif head[:1] == b"\x80":
        what = ("a pickle of Python objects, not a checkpoint's tensors and plain data" if "Weights only" in str(err)
                else "a damaged pickle")
    else:
        try:
            head.decode("utf-8")
            what = "a text file"
        except UnicodeDecodeError:  # cut mid-character at byte 512 reads as binary too; both are not checkpoints
            what = "neither a torch file nor a pickle"
    return f"{path} is not a vrnn checkpoint ({what}); {WRITTEN_BY_TRAIN}"


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


def checkpoint_data_config(ckpt: dict, source: str | None = None) -> DataConfig:
    """The ``[data]`` of a loaded checkpoint with a source usable on this machine: ``source`` if given, else
    the data it was trained on (:func:`vrnn.data.resolve.checkpoint_source`: one line saying which ``--data``
    to pass when they are not here)."""
    stored = ckpt["config"]["data"]
    return DataConfig(**{**stored, "source": source if source is not None else checkpoint_source(ckpt)})


def stored_config(path: str | Path) -> dict:
    """A checkpoint's config with its data source usable here (``vrnn train --resume`` without ``--config``)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("data_ref", {}).get("kind") == "in-memory":
        raise VrnnError(f"{path}: this run was trained on in-memory data ({ckpt['data_ref'].get('name')}); resume it "
                        f"from Python: fit(cfg, OUT, resume=True, data=SequenceData(...))")
    return {**ckpt["config"], "data": {**ckpt["config"]["data"], "source": checkpoint_source(ckpt)}}
