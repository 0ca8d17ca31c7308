"""The media plan of the B2BUA: SDP offer/answer, and the media commands it emits.

Theory of operation
-------------------
Media is anchored on the engine. Each call gets one RTP port toward the
caller (the port of our SDP answer) and, once a member is rung, one port
toward members (the port of our SDP offer; every leg of the call offers the
same port, since only one member can win). The planner is sans-I/O: it
allocates ports from ``server.media.rtp_ports``, writes and reads SDP, and
returns commands (:mod:`~huntgroup.media.commands`) that the asyncio media
layer carries out: open a port, play the hold music to a side, relay between
the caller port and the member port, confirm the caller, close. Ports go back
to the allocator when the call's media closes, so none leaks whatever the
call's ending.

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
:class:`~huntgroup.media.commands.ConfirmMedia`). Members are never held: we
sent them their INVITE.

RTP inactivity: ``StartRelay.watch`` says both streams should flow (relay
mode, neither side's latest SDP on hold), so the relay watches them for
``server.media.rtp_timeout``; when one falls silent, the driver hands the
fact back as :class:`~huntgroup.media.commands.RtpTimedOut` to
:meth:`B2BUA.media_timed_out <huntgroup.engine.b2bua.B2BUA.media_timed_out>`,
which ends the call.

With ``server.media.mode: direct`` a call whose caller's SDP address is
vouched for keeps its media end to end once bridged
(:mod:`~huntgroup.media.direct_media`). Call hold, in either mode, is
:mod:`~huntgroup.media.hold_media`. The planner is one object,
:class:`MediaPlanner`, made of those parts in one line of
single inheritance (``MediaPlanner(HoldMedia)``, ``HoldMedia(DirectMedia)``,
``DirectMedia(PlannerBase)``: mypyc compiles only single inheritance to native
classes, docs/performance.md) over
:class:`~huntgroup.media.planner_base.PlannerBase` (the address, the ports,
our ``o=`` sessions); a call's media state is
:class:`~huntgroup.media.call_media.CallMedia`, and the commands are
:mod:`~huntgroup.media.commands`.

Invariant: every port allocated for a call is released once, by ``bypass``
or by ``close`` (a direct-mode hold allocates again, and ``bypass`` or
``close`` releases again).
"""

from __future__ import annotations

from dataclasses import replace

from huntgroup.errors import ProtocolError, RemoteProtocolError
from huntgroup.media.call_media import (
    CallMedia,
    aimed,
    bump_origin,
    caller_unconfirmed,
    hears_music,
    learn,
)
from huntgroup.media.commands import (
    CloseMedia,
    ConfirmMedia,
    MediaCommand,
    MediaSide,
    OpenPort,
    PlayMusic,
    StartRelay,
)
from huntgroup.media.hold import on_hold
from huntgroup.media.hold_media import HoldMedia
from huntgroup.media.nat import unverified_media
from huntgroup.media.ports import PortsExhausted
from huntgroup.media.sdp import (
    Connection,
    accept_answer,
    answer_offer,
    audio_endpoint,
    make_offer,
    parse_sdp,
)


class MediaPlanner(HoldMedia):
    """The media plan of every call of one B2BUA (see the module docstring)."""

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
        origin = bump_origin(previous, toward_caller=False) or self._origin()
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
        origin = bump_origin(previous, toward_caller=False) or self._origin()
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
                plan = aimed(media.caller_plan, endpoint)
            else:
                plan = accept_answer(offer, answer)
        except ProtocolError:
            return False
        media.caller_source, media.caller_trusted = source_host, trusted
        media.caller_spoofable, media.caller_confirmed = False, True
        media.caller_plan = plan
        learn(media, answer, endpoint, from_caller=True)
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
                media.member_plan = aimed(media.caller_plan, endpoint)
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
        learn(media, sdp, endpoint, from_caller=True)
        if media.direct:
            media.member_offer = b""  # members rung from now on get the new SDP
        return moved

    def play_music(
        self, media: CallMedia, music: str | None, side: MediaSide = "caller"
    ) -> list[MediaCommand]:
        """Music to ``side`` from its port (the caller: queued, or held by the member).
        Nothing once the media went end to end (direct mode): the ports went back to the
        allocator and may be another call's; the call must be anchored again first."""
        if media.closed or media.bypassed:
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
                unconfirmed=side == "caller" and caller_unconfirmed(media),
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
        hearing = hears_music(media)
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
                caller_unconfirmed=caller_unconfirmed(media),
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
        origin = bump_origin(media, toward_caller=not from_caller, start=start)
        assert origin is not None
        rewritten = replace(sdp, origin=origin, connection=ours, media=tuple(streams))
        if remote is not None:
            learn(media, sdp, remote, from_caller=from_caller)
        elif from_caller:  # no audio port left: nothing flows (the latest SDP says so)
            media.caller_sdp = sdp
        else:
            media.member_sdp = sdp
        return rewritten.to_bytes(), self.bridge(media)

    def close(self, media: CallMedia) -> list[MediaCommand]:
        if media.closed:
            return []
        media.closed = True
        if media.bypassed:
            return []  # the ports went back when the media went end to end
        return [CloseMedia(media.session, self._release(media))]
