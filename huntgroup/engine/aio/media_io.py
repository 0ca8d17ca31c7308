"""The asyncio side of media: RTP sockets, hold music pacing and the relay.

Theory of operation
-------------------
The B2BUA decides; this layer only carries out :mod:`huntgroup.media.commands`.
Each call (a *session*) owns at most two non-blocking UDP sockets bound to
the ports the planner allocated: one toward the caller, one toward members.
Reading uses ``loop.add_reader`` (no task per call), writing is a
non-blocking ``sendto`` (a full socket buffer drops the packet, as RTP may).

Hold music goes through ONE :class:`PhasedPacer` for the whole process: one
``loop.call_at`` timer, firing once per phase slot of the 20 ms interval,
sends every due packet of the streams of that slot (see
:mod:`huntgroup.media.pacer`). Per packet, the header is patched into the
stream's own buffer (``RtpStream.write_into``: no packet object, no new
bytes), the shared music frame copied behind it, and the buffer handed to a
plain non-blocking ``sendto`` toward the side the music goes to (the pacer
keeps that side with the stream: no look-up per packet). A session keeps its
:class:`RtpStream`, so sequence numbers and timestamps continue if the music
stops and starts again.

Ports are bound as soon as our SDP names them (``OpenPort``), so nothing sent
to them is lost to a not-yet-bound port. Packets that reach the member port
before a member has won (early media of every rung member) are kept, a few
at most, and the winner's are played out when the relay starts.

Relay: a packet arriving on one side is sent out of the other side's socket.

Hold (``PlayMusic.side``): when one side of a bridged call holds, the music
goes out of the *other* side's port (the member's when the caller holds), the
relay stops (what the holder sends is dropped) and so does the inactivity
watch; a ``StartRelay`` on resume takes over again. The music keeps the
session's one :class:`RtpStream`: one SSRC, sequence numbers and timestamps
that go on from packet to packet.

Latching (docs/security.md, "RTP hijacking"): a side whose SDP address is
vouched for (the command carries no signalling IP for it) is sent to at once
and its packets are taken only from that address (music and relay alike). A
side whose SDP address is unverified (the command carries its signalling IP:
NAT, a SIP ALG, or a forged INVITE naming a victim) is sent NOTHING until it
latches: its first packet from its SDP address, or from its signalling IP on
any port, within ``latch_window`` seconds of the stream starting, fixes the
address it is sent to and taken from. After the window an unlatched side is
never sent anything. A side vouched for only by a source that may be forged
(``PlayMusic.unconfirmed``, ``StartRelay.caller_unconfirmed``: a caller over
UDP) is *held*: sent nothing until a packet from its SDP address latches it
(at any time) or :class:`ConfirmMedia` (its ACK) releases it. A new SDP
address for a side starts over. Datagrams
that are not RTP version 2 are dropped and counted; so are those from any
other address ("strangers"): never relayed, they never move a latch nor
count as the side's liveness.

RTP inactivity: a relay started with ``watch`` notes when each side last
sent; one heap of deadlines (at most one entry per session) and one timer
find a side silent for ``rtp_timeout`` seconds, and ``on_timeout`` reports
:class:`RtpTimedOut` to the driver, which hands it to the B2BUA.

Sockets outlive calls: a port, once used, stays bound with its reader
registered, and the next call given that port by the allocator takes the
socket over (after reading away what was queued on it); at most
``MAX_IDLE_SOCKETS`` idle ones are kept. This saves a socket, a bind, two
epoll changes and a close per port and per call. The bound is above the even
ports of any range: the allocator draws a call's port at random from the
pairs that cooled down longest (media/ports.py), never from the ones just
released, so a smaller pool of the most recently released sockets is almost
never the one asked for, and every leg would pay the socket again. Every
port of ``server.media.rtp_ports`` already has its descriptor set aside
(docs/security.md, "Media keeps its descriptors"), so keeping them all bound
takes nothing signalling could have had.

Invariant: a closed session owns no port and no paced stream; a port is used
by at most one session at a time.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import ipaddress
import logging
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from huntgroup.engine.aio.loop_timer import LoopTimer
from huntgroup.engine.aio.music_library import MusicLibrary
from huntgroup.errors import MediaError
from huntgroup.media.announcements import AnnouncementSource, PlayAnnouncement
from huntgroup.media.commands import (
    CloseMedia,
    ConfirmMedia,
    MediaCommand,
    MediaSide,
    OpenPort,
    PlayMusic,
    RtpTimedOut,
    StartRelay,
)
from huntgroup.media.music import HoldMusic, default_music
from huntgroup.media.pacer import PhasedPacer
from huntgroup.media.rtp import RtpStream

log = logging.getLogger("huntgroup.media")

MAX_IDLE_SOCKETS = 32768
"""Bound RTP sockets kept open between calls, at most (the oldest idle are closed): as
many as there are even ports, so the range's ports stay bound once used."""


@dataclass(slots=True)
class _Side:
    sock: socket.socket
    remote: tuple[str, int] | None = None  # where we send: SDP address (vouched for) or latched
    signalled: tuple[str, int] | None = None  # the address the SDP named
    nat: str | None = None  # SDP address unverified: the signalling IP it may latch from
    window_end: float = 0.0  # until when an unverified side may latch
    latched: bool = False  # the address is fixed
    held: bool = False  # vouched for by a source that may be forged: nothing sent until
    # a packet came from the SDP address or the dialog is confirmed (ConfirmMedia)
    last_rx: float = 0.0  # when it last sent an RTP packet we took
    strangers: int = 0  # packets from other addresses, dropped


@dataclass(slots=True)
class _Session:
    sides: dict[int, _Side] = field(default_factory=dict)  # port -> side
    caller_port: int | None = None
    member_port: int | None = None
    stream: RtpStream | None = None
    music_port: int | None = None  # the port the music goes out of (caller or member side)
    relaying: bool = False
    bridged: bool = False  # a relay started once: the member port's packets are the winner's
    watch: bool = False  # RTP inactivity: both sides of the relay should send
    watch_queued: bool = False  # an entry of the deadline heap is for this session
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
    rtp_timeouts: int = 0  # relayed calls found silent (server.media.rtp_timeout)


class MediaEngine:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        address: str,
        *,
        library: MusicLibrary | None = None,
        rng: random.Random | None = None,
        latch_window: float = 5.0,
        rtp_timeout: float | None = None,
        on_timeout: Callable[[RtpTimedOut], None] | None = None,
    ) -> None:
        self.loop = loop
        self.address = address
        self.latch_window = latch_window
        self.rtp_timeout = rtp_timeout or None  # 0: never
        self.on_timeout = on_timeout
        self.library = library or MusicLibrary()
        self.rng = rng or random.Random()
        self.scheduler: PhasedPacer[str, _Side] = PhasedPacer()
        self.counters = MediaCounters()
        self._sessions: dict[str, _Session] = {}
        self._sockets: dict[int, socket.socket] = {}  # every bound RTP port
        self._owner: dict[int, str] = {}  # port -> session using it
        self._idle: dict[int, None] = {}  # bound ports no session uses, oldest first
        self._timer = LoopTimer(loop, self._tick)
        self._epoch = loop.time()
        # RTP inactivity: (due, session), at most one entry per session (``watch_queued``);
        # a closed session's entry leaves at its due time (at most rtp_timeout later)
        self._deadlines: list[tuple[float, str]] = []
        self._watch_timer = LoopTimer(loop, self._check_inactivity)

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
                    self._bind(session, port)
                    if side == "member":
                        self._sessions[session].member_port = port
                    else:
                        self._sessions[session].caller_port = port
                case ConfirmMedia(session, port):
                    self._confirm(session, port)
                case PlayAnnouncement():
                    self._announce(command)
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
        self._deadlines.clear()
        self._watch_timer.cancel()

    # ------------------------------------------------------------- sockets
    def _bind(self, session: str, port: int) -> _Side:
        state = self._sessions.setdefault(session, _Session())
        side = state.sides.get(port)
        if side is not None:
            return side
        side = _Side(self._socket_for(port))
        state.sides[port] = side
        self._owner[port] = session
        return side

    def _aim(
        self,
        side: _Side,
        remote: tuple[str, int],
        nat: str | None,
        now: float,
        *,
        held: bool = False,
    ) -> None:
        """The side's SDP names ``remote`` (unverified: it signals from ``nat``).

        The same SDP again keeps the latch; a new address starts over: sent to
        the SDP address at once if it is vouched for (``nat`` None) and not
        ``held``, else sent nothing until latched by its first packet (from the
        SDP address, or from ``nat`` on any port, within the window) or, when
        ``held`` only, until :meth:`_confirm`; its silence counted from now.
        """
        if remote == side.signalled and nat == side.nat:
            if side.held and not held:  # confirmed meanwhile: as ConfirmMedia
                self._release_held(side)
            return
        side.signalled, side.nat, side.held = remote, nat, held and nat is None
        # c=0.0.0.0: hold, send nothing; unverified or held: nothing before the latch
        side.remote = None if nat is not None or held or _unspecified(remote[0]) else remote
        side.latched = False
        side.window_end = now + self.latch_window
        side.last_rx = now

    def _accepts(self, side: _Side, source: tuple[str, int], now: float) -> bool:
        """A packet from ``source`` is the side's own (latching it if need be)."""
        if source == side.remote:
            side.latched = True  # it came from there: the address is fixed
            return True
        if side.latched or side.signalled is None:
            return False
        if side.nat is None:  # vouched for: its SDP address alone, at any time
            latch = _same_address(source, side.signalled)
        else:  # unverified: the SDP address or the signalling IP, in the window
            latch = now <= side.window_end and (
                _same_address(source, side.signalled) or _same_host(source[0], side.nat)
            )
        if latch:
            side.remote, side.latched, side.held = source, True, False
        return latch

    def _confirm(self, session: str, port: int) -> None:
        """The caller's dialog is confirmed: a held side may be sent to from now on."""
        state = self._sessions.get(session)
        side = state.sides.get(port) if state is not None else None
        if side is None:
            return
        if side.signalled is None:  # not aimed yet: nothing to release
            side.held = False
        elif side.held:
            self._release_held(side)

    @staticmethod
    def _release_held(side: _Side) -> None:
        side.held = False
        if not side.latched and side.nat is None and side.signalled is not None:
            side.remote = None if _unspecified(side.signalled[0]) else side.signalled

    def _stranger(self, session: str, port: int, side: _Side, source: tuple[str, int]) -> None:
        self.counters.dropped_unexpected_source += 1
        side.strangers += 1
        if side.strangers == 1:  # once per side: a flood must not flood the log
            log.info(
                "media %s: RTP from %s:%d on port %d dropped (expected %s)",
                session,
                *source,
                port,
                f"{side.remote[0]}:{side.remote[1]}" if side.remote else "no address yet",
            )

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

    def _send(self, side: _Side, data: bytes) -> bool:
        """Send ``data`` to the side; False when it has no address (yet) or it failed."""
        if side.remote is None:
            return False
        try:
            side.sock.sendto(data, side.remote)
        except (BlockingIOError, OSError):
            self.counters.send_errors += 1
            return False
        return True

    def _readable(self, session: str, port: int) -> None:
        state = self._sessions.get(session)
        side = state.sides.get(port) if state else None
        if state is None or side is None:
            return
        now = self.loop.time()
        for _ in range(64):  # bounded: never starve the loop
            try:
                data, addr = side.sock.recvfrom(2048)
            except OSError:  # BlockingIOError included: nothing more to read
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                self.counters.dropped_bad_header += 1
                continue
            source = (addr[0], addr[1])
            if not state.bridged and port == state.member_port:
                state.early.append((source, data))  # no member has won yet: keep, don't latch
                continue
            if (source != side.remote or not side.latched) and not self._accepts(side, source, now):
                self._stranger(session, port, side, source)
                continue
            side.last_rx = now
            if not state.relaying:
                continue  # a side talks over the music (queued, or holding): nobody listens
            other_port = state.member_port if port == state.caller_port else state.caller_port
            other = state.sides.get(other_port) if other_port is not None else None
            if other is not None and self._send(other, data):
                self.counters.relayed += 1

    # ------------------------------------------------------------ commands
    def _play(self, cmd: PlayMusic) -> None:
        now = self.loop.time()
        side = self._bind(cmd.session, cmd.port)
        self._aim(side, cmd.remote, cmd.nat, now, held=cmd.unconfirmed)
        state = self._sessions[cmd.session]
        if cmd.side == "member":  # the caller holds: the member hears the music
            state.member_port = cmd.port
        else:
            state.caller_port = cmd.port
        state.music_port = cmd.port
        if state.relaying:  # a hold: the relay stops, and a silent holder ends nothing
            state.relaying = False
            self._watch(cmd.session, state, False, now)
        try:
            music = self.library.get(cmd.music)
        except MediaError as err:
            log.warning("hold music %s unusable, playing the built-in music: %s", cmd.music, err)
            music = default_music()
        if state.stream is None:
            state.stream = RtpStream(None, payload_type=cmd.payload_type, rng=self.rng)
        if cmd.session not in self.scheduler:
            self.scheduler.add(cmd.session, state.stream, side, now=self.loop.time())
        else:  # the music moves to this side (a hold after the queue, a resume...)
            self.scheduler.paced(cmd.session).target = side
        # The shared position is read at the stream's first tick, on the pacer's grid
        # (whatever its phase slot): callers at the same tick hear the same frame.
        first = self.scheduler.frame_time(cmd.session)
        cursor = music.cursor(cmd.codec, now=first, epoch=self._epoch)
        state.stream.set_source(cursor, payload_type=cmd.payload_type)

    def _announce(self, cmd: PlayAnnouncement) -> None:
        """Play ``cmd.clips`` over the session's music (see
        :mod:`huntgroup.media.announcements`): the music pauses, then goes on."""
        state = self._sessions.get(cmd.session)
        if (
            state is None
            or state.stream is None
            or state.relaying
            or state.caller_port != cmd.port
            or cmd.session not in self.scheduler
        ):
            return  # no music plays to this caller any more
        clips: list[HoldMusic] = []
        for path in cmd.clips:
            try:
                clips.append(self.library.get(path))
            except MediaError as err:
                log.warning("announcement %s unusable, skipped: %s", path, err)
        if not clips:
            return
        current = state.stream.source
        if isinstance(current, AnnouncementSource) and current.codec is cmd.codec:
            if current.done:
                current = current.after
            elif not current.append(clips):
                log.info("media %s: announcement dropped, the last one still plays", cmd.session)
                return
            else:
                return
        state.stream.set_source(AnnouncementSource(clips, cmd.codec, current))

    def _relay(self, cmd: StartRelay) -> None:
        now = self.loop.time()
        self.scheduler.remove(cmd.session)
        caller = self._bind(cmd.session, cmd.caller_port)
        member = self._bind(cmd.session, cmd.member_port)
        self._aim(caller, cmd.caller_remote, cmd.caller_nat, now, held=cmd.caller_unconfirmed)
        self._aim(member, cmd.member_remote, cmd.member_nat, now)
        state = self._sessions[cmd.session]
        state.caller_port, state.member_port = cmd.caller_port, cmd.member_port
        state.relaying = state.bridged = True
        state.music_port = None
        for source, data in state.early:  # what the winner said before we were ready
            if self._accepts(member, source, now):  # others: the members who lost
                member.last_rx = now
                if self._send(caller, data):
                    self.counters.relayed += 1
        state.early.clear()
        self._watch(cmd.session, state, cmd.watch and self.rtp_timeout is not None, now)

    # --------------------------------------------------------- inactivity
    def _watch(self, session: str, state: _Session, watch: bool, now: float) -> None:
        """Watch the relay's two streams for silence from now on (or stop)."""
        if watch and not state.watch:  # started, or taken off hold: silence counts from now
            for side in state.sides.values():
                side.last_rx = now
        state.watch = watch
        if watch and not state.watch_queued and self.rtp_timeout is not None:
            state.watch_queued = True
            heapq.heappush(self._deadlines, (now + self.rtp_timeout, session))
        self._watch_timer.arm(self._deadlines[0][0] if self._deadlines else None)

    def _silent(self, state: _Session, now: float) -> tuple[tuple[MediaSide, ...], float]:
        """The sides silent for ``rtp_timeout`` at ``now``, and when the next one may be."""
        assert self.rtp_timeout is not None
        silent: list[MediaSide] = []
        first = now
        sides: tuple[tuple[MediaSide, int | None], ...] = (
            ("caller", state.caller_port),
            ("member", state.member_port),
        )
        for name, port in sides:
            side = state.sides.get(port) if port is not None else None
            if side is None:
                continue
            if side.last_rx + self.rtp_timeout <= now:
                silent.append(name)
            first = min(first, side.last_rx)
        return tuple(silent), first + self.rtp_timeout

    def _check_inactivity(self) -> None:
        now = self.loop.time()
        timed_out: list[RtpTimedOut] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, session = heapq.heappop(self._deadlines)
            state = self._sessions.get(session)
            if state is None:
                continue  # closed meanwhile
            state.watch_queued = False
            if not state.watch or not state.relaying or self.rtp_timeout is None:
                continue  # on hold: _watch queues it again when it is taken off hold
            silent, due = self._silent(state, now)
            if silent:
                state.watch = False  # reported once; the B2BUA closes the session
                self.counters.rtp_timeouts += 1
                timed_out.append(RtpTimedOut(session, silent, self.rtp_timeout))
                continue
            state.watch_queued = True
            heapq.heappush(self._deadlines, (due, session))
        self._watch_timer.arm(self._deadlines[0][0] if self._deadlines else None)
        for fact in timed_out:
            log.info(
                "media %s: no RTP from the %s for %.0f s",
                fact.session,
                " and the ".join(fact.silent),
                fact.after,
            )
            if self.on_timeout is not None:
                self.on_timeout(fact)

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
        """Send what the pacer has due: the hot loop of hold music (one packet per stream
        and tick, about ``max_packets`` per call at most)."""
        sent = errors = 0
        for batch in self.scheduler.take_due(self.loop.time()):
            for paced in batch.streams:
                stream = paced.stream
                if not stream.write_into(paced.buffer):
                    continue  # the source has nothing this tick
                side = paced.target
                remote = side.remote
                if remote is None:  # held, not latched: the first one sent is marked
                    stream.mark()
                    _unsent(stream)
                    continue
                try:
                    side.sock.sendto(paced.buffer, remote)
                except OSError:  # BlockingIOError included: a full buffer drops it
                    errors += 1
                else:
                    sent += 1
        self.counters.music_packets += sent
        self.counters.send_errors += errors
        self._rearm()


def _unsent(stream: RtpStream) -> None:
    """The stream's last frame was not sent: an announcement plays it again (the caller
    must hear it from its start); music goes on (a shared clock)."""
    if isinstance(stream.source, AnnouncementSource):
        stream.source.give_back()


def _same_host(a: str, b: str) -> bool:
    """One IP address, whatever its spelling (IPv6 forms, IPv4-mapped IPv6)."""
    if a == b:
        return True
    try:
        x, y = ipaddress.ip_address(a.split("%", 1)[0]), ipaddress.ip_address(b.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(x, ipaddress.IPv6Address) and x.ipv4_mapped is not None:
        x = x.ipv4_mapped
    if isinstance(y, ipaddress.IPv6Address) and y.ipv4_mapped is not None:
        y = y.ipv4_mapped
    return x == y


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _same_address(a: tuple[str, int], b: tuple[str, int]) -> bool:
    return a[1] == b[1] and _same_host(a[0], b[0])
