"""Audio files in, 8 kHz mono 16-bit PCM out.

Theory of operation
-------------------
Hold music is sent as G.711, which carries 8,000 mono samples a second. An
admin may hand us any file libsndfile reads (WAV of any rate, depth and
channel count, FLAC, OGG/Vorbis, MP3...). :func:`load_audio`:

1. checks the path (exists, is a regular file) and the header (channels,
   sample rate, duration) before reading any sample;
2. reads the samples as float (full scale = 1.0) and rejects NaN/inf;
3. down-mixes to mono by averaging the channels;
4. resamples to 8 kHz with a polyphase low-pass filter
   (``scipy.signal.resample_poly``) with the rational ratio 8000/rate, so that
   content above 4 kHz is filtered out instead of folding back as aliasing;
5. rounds and clips to int16.

Invariants
----------
* Every failure is a :class:`~huntgroup.errors.MediaError` whose message names
  the file and the problem; no other exception escapes.
* The result is a non-empty, C-contiguous ``int16`` array at 8 kHz.
* The pitch is kept: a 440 Hz tone stays at 440 Hz. For a standard rate the
  ratio is exact; for an unusual rate whose exact ratio needs a huge filter,
  the ratio is approximated to better than one part in 10^5 (inaudible).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from huntgroup.errors import MediaError

__all__ = [
    "MAX_DURATION",
    "MAX_RATE",
    "MIN_RATE",
    "SAMPLE_RATE",
    "check_music_file",
    "convert_file",
    "load_audio",
    "resample_to_8k",
]

SAMPLE_RATE: Final = 8000
MIN_RATE: Final = 1000
MAX_RATE: Final = 192_000
MAX_DURATION: Final = 30 * 60.0  # seconds
MAX_CHANNELS: Final = 64
_MAX_RATIO_TERM: Final = 2000  # bounds the polyphase filter at 20 * 2000 taps
_BLOCK_FRAMES: Final = 1 << 16


def _describe(path: Path) -> str:
    return f"{os.fspath(path)!r}"


def _ratio(rate: int) -> Fraction:
    exact = Fraction(SAMPLE_RATE, rate)
    if max(exact.numerator, exact.denominator) <= _MAX_RATIO_TERM:
        return exact
    return exact.limit_denominator(_MAX_RATIO_TERM)


def resample_to_8k(mono: NDArray[np.floating[Any]], rate: int) -> NDArray[np.float64]:
    """``mono`` (float, at ``rate`` Hz) low-pass filtered and resampled to 8 kHz."""
    if rate == SAMPLE_RATE:
        return mono.astype(np.float64)
    ratio = _ratio(rate)
    # imported here: scipy.signal costs ~1 s of start-up to every huntgroup command
    # (ctl, check, serve) and only a file at another rate than 8 kHz needs it
    from scipy.signal import resample_poly

    out = resample_poly(mono, ratio.numerator, ratio.denominator)
    return np.asarray(out, dtype=np.float64)


def _read_mono(path: Path) -> tuple[NDArray[np.float32], int]:
    """The file's samples, averaged to mono, with its sample rate."""
    where = _describe(path)
    try:
        handle = sf.SoundFile(os.fspath(path))
    except Exception as exc:  # libsndfile reports every unreadable file its own way
        raise MediaError(f"{where} is not an audio file soundfile can read: {exc}") from exc
    with handle:
        rate, channels, frames = int(handle.samplerate), int(handle.channels), handle.frames
        if channels <= 0:
            raise MediaError(f"{where} has no audio channel")
        if channels > MAX_CHANNELS:
            raise MediaError(f"{where} has {channels} channels (at most {MAX_CHANNELS})")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise MediaError(
                f"{where} has an unusable sample rate of {rate} Hz "
                f"(expected {MIN_RATE} to {MAX_RATE} Hz)"
            )
        if frames is not None and frames > MAX_DURATION * rate:
            raise MediaError(
                f"{where} lasts {frames / rate / 60:.1f} minutes; "
                f"hold music is limited to {MAX_DURATION / 60:.0f} minutes"
            )
        limit = int(MAX_DURATION * rate)
        blocks: list[NDArray[np.float32]] = []
        total = 0
        try:
            # Read in blocks (frame counts of compressed files are only estimates),
            # down-mixing each block so that memory holds one channel only.
            for block in handle.blocks(_BLOCK_FRAMES, dtype="float64", always_2d=True):
                if not np.all(np.isfinite(block)):
                    raise MediaError(f"{where} contains NaN or infinite samples")
                total += block.shape[0]
                if total > limit:
                    raise MediaError(
                        f"{where} lasts more than {MAX_DURATION / 60:.0f} minutes, "
                        "the limit for hold music"
                    )
                blocks.append(block.mean(axis=1).astype(np.float32))
        except MediaError:
            raise
        except Exception as exc:
            raise MediaError(f"{where} could not be decoded: {exc}") from exc
    if total == 0:
        raise MediaError(f"{where} holds no audio samples (zero frames)")
    return np.concatenate(blocks), rate


def load_audio(path: str | os.PathLike[str]) -> NDArray[np.int16]:
    """The audio file at ``path`` as 16-bit PCM, mono, at 8 kHz.

    Raises MediaError, with the file and the problem, for anything that is not
    a readable, finite, non-empty audio file within the limits.
    """
    p = Path(path)
    where = _describe(p)
    try:
        if not p.exists():
            raise MediaError(f"{where}: no such file")
        if p.is_dir():
            raise MediaError(f"{where} is a directory, not an audio file")
        if not p.is_file():
            raise MediaError(f"{where} is not a regular file")
    except OSError as exc:
        raise MediaError(f"{where} cannot be accessed: {exc}") from exc
    mono, rate = _read_mono(p)
    try:
        resampled = resample_to_8k(mono, rate)
    except (ValueError, MemoryError) as exc:
        raise MediaError(f"{where} could not be resampled to 8 kHz: {exc}") from exc
    if resampled.size == 0:
        raise MediaError(f"{where} is too short to give a single sample at 8 kHz")
    scaled = np.clip(np.round(resampled * 32768.0), -32768, 32767)
    return np.ascontiguousarray(scaled.astype(np.int16))


def convert_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> float:
    """Convert ``src`` to an 8 kHz mono 16-bit PCM WAV file at ``dst``.

    The file is written next to ``dst`` and renamed into place, so ``dst`` is
    never left half-written. Returns the duration in seconds.
    """
    pcm = load_audio(src)
    target = Path(dst)
    where = _describe(target)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise MediaError(f"{where} is a directory; give the name of the WAV file to write")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=".huntgroup-", suffix=".wav", dir=directory)
    except OSError as exc:
        raise MediaError(f"cannot write {where}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            sf.write(out, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the server may run as another user
        os.replace(tmp_name, target)
    except Exception as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise MediaError(f"cannot write {where}: {exc}") from exc
    return pcm.size / SAMPLE_RATE


def check_music_file(path: str | os.PathLike[str]) -> None:
    """Raise MediaError if ``path`` cannot be used as hold music (for ``huntgroup check``)."""
    load_audio(path)
