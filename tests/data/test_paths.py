"""One resolver for every command's data argument (vrnn/data/resolve.py): a prepared name or any file
`eval` reads, for `eval --data`, `score --data`, `sample --prime` and `analyze --input`; a prepared name
wins over a same-named folder; "not found" tells missing, folder and unreadable apart. And no committed
benchmark file holds an absolute path (scripts/check_portable.py)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vrnn.cli import main
from vrnn.data import DataConfig, SequenceData, load_dataset, save_prepared
from vrnn.training.trainer import fit

from conftest import one_error_line, random_sequences, tiny_config, write_arrays

REPO = Path(__file__).resolve().parents[2]


def vrnn(*argv) -> int:
    return main([str(a) for a in argv])


def user_error(capsys, argv, *needles) -> str:
    """`vrnn ARGV` fails as a user mistake: exit 2 and one line `vrnn: error: ...` naming ``needles``."""
    return one_error_line(vrnn(*argv), capsys.readouterr().err, *needles)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A prepared data set ``waves`` (3 features) in its own data folder, and a tiny VRNN run trained on it."""
    root = tmp_path_factory.mktemp("paths")
    cache = root / "cache"
    splits = {s: random_sequences(n, 3, seed=i) for i, (s, n) in enumerate((("train", 16), ("valid", 4), ("test", 5)))}
    save_prepared(cache / "waves.npz", SequenceData(splits, {"name": "waves", "kind": "real"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VRNN_DATA_DIR", str(cache))
        fit(tiny_config(source="waves", max_steps=2, eval_every=1), root / "run", progress=False)
    return root


@pytest.fixture
def here(env, tmp_path, monkeypatch):
    monkeypatch.setenv("VRNN_DATA_DIR", str(env / "cache"))
    monkeypatch.chdir(tmp_path)
    return env


@pytest.mark.parametrize("given", ["name", "file"])
def test_score_prime_analyze_and_eval_read_a_prepared_name_or_its_file(here, given, capsys):
    data = "waves" if given == "name" else here / "cache" / "waves.npz"
    ckpt = here / "run" / "best.pt"
    assert vrnn("score", ckpt, "--data", data, "--out", "s.csv", "--particles", "4") == 0
    assert "5 sequences scored" in capsys.readouterr().out  # the test split
    assert np.load("s.npy").shape[0] == 5
    assert vrnn("sample", ckpt, "--prime", data, "--steps", "3", "--out", "p.npy", "--particles", "4") == 0
    test0 = load_dataset(DataConfig(source="waves")).splits["test"][0]
    np.testing.assert_allclose(np.load("p.npy")[0, :len(test0)], test0, rtol=1e-6)  # the first test sequence, continued
    assert vrnn("analyze", ckpt, "--input", data, "--out", "a.png") == 0
    assert vrnn("eval", ckpt, "--data", data, "--iw-samples", "2", "--json") == 0


def test_a_prepared_name_wins_over_a_same_named_folder(here, capsys):
    Path("waves").mkdir()  # e.g. the recordings the data set was prepared from
    assert vrnn("eval", here / "run" / "best.pt", "--data", "waves", "--iw-samples", "2", "--json") == 0
    assert vrnn("eval", here / "run" / "best.pt", "--iw-samples", "2", "--json") == 0  # data.source = "waves"
    Path("fsdd").mkdir()
    user_error(capsys, ["eval", here / "run" / "best.pt", "--data", "fsdd"], "--data 'fsdd'", "not prepared yet",
               "the folder fsdd is not a data file", "vrnn prepare fsdd --source fsdd")
    Path("mystuff").mkdir()
    user_error(capsys, ["score", here / "run" / "best.pt", "--data", "mystuff", "--out", "x.csv"], "--data 'mystuff'",
               "no prepared data set of that name", "the folder mystuff is not a data file")


@pytest.mark.parametrize("argv", [
    ["eval", "{ckpt}", "--data", "{bad}"],
    ["score", "{ckpt}", "--data", "{bad}", "--out", "x.csv"],
    ["sample", "{ckpt}", "--prime", "{bad}", "--steps", "2", "--out", "x.npy"],
    ["analyze", "{ckpt}", "--input", "{bad}", "--out", "x.png"],
])
def test_every_data_argument_tells_missing_folder_and_unreadable_apart(here, argv, capsys, monkeypatch):
    option = argv[2]
    fill = lambda bad: [a.format(ckpt=here / "run" / "best.pt", bad=bad) for a in argv]  # noqa: E731
    user_error(capsys, fill("nope.npz"), f"{option} nope.npz: not found; give")
    Path("dir.npz").mkdir()
    user_error(capsys, fill("dir.npz"), f"{option} dir.npz: is a folder, not a data file")
    Path("gone.npy").symlink_to("missing.npy")
    user_error(capsys, fill("gone.npy"), f"{option} gone.npy: not found (a link to a missing file)")
    np.save("locked.npy", np.zeros((4, 3), np.float32))
    real_access = __import__("os").access
    monkeypatch.setattr("os.access", lambda p, mode: False if str(p).endswith("locked.npy") else real_access(p, mode))
    user_error(capsys, fill("locked.npy"), f"{option} locked.npy: cannot be read (permission denied)")


def test_a_folder_given_as_a_checkpoint_or_config_says_so(here, tmp_path, capsys):
    user_error(capsys, ["eval", here / "run"], "is a folder, not a checkpoint",
               f"did you mean {here / 'run' / 'best.pt'}?")
    Path("empty").mkdir()
    user_error(capsys, ["sample", "empty", "--steps", "2", "--out", "x.npy"], "checkpoint empty: is a folder",
               "give a checkpoint (.pt) inside it")
    user_error(capsys, ["train", "--config", "empty", "--out", "r"], "--config empty: is a folder, not a config file")
    user_error(capsys, ["train", "--config", "none.toml", "--out", "r"], "--config none.toml: not found", "configs/")
    user_error(capsys, ["eval", "none.pt"], "checkpoint none.pt: not found")


def test_data_source_in_a_config_uses_the_same_resolver(here, capsys):
    write_arrays(Path("w.npz"))
    Path("fsdd").mkdir()
    user_error(capsys, ["train", "--config", REPO / "configs" / "vrnn-gauss.toml", "--set", "data.source=fsdd",
                        "--out", "r"], "data.source 'fsdd'", "not prepared yet", "vrnn prepare fsdd")
    user_error(capsys, ["train", "--config", REPO / "configs" / "vrnn-gauss.toml", "--set", "data.source=fsdd.npz",
                        "--out", "r"], "data.source fsdd.npz: not found")


def test_no_committed_benchmark_file_holds_an_absolute_path():
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "check_portable.py")], capture_output=True, text=True,
                       timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert ", 0 hold an absolute path" in p.stdout
