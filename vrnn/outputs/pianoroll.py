"""Piano rolls as files a musician opens: standard MIDI files and pictures."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.readers import PIANO_LOW
from ..io import atomic_write
from .figures import draw_roll, pyplot, save_figure


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
    with atomic_write(path) as tmp:
        mid.save(tmp)


def pianoroll_png(path: Path, roll: np.ndarray, title: str = "", join: int | None = None) -> None:
    """A piano roll (T, 88) as a PNG: time across, MIDI pitch up; ``join``: the first continued step, marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, roll.shape[0] / 12), 4), dpi=100)
    draw_roll(ax, roll, PIANO_LOW, (-0.5, roll.shape[0] - 0.5))
    ax.set_xlabel("time step")
    if title:
        ax.set_title(title)
    if join:
        ax.axvline(join - 0.5, color="tab:red", lw=1.5, label="continuation starts")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def write_pianoroll_samples(paths: dict[str, Path], x: np.ndarray, meta: dict, title: str) -> None:
    """The first sample as MIDI and as a PNG piano roll."""
    write_midi(paths[".mid"], x[0])
    pianoroll_png(paths[".png"], x[0], title, meta.get("prime_steps"))
