"""The package layout stays honest: no import cycles, and every module imports on its own, in any order."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vrnn"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def imports_of(name: str, path: Path) -> set[str]:
    """The library modules that importing ``name`` runs first.

    Every import counts, at module level or inside a function (both can close a cycle at run
    time), and importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, unless ``name`` itself
    lives in ``a.b`` (then that package is already being imported: the usual re-export of a
    package's own modules by its ``__init__`` is not a cycle).
    """
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from . import x` imports the module x
    runs = set()
    for m in found:
        parts = m.split(".")
        for i in range(1, len(parts) + 1):
            anc = ".".join(parts[:i])
            if anc == m or not (name == anc or name.startswith(anc + ".")):
                runs.add(anc)
    return {m for m in runs if m in MODULES and m != name}


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in MODULES.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    edges = graph()
    assert len(edges) > 30 and "vrnn.models.base" in edges["vrnn.models.rnn"]  # the walk saw the package
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_every_module_imports_in_any_order(order):
    names = sorted(MODULES, reverse=order == "reverse")
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    res = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_imports_alone(name):
    res = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
