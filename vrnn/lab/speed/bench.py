"""``vrnn bench``'s measurements, in the order :func:`run_bench` makes them (the overview is in :mod:`vrnn.lab.speed`)."""
from __future__ import annotations

import os
import statistics
from pathlib import Path

import torch

from ...errors import VrnnError
from ...hardware import hardware
from .configs import CONFIGS, JSB_EVAL, BenchConfig, make_batches, make_model
from .measure import count_flops, eval_fn, matmul_rate, median_seconds, peak_memory, seconds, time_training, trainers


def bench_config(name: str, bc: BenchConfig, device, repeats: int, steps: int, memory: bool) -> dict:
    """Steps/s, FLOPs, GFLOP/s and peak memory of the reference and the library on one configuration."""
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
            "peak_mem_mib": peak_memory(name, device, tr.name) if memory else None,
        }
    if "reference" in res["impl"]:
        res["speedup"] = res["impl"]["library"]["steps_per_s"] / res["impl"]["reference"]["steps_per_s"]
    return res


def bench_scaling_T(device, lengths, repeats: int, steps: int, memory: bool) -> list[dict]:
    """Training of the small configuration at each sequence length T."""
    bc = CONFIGS["small"]
    rows = []
    for T in lengths:
        trs = trainers(bc, device)
        per_step = time_training(trs, make_batches(bc, device, steps=T), repeats, steps, device)
        row = {"T": T}
        for tr in trs:
            sec = statistics.median(per_step[tr.name])
            row[tr.name] = {"s_per_step": sec, "ms_per_time_step": 1e3 * sec / T,
                            "peak_mem_mib": peak_memory("small", device, tr.name, T=T) if memory else None}
        rows.append(row)
    return rows


def bench_scaling_K(device, samples, repeats: int, memory: bool) -> list[dict]:
    """IS evaluation of one small-config batch: K samples as one K·B batch vs K passes of one sample."""
    bc = CONFIGS["small"]
    model = make_model(bc, device)
    x = make_batches(bc, device, 1)[0]
    rows = []
    for k in samples:
        batched, looped = eval_fn(model, k), eval_fn(model, 1)
        batched(x)  # warm-up
        tb, tl = [], []
        for _ in range(repeats):
            tb.append(seconds(lambda: batched(x), device))
            tl.append(seconds(lambda: [looped(x) for _ in range(k)], device))
        rows.append({"K": k, "s_batched": statistics.median(tb), "s_k_passes": statistics.median(tl),
                     "peak_mem_mib": peak_memory("small", device, "eval", K=k) if memory else None})
    return rows


def bench_jsb_eval(path: str, device, k: int = 40, repeats: int = 1) -> dict:
    """Seconds for the K-sample IS evaluation of the whole JSB Chorales test split (the pickle's framing)
    with the untrained model of :data:`JSB_EVAL` (the time does not depend on the weights)."""
    from ...data.readers import read_boulanger
    from ...inference.evaluate import score_sequences

    test = read_boulanger(Path(path)).splits["test"]
    model = make_model(JSB_EVAL, device)
    sec = median_seconds(lambda: score_sequences(model, test, k, batch_size=JSB_EVAL.batch, device=device),
                         device, repeats)
    return {"K": k, "sequences": len(test), "steps": sum(len(a) for a in test), "seconds": sec,
            "model": JSB_EVAL.note}


def _load_avg():
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def run_bench(device="cpu", quick: bool = False, configs: list[str] | None = None, memory: bool = True,
              progress=print, jsb: str | None = None) -> dict:
    """All the measurements as one JSON-ready dict (rendered by :mod:`vrnn.lab.speed.report`).

    ``configs``: names in :data:`CONFIGS` (default: all); ``memory``: run the peak-memory probes;
    ``jsb``: path of jsb_chorales.pickle, to also time the K = 40 evaluation of its test split.
    """
    device = torch.device(device)
    names = configs or list(CONFIGS)
    for n in names:
        if n not in CONFIGS:
            raise VrnnError(f"unknown bench configuration {n!r}; choose from {sorted(CONFIGS)}")
    if jsb and not Path(jsb).is_file():  # fail before the measurements, not after them
        raise VrnnError(f"--jsb {jsb}: file not found; give the path of jsb_chorales.pickle")
    # quick: one repeat of one step (checks that everything runs); full: medians of 5 repeats
    repeats, steps = (1, 1) if quick else (5, 3)
    out = {"device": str(device), "hardware": hardware(device), "quick": quick,
           "load_avg_start": _load_avg(), "configs": [], "scaling_T": None, "scaling_K": None}
    for n in names:
        progress(f"[bench] {n} ...")
        big = n == "paper" and device.type == "cpu"  # slow on a CPU: fewer repeats of one step
        out["configs"].append(bench_config(n, CONFIGS[n], device, max(1, repeats - 2) if big else repeats,
                                           1 if big else steps, memory))
    progress("[bench] scaling with T ...")
    out["scaling_T"] = bench_scaling_T(device, (40, 80) if quick else (40, 80, 160), repeats, 1 if quick else 2, memory)
    progress("[bench] scaling with K ...")
    out["scaling_K"] = bench_scaling_K(device, (1, 10) if quick else (1, 10, 40), repeats, memory)
    if jsb:
        progress("[bench] K = 40 evaluation of the JSB test set ...")
        out["jsb_eval"] = bench_jsb_eval(jsb, device, repeats=1 if quick else 3)
    out["load_avg_end"] = _load_avg()
    return out
