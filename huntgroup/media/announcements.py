"""Announcements to a queued caller: the command, and the frame source that plays them.

Theory of operation
-------------------
The B2BUA decides when a waiting caller is told something (a greeting, a
periodic message, their position: :mod:`huntgroup.engine.b2bua.announcements`)
and emits :class:`PlayAnnouncement`: the audio files to play, in order, on the
caller's music stream. The media driver loads each file once (like hold music:
the same 8 kHz cache) and puts an :class:`AnnouncementSource` in front of the
music: the clips are played frame after frame, the last frame of each clip
padded with silence (never the start of the file again), and the music,
paused meanwhile, goes on where it stopped (app_queue interrupts its music in
the same way). The stream is the same RTP stream (same SSRC), so sequence
numbers and timestamps run on across every switch.

A new announcement while one still plays is queued behind it (the greeting,
then the first periodic message), unless more than :data:`MAX_BACKLOG_FRAMES`
are still to play: then it is dropped (a message longer than its period must
not pile up without end).

A frame the driver could not send (the caller is held until its ACK or first
packet: docs/security.md) is given back (:meth:`AnnouncementSource.give_back`),
so a caller never misses the start of its greeting; music frames are not given
back (the music follows a shared clock).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from huntgroup.media.g711 import Codec
from huntgroup.media.music import FRAME_SAMPLES, HoldMusic
from huntgroup.media.rtp import FrameSource

__all__ = ["MAX_BACKLOG_FRAMES", "AnnouncementSource", "PlayAnnouncement", "clip_frames"]

MAX_BACKLOG_FRAMES: Final = 1500
"""30 s of announcement still to play: beyond it, a new announcement is dropped."""


@dataclass(frozen=True, slots=True)
class PlayAnnouncement:
    """Play ``clips`` (audio files, in order) on the music stream of ``session``, sent
    from ``port`` in ``codec``; the music pauses meanwhile and then goes on. Nothing
    happens when that stream no longer plays music (bridged, closed)."""

    session: str
    port: int
    codec: Codec
    clips: tuple[str, ...]


def clip_frames(clip: HoldMusic) -> int:
    """How many 20 ms frames ``clip`` lasts, played once (the last one padded)."""
    return -(-clip.samples // FRAME_SAMPLES)


class AnnouncementSource:
    """Clips played once each, in order, then ``after`` (the paused music) again."""

    __slots__ = ("_clips", "_last_from_clip", "_position", "_silence", "after", "codec")

    def __init__(self, clips: Iterable[HoldMusic], codec: Codec, after: FrameSource | None) -> None:
        self.codec = codec
        self.after = after
        self._clips: deque[HoldMusic] = deque(clips)
        self._position = 0  # the next frame of the first clip
        self._silence = bytes([codec.silence]) * FRAME_SAMPLES
        self._last_from_clip = False

    @property
    def done(self) -> bool:
        """Every clip was played: only the music is left."""
        return not self._clips

    @property
    def backlog(self) -> int:
        """Frames of announcement still to play."""
        return sum(clip_frames(c) for c in self._clips) - self._position

    def append(self, clips: Iterable[HoldMusic]) -> bool:
        """Queue more clips behind those playing; False (dropped) over the backlog."""
        if self.backlog > MAX_BACKLOG_FRAMES:
            return False
        self._clips.extend(clips)
        return True

    def next_frame(self) -> bytes | None:
        while self._clips:
            clip = self._clips[0]
            count = clip_frames(clip)
            if self._position >= count:
                self._clips.popleft()
                self._position = 0
                continue
            frame = clip.frame_at(self._position, self.codec)
            self._position += 1
            if self._position == count:  # the last frame: its tail is silence, not a loop
                played = clip.samples - (count - 1) * FRAME_SAMPLES
                frame = frame[:played] + self._silence[played:]
            self._last_from_clip = True
            return frame
        self._last_from_clip = False
        return self.after.next_frame() if self.after is not None else None

    def give_back(self) -> None:
        """The frame just taken was not sent: play it again next time (clips only)."""
        if self._last_from_clip and self._position > 0:
            self._position -= 1
            self._last_from_clip = False

    def skip(self, count: int) -> None:
        """The driver was late by ``count`` ticks: the clips move on, then the music."""
        while count > 0 and self._clips:
            left = clip_frames(self._clips[0]) - self._position
            if count < left:
                self._position += count
                return
            count -= left
            self._clips.popleft()
            self._position = 0
        if count > 0 and self.after is not None:
            self.after.skip(count)
