"""``vrnn prepare NAME``: named recipes that build a data set once and cache it.

Each recipe returns a :class:`SequenceData`; :func:`prepare` writes it to
``data_dir()/NAME.npz``. Recipes are the only place that installs-time data are read.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UnwritablePath, VrnnError
from ..io import make_folder
from .core import SequenceData, data_dir, save_prepared
from .progress import tracked
from .readers import PIANO_KEYS, PIANO_LOW
from .splits import seeded_split

RECIPES: dict[str, Callable[..., SequenceData]] = {}


def recipe(name: str):
    def deco(fn):
        RECIPES[name] = fn
        return fn

    return deco


def score_to_roll(score) -> np.ndarray:
    """A music21 score -> (T, 88) piano roll sampled on every quarter-note beat.

    A note sounds at beat k if offset <= k < offset + duration (so notes shorter than a
    beat that start off the beat are not seen, as in the quarter-note JSB benchmark).
    """
    flat = score.flatten()
    T = int(np.ceil(float(flat.highestTime)))
    roll = np.zeros((T, PIANO_KEYS), dtype=np.float32)
    for el in flat.notes:
        start, end = float(el.offset), float(el.offset + el.quarterLength)
        beats = range(int(np.ceil(start)), int(np.ceil(end)))
        for p in el.pitches:
            k = int(p.midi) - PIANO_LOW
            if 0 <= k < PIANO_KEYS:
                for b in beats:
                    if b < T:
                        roll[b, k] = 1.0
    return roll


@recipe("chorales")
def chorales(seed: int = 0, source: str | None = None) -> SequenceData:
    """Bach's chorales from the music21 corpus as 88-key piano rolls at quarter-note steps.

    Every score of composer 'bach' (MusicXML / Humdrum; the Roman-numeral analyses are
    skipped) becomes one sequence; pieces are split 60/20/20 with a fixed seed.
    """
    try:
        from music21 import corpus
    except ImportError:
        raise VrnnError("vrnn prepare chorales needs music21: pip install 'vrnn[music]'") from None
    paths = sorted(p for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml", ".krn"))
    pieces = []
    for p in tracked(paths, "chorales: reading scores", "score"):
        roll = score_to_roll(corpus.parse(p))
        if len(roll) and roll.any():
            pieces.append((Path(p).stem, roll))
    split = seeded_split(pieces, seed, (0.6, 0.2, 0.2))
    return SequenceData(
        {s: [r for _, r in v] for s, v in split.items()},
        {"name": "chorales", "kind": "pianoroll", "framing": "quarter-note steps",
         "split": f"60/20/20 by piece, seed {seed}",
         "pieces": {s: [n for n, _ in v] for s, v in split.items()}},
    )


@recipe("midi")
def midi(source: str | None = None, seed: int = 0, steps_per_beat: int = 2) -> SequenceData:
    """A folder of standard MIDI files (searched recursively) as 88-key piano rolls (:mod:`vrnn.data.midi`).

    ``steps_per_beat`` steps per quarter note (2: eighth notes, the SRNN paper's resolution; 1: the
    JSB pickle's quarter notes); files split 80/10/10 with ``seed`` (at least one file per split).
    Files that cannot be read are reported by name (a warning each) and skipped.
    """
    import logging

    from .midi import find_midi, midi_to_roll

    if source is None:
        raise VrnnError("vrnn prepare midi needs --source DIR: a folder of .mid files")
    root = Path(source).expanduser()
    pieces, skipped, dropped = [], [], 0
    for path in tracked(find_midi(root), "midi: reading files"):
        try:
            roll, n = midi_to_roll(path, steps_per_beat)
        except VrnnError as e:
            logging.getLogger("vrnn.data").warning("%s; skipped", e)
            skipped.append(str(path.relative_to(root)))
            continue
        pieces.append((str(path.relative_to(root)), roll))
        dropped += n
    if len(pieces) < 3:
        raise VrnnError(f"--source {root}: {len(pieces)} readable MIDI file(s); a train/valid/test split needs 3")
    split = seeded_split(pieces, seed, (0.8, 0.1, 0.1), min_each=1)
    return SequenceData(
        {s: [r for _, r in v] for s, v in split.items()},
        {"name": root.name or "midi", "kind": "pianoroll",
         "framing": f"{steps_per_beat} steps per quarter note (beat grid, tempo-independent)",
         "split": f"80/10/10 by file, seed {seed}", "files": {s: [n for n, _ in v] for s, v in split.items()},
         "skipped_files": skipped, "notes_outside_piano": dropped,
         "options": {"source": str(root.resolve()), "seed": seed, "steps_per_beat": steps_per_beat}})


# ---- speech: raw waveforms (see vrnn.data.audio) -----------------------------------------
FSDD_HINT = ("get the Free Spoken Digit Dataset (github.com/Jakobovski/free-spoken-digit-dataset) and pass "
             "--source .../recordings")
FILLETS_DIR = Path("/usr/share/games/fillets-ng/sound")
FILLETS_INSTALL = "apt-get install --no-install-recommends fillets-ng-data-cs"


def _audio_options(**kw) -> dict:
    """The options a recipe was called with, stored so a cached data set is never reused for others."""
    if kw.get("source") is not None:
        kw["source"] = str(Path(kw["source"]).expanduser().resolve())
    return kw


@recipe("audio")
def audio(source: str | None = None, seed: int = 0, rate: int = 16000, seconds: float = 0.5,
          frame_size: int = 200, speaker_split: bool = False, speaker_regex: str | None = None) -> SequenceData:
    """Any folder of WAV/FLAC/OGG recordings (searched recursively) as 200-sample frames.

    Defaults follow Chung et al. (2015) §5.1: 16 kHz, 0.5 s sequences, files split
    0.9/0.05/0.05 with ``seed``. With ``speaker_split`` the speakers are split instead:
    a file's speaker is its first folder under ``source`` or group 1 of ``speaker_regex``
    matched against its file name. Save under your own name with ``vrnn prepare audio
    --source DIR --as NAME``.
    """
    from .audio import build_audio_dataset, find_audio, speaker_from_regex

    if source is None:
        raise VrnnError("vrnn prepare audio needs --source DIR: a folder of .wav, .flac or .ogg files")
    root = Path(source).expanduser()
    files = find_audio(root)
    speaker_of = speaker_from_regex(speaker_regex) if speaker_regex else None
    return build_audio_dataset(
        files, root, name=root.name or "audio", rate=rate, frame_size=frame_size, seconds=seconds, seed=seed,
        speaker_of=speaker_of, speaker_split=speaker_split,
        extra_meta={"options": _audio_options(source=source, seed=seed, rate=rate, seconds=seconds,
                                              frame_size=frame_size, speaker_split=speaker_split,
                                              speaker_regex=speaker_regex)})


@recipe("fsdd")
def fsdd(seed: int = 0, source: str | None = None, rate: int = 8000, seconds: float = 0.25,
         frame_size: int = 200, speaker_split: bool = False) -> SequenceData:
    """The Free Spoken Digit Dataset: 3,000 recordings of digits by 6 English speakers, 8 kHz.

    File names are ``{digit}_{speaker}_{index}.wav``. Defaults: the native 8 kHz (these
    recordings hold nothing above 4 kHz; upsampling would add interpolated samples that
    make the likelihood look better without adding signal, and double the cost) and
    0.25 s sequences (10 frames of 25 ms): the median recording lasts 0.42 s, so 0.5 s
    sequences would keep only 27 % of the recordings and 32 % of the audio, 0.25 s keeps
    95 % and 72 %. Split by file; ``speaker_split`` holds out whole speakers (4/1/1).
    """
    from .audio import build_audio_dataset, speaker_from_regex

    if source is None:
        raise VrnnError(f"vrnn prepare fsdd needs --source: {FSDD_HINT}")
    root = Path(source).expanduser()
    files = sorted(root.glob("*.wav")) if root.is_dir() else []
    if not files:
        raise VrnnError(f"fsdd: no recordings in {root}; {FSDD_HINT}")
    return build_audio_dataset(
        files, root, name="fsdd", rate=rate, frame_size=frame_size, seconds=seconds, seed=seed,
        speaker_of=speaker_from_regex(r"^[^_]+_([^_]+)_"), speaker_split=speaker_split,
        extra_meta={"corpus": "Free Spoken Digit Dataset (6 English speakers, CC BY-SA 4.0)",
                    "options": _audio_options(seed=seed, source=str(root), rate=rate, seconds=seconds,
                                              frame_size=frame_size, speaker_split=speaker_split)})


def _fillets_speaker(path: Path) -> str:
    parts = path.stem.split("-")  # <level>-<speaker>-<line>
    return parts[1] if len(parts) >= 3 else "other"


@recipe("fillets")
def fillets(seed: int = 0, source: str | None = None, rate: int = 16000, seconds: float = 0.5,
            frame_size: int = 200, voice: str = "v", speaker_split: bool = False) -> SequenceData:
    """Czech voice-acted dialogue of Fish Fillets NG (Debian package fillets-ng-data-cs), GPL-2+.

    Files ``sound/<level>/cs/<level>-<speaker>-<line>.ogg``. ``voice="v"`` (default) is
    the single-speaker set: the big fish, the largest voice (about 35 minutes);
    ``voice="m"`` the small fish; ``voice="all"`` every voice (about 100 minutes). 16 kHz,
    0.5 s sequences as in the paper; split by file (or by speaker with ``speaker_split``).
    """
    from .audio import build_audio_dataset

    root = Path(source).expanduser() if source is not None else FILLETS_DIR
    files = sorted(root.glob("*/cs/*.ogg")) if root.is_dir() else []
    if not files:
        raise VrnnError(f"fillets: no Czech dialogue under {root}; install it with `{FILLETS_INSTALL}` "
                        f"(as root), or pass --source to the folder that holds <level>/cs/*.ogg")
    voices = sorted({_fillets_speaker(p) for p in files})
    if voice != "all":
        if voice not in voices:
            raise VrnnError(f"fillets: unknown --voice {voice!r}; choose all or one of {', '.join(voices)}")
        files = [p for p in files if _fillets_speaker(p) == voice]
    return build_audio_dataset(
        files, root, name="fillets", rate=rate, frame_size=frame_size, seconds=seconds, seed=seed,
        speaker_of=_fillets_speaker, speaker_split=speaker_split,
        extra_meta={"corpus": f"Fish Fillets NG Czech dialogue, voice {voice} (GPL-2+)", "voice": voice,
                    "options": _audio_options(seed=seed, source=str(root), rate=rate, seconds=seconds,
                                              frame_size=frame_size, voice=voice, speaker_split=speaker_split)})


OMNIGLOT_HINT = ("download the stroke-3 omniglot.npz of the sketch-rnn data sets (github.com/hardmaru/"
                 "sketch-rnn-datasets, folder omniglot) or Omniglot's raw strokes_background.zip (github.com/"
                 "brendenlake/omniglot, folder python) and pass --source PATH")


@recipe("omniglot")
def omniglot(seed: int = 0, source: str | None = None, spacing: float = 2.0) -> SequenceData:
    """Omniglot characters drawn online (Lake et al. 2015) as stroke-3 pen-stroke sequences.

    ``source``: a stroke-3 .npz with train/valid/test (its split is kept; ``seed`` unused), or a
    folder / .zip of raw ``x,y,t`` recordings with START/BREAK markers, resampled ``spacing``
    units apart along the pen's path and split 80/10/10 by drawing with ``seed``.
    """
    from .strokes import STROKE3_META, is_stroke3_npz, read_omniglot_raw, read_stroke3_npz

    if source is None:
        raise VrnnError(f"vrnn prepare omniglot needs the data: {OMNIGLOT_HINT}")
    path = Path(source).expanduser()
    if not path.exists():
        raise VrnnError(f"--source {path}: not found; {OMNIGLOT_HINT}")
    options = {"seed": seed, "source": str(path.resolve()), "spacing": spacing}
    if path.suffix == ".npz":
        if not is_stroke3_npz(path):
            raise VrnnError(f"--source {path}: not a stroke-3 .npz (train/valid/test arrays of (T, 3) drawings)")
        data = read_stroke3_npz(path)
        data.meta |= {"name": "omniglot", "split": "as in the source file", "options": options}
        return data
    items = read_omniglot_raw(path, spacing)
    split = seeded_split(items, seed, (0.8, 0.1, 0.1))
    return SequenceData({s: [a for _, a in v] for s, v in split.items()},
                        {"name": "omniglot", **STROKE3_META, "split": f"80/10/10 by drawing, seed {seed}",
                         "resampling": f"{spacing} units between points along each stroke", "options": options})


@recipe("iam-ondb")
def iam_ondb(seed: int = 0, source: str | None = None) -> SequenceData:
    """IAM-OnDB handwritten lines (Liwicki & Bunke 2005) from its lineStrokes XML files, as stroke-3.

    ``source``: the ``lineStrokes`` folder or ``lineStrokes-all.tar.gz``. Lines are split
    90/5/5 by form (all lines of one form in one split) with ``seed``; the points are used
    as recorded (Graves 2013).
    """
    from .strokes import STROKE3_META, form_of, read_iam_ondb

    if source is None:
        raise VrnnError("vrnn prepare iam-ondb needs --source: the lineStrokes folder or lineStrokes-all.tar.gz "
                        "of IAM-OnDB (registration at fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database)")
    path = Path(source).expanduser()
    if not path.exists():
        raise VrnnError(f"--source {path}: not found; give the lineStrokes folder or lineStrokes-all.tar.gz")
    lines = read_iam_ondb(path)
    forms = sorted({form_of(n) for n, _ in lines})
    split = seeded_split(forms, seed, (0.9, 0.05, 0.05))
    where = {f: s for s, fs in split.items() for f in fs}
    splits = {s: [a for n, a in lines if where[form_of(n)] == s] for s in split}
    return SequenceData(splits, {"name": "iam-ondb", **STROKE3_META, "split": f"90/5/5 by form, seed {seed}",
                                 "options": {"seed": seed, "source": str(path.resolve())}})


def _check_cached(path: Path, params, kwargs: dict) -> None:
    """Refuse a cached data set that a recipe built with other options than those asked for now.

    Options not given count as the recipe's defaults; an option whose value is None (a
    default path, say) is not compared.
    """
    import json

    try:
        with np.load(path, allow_pickle=False) as f:
            stored = json.loads(str(f["meta"])).get("options")
    except (OSError, ValueError, KeyError):
        return  # unreadable: loading it later reports the problem
    if not stored:
        return
    asked = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty} | kwargs
    asked = {k: v for k, v in _audio_options(**asked).items() if v is not None}
    diff = [k for k, v in asked.items() if k in stored and stored[k] != v]
    if diff:
        k = diff[0]
        raise VrnnError(f"{path} was prepared with {k}={stored[k]!r}, not {asked[k]!r}; pass --overwrite to "
                        f"rebuild it, or --as NAME to keep both")


def prepared_file(name: str, save_as: str | None = None) -> Path:
    """Where :func:`prepare` caches data set ``name`` (as ``save_as``, if given)."""
    return data_dir() / f"{save_as or name}.npz"


def prepare(name: str, overwrite: bool = False, save_as: str | None = None, **kwargs) -> Path:
    """Build data set ``name`` with the recipe's options ``kwargs`` and cache it as ``save_as`` (default ``name``)."""
    if name not in RECIPES:
        raise VrnnError(f"unknown data set {name!r}; choose one of {sorted(RECIPES)}")
    params = inspect.signature(RECIPES[name]).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        flag = "--" + unknown[0].replace("_", "-")
        raise VrnnError(f"vrnn prepare {name}: {flag} does not apply to this data set; its options are "
                        f"{', '.join('--' + p.replace('_', '-') for p in params)}")
    out = prepared_file(name, save_as)
    if out.exists() and not overwrite:
        _check_cached(out, params, kwargs)
        return out
    make_folder(out.parent, DATA_DIR_SETTING)  # before the recipe runs: a data folder that cannot exist fails fast
    data = RECIPES[name](**kwargs)
    try:
        save_prepared(out, data)
    except UnwritablePath as e:
        raise e.for_setting(DATA_DIR_SETTING) from None
    return out


DATA_DIR_SETTING = "VRNN_DATA_DIR (the folder prepared data sets go to)"
