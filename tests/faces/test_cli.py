"""The command line, and bad input: one line naming the problem and the fix, non-zero exit, no traceback."""
import argparse
import json
import pickle
import subprocess
import sys

import mido
import numpy as np
import pytest

from vrnn.cli import build_parser, main
from vrnn.training.trainer import fit

from conftest import tiny_config, write_arrays

TRAIN_TINY = ["--set", "model.hidden=16", "--set", "model.width=16", "--set", "model.layers=1",
              "--set", "train.max_steps=2", "--set", "train.eval_every=1", "--quiet"]


def run_cli(*args):
    """Run `python -m vrnn` as a user would; returns (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "vrnn", *map(str, args)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def assert_user_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("vrnn: error:"), err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


@pytest.fixture
def trained(tmp_path, rolls_pickle):
    """A tiny VRNN-Bernoulli trained on 88-key piano rolls, through the API."""
    cfg = tiny_config("vrnn", "conditional", "bernoulli", x_dim=88, source=str(rolls_pickle), max_steps=2,
                      eval_every=1)
    fit(cfg, tmp_path / "run", progress=False)
    return tmp_path / "run" / "best.pt"


def test_train_and_eval_json_from_the_command_line(tmp_path, binary_npz):
    code, out, err = run_cli("train", "--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={binary_npz}",
                             *TRAIN_TINY, "--set", "model.z_dim=3", "--out", tmp_path / "run")
    assert code == 0, err
    assert "nats per time step" in out
    code, out, err = run_cli("eval", tmp_path / "run" / "best.pt", "--split", "test", "--iw-samples", "4", "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in ("model", "dataset", "split", "num_sequences", "num_steps", "elbo", "log_likelihood",
                "log_likelihood_method", "iw_samples", "units"):
        assert key in r
    for key in ("elbo", "log_likelihood"):
        assert set(r[key]) == {"per_sequence", "per_step_total", "per_step_mean_of_sequences"}
    assert r["log_likelihood_method"] == "importance_sampling" and r["iw_samples"] == 4 and r["units"] == "nats"
    with np.load(binary_npz) as f:
        assert r["num_steps"] == int(f["test_lengths"].sum()) and r["num_sequences"] == len(f["test_lengths"])


def test_sample_writes_a_midi_file_and_a_png_that_open(trained, tmp_path, capsys):
    assert main(["sample", str(trained), "--steps", "12", "--out", str(tmp_path / "s.mid")]) == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (1, 12, 88) and set(np.unique(x)) <= {0.0, 1.0}
    mid = mido.MidiFile(tmp_path / "s.mid")
    ons = sum(1 for m in mid.tracks[0] if m.type == "note_on" and m.velocity > 0)
    assert ons == int((np.diff(np.vstack([np.zeros((1, 88)), x[0]]), axis=0) == 1).sum())
    assert mid.length == pytest.approx(12 * 0.5, abs=0.51) or ons == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # existing outputs are never overwritten without --overwrite
    before = (tmp_path / "s.mid").read_bytes()
    assert main(["sample", str(trained), "--steps", "12", "--out", str(tmp_path / "s.mid"), "--seed", "5"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "s.mid").read_bytes() == before


def test_rnn_eval_reports_exact_likelihood(tmp_path, binary_npz, capsys):
    cfg = tiny_config("rnn", None, "bernoulli", x_dim=5, source=str(binary_npz), max_steps=2, eval_every=1)
    fit(cfg, tmp_path / "run", progress=False)
    assert main(["eval", str(tmp_path / "run" / "best.pt"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["log_likelihood_method"] == "exact" and r["log_likelihood"] == r["elbo"]


# ---- bad input -------------------------------------------------------------------------------------------------


def _cli_error(capsys, argv, *needles) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert_user_error(code, err, *needles)
    return err.strip()


def test_wrong_feature_dimension(trained, tmp_path, capsys):
    other = write_arrays(tmp_path / "wide.npz", dim=7, binary=True)  # 7 features, the model has 88
    _cli_error(capsys, ["eval", trained, "--data", other], "wide.npz", "model.x_dim")


@pytest.mark.parametrize("bad,needle", [(np.nan, "non-finite"), (np.inf, "non-finite")])
def test_nan_and_inf_in_data(tmp_path, capsys, bad, needle):
    path = write_arrays(tmp_path / "bad.npz")
    with np.load(path) as f:
        arrays = dict(f)
    arrays["train"][4, 1] = bad
    np.savez(path, **arrays)
    _cli_error(capsys, ["train", "--config", "configs/vrnn-gauss.toml", "--set", f"data.source={path}",
                        "--out", tmp_path / "run", "--quiet"], "bad.npz", needle, "[train]")
    assert not (tmp_path / "run").exists()


def test_empty_sequence(tmp_path, capsys):
    path = tmp_path / "empty.npz"
    seq = np.ones((5, 2), np.float32)
    np.savez(path, train=np.concatenate([seq, seq]), train_lengths=[5, 0, 5][:2] + [0] if False else np.array([5, 5]),
             valid=seq, valid_lengths=np.array([5, 0]), test=seq, test_lengths=np.array([5]))
    _cli_error(capsys, ["train", "--config", "configs/vrnn-gauss.toml", "--set", f"data.source={path}",
                        "--out", tmp_path / "run", "--quiet"], "empty.npz", "[valid]", "empty")


def test_non_binary_data_for_a_bernoulli_emission(real_npz, tmp_path, capsys):
    _cli_error(capsys, ["train", "--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={real_npz}",
                        "--out", tmp_path / "run", "--quiet"], "waves.npz", "binary", "emission.name=gauss")


def test_missing_and_corrupt_files(tmp_path, capsys, trained):
    _cli_error(capsys, ["eval", tmp_path / "nope.pt"], "nope.pt", "not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    _cli_error(capsys, ["eval", junk], "junk.pt is not a vrnn checkpoint")
    _cli_error(capsys, ["sample", junk, "--steps", "3", "--out", tmp_path / "x.npy"], "junk.pt")
    bad_data = tmp_path / "broken.npz"
    bad_data.write_bytes(b"PK\x03\x04 truncated")
    _cli_error(capsys, ["eval", trained, "--data", bad_data], "broken.npz")
    _cli_error(capsys, ["train", "--config", tmp_path / "none.toml", "--out", tmp_path / "r"], "none.toml")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[model\nkind = ")
    _cli_error(capsys, ["train", "--config", bad_toml, "--out", tmp_path / "r"], "bad.toml", "syntax")
    pkl = tmp_path / "evil.pickle"
    pkl.write_bytes(pickle.dumps({"train": [[(60,)]], "valid": [], "test": [], "x": np.zeros(1)}))
    _cli_error(capsys, ["train", "--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={pkl}",
                        "--out", tmp_path / "r"], "evil.pickle", "refusing")
    _cli_error(capsys, ["train", "--config", "configs/vrnn-bernoulli.toml", "--set", "data.source=nosuchset",
                        "--out", tmp_path / "r"], "nosuchset", "prepare")


def test_a_training_log_given_as_a_checkpoint_names_the_checkpoint_to_use(trained, capsys):
    log = trained.parent / "log.jsonl"
    for command in (["eval", log], ["sample", log, "--steps", "3", "--out", trained.parent / "s.npy"]):
        line = _cli_error(capsys, command, f"{log} is a training log, not a checkpoint", f"use {trained}")
        assert "weights_only" not in line


def test_a_text_file_given_as_a_checkpoint_is_one_clean_line(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello world\n")
    line = _cli_error(capsys, ["eval", notes], f"{notes} is not a vrnn checkpoint (a text file", "vrnn train")
    assert "(101)" not in line


def test_numbers_in_messages_are_plain_numbers_not_numpy_reprs(real_npz, tmp_path, capsys):
    """numpy 2's repr of a scalar is np.float32(6.8); a message shows 6.8."""
    from vrnn.emissions import check_emission_data
    from vrnn.errors import VrnnError
    from vrnn.training.config import config_from_dict

    with np.load(real_npz) as f:
        first = f["train"].astype(np.float32).flat[0]  # real-valued: not 0 or 1
    line = _cli_error(capsys, ["train", "--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={real_npz}",
                               "--out", tmp_path / "run", "--quiet"], f"found {str(first)}; ")
    messages = [line]
    for name, x in (("dlogistic", np.full((2, 3), 0.3, np.float32)), ("strokes", np.full((2, 3), 0.5, np.float32))):
        with pytest.raises(VrnnError) as e:
            check_emission_data(name, [x], "mine.npy")
        messages.append(str(e.value))
    with pytest.raises(VrnnError) as e:
        config_from_dict({"model": {"kind": "vrnn"}, "train": {"batch_size": np.int64(0)}}).check()
    messages.append(str(e.value))
    cfg = config_from_dict({"model": {"kind": "vrnn"}, "train": {"lr": np.float32(0.5), "max_steps": np.int64(7)}})
    assert (cfg.train.lr, cfg.train.max_steps) == (0.5, 7)  # numpy numbers are numbers
    assert not [m for m in messages if "np." in m or "float32" in m or "int64" in m], messages
    assert "found 0.3;" in messages[1] and "found 0.5;" in messages[2] and "is 0;" in messages[3], messages


def test_a_checkpoint_that_is_not_ours(tmp_path, capsys):
    import torch

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    _cli_error(capsys, ["eval", other], "other.pt", "not a vrnn checkpoint")


@pytest.mark.parametrize("setting,needles", [
    ("model.kind=lstm-vae", ("model.kind", "'lstm-vae'", "rnn")),
    ("model.emission.name=poisson", ("model.emission.name", "'poisson'", "bernoulli")),
    ("model.hiddn=3", ("model.hiddn", "hidden")),
    ("train.lr=fast", ("train.lr", "float")),
    ("train.max_steps=fast", ("train.max_steps", "expected an int, got 'fast'")),
    ("model.rnn=transformer", ("model.rnn", "lstm")),
    ("model.prior=learned", ("model.prior", "independent")),
    ("optim.lr=1", ("optim",)),
    ("train.batch_size=0", ("train.batch_size", ">= 1")),  # the values that gave tracebacks or degenerate models
    ("train.batch_size=-5", ("train.batch_size", ">= 1")),
    ("train.lr=-1", ("train.lr", "> 0")),
    ("train.eval_every=0", ("train.eval_every", ">= 1")),
    ("model.hidden=0", ("model.hidden", ">= 1")),
    ("data.normalize=zscore", ("data.normalize", "per_feature")),
])
def test_unknown_names_and_options(binary_npz, tmp_path, capsys, setting, needles):
    _cli_error(capsys, ["train", "--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={binary_npz}",
                        "--set", setting, "--out", tmp_path / "run", "--quiet"], *needles)


def test_an_unknown_setting_names_the_file_once(tmp_path, capsys):
    _cli_error(capsys, ["train", "--config", "configs/vrnn-bernoulli.toml", "--set", "model.emission.nme=gmm",
                        "--out", tmp_path / "run"], "configs/vrnn-bernoulli.toml: unknown setting model.emission.nme")
    assert not (tmp_path / "run").exists()


def test_existing_training_output_is_not_overwritten(trained, binary_npz, capsys):
    before = trained.read_bytes()
    _cli_error(capsys, ["train", "--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={binary_npz}",
                        "--out", trained.parent, "--quiet"], "--overwrite", "--resume")
    assert trained.read_bytes() == before


def test_user_errors_exit_nonzero_without_traceback_in_a_real_process(tmp_path):
    code, out, err = run_cli("eval", tmp_path / "missing.pt")
    assert_user_error(code, err, "missing.pt")
    code, out, err = run_cli("prepare", "no-such-data")
    assert_user_error(code, err, "no-such-data", "chorales")


def cli_commands() -> list[str]:
    """Every command of the parser, as `vrnn --help` lists them."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


def test_every_command_has_help(capsys):
    commands = cli_commands()
    assert {"train", "experiment", "compare"} <= set(commands)  # the walk saw the commands
    code, out, err = run_cli("--help")  # a real process, as a user types it
    assert code == 0 and "usage: vrnn" in out and all(cmd in out for cmd in commands), out
    for cmd in commands:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: vrnn {cmd}"), cmd
