"""Files and figures a person opens, per kind of data.

* piano rolls  — standard MIDI files and piano-roll PNGs        (:mod:`.pianoroll`)
* audio        — 16-bit WAV, waveform PNGs, Figs. 2 and 3        (:mod:`.audio`)
* pen strokes  — drawings as PNG, nothing drawn across a pen lift (:mod:`.strokes`)

:func:`write_samples` writes a model's samples: always the array (.npy, original units),
plus the files of the data's kind (:data:`SAMPLE_FILES`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import VrnnError
from ..io import atomic_write, check_writable, make_folder
from .audio import write_audio_samples
from .pianoroll import write_pianoroll_samples
from .strokes import write_stroke_samples

Writer = Callable[[dict[str, Path], np.ndarray, dict, str], None]

# data kind -> (extensions beside the .npy, writer(paths, x, meta, title))
SAMPLE_FILES: dict[str, tuple[list[str], Writer]] = {
    "pianoroll": ([".mid", ".png"], write_pianoroll_samples),
    "audio": ([".wav", ".png"], write_audio_samples),
    "strokes": ([".png"], write_stroke_samples),
}


def save_npy(path: Path, x: np.ndarray) -> None:
    with atomic_write(path) as tmp:
        np.save(tmp, x)


def output_paths(out: Path, kind: str | None) -> dict[str, Path]:
    """What ``vrnn sample --out FILE`` writes: FILE's stem as .npy, plus the kind's own files."""
    extra = SAMPLE_FILES[kind][0] if kind in SAMPLE_FILES else []
    allowed = [".npy", *extra]
    if out.suffix not in allowed:
        raise VrnnError(f"--out {out}: use one of {allowed} for this model's data")
    stem = out.with_suffix("")
    return {s: stem.with_suffix(s) for s in allowed}


def write_samples(x: np.ndarray, out: Path, meta: dict, overwrite: bool = False, title: str = "") -> list[Path]:
    """Write samples (n, T, D) in original units: the array, plus the files of the data's kind
    (piano rolls: the first sample as MIDI and PNG; audio: the first as WAV and PNG; strokes: a PNG grid)."""
    kind = meta.get("kind")
    paths = output_paths(Path(out), kind)
    check_writable(list(paths.values()), overwrite)
    make_folder(paths[".npy"].parent)
    save_npy(paths[".npy"], x.astype(np.float32))
    if kind in SAMPLE_FILES:
        SAMPLE_FILES[kind][1](paths, x, meta, title)
    return list(paths.values())
