"""``results.json`` on disk: the summaries in one file, each evaluation's per-sequence numbers beside its checkpoint.

An evaluation report carries every test sequence's numbers (``sequences``: ELBO, log-likelihood, KL, length
of each; ``smc_particles[K].sequences``: the particle filter's log p(x) at each K). The claims and tables
need them, but at hundreds of sequences × several estimates × dozens of checkpoints they would make
``results.json`` megabytes. :func:`write_results` therefore moves them to
``checkpoints/<data>/<run>-seed<s>.sequences.json`` (the report names the file in ``sequences_file``) and
:func:`read_results` puts them back, so that ``read_results(folder)`` is exactly the ``results`` that was
written. A results.json with the numbers inline (an older one) reads as it is.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from ...io import atomic_write, dumps_json

SUFFIX = ".sequences.json"


def write_results(folder: Path, results: dict) -> Path:
    """Write ``results`` to ``folder/results.json``, each report's per-sequence numbers to its
    ``sequences_file``; files of checkpoints that are no longer evaluated are removed. Returns results.json."""
    summary = copy.deepcopy(results)
    kept = set()
    for name, reports in summary.get("evaluations", {}).items():
        for key, report in reports.items():
            arrays = {"sequences": report.pop("sequences", None),
                      "smc_particles": {k: v.pop("sequences", None) for k, v in report.get("smc_particles", {}).items()}}
            path = folder / "checkpoints" / name / f"{key}{SUFFIX}"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as tmp:
                tmp.write_text(dumps_json(arrays))
            report["sequences_file"] = path.relative_to(folder).as_posix()
            kept.add(path)
    for stale in (folder / "checkpoints").glob(f"*/*{SUFFIX}") if (folder / "checkpoints").is_dir() else ():
        if stale not in kept:
            stale.unlink()
    out = folder / "results.json"
    with atomic_write(out) as tmp:
        tmp.write_text(dumps_json(summary))
    return out


def read_results(folder: Path) -> dict:
    """``folder/results.json`` with every report's per-sequence numbers put back from its ``sequences_file``;
    a report whose file is missing is left out (it is evaluated again when it is needed)."""
    results = json.loads((folder / "results.json").read_text())
    for reports in results.get("evaluations", {}).values():
        for key in list(reports):
            where = reports[key].pop("sequences_file", None)
            if where is None:
                continue
            if not (folder / where).is_file():
                del reports[key]
                continue
            arrays = json.loads((folder / where).read_text())
            if arrays["sequences"] is not None:
                reports[key]["sequences"] = arrays["sequences"]
            for k, values in arrays["smc_particles"].items():
                if values is not None:
                    reports[key]["smc_particles"][k]["sequences"] = values
    return results
