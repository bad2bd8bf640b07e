"""Files a person opens: arrays, MIDI and piano-roll pictures."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data.readers import PIANO_LOW
from .errors import VrnnError


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """Refuse to replace existing outputs unless asked."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise VrnnError(f"{existing[0]}: already exists; pass --overwrite to replace it or choose another --out")


def save_npy(path: Path, x: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, path)


def write_midi(path: Path, roll: np.ndarray, step_seconds: float = 0.5, velocity: int = 80, program: int = 0) -> None:
    """An 88-key 0/1 piano roll (T, 88) as a one-track standard MIDI file.

    Each run of consecutive active steps of a key is one note; a step lasts ``step_seconds``
    (0.5 s: quarter notes at 120 bpm).
    """
    import mido

    tpb = 480  # ticks per beat; one step = one beat at 120 bpm = 0.5 s
    ticks = int(round(tpb * step_seconds / 0.5))
    events = []  # (tick, order, message): note-offs before note-ons at the same tick
    active = roll > 0.5
    padded = np.vstack([np.zeros((1, active.shape[1]), bool), active, np.zeros((1, active.shape[1]), bool)])
    change = np.diff(padded.astype(np.int8), axis=0)
    for t, k in zip(*np.nonzero(change == 1)):
        events.append((t * ticks, 1, mido.Message("note_on", note=int(k) + PIANO_LOW, velocity=velocity)))
    for t, k in zip(*np.nonzero(change == -1)):
        events.append((t * ticks, 0, mido.Message("note_off", note=int(k) + PIANO_LOW, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000))  # 120 bpm
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    tmp = path.with_name(f".{path.stem}.tmp.mid")
    mid.save(tmp)
    os.replace(tmp, path)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported on first use: no import-time side effects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write a figure as PNG atomically (temporary file + rename) and close it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, format="png")
    pyplot().close(fig)
    os.replace(tmp, path)


def pianoroll_png(path: Path, roll: np.ndarray, title: str = "") -> None:
    """A piano roll (T, 88) as a PNG: time across, MIDI pitch up."""
    plt = pyplot()
    rows = np.nonzero(roll.any(0))[0]
    lo, hi = (rows.min(), rows.max()) if len(rows) else (0, roll.shape[1] - 1)
    lo, hi = max(0, lo - 3), min(roll.shape[1] - 1, hi + 3)
    fig, ax = plt.subplots(figsize=(max(6, roll.shape[0] / 12), 4), dpi=100)
    ax.imshow(roll[:, lo:hi + 1].T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
              extent=(-0.5, roll.shape[0] - 0.5, lo + PIANO_LOW - 0.5, hi + PIANO_LOW + 0.5))
    ax.set_xlabel("time step")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


SAMPLE_WRITERS: dict = {}  # data kind -> (extensions, write(paths, x, meta, title))


def sample_writer(kind: str, extensions: list[str]):
    """Register how samples of a data kind are written: extra files beside the .npy."""
    def deco(fn):
        SAMPLE_WRITERS[kind] = (extensions, fn)
        return fn

    return deco


@sample_writer("pianoroll", [".mid", ".png"])
def _write_pianoroll(paths: dict, x: np.ndarray, meta: dict, title: str) -> None:
    write_midi(paths[".mid"], x[0])
    pianoroll_png(paths[".png"], x[0], title)


@sample_writer("audio", [".wav", ".png"])
def _write_audio(paths: dict, x: np.ndarray, meta: dict, title: str) -> None:
    """The first sample's frames joined into one waveform: a 16-bit WAV at the data's rate and its plot."""
    from .data.audio import join_frames, waveform_png, write_wav

    wave, rate = join_frames(x[0]), int(meta["rate"])
    write_wav(paths[".wav"], wave, rate)
    waveform_png(paths[".png"], wave, rate, f"{title} ({len(wave) / rate:g} s at {rate} Hz)")


def output_paths(out: Path, kind: str | None) -> dict[str, Path]:
    """What ``vrnn sample --out FILE`` writes: FILE's stem as .npy, plus the kind's own files."""
    extra = SAMPLE_WRITERS[kind][0] if kind in SAMPLE_WRITERS else []
    allowed = [".npy", *extra]
    if out.suffix not in allowed:
        raise VrnnError(f"--out {out}: use one of {allowed} for this model's data")
    stem = out.with_suffix("")
    return {s: stem.with_suffix(s) for s in allowed}


from . import stroke_plots  # noqa: E402,F401  registers the "strokes" writer (drawings as PNG)
