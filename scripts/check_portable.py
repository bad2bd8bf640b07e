"""No committed benchmark file holds a path of the machine it was made on.

    python scripts/check_portable.py            # list every absolute path; exit 1 if any
    python scripts/check_portable.py --fix --data-dir ../shared/data

Reads every checkpoint under benchmarks/ (``torch.load(weights_only=True)``), every checkpoint's
.json, every results.json and RESULTS.md. ``--fix`` re-exports each checkpoint that holds an absolute
path with a portable data reference (a prepared name, or ``{data_dir}/...`` inside ``--data-dir``:
:func:`vrnn.checkpoint.export_checkpoint`; the weights, float32, float16 or int8, stay as stored), writes each
run .json's ``data.source`` override as the experiment file names it, and rewrites the paths (only) of each
results.json, whose numbers stay those its RESULTS.md was rendered from.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ABSOLUTE = re.compile(r"^(/|~|[A-Za-z]:[\\/])|/work/|/home/|/root/")
IN_TEXT = re.compile(r"(?<![\w.\])])(/(work|root|home|usr|tmp|Users|mnt|opt|var)/|~/|[A-Za-z]:\\)")


def strings(value, where: str = ""):
    """(where, string) for every string inside nested dicts and lists."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from strings(v, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value


def absolute_paths(path: Path) -> list[str]:
    """``where: value`` for every absolute path in a committed file."""
    if path.suffix == ".pt":
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        found = strings({k: v for k, v in ckpt.items() if k != "model"})
    elif path.suffix == ".json":
        found = strings(json.loads(path.read_text()))
    else:
        return [f"line {i}: {line.strip()[:80]}" for i, line in enumerate(path.read_text().splitlines(), 1)
                if IN_TEXT.search(line)]
    return [f"{where}: {v}" for where, v in found if ABSOLUTE.search(v)]


def committed(root: Path) -> list[Path]:
    bench = root / "benchmarks"
    return sorted([*bench.rglob("*.pt"), *bench.glob("*/checkpoints/**/*.json"), *bench.glob("*/results.json"),
                   *bench.glob("*/RESULTS.md")])


def fix(root: Path, data_dir: Path) -> None:
    from vrnn.checkpoint import export_checkpoint, stored_weights
    from vrnn.io import dumps_json
    from vrnn.lab.experiments.runner import portable_results
    from vrnn.lab.experiments.spec import load_experiment

    for toml in sorted((root / "benchmarks").glob("*/experiment.toml")):
        exp = load_experiment(toml)
        for pt in sorted(exp.folder.glob("checkpoints/*/*.pt")):
            if absolute_paths(pt):
                before = torch.load(pt, weights_only=True)["model"]
                export_checkpoint(pt, pt, weights=stored_weights(pt), bench_dir=data_dir)  # the weights as they are
                after = torch.load(pt, weights_only=True)["model"]
                assert all(before[k].dtype == after[k].dtype and torch.equal(before[k], after[k]) for k in before), pt
                print(f"re-exported {pt.relative_to(root)}")
            info = pt.with_suffix(".json")
            if info.is_file() and absolute_paths(info):
                info.write_text(json.dumps(portable_run(exp, pt.parent.name, json.loads(info.read_text())), indent=1)
                                + "\n")
                print(f"rewrote {info.relative_to(root)}")
        results = exp.folder / "results.json"
        if results.is_file() and absolute_paths(results):  # the paths only: its numbers are those RESULTS.md shows
            old = json.loads(results.read_text())
            new = portable_results(exp, old, data_dir)
            new["runs"] = {d: {k: portable_run(exp, d, r) for k, r in runs.items()} for d, runs in old["runs"].items()}
            results.write_text(dumps_json(new))
            print(f"rewrote {results.relative_to(root)}")


def portable_run(exp, data: str, run: dict) -> dict:
    """A run's .json with its ``data.source`` override as the experiment file writes it."""
    from vrnn.lab.experiments.runner import portable_override

    return run | {"overrides": [portable_override(exp, data) if o.startswith("data.source=") else o
                                for o in run.get("overrides", [])]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fix", action="store_true", help="re-export the checkpoints and rewrite the run .json files")
    p.add_argument("--data-dir", type=Path, help="with --fix: the benchmark data folder the experiments used")
    args = p.parse_args(argv)
    if args.fix:
        if args.data_dir is None:
            p.error("--fix needs --data-dir (the folder the experiments' {data_dir} paths point into)")
        fix(ROOT, args.data_dir)
    bad = {f: found for f in committed(ROOT) if (found := absolute_paths(f))}
    for f, found in bad.items():
        print(f"{f.relative_to(ROOT)}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    print(f"{len(committed(ROOT))} files checked, {len(bad)} hold an absolute path")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
