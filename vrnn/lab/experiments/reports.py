"""Report layouts: ``RESULTS.md`` (and figures) from an experiment's ``results.json``.

A report reads only the evaluations, the runs' training records and the experiment file, so
the same checkpoints always render the same file (dates, evaluation times and the evaluating
machine stay in ``results.json``). Layouts (``report = ...`` in the experiment file):

* ``polyphonic``       SRNN Table 2: nats per time step, two normalisations, beside published numbers
* ``speech``           VRNN Table 1: nats per sequence, paired differences with standard errors
* ``handwriting``      VRNN Table 1's IAM-OnDB column, and a Fig. 4-like grid of samples
* ``time_to_quality``  a test-ELBO-against-training-time curve of one run

An experiment that names no layout (a user's own) gets :func:`generic`: every run and seed of each data set,
with its units, mean ± sd over seeds and the learning curves; no paper's text or numbers.

Every layout also draws each data set's learning curves (validation ELBO against steps and
minutes, every run on it) where the runs' records hold them, and is followed by the table of every
run's search (settings chosen on the validation split, :func:`search_section`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ...inference.evaluate import estimate_label
from ...outputs.figures import pyplot, save_figure
from ...training.compare import duration
from .claims import by_seed, claims_table, compare, exact, seed_mean


def fmt(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def command(exp, eval_only: bool = True) -> str:
    return f"`vrnn experiment {exp.path.relative_to(exp.root)}{' --eval-only' if eval_only else ''}`"


def rows(exp, results: dict, data: str):
    """(run spec, run key, evaluation report, training record) of every evaluated run on ``data``, in file order."""
    evals, infos = results["evaluations"].get(data, {}), results["runs"].get(data, {})
    for run, d, seed in exp.cells():
        key = run.key(seed)
        if d == data and key in evals:
            label = run.label if len(run.seeds) == 1 else f"{run.label} (seed {seed})"
            yield run, key, label, evals[key], infos.get(key, {})


def learning_curves(exp, results: dict) -> list[Path]:
    """One PNG per data set: the validation score early stopping watched (the ELBO, or the bound a run
    trains) against steps and against training minutes, every run on it."""
    written = []
    for data in results["evaluations"]:
        curves = [(run, info["curve"]) for run, _, _, _, info in rows(exp, results, data) if info.get("curve")]
        if not curves:
            continue
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100, sharey=True)
        bounds, colours = False, {}
        for run, curve in curves:  # the score early stopping watched: the ELBO, or the bound a run trains
            v = [c.get("valid_score_per_step", c["valid_elbo_per_step"]) for c in curve]
            bounds |= any(c.get("valid_score_per_step", c["valid_elbo_per_step"]) != c["valid_elbo_per_step"]
                          for c in curve)
            first = run.name not in colours  # one colour per model, its seeds alike, labelled once
            colours.setdefault(run.name, f"C{len(colours) % 10}")
            n = len(run.seeds_on(data))
            label = (run.label + (f" ({n} seeds)" if n > 1 else "")) if first else None
            for ax, x in zip(axes, ([c["step"] for c in curve], [c["elapsed_s"] / 60 for c in curve])):
                ax.plot(x, v, color=colours[run.name], lw=1.2, label=label)
        # the first fifth of every curve (the steep start) may fall below the frame; the rest stays in it
        tails = [c.get("valid_score_per_step", c["valid_elbo_per_step"]) for _, curve in curves
                 for c in curve[len(curve) // 5:]]
        top, low = max(tails), min(tails)
        axes[0].set_ylim(low - 0.05 * (top - low + 1e-9), top + 0.05 * (top - low + 1e-9))
        axes[0].set_xlabel("training step")
        axes[1].set_xlabel("training wall-clock minutes")
        axes[0].set_ylabel(("validation score watched: ELBO, or the IWAE/FIVO bound trained" if bounds else
                            "validation ELBO") + " (nats per step, total/total)", fontsize=8 if bounds else None)
        axes[0].set_title(data)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        path = exp.folder / f"curves-{data}.png"
        save_figure(fig, path)
        written.append(path)
    return written


def paragraphs(intro) -> list[str]:
    """``report_options.intro`` as lines: a string is one line, a list is its lines (none: no lines)."""
    return [intro] if isinstance(intro, str) else list(intro or [])


def write(exp, lines: list[str]) -> Path:
    out = exp.folder / "RESULTS.md"
    out.write_text("\n".join(lines).rstrip("\n") + "\n")
    return out


# ---- polyphonic music: SRNN Table 2 --------------------------------------------------------
NORMS = {"total/total": "per_step_total", "mean of pieces": "per_step_mean_of_sequences"}


def checkpoint_mb(exp, report: dict) -> float:
    return (exp.root / report["checkpoint"]).stat().st_size / 2 ** 20


def time_to_best(info: dict) -> float | None:
    """Training seconds at the evaluation ``best.pt`` was taken from (from the learning curve)."""
    at = [c["elapsed_s"] for c in info.get("curve", []) if c["step"] == info.get("best_step")]
    return at[0] if at else None


def seed_groups(found: list) -> dict:
    """run spec -> the (label, report, info) of each of its seeds, in file order."""
    groups: dict = {}
    for run, _, label, r, info in found:
        groups.setdefault(run, []).append((label, r, info))
    return groups


def _spread(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def polyphonic(exp, results: dict) -> Path:
    k = exp.eval.iw_samples
    lines = [
        f"# {exp.title}", "",
        f"Written by {command(exp)}. Test split; all numbers in **nats per time step** (higher is "
        "better). Two normalisations: **total/total** = total log-likelihood of the test set over its total number "
        "of steps; **mean of pieces** = mean over pieces of each piece's per-step average. Log-likelihoods are exact "
        f"for the RNN and importance-sampled with K = {k} posterior samples for the latent-variable "
        "models (a stochastic lower bound that tightens with K). A model with several seeds has one row per seed "
        "and a row **mean ± sd** (standard deviation over seeds). *stopped*: early_stopping (patience spent after "
        "the last learning-rate drop) or max_steps; *to best*: training minutes until the evaluation the checkpoint "
        "was taken from.", "", *exp.report_options.get("intro", []), "",
    ]
    published = exp.report_options.get("published", [])
    for data, spec in exp.data.items():
        found = list(rows(exp, results, data))
        if not found:
            continue
        first = found[0][3]
        lines += [f"## {data}", "", f"Framing: {spec.about}. Test set: {first['num_sequences']} pieces, "
                  f"{first['num_steps']} steps.", "",
                  "| model | ELBO total/total | ELBO mean of pieces | log-lik. total/total | log-lik. mean of pieces "
                  "| KL per step | log-lik. method | train steps | stopped | train time | to best | checkpoint MB "
                  "| trained on |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |"]
        for run, group in seed_groups(found).items():
            for label, r, info in group:
                exact = r["log_likelihood_method"] == "exact"
                method = "exact" if exact else f"IS, K={r['iw_samples']}"
                lines.append(
                    f"| {label} | {fmt(r['elbo']['per_step_total'])} | {fmt(r['elbo']['per_step_mean_of_sequences'])} "
                    f"| {fmt(r['log_likelihood']['per_step_total'])} "
                    f"| {fmt(r['log_likelihood']['per_step_mean_of_sequences'])} "
                    f"| {'—' if exact else _kl(r['kl']['per_step_total'])} | {method} | {info.get('steps', '—')} "
                    f"| {info.get('stopped', '—')} | {duration(info.get('train_seconds'))} "
                    f"| {duration(time_to_best(info))} | {checkpoint_mb(exp, r):.1f} | {info.get('hardware', '—')} |")
            if len(group) > 1:
                cells = [_spread([r[key][norm] for _, r, _ in group])
                         for key in ("elbo", "log_likelihood") for norm in NORMS.values()]
                kls = [r["kl"]["per_step_total"] for _, r, _ in group if r["log_likelihood_method"] != "exact"]
                cells.append(f"{_kl(min(kls))} – {_kl(max(kls))}" if kls else "")
                secs = [i["train_seconds"] for _, _, i in group if "train_seconds" in i]
                span = f"{duration(min(secs))} – {duration(max(secs))}" if secs else ""
                lines.append(f"| **{run.label}: mean ± sd, {len(group)} seeds** | " + " | ".join(cells)
                             + f" | | | | {span} | | | |")
        lines += ["", *polyphonic_particle_filter(found), *polyphonic_targets(published, data, found)]
    return write(exp, lines + emission_cost(exp) + curve_links(exp, results))


def _kl(v: float) -> str:
    """A KL per step to 2 significant digits, so a collapsed one (0.0002) does not print as 0.000."""
    return f"{v:.2g}" if abs(v) < 0.01 else fmt(v)


def emission_cost(exp) -> list[str]:
    """``report_options.emission_speed``: the JSON file scripts/emission_speed.py --out wrote, against issue 24's
    target (the ``nade`` emission's log_prob, forward and backward, at most 2× the factorised Bernoulli's SRNN
    training step)."""
    name = exp.report_options.get("emission_speed")
    path = exp.folder / name if name else None
    if path is None or not path.is_file():
        return []
    m = json.loads(path.read_text())
    em, step = m["emission_log_prob_fwd_bwd_ms"], m["srnn_training_step_ms"]
    ratio = em["nade"] / step["bernoulli"]
    return ["## Cost of the NADE output", "",
            f"`{m['command']}` on {m['hardware']}, {m['date']} (1-minute load average {m['load_average']['start'][0]:.2f} "
            f"at start, {m['load_average']['end'][0]:.2f} at end); medians of {m['repeats']} repeats at the `srnn-polyphonic` "
            f"bench shapes (B 16, T 100, 88 keys, NADE of {m['hidden']} units; random frames with 10 % of the keys on: "
            "NADE's cost grows with the keys on, and real piano rolls hold fewer: at most 4 at once in the JSB arrays, "
            "9 in Nottingham's):", "",
            "| | Bernoulli | NADE |", "| --- | ---: | ---: |",
            f"| log_prob, forward and backward | {em['bernoulli']:.0f} ms | {em['nade']:.0f} ms |",
            f"| whole SRNN training step | {step['bernoulli']:.0f} ms | {step['nade']:.0f} ms "
            f"({step['nade'] / step['bernoulli']:.1f}×) |", "",
            f"Target (issue 24): NADE's log_prob at most 2× the Bernoulli SRNN's training step: {ratio:.2f}× — "
            f"{'met' if ratio <= 2 else 'NOT met'}.", ""]


def polyphonic_targets(published: list[dict], data: str, found: list) -> list[str]:
    """Each published number on ``data`` and, for its ``targets`` runs, ours against it: the mean over seeds
    and the worst seed (``every_seed = true``: the target is met only if every seed meets it), in the
    entry's ``normalisation`` (default total/total); ``above = "run"``: every target run's mean above that run's (``every_seed``: every seed above every seed of
    that run); ``margin``: met within this much below the number."""
    lines = ["Published numbers on this data (SRNN Table 2, as listed in ../shared/data/README.md; the "
             "normalisation is the source paper's):", ""]
    groups = seed_groups(found)
    by_name = {run.name: g for run, g in groups.items()}
    for p in (p for p in published if p["data"] == data):
        if p.get("value") is None and "above" not in p:
            lines.append(f"- {p['label']}: {p.get('what') or 'different framing'} — not comparable with the rows above.")
            continue
        key = "elbo" if p["what"] == "ELBO" else "log_likelihood"
        norm = p.get("normalisation", "total/total")
        verdicts = []
        for run, group in groups.items():
            if run.name not in p.get("targets", []):
                continue
            v = [r[key][NORMS[norm]] for _, r, _ in group]
            if "above" in p:
                if by_name.get(p["above"]):
                    verdicts.append(_above(p, key, norm, run.label, group, by_name[p["above"]]))
                continue
            worst, bar = min(v), p["value"] - p.get("margin", 0.0)  # margin: met within this much of the number
            ok = worst >= bar if p.get("every_seed") else float(np.mean(v)) >= bar
            seeds = f", worst of {len(v)} seeds {worst:.3f}" if len(v) > 1 else ", 1 seed"
            verdicts.append(f"{run.label} {_spread(v)}{seeds} (mean − published {float(np.mean(v)) - p['value']:+.3f}): "
                            f"{'met' if ok else 'NOT met'}")
        rule = (" on every seed" if p.get("every_seed") else "") + (
            f", met at {p['value'] - p['margin']:.2f} or above (within {p['margin']:g})" if p.get("margin") else "")
        head = (f"- {p['label']}: {p['what']} {p['value']:.2f}" if p.get("value") is not None
                else f"- {p['label']}")
        lines.append(head + (f"; ours ({p['what']}, {norm}{rule}): " + "; ".join(verdicts) if verdicts else "") + ".")
    return lines + [""]


def polyphonic_particle_filter(found: list) -> list[str]:
    """The particle filter's log-likelihood (total/total, nats per step) at every K of each run whose seeds all
    have it, beside the importance-sampled one: a tighter lower bound as K grows."""
    lines = []
    for run, group in seed_groups(found).items():
        reps = [r for _, r, _ in group]
        ks = _common_ks(reps)
        if ks:
            cells = [f"IS, K = {reps[0]['iw_samples']}: {_spread([r['log_likelihood']['per_step_total'] for r in reps])}"]
            cells += [f"particle filter, K = {k}: {_spread([_pf_value(r, k, 'total/total') for r in reps])}" for k in ks]
            lines.append(f"- {run.label} ({len(reps)} seed{'s' * (len(reps) > 1)}): " + "; ".join(cells) + ".")
    head = ["Log-likelihood of the latent models by the particle filter (the posterior as proposal, systematic "
            "resampling when the effective sample size falls below K/2), total/total, nats per step: like importance "
            "sampling a lower bound in expectation, tighter as K grows.", ""]
    return head + lines + [""] if lines else []


def _above(p: dict, key: str, norm: str, label: str, group: list, base_group: list) -> str:
    """The verdict of a published entry's ``above`` rule for one run: every seed (``every_seed``) or the mean above
    the other run's. A log-likelihood is read from the particle filter at the largest K every seed has (the
    tightest bound evaluated), else from the table's estimate; a lower bound below an exact likelihood shows
    nothing (the claims' rule), so it is "not shown", never "NOT above"."""
    k = (_common_ks([r for _, r, _ in group]) or [None])[-1] if key == "log_likelihood" else None
    v = [_pf_value(r, k, norm) if k else r[key][NORMS[norm]] for _, r, _ in group]
    base = [r[key][NORMS[norm]] for _, r, _ in base_group]
    # every_seed: every seed of the run above every seed of the other (the claims table's rule)
    ok = min(v) > max(base) if p.get("every_seed") else float(np.mean(v)) > float(np.mean(base))
    seeds = (f" (worst seed {min(v):.3f}, best of theirs {max(base):.3f}; {len(v)} vs {len(base)} seeds)"
             if p.get("every_seed") else f" ({len(v)} vs {len(base)} seeds)")
    how = f" by the particle filter, K = {k}" if k else ""
    bound = key == "log_likelihood" and not any(exact(r) for _, r, _ in group) and all(exact(r) for _, r, _ in base_group)
    verdict = "above" if ok else "not shown: a lower bound below an exact likelihood" if bound else "NOT above"
    return f"{label}{how} {_spread(v)} vs {_spread(base)}{seeds}: {verdict}"


def _common_ks(reps: list[dict]) -> list[int]:
    """The particle counts every report of ``reps`` was evaluated with, in increasing order."""
    return sorted(set.intersection(*(set(map(int, r.get("smc_particles", {}))) for r in reps))) if reps else []


def _pf_value(r: dict, k: int, norm: str) -> float:
    """A report's particle-filter log-likelihood at ``k`` particles in nats per step, normalised as ``norm``."""
    seqs = np.asarray(r["smc_particles"][str(k)]["sequences"], dtype=np.float64)
    lengths = np.asarray(r["sequences"]["lengths"], dtype=np.float64)
    return float(seqs.sum() / lengths.sum()) if norm == "total/total" else float(np.mean(seqs / lengths))


def curve_links(exp, results: dict) -> list[str]:
    paths = learning_curves(exp, results)
    return [f"![learning curves: {p.stem[7:]}]({p.name})" for p in paths] + ([""] if paths else [])


# ---- speech: VRNN Table 1 -------------------------------------------------------------------
def _speech_cell(r: dict | None) -> str:
    """nats per sequence; with several seeds the mean over seeds, ± the standard deviation over seeds."""
    if r is None:
        return "—"
    ll = r["log_likelihood"]
    spread = f" ± {ll['sd_over_seeds']:.0f} ({r['seeds']} seeds)" if r.get("seeds", 1) > 1 else ""
    if r["log_likelihood_method"] == "exact":
        return f"{ll['per_sequence']:.0f}{spread}"
    return f"≥ {r['elbo']['per_sequence']:.0f} (≈ {ll['per_sequence']:.0f}{spread})"


def _published_cell(value, exact: bool) -> str:
    if not value or value[0] is None:
        return "—"
    elbo, iw = value[0], value[1] if len(value) > 1 else None
    return f"{elbo}" if exact else f"≥ {elbo}" + (f" (≈ {iw})" if iw is not None else "")


def speech(exp, results: dict) -> Path:
    opts = exp.report_options
    corpora = [d for d in exp.data if d in results["evaluations"]]
    published, columns = opts.get("published", {}), opts.get("published_columns", [])
    lines = [f"# {exp.title}", "", f"Generated by {command(exp)}.", "", *claims_table(exp, results),
             *opts.get("intro", []), ""]
    lines += ["| Model | " + " | ".join(exp.data[c].about for c in corpora) + " | "
              + " | ".join(f"{c} (published)" for c in columns) + " |", "|" + " --- |" * (len(corpora) + len(columns) + 1)]
    for run in (r for r in exp.runs.values() if r.name not in output_runs(opts)):
        exact = run.name.startswith("rnn-")
        cells = [_speech_cell(seed_mean(exp, results, c, run)) for c in corpora]
        pub = [_published_cell(published.get(run.name, {}).get(col.lower()), exact) for col in columns]
        lines.append(f"| {run.label} | " + " | ".join(cells + pub) + " |")
    lines += ["", opts.get("published_note", ""), "", *speech_questions(exp, results, corpora),
              *output_table(exp, results), *particle_filter_table(exp, results, corpora),
              *speech_data(exp, results, corpora),
              opts.get("configs_note", "") + " Per-sequence numbers: `checkpoints/<data>/*.sequences.json`.", ""]
    return write(exp, lines + speech_figures(exp, results) + curve_links(exp, results))


def output_runs(opts: dict) -> set[str]:
    """The runs that only ``report_options.outputs`` shows (every row but the first, whose runs the main table has)."""
    return {name for row in opts.get("outputs", {}).get("rows", [])[1:] for name in row[1:]}


def output_table(exp, results: dict) -> list[str]:
    """``report_options.outputs`` (issue 24, Dai et al. 2019's question): one row per output distribution, one
    column per model, on one data set; each cell the test log-likelihood, mean ± sd over seeds, in nats per
    sequence, and in bits per frame where the output is discrete (a probability of the 16-bit values)."""
    opts = exp.report_options.get("outputs")
    if not opts or opts["data"] not in results["evaluations"]:
        return []
    data, models = opts["data"], opts["models"]

    def cell(name: str) -> str:
        reps = by_seed(exp, results, data, name) if name in exp.runs else []
        if not reps:
            return "—"
        nats = _over_seeds([np.mean(r["sequences"]["log_likelihood"]) for r in reps])
        how = "exact" if reps[0]["log_likelihood_method"] == "exact" else f"IS, K = {reps[0]['iw_samples']}"
        bits = (f"; {_over_seeds([r['bits_per_frame']['per_step_total'] for r in reps])} bits per frame"
                if all("bits_per_frame" in r for r in reps) else "")
        return f"{nats}{bits} ({how}; {len(reps)} seed{'s' * (len(reps) > 1)})"

    lines = ["## Output distributions (Dai et al. 2019's question)", "", opts.get("intro", ""), "",
             "| output | " + " | ".join(models) + " |", "| --- |" + " --- |" * len(models)]
    lines += [f"| {row[0]} | " + " | ".join(cell(name) for name in row[1:]) + " |" for row in opts["rows"]]
    return lines + [""]


def speech_questions(exp, results: dict, corpora: list[str]) -> list[str]:
    """``report_options.comparisons``: each question answered on each corpus by the claims table's rule."""
    lines = ["## The paper's question, answered on our data", "",
             "The rule of the claims table: the difference of the seed means of the test log-likelihood (nats per "
             "sequence), its standard error from a bootstrap clustered by source file, and the seed pairs; "
             "resolved only when the gap is beyond two standard errors and every seed pair agrees.", ""]
    for c in corpora:
        lines += [f"**{exp.data[c].about}**", ""]
        for a, b, question in exp.report_options.get("comparisons", []):
            r = compare(exp, results, c, a, b)
            if r is not None:
                la, lb = exp.runs[a].label, exp.runs[b].label
                lines.append(f"- {question} {la} − {lb} = {r['gap']:+.1f} ± {r['se']:.1f} nats per sequence, "
                             f"{la} ahead in {r['above']} of {r['pairs']} seed pairs: {r['verdict']}.")
        lines.append("")
    return lines


def _over_seeds(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def particle_filter_table(exp, results: dict, corpora: list[str]) -> list[str]:
    """Each latent model's test log-likelihood by the particle filter at every K of ``[eval] smc_particles``,
    beside the importance-sampled one, and the rule that says when two latent models are rankable by it."""
    ks = sorted({*exp.eval.smc_particles, *(k for r in exp.runs.values() for k in r.smc_particles or ())})
    if not ks:
        return []
    lines = ["## Particle-filter estimates at several K", "",
             f"Test log-likelihood of each latent-variable model in **nats per sequence** (mean over seeds of the "
             f"per-sequence average, ± sd over seeds): importance sampling with K = {exp.eval.iw_samples} posterior "
             "samples, and a particle filter with K particles (the model's posterior as proposal, systematic "
             "resampling when the effective sample size falls below K/2). Both estimate log p(x) from below in "
             "expectation and rise towards it with K. **Rule:** a claim that ranks two latent models by the particle "
             f"filter (`estimator = \"smc\"`) compares them at the largest K ({ks[-1]}) and says *not rankable* when "
             "the estimate has not settled: when either model's estimate changed from the second-largest K to the "
             "largest by more than the gap between the two models." + (
                 " A run with its own `smc_particles` (a costly model) shows — at a K it skips, and its settling is "
                 "judged between its own two largest K." if any(r.smc_particles is not None for r in exp.runs.values())
                 else ""), ""]
    for c in corpora:
        found = []
        for run in exp.runs.values():
            reps = by_seed(exp, results, c, run.name)
            if not reps or not all("smc_particles" in r for r in reps):
                continue
            cells = [_over_seeds([np.mean(r["sequences"]["log_likelihood"]) for r in reps])]
            cells += [_over_seeds([np.mean(r["smc_particles"][str(k)]["sequences"]) for r in reps])
                      if all(str(k) in r["smc_particles"] for r in reps) else "—" for k in ks]
            found.append(f"| {run.label} | {len(reps)} | " + " | ".join(cells) + " |")
        if found:
            lines += [f"**{exp.data[c].about}**", "",
                      f"| model | seeds | IS, K = {exp.eval.iw_samples} | " + " | ".join(f"PF, K = {k}" for k in ks)
                      + " |", "| --- | ---: |" + " ---: |" * (len(ks) + 1), *found, ""]
    return lines


def speakers(m: dict) -> str:
    """The speakers of each split of a data summary, in words ("" when the data do not record them)."""
    spk = m.get("speakers")
    if not spk:
        return ""
    return "; speakers: " + ", ".join(f"{s} {' '.join(spk[s]) or '—'}" for s in ("train", "valid", "test")
                                      if s in spk)


def speech_data(exp, results: dict, corpora: list[str]) -> list[str]:
    """The data sets (rate, framing, split sizes, the split and its speakers) and every run's training record."""
    lines = ["## Data and training", "",
             "| corpus | rate | frames × samples | sequence | train / valid / test sequences | split |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c in corpora:
        m = results["data"][c]
        counts = " / ".join(str(m["sequences"][s]) for s in ("train", "valid", "test"))
        lines.append(f"| {c} | {m['rate']} Hz | {m['sequence_frames']} × {m['frame_size']} | "
                     f"{m['sequence_seconds']:g} s | {counts} | {m['split']}{speakers(m)} |")
    lines += ["", "| corpus | model | parameters | steps | train minutes | stopped | checkpoint MB |",
              "| --- | --- | ---: | --- | --- | --- | --- |"]
    for c in corpora:
        for run, key, label, r, info in rows(exp, results, c):
            lines.append(f"| {c} | {label} | {parameters(exp, r):,} | {r['step']} | "
                         f"{info.get('train_seconds', float('nan')) / 60:.1f} | {info.get('stopped', '?')} | "
                         f"{checkpoint_mb(exp, r):.1f} |")
    return lines + stored_weights_note(exp, results) + [""]


def stored_weights_note(exp, results: dict) -> list[str]:
    """How the evaluated checkpoints store their weights, when some are in 8 bits (``weights = "int8"``)."""
    from ...checkpoint import stored_weights

    kinds: dict[str, list[str]] = {}
    for name, reps in results["evaluations"].items():
        for key, r in reps.items():
            kinds.setdefault(stored_weights(exp.root / r["checkpoint"]), []).append(f"{name}/{key}")
    if "int8" not in kinds:
        return []
    others = "; ".join(f"in {kind}: {', '.join(keys)}" for kind, keys in kinds.items() if kind != "int8")
    return ["", f"{len(kinds['int8'])} of these checkpoints store each weight matrix in 8 bits with one float32 "
            "scale per row (`weights = \"int8\"`)" + (f"; those exported before that setting, {others}" if others
                                                       else "") + ". Every number on this page is computed from the "
            "files as stored; the validation scores of each run's .json (its learning curve) are those of its "
            "float32 weights during training."]


def parameters(exp, report: dict) -> int:
    """The number of parameters of an evaluated checkpoint's model."""
    from ...checkpoint import load_model

    return sum(p.numel() for p in load_model(exp.root / report["checkpoint"])[0].parameters())


def speech_figures(exp, results: dict) -> list[str]:
    """VRNN Fig. 2 and Fig. 3 from the committed checkpoints (each run's first seed), as ``report_options``
    asks: ``fig2 = { data, run, input, seconds }`` (``input``: a recording, relative to the folder the data
    set was prepared from, or absolute) and ``fig3 = { data, runs, seconds }``. Seeded, so the same
    checkpoints draw the same figures."""
    from ..analysis import analyze_checkpoint, waveforms_figure
    from ...outputs.audio import KL_CLIP

    opts, lines = exp.report_options, []

    def first(data: str, run: str) -> Path | None:
        reps = by_seed(exp, results, data, run)
        return exp.root / reps[0]["checkpoint"] if reps else None

    if (f := opts.get("fig2")) and (ckpt := first(f["data"], f["run"])):
        out = exp.folder / f"fig2-{f['data']}-{f['run']}.png"
        recording = Path(results["data"][f["data"]].get("prepared_from", "")) / f["input"]
        analyze_checkpoint(ckpt, recording, out=out, seconds=f.get("seconds"), overwrite=True)
        lines += [f"**Fig. 2** ({exp.runs[f['run']].label}, {ckpt.name}, on the first {f.get('seconds', 'all'):g} s "
                  f"of the test recording `{f['input']}`): the change of the posterior mean δ_t, the KL of "
                  f"each latent dimension per step (colour clipped at the {KL_CLIP}th percentile of the values drawn, "
                  "so a few large steps do not leave the rest black; the colour bar gives the clip), and the "
                  "waveform.",
                  "", f"![Fig. 2]({out.name})", ""]
    if (f := opts.get("fig3")) and all(ckpts := [first(f["data"], r) for r in f["runs"]]):
        out = exp.folder / f"fig3-{f['data']}-waveforms.png"
        seconds, zoom = float(f.get("seconds", 2.0)), float(f.get("zoom", 0.05))
        waveforms_figure(ckpts, out, seconds=seconds, zoom=zoom, overwrite=True)
        lines += [f"**Fig. 3** ({', '.join(c.name for c in ckpts)}): training audio and one unconditional sample "
                  f"of each model, {seconds:g} s whole (left) and zoomed (right) on the loudest {zoom * 1000:g} ms of "
                  "each row (voiced speech in the recording; shaded on the left), every row on one amplitude scale.",
                  "",
                  f"![Fig. 3]({out.name})", ""]
    return lines


# ---- handwriting: VRNN Table 1, IAM-OnDB column ------------------------------------------------
def handwriting(exp, results: dict) -> Path:
    """One row per model (mean ± sd over its seeds where it has several), then every seed's own row; the
    samples of Fig. 4 from each model's first seed."""
    from ...checkpoint import load_model

    opts = exp.report_options
    (data,) = [d for d in exp.data if d in results["evaluations"]]
    found = list(rows(exp, results, data))
    groups = seed_groups(found)
    first = found[0][3]
    deq = first.get("dequantized")
    lines = [
        f"# {exp.title}", "", *claims_table(exp, results),
        f"Written by {command(exp)}. Test split of the Omniglot stroke-3 data "
        f"({first['num_sequences']} drawings, {first['num_steps']} steps); **nats per sequence**, "
        "higher is better. Each step is (Δx, Δy, pen-up); only Δx, Δy are normalised (global mean/std of the "
        "training offsets, as in the paper), and the numbers are the densities of the normalised data, like the "
        f"paper's. Log-likelihood: exact for the RNNs, importance-sampled with K = {exp.eval.iw_samples} posterior "
        "samples for the VRNNs (an estimate of a lower bound that tightens with K). KL: the test ELBO's KL term, "
        "nats per sequence (near 0: the model does not use its latent variables).", "",
        *_dequantized_units(deq),
        *paragraphs(opts.get("intro")), *([""] if opts.get("intro") else []),
        "| model | output (K components) | seeds | steps | test ELBO | test log-likelihood | KL | per step (LL) | "
        "original units (LL) | paper, IAM-OnDB: ELBO / LL |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    published, models = opts.get("published", {}), {}
    for run, seeds in groups.items():
        reps = [r for _, r, _ in seeds]
        exact = reps[0]["log_likelihood_method"] == "exact"
        pe, pl = published.get(run.name, [None, None])
        paper = (f"{pl}" if exact else f"≥ {pe} / ≈ {pl}") if pl is not None else "—"
        models[run.label] = load_model(exp.root / reps[0]["checkpoint"])
        k = models[run.label][0].cfg.emission.components
        lines.append(f"| {run.label} | pen strokes (K = {k}) | {len(reps)} | {_steps(reps)} | "
                     f"{'= LL' if exact else '≥ ' + _stat(reps, 'elbo', 'per_sequence', 1)} | "
                     f"{'' if exact else '≈ '}{_stat(reps, 'log_likelihood', 'per_sequence', 1)} | "
                     f"{'—' if exact else _stat(reps, 'kl', 'per_sequence', 2)} | "
                     f"{_stat(reps, 'log_likelihood', 'per_step_total', 3)} | {_original(reps)} | {paper} |")
    if any(len(seeds) > 1 for seeds in groups.values()):
        lines += ["", "Mean ± standard deviation over the seeds. Every seed:", "",
                  "| model | seed | steps | test ELBO | test log-likelihood | KL | original units (LL) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for run, _, _, r, info in found:
            exact = r["log_likelihood_method"] == "exact"
            lines.append(f"| {run.label} | {info.get('seed', '—')} | {r['step']} | "
                         f"{'= LL' if exact else '≥ ' + fmt(r['elbo']['per_sequence'], 1)} | "
                         f"{fmt(r['log_likelihood']['per_sequence'], 1)} | "
                         f"{'—' if exact else fmt(r['kl']['per_sequence'], 2)} | {_original([r])} |")
    figure = samples_grid(exp, results["data"][data]["source"], models, opts.get("figure", {}))
    lines += ["", *opts.get("notes", []), "",
              f"![training drawings and unconditional samples (each model's first seed)]({figure.name})", "",
              "Checkpoints: `checkpoints/<data>/<model>.pt`, or `<model>-seed<N>.pt` for a model with several seeds "
              "(each with a .json of its training run: steps, time, hardware, overrides).", ""]
    return write(exp, lines + curve_links(exp, results))


def _stat(reps: list[dict], key: str, norm: str, digits: int) -> str:
    return _spread([r[key][norm] for r in reps], digits)


def _steps(reps: list[dict]) -> str:
    steps = [r["step"] for r in reps]
    return f"{min(steps)}–{max(steps)}" if min(steps) != max(steps) else f"{steps[0]}"


def _original(reps: list[dict]) -> str:
    values = [r.get("original_units", {}).get("log_likelihood", {}).get("per_sequence") for r in reps]
    return "—" if None in values else _spread(values, 1)


def _dequantized_units(deq: dict | None) -> list[str]:
    """What the numbers are when the offsets were dequantised (``data.dequantize``)."""
    if not deq:
        return []
    return [f"**Dequantised offsets.** The {deq['features']} offsets of every step are integers (pixels); each "
            f"gets uniform noise of one grid cell (width {deq['width']:g}, in training a new draw every step, in "
            "evaluation one fixed draw per drawing), so the densities above are of the dequantised, normalised "
            "offsets. The *original units* column converts them to pixels and adds the "
            f"{deq['features']} × log {deq['width']:g} per step of the cell's width: it estimates a lower bound on "
            "the log-probability of the drawings as recorded, on the integer grid — a probability, comparable "
            "across models and free of the spikes a density can put on grid points (Theis et al. 2016).", ""]


def samples_grid(exp, source: str, models: dict, opts: dict) -> Path:
    """VRNN Fig. 4: training drawings next to unconditional samples of each model (seeded)."""
    from ...data import DataConfig, load_dataset
    from ...outputs.strokes import strokes_grid_png
    from ...inference.sampling import sample

    rows_, seed = int(opts.get("rows", 8)), int(opts.get("seed", 0))
    train = load_dataset(DataConfig(source=source)).splits["train"]
    pick = np.random.default_rng(seed).choice(len(train), rows_, replace=False)
    steps = int(opts.get("steps") or np.median([len(a) for a in train]))
    columns = [("training data", [train[i] for i in pick])]
    columns += [(label, list(sample(m, steps, rows_, norm, seed))) for label, (m, norm, _) in models.items()]
    out = exp.folder / "samples.png"
    strokes_grid_png(out, columns)
    return out


# ---- bounds: FIVO Table 1 ---------------------------------------------------------------------
def bounds(exp, results: dict) -> Path:
    """Rows: the training objective; columns: the test ELBO, the IWAE bound (IS) and the FIVO bound (SMC),
    each in nats per time step (total/total), and the training time per step relative to the first run."""
    k = exp.eval.iw_samples
    lines = [f"# {exp.title}", "", f"Written by {command(exp)}. Test split, **nats per time step** (total over "
             f"total steps; higher is better). Every model is evaluated under all three bounds: the ELBO, the "
             f"IWAE bound with K = {k} posterior samples (importance sampling) and the FIVO bound with K = {k} "
             "particles (a particle filter with the model's posterior as proposal, systematic resampling when the "
             "effective sample size falls below K/2). Time per step: training seconds per optimiser step, "
             "relative to the first row's.", "", *exp.report_options.get("intro", []), ""]
    for data, spec in exp.data.items():
        found = list(rows(exp, results, data))
        if not found:
            continue
        base = found[0][4].get("seconds_per_step")
        first = found[0][3]
        lines += [f"## {data}", "", f"{spec.about}. Test set: {first['num_sequences']} sequences, "
                  f"{first['num_steps']} steps.", "",
                  "| model: trained with | test ELBO | test IWAE (IS) | test FIVO (SMC) | steps | stopped | time per step |",
                  "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
        for run, key, label, r, info in found:
            smc = r.get("log_likelihood_smc", {}).get("per_step_total")
            rel = info.get("seconds_per_step")
            lines.append(f"| {label} | {fmt(r['elbo']['per_step_total'])} | {fmt(r['log_likelihood']['per_step_total'])} "
                         f"| {fmt(smc)} | {info.get('steps', '—')} | {info.get('stopped', '—')} | "
                         f"{'—' if rel is None or not base else f'{rel / base:.2f}×'} |")
        lines += ["", *seed_summary(found)]
        lines += anomaly_section(exp, results, data, found)
    return write(exp, lines + curve_links(exp, results))


def seed_summary(found: list) -> list[str]:
    """For every run with several seeds: mean ± standard deviation over the seeds and the worst seed."""
    out = []
    for run in dict.fromkeys(r for r, *_ in found):
        reps = [r for rr, _, _, r, _ in found if rr is run]
        if len(reps) < 2:
            continue
        cells = []
        for key, name in (("elbo", "ELBO"), ("log_likelihood", "IWAE"), ("log_likelihood_smc", "FIVO")):
            v = np.array([r[key]["per_step_total"] for r in reps if key in r])
            if len(v) == len(reps):
                cells.append(f"{name} {v.mean():.3f} ± {v.std(ddof=1):.3f} (worst {v.min():.3f})")
        out.append(f"- {run.label}, {len(reps)} seeds: " + "; ".join(cells) + ".")
    return out + ([""] if out else [])


def anomaly_section(exp, results: dict, data: str, found: list) -> list[str]:
    """``report_options.anomaly`` (or ``anomaly-<data>``, for one data set): per-step scores of the test
    sequences with injected segments (:mod:`.anomaly`)."""
    opts = exp.report_options.get(f"anomaly-{data}", exp.report_options.get("anomaly"))
    if not opts or not any(run.name in opts.get("runs", []) for run, *_ in found):
        return []
    from ...checkpoint import load_model
    from ...data import DataConfig, load_dataset
    from .anomaly import anomaly_aucs, kinds_for

    seed, particles = int(opts.get("seed", 0)), int(opts.get("particles", 100))
    loaded = load_dataset(DataConfig(source=results["data"][data]["source"]))
    kind = loaded.meta.get("kind", "pianoroll")
    kinds = kinds_for(kind)
    lines = ["### Anomaly detection with per-step scores", "", opts.get("intro", ""), "",
             "| model (score) | " + " | ".join(f"ROC AUC, {k}" for k in (*kinds, "all")) + " |",
             "| --- |" + " ---: |" * (len(kinds) + 1)]
    for run, key, label, r, info in found:
        if run.name not in opts.get("runs", []):
            continue
        model, norm, _ = load_model(exp.root / r["checkpoint"])
        how = "exact" if not model.has_latents else f"particle filter, K = {particles}"
        aucs = anomaly_aucs(model, norm, loaded.splits["test"], seed, particles, data_kind=kind)
        lines.append(f"| {label} ({how}) | " + " | ".join(f"{aucs[k]:.3f}" for k in (*kinds, "all")) + " |")
    return lines + [""]


# ---- time to quality -------------------------------------------------------------------------
def _time_to(curve: list[dict], level: float) -> dict:
    """The first evaluation of ``curve`` whose validation ELBO is at least ``level``."""
    return next(p for p in curve if p["valid_elbo_per_step"] >= level)


def time_to_quality(exp, results: dict) -> Path:
    """The run's validation ELBO against training minutes (what early stopping and the checkpoint read), the
    time to its best and to within ``near`` nats of it, and the test score of that checkpoint, once."""
    opts = exp.report_options
    target, near = opts["target"], float(opts.get("near", 0.05))
    (data,) = [d for d in exp.data if d in results["runs"]]
    (_, _, label, r, info) = next(rows(exp, results, data))
    curve = info["curve"]
    best = max(curve, key=lambda p: p["valid_elbo_per_step"])
    close = _time_to(curve, best["valid_elbo_per_step"] - near)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([p["elapsed_s"] / 60 for p in curve], [p["valid_elbo_per_step"] for p in curve], "o-", ms=3,
            label="validation ELBO, total / total steps")
    ax.axvline(best["elapsed_s"] / 60, color="grey", ls=":", label=f"best (the checkpoint), step {best['step']}")
    ax.set_ylim(best["valid_elbo_per_step"] - 1.0, best["valid_elbo_per_step"] + 0.2)
    ax.set_xlabel("training wall-clock time (minutes)")
    ax.set_ylabel("validation ELBO (nats per time step)")
    ax.set_title(f"{label} on {data}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, exp.folder / "curve.png")
    test = r["elbo"]["per_step_mean_of_sequences"]
    first, *more = paragraphs(opts.get("intro")) or [""]  # the hardware ends the first line
    lines = [f"# {exp.title}", "", first + f" {info.get('hardware', '')}.", "", *more, *([""] if more else []),
             f"**Validation (what chose the checkpoint):** best ELBO {best['valid_elbo_per_step']:.3f} nats per step "
             f"at step {best['step']}, after {best['elapsed_s'] / 60:.1f} min; within {near:g} nats of it after "
             f"{close['elapsed_s'] / 60:.1f} min (step {close['step']}); the run stopped ({info.get('stopped', '?')}) "
             f"at step {info.get('steps', '?')} after {info.get('train_seconds', float('nan')) / 60:.1f} min.", "",
             f"**Test split, scored once for that checkpoint:** ELBO {r['elbo']['per_step_total']:.3f} (total over "
             f"total steps), {test:.3f} (mean over pieces of each piece's per-step average, the SRNN paper's "
             f"normalisation): the paper's {target} is {'met' if test >= target else 'NOT met'}. Nothing was chosen "
             f"on it.", "",
             "| minutes | step | validation ELBO (total/total) |", "|---:|---:|---:|"]
    lines += [f"| {p['elapsed_s'] / 60:.1f} | {p['step']} | {p['valid_elbo_per_step']:.3f} |" for p in curve]
    lines += ["", "![curve](curve.png)", "", f"Produced by {command(exp, eval_only=False)}; {command(exp)} "
              "redraws it from the committed checkpoint's record and scores the test split again.", ""]
    return write(exp, lines)


# ---- generic: an experiment that names no layout -----------------------------------------------
def generic(exp, results: dict) -> Path:
    """Any experiment's report: per data set, a table of every run and seed (ELBO and log-likelihood in nats per
    step and per sequence, how it trained) with a mean ± sd row over each run's seeds, and its learning curves."""
    ev, intro = exp.eval, exp.report_options.get("intro", [])
    smc = ev.estimator == "smc"
    # a benchmark of a repository (benchmarks/NAME/) by its path from the root; a user's own file by its name
    shown = exp.path.relative_to(exp.root) if exp.folder.parent.name == "benchmarks" else exp.path.name
    lines = [f"# {exp.title}", "",
             f"Written by `vrnn experiment {shown} --eval-only` from the checkpoints in checkpoints/. "
             f"{ev.split.capitalize()} split; ELBO and log-likelihood in **nats per time step** (total over total "
             "steps) and **nats per sequence** (mean over sequences), higher is better. Log-likelihood: exact for "
             f"models without latent variables, else importance-sampled with K = {ev.iw_samples} posterior samples "
             "(a stochastic lower bound that tightens with K)"
             + (f"; SMC: the particle filter's estimate with K = {ev.iw_samples} particles" if smc else "")
             + ". A run with several seeds has one row per seed and a row **mean ± sd** (standard deviation over "
             "seeds). KL: the ELBO's KL term in nats per time step (near 0: the latents are unused).", "",
             *intro, *([""] if intro else []), *claims_table(exp, results)]
    figures = {p.stem.removeprefix("curves-"): p for p in learning_curves(exp, results)}
    for data, spec in exp.data.items():
        found = list(rows(exp, results, data))
        if found:
            lines += generic_table(data, spec, found, smc, ev.split)
            lines += [f"![learning curves: {data}]({figures[data].name})", ""] if data in figures else []
    return write(exp, lines)


def generic_table(data: str, spec, found: list, smc: bool, split: str) -> list[str]:
    """One data set's section of :func:`generic`."""
    first = found[0][3]
    keys = ["elbo", "log_likelihood", *(["log_likelihood_smc"] if smc else [])]
    names = {"elbo": "ELBO", "log_likelihood": "log-lik.", "log_likelihood_smc": "log-lik. SMC"}
    about = f"{spec.about.rstrip('.')}. " if spec.about else ""
    lines = [f"## {data}", "", f"{about}{split.capitalize()} split: {first['num_sequences']} sequences, "
             f"{first['num_steps']} steps; data scale: {first['data_scale']}.", "",
             "| run | " + " | ".join(f"{names[k]} nats/step | {names[k]} nats/seq." for k in keys)
             + " | KL nats/step | log-lik. method | steps | stopped | train time |",
             "| --- |" + " ---: | ---: |" * len(keys) + " ---: | --- | ---: | --- | ---: |"]
    for run, group in seed_groups(found).items():
        for label, r, info in group:
            lines.append(f"| {label} | " + " | ".join(f"{fmt(r[k]['per_step_total'])} | {fmt(r[k]['per_sequence'], 2)}"
                                                      for k in keys)
                         + f" | {fmt(r['kl']['per_step_total'])} | {estimate_label(r)} | {info.get('steps', '—')} | {info.get('stopped', '—')} "
                         f"| {duration(info.get('train_seconds'))} |")
        if len(group) > 1:
            cells = [_spread([r[k][norm] for _, r, _ in group], digits) for k in keys
                     for norm, digits in (("per_step_total", 3), ("per_sequence", 2))]
            cells.append(_spread([r["kl"]["per_step_total"] for _, r, _ in group], 3))
            lines.append(f"| **{run.label}: mean ± sd, {len(group)} seeds** | " + " | ".join(cells) + " | | | | |")
    return lines + [""]


REPORTS = {"bounds": bounds, "polyphonic": polyphonic, "speech": speech, "handwriting": handwriting, "time_to_quality": time_to_quality}


def render(exp, results: dict) -> Path:
    """``RESULTS.md`` in the experiment's layout (:func:`generic` when it names none), followed by the table of
    every search (:func:`search_section`)."""
    out = REPORTS[exp.report](exp, results) if exp.report else generic(exp, results)
    section = search_section(exp, results)
    return write(exp, out.read_text().splitlines() + [""] + section) if section else out


def _eligible(t: dict) -> str:
    """How a search's KL bar (``search_min_kl``) entered the choice, in words ('' without one)."""
    if not t.get("min_kl"):
        return ""
    if t.get("min_kl_met", True):
        return f", among the candidates whose validation KL is at least {t['min_kl']:g} nats per step (latents in use)"
    return (f"; no candidate reached a validation KL of {t['min_kl']:g} nats per step (latents in use), so the best "
            f"of all is chosen and its latents are not in use")


def search_section(exp, results: dict) -> list[str]:
    """Each run's search (:mod:`vrnn.lab.experiments.search`): every candidate's settings and validation scores,
    the chosen one marked, and how the choice was made."""
    lines = []
    for name, t in results.get("searches", {}).items():
        run = exp.runs[name]
        metric = {"log_likelihood": f"log-lik. (exact, or importance-sampled with K = {t['iw_samples']})",
                  "elbo": "ELBO"}[t["metric"]]
        one_se = t.get("rule") == "one_se"
        rule = (f"among the candidates whose validation {metric} is within one standard error of the best's (the "
                "SE of each one's paired difference from the best over the same validation sequences, bootstrap "
                "by source file), the one with the fewest parameters is chosen (the one-standard-error rule)"
                if one_se else f"the highest validation {metric} is chosen (ties: the first)")
        extra = " | parameters | SE of the difference from the best" if one_se else ""
        lines += [f"### Settings of {run.label}, chosen on validation", "",
                  f"Every candidate trained on {t['data']} (seed {t['seed']}) and scored on its **validation** "
                  f"split, nats per time step (total/total); {rule}{_eligible(t)}. Checkpoints and this table: "
                  f"`{exp.search_folder(run).relative_to(exp.root)}/`.", "",
                  "| candidate | " + " | ".join(t["settings"]) + f" | valid ELBO | valid log-lik. | valid KL{extra} | |",
                  "| --- | " + " | ".join("---:" for _ in t["settings"]) + " | ---: | ---: | ---:"
                  + " | ---: | ---:" * one_se + " | --- |"]
        for c in t["candidates"]:
            values = [o.split("=", 1)[1] for o in c["set"]]
            mark = "**chosen**" if c["candidate"] == t["chosen"] else "" if c.get("eligible", True) else "KL below the bar"
            kl = fmt(c["valid"]["kl"]) if "kl" in c["valid"] else "—"
            more = f" | {c['parameters']:,} | {fmt(c['difference_se'])}" if one_se else ""
            lines.append(f"| c{c['candidate']} | " + " | ".join(values) + f" | {fmt(c['valid']['elbo'])} "
                         f"| {fmt(c['valid']['log_likelihood'])} | {kl}{more} | {mark} |")
        others = [r.label for r in exp.runs.values() if r.settings_from == name]
        users = run.label + "".join(f", {o}" for o in others[:-1]) + (f" and {others[-1]}" if others else "")
        lines += ["", f"{users} train{'s' * (not others)} every seed with `{' '.join(t['chosen_set'])}`: "
                      f"{t['protocol']}.", ""]
    return (["## Settings chosen on the validation split", "", *lines]) if lines else []
