"""`vrnn prepare midi`: MIDI files the test writes, and the .mid files `vrnn sample` writes, back to piano rolls."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config, write_boulanger_pickle
from vrnn.cli import main
from vrnn.data import load_prepared
from vrnn.data.midi import midi_to_roll
from vrnn.data.recipes import prepare
from vrnn.errors import VrnnError
from vrnn.outputs.pianoroll import write_midi


def random_roll(seed: int, steps: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    roll = np.zeros((steps, 88), np.float32)
    for t in range(0, steps, 2):  # chords held for two steps, some notes tied across chords
        roll[t:t + 2, rng.choice(np.arange(20, 60), 3, replace=False)] = 1.0
    roll[-1] = 0.0
    roll[-1, 40] = 1.0  # the last step sounds, so the roll's length is the piece's
    return roll


def test_a_written_midi_file_reads_back_as_its_roll(tmp_path):
    roll = random_roll(0)
    write_midi(tmp_path / "a.mid", roll)  # one step = one beat (quarter note at 120 bpm)
    back, dropped = midi_to_roll(tmp_path / "a.mid", steps_per_beat=1)
    assert dropped == 0 and back.shape == roll.shape and (back == roll).all()
    fine, _ = midi_to_roll(tmp_path / "a.mid", steps_per_beat=2)  # eighth notes: every step twice
    assert (fine == np.repeat(roll, 2, 0)).all()


def test_prepare_midi_splits_by_file_and_skips_unreadable_files_by_name(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "music" / "sub"
    src.mkdir(parents=True)
    for i in range(10):
        write_midi(src / f"piece{i}.mid", random_roll(i))
    (src / "broken.mid").write_bytes(b"MThd not really")
    data = load_prepared(prepare("midi", source=str(tmp_path / "music"), steps_per_beat=1))
    assert [len(data.splits[s]) for s in ("train", "valid", "test")] == [8, 1, 1]
    assert data.meta["skipped_files"] == ["sub/broken.mid"] and "broken.mid" in caplog.text
    files = sum(data.meta["files"].values(), [])
    assert sorted(files) == sorted(f"sub/piece{i}.mid" for i in range(10))
    roll = random_roll(int(data.meta["files"]["test"][0][9:-4]))
    assert (data.splits["test"][0] == roll).all()
    with pytest.raises(VrnnError, match="no .mid"):
        prepare("midi", source=str(tmp_path / "data"), overwrite=True)


def test_the_midi_of_vrnn_sample_reads_back_as_its_array(tmp_path, monkeypatch):
    from vrnn.training.trainer import fit

    rolls = write_boulanger_pickle(tmp_path / "rolls.pickle")
    fit(tiny_config("rnn", None, "bernoulli", x_dim=88, source=str(rolls), max_steps=2, eval_every=2),
        tmp_path / "run", progress=False)
    assert main(["sample", str(tmp_path / "run" / "best.pt"), "--steps", "16", "--out",
                 str(tmp_path / "s.mid")]) == 0
    x = np.load(tmp_path / "s.npy")[0]
    back, _ = midi_to_roll(tmp_path / "s.mid", steps_per_beat=1)
    last = int(np.nonzero(x.any(1))[0].max()) + 1  # MIDI keeps no trailing silence
    assert (back == x[:last]).all()
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "mine").mkdir()
    for i in range(3):
        (tmp_path / "mine" / f"{i}.mid").write_bytes((tmp_path / "s.mid").read_bytes())
    assert main(["prepare", "midi", "--source", str(tmp_path / "mine"), "--steps-per-beat", "1"]) == 0
