"""A claims table: a paper's claims, each answered by a measurement on the committed checkpoints.

``[[report_options.claims]]`` entries of an experiment file, each with ``claim`` (the claim in words),
``paper`` (the paper's answer), ``data`` and a ``kind``:

* ``likelihood``  ``a`` above ``b`` in test log-likelihood. Each model's seeds: mean ± sd over seeds of
  the per-sequence average. The gap: the difference of the seed means, with a standard error from a
  bootstrap over the test sequences **clustered by source file** (the data's record of which file each
  sequence was cut from; each sequence its own cluster when there is none). Reproduces ("yes") when the
  gap is above two standard errors **and** every seed of ``a`` is above every seed of ``b`` (no arbitrary
  pairing of seed i with seed i); "no: the opposite holds" when both hold the other way; else "not
  resolved". ``estimator = "smc"`` compares the particle filter's estimates at the largest K of
  ``[eval] smc_particles`` instead of the importance-sampled ones, and says **"not rankable"** when the
  estimate has not settled: when either model's estimate changed from the second-largest K to the
  largest by more than the gap between the models.
* ``samples``     ``a``'s unconditional samples nearer the held-out audio than ``b``'s
  (:func:`vrnn.lab.analysis.sample_quality`: log-spectral distance in dB, high-frequency energy share),
  measured for every seed; the same rule (two standard errors over the pooled samples, every seed pair).
* ``alignment``   ``run``'s latent changes line up with the audio's transitions
  (:func:`vrnn.lab.analysis.latent_alignment`; ``signal``: delta, kl, or hidden for a model without
  latents, the control; ``transition``: flux or energy; ``control = "loudness"``: a partial rank
  correlation with the frame's log energy partialled out), measured for every seed. Reproduces if on
  every seed the rank correlation is above the time-shuffled one with a shuffle p-value below 0.01 —
  and, with ``than = [{ run = "rnn-gauss", signal = "hidden" }, ...]`` (controls: models that should not
  align as well), above every control's correlation, measured the same way, on every seed pair;
  aligned but not above a control is "not resolved".
* ``ordering``    ``runs`` ordered best first as the paper has them. Neighbours in our order are tied
  (``=``) unless the ``likelihood`` rule separates them; "yes" needs every pair separated and ordered
  as in the paper.
* ``style``       ``a``'s samples drift less in style between their halves than ``b``'s
  (:func:`vrnn.lab.metrics.style_drift`), beside training drawings of the same length.

Every verdict states its seed counts. A latent-variable model whose test KL is below ``kl_threshold``
nats per step (default :data:`KL_UNUSED`; a claim may set its own) has unused latents: a claim that
credits it gets the verdict "latents unused", never "yes" — its lead would be the architecture's.
A claim with ``not_testable = "why"`` keeps its measurement and gets the verdict "not testable on this
data: why" (the data cannot decide it, e.g. drawings too short to hold a style).

The measured numbers come from the checkpoints (seeded), so the same checkpoints render the same table.
"""
from __future__ import annotations

import math

import numpy as np

KINDS = ("likelihood", "samples", "alignment", "ordering", "style")
ESTIMATORS = ("is", "smc")  # of a likelihood claim: importance sampling at [eval] iw_samples, or the particle filter
KL_UNUSED = 0.01  # nats per time step (test split, total over total): below it a model's latents are unused
BOOTSTRAP = 2000  # resamples of the clustered bootstrap (seeded: the same results give the same table)


def by_seed(exp, results: dict, data: str, run: str) -> list[dict]:
    """The evaluation report of each seed of ``run`` on ``data`` (seed order), with its checkpoint path."""
    spec = exp.runs[run]
    evals = results["evaluations"].get(data, {})
    return [evals[spec.key(s)] for s in spec.seeds if spec.key(s) in evals]


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


def clusters(results: dict, data: str, n: int) -> tuple[np.ndarray, str]:
    """The source file of each of the ``n`` test sequences of ``data`` (cluster ids) and what they are: from
    results.json's record of the prepared data's ``file_sequences`` (``test_file_sequences``); from the prepared
    data itself for a results.json written before that record; else one cluster per sequence."""
    from ...data import DataConfig, load_dataset

    record = results.get("data", {}).get(data, {})
    counts, source = record.get("test_file_sequences"), record.get("source")
    if counts is None and source:
        try:
            counts = load_dataset(DataConfig(source=source)).meta.get("file_sequences", {}).get("test")
        except Exception:  # noqa: BLE001 — the data may be elsewhere now: fall back to sequences
            counts = None
    groups = file_groups(counts, n)
    if groups is not None:
        return groups, f"{len(counts)} source file{'s' * (len(counts) > 1)}"
    return np.arange(n), f"{n} test sequences"


def file_groups(counts: list[int] | None, n: int) -> np.ndarray | None:
    """The source file of each of ``n`` sequences from a ``file_sequences`` record (sequences per file, in
    order); None when there is no record or it does not cover the ``n`` sequences."""
    if counts is None or sum(counts) != n:
        return None
    return np.repeat(np.arange(len(counts)), counts)


def clustered_se(values: np.ndarray, groups: np.ndarray, resamples: int = BOOTSTRAP, seed: int = 0,
                 lengths: np.ndarray | None = None) -> float:
    """Standard error of the mean of ``values`` from a bootstrap that resamples whole clusters; with
    ``lengths``, of the ratio sum(values) / sum(lengths) (a per-step total/total score)."""
    ids, inverse = np.unique(groups, return_inverse=True)
    if len(ids) < 2:
        return float("nan")
    sums, sizes = np.bincount(inverse, weights=values), np.bincount(inverse, weights=lengths)
    pick = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    return float(np.std(sums[pick].sum(1) / sizes[pick].sum(1), ddof=1))


def _seeds(v) -> str:
    v = np.asarray(v, dtype=np.float64)
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f} ({len(v)} seeds)" if len(v) > 1 else f"{v[0]:.1f} (1 seed)"


def _mean_se(v) -> tuple[float, float]:
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def _label(exp, run: str) -> str:
    return exp.runs[run].label


def unused_latents(reps: list[dict], threshold: float) -> float | None:
    """The mean test KL per step of a latent-variable model's seeds when it is below ``threshold`` (the
    latents went unused), else None (in use, or no latents)."""
    if not reps or all(map(exact, reps)):
        return None
    kl = float(np.mean([r["kl"]["per_step_total"] for r in reps]))
    return kl if kl < threshold else None


def _verdict(gap: float, se: float, above: int, pairs: int, seeds: str) -> str:
    """yes when ``gap`` is above two standard errors and every seed pair agrees (``above`` of ``pairs``
    with a ahead), the opposite when both hold the other way, else not resolved; ``seeds`` appended."""
    if gap > 2 * se and above == pairs:
        return f"yes ({seeds})"
    if gap < -2 * se and above == 0:
        return f"no: the opposite holds ({seeds})"
    return f"not resolved ({seeds})"


def estimates(rep: dict, estimator: str = "is") -> list[float] | None:
    """One seed's per-sequence test log-likelihoods (nats): importance-sampled with ``[eval] iw_samples``
    (``is``), or the particle filter's at the largest K of ``[eval] smc_particles`` (``smc``; None when the
    evaluation has none). A model without latents has its exact numbers under either."""
    if estimator == "is" or exact(rep):
        return rep["sequences"]["log_likelihood"]
    pf = rep.get("smc_particles")
    return pf[max(pf, key=int)]["sequences"] if pf else None


def smc_drift(reps: list[dict]) -> tuple[float, str]:
    """How far a model's particle-filter estimate (the mean over seeds of the per-sequence average, nats per
    sequence) moved from the second-largest K to the largest, and those K in words; (0, "exact") for a
    model without latents, (nan, ...) with fewer than two K."""
    if all(map(exact, reps)):
        return 0.0, "exact"
    ks = sorted(int(k) for k in reps[0].get("smc_particles", {}))
    if len(ks) < 2:
        return float("nan"), f"K = {ks[-1]} only" if ks else "no K"
    at = {k: np.mean([np.mean(r["smc_particles"][str(k)]["sequences"]) for r in reps]) for k in ks[-2:]}
    return float(at[ks[-1]] - at[ks[-2]]), f"K = {ks[-2]} to {ks[-1]}"


def compare(exp, results: dict, data: str, a: str, b: str, estimator: str = "is") -> dict | None:
    """The ``likelihood`` rule for ``a`` above ``b`` on ``data`` under ``estimator`` (:func:`estimates`): seed
    means, the gap, its clustered standard error, the seed pairs with ``a`` ahead and the verdict (None when a
    checkpoint or an estimate is missing)."""
    ra, rb = by_seed(exp, results, data, a), by_seed(exp, results, data, b)
    va, vb = ([estimates(r, estimator) for r in reps] for reps in (ra, rb))
    if not ra or not rb or any(v is None for v in va + vb):
        return None
    seq = {k: np.mean(v, axis=0) for k, v in (("a", va), ("b", vb))}
    ma, mb = ([float(np.mean(x)) for x in v] for v in (va, vb))
    groups, unit = clusters(results, data, len(seq["a"]))
    gap, se = float(np.mean(ma) - np.mean(mb)), clustered_se(seq["a"] - seq["b"], groups)
    above = sum(x > y for x in ma for y in mb)
    seeds = f"{len(ma)} vs {len(mb)} seed{'s' if len(mb) > 1 else ''}"
    return {"a": ma, "b": mb, "gap": gap, "se": se, "above": above, "pairs": len(ma) * len(mb), "unit": unit,
            "verdict": _verdict(gap, se, above, len(ma) * len(mb), seeds), "reps": (ra, rb), "seeds": seeds}


def unsettled(exp, r: dict, c: dict) -> str | None:
    """The verdict of an ``estimator = "smc"`` claim whose particle filter has not settled (None when it has):
    "not rankable" when either model's estimate moved more from the second-largest K to the largest than
    the gap between the two models."""
    for side, reps in zip("ab", r["reps"]):
        d, ks = smc_drift(reps)
        if not math.isfinite(d):
            return f"not rankable: {_label(exp, c[side])} has particle-filter estimates at {ks} ({r['seeds']})"
        if abs(d) > abs(r["gap"]):
            return (f"not rankable: {_label(exp, c[side])}'s estimate moved {d:+.1f} nats per sequence ({ks}), "
                    f"more than the gap {abs(r['gap']):.1f} ({r['seeds']})")
    return None


def likelihood(exp, results: dict, c: dict) -> tuple[str, str]:
    estimator = c.get("estimator", "is")
    r = compare(exp, results, c["data"], c["a"], c["b"], estimator)
    if r is None:
        return ("not measured (a checkpoint, or its particle-filter estimates: [eval] smc_particles, is missing)"
                if estimator == "smc" else "not measured (a checkpoint is missing)"), "—"
    how = f"particle filter, K = {largest_k(r['reps'])}: " if estimator == "smc" else ""
    text = (f"{how}{_label(exp, c['a'])} {_seeds(r['a'])}, {_label(exp, c['b'])} {_seeds(r['b'])} nats per sequence "
            f"(mean ± sd over seeds); difference of the seed means {r['gap']:+.1f} ± {r['se']:.1f} (± one standard "
            f"error, bootstrap over {r['unit']}); {_label(exp, c['a'])} ahead in {r['above']} of {r['pairs']} seed "
            f"pairs")
    if estimator == "smc":
        text += "; change from the second-largest K to the largest: " + ", ".join(
            f"{_label(exp, c[side])} {smc_drift(reps)[0]:+.1f}" for side, reps in zip("ab", r["reps"]))
    kl = unused_latents(r["reps"][0], float(c.get("kl_threshold", KL_UNUSED)))
    if kl is not None:
        return text, (f"latents unused: {_label(exp, c['a'])}'s test KL is {kl:.3f} nats per step (< "
                      f"{float(c.get('kl_threshold', KL_UNUSED)):g}); its lead is the architecture's")
    settled = unsettled(exp, r, c) if estimator == "smc" else bound_behind(exp, r, c)
    return text, settled or r["verdict"]


def exact(rep: dict) -> bool:
    """Whether an evaluation report's log-likelihood is exact (a model without latent variables), not a bound."""
    return rep.get("log_likelihood_method") == "exact"


def bound_behind(exp, r: dict, c: dict) -> str | None:
    """"not resolved" when the model found behind is a latent-variable model and the one ahead is exact: its
    importance-sampled estimate bounds log p(x) from below in expectation, so being behind an exact likelihood
    shows nothing (being ahead does). None otherwise. (Under ``estimator = "smc"`` the particle filter's
    settling rule, :func:`unsettled`, decides instead.)"""
    exacts = [all(map(exact, reps)) for reps in r["reps"]]
    behind = "a" if r["verdict"].startswith("no: the opposite") else "b" if r["verdict"].startswith("yes") else None
    ahead = {"a": "b", "b": "a"}.get(behind)
    if behind is None or exacts["ab".index(behind)] or not exacts["ab".index(ahead)]:
        return None
    return (f"not resolved: {_label(exp, c[behind])}'s estimate is a lower bound, below {_label(exp, c[ahead])}'s "
            f"exact likelihood ({r['seeds']})")


def largest_k(reps) -> str:
    """The largest K of the particle-filter estimates in the reports ``reps`` (pairs of lists), in words."""
    ks = [int(k) for rs in reps for rep in rs for k in rep.get("smc_particles", {})]
    return str(max(ks)) if ks else "—"


def _per_seed(exp, results: dict, c: dict, measure) -> dict | None:
    """``measure(checkpoint)`` -> a 1-d array, for every seed of ``a`` and of ``b`` (None when one is missing)."""
    out = {}
    for side in ("a", "b"):
        reps = by_seed(exp, results, c["data"], c[side])
        if not reps:
            return None
        out[side] = [np.asarray(measure(exp.root / r["checkpoint"]), dtype=np.float64) for r in reps]
    return out


def _lower_is_better(v: dict) -> tuple[float, float, int, int, str]:
    """For per-seed arrays of ``a`` and ``b`` where lower is better: the gap of the pooled means (b − a),
    its standard error (Welch, pooled over the seeds' values), the seed pairs with ``a`` lower, the pairs
    and the seed counts in words."""
    (la, sa), (lb, sb) = _mean_se(np.concatenate(v["a"])), _mean_se(np.concatenate(v["b"]))
    above = sum(x.mean() < y.mean() for x in v["a"] for y in v["b"])
    return lb - la, math.hypot(sa, sb), above, len(v["a"]) * len(v["b"]), f"{len(v['a'])} vs {len(v['b'])} seeds"


def _pooled(values: list[np.ndarray]) -> str:
    m, se = _mean_se(np.concatenate(values))
    seeds = f"; seeds {', '.join(f'{v.mean():.2f}' for v in values)}" if len(values) > 1 else ""
    return f"{m:.2f} ± {se:.2f}{seeds}"


def samples(exp, results: dict, c: dict) -> tuple[str, str]:
    from ..analysis import sample_quality

    q = {}
    measure = lambda ckpt: q.setdefault(ckpt, sample_quality(  # noqa: E731
        ckpt, n=int(c.get("n", 20)), seconds=c.get("seconds"), seed=int(c.get("seed", 0))))["lsd_db"]
    v = _per_seed(exp, results, c, measure)
    if v is None:
        return "not measured (a checkpoint is missing)", "—"
    first = q[exp.root / by_seed(exp, results, c["data"], c["a"])[0]["checkpoint"]]
    hf = {side: np.mean([q[exp.root / r["checkpoint"]]["hf_ratio"] for r in by_seed(exp, results, c["data"], c[side])])
          for side in "ab"}
    ref, _ = _mean_se(first["heldout_lsd_db"])
    text = (f"log-spectral distance to the held-out spectrum, {len(first['lsd_db'])} samples of "
            f"{first['seconds']:g} s per seed: {_label(exp, c['a'])} {_pooled(v['a'])} dB, {_label(exp, c['b'])} "
            f"{_pooled(v['b'])} dB (± one standard error over the samples of every seed; held-out sequences "
            f"themselves: {ref:.2f} dB); energy above {first['cutoff_hz']:g} Hz: {hf['a']:.1%} and {hf['b']:.1%} "
            f"(held-out {np.mean(first['heldout_hf_ratio']):.1%})")
    return text, _verdict(*_lower_is_better(v))


SIGNAL_NAMES = {"delta": "δ_t", "kl": "the step's KL", "hidden": "‖h_t − h_{t−1}‖", "flux": "spectral flux",
                "energy": "the absolute change of log energy"}  # no "|": the text goes into a markdown table


def alignment(exp, results: dict, c: dict) -> tuple[str, str]:
    reps = by_seed(exp, results, c["data"], c["run"])
    if not reps:
        return "not measured (the checkpoint is missing)", "—"
    signal, transition, control = c.get("signal", "delta"), c.get("transition", "flux"), c.get("control", "")
    rs = [_aligned(exp, rep, c, signal) for rep in reps]
    raw = lambda r: f"raw {r['raw_spearman']:+.3f}, " if control else ""  # noqa: E731
    per_seed = "; ".join(f"{r['spearman']:+.3f} ({raw(r)}shuffled {r['shuffled_mean']:+.3f} ± "
                         f"{r['shuffled_sd']:.3f}, p = {r['p_value']:.3g})" for r in rs)
    what = (f"partial Spearman ρ({SIGNAL_NAMES[signal]}, {SIGNAL_NAMES[transition]}) given the frame's loudness: "
            "ranks, the loudness rank (log energy of the frame) regressed out of both" if control else
            f"Spearman ρ({SIGNAL_NAMES[signal]}, {SIGNAL_NAMES[transition]})")
    text = (f"{_label(exp, c['run'])}: {what}, over {rs[0]['steps']} steps of {rs[0]['sequences']} test sequences, "
            f"time shuffled within each sequence as the reference; per seed: {per_seed}")
    seeds = f"{len(rs)} seed{'s' if len(rs) > 1 else ''}"
    kl = unused_latents(reps, float(c.get("kl_threshold", KL_UNUSED)))
    if kl is not None:
        return text, f"latents unused: test KL {kl:.3f} nats per step ({seeds})"
    aligned = sum(r["spearman"] > r["shuffled_mean"] and r["p_value"] < 0.01 for r in rs)
    if aligned == len(rs) and c.get("than"):
        more, behind = beyond_controls(exp, results, c, [r["spearman"] for r in rs])
        return text + more, (f"not resolved: aligned on every seed, but {behind} ({seeds})" if behind else
                             f"yes ({seeds}; above every control on every seed pair)")
    if aligned == len(rs):
        return text, f"yes ({seeds})"
    if aligned == 0:
        anti = all(r["spearman"] < r["shuffled_mean"] and r["p_value"] < 0.01 for r in rs)
        return text, f"{'no: anti-aligned' if anti else 'no'} ({seeds})"
    return text, f"not resolved: aligned on {aligned} of {seeds}"


def _aligned(exp, rep: dict, c: dict, signal: str) -> dict:
    """:func:`vrnn.lab.analysis.latent_alignment` of one seed's checkpoint ``rep`` with ``signal``, measured as
    alignment claim ``c`` says (its transition, loudness control, sequences and shuffles)."""
    from ..analysis import latent_alignment

    return latent_alignment(exp.root / rep["checkpoint"], signal=signal, transition=c.get("transition", "flux"),
                            control=c.get("control", ""), max_sequences=int(c.get("sequences", 200)),
                            shuffles=int(c.get("shuffles", 1000)))


def beyond_controls(exp, results: dict, c: dict, ours: list[float]) -> tuple[str, str]:
    """Each control of alignment claim ``c`` (``than``: runs, each with its ``signal``) measured as the claim
    measures its run, on every seed: the text that reports them, and "" when ``ours`` (the run's correlation
    per seed) is above every control seed's, else what fell short ("above X in only 7 of 9 seed pairs")."""
    text, short = "", []
    for ctrl in c["than"]:
        signal = ctrl.get("signal", "delta")
        theirs = [_aligned(exp, rep, c, signal)["spearman"] for rep in by_seed(exp, results, c["data"], ctrl["run"])]
        if not theirs:
            short.append(f"control {_label(exp, ctrl['run'])} is not measured (its checkpoint is missing)")
            continue
        above = sum(a > b for a in ours for b in theirs)
        name = f"{_label(exp, ctrl['run'])}'s {SIGNAL_NAMES[signal]}"
        text += (f"; control {name}: " + ", ".join(f"{v:+.3f}" for v in theirs)
                 + f", below ours in {above} of {len(ours) * len(theirs)} seed pairs")
        if above < len(ours) * len(theirs):
            short.append(f"above {name} in only {above} of {len(ours) * len(theirs)} seed pairs")
    return text, "; ".join(short)


def ordering(exp, results: dict, c: dict) -> tuple[str, str]:
    means = {run: [float(np.mean(r["sequences"]["log_likelihood"])) for r in by_seed(exp, results, c["data"], run)]
             for run in c["runs"]}
    runs = [r for r in c["runs"] if means[r]]
    if len(runs) < 2:
        return "not measured (checkpoints missing)", "—"
    ours = sorted(runs, key=lambda r: -np.mean(means[r]))
    order, ties = _label(exp, ours[0]) + f" ({_seeds(means[ours[0]])})", 0
    for hi, lo in zip(ours, ours[1:]):
        tied = not compare(exp, results, c["data"], hi, lo)["verdict"].startswith("yes")
        ties += tied
        order += f" {'=' if tied else '>'} {_label(exp, lo)} ({_seeds(means[lo])})"
    pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    alike = sum(np.mean(means[runs[i]]) > np.mean(means[runs[j]]) for i, j in pairs)
    threshold = float(c.get("kl_threshold", KL_UNUSED))
    unused = [r for r in runs if unused_latents(by_seed(exp, results, c["data"], r), threshold) is not None]
    text = (f"ours, best first: {order} nats per sequence ('=': not separated by the likelihood rule); "
            f"{alike} of {len(pairs)} pairs ordered as in the paper by the seed means")
    if unused:
        text += f"; latents unused (test KL < {threshold:g} nats per step): {', '.join(_label(exp, r) for r in unused)}"
    seeds = f"{'/'.join(str(len(means[r])) for r in runs)} seeds"
    if ties:
        return text, f"not resolved: {ties} tie{'s' if ties > 1 else ''} ({seeds})"
    verdict = "yes" if alike == len(pairs) else "partly" if alike > len(pairs) / 2 else "no"
    if verdict == "yes" and unused:
        return text, f"latents unused in {', '.join(_label(exp, r) for r in unused)}: the order is the architectures' ({seeds})"
    return text, f"{verdict} ({seeds})"


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
    data = [style_drift(same[i][:steps]) for i in pick]

    def drift(ckpt):
        model, norm, _ = load_model(ckpt)
        return [style_drift(d) for d in sample(model, steps, n, norm, seed)]

    v = _per_seed(exp, results, c, drift)
    if v is None:
        return "not measured (a checkpoint is missing)", "—"
    md, sd = _mean_se(data)
    text = (f"style drift between the halves of {n} samples of {steps} steps per seed (0: alike): "
            f"{_label(exp, c['a'])} {_pooled(v['a'])}, {_label(exp, c['b'])} {_pooled(v['b'])}; training drawings "
            f"of that length {md:.2f} ± {sd:.2f}")
    kl = unused_latents(by_seed(exp, results, c["data"], c["a"]), float(c.get("kl_threshold", KL_UNUSED)))
    if kl is not None:
        return text, f"latents unused: {_label(exp, c['a'])}'s test KL is {kl:.3f} nats per step"
    return text, _verdict(*_lower_is_better(v))


MEASURES = {"likelihood": likelihood, "samples": samples, "alignment": alignment, "ordering": ordering,
            "style": style}


def check_claim(exp, c: dict, i: int) -> None:
    """One VrnnError naming the file and the claim for a ``kind`` or an ``estimator`` that does not exist."""
    from ...errors import VrnnError

    if c.get("kind") not in MEASURES:
        raise VrnnError(f"{exp.path}: report_options.claims[{i}].kind = {c.get('kind')!r}; choose one of "
                        f"{', '.join(KINDS)}")
    than = c.get("than", [])
    if not isinstance(than, list) or any(not isinstance(t, dict) or t.get("run") not in exp.runs
                                         or t.get("signal", "delta") not in SIGNAL_NAMES for t in than):
        raise VrnnError(f"{exp.path}: report_options.claims[{i}].than = {than!r}; give a list of controls, each "
                        f'{{ run = "NAME", signal = "delta" }} with NAME one of {", ".join(exp.runs)} and signal one '
                        f"of {', '.join(SIGNAL_NAMES)}")
    if c.get("estimator", "is") not in ESTIMATORS:
        raise VrnnError(f"{exp.path}: report_options.claims[{i}].estimator = {c['estimator']!r}; choose one of "
                        f"{', '.join(ESTIMATORS)} (smc: the particle filter at the largest [eval] smc_particles)")


def claims_table(exp, results: dict) -> list[str]:
    """The markdown claims table of ``report_options.claims`` (empty if none)."""
    entries = exp.report_options.get("claims", [])
    if not entries:
        return []
    lines = ["## The claims, measured", "", "| # | claim | the paper | ours | reproduces? |", "| --- | --- | --- | --- | --- |"]
    for i, c in enumerate(entries, 1):
        check_claim(exp, c, i - 1)
        if c["data"] not in results["evaluations"]:
            text, verdict = f"not measured (nothing evaluated on {c['data']})", "—"
        else:
            text, verdict = MEASURES[c["kind"]](exp, results, c)
        if c.get("not_testable"):  # the measurement stays for the record; the data cannot decide the claim
            verdict = f"not testable on this data: {c['not_testable']}"
        lines.append(f"| {c.get('id', i)} | {c['claim']} ({c['data']}) | {c.get('paper', '')} | {text} | {verdict} |")
    return lines + [""]
