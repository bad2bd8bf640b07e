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


OMNIGLOT_HINT = ("download the stroke-3 omniglot.npz of the sketch-rnn data sets (github.com/hardmaru/"
                 "sketch-rnn-datasets, folder omniglot) or Omniglot's raw strokes_background.zip (github.com/"
                 "brendenlake/omniglot, folder python) and pass --source PATH")


@recipe("omniglot")
def omniglot(seed: int = 0, source: str | None = None, spacing: float = 2.0) -> SequenceData:
    """Omniglot characters drawn online (Lake et al. 2015) as stroke-3 pen-stroke sequences.

    ``source``: a stroke-3 .npz with train/valid/test (its split is kept; ``seed`` unused), or a
    folder / .zip of raw ``x,y,t`` recordings with START/BREAK markers, resampled ``spacing``
    units apart along the pen's path and split 80/10/10 by drawing with ``seed``.
    """
    from .strokes import STROKE3_META, is_stroke3_npz, read_omniglot_raw, read_stroke3_npz

    if source is None:
        raise VrnnError(f"vrnn prepare omniglot needs the data: {OMNIGLOT_HINT}")
    path = Path(source).expanduser()
    if not path.exists():
        raise VrnnError(f"--source {path}: not found; {OMNIGLOT_HINT}")
    options = {"seed": seed, "source": str(path.resolve()), "spacing": spacing}
    if path.suffix == ".npz":
        if not is_stroke3_npz(path):
            raise VrnnError(f"--source {path}: not a stroke-3 .npz (train/valid/test arrays of (T, 3) drawings)")
        data = read_stroke3_npz(path)
        data.meta |= {"name": "omniglot", "split": "as in the source file", "options": options}
        return data
    items = read_omniglot_raw(path, spacing)
    split = split_by_piece(items, seed, (0.8, 0.1, 0.1))
    return SequenceData({s: [a for _, a in v] for s, v in split.items()},
                        {"name": "omniglot", **STROKE3_META, "split": f"80/10/10 by drawing, seed {seed}",
                         "resampling": f"{spacing} units between points along each stroke", "options": options})


@recipe("iam-ondb")
def iam_ondb(seed: int = 0, source: str | None = None) -> SequenceData:
    """IAM-OnDB handwritten lines (Liwicki & Bunke 2005) from its lineStrokes XML files, as stroke-3.

    ``source``: the ``lineStrokes`` folder or ``lineStrokes-all.tar.gz``. Lines are split
    90/5/5 by form (all lines of one form in one split) with ``seed``; the points are used
    as recorded (Graves 2013).
    """
    from .strokes import STROKE3_META, form_of, read_iam_ondb

    if source is None:
        raise VrnnError("vrnn prepare iam-ondb needs --source: the lineStrokes folder or lineStrokes-all.tar.gz "
                        "of IAM-OnDB (registration at fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database)")
    path = Path(source).expanduser()
    if not path.exists():
        raise VrnnError(f"--source {path}: not found; give the lineStrokes folder or lineStrokes-all.tar.gz")
    lines = read_iam_ondb(path)
    forms = sorted({form_of(n) for n, _ in lines})
    split = split_by_piece(forms, seed, (0.9, 0.05, 0.05))
    where = {f: s for s, fs in split.items() for f in fs}
    splits = {s: [a for n, a in lines if where[form_of(n)] == s] for s in split}
    return SequenceData(splits, {"name": "iam-ondb", **STROKE3_META, "split": f"90/5/5 by form, seed {seed}",
                                 "options": {"seed": seed, "source": str(path.resolve())}})



def prepare(name: str, overwrite: bool = False, **kwargs) -> Path:
    if name not in RECIPES:
        raise VrnnError(f"unknown data set {name!r}; choose one of {sorted(RECIPES)}")
    out = data_dir() / f"{name}.npz"
    if out.exists() and not overwrite:
        return out
    save_prepared(out, RECIPES[name](**kwargs))
    return out
