"""Measures of what a model generates and of what its latent variables do (VRNN paper, claims 3–5).

Sample quality of audio (Chung et al. 2015, Fig. 3: "less noisy" samples), measured against held-out
recordings rather than by eye:

* :func:`average_log_spectrum` — the long-term average power spectrum of a waveform in dB (Welch's
  method, Hann windows), the quantity a speech person compares first;
* :func:`log_spectral_distance` — the RMS difference in dB between two waveforms' average log spectra
  (0 for the same spectrum; white noise against speech is tens of dB);
* :func:`high_frequency_ratio` — the share of a waveform's energy above a cut-off (noise-like samples
  have a flat spectrum and so a high share; speech has most energy below 1 kHz).

Transitions (Fig. 2: the latent's change lines up with changes in the signal):

* :func:`spectral_flux` and :func:`energy_change` — per-frame transition signals of a framed waveform,
  computed from the audio alone, independent of any model; :func:`frame_loudness` — the frame's log
  energy, the control a transition signal is partly made of;
* :func:`transition_alignment` — Spearman's rank correlation between a per-step latent signal (δ_t, or
  the step's KL) and a transition signal, beside the same correlation with time shuffled (the
  baseline: what the correlation is when nothing lines up), and the permutation p-value; with a control
  (loudness), the partial rank correlation with the control regressed out of both signals.

Handwriting style (claim 4: a sample keeps one style through a drawing):

* :func:`stroke_statistics` and :func:`style_drift` — pen-step statistics of a stroke-3 drawing and how
  much they change between its first and second half, in units of their spread over the drawing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VrnnError


def _scipy(what: str):
    try:
        import scipy.signal
        import scipy.stats
    except ImportError:
        raise VrnnError(f"{what} needs scipy: pip install 'vrnn[audio]'") from None
    return scipy


def _wave(x, name: str = "wave") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size < 16 or not np.isfinite(x).all():
        raise VrnnError(f"{name}: need at least 16 finite samples, got {x.size}"
                        + ("" if np.isfinite(x).all() else " with NaN/inf"))
    return x


def average_log_spectrum(wave, rate: int, segment: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in Hz, average power spectral density in dB) of ``wave`` by Welch's method
    (``segment``-sample Hann windows, half overlapping); a floor of 1e-12 of the peak keeps silence finite."""
    x = _wave(wave)
    freqs, psd = _scipy("average_log_spectrum").signal.welch(x, fs=rate, nperseg=min(segment, x.size))
    floor = max(psd.max(), 1e-30) * 1e-12
    return freqs, 10 * np.log10(np.maximum(psd, floor))


@dataclass(frozen=True)
class Spectrum:
    """An average log spectrum computed once (:func:`reference_spectrum`), to compare many waveforms with."""

    db: np.ndarray


def reference_spectrum(reference, rate: int, segment: int = 256) -> Spectrum:
    """``reference``'s average log spectrum, for :func:`log_spectral_distance` against many waveforms
    without recomputing it for each."""
    return Spectrum(average_log_spectrum(reference, rate, segment)[1])


def log_spectral_distance(wave, reference, rate: int, segment: int = 256, normalise: bool = True) -> float:
    """RMS over frequency of the difference (dB) between the average log spectra of ``wave`` and
    ``reference`` (e.g. a generated sample and held-out audio at the same rate). With ``normalise``
    each spectrum is shifted to mean 0 dB first, so loudness does not count, only spectral shape.
    ``reference`` may be a :class:`Spectrum` computed once with the same ``rate`` and ``segment``."""
    _, a = average_log_spectrum(wave, rate, segment)
    b = reference.db if isinstance(reference, Spectrum) else average_log_spectrum(reference, rate, segment)[1]
    if normalise:
        a, b = a - a.mean(), b - b.mean()
    return float(np.sqrt(np.mean((a - b) ** 2)))


def high_frequency_ratio(wave, rate: int, cutoff_hz: float) -> float:
    """Share of the energy of ``wave`` above ``cutoff_hz`` (0 to 1), from its Welch power spectrum."""
    if not 0 < cutoff_hz < rate / 2:
        raise VrnnError(f"cutoff_hz={cutoff_hz}: must lie between 0 and the Nyquist frequency {rate / 2:g} Hz")
    x = _wave(wave)
    freqs, psd = _scipy("high_frequency_ratio").signal.welch(x, fs=rate, nperseg=min(256, x.size))
    total = psd.sum()
    return float(psd[freqs > cutoff_hz].sum() / total) if total > 0 else 0.0


def _frames(frames) -> np.ndarray:
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise VrnnError(f"frames: shape {f.shape}; need (T, frame_size) with T >= 2")
    return f


def spectral_flux(frames) -> np.ndarray:
    """Per-frame spectral flux of a framed waveform (T, frame_size): the L2 norm of the rise of the
    magnitude spectrum from frame t−1 to t (Hann window), NaN at t = 0 (no previous frame)."""
    f = _frames(frames)
    mag = np.abs(np.fft.rfft(f * np.hanning(f.shape[1]), axis=1))
    rise = np.maximum(mag[1:] - mag[:-1], 0)
    return np.concatenate([[np.nan], np.sqrt((rise ** 2).sum(1))])


def frame_loudness(frames) -> np.ndarray:
    """Per-frame loudness of a framed waveform (T, frame_size): the log of the frame's mean power (nepers
    of power, floored at 1e-10), (T,)."""
    f = _frames(frames)
    return np.log((f ** 2).mean(1) + 1e-10)


def energy_change(frames) -> np.ndarray:
    """Per-frame |change of log energy| (nepers of power) of a framed waveform, NaN at t = 0."""
    return np.concatenate([[np.nan], np.abs(np.diff(frame_loudness(frames)))])


def _centred_ranks(v: np.ndarray) -> np.ndarray:
    r = _scipy("transition_alignment").stats.rankdata(v)  # average ranks for ties, as Spearman's rho
    return r - r.mean()


def _residual(r: np.ndarray, c: np.ndarray | None) -> np.ndarray:
    """``r`` less its least-squares fit on ``c`` (both centred; ``c`` None: ``r`` itself)."""
    if c is None or not (cc := float(c @ c)):
        return r
    return r - c * (float(r @ c) / cc)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / den if den else 0.0


def _within_groups(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices that permute the steps of each group among themselves (one random permutation per group)."""
    order = np.argsort(groups, kind="stable")
    perm = np.empty(groups.size, dtype=np.int64)
    perm[order] = np.lexsort((rng.random(groups.size), groups))  # both sorted by group: each step stays in its own
    return perm


def transition_alignment(latent, transition, shuffles: int = 1000, seed: int = 0, groups=None,
                         control=None) -> dict:
    """How well a per-step latent signal (δ_t or the per-step KL, (T,)) lines up with a transition
    signal of the data ((T,), e.g. :func:`spectral_flux`), against time shuffled.

    Steps where a signal is NaN are left out. ``groups`` ((T,), e.g. the sequence each step belongs to,
    when several sequences are pooled) makes the shuffles permute steps only within their group, so
    the baseline keeps what differs between sequences and removes only the alignment in time.

    ``control`` ((T,), e.g. :func:`frame_loudness`) makes it a **partial** rank correlation: all three
    signals are rank-transformed, the control's ranks are regressed out of the other two, and the
    residuals are correlated; the shuffles permute the transition's residuals within each group and
    regress the control out again (Freedman & Lane 1983), so the control's own alignment with the
    transitions is kept in the baseline. Without a control this is Spearman's ρ against time-shuffled
    transitions. Returns ``spearman`` (the rank correlation, partial with a control), ``raw_spearman``
    (without the control), ``shuffled_mean`` and ``shuffled_sd`` (over ``shuffles`` permutations: what
    chance alignment gives), ``p_value`` (share of shuffles at least as correlated, with the +1
    correction) and ``steps``."""
    a, b = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (latent, transition))
    c = None if control is None else np.asarray(control, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or (c is not None and c.shape != a.shape):
        raise VrnnError(f"transition_alignment: latent signal has {a.size} steps, transition signal {b.size}"
                        + ("" if c is None else f", control {c.size}"))
    g = np.zeros(a.size, dtype=np.int64) if groups is None else np.asarray(groups).reshape(-1)
    if g.shape != a.shape:
        raise VrnnError(f"transition_alignment: {g.size} group labels for {a.size} steps")
    keep = np.isfinite(a) & np.isfinite(b) & (True if c is None else np.isfinite(c))
    a, b, g = a[keep], b[keep], g[keep]
    if a.size < 4:
        raise VrnnError(f"transition_alignment: {a.size} steps where both signals are finite; need at least 4")
    rc = None if c is None else _centred_ranks(c[keep])
    ra, rb = _centred_ranks(a), _centred_ranks(b)
    ea, eb = _residual(ra, rc), _residual(rb, rc)
    r = _correlation(ea, eb)
    rng = np.random.default_rng(seed)
    null = np.array([_correlation(ea, _residual(eb[_within_groups(g, rng)], rc)) for _ in range(shuffles)])
    return {"spearman": r, "raw_spearman": _correlation(ra, rb), "shuffled_mean": float(null.mean()),
            "shuffled_sd": float(null.std(ddof=1)), "p_value": float((1 + (null >= r).sum()) / (1 + shuffles)),
            "steps": int(a.size)}


STROKE_STATISTICS = ("step_length", "turning", "pen_lifts")


def stroke_statistics(drawing) -> dict[str, float]:
    """Pen statistics of a stroke-3 drawing (T, 3: dx, dy, pen lifted after this point): the mean step
    length, the mean absolute turning angle between consecutive pen-down steps (radians), and the
    share of steps that lift the pen."""
    d = np.asarray(drawing, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != 3 or len(d) < 3:
        raise VrnnError(f"drawing: shape {d.shape}; need stroke-3 rows (T >= 3, 3: dx, dy, pen)")
    length = np.hypot(d[:, 0], d[:, 1])
    angle = np.arctan2(d[:, 1], d[:, 0])
    same_stroke = (d[:-1, 2] < 0.5) & (length[:-1] > 0) & (length[1:] > 0)
    turn = np.abs((np.diff(angle) + np.pi) % (2 * np.pi) - np.pi)[same_stroke]
    return {"step_length": float(length.mean()), "turning": float(turn.mean()) if turn.size else 0.0,
            "pen_lifts": float((d[:, 2] > 0.5).mean())}


def style_drift(drawing) -> float:
    """How much a drawing's style changes from its first half to its second: the largest change of a
    :func:`stroke_statistics` value between the halves, in units of that statistic over the whole
    drawing (0: the halves are alike; 1: a statistic changed by as much as its whole-drawing value).
    Compare a model's samples with training drawings of the same length."""
    d = np.asarray(drawing, dtype=np.float64)
    if d.ndim != 2 or len(d) < 6:
        raise VrnnError(f"drawing: shape {d.shape}; style drift needs at least 6 stroke-3 rows")
    half = len(d) // 2
    first, second, whole = (stroke_statistics(p) for p in (d[:half], d[half:], d))
    scale = {k: max(abs(whole[k]), 1e-9) for k in STROKE_STATISTICS}
    return float(max(abs(first[k] - second[k]) / scale[k] for k in STROKE_STATISTICS))
