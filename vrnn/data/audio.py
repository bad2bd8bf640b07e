"""Raw-waveform speech as sequences of fixed-size frames (Chung et al. 2015 §5.1).

A recording is decoded (soundfile), mixed down to mono, resampled to the target rate
(scipy's polyphase ``resample_poly``) and cut into frames of ``frame_size`` samples
(paper: 200); consecutive frames form sequences of ``seconds`` (paper: 0.5 s = 40
frames at 16 kHz). A sequence never crosses a file boundary; the part of a file after
its last whole sequence is dropped, and a file shorter than one sequence gives none.

Files are split into train/valid/test 0.9/0.05/0.05 with a seed, by file or by
speaker. Amplitudes are stored as decoded (floats in [-1, 1]); the global mean and
standard deviation of the training split are applied at training time by
:class:`vrnn.data.Normalizer` (paper §4), so the data are never normalised twice.

Files that cannot be decoded are reported by name (one warning line each, logger
``vrnn.data``) and skipped; the data set's metadata lists them.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from ..errors import VrnnError
from .core import SequenceData
from .progress import tracked
from .splits import seeded_split

log = logging.getLogger("vrnn.data")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
FRACTIONS = (0.9, 0.05, 0.05)


def soundfile_module():
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the libsndfile library itself is missing
        raise VrnnError("audio data need soundfile and scipy: pip install 'vrnn[audio]'") from None
    return soundfile


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) of a 1-D signal from ``from_rate`` to ``to_rate`` Hz."""
    if from_rate == to_rate:
        return x.astype(np.float32)
    try:
        from scipy.signal import resample_poly
    except ImportError:
        raise VrnnError("audio data need soundfile and scipy: pip install 'vrnn[audio]'") from None
    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(x.astype(np.float64), int(to_rate) // g, int(from_rate) // g).astype(np.float32)


def read_audio(path: str | Path, rate: int) -> np.ndarray:
    """One file as a mono float32 signal at ``rate`` Hz. Raises VrnnError if it cannot be decoded."""
    sf = soundfile_module()
    try:
        x, src_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except (RuntimeError, ValueError, TypeError, EOFError, OSError, sf.LibsndfileError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VrnnError(f"{path}: cannot decode audio ({first})") from None
    if x.shape[0] == 0:
        raise VrnnError(f"{path}: the file holds no samples")
    x = x.mean(1)  # mono: the average of the channels
    if not np.isfinite(x).all():
        raise VrnnError(f"{path}: decoded samples are not finite")
    return resample(x, src_rate, rate)


def frame_signal(x: np.ndarray, frame_size: int, frames: int) -> np.ndarray:
    """Cut a 1-D signal into whole sequences: (n, frames, frame_size), n = len // (frames·frame_size).

    Row-major: sequence i, frame j holds samples [(i·frames + j)·frame_size, +frame_size).
    """
    n = len(x) // (frames * frame_size)
    return x[: n * frames * frame_size].reshape(n, frames, frame_size)


def sequence_frames(rate: int, frame_size: int, seconds: float) -> int:
    """Frames per sequence: round(seconds · rate / frame_size), at least 1."""
    k = int(round(seconds * rate / frame_size))
    if k < 1:
        raise VrnnError(f"--seconds {seconds}: shorter than one frame ({frame_size} samples at {rate} Hz)")
    return k


def steps_for_seconds(meta: dict, seconds: float) -> int:
    """Model steps (frames) that cover ``seconds`` of audio of a data set with this metadata."""
    if "rate" not in meta or "frame_size" not in meta:
        raise VrnnError("--seconds applies to models of audio data only (the checkpoint's data has no "
                        "sampling rate); pass --steps")
    if seconds <= 0:
        raise VrnnError(f"--seconds must be > 0, got {seconds}")
    return max(1, math.ceil(seconds * meta["rate"] / meta["frame_size"]))


def find_audio(source: str | Path) -> list[Path]:
    """Every WAV/FLAC/OGG file under ``source`` (recursively), sorted."""
    root = Path(source).expanduser()
    if not root.is_dir():
        raise VrnnError(f"--source {root}: not a folder; give a folder that holds .wav, .flac or .ogg files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise VrnnError(f"--source {root}: no .wav, .flac or .ogg files in it or below it")
    return files


def speaker_from_folder(root: Path):
    """Speaker = the first folder under ``root`` (layout ``root/SPEAKER/.../file.wav``)."""
    def speaker(path: Path) -> str:
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            raise VrnnError(f"{path}: --speaker-split needs a speaker per file: put files in one folder per "
                            f"speaker under {root}, or pass --speaker-regex with one group, e.g. '^[^_]+_([^_]+)_'")
        return parts[0]
    return speaker


def speaker_from_regex(pattern: str):
    """Speaker = group 1 of ``pattern`` searched in the file name (without extension)."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise VrnnError(f"--speaker-regex {pattern!r}: not a regular expression ({e})") from None
    if rx.groups < 1:
        raise VrnnError(f"--speaker-regex {pattern!r}: needs one group, e.g. '^[^_]+_([^_]+)_'")

    def speaker(path: Path) -> str:
        m = rx.search(path.stem)
        if m is None:
            raise VrnnError(f"{path}: --speaker-regex {pattern!r} does not match the file name {path.stem!r}")
        return m.group(1)
    return speaker


def _decode_files(files: list[Path], root: Path, rate: int, frame_size: int, frames: int, speaker_of):
    """Each file's sequences ``{key: (N, frames, frame_size)}`` keyed by its path under ``root``, the
    speakers ``{key: speaker}``, and the keys of the files skipped (undecodable) and too short."""
    seqs: dict[str, np.ndarray] = {}
    speakers: dict[str, str] = {}
    skipped, short = [], []
    for path in tracked(files, f"{root.name or 'audio'}: decoding recordings", "recording"):
        key = str(path.relative_to(root))
        spk = speaker_of(path) if speaker_of is not None else None  # naming errors are the user's: raise
        try:
            x = read_audio(path, rate)
        except VrnnError as e:
            log.warning("%s; skipped", e)
            skipped.append(key)
            continue
        s = frame_signal(x, frame_size, frames)
        if len(s) == 0:
            short.append(key)
            continue
        seqs[key] = s
        if spk is not None:
            speakers[key] = spk
    return seqs, speakers, skipped, short


def build_audio_dataset(files: list[Path], root: Path, *, name: str, rate: int, frame_size: int = 200,
                        seconds: float = 0.5, seed: int = 0, speaker_of=None, speaker_split: bool = False,
                        extra_meta: dict | None = None) -> SequenceData:
    """Decode, resample, frame and split ``files``; see the module docstring.

    ``speaker_of(path) -> str`` names each file's speaker (recorded in the metadata, and
    the unit of the split when ``speaker_split``).
    """
    if rate < 1 or frame_size < 1:
        raise VrnnError(f"--rate and --frame-size must be >= 1 (got {rate}, {frame_size})")
    if speaker_split and speaker_of is None:
        speaker_of = speaker_from_folder(root)
    frames = sequence_frames(rate, frame_size, seconds)
    seqs, speakers, skipped, short = _decode_files(files, root, rate, frame_size, frames, speaker_of)
    if skipped:
        log.warning("skipped %d of %d audio files that could not be decoded (named above)", len(skipped), len(files))
    if short:
        log.warning("%d of %d audio files are shorter than one %.3g s sequence and contribute nothing",
                    len(short), len(files), frames * frame_size / rate)
    if not seqs:
        raise VrnnError(f"{root}: no file gives a whole {seconds} s sequence at {rate} Hz; "
                        f"lower --seconds or check the files")
    if speaker_split:
        by_speaker = seeded_split(sorted(set(speakers.values())), seed, FRACTIONS, min_each=1)
        split_of = {k: next(s for s, v in by_speaker.items() if speakers[k] in v) for k in seqs}
        how = f"{'/'.join(str(f) for f in FRACTIONS)} of speakers, seed {seed}"
    else:
        by_file = seeded_split(sorted(seqs), seed, FRACTIONS, min_each=1)
        split_of = {k: s for s, ks in by_file.items() for k in ks}
        how = f"{'/'.join(str(f) for f in FRACTIONS)} of files, seed {seed}"
    splits, split_files = {}, {}
    for split in ("train", "valid", "test"):
        keys = sorted(k for k in seqs if split_of[k] == split)
        split_files[split] = keys
        splits[split] = [a for k in keys for a in seqs[k]]  # (frames, frame_size) each
    meta = {
        "name": name, "kind": "audio", "rate": int(rate), "frame_size": int(frame_size),
        "sequence_frames": frames, "sequence_seconds": frames * frame_size / rate,
        "framing": f"{frame_size}-sample frames at {rate} Hz, {frames} frames "
                   f"({frames * frame_size / rate:g} s) per sequence, mono",
        "normalization": "stored as decoded amplitudes; models normalise with the training split's global "
                         "mean/std at train time",
        "split": how, "source": str(root), "files": split_files,
        # how many sequences each file gave, in the order of "files": the clusters of per-sequence statistics
        "file_sequences": {s: [len(seqs[k]) for k in keys] for s, keys in split_files.items()},
        "skipped_files": skipped, "short_files": len(short),
    }
    if speakers:
        meta["speakers"] = {s: sorted({speakers[k] for k in split_files[s]}) for s in split_files}
    meta.update(extra_meta or {})
    return SequenceData(splits, meta)


def join_frames(x: np.ndarray) -> np.ndarray:
    """Frames (T, frame_size) -> the waveform (T·frame_size,), in order."""
    return np.asarray(x).reshape(-1)


def read_frames(path: str | Path, meta: dict, seconds: float | None = None, setting: str = "--input") -> np.ndarray:
    """A recording as frames (T, frame_size) at the rate of the data ``meta`` describes (a checkpoint's
    ``data_meta``), original units; ``seconds`` keeps only the first S seconds. Errors name ``setting``."""
    path = Path(path)
    if "rate" not in meta:
        raise VrnnError(f"{setting} {path}: the checkpoint's model was not trained on audio; pass a .npy of frames")
    rate, frame = int(meta["rate"]), int(meta["frame_size"])
    wave = read_audio(path, rate)
    if seconds is not None:
        wave = wave[: int(round(seconds * rate))]
    n = len(wave) // frame
    if n < 2:
        raise VrnnError(f"{setting} {path}: shorter than two {frame}-sample frames at {rate} Hz")
    return frame_signal(wave, frame, n)[0]  # (n, frame)
