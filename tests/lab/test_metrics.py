"""vrnn.lab.metrics on signals whose answer is known: tones and noise, a step change in energy, drawings
that keep or change their style."""
from __future__ import annotations

import numpy as np
import pytest

from vrnn.errors import VrnnError
from vrnn.lab.metrics import (average_log_spectrum, energy_change, frame_loudness, high_frequency_ratio,
                              log_spectral_distance, reference_spectrum, spectral_flux, style_drift,
                              transition_alignment)

RATE = 8000


def tone(hz: float, seconds: float = 1.0, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    noise = 2e-3 * amp * np.random.default_rng(seed).standard_normal(t.size)  # the same spectral shape at any loudness
    return amp * np.sin(2 * np.pi * hz * t + seed) + noise


def white(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return 0.3 * np.random.default_rng(seed).standard_normal(int(RATE * seconds))


def test_the_average_spectrum_peaks_at_a_tones_frequency():
    freqs, db = average_log_spectrum(tone(1000), RATE)
    assert abs(freqs[np.argmax(db)] - 1000) <= RATE / 256
    _, flat = average_log_spectrum(white(), RATE)
    assert np.ptp(flat[2:-2]) < 10 < np.ptp(db)  # white noise: flat within a few dB; a tone: tens of dB


def test_log_spectral_distance_tells_noise_from_a_tone_and_ignores_loudness():
    same_kind = log_spectral_distance(tone(440, seed=1), tone(440, seed=2), RATE)
    louder = log_spectral_distance(tone(440, amp=0.05, seed=1), tone(440, seed=2), RATE)
    noise = log_spectral_distance(white(seed=1), tone(440, seed=2), RATE)
    noise_pair = log_spectral_distance(white(seed=1), white(seed=2), RATE)
    assert same_kind < 3 and louder < 3 and noise_pair < 3
    assert noise > 10 * max(same_kind, noise_pair)
    assert log_spectral_distance(tone(440, amp=0.05), tone(440), RATE, normalise=False) > 15  # 20 dB quieter
    once = reference_spectrum(tone(440, seed=2), RATE)  # the reference's spectrum computed once: the same distances
    assert log_spectral_distance(white(seed=1), once, RATE) == noise
    assert log_spectral_distance(tone(440, amp=0.05), reference_spectrum(tone(440), RATE), RATE, normalise=False) > 15


def test_high_frequency_ratio_of_noise_is_its_bandwidth_share_and_of_a_low_tone_near_zero():
    assert high_frequency_ratio(white(), RATE, 2000) == pytest.approx(0.5, abs=0.05)  # flat up to 4 kHz
    assert high_frequency_ratio(tone(300), RATE, 2000) < 1e-3
    assert high_frequency_ratio(tone(3000), RATE, 2000) > 0.99
    with pytest.raises(VrnnError, match="Nyquist"):
        high_frequency_ratio(white(), RATE, 5000)


def frames_with_a_step(at: int = 20, steps: int = 40, size: int = 200) -> np.ndarray:
    """A tone that jumps 10-fold in amplitude and changes pitch at frame ``at``."""
    t = np.arange(steps * size) / RATE
    wave = np.where(t < at * size / RATE, 0.05 * np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 900 * t))
    return wave.reshape(steps, size)


def test_transition_signals_peak_at_the_step_change():
    f = frames_with_a_step(at=20)
    for signal in (spectral_flux(f), energy_change(f)):
        assert np.isnan(signal[0]) and np.nanargmax(signal) == 20
        rest = np.delete(signal[1:], 19)
        assert signal[20] > 10 * np.nanmax(rest)


def test_alignment_is_high_for_a_signal_that_follows_transitions_and_chance_for_one_that_does_not():
    rng = np.random.default_rng(0)
    flux = spectral_flux(np.repeat(rng.standard_normal((60, 1)), 200, axis=1) * rng.standard_normal((60, 200)))
    follows = flux + 0.1 * np.nanstd(flux) * rng.standard_normal(60)
    unrelated = rng.standard_normal(60)
    good, bad = transition_alignment(follows, flux, seed=1), transition_alignment(unrelated, flux, seed=1)
    assert good["spearman"] > 0.8 and good["p_value"] < 0.01 and good["steps"] == 59
    assert abs(good["shuffled_mean"]) < 0.05 and good["shuffled_sd"] < 0.2
    assert abs(bad["spearman"]) < 3 * bad["shuffled_sd"] and bad["p_value"] > 0.01
    with pytest.raises(VrnnError, match="steps"):
        transition_alignment(follows[:10], flux)


def test_shuffling_within_sequences_removes_only_the_alignment_in_time():
    """Pooled sequences whose levels differ: a latent signal that only knows each sequence's level
    correlates with the transitions overall, but no more than with time shuffled within sequences."""
    rng = np.random.default_rng(3)
    level = np.repeat(rng.uniform(1, 10, 20), 10)
    groups = np.repeat(np.arange(20), 10)
    flux = level * rng.uniform(0.5, 1.5, 200)
    knows_level = level + 0.01 * rng.standard_normal(200)
    pooled, within = (transition_alignment(knows_level, flux, shuffles=300, groups=g) for g in (None, groups))
    assert pooled["spearman"] > 0.5 and pooled["p_value"] < 0.01  # global shuffling calls it aligned
    assert within["shuffled_mean"] > 0.5 and within["p_value"] > 0.05  # within-sequence shuffling does not


def test_with_loudness_partialled_out_a_correlation_made_only_by_loudness_vanishes():
    """Latent signal and transitions both follow loudness and nothing else: the raw rank correlation is high,
    the partial one about 0 and no better than time shuffled."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(30), 20)
    loud = rng.standard_normal(600)
    transition = loud + 0.3 * rng.standard_normal(600)
    latent = loud + 0.3 * rng.standard_normal(600)
    r = transition_alignment(latent, transition, shuffles=300, groups=groups, control=loud)
    assert r["raw_spearman"] > 0.8
    assert abs(r["spearman"]) < 0.1 and r["p_value"] > 0.01
    assert transition_alignment(latent, transition, shuffles=300, groups=groups)["spearman"] == pytest.approx(
        r["raw_spearman"])  # without a control: Spearman's rho itself


def test_an_alignment_beyond_loudness_survives_the_partial_correlation():
    """Transitions are loudness plus their own part; a latent signal that follows that own part stays aligned."""
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), 20)
    loud, own = rng.standard_normal(600), rng.standard_normal(600)
    transition = loud + own
    latent = own + 0.3 * rng.standard_normal(600)
    r = transition_alignment(latent, transition, shuffles=300, groups=groups, control=loud)
    assert r["spearman"] > 0.8 > r["raw_spearman"]  # partialling loudness out removes noise, not the alignment
    assert r["p_value"] < 0.01 and abs(r["shuffled_mean"]) < 0.1  # group means stay: about 1/20 of the correlation
    with pytest.raises(VrnnError, match="control 5"):
        transition_alignment(latent, transition, control=loud[:5])


def test_loudness_is_the_frames_log_power_and_energy_change_its_step():
    f = frames_with_a_step(at=20)
    loud = frame_loudness(f)
    assert loud.shape == (40,) and loud[25] - loud[5] == pytest.approx(np.log(100), abs=0.05)  # 10x amplitude
    np.testing.assert_allclose(energy_change(f)[1:], np.abs(np.diff(loud)))


def drawing(steps: int, step_length: float, seed: int, curl: float = 0.3) -> np.ndarray:
    """A stroke-3 drawing: pen steps of a given length turning by ``curl`` radians on average, a lift every 10."""
    rng = np.random.default_rng(seed)
    angle = np.cumsum(curl * rng.standard_normal(steps))
    d = np.stack([step_length * np.cos(angle), step_length * np.sin(angle), np.zeros(steps)], 1)
    d[9::10, 2] = 1
    return d


def test_style_drift_is_small_for_one_style_and_large_when_the_style_changes_halfway():
    steady = drawing(400, 1.0, seed=0)
    changed = np.concatenate([drawing(200, 1.0, seed=1), drawing(200, 3.0, seed=2)])  # steps 3× longer
    curlier = np.concatenate([drawing(200, 1.0, seed=3, curl=0.1), drawing(200, 1.0, seed=4, curl=1.5)])
    assert style_drift(steady) < 0.2
    assert style_drift(changed) > 0.9 and style_drift(curlier) > 0.9
    with pytest.raises(VrnnError, match="stroke-3"):
        style_drift(np.zeros((3, 3)))
