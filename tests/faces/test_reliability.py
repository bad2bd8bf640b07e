"""Faults in training runs and file writes: concurrent runs, full or unwritable disks, out of memory,
divergence before the first checkpoint, SIGKILL and resume, closed pipes, foreign pickles.

Each test reproduces the fault with real processes, files and file systems where it can, and checks
the promised behaviour: one line ``vrnn: error: ...`` naming the path or setting and the fix, exit 2,
nothing already saved lost, no temporary or lock files left behind.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vrnn.checkpoint import load_checkpoint
from vrnn.cli import main
from vrnn.errors import UnwritablePath
from vrnn.io import RunLock, atomic_write, writing
from vrnn.training.trainer import fit

from conftest import one_error_line, tiny_config, write_arrays, write_midi_folder

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def vrnn_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "vrnn", *map(str, args)]


def run(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m vrnn ARGS` as a user runs it."""
    return subprocess.run(vrnn_cmd(*args), capture_output=True, text=True, cwd=REPO, env=env or ENV, timeout=300)


def write_config(path: Path, data: Path, **train) -> Path:
    """A tiny VRNN-Gauss config file; ``train`` overrides [train]."""
    t = {"batch_size": 8, "max_steps": 6, "eval_every": 3, "lr": 3e-3, "eval_batch_size": 16} | train
    path.write_text("\n".join([
        "[model]", 'kind = "vrnn"', "z_dim = 4", "hidden = 16", "width = 16", "layers = 1", 'emission = { name = "gauss" }',
        "[data]", f"source = {json.dumps(str(data))}", "[train]", *(f"{k} = {v!r}" for k, v in t.items())]) + "\n")
    return path


def leftovers(folder: Path) -> list[str]:
    """Temporary and lock files in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or p.name == RunLock.NAME)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def data(tmp_path) -> Path:
    return write_arrays(tmp_path / "waves.npz")


@pytest.fixture
def trained(tmp_path, data) -> Path:
    """A finished tiny run's folder."""
    fit(tiny_config("vrnn", "conditional", source=str(data), max_steps=2, eval_every=1), tmp_path / "run", progress=False)
    return tmp_path / "run"


def interruptible() -> None:
    """In the child before exec: SIGINT back to its default, so Python installs KeyboardInterrupt even when the
    suite itself runs as a background job (`make test &`), which starts with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_until_checkpointed(cfg: Path, out: Path) -> subprocess.Popen:
    """A real `vrnn train --config CFG --out OUT` process (stdout and stderr piped), once it has written last.pt."""
    p = subprocess.Popen(vrnn_cmd("train", "--config", cfg, "--out", out, "--quiet"), cwd=REPO, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists():
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            pytest.fail(f"no checkpoint: {p.communicate()}")
        time.sleep(0.05)
    return p


# 1. two runs on one --out ------------------------------------------------------------------------------

def test_a_second_run_on_the_same_out_is_refused_while_the_first_holds_it(tmp_path, data):
    """Two real `vrnn train` processes: the second (plain, --overwrite, --resume) is refused with the
    holder's pid and host while the first runs; the first, interrupted, releases the lock."""
    cfg = write_config(tmp_path / "c.toml", data, max_steps=100_000, eval_every=5, patience=10**6)
    out = tmp_path / "run"
    first = train_until_checkpointed(cfg, out)  # the first run holds the folder and has checkpointed
    try:
        seconds = [subprocess.Popen(vrnn_cmd("train", "--config", cfg, "--out", out, "--quiet", *flags), cwd=REPO,
                                    env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for flags in ([], ["--overwrite"], ["--resume"])]
        for p in seconds:
            _, err = p.communicate(timeout=120)
            line = one_error_line(p.returncode, err, f"{out} is in use by process {first.pid} on {socket.gethostname()}",
                                  "(started ", "wait for it or choose another --out")
        assert first.poll() is None, "the first run must still be training"
        first.send_signal(signal.SIGINT)  # KeyboardInterrupt: the lock goes on this way out too
        _, err = first.communicate(timeout=120)  # 60 s ran out once with 4 jobs on the 2 cores
    finally:
        first.kill()
    assert first.returncode == 130 and "vrnn: interrupted" in err, err
    assert not (out / RunLock.NAME).exists()
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 5 * len(steps) + 1, 5))  # one writer: no interleaved or repeated lines
    assert line  # the refusals above were checked line by line


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_notice(tmp_path, data, capsys):
    cfg = write_config(tmp_path / "c.toml", data)
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    (out / RunLock.NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "lock" in line] == [
        f"vrnn: {out}: took over the stale lock of process {pid} on {socket.gethostname()}, which no longer runs"]
    assert not (out / RunLock.NAME).exists() and (out / "last.pt").is_file()


@pytest.mark.parametrize("holder", ["live", "other-host"])
def test_a_lock_of_a_live_process_or_another_host_is_respected(tmp_path, data, capsys, holder):
    cfg = write_config(tmp_path / "c.toml", data)
    out = tmp_path / "run"
    out.mkdir()
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2024-01-01 10:00:00"}
    if holder == "other-host":
        info |= {"pid": dead_pid(), "host": "elsewhere.example"}
    (out / RunLock.NAME).write_text(json.dumps(info))
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    line = one_error_line(2, capsys.readouterr().err,
                          f"{out} is in use by process {info['pid']} on {info['host']} (started 2024-01-01 10:00:00)")
    assert ("remove" in line) == (holder == "other-host")  # only a lock this host cannot check says how to clear it
    assert sorted(p.name for p in out.iterdir()) == [RunLock.NAME]  # nothing written, the lock untouched


def test_a_run_that_fails_leaves_no_lock_and_no_folder_it_created(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tmp_path / "missing.npz")
    out = tmp_path / "new" / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    one_error_line(2, capsys.readouterr().err, "missing.npz")
    assert not (tmp_path / "new").exists()


# 2. full and unwritable disks ---------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs (root only)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(mnt: Path, leave: int) -> Path:
    """Fill ``mnt`` but ``leave`` bytes."""
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_saved_run(small_fs, tmp_path, data, capsys):
    cfg = write_config(tmp_path / "c.toml", data, max_steps=2, eval_every=1)
    out = small_fs / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    before = snapshot(out)
    filler = fill(small_fs, leave=40_000)  # the lock fits, a checkpoint (about 100 kB) does not
    code = main(["train", "--config", str(cfg), "--out", str(out), "--quiet", "--resume", "--set", "train.max_steps=4"])
    one_error_line(code, capsys.readouterr().err, out / "last.pt", "no space left", f"free space on {small_fs}")
    assert snapshot(out) == before  # best.pt, last.pt, log.jsonl as they were; no .tmp, no lock
    filler.unlink()  # with space again, the same command continues the run
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet", "--resume", "--set", "train.max_steps=4"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 4 and leftovers(out) == []


def test_a_full_disk_while_writing_samples_is_one_line(small_fs, trained, capsys):
    fill(small_fs, leave=0)
    code = main(["sample", str(trained / "best.pt"), "--steps", "2000", "--num", "50", "--out", str(small_fs / "s.npy")])
    one_error_line(code, capsys.readouterr().err, small_fs / "s.npy", "no space left", f"free space on {small_fs}")
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]


@pytest.mark.parametrize("where", ["file-as-folder", "proc"])
def test_an_unwritable_out_is_one_line_for_train_and_sample(tmp_path, data, trained, capsys, where):
    bad = REPO / "README.md" / "sub" if where == "file-as-folder" else Path("/proc/vrnn-test")
    cfg = write_config(tmp_path / "c.toml", data)
    assert main(["train", "--config", str(cfg), "--out", str(bad), "--quiet"]) == 2
    one_error_line(2, capsys.readouterr().err, bad, "choose a writable --out")
    assert main(["sample", str(trained / "best.pt"), "--steps", "3", "--out", str(bad / "s.npy")]) == 2
    one_error_line(2, capsys.readouterr().err, bad, "choose a writable --out")


def test_a_read_only_mount_is_one_line_for_train_sample_and_prepare(small_fs, tmp_path, data, capsys, monkeypatch):
    """A real read-only filesystem (the tmpfs remounted ro): EROFS for every command that writes."""
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {r.stderr.strip()}")
    cfg = write_config(tmp_path / "c.toml", data, max_steps=2, eval_every=1)
    code = main(["train", "--config", str(cfg), "--out", str(small_fs / "run"), "--quiet"])
    one_error_line(code, capsys.readouterr().err, small_fs / "run", "choose a writable --out")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "ok"), "--quiet"]) == 0
    code = main(["sample", str(tmp_path / "ok" / "best.pt"), "--steps", "3", "--out", str(small_fs / "s.npy")])
    one_error_line(code, capsys.readouterr().err, small_fs)
    monkeypatch.setenv("VRNN_DATA_DIR", str(small_fs / "data"))
    code = main(["prepare", "midi", "--source", str(write_midi_folder(tmp_path / "midi", 3))])
    one_error_line(code, capsys.readouterr().err, "VRNN_DATA_DIR")


def test_a_read_only_folder_is_one_line(tmp_path, data, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into a 0o555 folder; the not-a-folder and /proc cases cover unwritable outputs")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cfg = write_config(tmp_path / "c.toml", data)
    try:
        assert main(["train", "--config", str(cfg), "--out", str(ro / "run"), "--quiet"]) == 2
    finally:
        ro.chmod(0o755)
    one_error_line(2, capsys.readouterr().err, ro / "run", "permission denied", "choose a writable --out")


def test_prepare_into_an_unwritable_data_folder_is_one_line(tmp_path):
    r = run("prepare", "audio", "--source", tmp_path, env={**ENV, "VRNN_DATA_DIR": str(REPO / "README.md" / "data")})
    one_error_line(r.returncode, r.stderr, REPO / "README.md" / "data", "choose a writable VRNN_DATA_DIR")


def test_only_os_errors_on_the_users_path_become_one_line(tmp_path):
    """An OSError about another file, or of a kind the user cannot fix, is a bug: it keeps its traceback."""
    target = tmp_path / "x.npy"
    with pytest.raises(UnwritablePath, match="no space left"):
        with writing(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(FileNotFoundError):
        with writing(target):
            open(tmp_path / "elsewhere" / "font.ttf")
    with pytest.raises(OSError) as e:
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.EBADF, "Bad file descriptor")
    assert not isinstance(e.value, UnwritablePath) and list(tmp_path.iterdir()) == []  # the .tmp is gone


def test_two_processes_writing_one_file_at_once_both_succeed(tmp_path):
    """Two processes preparing the same data set at once (two trainings started together, the ranks of a
    torchrun job) each write it through atomic_write; with one shared temporary name, one renamed the
    other's half-written file away and the other failed. Each process has its own temporary file now."""
    target = tmp_path / "d.npy"
    writer = ("import sys, numpy as np\nfrom vrnn.io import atomic_write\nfor i in range(300):\n"
              "    with atomic_write(sys.argv[1]) as t:\n        np.save(t, np.arange(5000.0))\n")
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(target)], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert np.array_equal(np.load(target), np.arange(5000.0))
    assert [p.name for p in tmp_path.iterdir()] == ["d.npy"]  # no temporary file left behind


def test_an_unwritable_folder_is_named_by_the_users_file_not_the_temporary_one(tmp_path):
    """atomic_write writes .NAME.tmp.PID.SUFFIX first; where the folder refuses it, the error names NAME."""
    target = tmp_path / "s.npy"
    with pytest.raises(UnwritablePath) as e:
        with atomic_write(target) as tmp:
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert str(e.value) == f"{target}: not writable (permission denied); choose a writable --out"


def test_a_read_only_mount_names_the_out_file_for_sample_score_and_analyze(small_fs, trained, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32))
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {r.stderr.strip()}")
    ckpt, x = str(trained / "best.pt"), str(tmp_path / "x.npy")
    for command, named in ((["sample", ckpt, "--steps", "3", "--out", small_fs / "s.npy"], small_fs / "s.npy"),
                           (["score", ckpt, "--data", x, "--out", small_fs / "sc.csv"], small_fs / "sc.csv"),
                           (["analyze", ckpt, "--input", x, "--out", small_fs / "a.png"], small_fs / "a.png")):
        code = main([str(a) for a in command])
        line = one_error_line(code, capsys.readouterr().err, f"{named}: not writable (read-only file system)",
                              "choose a writable --out")
        assert ".tmp" not in line, line


# 3. out of memory ---------------------------------------------------------------------------------------

def test_eval_out_of_memory_names_the_settings_to_lower(trained):
    r = run("eval", trained / "best.pt", "--iw-samples", 1_000_000_000)  # a single allocation of about 200 GB
    one_error_line(r.returncode, r.stderr, "out of memory", "--iw-samples", "--batch-size")


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB"),
                                   MemoryError()])
def test_train_out_of_memory_names_train_batch_size(tmp_path, data, capsys, monkeypatch, error):
    def oom(*a, **k):
        raise error

    monkeypatch.setattr("vrnn.training.trainer.fit", oom)
    cfg = write_config(tmp_path / "c.toml", data)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    one_error_line(2, capsys.readouterr().err, "train.batch_size")


def test_other_runtime_errors_keep_their_traceback(tmp_path, data, monkeypatch):
    def bug(*a, **k):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr("vrnn.training.trainer.fit", bug)
    with pytest.raises(RuntimeError, match="shapes"):
        main(["train", "--config", str(write_config(tmp_path / "c.toml", data)), "--out", str(tmp_path / "run")])


# 3b. Ctrl-C ---------------------------------------------------------------------------------------------

def test_ctrl_c_saves_last_pt_and_prints_the_command_that_resumes(tmp_path, data):
    """SIGINT after the first checkpoint: the step reached is saved in last.pt, one line gives the step and the
    resume command for this folder, exit 130, no traceback; that command continues the run as if it had never
    stopped."""
    import re

    cfg = write_config(tmp_path / "c.toml", data, max_steps=100_000, eval_every=50, patience=10**6)
    out = tmp_path / "run"
    p = train_until_checkpointed(cfg, out)
    try:
        time.sleep(0.5)  # some steps past the checkpoint
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    m = re.fullmatch(r"vrnn: interrupted at step (\d+); resume with: vrnn train --out (\S+) --resume", line)
    assert m and m[2] == str(out), line
    step = int(m[1])
    assert load_checkpoint(out / "last.pt")["step"] == step and leftovers(out) == []
    evaluated = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(s % 50 == 0 and s <= step for s in evaluated) and load_checkpoint(out / "best.pt")["step"] in evaluated
    r = run("train", "--out", out, "--resume", "--set", f"train.max_steps={step + 3}", "--quiet")
    assert r.returncode == 0, r.stderr
    ref = run("train", "--config", cfg, "--out", tmp_path / "ref", "--set", f"train.max_steps={step + 3}", "--quiet")
    assert ref.returncode == 0, ref.stderr
    a, b = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(out / "last.pt")
    assert b["step"] == step + 3
    for key in ("model", "optimizer", "rng", "torch_rng", "best_valid", "epoch", "pos"):  # nothing lost
        _states_equal(a[key], b[key], key)


# 4. divergence before the first checkpoint ----------------------------------------------------------------

@pytest.mark.parametrize("folder", ["absent", "empty"])
def test_nan_before_the_first_checkpoint_says_so_and_leaves_out_as_it_was(tmp_path, data, capsys, folder):
    cfg = write_config(tmp_path / "c.toml", data, lr=1e12, clip_norm=0.0, max_steps=200, eval_every=200)
    out = tmp_path / "run"
    if folder == "empty":
        out.mkdir()
    for _ in range(2):  # the same command again: the same outcome, not "pass --resume"
        assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet"]) == 3
        err = capsys.readouterr().err.strip()
        assert err.startswith("vrnn: training stopped:") and len(err.splitlines()) == 1, err
        assert f"no checkpoint was written and {out} is as it was before the run" in err
        assert "keeps the last good state" not in err
        assert (list(out.iterdir()) == []) if folder == "empty" else not out.exists()


def test_nan_after_a_checkpoint_names_it(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(write_config(tmp_path / "good.toml", data, max_steps=2, eval_every=1)),
                 "--out", str(out), "--quiet"]) == 0
    cfg = write_config(tmp_path / "c.toml", data, lr=1e12, clip_norm=0.0, max_steps=400, eval_every=1)
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet", "--resume", "--allow-changes"]) == 3
    assert f"{out / 'last.pt'} keeps the last good state" in capsys.readouterr().err
    assert leftovers(out) == [] and load_checkpoint(out / "last.pt")["step"] >= 2


# 5. kill -9 and resume ------------------------------------------------------------------------------------

def test_resume_completes_what_a_kill_between_checkpoint_and_log_left(tmp_path, data):
    """The log line follows its checkpoint; a run killed in between (simulated: the line, best.pt
    removed; a torn line, a line past the checkpoint and stale .tmp files added) resumes to the files
    an uninterrupted run writes."""
    cfg = tiny_config("vrnn", "conditional", source=str(data), max_steps=4, eval_every=2, patience=100)
    fit(cfg, tmp_path / "a", progress=False)
    half = tiny_config("vrnn", "conditional", source=str(data), max_steps=2, eval_every=2, patience=100)
    out = tmp_path / "b"
    fit(half, out, progress=False)
    (out / "log.jsonl").write_text("")  # killed after last.pt, before best.pt and the log line
    (out / "best.pt").unlink()
    for name in (".last.tmp.pt", ".best.tmp.pt"):
        (out / name).write_bytes(b"half a checkpoint")
    fit(cfg, out, resume=True, progress=False)
    a, b = ([json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (tmp_path / "a", out))
    assert [r["step"] for r in b] == [2, 4]
    assert [r["valid_elbo_per_step"] for r in a] == [r["valid_elbo_per_step"] for r in b]
    assert leftovers(out) == [] and (out / "best.pt").is_file()
    # a log written before its checkpoint (older versions) and torn by the kill: cut back to the checkpoint
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps({**b[-1], "step": 6}) + "\n" + '{"step": 8, "epo')
    fit(tiny_config("vrnn", "conditional", source=str(data), max_steps=6, eval_every=2, patience=100), out,
        resume=True, progress=False)
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [2, 4, 6]


def _states_equal(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _states_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _states_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


TIMING = ("elapsed_s", "steps_per_s")  # the only log fields that depend on the clock


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path, data):
    """Fault injection: a real `vrnn train` with a checkpoint every step is killed (SIGKILL) at random
    moments once training is under way, at least 10 times (every other one as soon as a temporary file
    of a checkpoint or log write appears, so that some kills land inside writes), and resumed with --resume after each kill
    (plain when no last.pt exists yet, as a user would). The final last.pt matches an uninterrupted
    run bit for bit, the log has one line per evaluation in order, and no .tmp or lock file remains."""
    steps, most = 80, 10
    cfg = write_config(tmp_path / "c.toml", data, max_steps=steps, eval_every=1, patience=10**6, ema=0.9)
    ref = subprocess.Popen(vrnn_cmd("train", "--config", cfg, "--out", tmp_path / "ref", "--quiet"), cwd=REPO, env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # meanwhile
    out, rng, kills, in_write = tmp_path / "run", random.Random(0), 0, 0
    lines = lambda: len((out / "log.jsonl").read_text().splitlines()) if (out / "log.jsonl").exists() else 0  # noqa: E731
    while True:
        resume = ["--resume"] if (out / "last.pt").exists() else []
        start = lines()
        p = subprocess.Popen(vrnn_cmd("train", "--config", cfg, "--out", out, "--quiet", *resume), cwd=REPO, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills < most:
            while p.poll() is None and lines() <= start:  # wait until this process has taken a step
                time.sleep(0.005)
            if kills % 2:  # every other kill lands inside a write: as soon as a temporary file appears
                deadline = time.monotonic() + 5
                while p.poll() is None and time.monotonic() < deadline and not any(
                        ".tmp" in n for n in os.listdir(out)):
                    time.sleep(0.0005)
            else:
                time.sleep(rng.uniform(0, 0.2))
        if kills >= most or p.poll() is not None:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            if lines() == steps:
                break
            continue
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        in_write += any(".tmp" in n for n in os.listdir(out))
    assert kills >= 10 and ref.wait(timeout=120) == 0, ref.stderr.read()
    assert in_write >= 2, f"only {in_write} of {kills} kills landed inside a write"
    print(f"{kills} kills, {in_write} of them during a checkpoint or log write")
    a, b = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(out / "last.pt")
    assert b["step"] == steps
    for key in ("model", "train_model", "optimizer", "rng", "rng_ranks", "torch_rng", "best_valid", "epoch", "pos"):
        _states_equal(a[key], b[key], key)
    ref_log, log = ([json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (tmp_path / "ref", out))
    assert [r["step"] for r in log] == list(range(1, steps + 1))
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in log] == \
        [{k: v for k, v in r.items() if k not in TIMING} for r in ref_log]
    _states_equal(load_checkpoint(tmp_path / "ref" / "best.pt")["model"], load_checkpoint(out / "best.pt")["model"],
                  "best.pt")
    assert leftovers(out) == []


# 6. a closed pipe -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("reader", ["head -n 0", "head -1"])
def test_eval_into_a_closed_pipe_stops_quietly(trained, reader):
    """`head -n 0` exits before eval writes: the write meets a closed pipe; exit 141 as for SIGPIPE."""
    cmd = " ".join(vrnn_cmd("eval", trained / "best.pt", "--iw-samples", 2))
    r = subprocess.run(["bash", "-c", f"{cmd} | {reader}; echo \"status=${{PIPESTATUS[0]}}\" >&2"], capture_output=True,
                       text=True, cwd=REPO, env=ENV, timeout=120)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    if reader == "head -n 0":
        assert r.stdout == "" and r.stderr.strip().splitlines() == ["status=141"], r.stderr
    else:
        assert r.stdout.startswith("VRNN") and len(r.stdout.splitlines()) == 1
        assert r.stderr.strip().splitlines()[-1] in ("status=0", "status=141")


# 7. a foreign pickle --------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["pickle.dump", "torch.save"])
def test_a_raw_pickle_checkpoint_is_exactly_one_line(tmp_path, how):
    path = tmp_path / "model.pt"
    if how == "pickle.dump":
        path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    else:
        torch.save({"weights": {1, 2}}, path)
    r = run("eval", path)
    one_error_line(r.returncode, r.stderr, path)
