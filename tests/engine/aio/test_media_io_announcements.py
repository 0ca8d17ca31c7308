"""MediaEngine plays PlayAnnouncement over a caller's music: nothing of it is lost while the
caller is held back (unconfirmed UDP source), and it is ignored where no music plays."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import numpy as np
import soundfile as sf

from huntgroup.engine.aio.media_io import MediaEngine
from huntgroup.media.announcements import AnnouncementSource, PlayAnnouncement
from huntgroup.media.commands import ConfirmMedia, OpenPort, PlayMusic, StartRelay
from huntgroup.media.g711 import Codec
from huntgroup.media.music import HoldMusic
from huntgroup.media.rtp import RtpPacket
from tests.engine.aio.test_media_io_sockets import free_even_port
from tests.support.waiting import async_wait_until


def tone(path: Path, hz: float, seconds: float) -> Path:
    t = np.arange(round(seconds * 8000)) / 8000
    sf.write(os.fspath(path), 0.3 * np.sin(2 * np.pi * hz * t), 8000, subtype="PCM_16")
    return path


def frames_of(path: Path, codec: Codec) -> list[bytes]:
    data, _ = sf.read(os.fspath(path), dtype="int16")
    source = AnnouncementSource([HoldMusic(np.asarray(data), name="x")], codec, None)
    out: list[bytes] = []
    while (frame := source.next_frame()) is not None:
        out.append(frame)
    return out


def caller_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket, into: list[RtpPacket]) -> None:
    while True:
        try:
            into.append(RtpPacket.parse(sock.recv(2048)))
        except BlockingIOError:
            return


def test_a_held_back_caller_hears_its_greeting_from_the_start(tmp_path: Path) -> None:
    greeting = tone(tmp_path / "greeting.wav", 1000, 0.2)
    expected = frames_of(greeting, Codec.PCMU)

    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1")
        port = free_even_port()
        caller = caller_socket()
        got: list[RtpPacket] = []
        try:
            remote = caller.getsockname()
            engine.execute(OpenPort("s1", port, "caller"))
            engine.execute(PlayMusic("s1", port, remote, Codec.PCMU, 0, None, unconfirmed=True))
            engine.execute(PlayAnnouncement("s1", port, Codec.PCMU, (os.fspath(greeting),)))
            await asyncio.sleep(0.3)  # the behaviour: fifteen frames due while held back
            drain(caller, got)
            assert got == []
            engine.execute(ConfirmMedia("s1", port))  # its ACK
            await async_wait_until(
                lambda: drain(caller, got) or len(got) >= len(expected) + 3, timeout=10
            )
            assert [p.payload for p in got[: len(expected)]] == expected
            assert got[0].marker
        finally:
            engine.close_all()
            caller.close()

    asyncio.run(scenario())


def test_an_announcement_where_no_music_plays_is_ignored(tmp_path: Path) -> None:
    greeting = tone(tmp_path / "greeting.wav", 1000, 0.2)

    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1")
        caller_port, member_port = free_even_port(), free_even_port() + 2
        a, b = caller_socket(), caller_socket()
        try:
            engine.execute(PlayAnnouncement("nobody", caller_port, Codec.PCMU, ("/x.wav",)))
            assert engine.sessions == 0
            engine.execute(
                StartRelay("s1", caller_port, a.getsockname(), member_port, b.getsockname())
            )
            engine.execute(PlayAnnouncement("s1", caller_port, Codec.PCMU, (str(greeting),)))
            assert len(engine.scheduler) == 0, "a bridged caller gets no announcement"
        finally:
            engine.close_all()
            a.close()
            b.close()

    asyncio.run(scenario())


def test_an_unusable_clip_is_skipped_and_the_music_plays_on(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF nonsense")
    good = tone(tmp_path / "good.wav", 1500, 0.1)

    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1")
        port = free_even_port()
        caller = caller_socket()
        try:
            engine.execute(PlayMusic("s1", port, caller.getsockname(), Codec.PCMA, 8, None))
            engine.execute(PlayAnnouncement("s1", port, Codec.PCMA, (str(broken),)))
            stream = engine.scheduler.stream("s1")
            assert not isinstance(stream.source, AnnouncementSource)
            engine.execute(PlayAnnouncement("s1", port, Codec.PCMA, (str(broken), str(good))))
            assert isinstance(stream.source, AnnouncementSource)
            assert stream.source.backlog == len(frames_of(good, Codec.PCMA))
        finally:
            engine.close_all()
            caller.close()

    asyncio.run(scenario())
