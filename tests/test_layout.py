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


def reexporting(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """``edges`` as if every package's ``__init__`` imported all of its modules (the most a re-export can add)."""
    out = {n: set(deps) for n, deps in edges.items()}
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name != "vrnn":
            out[name] |= {m for m in MODULES if m.startswith(name + ".")}
    return out


def test_no_import_cycles_even_if_every_init_re_exported_its_modules():
    cycle = find_cycle(reexporting(graph()))
    assert cycle is None, "import cycle once an __init__ re-exports: " + " -> ".join(cycle)


def room(name: str) -> str:
    """The top-level subpackage (or loose module) of ``vrnn`` that module ``name`` belongs to."""
    return ".".join(name.split(".")[:2])


def package_graph() -> dict[str, set[str]]:
    """The import graph with every module collapsed into its room (:func:`room`); the root ``vrnn/__init__.py``,
    which re-exports the public API from every room, is left out."""
    edges: dict[str, set[str]] = {}
    for name, deps in graph().items():
        if name != "vrnn":
            edges.setdefault(room(name), set()).update(room(d) for d in deps if d != "vrnn" and room(d) != room(name))
    return edges


def test_the_package_graph_collapses_rooms():
    edges = package_graph()
    assert "vrnn.training" in edges and "vrnn.training.trainer" not in edges
    assert "vrnn.models" in edges["vrnn.training"] and "vrnn.training" not in edges["vrnn.training"]


def test_no_import_cycles_between_rooms():
    """The rooms of the package (subpackages and loose modules) form layers: no two import each other,
    however indirectly, so each subpackage's ``__init__`` may re-export what it likes."""
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle between rooms of vrnn: " + " -> ".join(cycle)


MAX_FUNCTION_LINES = 60


def long_functions() -> dict[str, int]:
    """``{"vrnn/x.py:Class.method": lines}`` of every function or method over :data:`MAX_FUNCTION_LINES`
    lines (``end_lineno - lineno + 1``, decorators not counted)."""
    found = {}

    def visit(node: ast.AST, where: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            qual = f"{prefix}{getattr(child, 'name', '')}"
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (lines := child.end_lineno - child.lineno + 1) > MAX_FUNCTION_LINES:
                    found[f"{where}:{qual}"] = lines
                visit(child, where, qual + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, where, qual + ".")
            else:
                visit(child, where, prefix)

    for path in MODULES.values():
        visit(ast.parse(path.read_text()), path.relative_to(PACKAGE.parent).as_posix(), "")
    return found


def test_no_function_over_60_lines():
    over = long_functions()
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines (split them by what they do): {over}"


def test_only_the_models_ask_for_z_dim():
    """``model.has_latents`` is the one question "does this model have latent variables?"; outside
    vrnn/models/ no code compares or tests ``z_dim`` itself."""
    import re

    pattern = re.compile(r"z_dim\s*(==|!=|>|<)|(if|and|or|not)\s+[\w.]*z_dim\b|z_dim\s+(if|else)\b")
    found = [f"{p.relative_to(PACKAGE.parent)}:{i}" for p in MODULES.values() if "models" not in p.parts
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"ask model.has_latents instead: {found}"


def test_the_core_never_imports_the_lab():
    """The lab (paper reproduction: vrnn/lab/) sits beside the library: no module outside it imports it,
    at module level or inside a function, but the command line, which wires the lab's commands in."""
    lab = {m for m in MODULES if m == "vrnn.lab" or m.startswith("vrnn.lab.")}
    assert lab, "no vrnn/lab package"
    offenders = {name: sorted(imports_of(name, path) & lab) for name, path in MODULES.items()
                 if name not in lab and name != "vrnn.cli" and imports_of(name, path) & lab}
    assert not offenders, f"the core imports the lab: {offenders}"


def test_the_root_holds_the_faces_and_the_ground_only():
    """Estimators live in vrnn/inference/, paper reproduction in vrnn/lab/: the root keeps the faces
    (api, cli) and the ground (errors, io, settings, device, hardware, checkpoint)."""
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert loose == ["api", "checkpoint", "cli", "device", "errors", "hardware", "io", "settings"], loose
