"""Online handwriting as stroke-3 sequences: rows (Δx, Δy, pen_up), Graves (2013) §4.

A drawing is a list of strokes (pen-down polylines). In stroke-3 form every point is one
row: its offset from the previous point and a bit that is 1 on the last point of a stroke
(the pen is lifted before the next point). The first row is (0, 0, 0): drawings are
translation invariant. The y axis points down, as in images and on IAM-OnDB's whiteboard.

Readers:

* :func:`read_stroke3_npz` — arrays of stroke-3 drawings, one object array per split
  (the format of the sketch-rnn data sets, e.g. Omniglot). Parsed without running pickled
  code: only numpy arrays may be rebuilt.
* :func:`read_omniglot_raw` — the raw Omniglot recordings (Lake et al. 2015): text files of
  ``x,y,t_ms`` rows, ``START`` first and ``BREAK`` after every stroke, sampled irregularly.
  Each stroke is resampled to points a fixed distance apart along the pen's path.
* :func:`read_linestrokes_xml` — IAM-OnDB ``lineStrokes`` XML files (``<Stroke><Point x y
  time/>``), used as recorded (Graves 2013 uses the points as sampled).
"""
from __future__ import annotations

import io
import pickle
import re
import tarfile
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ..errors import VrnnError
from .core import SPLITS, SequenceData
from .progress import tracked

STROKE3_META = {"kind": "strokes", "format": "stroke-3: rows (dx, dy, pen_up), pen_up=1 on the last point of "
                                            "a stroke; y points down"}


# ---- conversions ------------------------------------------------------------------------
def strokes_to_stroke3(strokes: list[np.ndarray]) -> np.ndarray:
    """Polylines of absolute (x, y) points -> stroke-3 rows (T, 3); the first row is (0, 0, 0)."""
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    if not strokes:
        raise ValueError("a drawing needs at least one point")
    pts = np.concatenate(strokes)
    pen = np.zeros(len(pts))
    pen[np.cumsum([len(s) for s in strokes]) - 1] = 1.0
    offsets = np.diff(pts, axis=0, prepend=pts[:1])
    return np.column_stack([offsets, pen]).astype(np.float32)


def stroke3_to_strokes(x: np.ndarray) -> list[np.ndarray]:
    """Stroke-3 rows (T, 3) -> polylines of absolute points, one per pen-down stroke.

    A row with pen_up > 0.5 ends its stroke; the next point starts a new one, so no polyline
    ever joins two points across a pen lift.
    """
    x = np.asarray(x, dtype=np.float64)
    pts = np.cumsum(x[:, :2], axis=0)
    ends = np.nonzero(x[:, 2] > 0.5)[0] + 1
    return [p for p in np.split(pts, ends) if len(p)]


def resample_polyline(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points along a polyline ``spacing`` apart (by arc length), keeping both end points."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return points
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] == 0:
        return points[:1]
    n = max(int(np.ceil(s[-1] / spacing)), 1)
    t = np.linspace(0.0, s[-1], n + 1)
    return np.column_stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])])


# ---- stroke-3 arrays ----------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: a data file must not run code."""

    def find_class(self, module, name):
        if name in ("_reconstruct", "scalar") and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            from numpy._core import multiarray

            return getattr(multiarray, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a stroke-3 file may hold only numpy arrays")


def _read_npy_member(raw: bytes):
    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if not dtype.hasobject:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    return _ArrayUnpickler(f, encoding="latin1").load()  # Python 2 pickles need latin1


def is_stroke3_npz(path: Path) -> bool:
    """True if ``path`` is an .npz whose ``train`` member is an object array (drawings of varying length)."""
    try:
        with zipfile.ZipFile(path) as z, z.open("train.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            return read_header(f)[2].hasobject
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return False


def read_stroke3_npz(path: Path) -> SequenceData:
    """An .npz with ``train``, ``valid``, ``test``: each an array of drawings, each (T_i, 3) stroke-3 rows."""
    path = Path(path)
    splits = {}
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for s in SPLITS:
                if f"{s}.npy" not in names:
                    raise VrnnError(f"{path}: no array named {s!r}; a stroke-3 .npz needs train, valid and test")
                arr = _read_npy_member(z.read(f"{s}.npy"))
                seqs = []
                for i, a in enumerate(arr):
                    a = np.asarray(a)
                    if a.ndim != 2 or a.shape[1] != 3 or not np.issubdtype(a.dtype, np.number):
                        raise VrnnError(f"{path} [{s}]: drawing {i} has shape {a.shape}, dtype {a.dtype}; "
                                        f"stroke-3 drawings are numeric (T, 3) arrays")
                    seqs.append(a.astype(np.float32))
                splits[s] = seqs
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise VrnnError(f"{path}: not a stroke-3 .npz ({e}); give train/valid/test arrays of (T, 3) drawings") from None
    return SequenceData(splits, {"name": path.stem, **STROKE3_META})


# ---- raw Omniglot recordings -----------------------------------------------------------
def parse_raw_strokes(text: str, where: str = "drawing") -> list[np.ndarray]:
    """``START`` / ``x,y,t`` rows / ``BREAK`` after each stroke -> strokes as (n, 3) arrays of x, y, t."""
    strokes, current = [], []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line == "START":
            continue
        if line == "BREAK":
            if current:
                strokes.append(np.array(current, dtype=np.float64))
            current = []
            continue
        try:
            current.append([float(v) for v in line.split(",")[:3]])
        except ValueError:
            raise VrnnError(f"{where}: line {n} is {line[:40]!r}; expected x,y,t, START or BREAK") from None
    if current:  # a last stroke without BREAK
        strokes.append(np.array(current, dtype=np.float64))
    if not strokes:
        raise VrnnError(f"{where}: no pen points; expected x,y,t rows between START and BREAK")
    return strokes


def raw_to_stroke3(strokes: list[np.ndarray], spacing: float) -> np.ndarray:
    """Raw Omniglot strokes (x, y up, t) -> stroke-3 rows with points ``spacing`` apart and y down."""
    flipped = [np.column_stack([s[:, 0], -s[:, 1]]) for s in strokes]  # Omniglot's raw y points up
    return strokes_to_stroke3([resample_polyline(s, spacing) for s in flipped])


def read_omniglot_raw(source: Path, spacing: float = 2.0) -> list[tuple[str, np.ndarray]]:
    """Every ``*.txt`` recording in a folder or .zip -> [(relative name, stroke-3 array)], sorted by name."""
    source = Path(source)
    items: list[tuple[str, str]] = []
    if source.is_dir():
        items = [(str(p.relative_to(source)), p.read_text(encoding="latin1")) for p in sorted(source.rglob("*.txt"))]
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            items = [(n, z.read(n).decode("latin1")) for n in sorted(z.namelist())
                     if n.endswith(".txt") and "__MACOSX" not in n and not Path(n).name.startswith("._")]
    else:
        raise VrnnError(f"{source}: not a folder or .zip of Omniglot stroke files (x,y,t rows with START/BREAK)")
    if not items:
        raise VrnnError(f"{source}: no .txt stroke files found")
    return [(name, raw_to_stroke3(parse_raw_strokes(text, f"{source}:{name}"), spacing))
            for name, text in tracked(items, "omniglot: resampling drawings", "drawing")]


# ---- IAM-OnDB lineStrokes ----------------------------------------------------------------
def parse_linestrokes_xml(data: bytes, where: str = "lineStrokes") -> list[np.ndarray]:
    """An IAM-OnDB lineStrokes XML document -> strokes as (n, 2) arrays of x, y (y down)."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as e:
        raise VrnnError(f"{where}: not valid XML ({e})") from None
    strokes = []
    for stroke in root.iter("Stroke"):
        pts = [(float(p.get("x")), float(p.get("y"))) for p in stroke.iter("Point")]
        if pts:
            strokes.append(np.array(pts, dtype=np.float64))
    if not strokes:
        raise VrnnError(f"{where}: no <Stroke><Point x= y=/></Stroke> elements; is this a lineStrokes file?")
    return strokes


def read_linestrokes_xml(path: Path) -> np.ndarray:
    """One IAM-OnDB lineStrokes file -> stroke-3 rows (T, 3), the points as recorded."""
    path = Path(path)
    return strokes_to_stroke3(parse_linestrokes_xml(path.read_bytes(), str(path)))


def read_iam_ondb(source: Path) -> list[tuple[str, np.ndarray]]:
    """Every lineStrokes ``*.xml`` in a folder or a .tar.gz (``lineStrokes-all.tar.gz``) -> [(name, stroke-3)]."""
    source = Path(source)
    out = []
    if source.is_dir():
        for p in tracked(sorted(source.rglob("*.xml")), "iam-ondb: reading lines", "line"):
            out.append((str(p.relative_to(source)), strokes_to_stroke3(parse_linestrokes_xml(p.read_bytes(), str(p)))))
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xml")),
                             key=lambda m: m.name)
            for m in tracked(members, "iam-ondb: reading lines", "line"):
                data = tar.extractfile(m).read()
                out.append((m.name, strokes_to_stroke3(parse_linestrokes_xml(data, f"{source}:{m.name}"))))
    else:
        raise VrnnError(f"{source}: not a folder or .tar.gz of IAM-OnDB lineStrokes XML files")
    if not out:
        raise VrnnError(f"{source}: no lineStrokes .xml files found")
    return out


def form_of(name: str) -> str:
    """The IAM-OnDB form a line belongs to (``a01-000u-01.xml`` -> ``a01-000u``), to split by form."""
    stem = Path(name).stem
    m = re.match(r"(.+)-\d+$", stem)
    return m.group(1) if m else stem
