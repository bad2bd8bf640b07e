"""Multi-process training (DistributedDataParallel, gloo, 2 CPU processes).

The check against one process is exact only for a deterministic objective: each rank
draws its own posterior noise, so a VRNN trained on N ranks sees different noise than
one trained in one process. The RNN baseline has no latent noise, so 2 ranks must take
the same steps as one process on the same global batches; the VRNN run checks that the
ranks stay identical and that their noise streams differ.
"""
import json
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vrnn.checkpoint import load_checkpoint
from vrnn.training.config import config_from_dict
from vrnn.data import SequenceData
from vrnn.training.distributed import Distributed
from vrnn.training.schedules import epoch_batches
from vrnn.training.trainer import fit

WORLD = 2


def _data() -> SequenceData:
    rng = np.random.default_rng(0)
    split = lambda n: [rng.normal(size=(int(rng.integers(3, 15)), 3)).astype(np.float32) for _ in range(n)]  # noqa: E731
    return SequenceData({"train": split(13), "valid": split(4), "test": split(2)}, {"name": "toy"})


def _cfg(kind: str, max_steps: int):
    model = {"kind": kind, "hidden": 8, "width": 8, "layers": 1, "emission": {"name": "gauss"}}
    if kind == "vrnn":
        model["z_dim"] = 2
    train = {"batch_size": 5, "max_steps": max_steps, "eval_every": 3, "lr": 1e-2, "eval_batch_size": 8,
             "device": "cpu"}
    return config_from_dict({"model": model, "train": train})


def _worker(rank: int, port: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        data = _data()
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
