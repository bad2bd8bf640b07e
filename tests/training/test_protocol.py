"""Tests that guard the evaluation protocol (issue 23): each fails when its fault is planted.

* the trainer validates on the valid split, never on test;
* ``seeded_split`` hands out train, valid and test as pinned (valid and test not swapped);
* ``train.clip_norm`` bounds the gradient norm every optimiser step sees;
* ``best.pt`` is copied through a temporary file: a copy that fails halfway leaves the previous one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from conftest import random_sequences, tiny_config
from vrnn.api import evaluate_checkpoint
from vrnn.checkpoint import copy_checkpoint, load_checkpoint, save_checkpoint
from vrnn.data.splits import seeded_split
from vrnn.errors import VrnnError
from vrnn.io import tmp_name
from vrnn.training.trainer import fit


def _write_npz(path: Path, splits: dict[str, list[np.ndarray]]) -> Path:
    arrays = {}
    for split, seqs in splits.items():
        arrays[split] = np.concatenate(seqs)
        arrays[f"{split}_lengths"] = np.array([len(s) for s in seqs])
    np.savez(path, **arrays)
    return path


def test_the_trainer_validates_on_the_valid_split_and_never_on_test(tmp_path):
    """Valid looks like train, test is shifted far away: the logged validation ELBO is the valid split's
    score of the logged weights (an RNN's ELBO is exact, so the two agree to rounding) and far from test's."""
    data = _write_npz(tmp_path / "shifted.npz", {
        "train": random_sequences(16, 3, seed=0), "valid": random_sequences(6, 3, seed=1),
        "test": [s + 40.0 for s in random_sequences(6, 3, seed=2)]})
    cfg = tiny_config("rnn", None, source=str(data), max_steps=4, eval_every=4, patience=100)
    fit(cfg, tmp_path / "run", progress=False)
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()][-1]
    assert logged["step"] == 4
    score = {split: evaluate_checkpoint(tmp_path / "run" / "last.pt", split=split, iw_samples=1)["elbo"]
             ["per_step_total"] for split in ("valid", "test")}
    assert abs(score["valid"] - score["test"]) > 100  # the splits differ strongly ...
    assert logged["valid_elbo_per_step"] == pytest.approx(score["valid"], rel=1e-5, abs=1e-5)  # ... and valid is used


def test_seeded_split_is_pinned():
    """A regression pin: these exact splits were computed once from ``seeded_split`` (numpy's
    ``default_rng(seed).permutation``) and written here. Every prepared data set's train/valid/test
    depends on them; a change (valid and test swapped, another permutation) must be deliberate and
    re-prepare the data."""
    assert seeded_split(list(range(10)), 0, (0.6, 0.2, 0.2)) == {
        "train": [2, 3, 4, 5, 6, 7], "valid": [0, 9], "test": [1, 8]}
    assert seeded_split(list(range(20)), 7, (0.8, 0.1, 0.1), min_each=1) == {
        "train": [0, 1, 3, 4, 5, 6, 7, 8, 10, 12, 13, 14, 15, 16, 18, 19], "valid": [2, 17], "test": [9, 11]}
    assert seeded_split(list("abcdefghij"), 3, (0.6, 0.2, 0.2)) == {
        "train": ["a", "b", "c", "e", "g", "j"], "valid": ["f", "h"], "test": ["d", "i"]}


def _step_norms(tmp_path: Path, name: str, clip: float) -> list[float]:
    """The gradient norm each optimiser step of a short run sees (a global optimiser pre-step hook)."""
    seen = []

    def hook(opt, args, kwargs):
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    data = _write_npz(tmp_path / "waves.npz", {s: random_sequences(n, 3, seed=i)
                                              for i, (s, n) in enumerate((("train", 16), ("valid", 4), ("test", 4)))})
    cfg = tiny_config("vrnn", source=str(data), max_steps=4, eval_every=4, clip_norm=clip)
    handle = register_optimizer_step_pre_hook(hook)
    try:
        fit(cfg, tmp_path / name, progress=False)
    finally:
        handle.remove()
    assert len(seen) == 4
    return seen


def test_the_optimiser_never_sees_a_gradient_norm_above_clip_norm(tmp_path):
    clip = 1e-3
    unclipped = _step_norms(tmp_path, "free", 0.0)
    assert min(unclipped) > 10 * clip  # without clipping every step's gradient is far above the limit ...
    clipped = _step_norms(tmp_path, "clipped", clip)
    assert max(clipped) <= clip * (1 + 1e-4)  # ... with it, every step sees at most clip_norm
    assert min(clipped) >= clip * (1 - 1e-4)  # (clipped to it, not zeroed)


def _checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    """``best.pt`` of an earlier evaluation and a newer ``last.pt``."""
    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    save_checkpoint(best, {"step": 2, "model": {"w": torch.zeros(1000)}})
    save_checkpoint(last, {"step": 4, "model": {"w": torch.ones(1000)}})
    return best, last


def test_a_best_copy_that_fails_halfway_leaves_the_previous_best_loadable_and_unchanged(tmp_path, monkeypatch):
    best, last = _checkpoints(tmp_path)
    before = best.read_bytes()

    def half_then_full_disk(self, data):
        with open(self, "wb") as f:
            f.write(bytes(memoryview(data)[:len(data) // 2]))
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", half_then_full_disk)
    with pytest.raises((OSError, VrnnError)):  # in-place or atomic, the full disk is reported
        copy_checkpoint(last, best)
    monkeypatch.undo()
    assert best.read_bytes() == before
    assert load_checkpoint(best)["step"] == 2
    assert not tmp_name(best).exists()  # the half-written temporary file is removed
    copy_checkpoint(last, best)
    assert best.read_bytes() == last.read_bytes()


def test_the_best_copy_replaces_the_file_rather_than_writing_into_it(tmp_path):
    """Whichever way the bytes are written, an atomic copy renames a new file over ``best.pt`` (a new inode);
    a copy written into the existing file keeps its inode, and a crash would leave it half written."""
    best, last = _checkpoints(tmp_path)
    inode = os.stat(best).st_ino
    copy_checkpoint(last, best)
    assert os.stat(best).st_ino != inode and best.read_bytes() == last.read_bytes()
