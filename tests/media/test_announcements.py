"""The announcement player: clips once each, the last frame padded with silence, the music
paused meanwhile, one RTP stream across every switch (continuous sequence and timestamps)."""

from __future__ import annotations

import itertools
import random

import numpy as np

from huntgroup.media import g711
from huntgroup.media.announcements import MAX_BACKLOG_FRAMES, AnnouncementSource, clip_frames
from huntgroup.media.g711 import Codec
from huntgroup.media.music import FRAME_SAMPLES, HoldMusic
from huntgroup.media.rtp import RtpPacket, RtpStream


def clip(samples: int, value: int, name: str) -> HoldMusic:
    return HoldMusic(np.full(samples, value, dtype=np.int16), name=name)


def code(value: int, codec: Codec = Codec.PCMU) -> int:
    return g711.encode(np.array([value], dtype=np.int16), codec)[0]


class Counter:
    """A music source whose frames say their own index (to see where it paused)."""

    def __init__(self) -> None:
        self.index = 0

    def next_frame(self) -> bytes:
        frame = self.index.to_bytes(4, "big") * (FRAME_SAMPLES // 4)
        self.index += 1
        return frame

    def skip(self, count: int) -> None:
        self.index += count


def test_clip_frames_round_up() -> None:
    assert clip_frames(clip(160, 1, "a")) == 1
    assert clip_frames(clip(161, 1, "a")) == 2
    assert clip_frames(clip(1, 1, "a")) == 1


def test_clips_play_once_in_order_the_last_frame_padded_then_the_music_resumes() -> None:
    music = Counter()
    music.index = 7  # the music had played 7 frames
    a, b = clip(200, 1000, "a"), clip(160, -1000, "b")
    source = AnnouncementSource([a, b], Codec.PCMU, music)
    frames = [source.next_frame() for _ in range(5)]
    assert all(f is not None and len(f) == FRAME_SAMPLES for f in frames)
    assert frames[0] == bytes([code(1000)]) * 160
    silence = Codec.PCMU.silence
    assert frames[1] == bytes([code(1000)]) * 40 + bytes([silence]) * 120, "no loop back"
    assert frames[2] == bytes([code(-1000)]) * 160
    assert frames[3] == (7).to_bytes(4, "big") * 40, "the music goes on where it paused"
    assert frames[4] == (8).to_bytes(4, "big") * 40
    assert source.done and source.backlog == 0


def test_pcma_codec_is_used() -> None:
    source = AnnouncementSource([clip(160, 3000, "a")], Codec.PCMA, None)
    assert source.next_frame() == bytes([code(3000, Codec.PCMA)]) * 160
    assert source.next_frame() is None


def test_a_frame_given_back_is_played_again_music_is_not() -> None:
    music = Counter()
    source = AnnouncementSource([clip(320, 1000, "a")], Codec.PCMU, music)
    first = source.next_frame()
    source.give_back()  # not sent: the caller is held until its ACK
    assert source.next_frame() == first
    assert source.backlog == 1
    source.next_frame()
    source.next_frame()  # music frame 0
    source.give_back()
    assert source.next_frame() == (1).to_bytes(4, "big") * 40, "music follows its own clock"


def test_skip_moves_through_clips_then_the_music() -> None:
    music = Counter()
    source = AnnouncementSource([clip(480, 1, "a"), clip(320, 2, "b")], Codec.PCMU, music)
    source.skip(2)
    assert source.backlog == 3
    source.skip(4)  # the 3 clip frames left, then one music frame
    assert source.done
    assert source.next_frame() == (1).to_bytes(4, "big") * 40


def test_append_queues_behind_and_refuses_past_the_backlog() -> None:
    source = AnnouncementSource([clip(160, 1, "a")], Codec.PCMU, None)
    assert source.append([clip(160, 2, "b")])
    assert [source.next_frame(), source.next_frame()] == [
        bytes([code(1)]) * 160,
        bytes([code(2)]) * 160,
    ]
    long = clip(FRAME_SAMPLES * (MAX_BACKLOG_FRAMES + 1), 3, "long")
    assert source.append([long])
    assert not source.append([clip(160, 4, "c")]), "more than 30 s still to play"


def test_rtp_sequence_and_timestamps_run_on_across_music_clip_music() -> None:
    rng = random.Random(5)
    music = HoldMusic(np.arange(1600, dtype=np.int16), name="music").cursor(
        Codec.PCMU, now=0.0, epoch=0.0
    )
    stream = RtpStream(music, payload_type=0, rng=rng)
    packets = [RtpPacket.parse(stream.tick() or b"") for _ in range(3)]
    stream.set_source(AnnouncementSource([clip(300, 500, "g")], Codec.PCMU, stream.source))
    packets += [RtpPacket.parse(stream.tick() or b"") for _ in range(4)]
    ssrcs = {p.ssrc for p in packets}
    assert len(ssrcs) == 1
    for before, after in itertools.pairwise(packets):
        assert after.sequence == (before.sequence + 1) % 65536
        assert after.timestamp == (before.timestamp + 160) % 2**32
    assert packets[3].marker, "the announcement starts a talkspurt"
    assert packets[3].payload == bytes([code(500)]) * 160
    # after the 2 frames of the clip, the music frame 3 (where it paused)
    expected = HoldMusic(np.arange(1600, dtype=np.int16), name="m").frame_at(3, Codec.PCMU)
    assert packets[5].payload == expected
