"""Readers, prepared data sets and batching (issue 2)."""
import numpy as np
import pytest

from vrnn.training.config import DataConfig
from vrnn.data import Normalizer, SequenceData, load_dataset, load_prepared, pad_batch, save_prepared
from vrnn.data.readers import notes_to_roll
from vrnn.errors import VrnnError


def test_boulanger_pickle_becomes_88_key_rolls(rolls_pickle):
    import pickle

    raw = pickle.loads(rolls_pickle.read_bytes())
    data = load_dataset(DataConfig(source=str(rolls_pickle)))
    assert data.x_dim == 88 and data.meta["kind"] == "pianoroll"
    piece, roll = raw["train"][0], data.splits["train"][0]
    assert roll.shape == (len(piece), 88)
    for t, notes in enumerate(piece):
        assert sorted(np.nonzero(roll[t])[0] + 21) == sorted(notes)


def test_notes_outside_the_piano_are_an_error():
    with pytest.raises(VrnnError, match="outside the piano range"):
        notes_to_roll([(20,)], "x.pickle")


def test_prepared_format_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    splits = {s: [rng.random((int(rng.integers(1, 9)), 3)).astype(np.float32) for _ in range(5)]
              for s in ("train", "valid", "test")}
    save_prepared(tmp_path / "d.npz", SequenceData(splits, {"name": "d", "kind": "real"}))
    back = load_prepared(tmp_path / "d.npz")
    assert back.meta == {"name": "d", "kind": "real"}
    for s in splits:
        assert all(np.array_equal(a, b) for a, b in zip(splits[s], back.splits[s]))


def test_user_arrays_with_masks_and_npy(tmp_path):
    x = np.random.default_rng(0).random((10, 6, 2)).astype(np.float32)
    mask = np.ones((10, 6))
    mask[3, 4:] = 0
    np.savez(tmp_path / "m.npz", train=x, train_mask=mask, valid=x[:2], test=x[:3])
    data = load_dataset(DataConfig(source=str(tmp_path / "m.npz")))
    assert len(data.splits["train"][3]) == 4 and len(data.splits["valid"]) == 2
    np.save(tmp_path / "all.npy", x)
    data = load_dataset(DataConfig(source=str(tmp_path / "all.npy")))
    assert [len(v) for v in data.splits.values()] == [8, 1, 1]


def test_padding_and_mask():
    x, mask = pad_batch([np.ones((3, 2), np.float32), np.ones((5, 2), np.float32)])
    assert x.shape == (2, 5, 2) and mask.sum().item() == 8 and x[0, 3:].eq(0).all()


def test_normaliser_inverts_and_has_the_right_jacobian():
    norm = Normalizer.fit([np.array([[1.0, 3.0]]), np.array([[5.0, 7.0]])])
    assert norm.mean == 4.0 and norm.std == pytest.approx(np.sqrt(5.0))
    a = np.array([[2.0, 9.0]])
    assert np.allclose(norm.invert(norm(a)), a)
    assert norm.log_jacobian(2) == pytest.approx(-2 * np.log(np.sqrt(5.0)))


def test_score_to_roll_samples_every_beat():
    music21 = pytest.importorskip("music21", reason="music21 is installed by `make test` ([all] extra)")
    from vrnn.data.recipes import score_to_roll

    s = music21.stream.Stream()
    s.insert(0, music21.chord.Chord(["C4", "E4", "G4"], quarterLength=2))  # beats 0, 1
    s.insert(2, music21.note.Note("D4", quarterLength=0.5))  # beat 2
    s.insert(2.5, music21.note.Note("F4", quarterLength=0.5))  # off the beat: not sampled
    s.insert(3, music21.note.Note("A4", quarterLength=1))  # beat 3
    roll = score_to_roll(s)
    on = [sorted((np.nonzero(r)[0] + 21).tolist()) for r in roll]
    assert on == [[60, 64, 67], [60, 64, 67], [62], [69]]


def test_canonical_jsb_pickle(shared_data):
    data = load_dataset(DataConfig(source=str(shared_data / "polyphonic" / "jsb_chorales.pickle")))
    assert [len(v) for v in data.splits.values()] == [229, 76, 77]
    assert sum(len(a) for a in data.splits["test"]) == 4725  # quarter-note steps, as in the data README


def test_srnn_arrays_use_the_test_mask(shared_data):
    data = load_dataset(DataConfig(source=str(shared_data / "polyphonic" / "srnn" / "jsb.npz")))
    assert len(data.splits["test"]) == 77 and sum(len(a) for a in data.splits["test"]) == 9396
    assert all(len(a) == 100 for a in data.splits["train"])
