"""``vrnn bench``: the library's training step against the textbook per-step one, side by side.

In one process and alternating (so both see the same machine load), it trains the
reference implementation of :mod:`vrnn.speed.reference` (one Python iteration per time
step, every head inside the loop) and the library's model, both from the same initial
parameters on the same synthetic batches, and reports for each:

* training steps per second (median over alternating repeats) and the ratio library/reference;
* achieved GFLOP/s: floating-point operations of one training step (forward + backward),
  counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products; elementwise
  work is not counted), times steps per second;
* the fraction of a large square matrix product's rate measured in the same run;
* peak memory of one training step: on CPU the growth of the peak resident set size
  (VmHWM) of a fresh subprocess over one step, after a tiny warm-up step that allocates
  gradients and Adam state (so the figure is activations and temporaries); on GPU the
  growth of ``torch.cuda.max_memory_allocated`` over the step.

It also measures how training time and memory scale with the sequence length T and how
importance-sampled evaluation scales with the number of samples K (the K samples run as
one K·B batch; K separate passes shown for comparison).

The reference is :mod:`vrnn.speed.reference`.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..emissions import EmissionConfig
from ..errors import VrnnError
from ..models import MODELS, build_model
from ..objectives import sequence_iw_log_likelihood, training_loss
from .reference import ReferenceVRNN

@dataclass(frozen=True)
class BenchConfig:
    model: dict  # fields of the model's config class
    batch: int
    steps: int  # sequence length T
    note: str = ""
    reference: bool = True  # a per-step reference exists (VRNN family)
    extra: dict = field(default_factory=dict)


def bench_configs() -> dict[str, BenchConfig]:
    """The measured configurations; SRNN only when the SRNN model is installed."""
    configs = {
        "small": BenchConfig(dict(kind="vrnn", x_dim=200, hidden=256, width=256, layers=4, z_dim=64,
                                  emission=EmissionConfig("gauss")), batch=32, steps=40,
                             note="x 200, LSTM 256, 4-layer MLPs of 256, z 64, Gaussian output, B 32, T 40"),
        "paper": BenchConfig(dict(kind="vrnn", x_dim=200, hidden=2000, width=600, layers=4, z_dim=200,
                                  emission=EmissionConfig("gauss")), batch=64, steps=40,
                             note="x 200, LSTM 2000, 4-layer MLPs of 600, z 200, Gaussian output, B 64, T 40"),
    }
    if "srnn" in MODELS:  # the SRNN paper's polyphonic settings (model defaults); no per-step reference
        configs["srnn-polyphonic"] = BenchConfig(
            dict(kind="srnn", x_dim=88, emission=EmissionConfig("bernoulli")), batch=16, steps=100,
            reference=False,
            note="SRNN smooth + Res_q, GRU 300, z 100, 1-layer nets of 500, Bernoulli output (88 keys), B 16, T 100")
    return configs


def make_model(bc: BenchConfig, device, seed: int = 0):
    cls = MODELS[bc.model["kind"]].config_class
    torch.manual_seed(seed)
    return build_model(cls(**bc.model)).to(device)


def make_batches(bc: BenchConfig, device, n: int = 4, steps: int | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Synthetic data of the configured shape: standard normal, or binary for Bernoulli outputs."""
    g = torch.Generator().manual_seed(seed)
    shape = (bc.batch, steps or bc.steps, bc.model["x_dim"])
    binary = bc.model["emission"].name == "bernoulli"
    out = []
    for _ in range(n):
        x = (torch.rand(shape, generator=g) < 0.1).float() if binary else torch.randn(shape, generator=g)
        out.append(x.to(device))
    return out


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
    lib = make_model(bc, device)
    out = []
    if bc.reference:
        ref = ReferenceVRNN(copy.deepcopy(lib))
        out.append(Trainer("reference", ref, lambda x, g: ref.loss(x, generator=g), device))
    out.append(Trainer("library", lib, lambda x, g: training_loss(lib(x, generator=g), 1.0)[0], device))
    return out


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, n: int | None = None, reps: int = 3) -> float:
    """GFLOP/s of an n×n float32 matrix product (median of ``reps``)."""
    n = n or (8192 if torch.device(device).type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


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
            _sync(device)
            t = time.perf_counter()
            for i in range(steps):
                tr.step(batches[i % len(batches)])
            per_step[tr.name].append((time.perf_counter() - t) / steps)
    return per_step


# ---- memory ------------------------------------------------------------------------
def _probe_memory(spec: dict) -> float:
    """MiB of extra peak memory over one training step (or one IS evaluation batch)."""
    bc = bench_configs()[spec["config"]]
    device = spec["device"]
    steps = spec.get("T") or bc.steps
    if spec["what"] == "eval":
        fn = _eval_fn(make_model(bc, device), spec["K"])
    else:
        tr = trainers(bc, device)[0 if spec["what"] == "reference" else -1]
        fn = tr.step
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


def _eval_fn(model, k: int):
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
    model.eval()

    @torch.no_grad()
    def fn(x):
        return sequence_iw_log_likelihood(model(x, samples=k, generator=gen)).sum().item()

    return fn


def peak_memory(spec: dict) -> float:
    """Run :func:`_probe_memory` in a fresh process, so one measurement's high-water mark never hides another's."""
    if torch.device(spec["device"]).type == "cuda":
        return _probe_memory(spec)
    code = ("import json,sys; from vrnn.speed.bench import _probe_memory; "
            "print(json.dumps(_probe_memory(json.loads(sys.argv[1]))))")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"memory probe {spec} failed:\n{res.stderr[-2000:]}")
    return float(res.stdout.strip().splitlines()[-1])


# ---- the measurements ----------------------------------------------------------------
def bench_config(name: str, bc: BenchConfig, device, repeats: int, steps: int, memory: bool) -> dict:
    trs = trainers(bc, device)
    batches = make_batches(bc, device)
    flops = {tr.name: count_flops(tr, batches[0]) for tr in trs}
    peak = matmul_rate(device)
    per_step = time_training(trs, batches, repeats, steps, device)
    res = {"config": name, "note": bc.note, "matmul_gflops": peak, "impl": {}}
    for tr in trs:
        sec = statistics.median(per_step[tr.name])
        gflops = flops[tr.name] / sec / 1e9
        res["impl"][tr.name] = {
            "steps_per_s": 1 / sec, "s_per_step_all": per_step[tr.name], "gflop_per_step": flops[tr.name] / 1e9,
            "gflops": gflops, "fraction_of_matmul": gflops / peak,
            "peak_mem_mib": peak_memory({"config": name, "device": str(device), "what": tr.name}) if memory else None,
        }
    if "reference" in res["impl"]:
        res["speedup"] = res["impl"]["library"]["steps_per_s"] / res["impl"]["reference"]["steps_per_s"]
    return res


def bench_scaling_T(device, lengths, repeats: int, steps: int, memory: bool) -> list[dict]:
    bc = bench_configs()["small"]
    rows = []
    for T in lengths:
        trs = trainers(bc, device)
        per_step = time_training(trs, make_batches(bc, device, steps=T), repeats, steps, device)
        row = {"T": T}
        for tr in trs:
            sec = statistics.median(per_step[tr.name])
            row[tr.name] = {"s_per_step": sec, "ms_per_time_step": 1e3 * sec / T,
                            "peak_mem_mib": peak_memory({"config": "small", "device": str(device), "what": tr.name,
                                                         "T": T}) if memory else None}
        rows.append(row)
    return rows


def bench_scaling_K(device, samples, repeats: int, memory: bool) -> list[dict]:
    """IS evaluation of one small-config batch: K samples as one K·B batch vs K passes of one sample."""
    bc = bench_configs()["small"]
    model = make_model(bc, device)
    x = make_batches(bc, device, 1)[0]
    rows = []
    for k in samples:
        batched, looped = _eval_fn(model, k), _eval_fn(model, 1)
        batched(x)
        tb, tl = [], []
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            batched(x)
            tb.append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(k):
                looped(x)
            tl.append(time.perf_counter() - t)
        rows.append({"K": k, "s_batched": statistics.median(tb), "s_k_passes": statistics.median(tl),
                     "peak_mem_mib": peak_memory({"config": "small", "device": str(device), "what": "eval",
                                                  "K": k}) if memory else None})
    return rows


def bench_jsb_eval(path: str, device, k: int = 40, repeats: int = 1) -> dict:
    """Seconds for the K-sample IS evaluation of the whole JSB Chorales test split (the pickle's framing)
    with a VRNN of configs/vrnn-bernoulli.toml's size (untrained: the time does not depend on the weights)."""
    from ..data.readers import read_boulanger
    from ..evaluate import score_sequences

    p = Path(path)
    if not p.is_file():
        raise VrnnError(f"--jsb {path}: file not found; give the path of jsb_chorales.pickle")
    test = read_boulanger(p).splits["test"]
    bc = BenchConfig(dict(kind="vrnn", x_dim=88, hidden=256, width=256, layers=4, z_dim=32,
                          emission=EmissionConfig("bernoulli")), batch=64, steps=0)
    model = make_model(bc, device)
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        score_sequences(model, test, k, batch_size=64, device=device)
        _sync(device)
        times.append(time.perf_counter() - t)
    return {"K": k, "sequences": len(test), "steps": sum(len(a) for a in test), "seconds": statistics.median(times),
            "model": "VRNN-Bernoulli, LSTM 256, 4-layer MLPs of 256, z 32; eval batch 64 sequences (each tiled K times)"}


def hardware(device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def describe_hardware(device="cpu") -> str:
    """One line for a results table: CPU, cores, torch and its threads (and the GPU, if used)."""
    h = hardware(device)
    text = f"{h['cpu']}, {h['cpu_count']} logical CPUs, torch {h['torch']} ({h['threads']} threads)"
    return text + (f", GPU {h['gpu']}" if "gpu" in h else "")


def run_bench(device="cpu", quick: bool = False, configs: list[str] | None = None, memory: bool = True,
              progress=print, jsb: str | None = None) -> dict:
    device = torch.device(device)
    available = bench_configs()
    names = configs or list(available)
    for n in names:
        if n not in available:
            raise VrnnError(f"unknown bench configuration {n!r}; choose from {sorted(available)}")
    if jsb and not Path(jsb).is_file():  # fail before the measurements, not after them
        raise VrnnError(f"--jsb {jsb}: file not found; give the path of jsb_chorales.pickle")
    # quick: one repeat of one step (checks that everything runs); full: medians of 5 repeats
    repeats, steps = (1, 1) if quick else (5, 3)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = {"device": str(device), "hardware": hardware(device), "quick": quick,
           "load_avg_start": load, "configs": [], "scaling_T": None, "scaling_K": None}
    for n in names:
        progress(f"[bench] {n} ...")
        big = n == "paper" and device.type == "cpu"
        out["configs"].append(bench_config(n, available[n], device, repeats if not big else max(1, repeats - 2),
                                           1 if big else steps, memory))
    progress("[bench] scaling with T ...")
    out["scaling_T"] = bench_scaling_T(device, (40, 80) if quick else (40, 80, 160), repeats, 1 if quick else 2, memory)
    progress("[bench] scaling with K ...")
    out["scaling_K"] = bench_scaling_K(device, (1, 10) if quick else (1, 10, 40), repeats, memory)
    if jsb:
        progress("[bench] K = 40 evaluation of the JSB test set ...")
        out["jsb_eval"] = bench_jsb_eval(jsb, device, repeats=1 if quick else 3)
    out["load_avg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return out


# ---- reporting -----------------------------------------------------------------------
def _mem(v):
    return "–" if v is None else f"{v:.0f}"


def format_markdown(r: dict) -> str:
    hw = r["hardware"]
    lines = [
        "# Speed: the library's VRNN against the textbook per-step implementation",
        "",
        f"Produced by `vrnn bench{' --quick' if r['quick'] else ''}` on {r['device']}: {hw['cpu']}, "
        f"{hw['cpu_count']} cores, {hw['threads']} torch threads"
        + (f", GPU {hw['gpu']}" if "gpu" in hw else "") + f"; Python {hw['python']}, torch {hw['torch']}.",
        f"Load average (1, 5, 15 min) at start {_load(r['load_avg_start'])}, at end {_load(r['load_avg_end'])}: "
        "other processes shared the machine when the load exceeds the core count, and the figures are then noisy.",
        "",
        "Steps/s: median over alternating repeats of full training steps (forward, backward, clipping, Adam). "
        "GFLOP/s: matrix-product FLOPs of one step (torch FlopCounterMode) × steps/s; 'of matmul': the fraction of "
        "the rate of one large float32 matrix product measured in the same run. Memory: extra peak memory of one "
        "training step after a tiny warm-up step has allocated gradients and Adam state (CPU: growth of the peak resident set of a fresh process; GPU: growth of max_memory_allocated).",
        "",
        "## Training",
        "",
        "| config | implementation | steps/s | speed-up | GFLOP/step | GFLOP/s | of matmul | peak MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in r["configs"]:
        for name, v in c["impl"].items():
            sp = f"{c['speedup']:.2f}×" if name == "library" and "speedup" in c else ""
            lines.append(f"| {c['config']} | {name} | {v['steps_per_s']:.3f} | {sp} | {v['gflop_per_step']:.2f} | "
                         f"{v['gflops']:.1f} | {100 * v['fraction_of_matmul']:.0f} % | {_mem(v['peak_mem_mib'])} |")
    lines += ["", "Configurations (synthetic data of the configured shape):", ""]
    lines += [f"- `{c['config']}`: {c['note']}; large matmul rate {c['matmul_gflops']:.0f} GFLOP/s" for c in r["configs"]]
    if "srnn" not in MODELS:
        lines.append("- SRNN polyphonic: not measured (the SRNN model is not installed).")
    elif "srnn-polyphonic" in [c["config"] for c in r["configs"]]:
        lines.append("- `srnn-polyphonic` has no per-step reference implementation; library figures only.")
    lines += ["", "## Scaling with sequence length T (config `small`, training)", "",
              "| T | reference s/step | library s/step | speed-up | library ms per time step | reference MiB | library MiB |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in r["scaling_T"]:
        rf, lb = row.get("reference"), row["library"]
        lines.append(f"| {row['T']} | {rf['s_per_step']:.3f} | {lb['s_per_step']:.3f} | "
                     f"{rf['s_per_step'] / lb['s_per_step']:.2f}× | {lb['ms_per_time_step']:.2f} | "
                     f"{_mem(rf['peak_mem_mib'])} | {_mem(lb['peak_mem_mib'])} |")
    lines += ["", "## Scaling with importance samples K (config `small`, evaluation of one batch of 32, T 40)", "",
              "| K | K·B batch s | K passes s | peak MiB (K·B batch) |", "| ---: | ---: | ---: | ---: |"]
    for row in r["scaling_K"]:
        lines.append(f"| {row['K']} | {row['s_batched']:.3f} | {row['s_k_passes']:.3f} | {_mem(row['peak_mem_mib'])} |")
    if r.get("jsb_eval"):
        j = r["jsb_eval"]
        lines += ["", "## Whole JSB Chorales test set, importance-sampled evaluation", "",
                  f"K = {j['K']}: {j['seconds']:.2f} s for {j['sequences']} pieces, {j['steps']} steps ({j['model']})."]
    return "\n".join(lines) + "\n"


def _load(v):
    return "n/a" if v is None else ", ".join(f"{x:.2f}" for x in v)


def format_text(r: dict) -> str:
    lines = [f"vrnn bench on {r['device']} ({r['hardware']['cpu']}, {r['hardware']['threads']} threads)"
             f"{' [quick]' if r['quick'] else ''}; load average {_load(r['load_avg_start'])} -> {_load(r['load_avg_end'])}"]
    for c in r["configs"]:
        lines.append(f"{c['config']}: large matmul {c['matmul_gflops']:.0f} GFLOP/s")
        for name, v in c["impl"].items():
            lines.append(f"  {name:<10} {v['steps_per_s']:8.3f} steps/s  {v['gflops']:7.1f} GFLOP/s "
                         f"({100 * v['fraction_of_matmul']:.0f} % of matmul)  peak {_mem(v['peak_mem_mib'])} MiB")
        if "speedup" in c:
            lines.append(f"  speed-up  {c['speedup']:.2f}×")
    for row in r["scaling_T"]:
        lines.append(f"T={row['T']:<4} reference {row['reference']['s_per_step']:.3f} s/step, "
                     f"library {row['library']['s_per_step']:.3f} s/step ({row['library']['ms_per_time_step']:.2f} ms per time step)")
    for row in r["scaling_K"]:
        lines.append(f"K={row['K']:<3} IS evaluation: K·B batch {row['s_batched']:.3f} s, K passes {row['s_k_passes']:.3f} s, "
                     f"peak {_mem(row['peak_mem_mib'])} MiB")
    if r.get("jsb_eval"):
        j = r["jsb_eval"]
        lines.append(f"JSB test set ({j['sequences']} pieces, {j['steps']} steps), K={j['K']} IS evaluation: {j['seconds']:.2f} s")
    return "\n".join(lines)


def main(args) -> None:
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VrnnError(f"--device {args.device}: no CUDA device is available; use --device cpu")
    progress = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731 (stderr: --json output stays clean)
    r = run_bench(device, quick=args.quick, configs=args.configs, memory=not args.no_memory, progress=progress,
                  jsb=args.jsb)
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(r))
    print(json.dumps(r) if args.json else format_text(r))
