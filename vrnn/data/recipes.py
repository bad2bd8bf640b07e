"""``vrnn prepare NAME``: named recipes that build a data set once and cache it.

Each recipe returns a :class:`SequenceData`; :func:`prepare` writes it to
``data_dir()/NAME.npz``. Recipes are the only place that installs-time data are read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import VrnnError
from .core import SequenceData, data_dir, save_prepared
from .readers import PIANO_KEYS, PIANO_LOW

RECIPES: dict[str, Callable[..., SequenceData]] = {}


def recipe(name: str):
    def deco(fn):
        RECIPES[name] = fn
        return fn

    return deco


def split_by_piece(items: list, seed: int, fractions=(0.6, 0.2, 0.2)) -> dict[str, list]:
    """A fixed, seeded split of whole items (pieces, files, speakers) into train/valid/test."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_tr = int(round(fractions[0] * len(items)))
    n_va = int(round(fractions[1] * len(items)))
    idx = {"train": order[:n_tr], "valid": order[n_tr:n_tr + n_va], "test": order[n_tr + n_va:]}
    return {s: [items[i] for i in sorted(ix)] for s, ix in idx.items()}


def score_to_roll(score) -> np.ndarray:
    """A music21 score -> (T, 88) piano roll sampled on every quarter-note beat.

    A note sounds at beat k if offset <= k < offset + duration (so notes shorter than a
    beat that start off the beat are not seen, as in the quarter-note JSB benchmark).
    """
    flat = score.flatten()
    T = int(np.ceil(float(flat.highestTime)))
    roll = np.zeros((T, PIANO_KEYS), dtype=np.float32)
    for el in flat.notes:
        start, end = float(el.offset), float(el.offset + el.quarterLength)
        beats = range(int(np.ceil(start)), int(np.ceil(end)))
        for p in el.pitches:
            k = int(p.midi) - PIANO_LOW
            if 0 <= k < PIANO_KEYS:
                for b in beats:
                    if b < T:
                        roll[b, k] = 1.0
    return roll


@recipe("chorales")
def chorales(seed: int = 0, source: str | None = None) -> SequenceData:
    """Bach's chorales from the music21 corpus as 88-key piano rolls at quarter-note steps.

    Every score of composer 'bach' (MusicXML / Humdrum; the Roman-numeral analyses are
    skipped) becomes one sequence; pieces are split 60/20/20 with a fixed seed.
    """
    try:
        from music21 import corpus
    except ImportError:
        raise VrnnError("vrnn prepare chorales needs music21: pip install 'vrnn[music]'") from None
    paths = sorted(p for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml", ".krn"))
    pieces = []
    for p in paths:
        roll = score_to_roll(corpus.parse(p))
        if len(roll) and roll.any():
            pieces.append((Path(p).stem, roll))
    split = split_by_piece(pieces, seed)
    return SequenceData(
        {s: [r for _, r in v] for s, v in split.items()},
        {"name": "chorales", "kind": "pianoroll", "framing": "quarter-note steps",
         "split": f"60/20/20 by piece, seed {seed}",
         "pieces": {s: [n for n, _ in v] for s, v in split.items()}},
    )


def prepare(name: str, overwrite: bool = False, **kwargs) -> Path:
    if name not in RECIPES:
        raise VrnnError(f"unknown data set {name!r}; choose one of {sorted(RECIPES)}")
    out = data_dir() / f"{name}.npz"
    if out.exists() and not overwrite:
        return out
    save_prepared(out, RECIPES[name](**kwargs))
    return out
