"""The media of a call on hold: our answer to a hold or a resume, and the music.

Theory of operation
-------------------
A bridged side's hold or resume offer (:mod:`huntgroup.media.hold`) is
answered by :meth:`HoldMedia.answer_reoffer` from the port that side talks to;
:meth:`HoldMedia.set_hold` notes who holds, and
:meth:`~huntgroup.media.offer_answer.MediaPlanner.bridge` then plays the hold
music (``PlayMusic.side``) to the other side instead of relaying, with no
inactivity watch. In direct mode :meth:`HoldMedia.anchor` takes two ports
again for the hold, :meth:`HoldMedia.music_offer` and
:meth:`HoldMedia.music_answered` move the held party onto the music, and
:meth:`~huntgroup.media.direct_media.DirectMedia.bypass` gives the ports back
on resume.
"""

from __future__ import annotations

from dataclasses import replace

from huntgroup.errors import ProtocolError
from huntgroup.media.call_media import CallMedia, bump_origin, hears_music, learn, next_version
from huntgroup.media.commands import MediaCommand, MediaSide, OpenPort
from huntgroup.media.direct_media import DirectMedia
from huntgroup.media.g711 import Codec
from huntgroup.media.hold import answer_in_place
from huntgroup.media.ports import PortsExhausted
from huntgroup.media.sdp import SessionDescription, accept_answer, make_offer, parse_sdp


class HoldMedia(DirectMedia):
    """The call-hold part of the media planner."""

    def answer_reoffer(
        self, media: CallMedia, offer: SessionDescription, side: MediaSide
    ) -> bytes | None:
        """A bridged ``side``'s new offer (a hold, a resume), answered here from the port
        it talks to (see :mod:`huntgroup.media.hold`); None when we cannot (media not
        anchored on our ports, the codec in use gone): the offer is then relayed.

        Relay mode keeps the codec and payload type in use (the relay passes RTP
        through); a direct-mode call anchored for a hold takes any G.711 (what that
        side sends is not passed on). Where the side wants RTP is learnt. The caller
        of this sets the hold (:meth:`set_hold`) and asks
        :meth:`~huntgroup.media.offer_answer.MediaPlanner.bridge` what flows.
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
            origin=next_version(mine),
            codecs=(Codec.PCMU, Codec.PCMA) if anchored else (plan.codec,),
            payload_type=None if anchored else plan.payload_type,
        )
        if answer is None:
            return None
        bump_origin(media, toward_caller=toward_caller)
        endpoint = (answer.plan.remote_address, answer.plan.remote_port)
        if toward_caller:
            media.caller_plan = answer.plan
        else:
            media.member_plan = answer.plan
        learn(media, offer, endpoint, from_caller=toward_caller)
        return answer.sdp.to_bytes()

    @staticmethod
    def set_hold(media: CallMedia, side: MediaSide, holding: bool) -> MediaSide | None:
        """``side``'s latest offer holds (or not); returns the side that alone holds now
        (whose music the other side hears: set ``media.hold_music``), or None."""
        if side == "caller":
            media.caller_holds = holding
        else:
            media.member_holds = holding
        hearing = hears_music(media)
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
        origin = bump_origin(media, toward_caller=toward_caller, start=self._origin())
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
        learn(media, answer, endpoint, from_caller=side == "caller")
        return True
