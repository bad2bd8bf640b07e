"""Audio as files a person opens: 16-bit WAV, waveform plots, and Figs. 2 and 3 of Chung et al. (2015)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.audio import join_frames, soundfile_module
from ..io import atomic_write
from .figures import draw_frames, pyplot, save_figure


def write_wav(path: Path, wave: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV (what every player opens); samples outside [-1, 1] are clipped."""
    sf = soundfile_module()
    with atomic_write(path) as tmp:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0).astype(np.float32), int(rate), subtype="PCM_16", format="WAV")


def waveform_png(path: Path, wave: np.ndarray, rate: int, title: str = "", join: float | None = None) -> None:
    """The waveform against time in seconds; ``join``: the time (s) where a continuation starts, marked."""
    plt = pyplot()
    t = np.arange(len(wave)) / rate
    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    ax.plot(t, wave, lw=0.4, color="k")
    ax.set_xlim(0, t[-1] if len(t) else 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title)
    if join:
        ax.axvline(join, color="tab:red", lw=1.5, label="continuation starts")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


KL_CLIP = 99  # Fig. 2's KL colour scale ends at this percentile of the values drawn (a few large steps would
# otherwise leave every other step black)


def fig2_figure(res: dict, title: str = "", meta: dict | None = None):
    """δ_t (top), the KL of each latent dimension per step (middle; colour clipped at the :data:`KL_CLIP`-th
    percentile, as its colour bar says) and, on the same time axis, the input under them (bottom): the
    waveform of audio (``res["rate"]`` set), else the frames as :func:`vrnn.outputs.figures.draw_frames`
    draws them (a piano roll by MIDI pitch; ``meta``: the data's); the matplotlib figure."""
    plt = pyplot()
    T, Z = res["kl"].shape
    frame = len(res["wave"]) // T
    rate = res.get("rate")
    scale = frame / rate if rate else 1.0  # seconds (audio) or steps per frame
    fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), dpi=100, sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.4, 1]})
    t = (np.arange(T) + 0.5) * scale  # step t covers [t, t+1) frames
    axes[0].plot(t, res["delta"], color="k", lw=1)
    axes[0].set_ylabel("δ_t")
    top = float(np.nanpercentile(res["kl"], KL_CLIP)) or 1e-12
    im = axes[1].imshow(res["kl"].T, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                        extent=(0, T * scale, -0.5, Z - 0.5), vmin=0.0, vmax=top)
    axes[1].set_ylabel("latent dim")
    fig.colorbar(im, ax=axes[1], orientation="horizontal", fraction=0.05, pad=0.02, aspect=60, extend="max",
                 label=f"KL per dimension (nats); colour clipped at the {KL_CLIP}th percentile, {top:.3g} nats")
    if rate:
        axes[2].plot(np.arange(len(res["wave"])) / rate, res["wave"], color="k", lw=0.4)
        axes[2].set_ylabel("waveform")
        axes[2].set_xlim(0, T * scale)
    else:
        draw_frames(axes[2], res["frames"], (0, T * scale), meta or {})
    axes[2].set_xlabel("time (s)" if rate else "step")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    return fig


def fig2_png(path: Path, res: dict, title: str = "", meta: dict | None = None) -> None:
    """:func:`fig2_figure` as a PNG."""
    save_figure(fig2_figure(res, title, meta), path)


def loudest_window(wave: np.ndarray, n: int) -> tuple[int, int]:
    """(lo, hi): the ``n`` consecutive samples of ``wave`` with the most energy (voiced speech, in a recording)."""
    n = max(2, min(int(n), len(wave)))
    energy = np.concatenate([[0.0], np.cumsum(np.asarray(wave, dtype=np.float64) ** 2)])
    lo = int(np.argmax(energy[n:] - energy[:-n]))
    return lo, lo + n


def waveforms_plot(rows: dict[str, np.ndarray], rate: int, zoom: float = 0.05):
    """One row per waveform (label -> samples at ``rate``): whole (left, the zoomed window shaded) and the
    loudest ``zoom`` seconds of it (right; :func:`loudest_window`), every axis on one amplitude scale —
    Chung et al. (2015) Fig. 3; the matplotlib figure."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 1.8 * len(rows)), dpi=100, squeeze=False, sharey=True,
                             gridspec_kw={"width_ratios": [3, 1]})
    peak = max(float(np.abs(w).max()) for w in rows.values()) * 1.05 or 1.0
    for r, (label, wave) in enumerate(rows.items()):
        t = np.arange(len(wave)) / rate
        lo, hi = loudest_window(wave, int(zoom * rate))
        axes[r, 0].plot(t, wave, lw=0.3, color="k")
        axes[r, 0].axvspan(lo / rate, hi / rate, color="tab:orange", alpha=0.3)
        axes[r, 0].set_xlim(0, t[-1])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center")
        axes[r, 1].plot(t[lo:hi], wave[lo:hi], lw=0.8, color="k")
        axes[r, 1].set_xlim(t[lo], t[hi - 1])
    axes[0, 0].set_ylim(-peak, peak)  # shared by every axis
    axes[-1, 0].set_xlabel("time (s); one amplitude scale for every row")
    axes[-1, 1].set_xlabel(f"zoom: the loudest {zoom * 1000:g} ms of each row")
    axes[0, 0].set_title("whole")
    axes[0, 1].set_title("zoomed")
    fig.tight_layout()
    return fig


def waveforms_png(out: Path, rows: dict[str, np.ndarray], rate: int, zoom: float = 0.05) -> None:
    """:func:`waveforms_plot` as a PNG."""
    save_figure(waveforms_plot(rows, rate, zoom), out)


def write_audio_samples(paths: dict[str, Path], x: np.ndarray, meta: dict, title: str) -> None:
    """The first sample's frames joined into one waveform: a 16-bit WAV at the data's rate and its plot."""
    wave, rate = join_frames(x[0]), int(meta["rate"])
    write_wav(paths[".wav"], wave, rate)
    join = meta["prime_steps"] * x.shape[2] / rate if meta.get("prime_steps") else None
    waveform_png(paths[".png"], wave, rate, f"{title} ({len(wave) / rate:g} s at {rate} Hz)", join)
