"""What ``vrnn bench`` measures: seconds of a training step, its FLOPs, a matrix product's rate, peak memory."""
from __future__ import annotations

import copy
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ...inference.objectives import sequence_iw_log_likelihood, training_loss
from .configs import CONFIGS, BenchConfig, make_batches, make_model
from .reference import ReferenceVRNN


class Trainer:
    """One implementation's training step: loss, backward, clipping and Adam, as ``vrnn train`` does."""

    def __init__(self, name: str, module: torch.nn.Module, loss_fn, device):
        self.name, self.module, self.loss_fn = name, module, loss_fn
        self.opt = torch.optim.Adam(module.parameters(), lr=1e-4)
        self.noise = torch.Generator(device=device).manual_seed(0)

    def step(self, x: torch.Tensor) -> float:
        loss = self.loss_fn(x, self.noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 10.0)
        self.opt.step()
        return loss.item()  # the trainer's finiteness check; also synchronises a GPU


def trainers(bc: BenchConfig, device) -> list[Trainer]:
    """The reference (where there is one) and the library, from the same initial parameters."""
    lib = make_model(bc, device)
    out = []
    if bc.reference:
        ref = ReferenceVRNN(copy.deepcopy(lib))
        out.append(Trainer("reference", ref, lambda x, g: ref.loss(x, generator=g), device))
    out.append(Trainer("library", lib, lambda x, g: training_loss(lib(x, generator=g), 1.0)[0], device))
    return out


def eval_fn(model, k: int):
    """One batch's K-sample importance-sampled evaluation (the K samples as one K·B batch)."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
    model.eval()

    @torch.no_grad()
    def fn(x):
        return sequence_iw_log_likelihood(model(x, samples=k, generator=gen)).sum().item()

    return fn


# ---- time ----------------------------------------------------------------------------
def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seconds(fn, device) -> float:
    """Wall-clock seconds of ``fn()``, the device's queued work included."""
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def median_seconds(fn, device, repeats: int) -> float:
    return statistics.median(seconds(fn, device) for _ in range(repeats))


def matmul_rate(device, n: int | None = None, reps: int = 3) -> float:
    """GFLOP/s of an n×n float32 matrix product (median of ``reps``)."""
    n = n or (8192 if torch.device(device).type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    return 2 * n ** 3 / median_seconds(lambda: a @ b, device, reps) / 1e9


def count_flops(tr: Trainer, x: torch.Tensor) -> int:
    """FLOPs of one training step (forward + backward), counted on a real step."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = tr.loss_fn(x, torch.Generator(device=x.device).manual_seed(1))
        loss.backward()
    tr.opt.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def time_training(trs: list[Trainer], batches, repeats: int, steps: int, device) -> dict[str, list[float]]:
    """Seconds per step of each trainer, alternating: repeat r runs ``steps`` steps of each in turn."""
    for tr in trs:  # warm-up
        tr.step(batches[0])
    per_step: dict[str, list[float]] = {tr.name: [] for tr in trs}
    for r in range(repeats):
        order = trs if r % 2 == 0 else trs[::-1]  # neither always goes first
        for tr in order:
            per_step[tr.name].append(seconds(lambda: _train(tr, batches, steps), device) / steps)
    return per_step


def _train(tr: Trainer, batches, steps: int) -> None:
    for i in range(steps):
        tr.step(batches[i % len(batches)])


# ---- memory --------------------------------------------------------------------------
def probe_memory(spec: dict) -> float:
    """MiB of extra peak memory over one training step (or one IS evaluation batch) in this process.

    ``spec``: ``config`` (a name in :data:`CONFIGS`), ``device``, ``what`` (``reference``, ``library``
    or ``eval``), optionally ``T`` (sequence length) and ``K`` (importance samples, for ``eval``).
    """
    bc = CONFIGS[spec["config"]]
    device = spec["device"]
    steps = spec.get("T") or bc.steps
    if spec["what"] == "eval":
        fn = eval_fn(make_model(bc, device), spec["K"])
    else:
        fn = trainers(bc, device)[0 if spec["what"] == "reference" else -1].step
    tiny = make_batches(bc, device, 1, steps=2)[0][:1]
    x = make_batches(bc, device, 1, steps=steps)[0]
    fn(tiny)  # allocates gradients and optimiser state at negligible activation cost
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn(x)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2 ** 20
    before = _peak_rss_kib()
    fn(x)
    return (_peak_rss_kib() - before) / 1024


def _peak_rss_kib() -> int:
    """Peak resident set size of this process in KiB.

    Linux's VmHWM belongs to the process image and starts afresh at exec; ``ru_maxrss``
    is carried over from the parent across exec, so in a child of a large process it
    would report the parent's peak and hide the child's growth.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def peak_memory(config: str, device, what: str, **sizes) -> float:
    """:func:`probe_memory` in a fresh process on CPU, so one measurement's high-water mark never hides
    another's (on GPU the peak statistics are reset instead); ``sizes``: ``T=`` or ``K=``."""
    spec = {"config": config, "device": str(device), "what": what, **sizes}
    if torch.device(device).type == "cuda":
        return probe_memory(spec)
    code = ("import json,sys; from vrnn.lab.speed.measure import probe_memory; "
            "print(json.dumps(probe_memory(json.loads(sys.argv[1]))))")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"memory probe {spec} failed:\n{res.stderr[-2000:]}")
    return float(res.stdout.strip().splitlines()[-1])
