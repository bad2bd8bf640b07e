"""Settings files: TOML (or JSON) tables read into frozen dataclasses, with ``--set`` overrides.

The generic machinery every section of a config uses; each section's dataclass lives with
the code it configures (:class:`vrnn.models.base.ModelConfig`, :class:`vrnn.data.DataConfig`,
:class:`vrnn.training.options.TrainConfig`), and :mod:`vrnn.training.config` puts them together.

Types are checked as a table is read (:func:`build_dataclass`); values by :class:`Checked`:
each settings dataclass lists the values its fields take in a ``CHECKS`` table, e.g.
``{"batch_size": at_least(1), "ema": in_range(0, 1)}``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from .errors import VrnnError, numpy_scalar, shown, with_article


def build_dataclass(cls, raw: Any, where: str, section: str):
    """Construct dataclass ``cls`` (``[section]`` of the file ``where``) from a dict, rejecting unknown
    keys and values of the wrong type by name. Values are checked by :meth:`Checked.check`."""
    if not isinstance(raw, dict):
        raise VrnnError(f"{where}: {section} must be a table of settings, not {raw!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise VrnnError(f"{where}: unknown setting {section}.{unknown[0]}; choose from {sorted(known)}")
    missing = [name for name in getattr(cls, "REQUIRED", ()) if name not in raw]
    if missing:
        raise VrnnError(f"{where}: missing setting {section}.{missing[0]}; add it to [{section}]")
    kwargs = {}
    for name, value in raw.items():
        f = known[name]
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            kwargs[name] = build_dataclass(f.default_factory, value, where, f"{section}.{name}")
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs[name] = _coerce(value, default, f"{where}: {section}.{name}")
    return cls(**kwargs)


@dataclass(frozen=True)
class Check:
    """What values a setting takes: ``ok(value)``, described to the user as ``need``."""

    ok: Callable[[Any], bool]
    need: str

    def holds(self, value) -> bool:
        try:
            return bool(self.ok(value))
        except TypeError:  # e.g. None from a JSON config
            return False


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def at_least(lo: float, note: str = "") -> Check:
    return Check(lambda v: _finite(v) and v >= lo, f"a number >= {lo}{note}")


def above(lo: float, note: str = "") -> Check:
    return Check(lambda v: _finite(v) and v > lo, f"a number > {lo}{note}")


def in_range(lo: float, hi: float, closed: bool = False, note: str = "") -> Check:
    """``lo <= v < hi`` (``closed``: ``lo <= v <= hi``)."""
    return Check(lambda v: _finite(v) and lo <= v and (v <= hi if closed else v < hi),
                 f"a number in [{lo}, {hi}{']' if closed else ')'}{note}")


def one_of(choices: Iterable[str]) -> Check:
    choices = tuple(choices)
    return Check(lambda v: v in choices, f"one of {', '.join(choices)}")


def matches(pattern: str, need: str) -> Check:
    return Check(lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None, need)


POSITIVE = at_least(1)  # sizes and counts
PROBABILITY = in_range(0, 1)  # dropout probabilities, decays


class Checked:
    """A settings dataclass whose ``CHECKS`` table says which values its fields take.

    ``SECTION`` is how a config names the table (``train``, ``model.emission``); a key of
    ``CHECKS`` may reach into a nested table (``"emission.name"``). Nested ``Checked`` tables are
    checked too, so checking a section checks everything under it.
    """

    SECTION: ClassVar[str] = ""
    CHECKS: ClassVar[dict[str, Check]] = {}
    REQUIRED: ClassVar[tuple[str, ...]] = ()  # fields a table must give (checked by build_dataclass)

    def check(self, where: str = "config") -> None:
        """Raise one VrnnError naming ``where``, the setting and the values it takes, for the first
        setting outside its range."""
        for name, rule in self.CHECKS.items():
            value = functools.reduce(getattr, name.split("."), self)
            if not rule.holds(value):
                key = f"{self.SECTION}.{name}" if self.SECTION else name
                raise VrnnError(f"{where}: {key} is {shown(value)}; set it to {rule.need}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Checked):
                value.check(where)


def _coerce(value, default, where):
    if numpy_scalar(value):  # a number from numpy, given in Python
        value = value.item()
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, tuple):
        if isinstance(value, (list, tuple)):
            return tuple(value)
    else:
        return value
    raise VrnnError(f"{where}: expected {with_article(type(default).__name__)}, got {shown(value)}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 0.0003); values are TOML literals or bare strings."""
    if "=" not in text:
        raise VrnnError(f"--set {text!r}: expected section.key=value, e.g. --set train.lr=3e-4")
    key, value = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if len(path) < 2:
        raise VrnnError(f"--set {text!r}: the key needs a section, e.g. model.{key.strip()}={value}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return path, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    raw = json.loads(json.dumps(raw))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for p in path[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise VrnnError(f"--set {text!r}: {p} is not a section")
        node[path[-1]] = value
    return raw


def read_config_file(path: str | Path) -> dict:
    from .io import check_readable

    path = check_readable(path, "--config", "a config file (.toml)", "pass --config with an existing .toml file "
                                                                    "(see configs/)")
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VrnnError(f"{path}: not a valid config file ({e}); fix the syntax") from None
