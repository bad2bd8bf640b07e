"""Anomaly detection with per-step scores: held-out sequences with injected segments of another kind.

Piano rolls (:func:`inject`): each test piece gets one segment of ``length`` steps that is either
transposed (a pitch shift of 1–6 semitones up or down) or replaced by random notes (a burst, each
key on with probability 0.1). Audio frames (:func:`inject_audio`): each test sequence gets either a
noise burst (one frame replaced by white noise at the sequence's RMS level) or a dropped frame (one
frame removed, so the waveform jumps; the frame after the gap is the injected step). Which sequence
gets which, and where, is drawn from ``seed``. A model's anomaly score of a
step is −log p̂(x_t | x_<t) (:func:`vrnn.inference.scoring.score_sequences_per_step`: exact for an RNN,
a particle filter otherwise), and the report gives the ROC AUC of the scores for telling the
injected steps from the others (0.5: chance; 1: every injected step scores above every clean one).
"""
from __future__ import annotations

import numpy as np

from ...errors import VrnnError

KINDS = ("pitch shift", "burst")
AUDIO_KINDS = ("noise burst", "dropped frame")


def kinds_for(data_kind: str) -> tuple[str, ...]:
    """The injected kinds for data of ``data_kind`` (a data set's ``meta["kind"]``)."""
    return AUDIO_KINDS if data_kind == "audio" else KINDS


def inject(seqs: list[np.ndarray], seed: int, length: int = 4) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Corrupted copies of piano rolls (T, 88), each step's label (True: injected) and each piece's kind."""
    rng = np.random.default_rng(seed)
    out, labels, kinds = [], [], []
    for i, x in enumerate(seqs):
        x, lab = x.copy(), np.zeros(len(x), bool)
        kind = KINDS[i % 2]
        if len(x) >= 3 * length:
            t = int(rng.integers(length, len(x) - length))
            if kind == "pitch shift":
                k = int(rng.choice([-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6]))
                seg = np.roll(x[t:t + length], k, axis=1)  # keys move k semitones; none wraps around
                if k > 0:
                    seg[:, :k] = 0
                else:
                    seg[:, k:] = 0
                x[t:t + length] = seg
            else:
                x[t:t + length] = (rng.random((length, x.shape[1])) < 0.1).astype(x.dtype)
            lab[t:t + length] = True
        out.append(x)
        labels.append(lab)
        kinds.append(kind)
    return out, labels, kinds


def inject_audio(seqs: list[np.ndarray], seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Corrupted copies of framed waveforms (T, frame_size), each step's label and each sequence's kind."""
    rng = np.random.default_rng(seed)
    out, labels, kinds = [], [], []
    for i, x in enumerate(seqs):
        kind = AUDIO_KINDS[i % 2]
        x = x.copy()
        lab = np.zeros(len(x), bool)
        if len(x) >= 4:
            t = int(rng.integers(1, len(x) - 1))
            if kind == "noise burst":
                rms = float(np.sqrt((x.astype(np.float64) ** 2).mean()))
                x[t] = rng.normal(0.0, rms, x.shape[1]).astype(x.dtype)
            else:
                x = np.delete(x, t, axis=0)
                lab = np.zeros(len(x), bool)
            lab[t] = True
        out.append(x)
        labels.append(lab)
        kinds.append(kind)
    return out, labels, kinds


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a random injected step > score of a random clean one), ties counting half (Mann–Whitney)."""
    pos, n_pos = labels.astype(bool), int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    try:
        from scipy.stats import rankdata
    except ImportError:
        raise VrnnError("the anomaly-detection report needs scipy: pip install 'vrnn[lab]'") from None
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def anomaly_aucs(model, norm, seqs: list[np.ndarray], seed: int = 0, particles: int = 100,
                 data_kind: str = "pianoroll") -> dict[str, float]:
    """ROC AUC of −log p̂(x_t | x_<t) for the injected steps, per kind and over all sequences."""
    from ...inference.scoring import score_sequences_per_step

    bad, labels, kinds = (inject_audio if data_kind == "audio" else inject)(seqs, seed)
    scores, _ = score_sequences_per_step(model, [norm(a) for a in bad], particles, seed)
    res = {}
    for kind in (*kinds_for(data_kind), "all"):
        keep = [i for i, k in enumerate(kinds) if kind in ("all", k)]
        res[kind] = roc_auc(-np.concatenate([scores[i] for i in keep]), np.concatenate([labels[i] for i in keep]))
    return res
