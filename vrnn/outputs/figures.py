"""matplotlib, imported on first use, and PNG files written atomically."""
from __future__ import annotations

from pathlib import Path

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
