"""The one seeded train/valid/test split, used for pieces, files, speakers, drawings and forms."""
from __future__ import annotations

from typing import TypeVar

import numpy as np

from ..errors import VrnnError

T = TypeVar("T")


def seeded_split(items: list[T], seed: int, fractions: tuple[float, float, float],
                 min_each: int = 0) -> dict[str, list[T]]:
    """A fixed split of whole ``items`` by a permutation drawn from ``seed``.

    The valid and test splits get ``round(fraction · n)`` items (at least ``min_each``), the
    training split the rest; each split keeps the items' input order.
    """
    n = len(items)
    n_va = max(min_each, int(round(fractions[1] * n)))
    n_te = max(min_each, int(round(fractions[2] * n)))
    if n - n_va - n_te < max(min_each, 1):
        raise VrnnError(f"only {n} items to split into train/valid/test {fractions}; need at least "
                        f"{max(min_each, 1) + n_va + n_te}")
    order = np.random.default_rng(seed).permutation(n)
    n_tr = n - n_va - n_te
    idx = {"train": order[:n_tr], "valid": order[n_tr:n_tr + n_va], "test": order[n_tr + n_va:]}
    return {s: [items[i] for i in sorted(ix)] for s, ix in idx.items()}
