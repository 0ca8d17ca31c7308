"""The asyncio side of media: RTP sockets, hold music pacing and the relay.

Theory of operation
-------------------
The B2BUA decides; this layer only carries out :mod:`media_plan` commands.
Each call (a *session*) owns at most two non-blocking UDP sockets bound to
the ports the planner allocated: one toward the caller, one toward members.
Reading uses ``loop.add_reader`` (no task per call), writing is a
non-blocking ``sendto`` (a full socket buffer drops the packet, as RTP may).

Hold music goes through ONE :class:`PacingScheduler` for the whole process:
one ``loop.call_at`` timer sends every due packet of every queued caller.
A session keeps its :class:`RtpStream`, so sequence numbers and timestamps
continue if the music stops and starts again.

Ports are bound as soon as our SDP names them (``OpenPort``), so nothing sent
to them is lost to a not-yet-bound port. Packets that reach the member port
before a member has won (early media of every rung member) are kept, a few
at most, and the winner's are played out when the relay starts.

Relay: a packet arriving on one side is sent out of the other side's socket.
Symmetric RTP (latching): each side is sent to the address its own packets
come from, which crosses NATs; until a side has sent anything, its SDP
address is used. Datagrams that are not RTP version 2, or that come from
another address than the latched one, are dropped and counted.

Sockets outlive calls: a port, once used, stays bound with its reader
registered, and the next call given that port by the allocator takes the
socket over (after reading away what was queued on it); at most
``MAX_IDLE_SOCKETS`` idle ones are kept. This saves a socket, a bind, two
epoll changes and a close per port and per call.

Invariant: a closed session owns no port and no paced stream; a port is used
by at most one session at a time.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from collections import deque
from dataclasses import dataclass, field

from huntgroup.engine.loop_timer import LoopTimer
from huntgroup.engine.media_plan import (
    CloseMedia,
    MediaCommand,
    OpenPort,
    PlayMusic,
    StartRelay,
)
from huntgroup.errors import MediaError
from huntgroup.media.music import MusicLibrary, default_music
from huntgroup.media.rtp import PacingScheduler, RtpStream

log = logging.getLogger("huntgroup.media")

MAX_IDLE_SOCKETS = 1024
"""Bound RTP sockets kept open between calls, at most (the oldest idle are closed)."""


@dataclass(slots=True)
class _Side:
    sock: socket.socket
    remote: tuple[str, int] | None
    latched: bool = False


@dataclass(slots=True)
class _Session:
    sides: dict[int, _Side] = field(default_factory=dict)  # port -> side
    caller_port: int | None = None
    member_port: int | None = None
    stream: RtpStream | None = None
    relaying: bool = False
    # packets from members before the relay starts (the answer's first words)
    early: deque[tuple[tuple[str, int], bytes]] = field(default_factory=lambda: deque(maxlen=8))


@dataclass(slots=True)
class MediaCounters:
    music_packets: int = 0
    relayed: int = 0
    dropped_bad_header: int = 0
    dropped_unexpected_source: int = 0
    dropped_idle: int = 0
    send_errors: int = 0


class MediaEngine:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        address: str,
        *,
        library: MusicLibrary | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.loop = loop
        self.address = address
        self.library = library or MusicLibrary()
        self.rng = rng or random.Random()
        self.scheduler: PacingScheduler[str] = PacingScheduler()
        self.counters = MediaCounters()
        self._sessions: dict[str, _Session] = {}
        self._sockets: dict[int, socket.socket] = {}  # every bound RTP port
        self._owner: dict[int, str] = {}  # port -> session using it
        self._idle: dict[int, None] = {}  # bound ports no session uses, oldest first
        self._timer = LoopTimer(loop, self._tick)
        self._epoch = loop.time()

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def execute(self, command: MediaCommand) -> None:
        try:
            match command:
                case PlayMusic():
                    self._play(command)
                case StartRelay():
                    self._relay(command)
                case OpenPort(session, port, side):
                    self._bind(session, port, None)
                    if side == "member":
                        self._sessions[session].member_port = port
                    else:
                        self._sessions[session].caller_port = port
                case CloseMedia(session, _ports):
                    self._close(session)
        except (OSError, MediaError) as err:
            log.warning("media %s: %s", command.session, err)
        self._rearm()

    def close_all(self) -> None:
        for session in list(self._sessions):
            self._close(session)
        for port in list(self._sockets):
            self._close_socket(port)
        self._idle.clear()
        self._timer.cancel()

    # ------------------------------------------------------------- sockets
    def _bind(self, session: str, port: int, remote: tuple[str, int] | None) -> _Side:
        state = self._sessions.setdefault(session, _Session())
        side = state.sides.get(port)
        if side is not None:
            if remote is not None and not side.latched:
                side.remote = remote
            return side
        side = _Side(self._socket_for(port), remote)
        state.sides[port] = side
        self._owner[port] = session
        return side

    def _socket_for(self, port: int) -> socket.socket:
        """The bound socket of ``port``: kept open between calls, opened on first use.

        Ports stay bound and watched once used (no socket, bind, epoll and close
        per call); what reaches an idle port is read and dropped.
        """
        sock = self._sockets.get(port)
        if sock is not None:
            self._idle.pop(port, None)
            self._drain(sock)
            return sock
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.bind((self.address, port))
        except OSError as err:
            if err.errno != errno.EADDRNOTAVAIL:
                sock.close()
                raise
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        self._sockets[port] = sock
        self.loop.add_reader(sock.fileno(), self._readable_port, port)
        return sock

    def _release_port(self, port: int) -> None:
        self._owner.pop(port, None)
        sock = self._sockets.get(port)
        if sock is None:
            return
        self._idle[port] = None
        while len(self._idle) > MAX_IDLE_SOCKETS:  # the oldest idle ones are closed
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            self._close_socket(oldest)

    def _close_socket(self, port: int) -> None:
        sock = self._sockets.pop(port, None)
        if sock is not None:
            try:
                self.loop.remove_reader(sock.fileno())
            finally:
                sock.close()

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(256):
            try:
                sock.recv(2048)
            except OSError:
                return
            self.counters.dropped_idle += 1

    def _readable_port(self, port: int) -> None:
        session = self._owner.get(port)
        if session is None:
            sock = self._sockets.get(port)
            if sock is not None:
                self._drain(sock)
            return
        self._readable(session, port)

    def _send(self, side: _Side, data: bytes) -> None:
        if side.remote is None:
            return
        try:
            side.sock.sendto(data, side.remote)
        except (BlockingIOError, OSError):
            self.counters.send_errors += 1

    def _readable(self, session: str, port: int) -> None:
        state = self._sessions.get(session)
        side = state.sides.get(port) if state else None
        if state is None or side is None:
            return
        for _ in range(64):  # bounded: never starve the loop
            try:
                data, addr = side.sock.recvfrom(2048)
            except OSError:  # BlockingIOError included: nothing more to read
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                self.counters.dropped_bad_header += 1
                continue
            source = (addr[0], addr[1])
            if not state.relaying and port == state.member_port:
                state.early.append((source, data))  # no member has won yet: keep, don't latch
                continue
            if side.latched and source != side.remote:
                self.counters.dropped_unexpected_source += 1
                continue
            if not side.latched:
                side.remote, side.latched = source, True
            if not state.relaying:
                continue  # the caller talks over the music: nobody listens
            other_port = state.member_port if port == state.caller_port else state.caller_port
            other = state.sides.get(other_port) if other_port is not None else None
            if other is not None:
                self._send(other, data)
                self.counters.relayed += 1

    # ------------------------------------------------------------ commands
    def _play(self, cmd: PlayMusic) -> None:
        self._bind(cmd.session, cmd.port, cmd.remote)
        state = self._sessions[cmd.session]
        state.caller_port = cmd.port
        try:
            music = self.library.get(cmd.music)
        except MediaError as err:
            log.warning("hold music %s unusable, playing the built-in music: %s", cmd.music, err)
            music = default_music()
        if state.stream is None:
            state.stream = RtpStream(None, payload_type=cmd.payload_type, rng=self.rng)
        if cmd.session not in self.scheduler:
            self.scheduler.add(cmd.session, state.stream, now=self.loop.time())
        # The shared position is read at the stream's first tick, on the scheduler's
        # grid: callers who hear the music at the same tick hear the same frame.
        first = self.scheduler.next_tick_time(cmd.session)
        cursor = music.cursor(cmd.codec, now=first, epoch=self._epoch)
        state.stream.set_source(cursor, payload_type=cmd.payload_type)

    def _relay(self, cmd: StartRelay) -> None:
        self.scheduler.remove(cmd.session)
        self._bind(cmd.session, cmd.caller_port, cmd.caller_remote)
        self._bind(cmd.session, cmd.member_port, cmd.member_remote)
        state = self._sessions[cmd.session]
        state.caller_port, state.member_port = cmd.caller_port, cmd.member_port
        state.relaying = True
        member, caller = state.sides[cmd.member_port], state.sides[cmd.caller_port]
        member.remote, member.latched = cmd.member_remote, False
        for source, data in state.early:  # what the winner said before we were ready
            if source == cmd.member_remote:
                member.latched = True
                self._send(caller, data)
                self.counters.relayed += 1
        state.early.clear()

    def _close(self, session: str) -> None:
        self.scheduler.remove(session)
        state = self._sessions.pop(session, None)
        if state is None:
            return
        for port in state.sides:
            self._release_port(port)

    # -------------------------------------------------------------- pacing
    def _rearm(self) -> None:
        self._timer.arm(self.scheduler.get_timer())

    def _tick(self) -> None:
        for session, packet in self.scheduler.handle_timer(now=self.loop.time()):
            state = self._sessions.get(session)
            if state is None or state.caller_port is None:
                continue
            side = state.sides.get(state.caller_port)
            if side is not None:
                self._send(side, packet)
                self.counters.music_packets += 1
        self._rearm()
