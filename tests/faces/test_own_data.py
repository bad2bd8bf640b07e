"""Your own data from Python, end to end: ``SequenceData`` from numpy arrays through ``fit``,
``evaluate_checkpoint`` (IS and SMC), ``sample`` and a checkpoint re-loaded in a new process; the
checkpoint holds a portable data reference, never a path of this machine; the README's script runs."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vrnn
from vrnn.api import evaluate_checkpoint, sample_checkpoint
from vrnn.checkpoint import export_checkpoint, load_checkpoint, load_model
from vrnn.cli import main
from vrnn.training.config import config_from_dict
from vrnn.data import SequenceData
from vrnn.data.resolve import arrays_sha256
from vrnn.inference.sampling import sample
from vrnn.training.trainer import fit

from conftest import one_error_line, write_arrays

REPO = Path(__file__).resolve().parents[2]
MAKE_DATA = """
import numpy as np
from vrnn.data import SequenceData
rng = np.random.default_rng(7)
split = lambda n: [rng.standard_normal((int(t), 2)) for t in rng.integers(4, 12, n)]
data = SequenceData.from_arrays(split(16), split(4), split(4), name="noise")
"""
CFG = {"model": {"kind": "vrnn", "hidden": 8, "width": 8, "layers": 1, "z_dim": 2, "emission": {"name": "gauss"}},
       "train": {"max_steps": 4, "eval_every": 2, "batch_size": 8, "eval_batch_size": 8}}


def numpy_data() -> SequenceData:
    scope = {}
    exec(MAKE_DATA, scope)  # the same arrays as the child process builds
    return scope["data"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    data = numpy_data()
    fit(config_from_dict(CFG), folder / "run", data=data, progress=False)
    return folder, data


def test_in_memory_data_through_evaluation_sampling_and_the_particle_filter(run):
    folder, data = run
    ckpt = folder / "run" / "best.pt"
    iw = evaluate_checkpoint(ckpt, data=data, iw_samples=4, batch_size=8)
    smc = evaluate_checkpoint(ckpt, data=data, iw_samples=4, batch_size=8, estimator="smc")
    assert iw["dataset"] == "noise" and iw["num_sequences"] == 4
    assert iw["elbo"]["per_sequence"] <= iw["log_likelihood"]["per_sequence"] + 1e-6  # ELBO <= IS estimate
    assert np.isfinite(smc["log_likelihood_smc"]["per_sequence"])
    model, norm, _ = load_model(ckpt)
    x = sample(model, 6, 3, norm, seed=1)
    assert x.shape == (3, 6, 2) and np.isfinite(x).all()
    [written] = sample_checkpoint(ckpt, 6, folder / "s.npy", n=3, seed=1)
    np.testing.assert_array_equal(np.load(written), x)


def test_the_checkpoint_records_a_portable_reference_to_in_memory_data(run):
    folder, data = run
    ckpt = load_checkpoint(folder / "run" / "best.pt")
    assert ckpt["data_ref"] == {"kind": "in-memory", "source": "in-memory", "name": "noise",
                                "sha256": arrays_sha256(data)}
    assert ckpt["config"]["data"]["source"] == "in-memory" and ckpt["data_meta"]["name"] == "noise"
    fit(config_from_dict(CFG | {"train": CFG["train"] | {"max_steps": 6}}), folder / "run", data=data,
        resume=True, progress=False)  # the same in-memory data: nothing changed
    assert load_checkpoint(folder / "run" / "last.pt")["step"] == 6


def test_a_new_process_samples_and_evaluates_with_the_data_passed_again(run):
    folder, data = run
    ckpt = folder / "run" / "best.pt"
    here = evaluate_checkpoint(ckpt, data=data, iw_samples=4, batch_size=8, estimator="smc")
    child = MAKE_DATA + f"""
import json, vrnn
r = vrnn.evaluate_checkpoint({str(ckpt)!r}, data=data, iw_samples=4, batch_size=8, estimator="smc")
model, norm, _ = vrnn.load_model({str(ckpt)!r})
x = vrnn.sample(model, 6, 3, norm, seed=1).tolist()
print(json.dumps({{"ll": r["log_likelihood_smc"]["per_sequence"], "x": x}}))
"""
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, cwd=folder)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["ll"] == here["log_likelihood_smc"]["per_sequence"]  # a round trip reproduces the numbers exactly
    model, norm, _ = load_model(ckpt)
    np.testing.assert_allclose(np.array(out["x"]), sample(model, 6, 3, norm, seed=1), rtol=1e-6, atol=1e-6)
    no_data = subprocess.run([sys.executable, "-m", "vrnn", "eval", str(ckpt)], capture_output=True, text=True,
                             timeout=300, cwd=folder)
    one_error_line(no_data.returncode, no_data.stderr, "this run was trained on in-memory data", "noise",
                   "pass --data FILE", "data=")
    sampled = subprocess.run([sys.executable, "-m", "vrnn", "sample", str(ckpt), "--steps", "5", "--out",
                              str(folder / "child.npy")], capture_output=True, text=True, timeout=300, cwd=folder)
    assert sampled.returncode == 0, sampled.stderr


def test_a_file_is_referenced_relative_to_the_run_with_its_hash(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_arrays(Path("waves.npz"))
    cfg = config_from_dict({**CFG, "model": CFG["model"] | {"z_dim": 2}, "data": {"source": "waves.npz"}})
    fit(cfg, Path("runs/a"), progress=False)
    ckpt = load_checkpoint("runs/a/best.pt")
    assert ckpt["config"]["data"]["source"] == ckpt["data_ref"]["source"] == "../../waves.npz"
    assert ckpt["data_meta"]["source"] == "../../waves.npz" and len(ckpt["data_ref"]["sha256"]) == 64
    assert evaluate_checkpoint("runs/a/best.pt", iw_samples=2)["dataset"] == "waves"  # found from the checkpoint
    export_checkpoint("runs/a/best.pt", "exported/deeper/a.pt")  # the relative path moves along
    assert load_checkpoint("exported/deeper/a.pt")["data_ref"]["source"] == "../../waves.npz"
    assert main(["train", "--resume", "--out", "runs/a", "--set", "train.max_steps=6", "--quiet"]) == 0
    (Path("elsewhere")).mkdir()
    Path("elsewhere/a.pt").write_bytes(Path("runs/a/best.pt").read_bytes())
    assert main(["eval", "elsewhere/a.pt"]) == 2
    err = capsys.readouterr().err
    assert "../../waves.npz (relative to the checkpoint's folder), not found here; pass --data" in err
    with open("waves.npz", "ab") as f:
        f.write(b"changed")
    assert main(["eval", "runs/a/best.pt"]) == 2
    assert "has changed since the run was trained" in capsys.readouterr().err


def test_the_readme_script_runs_as_written(tmp_path):
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Your own data from Python"):]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "own_data.py").write_text(script)
    env = {**os.environ, "VRNN_DATA_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "own_data.py"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                       env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "this run was trained on in-memory data (sines" in p.stdout
    assert "log-likelihood (SMC, K=8)" in p.stdout
    assert np.load(tmp_path / "runs" / "sines" / "sample.npy").shape == (1, 30, 3)
    assert torch.load(tmp_path / "runs" / "sines" / "best.pt", weights_only=True)["data_ref"]["name"] == "sines"
    assert isinstance(vrnn.SequenceData, type)
