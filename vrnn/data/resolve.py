"""Where a data argument points, and the portable reference a checkpoint keeps of its data.

Every command's data argument — ``data.source``, ``eval --data``, ``score --data``, ``sample --prime``,
``analyze --input`` — goes through :func:`locate`: a prepared data set's name (``chorales``) or a
file. A name without a suffix that is not a file names a prepared data set, even when a folder of
that name sits in the working directory; a path that is missing, a folder or unreadable says which.

A checkpoint never stores a path of the machine it was made on. Its ``config.data.source`` (and
``data_ref``, :func:`data_reference`) holds one of

* a prepared data set's name (``fsdd``);
* a file's path relative to the checkpoint's folder (``../../data/waves.npz``), or inside the
  benchmark data folder (``{data_dir}/polyphonic/jsb_chorales.pickle``, ``vrnn experiment
  --data-dir``), with the file's sha256;
* ``in-memory`` with the sha256 of the arrays, for data passed from Python.

:func:`checkpoint_source` turns it back into a file, or says which ``--data`` to pass.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import VrnnError
from ..io import check_readable
from .core import IN_MEMORY, SequenceData, data_dir

DATA_DIR = "{data_dir}"  # the benchmark data folder: `vrnn experiment --data-dir`, or $VRNN_BENCHMARK_DATA
DATA_FIX = "give a data file (.npz, .npy, .pickle or a recording) or a prepared data set's name"


def _recipes() -> list[str]:
    from .recipes import RECIPES

    return sorted(RECIPES)


def locate(source: str, setting: str = "data.source", fix: str = DATA_FIX) -> tuple[Path, bool]:
    """(the file ``source`` names, whether it is a prepared data set). Errors name ``setting``."""
    if source == IN_MEMORY:
        raise VrnnError(f"{setting} {IN_MEMORY!r}: names data passed from Python, not a file; give {setting} a data "
                        f"file or a prepared data set's name (in Python: data=SequenceData(...))")
    path = Path(source).expanduser()
    if path.suffix or path.is_file():
        return check_readable(path, setting, "a data file", fix), False
    prepared = data_dir() / f"{source}.npz"
    if prepared.is_file():  # a name wins over a same-named folder that is not a data file
        return check_readable(prepared, setting, "a data file", f"run `vrnn prepare {source} --overwrite`"), True
    folder = f"; the folder {source} is not a data file" if path.is_dir() else ""
    if source in _recipes():
        how = f" --source {source}" if folder else ""
        raise VrnnError(f"{setting} {source!r}: not prepared yet ({prepared} not found){folder}; "
                        f"run `vrnn prepare {source}{how}`")
    raise VrnnError(f"{setting} {source!r}: no prepared data set of that name ({prepared} not found)"
                    f"{folder or ' and no such file'}; {fix} (prepared names: {', '.join(_recipes())})")


# ---- portable references ------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def arrays_sha256(data: SequenceData) -> str:
    """The sha256 of a data set's arrays (float32, with their shapes and splits), for data from Python."""
    h = hashlib.sha256()
    for split in sorted(data.splits):
        h.update(split.encode())
        for a in data.splits[split]:
            a = np.ascontiguousarray(a, dtype=np.float32)
            h.update(repr(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def in_bench_dir(path: str | Path, bench_dir: Path | None) -> str | None:
    """``{data_dir}/REL`` for a path inside the benchmark data folder ``bench_dir``, else None."""
    if bench_dir is None:
        return None
    path, root = Path(path).expanduser().resolve(), Path(bench_dir).expanduser().resolve()
    return f"{DATA_DIR}/{path.relative_to(root).as_posix()}" if path.is_relative_to(root) else None


def is_prepared_file(path: str | Path) -> bool:
    path = Path(path).expanduser().resolve()
    return path.suffix == ".npz" and path.parent == data_dir().expanduser().resolve()


def portable_source(source: str, base: Path, bench_dir: Path | None = None) -> str:
    """``source`` as a checkpoint in folder ``base`` stores it: a prepared name, ``{data_dir}/...`` inside
    ``bench_dir``, or a path relative to ``base``. A source that is no file is returned as it is."""
    path = Path(source).expanduser()
    if source == IN_MEMORY or not path.is_file():
        return source
    if is_prepared_file(path):
        return path.stem
    inside = in_bench_dir(path, bench_dir)
    if inside is not None:
        return inside
    try:
        return Path(os.path.relpath(path.resolve(), Path(base).resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path; the name and hash still identify it
        return path.name


def data_reference(data: SequenceData, base: Path, bench_dir: Path | None = None) -> dict:
    """What a checkpoint in folder ``base`` records of the data it was trained on (see the module)."""
    name = data.name
    src = data.meta.get("source")
    if not isinstance(src, str) or not Path(src).expanduser().is_file():
        return {"kind": IN_MEMORY, "source": IN_MEMORY, "name": name, "sha256": arrays_sha256(data)}
    portable = portable_source(src, base, bench_dir)
    if is_prepared_file(src):
        return {"kind": "prepared", "source": portable, "name": name}
    return {"kind": "file", "source": portable, "name": name, "sha256": file_sha256(src)}


def portable_meta(meta: dict, ref: dict, bench_dir: Path | None = None) -> dict:
    """Plain metadata (no per-piece lists) without absolute paths: ``source`` becomes the reference's,
    another path inside ``bench_dir`` ``{data_dir}/...``; other absolute paths are left out."""
    out = {}
    for k, v in meta.items():
        if k == "source":
            out[k] = ref["source"]
            continue
        if not (isinstance(v, (str, int, float, bool)) or v is None):
            continue
        if isinstance(v, str) and (os.path.isabs(v) or v.startswith("~")):
            inside = in_bench_dir(v, bench_dir)
            if inside is not None:
                out[k] = inside
            continue
        out[k] = v
    return {**out, "source": ref["source"]}


def checkpoint_data(config: dict, data: SequenceData, base: Path, bench_dir: Path | None = None) -> dict:
    """The entries of a checkpoint (in folder ``base``) that describe its data: ``config`` with the portable
    ``data.source``, ``data_meta`` and ``data_ref``."""
    ref = data_reference(data, base, bench_dir)
    config = {**config, "data": {**config["data"], "source": ref["source"]}}
    return {"config": config, "data_meta": portable_meta(data.meta, ref, bench_dir), "data_ref": ref}


def resumed_source(stored: str, given: str, base: Path, data: SequenceData | None = None) -> str:
    """``stored`` when the run resumed in folder ``base`` names the same data as the stored one (``given``
    as a file or a name, or ``data`` from Python), else ``given``: config comparisons then see no change."""
    if data is not None:
        src = data.meta.get("source")
        mine = portable_source(src, base) if isinstance(src, str) and Path(src).is_file() else IN_MEMORY
    else:
        mine = portable_source(given, base)
    theirs = portable_source(stored, base) if os.path.isabs(stored) else stored  # written before references
    return stored if mine == theirs else given


def checkpoint_source(ckpt: dict) -> str:
    """The data a checkpoint was trained on, as a ``data.source`` usable here (a prepared name or a file),
    or one line saying which ``--data`` to pass."""
    where, ref = ckpt.get("path", "checkpoint"), ckpt.get("data_ref")
    src = ckpt["config"]["data"]["source"]
    if ref is None:  # written before data references: the source as it was given
        if Path(src).is_absolute() and not Path(src).exists():
            raise VrnnError(f"{where}: trained on {src}, which is not on this machine; pass --data FILE with that "
                            f"data set")
        return src
    if ref["kind"] == "prepared":
        return src
    digest = f"sha256 {ref['sha256'][:12]}…" if "sha256" in ref else "no hash stored"
    if ref["kind"] == IN_MEMORY:
        raise VrnnError(f"{where}: this run was trained on in-memory data ({ref.get('name', IN_MEMORY)}, {digest}); "
                        f"pass --data FILE (in Python: data=SequenceData(...))")
    if src.startswith(DATA_DIR + "/"):
        root = os.environ.get("VRNN_BENCHMARK_DATA")
        path = Path(root) / src[len(DATA_DIR) + 1:] if root else None
        told = f"{src} ({DATA_DIR}: the benchmark data folder, $VRNN_BENCHMARK_DATA or `vrnn experiment --data-dir`)"
    else:
        path = Path(os.path.normpath(Path(where).parent / src))
        told = f"{src} (relative to the checkpoint's folder)"
    if path is None or not path.is_file():
        raise VrnnError(f"{where}: trained on {told}, not found here; pass --data FILE with that file ({digest})")
    if "sha256" in ref and file_sha256(path) != ref["sha256"]:
        raise VrnnError(f"{where}: {path} has changed since the run was trained (its sha256 differs from "
                        f"{digest}); pass --data {path} to use it anyway")
    return str(path)


def moved_data_entries(ckpt: dict, src_folder: Path, dest_folder: Path, bench_dir: Path | None = None) -> dict:
    """A checkpoint's data entries (as :func:`checkpoint_data`) for its copy from ``src_folder`` to ``dest_folder``:
    a path relative to the folder is made relative to the new one, or ``{data_dir}/...`` inside ``bench_dir``.
    A checkpoint written before data references (an absolute path, perhaps) gets its reference here."""
    src, meta = ckpt["config"]["data"]["source"], ckpt.get("data_meta", {})
    ref = ckpt.get("data_ref") or _reference_of(src, meta.get("name", IN_MEMORY))
    if ref["kind"] == "file" and not ref["source"].startswith(DATA_DIR):
        where = Path(src_folder) / Path(ref["source"]).expanduser()  # an absolute path stays itself
        moved = in_bench_dir(where, bench_dir)
        ref = {**ref, "source": moved or Path(os.path.relpath(where.resolve(), Path(dest_folder).resolve())).as_posix()}
    config = {**ckpt["config"], "data": {**ckpt["config"]["data"], "source": ref["source"]}}
    return {"config": config, "data_meta": portable_meta(meta, ref, bench_dir), "data_ref": ref}


def _reference_of(source: str, name: str) -> dict:
    """The reference of a stored ``data.source`` written before references: a name, or a file (hashed if here)."""
    path = Path(source).expanduser()
    if not path.suffix and "/" not in source:
        return {"kind": "prepared", "source": source, "name": name}
    return {"kind": "file", "source": source, "name": name} | ({"sha256": file_sha256(path)} if path.is_file() else {})
