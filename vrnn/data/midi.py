"""Standard MIDI files as 88-key piano rolls on a beat grid (``vrnn prepare midi --source DIR``).

Time is measured in beats (quarter notes, the file's ``ticks_per_beat``), not seconds, so a
piece's tempo changes do not stretch the grid: with ``steps_per_beat = 1`` a step is a quarter
note (the framing of the JSB Chorales pickle), with 2 an eighth note (the SRNN paper's arrays
have twice the pickle's resolution). A key sounds at grid step k when a note of that pitch is
on at time k / steps_per_beat (onset ≤ t < offset), as :func:`vrnn.data.recipes.score_to_roll`
samples music21 scores. Notes of every track and channel count, except channel 10 (General MIDI
percussion), and a note-on with velocity 0 is a note-off. Pitches outside the piano's 21..108
are dropped and counted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import VrnnError
from .readers import PIANO_KEYS, PIANO_LOW

PERCUSSION_CHANNEL = 9  # channel 10, counted from 1


def midi_notes(path: str | Path) -> tuple[list[tuple[int, float, float]], int]:
    """(pitch, onset, offset) in beats of every pitched note of a MIDI file, and its ticks per beat.

    Raises VrnnError naming the file if it cannot be parsed.
    """
    import mido

    try:
        mid = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as e:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise VrnnError(f"{path}: not a readable MIDI file ({why})") from None
    tpb = mid.ticks_per_beat
    notes, sounding = [], {}
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type not in ("note_on", "note_off") or msg.channel == PERCUSSION_CHANNEL:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, []).append(tick)
            elif sounding.get(key):
                notes.append((msg.note, sounding[key].pop(0) / tpb, tick / tpb))
        for (_, pitch), starts in sounding.items():  # notes never released end with their track
            notes += [(pitch, s / tpb, tick / tpb) for s in starts]
        sounding.clear()
    return notes, tpb


def midi_to_roll(path: str | Path, steps_per_beat: int = 2) -> tuple[np.ndarray, int]:
    """A MIDI file as a (T, 88) 0/1 piano roll at ``steps_per_beat`` steps per quarter note, and the
    number of notes outside the piano's range that were dropped."""
    if steps_per_beat < 1:
        raise VrnnError(f"--steps-per-beat must be >= 1, got {steps_per_beat}")
    notes, _ = midi_notes(path)
    if not notes:
        raise VrnnError(f"{path}: no pitched notes")
    end = max(off for _, _, off in notes)
    roll = np.zeros((int(np.ceil(end * steps_per_beat)), PIANO_KEYS), dtype=np.float32)
    dropped = 0
    for pitch, on, off in notes:
        k = pitch - PIANO_LOW
        if not 0 <= k < PIANO_KEYS:
            dropped += 1
            continue
        roll[int(np.ceil(on * steps_per_beat - 1e-9)):int(np.ceil(off * steps_per_beat - 1e-9)), k] = 1.0
    return roll, dropped


def find_midi(source: str | Path) -> list[Path]:
    """Every .mid/.midi file under ``source`` (recursively), sorted."""
    root = Path(source).expanduser()
    if not root.is_dir():
        raise VrnnError(f"--source {root}: not a folder; give a folder that holds .mid files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise VrnnError(f"--source {root}: no .mid or .midi files in it or below it")
    return files
