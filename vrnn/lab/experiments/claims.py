"""A claims table: a paper's claims, each answered by a measurement on the committed checkpoints.

``[[report_options.claims]]`` entries of an experiment file, each with ``claim`` (the claim in words),
``paper`` (the paper's answer), ``data`` and a ``kind``:

* ``likelihood``  ``a`` above ``b``: the paired difference of the test log-likelihood estimates on the
  same sequences (each model's per-sequence numbers averaged over its seeds), with its standard error
  over sequences, and the difference of every seed pair (seed i of ``a`` against seed i of ``b``).
  Reproduces if the difference is positive by more than two standard errors and on every seed pair.
* ``samples``     ``a``'s unconditional samples nearer the held-out audio than ``b``'s
  (:func:`vrnn.lab.analysis.sample_quality`: log-spectral distance in dB, high-frequency energy share).
  Reproduces if ``a``'s mean distance is lower by more than two standard errors (Welch).
* ``alignment``   ``run``'s latent changes line up with the audio's transitions
  (:func:`vrnn.lab.analysis.latent_alignment`). Reproduces if the rank correlation is positive with a
  shuffle p-value below 0.01.
* ``ordering``    ``runs`` ordered best first as the paper has them: the share of pairs that our
  seed-mean test log-likelihoods order alike (1: the same order).
* ``style``       ``a``'s samples drift less in style between their halves than ``b``'s
  (:func:`vrnn.lab.metrics.style_drift`), beside training drawings of the same length.

The measured numbers come from the checkpoints (seeded), so the same checkpoints render the same table.
"""
from __future__ import annotations

import math

import numpy as np

KINDS = ("likelihood", "samples", "alignment", "ordering", "style")


def by_seed(exp, results: dict, data: str, run: str) -> list[dict]:
    """The evaluation report of each seed of ``run`` on ``data`` (seed order), with its checkpoint path."""
    spec = exp.runs[run]
    evals = results["evaluations"].get(data, {})
    return [evals[spec.key(s)] for s in spec.seeds if spec.key(s) in evals]


def paired_difference(a: dict, b: dict, key: str = "log_likelihood") -> tuple[float, float]:
    """Mean and standard error of (a − b) over the same test sequences."""
    d = np.asarray(a["sequences"][key]) - np.asarray(b["sequences"][key])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")


def seed_mean(exp, results: dict, data: str, run) -> dict | None:
    """A run's evaluation on ``data`` with its per-sequence and per-sequence-average numbers averaged over
    the seeds evaluated (the report itself when there is one seed); ``seeds``: how many."""
    reps = [results["evaluations"].get(data, {}).get(run.key(s)) for s in run.seeds]
    reps = [r for r in reps if r is not None]
    if len(reps) < 2:
        return dict(reps[0], seeds=1) if reps else None
    out = dict(reps[0], seeds=len(reps))
    for key in ("elbo", "log_likelihood"):
        out[key] = {"per_sequence": float(np.mean([r[key]["per_sequence"] for r in reps])),
                    "sd_over_seeds": float(np.std([r[key]["per_sequence"] for r in reps], ddof=1))}
    out["sequences"] = {k: np.mean([r["sequences"][k] for r in reps], axis=0).tolist()
                        for k in ("elbo", "log_likelihood")}
    return out


def _mean_se(v) -> tuple[float, float]:
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def _label(exp, run: str) -> str:
    return exp.runs[run].label


def _verdict(gap: float, se: float, every: bool = True, against: bool = True) -> str:
    """yes when ``gap`` is above two standard errors (and ``every`` seed agrees), the opposite when it is
    below minus two (and ``against`` every seed), else not resolved."""
    if gap > 2 * se and every:
        return "yes"
    if gap < -2 * se and against:
        return "no: the opposite holds"
    return "not resolved"


def likelihood(exp, results: dict, c: dict) -> tuple[str, str]:
    a, b = by_seed(exp, results, c["data"], c["a"]), by_seed(exp, results, c["data"], c["b"])
    if not a or not b:
        return "not measured (a checkpoint is missing)", "—"
    mean_a, mean_b = (seed_mean(exp, results, c["data"], exp.runs[c[side]]) for side in "ab")
    m, se = paired_difference(mean_a, mean_b)
    pairs = [float(np.mean(ra["sequences"]["log_likelihood"]) - np.mean(rb["sequences"]["log_likelihood"]))
             for ra, rb in zip(a, b)]
    seeds = (f"; per seed pair {', '.join(f'{p:+.1f}' for p in pairs)}" if len(pairs) > 1 else
             f"; one seed{'s' if min(len(a), len(b)) > 1 else ''}")
    text = (f"{_label(exp, c['a'])} − {_label(exp, c['b'])} = {m:+.1f} ± {se:.1f} nats per sequence "
            f"({len(a)} and {len(b)} seeds averaged per sequence; ± one standard error over "
            f"{len(mean_a['sequences']['log_likelihood'])} test sequences){seeds}")
    verdict = _verdict(m, se, min(pairs) > 0, max(pairs) < 0)
    return text, "yes (one seed pair)" if verdict == "yes" and len(pairs) == 1 else verdict


def samples(exp, results: dict, c: dict) -> tuple[str, str]:
    from ..analysis import sample_quality

    q = {}
    for side in ("a", "b"):
        reps = by_seed(exp, results, c["data"], c[side])
        if not reps:
            return "not measured (a checkpoint is missing)", "—"
        q[side] = sample_quality(exp.root / reps[0]["checkpoint"], n=int(c.get("n", 20)), seconds=c.get("seconds"),
                                 seed=int(c.get("seed", 0)))
    (la, sa), (lb, sb) = (_mean_se(q[s]["lsd_db"]) for s in "ab")
    ha, hb, hh = (_mean_se(v)[0] for v in (q["a"]["hf_ratio"], q["b"]["hf_ratio"], q["a"]["heldout_hf_ratio"]))
    ref, _ = _mean_se(q["a"]["heldout_lsd_db"])
    n, cut = len(q["a"]["lsd_db"]), q["a"]["cutoff_hz"]
    text = (f"log-spectral distance to the held-out spectrum, {n} samples of {q['a']['seconds']:g} s each: "
            f"{_label(exp, c['a'])} {la:.2f} ± {sa:.2f} dB, {_label(exp, c['b'])} {lb:.2f} ± {sb:.2f} dB "
            f"(± one standard error over samples; held-out sequences themselves: {ref:.2f} dB); "
            f"energy above {cut:g} Hz: {ha:.1%} and {hb:.1%} (held-out {hh:.1%})")
    return text, _verdict(lb - la, math.hypot(sa, sb))


def alignment(exp, results: dict, c: dict) -> tuple[str, str]:
    from ..analysis import latent_alignment

    reps = by_seed(exp, results, c["data"], c["run"])
    if not reps:
        return "not measured (the checkpoint is missing)", "—"
    signal, transition = c.get("signal", "delta"), c.get("transition", "flux")
    r = latent_alignment(exp.root / reps[0]["checkpoint"], signal=signal, transition=transition,
                         max_sequences=int(c.get("sequences", 200)), shuffles=int(c.get("shuffles", 1000)))
    names = {"delta": "δ_t", "kl": "the step's KL", "flux": "spectral flux", "energy": "change of log energy"}
    text = (f"{_label(exp, c['run'])}: Spearman ρ({names[signal]}, {names[transition]}) = {r['spearman']:+.3f} over "
            f"{r['steps']} steps of {r['sequences']} test sequences; time shuffled within each sequence: "
            f"{r['shuffled_mean']:+.3f} ± {r['shuffled_sd']:.3f}, p = {r['p_value']:.3g}")
    if r["spearman"] > r["shuffled_mean"] and r["p_value"] < 0.01:
        return text, "yes"
    return text, "no" if r["p_value"] >= 0.01 else "no: anti-aligned"


def ordering(exp, results: dict, c: dict) -> tuple[str, str]:
    means = {}
    for run in c["runs"]:
        reps = by_seed(exp, results, c["data"], run)
        if reps:
            means[run] = float(np.mean([r["log_likelihood"]["per_sequence"] for r in reps]))
    runs = [r for r in c["runs"] if r in means]
    if len(runs) < 2:
        return "not measured (checkpoints missing)", "—"
    pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    alike = sum(means[runs[i]] > means[runs[j]] for i, j in pairs)
    ours = sorted(runs, key=lambda r: -means[r])
    text = ("ours, best first: " + " > ".join(f"{_label(exp, r)} ({means[r]:.1f})" for r in ours)
            + f" nats per sequence; {alike} of {len(pairs)} pairs ordered as in the paper")
    return text, "yes" if alike == len(pairs) else "partly" if alike > len(pairs) / 2 else "no"


def style(exp, results: dict, c: dict) -> tuple[str, str]:
    from ...checkpoint import load_model
    from ...data import DataConfig, load_dataset
    from ..metrics import style_drift
    from ...inference.sampling import sample

    n, seed = int(c.get("n", 100)), int(c.get("seed", 0))
    source = results["data"][c["data"]]["source"]
    train = load_dataset(DataConfig(source=source)).splits["train"]
    steps = int(c.get("steps") or np.median([len(a) for a in train]))
    same = [a for a in train if len(a) >= steps]
    pick = np.random.default_rng(seed).choice(len(same), min(n, len(same)), replace=False)
    drift = {"data": [style_drift(same[i][:steps]) for i in pick]}
    for side in ("a", "b"):
        reps = by_seed(exp, results, c["data"], c[side])
        if not reps:
            return "not measured (a checkpoint is missing)", "—"
        model, norm, _ = load_model(exp.root / reps[0]["checkpoint"])
        drift[side] = [style_drift(d) for d in sample(model, steps, n, norm, seed)]
    (ma, sa), (mb, sb), (md, sd) = (_mean_se(drift[k]) for k in ("a", "b", "data"))
    text = (f"style drift between the halves of {n} samples of {steps} steps (0: alike): {_label(exp, c['a'])} "
            f"{ma:.2f} ± {sa:.2f}, {_label(exp, c['b'])} {mb:.2f} ± {sb:.2f}; training drawings of that length "
            f"{md:.2f} ± {sd:.2f}")
    return text, _verdict(mb - ma, math.hypot(sa, sb))


MEASURES = {"likelihood": likelihood, "samples": samples, "alignment": alignment, "ordering": ordering,
            "style": style}


def claims_table(exp, results: dict) -> list[str]:
    """The markdown claims table of ``report_options.claims`` (empty if none)."""
    entries = exp.report_options.get("claims", [])
    if not entries:
        return []
    lines = ["## The claims, measured", "", "| # | claim | the paper | ours | reproduces? |", "| --- | --- | --- | --- | --- |"]
    for i, c in enumerate(entries, 1):
        if c.get("kind") not in MEASURES:
            from ...errors import VrnnError

            raise VrnnError(f"{exp.path}: report_options.claims[{i - 1}].kind = {c.get('kind')!r}; choose one of "
                            f"{', '.join(KINDS)}")
        if c["data"] not in results["evaluations"]:
            text, verdict = f"not measured (nothing evaluated on {c['data']})", "—"
        else:
            text, verdict = MEASURES[c["kind"]](exp, results, c)
        lines.append(f"| {c.get('id', i)} | {c['claim']} ({c['data']}) | {c.get('paper', '')} | {text} | {verdict} |")
    return lines + [""]
