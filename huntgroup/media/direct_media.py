"""Direct media: once bridged, the phones talk end to end (``server.media.mode: direct``).

Theory of operation
-------------------
A call whose caller's SDP address is vouched for keeps its media end to end
once bridged. Members are offered the caller's own SDP under our ``o=`` line
(:meth:`~huntgroup.media.offer_answer.MediaPlanner.member_offer`). A caller
who never heard our SDP gets the member's answer in its 200
(:meth:`DirectMedia.answer_with_member`); a caller who did (queued with music,
or early media) is re-INVITEd with the member's SDP
(:meth:`DirectMedia.offer_toward`), and the member is re-INVITEd in turn only
if the caller's answer moved its media address
(:meth:`DirectMedia.peer_answered`). Until the caller switches, a relay
carries the caller's audio to the member, then :meth:`DirectMedia.bypass`
gives the call's ports back. A relayed SDP keeps its addresses; only the
``o=`` line is ours (:meth:`DirectMedia._pass_through`). A call whose
caller's SDP address is unverified (behind NAT, say) is relayed as in
``relay`` mode, since only the relay can latch onto the address its packets
really come from.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from huntgroup.errors import ProtocolError
from huntgroup.media.call_media import CallMedia, bump_origin, learn
from huntgroup.media.commands import CloseMedia, MediaCommand
from huntgroup.media.planner_base import PlannerBase
from huntgroup.media.sdp import audio_endpoint, parse_sdp


class DirectMedia(PlannerBase):
    """The direct-media part of the media planner."""

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
        origin = bump_origin(media, toward_caller=toward_caller)
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
        learn(media, sdp, endpoint, from_caller=side == "caller")
        return endpoint != (media.told_member if side == "caller" else media.told_caller)

    def bypass(self, media: CallMedia) -> list[MediaCommand]:
        """Direct mode: both sides talk to each other; stop relaying, give the ports back."""
        if media.closed or media.bypassed:
            return []
        media.bypassed, media.anchored = True, False
        return [CloseMedia(media.session, self._release(media))]

    def _pass_through(self, media: CallMedia, body: bytes, *, from_caller: bool) -> bytes:
        """Direct mode: a relayed SDP keeps its addresses; only the ``o=`` line is ours."""
        try:
            sdp = parse_sdp(body)
        except ProtocolError:
            return body
        origin = bump_origin(media, toward_caller=not from_caller)
        if origin is None:
            return body
        endpoint = audio_endpoint(sdp)
        if from_caller:
            media.caller_sdp, media.told_member = sdp, endpoint
        else:
            media.member_sdp, media.told_caller = sdp, endpoint
        return replace(sdp, origin=origin).to_bytes()
