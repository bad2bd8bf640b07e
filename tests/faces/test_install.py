"""The install check (issue 25): a wheel built from this checkout installs in a clean virtual environment
outside it, and a packaged preset trains, evaluates, samples and is compared (`vrnn compare`) from a folder that
is not the checkout.

The slow check is marked ``install`` (``pytest -m install`` runs it alone, ``-m 'not install'`` leaves it
out): it builds a wheel and a venv (about a minute). torch goes in first and pinned to the running version, as the README
says (a CUDA build would come from pytorch.org's index instead); the rest comes from pip's configured indexes.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import write_arrays

REPO = Path(__file__).resolve().parents[2]


def test_every_extra_a_message_names_exists_and_all_holds_every_extra():
    """``pip install 'vrnn[NAME]'`` in any error message names an extra of pyproject.toml; ``all`` is them all."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {m for p in (REPO / "vrnn").rglob("*.py") for m in re.findall(r"vrnn\[(\w+)\]", p.read_text())}
    assert named and named <= set(extras), named - set(extras)
    assert {"audio", "music", "tensorboard", "all", "dev"} <= set(extras)
    assert set(extras["all"]) == {d for k, deps in extras.items() if k not in ("all", "dev") for d in deps}


def sh(*cmd, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin folder, a working folder outside the checkout); the wheel is built from the checkout."""
    tmp = tmp_path_factory.mktemp("install")
    sh(sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist",
       cwd=tmp)
    wheel = next((tmp / "dist").glob("vrnn-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "vrnn/py.typed" in names and "vrnn/presets/vrnn-bernoulli.toml" in names
    shipped = {p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.toml")}
    assert {n.removeprefix("vrnn/presets/") for n in names if n.startswith("vrnn/presets/")} == shipped
    sh(sys.executable, "-m", "venv", tmp / "venv", cwd=tmp)
    bin = tmp / "venv" / "bin"
    sh(bin / "python", "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}", cwd=tmp)
    sh(bin / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp)
    work = tmp / "work"
    work.mkdir()
    return bin, work


@pytest.mark.install
def test_the_wheel_trains_evaluates_samples_and_compares_a_packaged_preset_outside_the_checkout(installed):
    bin, work = installed
    data = write_arrays(work / "rolls.npz", dim=88, binary=True, sizes=(12, 4, 4))
    where = sh(bin / "python", "-c", "import vrnn; print(vrnn.__file__)", cwd=work).stdout.strip()
    assert not Path(where).is_relative_to(REPO), where  # the installed package, not the checkout's
    sh(bin / "vrnn", "train", "--config", "vrnn-bernoulli", "--set", f"data.source={data}", "--set",
       "train.max_steps=20", "--set", "train.eval_every=10", "--set", "train.kl_warmup_epochs=0", "--set",
       "model.hidden=16", "--set", "model.width=16", "--set", "model.z_dim=4", "--out", "run", "--quiet", cwd=work)
    assert {"best.pt", "last.pt", "log.jsonl"} <= {p.name for p in (work / "run").iterdir()}
    out = sh(bin / "vrnn", "eval", "run/best.pt", "--iw-samples", "4", cwd=work).stdout
    assert "log-likelihood (IS, K=4)" in out, out
    wrote = sh(bin / "vrnn", "sample", "run/best.pt", "--steps", "8", "--out", "sample.npy", cwd=work).stdout
    assert wrote.startswith("wrote ") and (work / "sample.npy").is_file(), wrote
    table = sh(bin / "vrnn", "compare", "run", "--test", "--iw-samples", "4", "--plot", "curves.png", cwd=work).stdout
    head, _, row = table.splitlines()[:3]
    assert head.split()[:5] == ["run", "model", "data", "steps", "stopped"] and "test log-lik." in head, table
    assert row.split()[:5] == ["run", "VRNN-bernoulli", "rolls", "20", "max_steps"] and "IS, K=4" in row, table
    assert "wrote curves.png" in table and (work / "curves.png").read_bytes()[:4] == b"\x89PNG", table


@pytest.mark.install
def test_a_missing_preset_is_one_line_naming_the_presets(installed):
    bin, work = installed
    r = subprocess.run([bin / "vrnn", "train", "--config", "no-such-preset", "--out", "r"], cwd=work,
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "no-such-preset" in r.stderr and "srnn-polyphonic" in r.stderr, r.stderr
