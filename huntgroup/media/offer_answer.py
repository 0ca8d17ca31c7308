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
- :class:`~huntgroup.media.announcements.PlayAnnouncement` (emitted by the B2BUA's
  announcements): play audio files over that music, which pauses meanwhile;
- :class:`StartRelay`: relay RTP between the caller port and the member port;
- :class:`CloseMedia`: stop and close the call's sockets; ports go back to
  the allocator here, so none leaks whatever the call's ending.

Latching (RTP hijacking, docs/security.md): the relay takes RTP on a port
only from the address the side's SDP named, and sends there at once, when
that address is vouched for: it is the IP the side's SIP came from and not in
a private network, or the SIP came from a trusted peer. Otherwise
(:func:`~huntgroup.media.nat.unverified_media`: NAT, a SIP ALG, a forged
INVITE naming a victim) the commands carry the side's signalling IP
(``PlayMusic.nat``, ``StartRelay.caller_nat``/``member_nat``): the relay
sends that side nothing until it latches onto its first packet from the SDP
address or from that IP (any port) within ``server.media.latch_window``
seconds; then the latched address is fixed. Each side's signalling IP is
kept, and the judgement made again whenever its SDP address changes.

A UDP source can be forged, so a caller whose INVITE came over UDP from an
untrusted source (``caller_offer(spoofable=True)``) is held even when its SDP
address is vouched for (``PlayMusic.unconfirmed``,
``StartRelay.caller_unconfirmed``): the relay sends it nothing until a packet
came from that address, or until the B2BUA says its dialog is confirmed (its
ACK to our 2xx, which carries our To tag: :meth:`MediaPlanner.confirm` emits
:class:`ConfirmMedia`). Members are never held: we sent them their INVITE.

RTP inactivity: ``StartRelay.watch`` says both streams should flow (relay
mode, neither side's latest SDP on hold), so the relay watches them for
``server.media.rtp_timeout``; when one falls silent, the driver hands the
fact back as :class:`RtpTimedOut` to :meth:`B2BUA.media_timed_out
<huntgroup.engine.b2bua.B2BUA.media_timed_out>`, which ends the call.

With ``server.media.mode: direct`` a call whose caller's SDP address is
vouched for keeps its media end to end once bridged. Members are offered the caller's
own SDP (under our ``o=`` line); a caller who never heard our SDP gets the
member's answer in its 200; a caller who did (queued with music, or early
media) is re-INVITEd with the member's SDP, and the member is re-INVITEd in
turn only if the caller's answer moved its media address. Until the caller
switches, a relay carries the caller's audio to the member, then
:meth:`MediaPlanner.bypass` gives the call's ports back. A call whose
caller's SDP address is unverified (behind NAT, say) is relayed as in
``relay`` mode, since only the relay can latch onto the address its packets
really come from.

Call hold (:mod:`huntgroup.media.hold`): a bridged side's hold or resume
offer is answered by :meth:`MediaPlanner.answer_reoffer` from the port that
side talks to; :meth:`MediaPlanner.set_hold` notes who holds, and
:meth:`MediaPlanner.bridge` then plays the hold music (``PlayMusic.side``) to
the other side instead of relaying, with no inactivity watch. In direct mode
:meth:`MediaPlanner.anchor` takes two ports again for the hold,
:meth:`MediaPlanner.music_offer` and :meth:`MediaPlanner.music_answered`
move the held party onto the music, and ``bypass`` gives the ports back on
resume.

Invariant: every port allocated for a call is released once, by ``bypass``
or by ``close`` (a direct-mode hold allocates again, and ``bypass`` or
``close`` releases again).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from typing import Literal

from huntgroup.errors import ProtocolError, RemoteProtocolError
from huntgroup.media.announcements import PlayAnnouncement
from huntgroup.media.g711 import Codec
from huntgroup.media.hold import answer_in_place
from huntgroup.media.nat import unverified_media
from huntgroup.media.ports import PortAllocator, PortsExhausted
from huntgroup.media.sdp import (
    Connection,
    MediaPlan,
    Origin,
    SessionDescription,
    accept_answer,
    answer_offer,
    audio_endpoint,
    make_offer,
    parse_sdp,
)

MediaSide = Literal["caller", "member"]


@dataclass(frozen=True, slots=True)
class PlayMusic:
    session: str
    port: int
    remote: tuple[str, int]
    codec: Codec
    payload_type: int
    music: str | None  # file path; None = the built-in music
    nat: str | None = None  # the caller's signalling IP when its SDP address is unverified
    # the caller's SDP address is vouched for by a source that may be forged (UDP, not a
    # trusted peer) and its dialog is not confirmed yet: nothing is sent to it before its
    # first packet from there or ConfirmMedia
    unconfirmed: bool = False
    side: MediaSide = "caller"  # who hears it: the caller (queued, or held by the member),
    # or the member (held by the caller); ``port`` is that side's port


@dataclass(frozen=True, slots=True)
class StartRelay:
    """Relay RTP between the two ports; each side is latched onto its SDP address,
    or, when that address is unverified (``*_nat``: its signalling IP), onto its
    first packet from the SDP address or that IP in the latch window, and is sent
    nothing before. ``caller_unconfirmed``: as :attr:`PlayMusic.unconfirmed`.
    ``watch``: both streams should flow (RTP inactivity timeout)."""

    session: str
    caller_port: int
    caller_remote: tuple[str, int]
    member_port: int
    member_remote: tuple[str, int]
    caller_nat: str | None = None
    member_nat: str | None = None
    watch: bool = True
    caller_unconfirmed: bool = False


@dataclass(frozen=True, slots=True)
class ConfirmMedia:
    """The caller's dialog is confirmed (its ACK to our 2xx came, with our To tag that a
    forger never sees): its SDP address, if vouched for, may be sent to from now on."""

    session: str
    port: int


@dataclass(frozen=True, slots=True)
class RtpTimedOut:
    """A fact from the media driver: no RTP came from ``silent`` for ``after`` seconds
    on a watched relay (see :class:`StartRelay`)."""

    session: str
    silent: tuple[MediaSide, ...]
    after: float


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


MediaCommand = PlayMusic | StartRelay | OpenPort | ConfirmMedia | CloseMedia | PlayAnnouncement


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
    # Latching: each side's signalling IP, whether it is a trusted peer, and (``*_nat``)
    # that IP when the side's current SDP address is unverified (it must latch first)
    caller_source: str | None = None
    caller_trusted: bool = False
    caller_nat: str | None = None
    # the caller's SIP source may be forged (UDP, not a trusted peer): until its dialog is
    # confirmed (``caller_confirmed``) or it sent a packet, it is sent nothing
    caller_spoofable: bool = False
    caller_confirmed: bool = False
    member_source: str | None = None
    member_trusted: bool = False
    member_nat: str | None = None
    # server.media.mode: direct (see the module docstring)
    direct: bool = False  # this call's media goes end to end once bridged
    caller_sdp: SessionDescription | None = None  # the caller's latest SDP
    member_sdp: SessionDescription | None = None  # the bridged member's latest SDP
    told_caller: tuple[str, int] | None = None  # the member address the caller was given
    told_member: tuple[str, int] | None = None  # the caller address members were given
    bypassed: bool = False  # ports given back: media flows end to end
    # call hold (media/hold.py): the side whose latest offer holds; the other hears music
    caller_holds: bool = False
    member_holds: bool = False
    hold_music: str | None = None  # the music of the hold (file; None: the built-in music)
    # direct mode: the call is back on our ports while one side holds (see ``anchor``)
    anchored: bool = False
    resuming: MediaSide | None = None  # direct mode: the last resume, relayed end to end
    music_offer_sdp: SessionDescription | None = None  # our offer moving a side onto music
    caller_offer_sdp: SessionDescription | None = None  # our offer to a new caller side


MediaMode = Literal["relay", "direct"]


class MediaPlanner:
    def __init__(
        self,
        address: str,
        port_range: tuple[int, int],
        rng: random.Random,
        *,
        mode: MediaMode = "relay",
        port_rng: random.Random | None = None,
    ) -> None:
        """``port_rng`` draws the RTP ports (default ``rng``): the driver gives a
        ``random.SystemRandom``, tests a seeded generator."""
        self.address = address
        self.mode: MediaMode = mode
        self.ports = PortAllocator(port_range, rng=port_rng or rng)
        self._rng = rng
        self._sessions = itertools.count(1)

    def caller_offer(
        self,
        body: bytes,
        content_type: str | None,
        *,
        source_host: str | None = None,
        trusted: bool = False,
        spoofable: bool = False,
    ) -> CallMedia:
        """Answer a caller's SDP offer; ProtocolError 488/415/400 when we cannot, and
        :class:`PortsExhausted` (a local condition, not the peer's fault) when no RTP
        port is free.

        ``source_host`` is where the INVITE came from, ``trusted`` whether that is
        a trusted peer: a caller whose SDP address is unverified
        (:func:`~huntgroup.media.nat.unverified_media`) must send before it is
        sent anything, and in direct mode its media stays relayed. ``spoofable``:
        that source may be forged (the INVITE came over UDP, not from a trusted
        peer); the caller is then sent nothing until it sent a packet from its SDP
        address or :meth:`confirm` was called (its ACK to our 2xx).
        """
        if not body:
            raise RemoteProtocolError("an INVITE without an SDP offer is not supported", 488)
        if content_type is not None and content_type.split(";")[0].strip().lower() != (
            "application/sdp"
        ):
            raise RemoteProtocolError(f"unsupported body type {content_type}", 415)
        offer = parse_sdp(body)
        port = self.ports.allocate()
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
        endpoint = audio_endpoint(offer)
        unverified = unverified_media(
            endpoint[0] if endpoint else None, source_host, trusted=trusted
        )
        nat = unverified is not None
        return CallMedia(
            session=f"m{next(self._sessions)}",
            caller_port=port,
            caller_answer=str(answer.sdp).encode(),
            caller_plan=answer.plan,
            caller_origin=answer.sdp.origin,
            direct=self.mode == "direct" and endpoint is not None and not nat,
            caller_sdp=offer,
            caller_source=source_host,
            caller_trusted=trusted,
            caller_nat=unverified,
            caller_spoofable=spoofable,
        )

    def member_offer(self, media: CallMedia) -> bytes:
        """Our offer to members: the caller's codec, plus telephone-event.

        In direct mode: the caller's own SDP under our ``o=`` line, so the member
        answers with where it wants the caller's RTP; no port is allocated.
        Otherwise the member port is allocated once: :class:`PortsExhausted` when
        none is free.
        """
        if media.direct and media.caller_sdp is not None:
            if not media.member_offer:
                origin = self._origin()
                sdp = replace(media.caller_sdp, origin=origin)
                media.member_offer, media.member_offer_sdp = sdp.to_bytes(), sdp
                media.member_origin = origin
                media.told_member = audio_endpoint(sdp)
            return media.member_offer
        if media.member_port is None:
            media.member_port = self.ports.allocate()
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

    def rejoin_offer(self, media: CallMedia, previous: CallMedia) -> bytes:
        """Attended transfer: our re-INVITE offer to a member of call ``previous`` who
        joins call ``media``: ``media``'s offer to members (its member port; in direct
        mode its caller's SDP), under the ``o=`` session that member knows from
        ``previous``, one version up (RFC 3264 §8). It is ``media``'s member session
        from now on."""
        self.member_offer(media)
        assert media.member_offer_sdp is not None
        origin = self._bump_origin(previous, toward_caller=False) or self._origin()
        sdp = replace(media.member_offer_sdp, origin=origin)
        media.member_origin = origin
        if media.direct:
            media.told_member = audio_endpoint(sdp)
        return sdp.to_bytes()

    def rejoin_caller_offer(self, media: CallMedia, previous: CallMedia) -> bytes:
        """Attended transfer from the caller's side: our re-INVITE offer to the member of
        call ``previous`` who becomes ``media``'s caller side, under the ``o=`` session
        that member knows from ``previous``, one version up (RFC 3264 §8). Media end to
        end: the bridged member's SDP; else ``media``'s caller port, codec in use."""
        origin = self._bump_origin(previous, toward_caller=False) or self._origin()
        if media.bypassed and media.member_sdp is not None:
            sdp = replace(media.member_sdp, origin=origin)
            media.told_caller = audio_endpoint(sdp)
        else:
            plan = media.caller_plan
            offer = make_offer(
                local_address=self.address,
                local_port=media.caller_port,
                session_id=origin.session_id,
                session_version=origin.session_version,
                codecs=(plan.codec,),
                telephone_event=plan.telephone_event or 101,
            )
            sdp = replace(offer, origin=origin)
            media.told_caller = (self.address, media.caller_port)
        media.caller_origin, media.caller_offer_sdp = origin, sdp
        return sdp.to_bytes()

    def caller_rejoined(
        self, media: CallMedia, body: bytes, *, source_host: str, trusted: bool
    ) -> bool:
        """The new caller side answered :meth:`rejoin_caller_offer` from ``source_host``
        (a member we called: never held back); False when the answer is unusable."""
        offer = media.caller_offer_sdp
        if offer is None or media.closed or not body:
            return False
        try:
            answer = parse_sdp(body)
            endpoint = audio_endpoint(answer)
            if endpoint is None:
                return False
            if media.bypassed:  # passed on end to end: any codec the member offered
                if len(answer.media) != len(offer.media):
                    return False
                plan = _aimed(media.caller_plan, endpoint)
            else:
                plan = accept_answer(offer, answer)
        except ProtocolError:
            return False
        media.caller_source, media.caller_trusted = source_host, trusted
        media.caller_spoofable, media.caller_confirmed = False, True
        media.caller_plan = plan
        self._learn(media, answer, endpoint, from_caller=True)
        return True

    def open_member_port(self, media: CallMedia) -> list[MediaCommand]:
        """Once per call, after ``member_offer``: the command binding the member port."""
        if media.closed or media.member_port is None or media.member_port_open:
            return []
        media.member_port_open = True
        return [OpenPort(media.session, media.member_port, "member")]

    def open_caller_port(self, media: CallMedia) -> list[MediaCommand]:
        """After ``caller_offer``: the command binding the caller port of our answer."""
        return [] if media.closed else [OpenPort(media.session, media.caller_port, "caller")]

    def member_answer(
        self,
        media: CallMedia,
        body: bytes,
        *,
        source_host: str | None = None,
        trusted: bool = False,
    ) -> tuple[str, int] | None:
        """Where the member wants RTP, from its SDP answer; None if unusable.

        ``source_host`` is where the answer came from, ``trusted`` whether that is
        a trusted peer: a member whose SDP address is unverified must send before
        it is sent anything (the relay latches onto it).
        """
        if not body or media.member_offer_sdp is None:
            return None
        try:
            answer = parse_sdp(body)
            endpoint = audio_endpoint(answer)
            media.member_source, media.member_trusted = source_host, trusted
            media.member_nat = unverified_media(
                endpoint[0] if endpoint else None, source_host, trusted=trusted
            )
            if media.direct:  # any codec the caller offered: we only pass it on
                if endpoint is None or len(answer.media) != len(media.member_offer_sdp.media):
                    return None
                media.member_sdp = answer
                media.member_plan = _aimed(media.caller_plan, endpoint)
                return endpoint
            plan = accept_answer(media.member_offer_sdp, answer)
        except ProtocolError:
            return None
        media.member_sdp = answer
        media.member_plan = plan
        return plan.remote_address, plan.remote_port

    def caller_reoffered(self, media: CallMedia, body: bytes) -> bool:
        """The caller sent a new SDP while we alone answer it (queued, not bridged).

        Our answer stays the same; what changes is where the caller wants RTP
        (the music follows it) and, in direct mode, the SDP members are offered.
        True when the caller's media address moved.
        """
        try:
            sdp = parse_sdp(body)
        except ProtocolError:
            return False
        endpoint = audio_endpoint(sdp)
        if endpoint is None or media.closed:
            return False
        plan = media.caller_plan
        moved = endpoint != (plan.remote_address, plan.remote_port)
        self._learn(media, sdp, endpoint, from_caller=True)
        if media.direct:
            media.member_offer = b""  # members rung from now on get the new SDP
        return moved

    # ------------------------------------------------------------ direct media
    def answer_with_member(self, media: CallMedia) -> tuple[bytes, list[MediaCommand]]:
        """Direct mode, caller not answered yet: the member's SDP as our 200's answer.

        The call's ports are given back at once: the media never touches us.
        """
        assert media.member_sdp is not None and media.caller_origin is not None
        sdp = replace(media.member_sdp, origin=media.caller_origin)
        media.told_caller = audio_endpoint(sdp)
        return sdp.to_bytes(), self.bypass(media)

    def offer_toward(self, media: CallMedia, side: Literal["caller", "member"]) -> bytes:
        """Direct mode: the re-INVITE offer giving ``side`` the other side's SDP."""
        toward_caller = side == "caller"
        other = media.member_sdp if toward_caller else media.caller_sdp
        origin = self._bump_origin(media, toward_caller=toward_caller)
        assert other is not None and origin is not None
        sdp = replace(other, origin=origin)
        if toward_caller:
            media.told_caller = audio_endpoint(sdp)
        else:
            media.told_member = audio_endpoint(sdp)
        return sdp.to_bytes()

    def peer_answered(
        self, media: CallMedia, side: Literal["caller", "member"], body: bytes
    ) -> bool | None:
        """Direct mode: ``side`` answered our re-INVITE with ``body``.

        True when its media address is not the one the other side was given (the
        other side must be re-INVITEd), False when both sides agree, None when the
        answer is unusable.
        """
        try:
            sdp = parse_sdp(body) if body else None
        except ProtocolError:
            return None
        endpoint = audio_endpoint(sdp) if sdp is not None else None
        if sdp is None or endpoint is None:
            return None
        self._learn(media, sdp, endpoint, from_caller=side == "caller")
        return endpoint != (media.told_member if side == "caller" else media.told_caller)

    # ---------------------------------------------------------------- call hold
    def answer_reoffer(
        self, media: CallMedia, offer: SessionDescription, side: MediaSide
    ) -> bytes | None:
        """A bridged ``side``'s new offer (a hold, a resume), answered here from the port
        it talks to (see :mod:`huntgroup.media.hold`); None when we cannot (media not
        anchored on our ports, the codec in use gone): the offer is then relayed.

        Relay mode keeps the codec and payload type in use (the relay passes RTP
        through); a direct-mode call anchored for a hold takes any G.711 (what that
        side sends is not passed on). Where the side wants RTP is learnt. The caller
        of this sets the hold (:meth:`set_hold`) and asks :meth:`bridge` what flows.
        """
        toward_caller = side == "caller"
        port = media.caller_port if toward_caller else media.member_port
        plan = media.caller_plan if toward_caller else media.member_plan
        if media.closed or media.bypassed or port is None or plan is None:
            return None
        if media.direct and not media.anchored:
            return None
        mine = media.caller_origin if toward_caller else media.member_origin
        if mine is None:
            return None
        anchored = media.direct
        answer = answer_in_place(
            offer,
            local_address=self.address,
            local_port=port,
            origin=_next_version(mine),
            codecs=(Codec.PCMU, Codec.PCMA) if anchored else (plan.codec,),
            payload_type=None if anchored else plan.payload_type,
        )
        if answer is None:
            return None
        self._bump_origin(media, toward_caller=toward_caller)
        endpoint = (answer.plan.remote_address, answer.plan.remote_port)
        if toward_caller:
            media.caller_plan = answer.plan
        else:
            media.member_plan = answer.plan
        self._learn(media, offer, endpoint, from_caller=toward_caller)
        return answer.sdp.to_bytes()

    @staticmethod
    def set_hold(media: CallMedia, side: MediaSide, holding: bool) -> MediaSide | None:
        """``side``'s latest offer holds (or not); returns the side that alone holds now
        (whose music the other side hears: set ``media.hold_music``), or None."""
        if side == "caller":
            media.caller_holds = holding
        else:
            media.member_holds = holding
        hearing = _hears_music(media)
        if hearing is None:
            return None
        return "member" if hearing == "caller" else "caller"

    def anchor(self, media: CallMedia) -> list[MediaCommand]:
        """Direct mode, media end to end: back onto two ports of ours while a side holds
        (given back by :meth:`bypass` on resume). :class:`PortsExhausted` when none is free."""
        if media.closed or not media.bypassed:
            return []
        caller_port = self.ports.allocate()
        try:
            member_port = self.ports.allocate()
        except PortsExhausted:
            self.ports.release(caller_port)
            raise
        media.caller_port, media.member_port = caller_port, member_port
        media.bypassed, media.anchored = False, True
        return [
            OpenPort(media.session, caller_port, "caller"),
            OpenPort(media.session, member_port, "member"),
        ]

    def music_offer(self, media: CallMedia, side: MediaSide) -> bytes:
        """Direct mode, anchored: the re-INVITE offer moving ``side`` onto our port for
        the music (``a=sendonly``: we only send; G.711)."""
        toward_caller = side == "caller"
        port = media.caller_port if toward_caller else media.member_port
        assert port is not None
        origin = self._bump_origin(media, toward_caller=toward_caller, start=self._origin())
        assert origin is not None
        sdp = replace(
            make_offer(
                local_address=self.address,
                local_port=port,
                session_id=origin.session_id,
                session_version=origin.session_version,
                direction="sendonly",
            ),
            origin=origin,
        )
        media.music_offer_sdp = sdp
        return sdp.to_bytes()

    def music_answered(self, media: CallMedia, side: MediaSide, body: bytes) -> bool:
        """``side`` answered :meth:`music_offer`: where and how it takes the music.
        False when the answer is unusable (it then hears nothing until the resume)."""
        if media.music_offer_sdp is None or media.closed or not media.anchored:
            return False
        try:
            answer = parse_sdp(body)
            plan = accept_answer(media.music_offer_sdp, answer)
        except ProtocolError:
            return False
        endpoint = (plan.remote_address, plan.remote_port)
        if side == "caller":
            media.caller_plan = plan
        else:
            media.member_plan = plan
        self._learn(media, answer, endpoint, from_caller=side == "caller")
        return True

    def bypass(self, media: CallMedia) -> list[MediaCommand]:
        """Direct mode: both sides talk to each other; stop relaying, give the ports back."""
        if media.closed or media.bypassed:
            return []
        media.bypassed, media.anchored = True, False
        return [CloseMedia(media.session, self._release(media))]

    def play_music(
        self, media: CallMedia, music: str | None, side: MediaSide = "caller"
    ) -> list[MediaCommand]:
        """Music to ``side`` from its port (the caller: queued, or held by the member)."""
        if media.closed:
            return []
        if side == "caller":
            plan, port, nat = media.caller_plan, media.caller_port, media.caller_nat
        else:
            if media.member_plan is None or media.member_port is None:
                return []
            plan, port, nat = media.member_plan, media.member_port, media.member_nat
        return [
            PlayMusic(
                media.session,
                port,
                (plan.remote_address, plan.remote_port),
                plan.codec,
                plan.payload_type,
                music,
                nat,
                unconfirmed=side == "caller" and _unconfirmed(media),
                side=side,
            )
        ]

    def confirm(self, media: CallMedia) -> list[MediaCommand]:
        """The caller's dialog is confirmed (its ACK to our 2xx): media may go to it.

        Once per call; a command only when the caller was being held back.
        """
        if media.caller_confirmed or media.closed:
            return []
        media.caller_confirmed = True  # end to end too: a later hold may play it music
        if media.bypassed or not media.caller_spoofable:
            return []
        return [ConfirmMedia(media.session, media.caller_port)]

    def bridge(self, media: CallMedia) -> list[MediaCommand]:
        """Relay the bridged call; in direct mode only until the caller switches."""
        member = media.member_plan
        if media.closed or media.bypassed or member is None:
            return []
        if media.member_port is None:  # direct mode: a port for the interim relay
            try:
                media.member_port = self.ports.allocate()
            except PortsExhausted:
                return []  # no relay meanwhile: the caller's audio waits for the switch
        hearing = _hears_music(media)
        if hearing is not None:  # one side holds: the other hears the music of the hold
            return self.play_music(media, media.hold_music, hearing)
        caller = media.caller_plan
        return [
            StartRelay(
                media.session,
                media.caller_port,
                (caller.remote_address, caller.remote_port),
                media.member_port,
                (member.remote_address, member.remote_port),
                caller_nat=media.caller_nat,
                member_nat=media.member_nat,
                caller_unconfirmed=_unconfirmed(media),
                # direct mode's interim relay: the member sends to the caller, not to us
                watch=not media.direct
                and not media.caller_holds
                and not media.member_holds
                and not on_hold(media.caller_sdp)
                and not on_hold(media.member_sdp),
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
        if media.direct:
            return self._pass_through(media, body, from_caller=from_caller), []
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
        start = replace(sdp.origin, address=self.address, addr_type=ours.addr_type)
        origin = self._bump_origin(media, toward_caller=not from_caller, start=start)
        assert origin is not None
        rewritten = replace(sdp, origin=origin, connection=ours, media=tuple(streams))
        if remote is not None:
            self._learn(media, sdp, remote, from_caller=from_caller)
        elif from_caller:  # no audio port left: nothing flows (the latest SDP says so)
            media.caller_sdp = sdp
        else:
            media.member_sdp = sdp
        return rewritten.to_bytes(), self.bridge(media)

    def _pass_through(self, media: CallMedia, body: bytes, *, from_caller: bool) -> bytes:
        """Direct mode: a relayed SDP keeps its addresses; only the ``o=`` line is ours."""
        try:
            sdp = parse_sdp(body)
        except ProtocolError:
            return body
        origin = self._bump_origin(media, toward_caller=not from_caller)
        if origin is None:
            return body
        endpoint = audio_endpoint(sdp)
        if from_caller:
            media.caller_sdp, media.told_member = sdp, endpoint
        else:
            media.member_sdp, media.told_caller = sdp, endpoint
        return replace(sdp, origin=origin).to_bytes()

    def _bump_origin(
        self, media: CallMedia, *, toward_caller: bool, start: Origin | None = None
    ) -> Origin | None:
        """RFC 3264 §8: toward each peer we keep one ``o=`` session, its version going up
        with each SDP we send; ``start`` when we sent that peer none yet (None: no SDP)."""
        mine = (media.caller_origin if toward_caller else media.member_origin) or start
        if mine is None:
            return None
        origin = _next_version(mine)
        if toward_caller:
            media.caller_origin = origin
        else:
            media.member_origin = origin
        return origin

    def _learn(
        self,
        media: CallMedia,
        sdp: SessionDescription,
        endpoint: tuple[str, int],
        *,
        from_caller: bool,
    ) -> None:
        """A side's new SDP: kept as its latest, and its RTP now goes to ``endpoint``
        (vouched for or not, judged again against the side's signalling IP)."""
        if from_caller:
            media.caller_sdp = sdp
            media.caller_plan = _aimed(media.caller_plan, endpoint)
            media.caller_nat = unverified_media(
                endpoint[0], media.caller_source, trusted=media.caller_trusted
            )
        else:
            media.member_sdp = sdp
            if media.member_plan is not None:
                media.member_plan = _aimed(media.member_plan, endpoint)
            media.member_nat = unverified_media(
                endpoint[0], media.member_source, trusted=media.member_trusted
            )

    def close(self, media: CallMedia) -> list[MediaCommand]:
        if media.closed:
            return []
        media.closed = True
        if media.bypassed:
            return []  # the ports went back when the media went end to end
        return [CloseMedia(media.session, self._release(media))]

    def _release(self, media: CallMedia) -> tuple[int, ...]:
        ports = (media.caller_port,) + ((media.member_port,) if media.member_port else ())
        for port in ports:
            self.ports.release(port)
        return ports

    def _origin(self) -> Origin:
        ours = Connection.for_address(self.address)
        return Origin("huntgroup", self._rng.getrandbits(62), 1, self.address, ours.addr_type)


def on_hold(sdp: SessionDescription | None) -> bool:
    """``sdp`` holds its audio: sendonly, recvonly or inactive, ``c=0.0.0.0``, or no
    audio stream with a port. Such a call's RTP may stop: no inactivity timeout."""
    if sdp is None:
        return False
    for m in sdp.media:
        if m.media != "audio" or m.port == 0:
            continue
        conn = sdp.connection_of(m)
        if conn is not None and conn.is_unspecified:
            return True
        return m.direction(sdp.direction) != "sendrecv"
    return True


def _hears_music(media: CallMedia) -> MediaSide | None:
    """The side that hears the music of a hold: the other side of the one that holds (none
    when neither or both hold: both holding, the relay carries what little they send)."""
    if media.caller_holds == media.member_holds:
        return None
    return "member" if media.caller_holds else "caller"


def _unconfirmed(media: CallMedia) -> bool:
    """The caller's SDP address is vouched for only by a source that may be forged."""
    return media.caller_spoofable and not media.caller_confirmed and media.caller_nat is None


def _aimed(plan: MediaPlan, endpoint: tuple[str, int]) -> MediaPlan:
    """``plan`` with RTP sent to ``endpoint``."""
    return replace(plan, remote_address=endpoint[0], remote_port=endpoint[1])


def _next_version(origin: Origin) -> Origin:
    """RFC 3264 §8: each new offer or answer in a session bumps the ``o=`` version."""
    return replace(origin, session_version=origin.session_version + 1)
