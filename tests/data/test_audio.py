"""Raw-waveform speech: preparing audio folders, framing, splitting, resampling, WAV samples,
the Fig. 2 analysis (δ_t and per-dimension KL) and the Fig. 3 waveform figure."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile", reason="the audio extra (soundfile, scipy) is not installed")

from vrnn.lab.analysis import (analyze_checkpoint, hidden_trace, latent_alignment, latent_trace,  # noqa: E402
                               sample_quality, waveforms_figure)
from vrnn.outputs.audio import fig2_figure, loudest_window, waveforms_plot  # noqa: E402
from vrnn.checkpoint import load_model  # noqa: E402
from vrnn.cli import main  # noqa: E402
from vrnn.training.config import config_from_dict  # noqa: E402
from vrnn.data import load_prepared  # noqa: E402
from vrnn.data.audio import FRACTIONS, frame_signal, read_audio, resample, steps_for_seconds  # noqa: E402
from vrnn.data.recipes import FILLETS_INSTALL, fillets, prepare  # noqa: E402
from vrnn.data.splits import seeded_split  # noqa: E402
from vrnn.errors import VrnnError  # noqa: E402
from vrnn.training.trainer import fit  # noqa: E402
from vrnn.lab.experiments.results import read_results  # noqa: E402

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FSDD = SHARED / "speech" / "fsdd" / "recordings"


def _tone(rate: int, seconds: float, f0: float, seed: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def write_corpus(root: Path) -> dict:
    """Three speakers in folders; WAV, FLAC and OGG at several rates; a stereo file, a too-short file
    and a corrupt one. Returns {relative name: (rate, seconds)} of the readable files."""
    files = {
        "spk_a/one.wav": (22050, 1.3, 220.0, "WAV", "PCM_16", 2),
        "spk_a/two.flac": (16000, 0.9, 330.0, "FLAC", "PCM_16", 1),
        "spk_b/three.ogg": (44100, 1.1, 180.0, "OGG", "VORBIS", 1),
        "spk_b/four.wav": (8000, 0.8, 400.0, "WAV", "PCM_16", 1),
        "spk_c/five.flac": (16000, 1.0, 250.0, "FLAC", "PCM_16", 1),
        "spk_c/six.ogg": (22050, 0.7, 300.0, "OGG", "VORBIS", 1),
        "spk_c/short.wav": (8000, 0.1, 300.0, "WAV", "PCM_16", 1),
    }
    for i, (name, (rate, secs, f0, fmt, subtype, ch)) in enumerate(files.items()):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        x = _tone(rate, secs, f0, i)
        sf.write(str(p), np.stack([x, 0.5 * x], 1) if ch == 2 else x, rate, format=fmt, subtype=subtype)
    (root / "spk_a" / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEthis is not audio at all")
    return {k: (v[0], v[1]) for k, v in files.items()}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A data dir holding the test corpus prepared at 8 kHz, 0.25 s sequences, and a tiny trained VRNN."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("audio")
    mp.setenv("VRNN_DATA_DIR", str(base / "data"))
    src = base / "corpus"
    files = write_corpus(src)
    path = prepare("audio", save_as="tiny", source=str(src), rate=8000, seconds=0.25)
    ckpts = {}
    for kind, extra in (("vrnn", {"z_dim": 3}), ("rnn", {})):
        cfg = config_from_dict({
            "model": {"kind": kind, "hidden": 8, "width": 8, "layers": 1, "emission": {"name": "gauss"}, **extra},
            "data": {"source": "tiny"},
            "train": {"max_steps": 2, "eval_every": 2, "batch_size": 4, "seed": 0}})
        fit(cfg, base / kind, progress=False)
        ckpts[kind] = base / kind / "best.pt"
    yield {"src": src, "files": files, "path": path, "base": base, "ckpt": ckpts}
    mp.undo()


# ---- preparing a folder --------------------------------------------------------------------------

def test_prepare_reports_corrupt_file_by_name_and_skips_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path / "data"))
    write_corpus(tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="vrnn.data"):
        path = prepare("audio", source=str(tmp_path / "c"), rate=8000, seconds=0.25)
    data = load_prepared(path)
    bad = [r.getMessage() for r in caplog.records if "bad.wav" in r.getMessage()]
    assert len(bad) == 1 and "skipped" in bad[0]
    assert any("skipped 1 of 8" in r.getMessage() for r in caplog.records)
    assert data.meta["skipped_files"] == [str(Path("spk_a") / "bad.wav")]
    listed = [f for s in ("train", "valid", "test") for f in data.meta["files"][s]]
    assert "spk_a/bad.wav" not in listed and "spk_c/short.wav" not in listed  # too short: no whole sequence
    assert data.meta["short_files"] == 1


def test_prepared_meta_and_shapes(env):
    data = load_prepared(env["path"])
    m = data.meta
    assert (m["kind"], m["rate"], m["frame_size"], m["sequence_frames"]) == ("audio", 8000, 200, 10)
    assert m["sequence_seconds"] == pytest.approx(0.25)
    for split in ("train", "valid", "test"):
        assert data.splits[split], split
        assert all(a.shape == (10, 200) for a in data.splits[split])
        # which file each sequence came from: the clusters of per-sequence statistics
        assert len(m["file_sequences"][split]) == len(m["files"][split])
        assert sum(m["file_sequences"][split]) == len(data.splits[split])
    # stored as decoded amplitudes: normalisation happens once, at train time
    allx = np.concatenate([a.ravel() for a in data.splits["train"]])
    assert np.abs(allx).max() <= 1.0 and abs(allx.std() - 1.0) > 0.3


def test_sequences_are_the_resampled_signal_in_order(env):
    """Each file's sequences, joined, are exactly the prefix of its resampled signal."""
    data = load_prepared(env["path"])
    L = 10 * 200
    for split in ("train", "valid", "test"):
        seqs = iter(data.splits[split])
        for name in data.meta["files"][split]:
            x = read_audio(env["src"] / name, 8000)
            n = len(x) // L
            assert n >= 1
            joined = np.concatenate([next(seqs).reshape(-1) for _ in range(n)])
            np.testing.assert_array_equal(joined, x[: n * L])
        assert next(seqs, None) is None  # nothing else in the split


def test_files_split_disjointly_and_by_seed(env, tmp_path, monkeypatch):
    data = load_prepared(env["path"])
    parts = [set(data.meta["files"][s]) for s in ("train", "valid", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == {k for k, (r, s) in env["files"].items() if s >= 0.25}
    keys = [f"f{i}" for i in range(40)]
    a, b = seeded_split(keys, 3, FRACTIONS, min_each=1), seeded_split(keys, 3, FRACTIONS, min_each=1)
    assert a == b
    assert sorted(sum(a.values(), [])) == sorted(keys)
    assert (len(a["train"]), len(a["valid"]), len(a["test"])) == (36, 2, 2)
    assert any(seeded_split(keys, s, FRACTIONS, min_each=1) != a for s in range(4, 9))
    three = seeded_split(["x", "y", "z"], 0, FRACTIONS, min_each=1)
    assert all(len(v) == 1 for v in three.values())
    with pytest.raises(VrnnError, match="at least 3"):
        seeded_split(["x", "y"], 0, FRACTIONS, min_each=1)


def test_speaker_split_holds_out_whole_speakers(env, tmp_path, monkeypatch):
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path))
    data = load_prepared(prepare("audio", source=str(env["src"]), rate=8000, seconds=0.25, speaker_split=True))
    spk = data.meta["speakers"]
    assert sorted(sum(spk.values(), [])) == ["spk_a", "spk_b", "spk_c"]
    for split in ("train", "valid", "test"):
        assert {f.split("/")[0] for f in data.meta["files"][split]} == set(spk[split])


def test_resampling_keeps_frequency_and_sets_length():
    rate_in, rate_out, f0 = 22050, 16000, 440.0
    x = np.sin(2 * np.pi * f0 * np.arange(rate_in) / rate_in).astype(np.float32)  # 1 s
    y = resample(x, rate_in, rate_out)
    assert len(y) == rate_out
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * rate_out / len(y) - f0) <= 1.0
    # a tone above the new Nyquist frequency is filtered out, not aliased
    hi = np.sin(2 * np.pi * 10000.0 * np.arange(rate_in) / rate_in).astype(np.float32)
    assert np.abs(resample(hi, rate_in, rate_out)[400:-400]).max() < 0.02  # away from the edge transients


def test_read_audio_mixes_channels_and_resamples(tmp_path):
    x = _tone(22050, 0.5, 200.0, 0)
    sf.write(str(tmp_path / "st.wav"), np.stack([x, -x], 1), 22050, subtype="FLOAT")
    assert np.abs(read_audio(tmp_path / "st.wav", 22050)).max() < 1e-6  # mean of x and -x
    y = read_audio(tmp_path / "st.wav", 8000)
    assert len(y) == pytest.approx(0.5 * 8000, abs=1)
    assert frame_signal(np.arange(1000.0), 200, 2).shape == (2, 2, 200)


def test_cached_data_set_is_not_reused_for_other_options(env, tmp_path, monkeypatch):
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path))
    prepare("audio", source=str(env["src"]), rate=8000, seconds=0.25)
    with pytest.raises(VrnnError, match="rate=8000"):
        prepare("audio", source=str(env["src"]), rate=16000, seconds=0.25)
    other = prepare("audio", save_as="at16k", source=str(env["src"]), rate=16000, seconds=0.25)
    assert load_prepared(other).meta["rate"] == 16000
    # an option left out means the recipe's default, which differs from the cached set's
    prepare("audio", save_as="spk", source=str(env["src"]), rate=8000, seconds=0.25, speaker_split=True)
    with pytest.raises(VrnnError, match="speaker_split=True"):
        prepare("audio", save_as="spk", source=str(env["src"]), rate=8000, seconds=0.25)
    assert prepare("audio", save_as="spk", source=str(env["src"]), rate=8000, seconds=0.25,
                   speaker_split=True).is_file()


def test_cli_prepare_flags(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path))
    assert main(["prepare", "audio", "--source", str(env["src"]), "--rate", "8000", "--seconds", "0.25",
                 "--as", "mine"]) == 0
    assert load_prepared(tmp_path / "mine.npz").meta["rate"] == 8000
    assert main(["prepare", "chorales", "--rate", "8000"]) == 2
    assert "--rate does not apply" in capsys.readouterr().err
    assert main(["prepare", "audio", "--source", str(tmp_path / "nowhere")]) == 2


def test_fillets_missing_says_how_to_install(tmp_path):
    with pytest.raises(VrnnError) as e:
        fillets(source=str(tmp_path / "nothing"))
    assert FILLETS_INSTALL in str(e.value)


def test_fsdd_recipe(tmp_path, monkeypatch):
    if not FSDD.is_dir():
        pytest.skip(f"shared data absent: {FSDD}")
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path))
    data = load_prepared(prepare("fsdd", source=str(FSDD), speaker_split=True))
    m = data.meta
    assert (m["rate"], m["frame_size"], m["sequence_frames"]) == (8000, 200, 10)
    spk = m["speakers"]
    assert [len(spk[s]) for s in ("train", "valid", "test")] == [4, 1, 1]
    assert len(set(sum(spk.values(), []))) == 6
    for split in ("train", "valid", "test"):
        names = m["files"][split]
        assert {n.split("_")[1] for n in names} == set(spk[split])
        assert all(a.shape == (10, 200) for a in data.splits[split])


# ---- samples as audio ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["vrnn", "rnn"])
def test_sampled_wav_plays(env, tmp_path, kind):
    out = tmp_path / f"{kind}.wav"
    assert main(["sample", str(env["ckpt"][kind]), "--seconds", "2", "--out", str(out)]) == 0
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (8000, 1, 16000)
    assert info.format == "WAV" and info.subtype == "PCM_16"
    wave, _ = sf.read(str(out))
    assert np.isfinite(wave).all() and wave.std() > 1e-3
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frames = np.load(out.with_suffix(".npy"))
    assert frames.shape == (1, 80, 200)  # 2 s at 8 kHz = 80 frames of 200 samples
    np.testing.assert_allclose(wave, np.clip(frames[0].reshape(-1), -1, 1), atol=1 / 32767 + 1e-6)


def test_seconds_to_steps():
    assert steps_for_seconds({"rate": 16000, "frame_size": 200}, 2.0) == 160
    assert steps_for_seconds({"rate": 8000, "frame_size": 200}, 2.0) == 80
    assert steps_for_seconds({"rate": 8000, "frame_size": 200}, 0.01) == 1
    with pytest.raises(VrnnError, match="audio"):
        steps_for_seconds({"kind": "pianoroll"}, 2.0)


def test_sample_needs_steps_or_seconds(env, tmp_path):
    assert main(["sample", str(env["ckpt"]["vrnn"]), "--out", str(tmp_path / "a.wav")]) == 2
    assert main(["sample", str(env["ckpt"]["vrnn"]), "--steps", "3", "--seconds", "1",
                 "--out", str(tmp_path / "a.wav")]) == 2


# ---- Fig. 2 and Fig. 3 -----------------------------------------------------------------------------

def test_analyze_returns_arrays_and_delta_matches_direct_computation(env, tmp_path):
    wav = env["src"] / "spk_a" / "one.wav"
    out = tmp_path / "fig2.png"
    res = analyze_checkpoint(env["ckpt"]["vrnn"], wav, out=out, seed=5)
    T = len(read_audio(wav, 8000)) // 200
    model, norm, _ = load_model(env["ckpt"]["vrnn"])
    Z = model.z_dim
    assert res["steps"] == T and res["delta"].shape == (T,) and res["kl"].shape == (T, Z)
    assert res["q_loc"].shape == (T, Z) and res["wave"].shape == (T * 200,)
    assert np.isnan(res["delta"][0]) and np.isfinite(res["delta"][1:]).all()
    assert (res["kl"] >= -1e-6).all()
    # direct computation from the model's forward pass with the same noise
    x = torch.from_numpy(norm(res["frames"]))[None]
    with torch.no_grad():
        terms = model(x, generator=torch.Generator().manual_seed(5))
    mu = terms.q_loc[0, 0].numpy()  # (T, Z)
    direct = np.array([np.sum((mu[t] - mu[t - 1]) ** 2) for t in range(1, T)])
    np.testing.assert_allclose(res["delta"][1:], direct, rtol=1e-5, atol=1e-9)
    # the per-dimension KLs of a step add up to the step's KL
    np.testing.assert_allclose(res["kl"].sum(1), terms.kl[0, 0].numpy(), rtol=1e-4, atol=1e-5)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_analyze_cli_and_errors(env, tmp_path, capsys):
    wav = env["src"] / "spk_b" / "three.ogg"
    assert main(["analyze", str(env["ckpt"]["vrnn"]), "--input", str(wav), "--out", str(tmp_path / "a.png"),
                 "--seconds", "0.5"]) == 0
    assert main(["analyze", str(env["ckpt"]["rnn"]), "--input", str(wav), "--out", str(tmp_path / "b.png")]) == 2
    assert "no latent variables" in capsys.readouterr().err
    with pytest.raises(VrnnError):
        latent_trace(load_model(env["ckpt"]["rnn"])[0], np.zeros((4, 200), np.float32))


def test_waveforms_figure(env, tmp_path):
    out = tmp_path / "fig3.png"
    rows = waveforms_figure([env["ckpt"]["rnn"], env["ckpt"]["vrnn"]], out, seconds=1.0, zoom=0.02)
    assert list(rows)[0] == "training data" and len(rows) == 3
    assert all(len(w) == 8000 and np.isfinite(w).all() for w in rows.values())
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_sample_quality_puts_an_untrained_models_noise_further_from_held_out_tones_than_they_are(env):
    """The test corpus is tones in light noise; a 2-step model samples near-white noise."""
    q = sample_quality(env["ckpt"]["vrnn"], n=6)
    assert q["lsd_db"].shape == q["hf_ratio"].shape == (6,) and q["rate"] == 8000 and q["cutoff_hz"] == 2000
    assert q["seconds"] == pytest.approx(0.25)
    assert q["lsd_db"].min() > q["heldout_lsd_db"].max()
    assert q["hf_ratio"].mean() > 5 * q["heldout_hf_ratio"].mean()


def test_latent_alignment_pools_held_out_sequences_against_a_within_sequence_shuffle(env):
    data = load_prepared(env["path"])
    a = latent_alignment(env["ckpt"]["vrnn"], shuffles=50)
    assert a["sequences"] == len(data.splits["test"])
    assert a["steps"] == sum(len(s) - 1 for s in data.splits["test"])  # t = 0 has no change
    assert -1 <= a["spearman"] <= 1 and 0 < a["p_value"] <= 1
    with pytest.raises(VrnnError, match="not an audio model|no latent"):
        latent_alignment(env["ckpt"]["rnn"], shuffles=5)


def test_hidden_trace_is_the_change_of_the_rnns_own_state(env):
    """‖h_t − h_{t−1}‖ from the model's step fed the data equals that of its fused LSTM over the sequence."""
    model, norm, _ = load_model(env["ckpt"]["rnn"])
    x = norm(load_prepared(env["path"]).splits["test"][0])
    change = hidden_trace(model, x)
    with torch.no_grad():
        ctx, last = model.encode(torch.from_numpy(x)[None], None)
    h = torch.cat([ctx["h_prev"][0, 1:], last[0]])  # h_1..h_T: the state after reading each x_t
    assert np.isnan(change[0]) and change.shape == (len(x),)
    np.testing.assert_allclose(change[1:], (h[1:] - h[:-1]).norm(dim=-1).numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(VrnnError, match="has latent variables"):
        hidden_trace(load_model(env["ckpt"]["vrnn"])[0], x)


def test_alignment_with_loudness_partialled_out_and_the_rnns_hidden_signal(env):
    raw = latent_alignment(env["ckpt"]["vrnn"], shuffles=20)
    partial = latent_alignment(env["ckpt"]["vrnn"], shuffles=20, control="loudness")
    assert partial["control"] == "loudness" and partial["steps"] == raw["steps"]
    assert partial["raw_spearman"] == pytest.approx(raw["spearman"])  # the same steps, before the control
    assert -1 <= partial["spearman"] <= 1 and 0 < partial["p_value"] <= 1
    rnn = latent_alignment(env["ckpt"]["rnn"], signal="hidden", transition="energy", control="loudness", shuffles=20)
    assert rnn["signal"] == "hidden" and rnn["steps"] == raw["steps"]
    with pytest.raises(VrnnError, match="choose a signal"):
        latent_alignment(env["ckpt"]["vrnn"], control="pitch")


def test_fig2_clips_the_kl_colour_at_the_99th_percentile_and_says_so(env):
    res = analyze_checkpoint(env["ckpt"]["vrnn"], env["src"] / "spk_a" / "one.wav", seed=5)
    res["kl"][3, 0] = 1e3 * res["kl"].max()  # one step far above the rest
    fig = fig2_figure(res)
    image = fig.axes[1].images[0]
    assert image.norm.vmin == 0 and image.norm.vmax == pytest.approx(np.percentile(res["kl"], 99))
    assert image.norm.vmax < res["kl"].max() / 100
    assert any("clipped at the 99th percentile" in ax.get_xlabel() for ax in fig.axes)  # the colour bar's label


def test_fig3_has_one_amplitude_scale_and_zooms_into_the_loudest_window(env, tmp_path):
    rate = 8000
    rng = np.random.default_rng(0)
    quiet = lambda s: 0.01 * rng.standard_normal(int(s * rate))  # noqa: E731
    speech = np.concatenate([quiet(0.5), _tone(rate, 0.2, 200.0, 1) * 1.5, quiet(0.3)])
    rows = {"recording": speech, "noisy sample": 0.9 * rng.standard_normal(rate)}
    fig = waveforms_plot(rows, rate, zoom=0.05)
    limits = {ax.get_ylim() for ax in fig.axes}
    assert len(limits) == 1 and limits.pop()[1] >= np.abs(rows["noisy sample"]).max()  # one scale, fits every row
    lo, hi = loudest_window(speech, int(0.05 * rate))
    frames = (speech[: len(speech) // 200 * 200].reshape(-1, 200) ** 2).mean(1)
    assert 0.5 * rate <= lo and hi <= 0.7 * rate  # inside the voiced part
    assert (speech[lo:hi] ** 2).mean() > np.median(frames)
    x0, x1 = fig.axes[1].get_xlim()  # the recording's zoomed axis shows that window
    assert x0 == pytest.approx(lo / rate) and x1 == pytest.approx((hi - 1) / rate)
    trained = waveforms_figure([env["ckpt"]["rnn"], env["ckpt"]["vrnn"]], tmp_path / "f.png", seconds=1.0, zoom=0.02)
    data = trained["training data"]
    lo, hi = loudest_window(data, 160)
    assert (data[lo:hi] ** 2).mean() >= np.median((data[: len(data) // 200 * 200].reshape(-1, 200) ** 2).mean(1))


def test_a_checkpoint_trained_on_other_prepared_data_is_named_stale(env, tmp_path, monkeypatch):
    """The file-split checkpoint against the speaker split: under another prepared name, and under its own name
    rebuilt with other options (the prepared set's recorded split differs)."""
    from vrnn.data import DataConfig, load_dataset
    from vrnn.lab.experiments.runner import other_data

    ckpt = env["ckpt"]["vrnn"]
    assert other_data(ckpt, load_dataset(DataConfig(source="tiny")), None) is None  # what it was trained on
    prepare("audio", save_as="tiny-spk", source=str(env["src"]), rate=8000, seconds=0.25, speaker_split=True)
    assert other_data(ckpt, load_dataset(DataConfig(source="tiny-spk")), None) == \
        "trained on 'tiny', but it names 'tiny-spk'"
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path))
    prepare("audio", save_as="tiny", source=str(env["src"]), rate=8000, seconds=0.25, speaker_split=True)
    why = other_data(ckpt, load_dataset(DataConfig(source="tiny")), None)
    assert why == "trained on tiny with split '0.9/0.05/0.05 of files, seed 0', but it now has " \
                  "'0.9/0.05/0.05 of speakers, seed 0'"


SPEECH_EXPERIMENT = """
title = "Tiny speech"
report = "speech"

[eval]
iw_samples = 3
batch_size = 8
smc_particles = [2, 4]

[data.tiny]
source = "tiny-speakers"
about = "test tones"
prepare = {{ recipe = "audio", source = "{{data_dir}}/corpus", rate = 8000, seconds = 0.25, speaker_split = true }}

[runs.rnn-gauss]
label = "RNN-Gauss"
config = "configs/rnn.toml"
data = ["tiny"]
seeds = [0, 1]

[runs.vrnn-gauss]
label = "VRNN-Gauss"
config = "configs/vrnn.toml"
data = ["tiny"]
seeds = [0, 1]

[report_options]
fig2 = {{ data = "tiny", run = "vrnn-gauss", input = "spk_a/two.flac", seconds = 0.5 }}
fig3 = {{ data = "tiny", runs = ["rnn-gauss", "vrnn-gauss"], seconds = 0.5 }}

[[report_options.claims]]
claim = "latents raise the likelihood"
paper = "yes"
kind = "likelihood"
data = "tiny"
a = "vrnn-gauss"
b = "rnn-gauss"

[[report_options.claims]]
claim = "VRNN samples are nearer real audio"
paper = "yes"
kind = "samples"
data = "tiny"
a = "vrnn-gauss"
b = "rnn-gauss"
n = 4

[[report_options.claims]]
claim = "latent changes line up with transitions"
paper = "yes (Fig. 2)"
kind = "{kind}"
data = "tiny"
run = "vrnn-gauss"
shuffles = 20

[[report_options.claims]]
claim = "latents raise the likelihood, by the particle filter"
paper = "yes"
kind = "likelihood"
data = "tiny"
a = "vrnn-gauss"
b = "rnn-gauss"
estimator = "smc"

[[report_options.claims]]
claim = "latent changes line up with transitions beyond loudness"
paper = "yes"
kind = "alignment"
data = "tiny"
run = "vrnn-gauss"
control = "loudness"
shuffles = 20

[[report_options.claims]]
claim = "control: the RNN's state changes"
paper = "-"
kind = "alignment"
data = "tiny"
run = "rnn-gauss"
signal = "hidden"
control = "loudness"
shuffles = 20
"""


def test_a_speech_claims_table_opens_the_report_and_is_measured_from_the_checkpoints(env, tmp_path):
    """report_options.claims: each claim a row with our measurement and a verdict; the likelihood row is
    the paired difference of the seed-averaged per-sequence numbers in results.json."""
    import json

    from conftest import tiny_experiment
    from vrnn.lab.experiments.runner import run_experiment

    root = tmp_path / "repo"
    exp = tiny_experiment(root, "name = 'gauss'", SPEECH_EXPERIMENT.format(kind="alignment"))
    out = run_experiment(exp, data_dir=env["base"], work=root / "runs", quiet=True)
    text = out.read_text()
    table = text[text.index("## The claims, measured"):].split("\n\n")[1].splitlines()
    assert text.index("## The claims, measured") < text.index("| Model |")  # the claims open the report
    assert len(table) == 2 + 6
    # every verdict is one of the rule's and states its seed counts
    assert all(re.search(r"\| (yes|not resolved|no: the opposite holds|no|no: anti-aligned|latents unused.*|not "
                         r"resolved: aligned on \d of 2 seeds|not rankable: .*) \((2 vs 2 seeds|2 seeds)\) \|$"
                         r"|\| latents unused", row) for row in table[2:]), table[2:]
    ev = read_results(out.parent)["evaluations"]["tiny"]
    means = {run: [np.mean(ev[f"{run}-seed{s}"]["sequences"]["log_likelihood"]) for s in (0, 1)]
             for run in ("vrnn-gauss", "rnn-gauss")}
    gap = np.mean(means["vrnn-gauss"]) - np.mean(means["rnn-gauss"])
    ahead = sum(a > b for a in means["vrnn-gauss"] for b in means["rnn-gauss"])
    assert f"difference of the seed means {gap:+.1f} ± " in table[2]
    files = load_prepared(env["base"] / "data" / "tiny-speakers.npz").meta["file_sequences"]["test"]
    assert f"ahead in {ahead} of 4 seed pairs" in table[2]
    assert f"bootstrap over {len(files)} source file{'s' * (len(files) > 1)})" in table[2]  # clustered by file
    assert "dB" in table[3] and "Spearman" in table[4]
    assert "particle filter, K = 4" in table[5] and "second-largest K" in table[5]
    assert "partial Spearman" in table[6] and "raw " in table[6] and "‖h_t − h_{t−1}‖" in table[7]
    pf = {k: ev[f"vrnn-gauss-seed{s}"]["smc_particles"][k]["sequences"] for s in (0, 1) for k in ("2", "4")}
    assert all(len(v) == ev["vrnn-gauss-seed0"]["num_sequences"] for v in pf.values())
    assert "smc_particles" not in ev["rnn-gauss-seed0"]  # exact: no particles
    assert "| model | seeds | IS, K = 3 | PF, K = 2 | PF, K = 4 |" in text and "*not rankable*" in text
    spk = load_prepared(env["base"] / "data" / "tiny-speakers.npz").meta["speakers"]
    said = ", ".join(f"{s} {' '.join(spk[s])}" for s in ("train", "valid", "test"))
    assert f"speakers: {said} |" in text  # the data table names each split's speakers
    assert "(2 seeds)" in text  # the main table's cells are means over the seeds
    figures = [out.parent / "fig2-tiny-vrnn-gauss.png", out.parent / "fig3-tiny-waveforms.png"]
    assert all(f"]({f.name})" in text and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    assert "`spk_a/two.flac`" in text  # Fig. 2 names the recording it was drawn from
    drawn = [f.read_bytes() for f in figures]
    assert main(["experiment", str(exp), "--eval-only", "--data-dir", str(env["base"])]) == 0
    assert out.read_text() == text  # seeded measurements: the same checkpoints give the same table
    assert [f.read_bytes() for f in figures] == drawn  # and the same figures
    exp.write_text(SPEECH_EXPERIMENT.format(kind="vibes"))
    assert main(["experiment", str(exp), "--eval-only", "--data-dir", str(env["base"])]) == 2
