"""``vrnn bench``'s results as a markdown report (benchmarks/SPEED.md) and as terminal text."""
from __future__ import annotations


def _mem(v):  # MiB, or a dash where memory was not probed
    return "–" if v is None else f"{v:.0f}"


def _load(v):  # the three load averages, or n/a
    return "n/a" if v is None else ", ".join(f"{x:.2f}" for x in v)


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
    if "srnn-polyphonic" in [c["config"] for c in r["configs"]]:
        lines.append("- `srnn-polyphonic` has no per-step reference implementation; library figures only.")
    lines += ["", "## Scaling with sequence length T (config `small`, training)", "",
              "| T | reference s/step | library s/step | speed-up | library ms per time step | reference MiB | library MiB |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in r["scaling_T"]:
        rf, lb = row["reference"], row["library"]
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
