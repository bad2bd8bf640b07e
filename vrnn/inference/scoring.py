"""Per-step scores and continuations of a user's sequences (``vrnn score``, ``vrnn sample --prime``).

* :func:`score_file` — a particle filter's estimate of log p(x_t | x_<t) at every step of every
  sequence of a file (the quantity anomaly detection needs), in nats per step, written as CSV,
  NPY and a PNG of each sequence's signal above its score. The proposal is the model's posterior
  when it is a filter and the prior (a bootstrap filter) otherwise (:func:`vrnn.inference.smc.score_proposal`);
  for the RNN baselines the scores are exact.
* :func:`continue_file` — filter a prefix, then sample its continuation (:func:`vrnn.inference.smc.continue_sequences`).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model
from ..data import pad_batch
from ..data.sources import read_sequences
from ..emissions import check_emission_data
from ..errors import VrnnError, check_count
from ..io import atomic_write, check_writable
from ..outputs.figures import draw_frames, pyplot, save_figure
from .smc import continue_sequences, particle_filter, score_proposal


@torch.no_grad()
def score_sequences_per_step(model, seqs: list[np.ndarray], particles: int = 100, seed: int = 0,
                             device: str | torch.device = "cpu", batch_size: int = 32) -> tuple[list[np.ndarray], str]:
    """log p̂(x_t | x_<t) of every step of every sequence (model units, nats), and the proposal used."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    proposal = score_proposal(model)
    out = []
    for lo in range(0, len(seqs), batch_size):
        chunk = seqs[lo:lo + batch_size]
        x, mask = pad_batch(chunk, device)
        inc = particle_filter(model, x, mask, particles, gen, proposal=proposal).increments.double().cpu().numpy()
        out += [inc[i, :len(a)] for i, a in enumerate(chunk)]
    return out, proposal


def read_for(model, ckpt: dict, source: str | Path, setting: str) -> list[np.ndarray]:
    """The sequences of ``source`` (the option ``setting``: ``--data``, ``--prime``) in original units, checked to
    fit ``model``: its features and its emission's values (binary for Bernoulli, ...); errors name ``setting``."""
    seqs = read_sequences(source, setting, model.cfg.x_dim, ckpt.get("data_meta", {}))
    check_emission_data(model.cfg.emission.name, seqs, f"{setting} {source}")
    return seqs


def score_file(checkpoint: str | Path, data: str | Path, out: str | Path, particles: int = 100, seed: int = 0,
               device: str = "cpu", overwrite: bool = False) -> dict:
    """``vrnn score``: per-step scores of every sequence of ``data``; writes OUT's stem as .csv, .npy and .png."""
    check_count(particles, "--particles")
    stem = Path(out).with_suffix("")
    paths = {s: stem.with_suffix(s) for s in (".csv", ".npy", ".png")}
    check_writable(list(paths.values()), overwrite)
    model, norm, ckpt = load_model(checkpoint)
    model.to(device)
    seqs = read_for(model, ckpt, data, "--data")
    scores, proposal = score_sequences_per_step(model, [norm(a) for a in seqs], particles, seed, device)
    jac = 0.0 if norm.identity else norm.log_jacobian(model.cfg.x_dim)  # to the data's own units
    scores = [s + jac for s in scores]
    stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(paths[".csv"]) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence", "step", "log_p_step_nats"])
        w.writerows((i, t, f"{v:.6f}") for i, s in enumerate(scores) for t, v in enumerate(s))
    grid = np.full((len(scores), max(len(s) for s in scores)), np.nan)
    for i, s in enumerate(scores):
        grid[i, :len(s)] = s
    with atomic_write(paths[".npy"]) as tmp:
        np.save(tmp, grid)
    how = "exact" if proposal == "none" else f"{proposal} proposal, K = {particles}"
    scores_png(paths[".png"], seqs[:4], scores[:4], f"{model.display_name}: log p(x_t | x_<t) ({how})",
               ckpt.get("data_meta", {}))
    return {"paths": list(paths.values()), "proposal": proposal, "sequences": len(seqs),
            "mean_per_step": float(np.nanmean(grid)), "units": "nats per step, the data's own units"}


def scores_png(path: Path, seqs: list[np.ndarray], scores: list[np.ndarray], title: str, meta: dict) -> None:
    """Each sequence's signal above its score: a piano roll by MIDI pitch, features as an image, or the feature
    of one-dimensional data (:func:`vrnn.outputs.figures.draw_frames`; ``meta``: the data's metadata)."""
    plt = pyplot()
    fig, axes = plt.subplots(2 * len(seqs), 1, figsize=(10, 2.6 * len(seqs)), dpi=100, squeeze=False)
    for i, (x, s) in enumerate(zip(seqs, scores)):
        top, bottom = axes[2 * i, 0], axes[2 * i + 1, 0]
        draw_frames(top, x, (-0.5, len(s) - 0.5), meta)
        top.set_ylabel(f"sequence {i}\n{top.get_ylabel()}")
        bottom.plot(s, color="tab:red", lw=1)
        bottom.set_ylabel("log p (nats)")
        bottom.set_xlim(-0.5, len(s) - 0.5)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    save_figure(fig, path)


def continue_file(checkpoint: str | Path, prime: str | Path, steps: int, out: str | Path, prime_steps: int | None = None,
                  n: int = 1, particles: int = 100, seed: int = 0, overwrite: bool = False, **sampling) -> list[Path]:
    """``vrnn sample --prime FILE``: the first sequence of FILE (its first ``prime_steps`` steps) followed by
    ``n`` continuations of ``steps`` steps, written like ``vrnn sample``'s files (prefix and continuation in one)."""
    from ..outputs import write_samples

    for option, value in (("--steps", steps), ("--num", n), ("--particles", particles), ("--prime-steps", prime_steps)):
        if value is not None:  # --prime-steps: optional
            check_count(value, option)
    model, norm, ckpt = load_model(checkpoint)
    prefix = read_for(model, ckpt, prime, "--prime")[0]
    if prime_steps is not None:
        if prime_steps > len(prefix):
            raise VrnnError(f"--prime-steps {prime_steps}: {prime} has {len(prefix)} steps (its first sequence); "
                            f"give --prime-steps {len(prefix)} or fewer, or drop it to continue the whole sequence")
        prefix = prefix[:prime_steps]
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(norm(prefix))[None]
    model.eval()
    cont = continue_sequences(model, x, steps, n, particles, gen, **sampling)[0].numpy()  # (n, steps, D)
    joined = np.concatenate([np.repeat(prefix[None], n, 0), norm.invert(cont)], 1)
    meta = dict(ckpt.get("data_meta", {}), prime_steps=len(prefix))
    return write_samples(joined, Path(out), meta, overwrite, title=f"{model.display_name}: continuation after step "
                                                                     f"{len(prefix)}")
