"""One call's media state, and the rules that keep it: our ``o=`` sessions, each
side's latest SDP and whether its address is vouched for.

Theory of operation
-------------------
:class:`CallMedia` is what the planner (:mod:`huntgroup.media.offer_answer`)
knows of one call: its ports, our SDP toward each side, each side's latest SDP
and where its RTP goes, who holds, and in direct mode what each side was told.

Toward each side we keep one ``o=`` session (RFC 3264 §8): every SDP we send
that side bumps its version (:func:`bump_origin`). A side's new SDP is learnt
(:func:`learn`): kept as its latest, its RTP aimed at the new address, and
that address judged again against the side's signalling IP
(:func:`~huntgroup.media.nat.unverified_media`): a side whose address is
unverified must send before it is sent anything.

When exactly one side holds, the other hears the music of the hold
(:func:`hears_music`); when both hold, the relay carries what little they send.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from huntgroup.media.commands import MediaSide
from huntgroup.media.nat import unverified_media
from huntgroup.media.sdp import MediaPlan, Origin, SessionDescription


@dataclass(slots=True, init=False)
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
    # server.media.mode: direct (media/direct_media.py)
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

    def __init__(
        self,
        session: str,
        caller_port: int,
        caller_answer: bytes,
        caller_plan: MediaPlan,
        member_port: int | None = None,
        member_offer: bytes = b"",
        member_offer_sdp: SessionDescription | None = None,
        member_plan: MediaPlan | None = None,
        caller_origin: Origin | None = None,
        member_origin: Origin | None = None,
        member_port_open: bool = False,
        closed: bool = False,
        caller_source: str | None = None,
        caller_trusted: bool = False,
        caller_nat: str | None = None,
        caller_spoofable: bool = False,
        caller_confirmed: bool = False,
        member_source: str | None = None,
        member_trusted: bool = False,
        member_nat: str | None = None,
        direct: bool = False,
        caller_sdp: SessionDescription | None = None,
        member_sdp: SessionDescription | None = None,
        told_caller: tuple[str, int] | None = None,
        told_member: tuple[str, int] | None = None,
        bypassed: bool = False,
        caller_holds: bool = False,
        member_holds: bool = False,
        hold_music: str | None = None,
        anchored: bool = False,
        resuming: MediaSide | None = None,
        music_offer_sdp: SessionDescription | None = None,
        caller_offer_sdp: SessionDescription | None = None,
    ) -> None:
        self.session = session
        self.caller_port = caller_port
        self.caller_answer = caller_answer
        self.caller_plan = caller_plan
        self.member_port = member_port
        self.member_offer = member_offer
        self.member_offer_sdp = member_offer_sdp
        self.member_plan = member_plan
        self.caller_origin = caller_origin
        self.member_origin = member_origin
        self.member_port_open = member_port_open
        self.closed = closed
        self.caller_source = caller_source
        self.caller_trusted = caller_trusted
        self.caller_nat = caller_nat
        self.caller_spoofable = caller_spoofable
        self.caller_confirmed = caller_confirmed
        self.member_source = member_source
        self.member_trusted = member_trusted
        self.member_nat = member_nat
        self.direct = direct
        self.caller_sdp = caller_sdp
        self.member_sdp = member_sdp
        self.told_caller = told_caller
        self.told_member = told_member
        self.bypassed = bypassed
        self.caller_holds = caller_holds
        self.member_holds = member_holds
        self.hold_music = hold_music
        self.anchored = anchored
        self.resuming = resuming
        self.music_offer_sdp = music_offer_sdp
        self.caller_offer_sdp = caller_offer_sdp


MediaMode = Literal["relay", "direct"]


def bump_origin(
    media: CallMedia, *, toward_caller: bool, start: Origin | None = None
) -> Origin | None:
    """RFC 3264 §8: toward each peer we keep one ``o=`` session, its version going up
    with each SDP we send; ``start`` when we sent that peer none yet (None: no SDP)."""
    mine = (media.caller_origin if toward_caller else media.member_origin) or start
    if mine is None:
        return None
    origin = next_version(mine)
    if toward_caller:
        media.caller_origin = origin
    else:
        media.member_origin = origin
    return origin


def learn(
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
        media.caller_plan = aimed(media.caller_plan, endpoint)
        media.caller_nat = unverified_media(
            endpoint[0], media.caller_source, trusted=media.caller_trusted
        )
    else:
        media.member_sdp = sdp
        if media.member_plan is not None:
            media.member_plan = aimed(media.member_plan, endpoint)
        media.member_nat = unverified_media(
            endpoint[0], media.member_source, trusted=media.member_trusted
        )


def hears_music(media: CallMedia) -> MediaSide | None:
    """The side that hears the music of a hold: the other side of the one that holds (none
    when neither or both hold: both holding, the relay carries what little they send)."""
    if media.caller_holds == media.member_holds:
        return None
    return "member" if media.caller_holds else "caller"


def caller_unconfirmed(media: CallMedia) -> bool:
    """The caller's SDP address is vouched for only by a source that may be forged."""
    return media.caller_spoofable and not media.caller_confirmed and media.caller_nat is None


def aimed(plan: MediaPlan, endpoint: tuple[str, int]) -> MediaPlan:
    """``plan`` with RTP sent to ``endpoint``."""
    return replace(plan, remote_address=endpoint[0], remote_port=endpoint[1])


def next_version(origin: Origin) -> Origin:
    """RFC 3264 §8: each new offer or answer in a session bumps the ``o=`` version."""
    return replace(origin, session_version=origin.session_version + 1)
