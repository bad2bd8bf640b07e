"""Watching a run: the progress line on stderr (:class:`Progress`) and TensorBoard logging (:class:`Board`).

The progress line says where the run stands against its stopping rules, not against ``max_steps``: early
stopping ends most runs far sooner, so there is no total and no ETA, only the cap. On a terminal it is a
live bar; otherwise (a file, a pipe, a job scheduler's log) one plain line per evaluation is written.

TensorBoard (``train.tensorboard = true`` writes to ``RUN/tensorboard``, or ``vrnn train --tensorboard
DIR``) gets the evaluation's numbers of ``log.jsonl`` as scalars at the same steps, histograms of the
posterior scales on a validation batch, and a figure of a sample; it needs the ``tensorboard`` extra.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from ..data import pad_batch
from ..errors import VrnnError
from ..models import SequenceModel
from .options import TrainConfig
from .run import RunState


def evaluation_summary(record: dict, state: RunState, tc: TrainConfig) -> str:
    """The state of the stopping rules after an evaluation (``record``, a ``log.jsonl`` line): the validation
    score, the best and its step, the patience left and the learning-rate drops, e.g.
    ``valid elbo -8.1234 | best -8.1002 at step 400 | patience 3/4 | lr 1.0e-03, drops 1/2``; at an evaluation
    that drops the rate, ``lr 1.0e-03 -> 3.0e-04 (drop 2/2)`` and the patience restarted."""
    watched, score = record["watched"], record["valid_score_per_step"]
    valid = f"valid {watched} {score:.4f}"
    if watched != "elbo":
        valid += f" (elbo {record['valid_elbo_per_step']:.4f})"
    warming = record["step"] <= tc.kl_warmup_steps
    patience = f"patience {tc.patience - state.bad_evals}/{tc.patience}" + (" (KL warm-up)" if warming else "")
    lr = f"lr {record['lr']:.1e}"
    if state.drops > record.get("lr_drops", state.drops):  # this evaluation dropped the rate
        lr += f" -> {record['lr'] * tc.lr_drop_factor:.1e} (drop {state.drops}/{tc.lr_drops})"
    elif tc.lr_drops:
        lr += f", drops {state.drops}/{tc.lr_drops}"
    at = f" at step {state.best_step}" if state.best_step else ""  # unknown in a run resumed from an older file
    return f"{valid} | best {state.best:.4f}{at} | {patience} | {lr}"


def _training(stats: dict) -> str:
    """The training batch's numbers: ``train elbo -8.31 kl 1.20``, or the bound trained."""
    return "train " + " ".join(f"{k} {stats[k]:.3f}" for k in ("elbo", "kl", "bound") if k in stats)


class Progress:
    """The run's progress on ``stream`` (stderr): a live bar on a terminal, else one line per evaluation.

    Nothing is shown when ``enabled`` is False (``--quiet``, ranks other than 0)."""

    def __init__(self, enabled: bool, tc: TrainConfig, state: RunState, stream: TextIO | None = None):
        self.tc, self.enabled, self.bar, self.summary = tc, enabled, None, "not validated yet"
        self.stream = sys.stderr if stream is None else stream
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=None, initial=state.step, file=self.stream, dynamic_ncols=True, unit="step",
                            bar_format=f"step {{n}} (at most {tc.max_steps}) [{{elapsed}}, {{rate_fmt}}]{{postfix}}")

    def step(self, stats: dict, epoch: int) -> None:
        """One training step done; ``stats`` are its batch's numbers."""
        if self.bar is not None:
            # the stopping rules first: a narrow terminal trims the line's end
            self.bar.set_postfix_str(f"{self.summary} | epoch {epoch} | {_training(stats)}", refresh=False)
            self.bar.update(1)

    def evaluated(self, record: dict, state: RunState) -> None:
        """An evaluation done: the bar shows its summary; without a terminal, one line is written."""
        if not self.enabled:
            return
        self.summary = evaluation_summary(record, state, self.tc)
        if self.bar is not None:
            return
        train = {k.removeprefix("train_").removesuffix("_per_step"): v for k, v in record.items()
                 if k.startswith("train_")}
        print(f"step {record['step']} (at most {self.tc.max_steps}) epoch {record['epoch']} "
              f"[{record['elapsed_s']:.0f} s, {record['steps_per_s']:.1f} steps/s] | {_training(train)} | "
              f"{self.summary}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def tensorboard_folder(tc: TrainConfig, out: Path, given: str | Path | None) -> Path | None:
    """Where TensorBoard's event files go: ``given`` (``--tensorboard DIR``), else ``out/tensorboard`` when
    ``train.tensorboard`` is on, else nowhere (None)."""
    if given is not None:
        return Path(given)
    return out / "tensorboard" if tc.tensorboard else None


class Board:
    """TensorBoard logging of a run through :class:`torch.utils.tensorboard.SummaryWriter` (rank 0 only).

    A resumed run (``resumed_at``: its checkpoint's step) has TensorBoard drop the events a killed run wrote
    past its checkpoint, so the curves show the steps the resumed run takes once."""

    def __init__(self, folder: Path | None, enabled: bool, resumed_at: int | None = None):
        self.writer = None
        if folder is None or not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise VrnnError("TensorBoard logging needs the tensorboard package: pip install 'vrnn[tensorboard]' "
                            "(or drop train.tensorboard / --tensorboard)") from None
        purge = None if resumed_at is None else resumed_at + 1
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge)

    def evaluated(self, record: dict, model: SequenceModel, valid: list[np.ndarray], device: torch.device) -> None:
        """The evaluation's numbers as scalars (tags ``valid/elbo``, ``train/kl``, ``lr``, ...) at its step,
        histograms of the posterior scales on a validation batch and a sample's figure."""
        if self.writer is None:
            return
        step = record["step"]
        for key, value in record.items():
            if key.endswith("_per_step") or key in ("lr", "lr_drops", "kl_weight", "steps_per_s", "epoch"):
                self.writer.add_scalar(scalar_tag(key), value, step)
        self._posterior_scales(model, valid, step, device)
        self._sample_figure(model, step)
        self.writer.flush()

    @torch.no_grad()
    def _posterior_scales(self, model: SequenceModel, valid: list[np.ndarray], step: int,
                          device: torch.device) -> None:
        """``posterior/scale`` (every unpadded step and latent unit) and ``posterior/scale_mean`` (each unit's
        mean over steps) of one forward pass on the first validation sequences, with a fixed noise seed."""
        if not model.has_latents:
            return
        x, mask = pad_batch(valid[:16], device)
        training = model.training
        model.eval()
        terms = model(x, mask=mask, generator=torch.Generator(device=device).manual_seed(0))
        model.train(training)
        if terms.q_scale is None:
            return
        scales = terms.q_scale[0][mask]  # (steps, Z): the first sample's posterior scales on real steps
        self.writer.add_histogram("posterior/scale", scales.float().cpu(), step)
        self.writer.add_histogram("posterior/scale_mean", scales.mean(0).float().cpu(), step)

    def _sample_figure(self, model: SequenceModel, step: int) -> None:
        """One sample of 64 steps (model units, seed 0) drawn as an image: time across, features up (the
        first at the bottom, as a piano roll's lowest key)."""
        from ..inference.sampling import sample

        training = model.training
        x = sample(model, steps=64, n=1, seed=0)[0]  # (T, D)
        model.train(training)
        x = np.asarray(x, dtype=np.float32).T[::-1]
        span = float(x.max() - x.min()) or 1.0
        self.writer.add_image("sample", np.ascontiguousarray((x - x.min()) / span), step, dataformats="HW")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def scalar_tag(key: str) -> str:
    """A ``log.jsonl`` key as a TensorBoard tag: ``valid_elbo_per_step`` -> ``valid/elbo``,
    ``best_valid_score_per_step`` -> ``valid/best_score``, ``lr`` -> ``train/lr``."""
    key = key.removesuffix("_per_step")
    if key.startswith("best_valid_"):
        return "valid/best_" + key.removeprefix("best_valid_")
    for group in ("train", "valid"):
        if key.startswith(group + "_"):
            return f"{group}/{key.removeprefix(group + '_')}"
    return f"train/{key}"
