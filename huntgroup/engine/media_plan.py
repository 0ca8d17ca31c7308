"""Media decisions of the B2BUA: SDP offer/answer and the media commands it emits.

Theory of operation
-------------------
Media is anchored on the engine. Each call gets one RTP port toward the
caller (the port of our SDP answer) and, once a member is rung, one port
toward members (the port of our SDP offer; every leg of the call offers the
same port, since only one member can win). The planner is sans-I/O: it
allocates ports from ``server.media.rtp_ports``, writes and reads SDP, and
returns commands that the asyncio media layer carries out:

- :class:`PlayMusic`: send the hold music from the caller port;
- :class:`StartRelay`: relay RTP between the caller port and the member port
  (symmetric RTP: each side is sent to where its packets come from);
- :class:`CloseMedia`: stop and close the call's sockets; ports go back to
  the allocator here, so none leaks whatever the call's ending.

Invariant: every port allocated for a call is released by ``close``, once.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from typing import Literal

from huntgroup.errors import MediaError, ProtocolError, RemoteProtocolError
from huntgroup.media.g711 import Codec
from huntgroup.media.ports import PortAllocator
from huntgroup.media.sdp import (
    Connection,
    MediaPlan,
    Origin,
    SessionDescription,
    accept_answer,
    answer_offer,
    make_offer,
    parse_sdp,
)


@dataclass(frozen=True, slots=True)
class PlayMusic:
    session: str
    port: int
    remote: tuple[str, int]
    codec: Codec
    payload_type: int
    music: str | None  # file path; None = the built-in music


@dataclass(frozen=True, slots=True)
class StartRelay:
    session: str
    caller_port: int
    caller_remote: tuple[str, int]
    member_port: int
    member_remote: tuple[str, int]


@dataclass(frozen=True, slots=True)
class OpenPort:
    """Bind a port as soon as our SDP names it (to the caller, or to members), so
    the first packets sent to it are never lost before music or relay start."""

    session: str
    port: int
    side: Literal["caller", "member"]


@dataclass(frozen=True, slots=True)
class CloseMedia:
    session: str
    ports: tuple[int, ...]


MediaCommand = PlayMusic | StartRelay | OpenPort | CloseMedia


@dataclass(slots=True)
class CallMedia:
    """The media state of one call."""

    session: str
    caller_port: int
    caller_answer: bytes
    caller_plan: MediaPlan
    member_port: int | None = None
    member_offer: bytes = b""
    member_offer_sdp: SessionDescription | None = None
    member_plan: MediaPlan | None = None
    caller_origin: Origin | None = None  # our o= line toward the caller
    member_origin: Origin | None = None  # our o= line toward members
    member_port_open: bool = False
    closed: bool = False


class MediaPlanner:
    def __init__(self, address: str, port_range: tuple[int, int], rng: random.Random) -> None:
        self.address = address
        self.ports = PortAllocator(port_range)
        self._rng = rng
        self._sessions = itertools.count(1)

    def caller_offer(self, body: bytes, content_type: str | None) -> CallMedia:
        """Answer a caller's SDP offer; ProtocolError 488/415/400/503 when we cannot."""
        if not body:
            raise RemoteProtocolError("an INVITE without an SDP offer is not supported", 488)
        if content_type is not None and content_type.split(";")[0].strip().lower() != (
            "application/sdp"
        ):
            raise RemoteProtocolError(f"unsupported body type {content_type}", 415)
        offer = parse_sdp(body)
        port = self._allocate()
        try:
            answer = answer_offer(
                offer,
                local_address=self.address,
                local_port=port,
                session_id=self._rng.getrandbits(62),
                session_version=1,
            )
        except ProtocolError:
            self.ports.release(port)
            raise
        return CallMedia(
            session=f"m{next(self._sessions)}",
            caller_port=port,
            caller_answer=str(answer.sdp).encode(),
            caller_plan=answer.plan,
            caller_origin=answer.sdp.origin,
        )

    def member_offer(self, media: CallMedia) -> bytes:
        """Our offer to members: the caller's codec, plus telephone-event."""
        if media.member_port is None:
            media.member_port = self._allocate()
            sdp = make_offer(
                local_address=self.address,
                local_port=media.member_port,
                session_id=self._rng.getrandbits(62),
                session_version=1,
                codecs=(media.caller_plan.codec,),
                telephone_event=media.caller_plan.telephone_event or 101,
            )
            media.member_offer = sdp.to_bytes()
            media.member_offer_sdp = sdp
            media.member_origin = sdp.origin
        return media.member_offer

    def open_member_port(self, media: CallMedia) -> list[MediaCommand]:
        """Once per call, after ``member_offer``: the command binding the member port."""
        if media.closed or media.member_port is None or media.member_port_open:
            return []
        media.member_port_open = True
        return [OpenPort(media.session, media.member_port, "member")]

    def open_caller_port(self, media: CallMedia) -> list[MediaCommand]:
        """After ``caller_offer``: the command binding the caller port of our answer."""
        return [] if media.closed else [OpenPort(media.session, media.caller_port, "caller")]

    def member_answer(self, media: CallMedia, body: bytes) -> tuple[str, int] | None:
        """Where the member wants RTP, from its SDP answer; None if unusable."""
        if not body or media.member_offer_sdp is None:
            return None
        try:
            plan = accept_answer(media.member_offer_sdp, parse_sdp(body))
        except ProtocolError:
            return None
        media.member_plan = plan
        return plan.remote_address, plan.remote_port

    def play_music(self, media: CallMedia, music: str | None) -> list[MediaCommand]:
        plan = media.caller_plan
        if media.closed:
            return []
        return [
            PlayMusic(
                media.session,
                media.caller_port,
                (plan.remote_address, plan.remote_port),
                plan.codec,
                plan.payload_type,
                music,
            )
        ]

    def bridge(self, media: CallMedia) -> list[MediaCommand]:
        member = media.member_plan
        if media.closed or member is None or media.member_port is None:
            return []
        caller = media.caller_plan
        return [
            StartRelay(
                media.session,
                media.caller_port,
                (caller.remote_address, caller.remote_port),
                media.member_port,
                (member.remote_address, member.remote_port),
            )
        ]

    def rewrite(
        self, media: CallMedia, body: bytes, *, from_caller: bool
    ) -> tuple[bytes, list[MediaCommand]]:
        """Anchor a relayed SDP (re-INVITE, UPDATE, or their answers) on our ports.

        The sender's new RTP address is taken from ``body``; the SDP that goes on
        names our address and the port facing the receiver, so media keeps flowing
        through the relay. An SDP we cannot parse is passed on unchanged.
        """
        toward = media.member_port if from_caller else media.caller_port
        if media.closed or toward is None:
            return body, []
        try:
            sdp = parse_sdp(body)
            ours = Connection.for_address(self.address)
        except ProtocolError:
            return body, []
        streams = []
        remote: tuple[str, int] | None = None
        for m in sdp.media:
            if m.media == "audio" and m.port != 0 and remote is None:
                conn = sdp.connection_of(m)
                if conn is not None:
                    remote = (conn.address.split("/", 1)[0], m.port)
                m = replace(m, port=toward, connection=None)
            streams.append(m)
        # RFC 3264 §8: toward each peer we keep one o= session, its version going up
        mine = media.member_origin if from_caller else media.caller_origin
        if mine is None:
            mine = replace(sdp.origin, address=self.address, addr_type=ours.addr_type)
        origin = replace(mine, session_version=mine.session_version + 1)
        if from_caller:
            media.member_origin = origin
        else:
            media.caller_origin = origin
        rewritten = replace(sdp, origin=origin, connection=ours, media=tuple(streams))
        if remote is not None:
            if from_caller:
                media.caller_plan = replace(
                    media.caller_plan, remote_address=remote[0], remote_port=remote[1]
                )
            elif media.member_plan is not None:
                media.member_plan = replace(
                    media.member_plan, remote_address=remote[0], remote_port=remote[1]
                )
        return rewritten.to_bytes(), self.bridge(media)

    def close(self, media: CallMedia) -> list[MediaCommand]:
        if media.closed:
            return []
        media.closed = True
        ports = [media.caller_port] + ([media.member_port] if media.member_port else [])
        for port in ports:
            self.ports.release(port)
        return [CloseMedia(media.session, tuple(ports))]

    def _allocate(self) -> int:
        try:
            return self.ports.allocate()
        except MediaError as err:
            raise RemoteProtocolError(f"no RTP port free: {err}", 503) from err
