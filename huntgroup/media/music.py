"""Hold music: one looped source, encoded once, shared by every queued call.

Theory of operation
-------------------
A :class:`HoldMusic` is built once per audio source (a file, the built-in
default music, a ringback tone). Its 8 kHz samples are encoded to PCMU and to
PCMA once, at construction. G.711 is memoryless, so the encoded loop is the
encoding of the looped sample stream: frame ``i`` (20 ms, 160 bytes) is the
160 codes starting at sample ``160 * i`` of the stream that repeats the loop
forever. A loop whose length is not a multiple of 160 samples therefore plays
seamlessly, with no short or padded final frame: the frame that crosses the
end of the loop simply continues with the start of the loop.

Every queued caller hears the same music at the same position: a *shared
clock* counts 20 ms frames since an epoch chosen by the driver (a monotonic
time), and a caller who joins mid-file starts at the current frame
(:meth:`HoldMusic.cursor`). From then on a :class:`MusicCursor` hands out one
frame per packet, so a caller never skips or repeats a frame because of
timer jitter. The frames of one period are cut once per codec, on first use, and
shared: a packet's payload is an index into that tuple (the same object for every
caller at that position), unless the period is too long to keep (``MAX_PREBUILT_BYTES``;
a file whose length shares few factors with 160 samples), when each frame is cut as it
is needed.

Files are loaded once each by the driver's cache,
:class:`huntgroup.engine.aio.music_library.MusicLibrary`.

Invariants
----------
* ``frame_at(i, codec)`` is always exactly 160 bytes, for every integer ``i``, and
  ``frames(codec)[i % period_frames]`` (when prebuilt) is the same bytes.
* ``frame_at(i + period_frames, c) == frame_at(i, c)``.
* The concatenation of consecutive frames equals the encoded looped stream.
* The default music is the same, sample for sample, in every process.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from huntgroup.errors import MediaError
from huntgroup.media import g711
from huntgroup.media.audio import SAMPLE_RATE
from huntgroup.media.g711 import Codec

__all__ = [
    "FRAME_SAMPLES",
    "FRAME_SECONDS",
    "HoldMusic",
    "MusicCursor",
    "SilenceSource",
    "default_music",
    "ringback_tone",
]

FRAME_SAMPLES: Final = 160  # 20 ms at 8 kHz
FRAME_SECONDS: Final = FRAME_SAMPLES / SAMPLE_RATE
_CLOCK_EPSILON: Final = 1e-6  # absorbs float error at exact frame boundaries
MAX_PREBUILT_BYTES: Final = 16 << 20
"""The most one codec's prebuilt period of frames may take (:meth:`HoldMusic.frames`)."""


class HoldMusic:
    """A looped 8 kHz source, encoded once to PCMU and PCMA 20 ms frames."""

    __slots__ = ("_encoded", "_frames", "_last", "name", "samples")

    def __init__(self, pcm: NDArray[np.int16], *, name: str) -> None:
        array = np.asarray(pcm)
        if array.dtype != np.int16 or array.ndim != 1:
            raise MediaError(f"{name}: hold music must be 1-D int16 samples at 8 kHz")
        if array.size == 0:
            raise MediaError(f"{name}: hold music has no samples")
        self.name = name
        self.samples = int(array.size)
        # The loop, then enough of its own start for any frame to be one slice.
        reps = math.ceil((array.size + FRAME_SAMPLES) / array.size)
        extended = np.tile(array, reps)[: array.size + FRAME_SAMPLES]
        self._encoded: dict[Codec, bytes] = {c: g711.encode(extended, c) for c in Codec}
        self._last: dict[Codec, tuple[int, bytes]] = {}
        self._frames: dict[Codec, tuple[bytes, ...] | None] = {}

    def __repr__(self) -> str:
        return f"HoldMusic({self.name!r}, {self.duration:.2f} s)"

    @property
    def duration(self) -> float:
        """The length of the loop, in seconds."""
        return self.samples / SAMPLE_RATE

    @property
    def period_frames(self) -> int:
        """How many frames until the sequence of frames repeats."""
        return math.lcm(self.samples, FRAME_SAMPLES) // FRAME_SAMPLES

    def frame_at(self, index: int, codec: Codec) -> bytes:
        """The G.711 payload (160 bytes) of frame ``index`` of the looped stream."""
        start = (index * FRAME_SAMPLES) % self.samples
        last = self._last.get(codec)
        if last is not None and last[0] == start:
            return last[1]  # every caller at the shared position gets the same object
        frame = self._encoded[codec][start : start + FRAME_SAMPLES]
        self._last[codec] = (start, frame)
        return frame

    def frames(self, codec: Codec) -> tuple[bytes, ...] | None:
        """Every frame of one period, cut once and shared by every caller (frame ``i`` is
        ``frames[i % period_frames]``); None when a period would take more than
        ``MAX_PREBUILT_BYTES`` (a loop whose length shares few factors with 160 samples
        repeats only after that many frames): :meth:`frame_at` then cuts each one."""
        if codec not in self._frames:
            period = self.period_frames
            if period * FRAME_SAMPLES > MAX_PREBUILT_BYTES:
                self._frames[codec] = None
            else:
                self._frames[codec] = tuple(self.frame_at(i, codec) for i in range(period))
        return self._frames[codec]

    @staticmethod
    def frame_index(*, now: float, epoch: float) -> int:
        """The shared position: frames of 20 ms elapsed since ``epoch``."""
        return math.floor((now - epoch) / FRAME_SECONDS + _CLOCK_EPSILON)

    def cursor(self, codec: Codec, *, now: float, epoch: float) -> MusicCursor:
        """A frame source for one caller, starting at the shared position."""
        return MusicCursor(self, codec, self.frame_index(now=now, epoch=epoch))


class MusicCursor:
    """One caller's position in a :class:`HoldMusic` (an RTP frame source).

    With the music's prebuilt frames (:meth:`HoldMusic.frames`), a frame is one index
    into a tuple shared by every caller: no slicing, no look-up by codec per packet."""

    __slots__ = ("_frames", "_period", "codec", "index", "music")

    def __init__(self, music: HoldMusic, codec: Codec, index: int) -> None:
        self.music = music
        self.codec = codec
        self.index = index
        self._frames = music.frames(codec)
        self._period = len(self._frames) if self._frames is not None else 0

    def next_frame(self) -> bytes:
        index = self.index
        self.index = index + 1
        frames = self._frames
        if frames is not None:
            return frames[index % self._period]
        return self.music.frame_at(index, self.codec)

    def skip(self, count: int) -> None:
        self.index += count


class SilenceSource:
    """Frames of encoded silence (a frame source that always has something to send)."""

    __slots__ = ("frame",)

    def __init__(self, codec: Codec) -> None:
        self.frame = bytes([codec.silence]) * FRAME_SAMPLES

    def next_frame(self) -> bytes:
        return self.frame

    def skip(self, count: int) -> None:
        """Silence has no position."""


def _envelope(length: int, fade: int) -> NDArray[np.float64]:
    """1.0 in the middle, raised-cosine fades of ``fade`` samples at both ends."""
    env = np.ones(length)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    env[:fade] = ramp
    env[-fade:] = ramp[::-1]
    return env


def _note_hz(semitones_from_a4: int) -> float:
    return float(440.0 * 2.0 ** (semitones_from_a4 / 12))


# A I-vi-IV-V progression in C major, voiced inside the telephone band
# (semitones from A4): C-E-G, A-C-E, F-A-C, G-B-D, each over its root an octave lower.
_CHORDS: Final = (
    (-21, -9, -5, -2),
    (-12, -9, -5, 0),
    (-16, -4, 0, 3),
    (-14, -2, 2, 5),
)
_CHORD_SECONDS: Final = 4.0


@cache
def default_music() -> HoldMusic:
    """The built-in hold music: four soft chords, 16 s, computed (no file needed)."""
    n = int(_CHORD_SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    # A slow attack and a long release, like a soft pad.
    attack = 1.0 - np.exp(-t / 0.25)
    release = _envelope(n, int(0.6 * SAMPLE_RATE))
    env = attack * release
    parts = []
    for chord in _CHORDS:
        mix = np.zeros(n)
        for k, semitones in enumerate(chord):
            f = _note_hz(semitones)
            weight = 1.0 if k else 0.8  # the bass a little softer
            mix += weight * (np.sin(2 * np.pi * f * t) + 0.25 * np.sin(4 * np.pi * f * t))
            mix += weight * 0.3 * np.sin(2 * np.pi * f * 1.003 * t)  # slight chorus
        parts.append(mix * env)
    music = np.concatenate(parts)
    music *= 0.25 / np.max(np.abs(music))  # peak at -12 dBFS
    pcm = np.round(music * 32767).astype(np.int16)
    return HoldMusic(pcm, name="default music")


def ringback_tone(*, frequency: float = 440.0, on: float = 1.5, off: float = 3.5) -> HoldMusic:
    """A ringback tone (default: the French 440 Hz, 1.5 s on, 3.5 s off)."""
    if not (0 < frequency < SAMPLE_RATE / 2 and on > 0 and off >= 0):
        raise MediaError("ringback tone: need 0 < frequency < 4000 Hz, on > 0 and off >= 0")
    n_on = round(on * SAMPLE_RATE)
    t = np.arange(n_on) / SAMPLE_RATE
    burst = 0.3 * np.sin(2 * np.pi * frequency * t) * _envelope(n_on, min(40, n_on // 2 or 1))
    pcm = np.concatenate([burst, np.zeros(round(off * SAMPLE_RATE))])
    return HoldMusic(np.round(pcm * 32767).astype(np.int16), name=f"ringback {frequency:g} Hz")
