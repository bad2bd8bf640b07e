"""Multi-process training (DistributedDataParallel, gloo, 2 CPU processes).

The check against one process is exact only for a deterministic objective: each rank
draws its own posterior noise, so a VRNN trained on N ranks sees different noise than
one trained in one process. The RNN baseline has no latent noise, so 2 ranks must take
the same steps as one process on the same global batches; the VRNN run checks that the
ranks stay identical and that their noise streams differ. For the VRNN's objectives (ELBO,
IWAE, FIVO) the learner's loss is given each sequence's own draws (noise and, for the
particle filter, resampling uniforms), so 2 ranks and one process compute the same gradients.
"""
import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vrnn.checkpoint import load_checkpoint
from vrnn.training.config import config_from_dict
from vrnn.data import SequenceData
from vrnn.inference.evaluate import sequence_noise, sequence_uniforms
from vrnn.inference.smc import particle_filter
from vrnn.training.bounds import OBJECTIVES
from vrnn.training.distributed import Distributed
from vrnn.training.learner import Learner
from vrnn.training.schedules import epoch_batches
from vrnn.training.trainer import fit

WORLD = 2
K = 3  # particles of the IWAE and FIVO bounds


def _data() -> SequenceData:
    rng = np.random.default_rng(0)
    split = lambda n: [rng.normal(size=(int(rng.integers(3, 15)), 3)).astype(np.float32) for _ in range(n)]  # noqa: E731
    return SequenceData({"train": split(13), "valid": split(4), "test": split(2)}, {"name": "toy"})


def _cfg(kind: str, max_steps: int, **train):
    model = {"kind": kind, "hidden": 8, "width": 8, "layers": 1, "emission": {"name": "gauss"}}
    if kind == "vrnn":
        model["z_dim"] = 2
    train = {"batch_size": 5, "max_steps": max_steps, "eval_every": 3, "lr": 1e-2, "eval_batch_size": 8,
             "device": "cpu"} | train
    return config_from_dict({"model": model, "train": train})


def _gradients(objective: str, dd: Distributed) -> dict[str, torch.Tensor]:
    """The gradients of the learner's loss on the first global batch, on rank ``dd.rank``'s slice
    (all-reduced by DistributedDataParallel) or, with ``Distributed()``, the whole batch in one process.
    Every sequence's noise and resampling uniforms come from its own stream, keyed by its index."""
    cfg = _cfg("vrnn", 1, objective=objective, particles=K)
    learner = Learner(dataclasses.replace(cfg.model, x_dim=3), cfg.train, dd, torch.device("cpu"))
    train = _data().splits["train"]
    idx = epoch_batches([len(a) for a in train], 5, 0, 0, 4)[0]
    mine = dd.shard(idx)
    x, mask = dd.batch(train, idx, torch.device("cpu"))
    noise = sequence_noise(learner.model, [len(train[i]) for i in idx], [(i,) for i in idx], K, 0, x.device)
    noise = noise.view(K, len(idx), *noise.shape[1:])[:, [idx.index(i) for i in mine]].flatten(0, 1)  # (K·B_r, T, Z)
    draws = {"noise": noise}
    if OBJECTIVES[objective].smc:
        uniforms = sequence_uniforms([len(train[i]) for i in idx], [(i,) for i in idx], 0, x.device)
        draws["uniforms"] = uniforms[[idx.index(i) for i in mine]]
    loss, _, _ = learner.loss(x, mask, **draws)
    (loss * dd.world).backward()  # as Learner.train_step: DDP averages the ranks' gradients
    return {name: p.grad.clone() for name, p in learner.model.named_parameters()}


def _worker(rank: int, port: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        for objective in OBJECTIVES:
            torch.save(_gradients(objective, Distributed(rank, WORLD)), f"{tmp}/grad-{objective}-rank{rank}.pt")
        data = _data()
        model = fit(_cfg("vrnn", 3, objective="fivo", particles=K), f"{tmp}/fivo", progress=False, data=data).model
        torch.save(model.state_dict(), f"{tmp}/fivo-rank{rank}.pt")
        fit(_cfg("rnn", 3), f"{tmp}/rnn", progress=False, data=data)  # stop after 3 steps ...
        model = fit(_cfg("rnn", 6), f"{tmp}/rnn", resume=True, progress=False, data=data).model  # ... and resume
        torch.save(model.state_dict(), f"{tmp}/rnn-rank{rank}.pt")
        model = fit(_cfg("vrnn", 3), f"{tmp}/vrnn", progress=False, data=data).model
        torch.save(model.state_dict(), f"{tmp}/vrnn-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(tmp)), nprocs=WORLD, join=True)
    return tmp


def test_the_test_needs_weighting_by_real_steps():
    """The shards of a global batch hold different numbers of real steps, so a plain average
    of per-rank per-step losses would differ from the one-process loss."""
    data = _data()
    lengths = [len(a) for a in data.splits["train"]]
    first = epoch_batches(lengths, 5, 0, 0, 4)[0]
    steps = [sum(lengths[i] for i in Distributed(r, WORLD).shard(first)) for r in range(WORLD)]
    assert steps[0] != steps[1]


def test_two_ranks_match_one_process_on_the_same_global_batches(ddp_run, tmp_path):
    ranks = [torch.load(ddp_run / f"rnn-rank{r}.pt") for r in range(WORLD)]
    single = fit(_cfg("rnn", 6), tmp_path / "single", progress=False, data=_data()).model.state_dict()
    for name, p in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between ranks"
        torch.testing.assert_close(ranks[0][name], p, rtol=1e-4, atol=1e-5, msg=f"{name}: 2 ranks != 1 process")
    # the checkpoint holds the plain model's parameters (no DistributedDataParallel wrapper names)
    assert set(load_checkpoint(ddp_run / "rnn" / "best.pt")["model"]) == set(single)


def test_rank_zero_alone_logs_and_checkpoints_and_resume_continues(ddp_run):
    steps = [json.loads(line)["step"] for line in open(ddp_run / "rnn" / "log.jsonl")]
    assert steps == [3, 6]  # one writer; the resumed run continues the log
    ckpt = load_checkpoint(ddp_run / "rnn" / "last.pt")
    assert ckpt["step"] == 6 and ckpt["world_size"] == WORLD and len(ckpt["rng_ranks"]) == WORLD


def test_vrnn_ranks_stay_identical_with_their_own_noise(ddp_run):
    ranks = [torch.load(ddp_run / f"vrnn-rank{r}.pt") for r in range(WORLD)]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between ranks"
    rngs = load_checkpoint(ddp_run / "vrnn" / "last.pt")["rng_ranks"]
    assert not torch.equal(rngs[0], rngs[1])  # each rank draws its own posterior noise


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_two_ranks_give_one_process_gradients_for_every_objective(ddp_run, objective):
    """Every objective goes through DistributedDataParallel's forward, the particle filter (FIVO) too:
    on the same draws, the all-reduced gradients of 2 ranks are those of one process on the whole batch."""
    ranks = [torch.load(ddp_run / f"grad-{objective}-rank{r}.pt") for r in range(WORLD)]
    single = _gradients(objective, Distributed())
    assert set(single) == set(ranks[0])
    for name, g in single.items():
        assert g.abs().sum() > 0, f"{name}: no gradient"
        torch.testing.assert_close(ranks[0][name], ranks[1][name], msg=f"{name} differs between ranks")
        torch.testing.assert_close(ranks[0][name], g, rtol=1e-4, atol=1e-6, msg=f"{name}: 2 ranks != 1 process")


def test_the_fivo_check_resamples():
    """The batch of the gradient check resamples its particles: the check covers the filter's resampling."""
    cfg = _cfg("vrnn", 1, objective="fivo", particles=K)
    learner = Learner(dataclasses.replace(cfg.model, x_dim=3), cfg.train, Distributed(), torch.device("cpu"))
    train = _data().splits["train"]
    idx = epoch_batches([len(a) for a in train], 5, 0, 0, 4)[0]
    x, mask = Distributed().batch(train, idx, torch.device("cpu"))
    lengths, keys = [len(train[i]) for i in idx], [(i,) for i in idx]
    res = particle_filter(learner.model, x, mask, K, noise=sequence_noise(learner.model, lengths, keys, K, 0, x.device),
                          uniforms=sequence_uniforms(lengths, keys, 0, x.device))
    assert res.resampled.any()


def test_fivo_trains_on_two_ranks(ddp_run):
    ranks = [torch.load(ddp_run / f"fivo-rank{r}.pt") for r in range(WORLD)]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between ranks"
    (record,) = [json.loads(line) for line in open(ddp_run / "fivo" / "log.jsonl")]
    assert record["step"] == 3 and record["watched"] == f"fivo (K = {K})" and "train_bound_per_step" in record


def test_vrnn_train_with_fivo_under_torchrun(tmp_path, real_npz):
    """`torchrun --nproc_per_node 2 -m vrnn train` with train.objective=fivo, as a user runs it (gloo, CPU)."""
    config = tmp_path / "fivo.toml"
    config.write_text('[model]\nkind = "vrnn"\nhidden = 8\nwidth = 8\nlayers = 1\nz_dim = 2\n'
                      'emission = {name = "gauss"}\n'
                      f'[data]\nsource = "{real_npz.as_posix()}"\n'
                      f'[train]\nbatch_size = 5\nmax_steps = 4\neval_every = 2\nobjective = "fivo"\nparticles = {K}\n'
                      'device = "cpu"\n')
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
                          "-m", "vrnn", "train", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"],
                         capture_output=True, text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"best validation fivo (K = {K})" in run.stdout and run.stdout.count("best validation") == 1  # rank 0 only
    steps = [json.loads(line)["step"] for line in open(tmp_path / "run" / "log.jsonl")]
    assert steps == [2, 4] and load_checkpoint(tmp_path / "run" / "last.pt")["world_size"] == WORLD


@pytest.mark.parametrize("given", [{"WORLD_SIZE": "2"}, {"WORLD_SIZE": "2", "RANK": "0"}, {"WORLD_SIZE": "two"}])
def test_world_size_without_the_rest_of_torchruns_variables_is_one_line(tmp_path, real_npz, capsys, monkeypatch,
                                                                        given):
    from conftest import one_error_line
    from vrnn.cli import main

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    code = main(["train", "--config", "configs/vrnn-gauss.toml", "--set", f"data.source={real_npz}",
                 "--out", str(tmp_path / "run"), "--quiet"])
    one_error_line(code, capsys.readouterr().err, f"WORLD_SIZE={given['WORLD_SIZE']}", "torchrun",
                   "MASTER_ADDR", "MASTER_PORT")
    assert not (tmp_path / "run").exists()
