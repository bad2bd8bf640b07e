"""matplotlib, imported on first use, and PNG files written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.readers import lowest_pitch
from ..io import atomic_write


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported on first use: no import-time side effects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write a figure as PNG atomically (temporary file + rename) and close it."""
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        pyplot().close(fig)


def draw_roll(ax, roll: np.ndarray, low: int | None, span: tuple[float, float]) -> None:
    """A 0/1 roll (T, K) on ``ax`` over the time ``span`` (left, right): keys up, cropped to the keys played
    with 3 either side, numbered by MIDI pitch when ``low`` (the pitch of column 0) is known, else from 0."""
    rows = np.nonzero(roll.any(0))[0]
    lo, hi = (rows.min(), rows.max()) if len(rows) else (0, roll.shape[1] - 1)
    lo, hi = max(0, lo - 3), min(roll.shape[1] - 1, hi + 3)
    base = 0 if low is None else low
    ax.imshow(roll[:, lo:hi + 1].T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
              extent=(*span, lo + base - 0.5, hi + base + 0.5))
    ax.set_ylabel("key" if low is None else "MIDI pitch")


def draw_frames(ax, x: np.ndarray, span: tuple[float, float], meta: dict) -> None:
    """Frames (T, D) of a data set with metadata ``meta`` on ``ax`` over the time ``span``: 0/1 frames as a
    roll (:func:`draw_roll`; MIDI pitch for piano rolls), one feature as a line, several as an image."""
    T, D = x.shape
    if D > 1 and np.isin(x, (0.0, 1.0)).all():
        draw_roll(ax, x, lowest_pitch(meta, D), span)
    elif D == 1:
        ax.plot(span[0] + (np.arange(T) + 0.5) * (span[1] - span[0]) / T, x[:, 0], color="k", lw=0.8)
        ax.set_ylabel("value")
    else:
        ax.imshow(x.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(*span, -0.5, D - 0.5))
        ax.set_ylabel("feature")
    ax.set_xlim(*span)
