"""Writing files a user keeps: atomically, never over something that exists unless asked.

Every file the library writes (checkpoints, prepared data, arrays, MIDI, WAV, PNG) goes
through :func:`atomic_write`: the content is written to a temporary file in the same
folder (``.NAME.tmp.PID.SUFFIX``: the writing process's own, so two processes that write one
file at once, such as the ranks of a ``torchrun`` job preparing the same data set, never share
it), fsynced, then renamed over the target, so a crash or a full disk never leaves a
half-written file and never destroys the previous one. A failed write
removes its temporary file; one left by a killed process is removed by the next run that
owns the folder (:func:`remove_stale_tmp`). An ``OSError`` the user can fix (full disk,
read-only file system, a file where a folder should be, no permission) on such a path
becomes one :class:`~vrnn.errors.UnwritablePath` line; other errors are bugs and pass unchanged.

:class:`RunLock` makes a folder (``vrnn train --out``) belong to one live process.
"""
from __future__ import annotations

import glob
import json
import os
import re
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UnwritablePath, VrnnError

try:
    import fcntl
except ImportError:  # not on Windows: the lock relies on the holder's pid alone
    fcntl = None


_NUMBER = r"-?(?:\d[\d.eE+-]*|NaN|Infinity)"
_NUMBER_LIST = re.compile(rf"\[\s+((?:{_NUMBER},\s+)*{_NUMBER})\s+\]")


def dumps_json(obj) -> str:
    """``obj`` as indented JSON (one key per line) with every list of plain numbers on one line, as
    ``[1.5,2,-3]``: per-sequence results stay readable and a third smaller; the values are unchanged."""
    return _NUMBER_LIST.sub(lambda m: "[" + ",".join(m.group(1).split(",\n")).replace(" ", "") + "]",
                            json.dumps(obj, indent=1)) + "\n"


def tmp_name(path: Path) -> Path:
    """The temporary file :func:`atomic_write` of this process writes before renaming it to ``path``."""
    return path.with_name(f".{path.stem}.tmp.{os.getpid()}{path.suffix}")


@contextmanager
def writing(path: str | Path, setting: str = "--out") -> Iterator[None]:
    """Report an ``OSError`` the user can fix while writing ``path`` (chosen by ``setting``) as one line."""
    path = Path(path)
    try:
        yield
    except OSError as e:
        ours = {os.path.abspath(p) for p in (path, tmp_name(path), *path.parents)}
        if not UnwritablePath.converts(e) or (e.filename is not None and os.path.abspath(e.filename) not in ours):
            raise
        named = path if e.filename is None else e.filename
        if os.path.abspath(named) == os.path.abspath(tmp_name(path)):  # atomic_write's temporary file: the user
            named = path  # never chose it; name the file they did
        raise UnwritablePath(named, e, setting) from None


@contextmanager
def atomic_write(path: str | Path, setting: str = "--out") -> Iterator[Path]:
    """``with atomic_write(p) as tmp: write(tmp)`` writes ``p`` all at once or not at all.

    ``tmp`` keeps ``p``'s suffix (numpy, matplotlib and soundfile choose formats by it).
    """
    path = Path(path)
    tmp = tmp_name(path)
    try:
        with writing(path, setting):
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())  # the data are on disk before the name points at them
            os.replace(tmp, path)
            _fsync_folder(path.parent)  # ... and so is the rename
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without folder descriptors (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def make_folder(folder: str | Path, setting: str = "--out") -> list[Path]:
    """Create ``folder`` and its missing parents; the folders created, deepest first."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()][:len(folder.parts)]
    with writing(folder, setting):
        folder.mkdir(parents=True, exist_ok=True)
    return created


def remove_stale_tmp(paths: list[Path]) -> list[Path]:
    """Remove the temporary files a killed :func:`atomic_write` of ``paths`` left (any process's, and the
    ``.NAME.tmp.SUFFIX`` of earlier versions); those removed. Only for a folder this process owns."""
    stale = [t for p in paths for t in sorted(p.parent.glob(f".{glob.escape(p.stem)}.tmp*{glob.escape(p.suffix)}"))]
    for t in stale:
        t.unlink()
    return stale


def check_writable(paths: list[Path], overwrite: bool, setting: str = "--out") -> None:
    """Refuse to replace existing outputs (chosen by ``setting``) unless asked."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise VrnnError(f"{existing[0]}: already exists; pass --overwrite to replace it or choose another {setting}")


def check_readable(path: str | Path, setting: str, what: str, fix: str, run_file: str | None = None) -> Path:
    """``path`` as a readable file, or one line saying whether it is missing, a folder or unreadable.

    ``setting`` names where the path came from (``--data``, ``checkpoint``, ...), ``what`` the file
    expected (``a checkpoint``) and ``fix`` what to do when it is missing. A folder that holds
    ``run_file`` (a run's ``best.pt``) suggests that file."""
    path = Path(path)
    if path.is_dir():
        hint = (f"did you mean {path / run_file}?" if run_file and (path / run_file).is_file()
                else f"give {what} inside it")
        raise VrnnError(f"{setting} {path}: is a folder, not {what}; {hint}")
    if not path.exists():
        dangling = " (a link to a missing file)" if path.is_symlink() else ""
        raise VrnnError(f"{setting} {path}: not found{dangling}; {fix}")
    if not os.access(path, os.R_OK):
        raise VrnnError(f"{setting} {path}: cannot be read (permission denied); check its permissions or copy it")
    return path


class RunLock:
    """``FOLDER/.lock``, created atomically (``O_CREAT | O_EXCL``) with the holder's pid, host and start
    time: while it exists, no other process takes the folder. The holder also keeps an ``flock`` on it,
    which the kernel drops when the holder dies; a lock whose process is gone (same host, pid not
    running, or running a different program since) is stale and taken over with a notice on stderr.
    :meth:`release` removes the lock and the folders :meth:`acquire` created, if they are still empty.
    """

    NAME = ".lock"

    def __init__(self, path: Path, fd: int, created: list[Path]):
        self.path, self.fd, self.created = path, fd, created

    @classmethod
    def acquire(cls, folder: str | Path, setting: str = "--out") -> RunLock:
        folder = Path(folder)
        created = make_folder(folder, setting)
        path = folder / cls.NAME
        for _ in range(5):  # each round either takes the lock, refuses, or removes a stale lock
            with writing(path, setting):
                fd = _create(path)
            if fd is None:
                _remove_if_stale(path, setting)
                continue
            lock = cls(path, fd, created)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while another process probes the new file
                with writing(path, setting):
                    os.write(fd, (json.dumps(_holder()) + "\n").encode())
                    os.fsync(fd)
            except BaseException:
                lock.release()
                raise
            return lock
        raise VrnnError(f"{path}: the lock keeps changing hands; wait for the other runs or choose another {setting}")

    def release(self) -> None:
        """Give the folder back (idempotent): remove the lock, then the folders this lock created if empty."""
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote something there
                break


def _create(path: Path) -> int | None:
    """A descriptor of the new file ``path``, or None when it exists: the atomic step of taking the lock."""
    try:
        return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "proc_start": _proc_start(os.getpid())}


def _proc_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux), to tell a reused pid from the holder."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(info: dict) -> bool:
    """Whether the holder ``info`` describes may still run (a process on another host: assume it does)."""
    if info.get("host") != socket.gethostname():
        return True
    pid = int(info.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        pass
    except (OverflowError, ValueError):
        return False
    started = info.get("proc_start")
    return started is None or _proc_start(pid) in (None, started)


def _try_lock(fd: int) -> bool:
    """Take the ``flock`` of lock file ``fd`` if no live process holds it; True when taken (or flock is
    unavailable, where the holder's pid alone decides)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock
        return True
    return True


def _remove_if_stale(path: Path, setting: str) -> None:
    """Raise when the lock ``path`` is held; remove it when its process is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # released meanwhile
        return
    try:  # closing fd drops any flock taken on it
        for _ in range(40):  # a lock just created is empty until its holder writes it (microseconds)
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode())
                break
            except ValueError:
                info = None
                time.sleep(0.05)
        # holding the flock while checking and unlinking: of two processes taking over, one removes the lock
        if not _try_lock(fd) or (info is not None and _alive(info)):
            who = (f"process {info.get('pid')} on {info.get('host')} (started {info.get('started')})" if info
                   else f"another process ({path} is unreadable)")
            other_host = info is not None and info.get("host") != socket.gethostname()
            raise VrnnError(f"{path.parent} is in use by {who}; wait for it or choose another {setting}"
                            + (f" (if no run uses it, remove {path})" if other_host else ""))
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            path.unlink()
            who = f"process {info.get('pid')} on {info.get('host')}" if info else "a process that died taking it"
            print(f"vrnn: {path.parent}: took over the stale lock of {who}, which no longer runs", file=sys.stderr)
    except FileNotFoundError:  # released meanwhile: the caller looks again
        return
    finally:
        os.close(fd)
