"""Pictures of pen-stroke sequences: one drawing, or a grid of them (VRNN paper, Fig. 4).

Drawings are stroke-3 arrays (T, 3) of (Δx, Δy, pen_up) in original units; each pen-down
stroke is one polyline (:func:`vrnn.data.strokes.stroke3_to_strokes`), so no line is drawn
across a pen lift. y points down, as in the data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.strokes import stroke3_to_strokes
from .figures import pyplot, save_figure


def draw_strokes(ax, x: np.ndarray, linewidth: float = 1.5, color: str = "black") -> None:
    """One drawing on a matplotlib axis, aspect ratio kept, axes hidden."""
    for line in stroke3_to_strokes(x):
        if len(line) == 1:
            ax.plot(line[:, 0], line[:, 1], ".", color=color, markersize=linewidth * 2)
        else:
            ax.plot(line[:, 0], line[:, 1], "-", color=color, linewidth=linewidth, solid_capstyle="round")
    ax.set_aspect("equal", adjustable="datalim")
    if not ax.yaxis_inverted():
        ax.invert_yaxis()
    ax.set_xticks([]), ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def strokes_grid_png(path: Path, columns: list[tuple[str, list[np.ndarray]]], cell: float = 1.3) -> None:
    """A grid of drawings: one titled column per entry of ``columns`` (title, drawings)."""
    plt = pyplot()
    rows = max(len(d) for _, d in columns)
    fig, axes = plt.subplots(rows, len(columns), figsize=(cell * len(columns), cell * rows), dpi=100, squeeze=False)
    for j, (title, drawings) in enumerate(columns):
        axes[0, j].set_title(title, fontsize=9)
        for i in range(rows):
            ax = axes[i, j]
            if i < len(drawings):
                draw_strokes(ax, drawings[i])
            else:
                ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)


def strokes_png(path: Path, drawings: np.ndarray, title: str = "") -> None:
    """Drawings (n, T, 3) as one PNG: a single drawing, or a near-square grid of them."""
    plt = pyplot()
    n = len(drawings)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(2.5, 1.6 * cols), max(2.5, 1.6 * rows) + 0.3), dpi=100,
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            draw_strokes(ax, drawings[i])
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def write_stroke_samples(paths: dict[str, Path], x: np.ndarray, meta: dict, title: str) -> None:
    """Every sample as one drawing of a PNG grid."""
    strokes_png(paths[".png"], x, title)
