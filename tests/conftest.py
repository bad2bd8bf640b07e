"""Shared fixtures: tiny configs and small data sets written to disk like a user's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vrnn.training.config import Config, config_from_dict

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

MODEL_TABLE = [  # (kind, prior) for every model of issue 2
    ("rnn", None),
    ("vrnn", "conditional"),
    ("vrnn", "independent"),
]
EMISSION_TABLE = ["gauss", "gmm", "bernoulli"]

# The one table of models: name -> model settings; every kind of vrnn.models.MODELS, with the variants
# that change the step (SRNN's Res_q and filter, DMM's filter), and the examples/ model written outside
KINDS = {
    "rnn": {"kind": "rnn", "hidden": 8, "width": 8, "layers": 1},
    "vrnn": {"kind": "vrnn", "hidden": 8, "width": 8, "layers": 1, "z_dim": 2},
    "vrnn-i": {"kind": "vrnn", "hidden": 8, "width": 8, "layers": 1, "z_dim": 2, "prior": "independent"},
    "srnn": {"kind": "srnn", "hidden": 8, "a_hidden": 6, "z_dim": 2, "width": 8, "res_q": False},
    "srnn-resq": {"kind": "srnn", "hidden": 8, "a_hidden": 6, "z_dim": 2, "width": 8, "res_q": True},
    "srnn-filter": {"kind": "srnn", "hidden": 8, "a_hidden": 6, "z_dim": 2, "width": 8, "posterior": "filter"},
    "dmm": {"kind": "dmm", "z_dim": 2, "transition_hidden": 8, "emission_hidden": 8, "rnn_hidden": 8},
    "dmm-filter-lstm": {"kind": "dmm", "z_dim": 2, "transition_hidden": 8, "emission_hidden": 8, "rnn_hidden": 8,
                        "posterior": "filter", "rnn": "lstm"},
    "storn": {"kind": "examples.storn:STORN", "hidden": 8, "z_dim": 2},
}


def build_kind(name: str, emission: str = "gauss", x_dim: int = 3):
    """A model of :data:`KINDS`, seeded."""
    from vrnn.models import build_model

    torch.manual_seed(0)
    raw = {"x_dim": x_dim, "emission": {"name": emission, "components": 2}} | KINDS[name]
    return build_model(config_from_dict({"model": raw}).model)


def tiny_config(kind: str = "vrnn", prior: str | None = "conditional", emission: str = "gauss", x_dim: int = 3,
                source: str = "unused", **train) -> Config:
    model = {"kind": kind, "x_dim": x_dim, "hidden": 16, "width": 16, "layers": 2,
             "emission": {"name": emission, "components": 3}}
    if kind == "vrnn":
        model |= {"z_dim": 4, "prior": prior}
    t = {"batch_size": 8, "max_steps": 6, "eval_every": 3, "lr": 3e-3, "eval_batch_size": 16} | train
    return config_from_dict({"model": model, "data": {"source": source}, "train": t})


def random_sequences(n: int, dim: int, seed: int, binary: bool = False, lo: int = 3, hi: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        T = int(rng.integers(lo, hi))
        if binary:
            seqs.append((rng.random((T, dim)) < 0.3).astype(np.float32))
        else:  # a smooth, learnable signal with noise
            t = np.arange(T)[:, None]
            phase = rng.random(dim) * 6
            seqs.append((np.sin(0.5 * t + phase) * 2 + 5 + 0.3 * rng.standard_normal((T, dim))).astype(np.float32))
    return seqs


def write_arrays(path: Path, dim: int = 3, binary: bool = False, sizes=(24, 8, 8)) -> Path:
    """A user's own .npz: train/valid/test as concatenated steps with *_lengths."""
    arrays = {}
    for i, split in enumerate(("train", "valid", "test")):
        seqs = random_sequences(sizes[i], dim, seed=i, binary=binary)
        arrays[split] = np.concatenate(seqs)
        arrays[f"{split}_lengths"] = np.array([len(s) for s in seqs])
    np.savez(path, **arrays)
    return path


@pytest.fixture
def real_npz(tmp_path) -> Path:
    return write_arrays(tmp_path / "waves.npz")


@pytest.fixture
def binary_npz(tmp_path) -> Path:
    return write_arrays(tmp_path / "rolls.npz", dim=5, binary=True)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (only on developer machines and CI)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # small models: one thread is fastest and keeps results deterministic


def write_boulanger_pickle(path: Path, sizes=(16, 6, 6), seed: int = 0) -> Path:
    """A small piano-roll pickle in the Boulanger-Lewandowski format: pieces of steps of MIDI notes."""
    import pickle

    rng = np.random.default_rng(seed)
    data = {}
    for split, n in zip(("train", "valid", "test"), sizes):
        pieces = []
        for _ in range(n):
            root = int(rng.integers(48, 60))
            pieces.append([tuple(sorted({root + int(i) for i in rng.choice([0, 4, 7, 12], 3)}))
                           for _ in range(int(rng.integers(4, 14)))])
        data[split] = pieces
    path.write_bytes(pickle.dumps(data))
    return path


def write_midi_folder(folder: Path, n: int, steps: int = 4) -> Path:
    """``n`` MIDI files in ``folder`` (created), piece i holding key 30 + i for ``steps`` beats: `vrnn prepare midi`'s
    input."""
    from vrnn.outputs.pianoroll import write_midi

    folder.mkdir(parents=True)
    for i in range(n):
        roll = np.zeros((steps, 88), np.float32)
        roll[:, 30 + i] = 1.0
        write_midi(folder / f"p{i:02d}.mid", roll)
    return folder


@pytest.fixture
def rolls_pickle(tmp_path) -> Path:
    return write_boulanger_pickle(tmp_path / "rolls.pickle")


def tiny_experiment(root: Path, emission: str, experiment: str) -> Path:
    """A repository-like folder for ``vrnn experiment``: configs/rnn.toml and configs/vrnn.toml (tiny models
    with the given emission table, e.g. "name = 'gauss'") and benchmarks/tiny/experiment.toml; its path."""
    (root / "configs").mkdir(parents=True)
    for kind, extra in (("rnn", ""), ("vrnn", "z_dim = 3\n")):
        (root / "configs" / f"{kind}.toml").write_text(
            f"[model]\nkind = '{kind}'\nhidden = 8\nwidth = 8\nlayers = 1\n{extra}emission = {{ {emission} }}\n"
            "[train]\nbatch_size = 4\nmax_steps = 4\neval_every = 2\n")
    path = root / "benchmarks" / "tiny" / "experiment.toml"
    path.parent.mkdir(parents=True)
    path.write_text(experiment)
    return path


def one_error_line(code: int, err: str, *needles) -> str:
    """A command failed as a user mistake: exit 2, no traceback, one line `vrnn: error: ...` naming ``needles``."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("vrnn: error:"), err
    for n in needles:
        assert str(n) in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]
