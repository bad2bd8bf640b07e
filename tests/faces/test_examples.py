"""examples/: a model written outside the library (STORN, examples/storn.py) as one step, trained,
evaluated (ELBO, IS, SMC), trained with FIVO and sampled from the command line and from Python with no
change to the library — as the README's "Add your own model" walks through."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
VRNN = Path(sys.executable).with_name("vrnn")  # the console script: the working directory is not on sys.path
TINY = ["--set", "model.hidden=12", "--set", "model.z_dim=3", "--set", "train.max_steps=12",
        "--set", "train.eval_every=6", "--set", "train.batch_size=8", "--quiet"]


def vrnn(*args):
    p = subprocess.run([str(VRNN), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_storn_from_the_command_line(tmp_path, binary_npz):
    data = ["--set", f"data.source={binary_npz}"]
    vrnn("train", "--config", "examples/storn.toml", *data, *TINY, "--out", tmp_path / "elbo")
    best = tmp_path / "elbo" / "best.pt"
    report = json.loads(vrnn("eval", best, "--estimator", "smc", "--iw-samples", "8", "--json"))
    assert report["model"] == "STORN-bernoulli" and report["log_likelihood_method"] == "importance_sampling"
    elbo, iw, smc = (report[k]["per_sequence"] for k in ("elbo", "log_likelihood", "log_likelihood_smc"))
    assert np.isfinite([elbo, iw, smc]).all() and elbo < iw  # the IS estimate bounds the ELBO from above
    vrnn("train", "--config", "examples/storn.toml", *data, *TINY, "--set", "train.objective=fivo",
         "--set", "train.particles=4", "--out", tmp_path / "fivo")
    log = [json.loads(line) for line in (tmp_path / "fivo" / "log.jsonl").read_text().splitlines()]
    assert log and all("train_bound_per_step" in r for r in log)  # the FIVO bound was trained
    vrnn("sample", tmp_path / "fivo" / "best.pt", "--steps", "9", "--num", "2", "--out", tmp_path / "s.npy")
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (2, 9, 5) and set(np.unique(x)) <= {0.0, 1.0}


def test_storn_from_python(tmp_path, binary_npz, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from examples.storn import STORN
    from vrnn.api import evaluate_checkpoint, sample_checkpoint
    from vrnn.training.config import load_config
    from vrnn.training.trainer import fit

    cfg = load_config(ROOT / "examples" / "storn.toml", [f"data.source={binary_npz}", "model.hidden=12",
                                                         "train.max_steps=6", "train.eval_every=3"])
    fit(cfg, tmp_path / "run", progress=False)
    report = evaluate_checkpoint(tmp_path / "run" / "best.pt", iw_samples=4, estimator="smc")
    assert np.isfinite(report["log_likelihood_smc"]["per_sequence"])
    written = sample_checkpoint(tmp_path / "run" / "best.pt", steps=5, out=tmp_path / "s.npy", n=3)
    assert np.load(written[0]).shape == (3, 5, 5)
    assert STORN.config_class().kind == "examples.storn:STORN"


def test_an_unimportable_model_kind_is_one_clean_line(tmp_path):
    from vrnn.training.config import config_from_dict
    from vrnn.errors import VrnnError

    with pytest.raises(VrnnError, match="cannot import nowhere_at_all"):
        config_from_dict({"model": {"kind": "nowhere_at_all:Model"}})
    with pytest.raises(VrnnError, match="no SequenceModel subclass 'Nope'"):
        config_from_dict({"model": {"kind": "vrnn.models:Nope"}})


def test_the_readme_add_your_own_model_runs_as_written(tmp_path):
    """The README's "Add your own model" commands, run as written from a folder that holds examples/ and
    the user's my-series.npz (real-valued frames, as the README's own-data section writes): STORN trains to
    its early stop, evaluates with IS and SMC, trains with FIVO and samples."""
    from conftest import write_arrays

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Add your own model", 1)[1].split("\n## ", 1)[0]
    script = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert script.startswith("vrnn train --config examples/storn.toml") and script.count("vrnn ") == 4
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    write_arrays(tmp_path / "my-series.npz", dim=5)
    env = {**os.environ, "PATH": f"{VRNN.parent}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "(early_stopping)" in p.stdout and "log-likelihood (SMC, K=40)" in p.stdout
    assert np.load(tmp_path / "storn.npy").shape == (4, 64, 5)
