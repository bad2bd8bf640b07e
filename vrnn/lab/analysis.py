"""Looking inside audio models: Chung et al. (2015) Fig. 2 and Fig. 3.

* :func:`latent_trace` — for one sequence, the change of the approximate posterior's
  mean between steps, δ_t = Σ_j (μ_z,t,j − μ_z,t−1,j)² (Fig. 2, top), and the KL of every
  latent dimension at every step, KL(q(z_t,j | ·) ‖ p(z_t,j | ·)) (Fig. 2, middle); the
  per-dimension KLs of a step sum to the step's KL in :class:`vrnn.models.StepTerms`.
* :func:`analyze_checkpoint` — the same for a recording or a sequence (``vrnn analyze``), with a
  figure of δ_t, the KL heat map and the input under them (waveform, piano roll or frames).
* :func:`waveforms_figure` — training audio and one sample per checkpoint, whole and
  zoomed (Fig. 3; ``vrnn waveforms``).
* :func:`latent_alignment` — claim 5 measured: a model's per-step signal against the audio's
  transitions (optionally with loudness partialled out), with :func:`hidden_trace` (‖h_t − h_{t−1}‖)
  as the signal of a model without latent variables, the control.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

from ..checkpoint import checkpoint_data_config, load_model
from ..device import resolve_device
from ..errors import VrnnError
from ..models import SequenceModel
from ..io import check_writable
from ..outputs.audio import fig2_png, waveforms_png


@torch.no_grad()
def latent_trace(model: SequenceModel, x: np.ndarray, samples: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """δ_t and the per-dimension KL of one sequence ``x`` (T, D), given in model units.

    Returns ``delta`` (T,) with δ_0 = NaN (no previous step), ``kl`` (T, Z) in nats,
    ``q_loc`` (T, Z) the posterior means; each averaged over ``samples`` posterior
    samples (the means depend on the sampled z_<t through the recurrent state).
    """
    if not model.has_latents:
        raise VrnnError(f"{model.display_name} has no latent variables; analyse a model with latents (VRNN, SRNN, ...)")
    model.eval()
    ref = next(model.parameters())
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=ref.device)[None]  # (1, T, D)
    gen = torch.Generator(device=ref.device).manual_seed(seed)
    terms = model(xt, samples=samples, generator=gen)
    if terms.q_loc is None or terms.p_loc is None:
        raise VrnnError(f"{model.display_name} does not report its posterior and prior parameters; cannot analyse")
    q_loc, q_scale = terms.q_loc[:, 0], terms.q_scale[:, 0]  # (K, T, Z)
    p_loc, p_scale = terms.p_loc[:, 0], terms.p_scale[:, 0]
    delta = ((q_loc[:, 1:] - q_loc[:, :-1]) ** 2).sum(-1).mean(0)  # (T-1,)
    kl = kl_divergence(Normal(q_loc, q_scale), Normal(p_loc, p_scale)).mean(0)  # (T, Z), diagonal: per dimension
    nan = torch.full((1,), float("nan"), dtype=delta.dtype, device=delta.device)
    return {"delta": torch.cat([nan, delta]).cpu().numpy(), "kl": kl.cpu().numpy(),
            "q_loc": q_loc.mean(0).cpu().numpy()}


def read_frames(path: str | Path, meta: dict, seconds: float | None = None, x_dim: int | None = None) -> np.ndarray:
    """One sequence of frames (T, D), original units: a recording framed at the data's rate, a .npy or .npz of
    one sequence ((T, D), or (1, T, D) as ``vrnn sample`` writes it), or a data set (its first test sequence);
    ``x_dim``: the features the model takes; see :func:`vrnn.data.sources.read_sequences`."""
    from ..data.sources import read_sequences

    return read_sequences(path, "--input", x_dim, meta=meta, seconds=seconds, one=True)[0]


def analyze_checkpoint(checkpoint: str | Path, input: str | Path, out: str | Path | None = None,
                       seconds: float | None = None, seed: int = 0, samples: int = 1,
                       overwrite: bool = False, device: str = "cpu") -> dict:
    """``vrnn analyze``: :func:`latent_trace` of a recording or a sequence of frames; writes a PNG if ``out``
    (under δ_t and the KL: a recording's waveform, a piano roll by MIDI pitch, other frames as an image).

    The model runs on ``device`` (``auto``, ``cpu`` or ``cuda[:N]``).
    Returns ``delta`` (T,), ``kl`` (T, Z), ``q_loc`` (T, Z), ``frames`` (T, D) and
    ``wave`` (T·D,) in original units, ``rate`` (Hz or None) and ``steps`` T.
    """
    if out is not None:
        out = Path(out)
        if out.suffix != ".png":
            raise VrnnError(f"--out {out}: the figure is a .png")
        check_writable([out], overwrite)
    device = resolve_device(device, setting="--device")
    model, norm, ckpt = load_model(checkpoint)
    model.to(device)
    meta = ckpt.get("data_meta", {})
    frames = read_frames(input, meta, seconds, model.cfg.x_dim)
    res = latent_trace(model, norm(frames), samples=samples, seed=seed)
    res.update(frames=frames, wave=frames.reshape(-1), rate=meta.get("rate"), steps=len(frames))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig2_png(out, res, title=f"{model.display_name}: {Path(input).name}", meta=meta)
    return res


def waveforms_figure(checkpoints: list[str | Path], out: str | Path, seconds: float = 2.0, zoom: float = 0.05,
                     seed: int = 0, overwrite: bool = False, device: str = "cpu") -> dict[str, np.ndarray]:
    """Training audio, then one ``seconds``-long sample per checkpoint; whole (left) and zoomed (right).

    The training row is the training split's first sequences joined until ``seconds``
    (sequences of one file are consecutive, so this is a stretch of real speech). The
    zoomed window is the loudest ``zoom`` seconds of each waveform (voiced speech in the recording), every
    row on one amplitude scale (:func:`vrnn.outputs.audio.waveforms_plot`); the models sample on
    ``device`` (``auto``, ``cpu`` or ``cuda[:N]``). Returns the waveforms by row label.
    """
    from ..data import load_dataset
    from ..data.audio import steps_for_seconds
    from ..inference.sampling import sample

    out = Path(out)
    if out.suffix != ".png":
        raise VrnnError(f"--out {out}: the figure is a .png")
    check_writable([out], overwrite)
    device = resolve_device(device, setting="--device")
    rows, rate = {}, None
    for i, path in enumerate(checkpoints):
        model, norm, ckpt = load_model(path)
        meta = ckpt.get("data_meta", {})
        if "rate" not in meta:
            raise VrnnError(f"{path}: not an audio model (its data have no sampling rate)")
        if rate is not None and meta["rate"] != rate:
            raise VrnnError(f"{path}: data at {meta['rate']} Hz, but {checkpoints[0]} at {rate} Hz; compare models "
                            f"of one data set")
        if i == 0:
            rate = int(meta["rate"])
            data = load_dataset(checkpoint_data_config(ckpt))
            need = int(round(seconds * rate))
            per_seq = data.splits["train"][0].size  # samples per training sequence
            train = np.concatenate([a.reshape(-1) for a in data.splits["train"][: need // per_seq + 1]])
            rows["training data"] = train[:need]
        x = sample(model.to(device), steps_for_seconds(meta, seconds), 1, norm, seed)
        rows[f"{model.display_name} sample"] = x[0].reshape(-1)[: int(round(seconds * rate))]
    out.parent.mkdir(parents=True, exist_ok=True)
    waveforms_png(out, rows, rate, zoom)
    return rows



def sample_quality(checkpoint: str | Path, n: int = 20, seconds: float | None = None, split: str = "test",
                   cutoff_hz: float | None = None, seed: int = 0, device: str = "cpu") -> dict:
    """Claim 3 of Chung et al. (2015), measured: ``n`` unconditional samples of an audio model against
    the held-out ``split`` of its data set (:mod:`vrnn.lab.metrics`).

    For each sample (``seconds`` long, default one training sequence): the log-spectral distance (dB,
    shape only) between its average spectrum and the held-out split's, and the share of its energy
    above ``cutoff_hz`` (default a quarter of the sampling rate). The same for each held-out sequence
    gives the reference: how far real audio of the same length lies from the split's spectrum.
    Returns ``lsd_db`` and ``hf_ratio`` (n,), ``heldout_lsd_db`` and ``heldout_hf_ratio`` (one per
    held-out sequence), ``rate``, ``cutoff_hz`` and ``seconds``.
    """
    from ..data import load_dataset
    from ..data.audio import steps_for_seconds
    from .metrics import high_frequency_ratio, log_spectral_distance, reference_spectrum
    from ..inference.sampling import sample

    model, norm, ckpt = load_model(checkpoint)
    meta = ckpt.get("data_meta", {})
    if "rate" not in meta:
        raise VrnnError(f"{checkpoint}: not an audio model (its data have no sampling rate)")
    rate = int(meta["rate"])
    cutoff = rate / 4 if cutoff_hz is None else cutoff_hz
    heldout = load_dataset(checkpoint_data_config(ckpt)).splits[split]
    reference = reference_spectrum(np.concatenate([a.reshape(-1) for a in heldout]), rate)  # once, not per wave
    steps = steps_for_seconds(meta, seconds) if seconds is not None else len(heldout[0])
    waves = sample(model.to(resolve_device(device, setting="--device")), steps, n, norm, seed).reshape(n, -1)
    score = lambda ws: (np.array([log_spectral_distance(w, reference, rate) for w in ws]),  # noqa: E731
                        np.array([high_frequency_ratio(w, rate, cutoff) for w in ws]))
    lsd, hf = score(waves)
    heldout_lsd, heldout_hf = score([a.reshape(-1) for a in heldout])
    return {"lsd_db": lsd, "hf_ratio": hf, "heldout_lsd_db": heldout_lsd, "heldout_hf_ratio": heldout_hf,
            "rate": rate, "cutoff_hz": cutoff, "seconds": waves.shape[1] / rate}


SIGNALS = ("delta", "kl", "hidden")  # delta, kl: of latent models; hidden: of models without latents
TRANSITIONS = ("flux", "energy")
CONTROLS = ("", "loudness")


@torch.no_grad()
def hidden_trace(model: SequenceModel, x: np.ndarray) -> np.ndarray:
    """‖h_t − h_{t−1}‖ of one sequence ``x`` (T, D), model units, for a model without latent variables: h_t
    is its state after reading x_t, from the model's own step with x_t observed (the generative step fed
    the data); (T,) with NaN at t = 0 — the control for δ_t of a latent model."""
    if model.has_latents:
        raise VrnnError(f"{model.display_name} has latent variables: signal 'hidden' is for models without them; "
                        f"use delta or kl")
    model.eval()
    ref = next(model.parameters())
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=ref.device)[None]  # (1, T, D)
    state, hs = model.initial_state(xt, 1), []
    for t in range(xt.shape[1]):
        state, _ = model.step(state, None, "none", observe=lambda dist, t=t: xt[:, t])
        hs.append(state[0][0])
    h = torch.stack(hs)  # (T, H)
    return np.concatenate([[np.nan], (h[1:] - h[:-1]).norm(dim=-1).double().cpu().numpy()])


def step_signal(model: SequenceModel, x: np.ndarray, signal: str, seed: int = 0) -> np.ndarray:
    """A per-step signal of what a model does on ``x`` (T, D), model units: ``delta`` (δ_t) or ``kl`` (the
    step's KL) of a latent model (:func:`latent_trace`), ``hidden`` of a deterministic one (:func:`hidden_trace`)."""
    if signal == "hidden":
        return hidden_trace(model, x)
    res = latent_trace(model, x, seed=seed)
    return res["delta"] if signal == "delta" else res["kl"].sum(1)


def latent_alignment(checkpoint: str | Path, split: str = "test", signal: str = "delta", transition: str = "flux",
                     max_sequences: int = 200, shuffles: int = 1000, seed: int = 0, control: str = "") -> dict:
    """Claim 5 (Fig. 2), measured over a held-out split: the rank correlation between a model's per-step
    signal (:func:`step_signal`: ``delta``, ``kl``, or ``hidden`` for a model without latents) and the
    audio's own transitions (``flux``: spectral flux, or ``energy``: change of log energy), pooled over up to
    ``max_sequences`` sequences, against time shuffled within each sequence
    (:func:`vrnn.lab.metrics.transition_alignment`). ``control = "loudness"``: the partial rank correlation
    with each frame's log energy (:func:`vrnn.lab.metrics.frame_loudness`) partialled out of both."""
    from ..data import load_dataset
    from .metrics import energy_change, frame_loudness, spectral_flux, transition_alignment

    if signal not in SIGNALS or transition not in TRANSITIONS or control not in CONTROLS:
        raise VrnnError(f"signal={signal!r}, transition={transition!r}, control={control!r}: choose a signal of "
                        f"{', '.join(SIGNALS)}, a transition of {', '.join(TRANSITIONS)} and a control of "
                        f"'', loudness")
    model, norm, ckpt = load_model(checkpoint)
    if "rate" not in ckpt.get("data_meta", {}):
        raise VrnnError(f"{checkpoint}: not an audio model (its data have no sampling rate)")
    seqs = load_dataset(checkpoint_data_config(ckpt)).splits[split][:max_sequences]
    change = spectral_flux if transition == "flux" else energy_change
    sig, trans, loud, groups = [], [], [], []
    for i, frames in enumerate(seqs):
        sig.append(step_signal(model, norm(frames), signal, seed=seed + i))
        trans.append(change(frames))
        loud.append(frame_loudness(frames))
        groups.append(np.full(len(frames), i))
    out = transition_alignment(np.concatenate(sig), np.concatenate(trans), shuffles, seed, np.concatenate(groups),
                               control=np.concatenate(loud) if control == "loudness" else None)
    return out | {"signal": signal, "transition": transition, "control": control, "sequences": len(seqs)}
