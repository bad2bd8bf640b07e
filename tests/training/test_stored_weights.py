"""Exported checkpoints store their weights in float32, float16 or int8 (one float32 scale per row):
the file shrinks, every weight moves by at most half its row's step, the model evaluates close to the
float32 one, an export of an export keeps the stored weights, and an older vrnn refuses an int8 file
instead of reading raw integers as weights."""
from pathlib import Path

import pytest
import torch

from vrnn.api import evaluate_checkpoint
from vrnn.checkpoint import VERSION, export_checkpoint, load_checkpoint, quantize_weights
from vrnn.errors import VrnnError
from vrnn.training.config import config_from_dict
from vrnn.training.trainer import fit

from conftest import write_arrays

CFG = {"model": {"kind": "vrnn", "hidden": 16, "width": 16, "layers": 1, "z_dim": 3, "emission": {"name": "gauss"}},
       "train": {"max_steps": 12, "eval_every": 6, "batch_size": 8, "eval_batch_size": 8},
       "data": {"source": "waves.npz"}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    write_arrays(folder / "waves.npz")
    cfg = config_from_dict({**CFG, "data": {"source": str(folder / "waves.npz")}})
    fit(cfg, folder / "run", progress=False)
    for w in ("float32", "float16", "int8"):
        export_checkpoint(folder / "run" / "best.pt", folder / f"{w}.pt", weights=w)
    return folder


def weight_bytes(path: Path) -> int:
    raw = torch.load(path, weights_only=True)
    return sum(v.numel() * v.element_size() for part in ("model", "model_scales")
               for v in raw.get(part, {}).values())


def test_int8_weights_are_within_half_a_step_of_the_float32_ones(exported):
    folder = exported
    full = load_checkpoint(folder / "float32.pt")["model"]
    small = load_checkpoint(folder / "int8.pt")["model"]
    raw = torch.load(folder / "int8.pt", weights_only=True)
    matrices = [k for k, v in full.items() if v.dim() >= 2]
    assert matrices and all(raw["model"][k].dtype == torch.int8 for k in matrices)
    assert raw["version"] == 2 and small.keys() == full.keys()
    for k in matrices:
        step = full[k].flatten(1).abs().amax(1) / 127
        moved = (small[k] - full[k]).flatten(1).abs().amax(1)
        assert small[k].dtype == torch.float32 and bool((moved <= step / 2 * 1.001 + 1e-12).all()), k
    sizes = {w: weight_bytes(folder / f"{w}.pt") for w in ("float32", "float16", "int8")}
    assert sizes["int8"] < 0.7 * sizes["float16"] < 0.7 * sizes["float32"]


def test_an_int8_export_evaluates_close_to_float32_and_re_exports_unchanged(exported):
    folder = exported
    scores = {w: evaluate_checkpoint(folder / f"{w}.pt", split="valid", iw_samples=2)["elbo"]["per_step_total"]
              for w in ("float32", "int8")}
    assert scores["int8"] != scores["float32"] and abs(scores["int8"] - scores["float32"]) < 0.05 * abs(
        scores["float32"])
    export_checkpoint(folder / "int8.pt", folder / "again.pt", weights="int8")
    first, again = (torch.load(folder / f, weights_only=True) for f in ("int8.pt", "again.pt"))
    assert all(torch.equal(first["model"][k], again["model"][k]) for k in first["model"])
    assert all(torch.equal(first["model_scales"][k], again["model_scales"][k]) for k in first["model_scales"])


def test_an_int8_file_needs_a_vrnn_that_reads_it_and_bad_choices_are_one_line(exported, monkeypatch):
    folder = exported
    monkeypatch.setattr("vrnn.checkpoint.VERSION", 1)  # what a vrnn from before 8-bit weights checks
    with pytest.raises(VrnnError, match="checkpoint version 2 is newer than this vrnn; upgrade vrnn"):
        load_checkpoint(folder / "int8.pt")
    assert load_checkpoint(folder / "float16.pt")["version"] == 1 < VERSION
    with pytest.raises(VrnnError, match="export weights 'int4': choose one of float32, float16, int8"):
        export_checkpoint(folder / "float32.pt", folder / "x.pt", weights="int4")
    assert not Path(folder / "x.pt").exists()


def test_quantize_keeps_vectors_and_an_all_zero_row():
    state = {"w": torch.tensor([[0.0, 0.0], [1.0, -0.5]]), "b": torch.tensor([0.3, 0.1]), "n": torch.tensor(3)}
    q, scales = quantize_weights(state)
    assert q["w"].tolist() == [[0, 0], [127, -64]] and set(scales) == {"w"}
    assert torch.equal(q["b"], state["b"]) and torch.equal(q["n"], state["n"])
