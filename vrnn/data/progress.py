"""How far a recipe has got (``vrnn prepare`` reads hundreds of files, for a minute or more).

:func:`tracked` wraps a recipe's loop over its files. It is silent unless a command switches it on with
:func:`showing` (a recipe called from Python prints nothing): then a live bar on a terminal (tqdm, as
:class:`vrnn.training.watch.Progress` shows training), else one plain line per tenth of the work, for a
log file or a job scheduler.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO, TypeVar

T = TypeVar("T")
_STREAM: ContextVar[TextIO | None] = ContextVar("vrnn_data_progress", default=None)


@contextmanager
def showing(stream: TextIO) -> Iterator[None]:
    """Within the ``with`` block, :func:`tracked` loops show their progress on ``stream`` (stderr)."""
    token = _STREAM.set(stream)
    try:
        yield
    finally:
        _STREAM.reset(token)


def tracked(items: Sequence[T], what: str, unit: str = "file") -> Iterator[T]:
    """The ``items``, one by one, with how many are done shown as ``what`` (e.g. ``chorales: reading scores``)
    while :func:`showing` is on."""
    stream = _STREAM.get()
    if stream is None:
        yield from items
    elif stream.isatty():
        from tqdm import tqdm

        with tqdm(total=len(items), desc=what, unit=unit, file=stream, dynamic_ncols=True) as bar:
            for item in items:
                yield item
                bar.update(1)
    else:
        yield from _lines(items, what, unit, stream)


def _lines(items: Sequence[T], what: str, unit: str, stream: TextIO) -> Iterator[T]:
    """:func:`tracked` off a terminal: a line at the start, then one each time another tenth is done."""
    n, shown, t0 = len(items), 0, time.perf_counter()
    print(f"{what}: {n} {unit}s", file=stream, flush=True)
    for i, item in enumerate(items, 1):
        yield item
        if i * 10 // n > shown:
            shown = i * 10 // n
            print(f"{what}: {i}/{n} {unit}s ({100 * i // n} %, {time.perf_counter() - t0:.0f} s)", file=stream,
                  flush=True)
