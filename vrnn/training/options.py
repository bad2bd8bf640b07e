"""``[train]`` of a config: the optimiser, the schedules, stopping rules and where to run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..errors import VrnnError
from ..settings import POSITIVE, Check, Checked, above, at_least, in_range, matches, one_of
from .bounds import OBJECTIVES, trained

NON_NEGATIVE = at_least(0)


@dataclass(frozen=True)
class TrainConfig(Checked):
    seed: int = 0
    batch_size: int = 64
    length_pool: int = 4  # batches per length-sorted pool (less padding); 1 = plain random batches
    lr: float = 1e-3
    lr_decay_start: int = 0  # steps at the full learning rate before it decays; 0 with lr_half_life 0 = constant
    lr_half_life: float = 0.0  # steps over which the learning rate halves after lr_decay_start; 0 = no decay
    max_steps: int = 2000
    ema: float = 0.0  # decay of an exponential moving average of the weights, which validation, checkpoints'
    # "model" and everything downstream use (0 = off; the raw weights are kept for resuming)
    clip_norm: float = 10.0  # gradient-norm clipping before every optimiser step; 0 disables
    kl_start: float = 1.0  # KL weight at step 0, raised linearly to 1 over kl_warmup_steps
    kl_warmup_steps: int = 0
    kl_warmup_epochs: float = 0.0  # the warm-up in passes over the training split instead (steps = epochs ×
    # batches per epoch), so the same config anneals alike on a data set of any size; replaces kl_warmup_steps
    free_bits: float = 0.0  # nats per time step (objective elbo): while a batch's KL per step is below it, the
    # KL term passes no gradient (free bits, Kingma et al. 2016, over all of z_t): the posterior may carry that
    # much information before it pays for it; 0 = off. Validation and every reported number keep the true ELBO
    eval_every: int = 200  # steps between validation evaluations (and checkpoints)
    patience: int = 10  # evaluations without a better validation score (stop_on) before stopping
    lr_drops: int = 0  # plateaus survived before stopping: at each, the learning rate is multiplied by
    # lr_drop_factor and patience starts again (ReduceLROnPlateau-style, tied to validation, not to step counts)
    lr_drop_factor: float = 0.1
    lr_drop_restore: bool = False  # at each drop, first go back to the best evaluation's weights and optimiser
    # state (best.pt), as speech recognition's "newbob" schedule does: a run that overfits resumes from its best
    max_minutes: float = 0.0  # wall-clock budget, checked at evaluations; 0 = none (resume is then not exact)
    eval_batch_size: int = 128
    tbptt_steps: int = 0  # truncated BPTT: split each batch into chunks of this many steps, one update
    # per chunk, the model's final state carried (detached) across chunks; 0 = off. Steps count batches.
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    flush_denormal: bool = True  # CPU: subnormal floats (below 1.2e-38) become 0 while training; trained
    # weights produce them and each costs a CPU slow path (4x slower steps measured); false keeps IEEE subnormals
    objective: str = "elbo"  # elbo | iwae (Burda et al. 2016) | fivo (Maddison et al. 2017): the bound trained on
    particles: int = 1  # K: posterior samples (iwae) or particles (fivo) per sequence; elbo averages K samples
    tensorboard: bool = False  # TensorBoard event files in RUN/tensorboard (the tensorboard extra; or vrnn train
    # --tensorboard DIR): the evaluations' scalars, posterior-scale histograms, a sample (vrnn.training.watch)
    stop_on: str = "objective"  # the validation score that early stopping and best.pt follow: "objective" (the
    # bound trained on, with train.particles: ELBO, IWAE or FIVO) or "elbo" (the one-sample ELBO, whatever is trained)

    SECTION: ClassVar[str] = "train"
    CHECKS: ClassVar[dict[str, Check]] = {
        "seed": NON_NEGATIVE,
        "batch_size": POSITIVE,
        "length_pool": at_least(1, " (1 = plain random batches)"),
        "lr": above(0),
        "lr_decay_start": NON_NEGATIVE,
        "lr_half_life": at_least(0, " (0 = no decay)"),
        "max_steps": POSITIVE,
        "ema": in_range(0, 1, note=" (0 turns the weight average off)"),
        "clip_norm": at_least(0, " (0 turns clipping off)"),
        "kl_start": in_range(0, 1, closed=True),
        "kl_warmup_steps": NON_NEGATIVE,
        "kl_warmup_epochs": at_least(0, " (0: use kl_warmup_steps)"),
        "free_bits": at_least(0, " (0 turns free bits off)"),
        "eval_every": POSITIVE,
        "patience": POSITIVE,
        "lr_drops": NON_NEGATIVE,
        "lr_drop_factor": in_range(0, 1, note=" (the factor the learning rate is multiplied by at a plateau)"),
        "max_minutes": at_least(0, " (0 = no time budget)"),
        "eval_batch_size": POSITIVE,
        "tbptt_steps": at_least(0, " (0 turns truncated BPTT off)"),
        "device": matches(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda, cuda:N or mps"),
        "objective": one_of(tuple(OBJECTIVES)),
        "particles": POSITIVE,
        "stop_on": one_of(("objective", "elbo")),
    }

    def check(self, where: str = "config") -> None:
        super().check(where)
        if self.kl_warmup_epochs > 0 and self.kl_warmup_steps > 0:
            raise VrnnError(f"{where}: train.kl_warmup_steps and train.kl_warmup_epochs are both set; keep one "
                            "(epochs fit data sets of any size)")
        if self.free_bits > 0 and self.objective != "elbo":
            raise VrnnError(f"{where}: train.free_bits applies to the ELBO's KL term; train.objective="
                            f"{self.objective} has none: set train.free_bits=0 or train.objective=\"elbo\"")
        if trained(self).whole_sequences and self.tbptt_steps:
            raise VrnnError(f"{where}: train.objective={self.objective} bounds whole sequences; "
                            "set train.tbptt_steps=0")

    def in_steps(self, batches_per_epoch: int) -> TrainConfig:
        """This config with the warm-up given in epochs converted to steps, for a training split of
        ``batches_per_epoch`` (global) batches; unchanged when it is given in steps."""
        if self.kl_warmup_epochs <= 0:
            return self
        return dataclasses.replace(self, kl_warmup_steps=max(1, round(self.kl_warmup_epochs * batches_per_epoch)),
                                   kl_warmup_epochs=0.0)

    # the settings that say when a run stops: a resumed run may change them (the rest must match)
    STOPPING: ClassVar[tuple[str, ...]] = ("max_steps", "max_minutes", "patience", "lr_drops")
    # the settings that only change what is shown or logged: a resumed run may change them too
    WATCHING: ClassVar[tuple[str, ...]] = ("tensorboard",)
