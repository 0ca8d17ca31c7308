"""Call hold in SDP (RFC 3264 §8.4): what puts a call on hold, and our answer to it.

Theory of operation
-------------------
A party puts the call on hold with a new offer whose audio stream is
``a=sendonly`` (it was sendrecv) or ``a=inactive`` (it was recvonly), at
media or session level, or in the old RFC 2543 form, a connection address of
``0.0.0.0`` (RFC 3264 §8.4: neither RTP nor RTCP is then sent to it). It
resumes with an offer that is ``sendrecv`` (or ``recvonly``) again.
:func:`holds` reads that from an offer; :func:`on_hold` tells whether a
side's latest SDP, offer or answer, lets its RTP stop (sendonly, recvonly or
inactive, or no audio stream left), so that no inactivity timeout applies.

When the B2BUA answers such an offer itself (its media is anchored on our
ports, see :mod:`huntgroup.media.offer_answer`), :func:`answer_in_place`
writes the answer: the first audio stream, on the port that side already
talks to, with the codec already in use (a relay passes RTP through
unchanged, so the payload type must stay the one the other side knows), and
the mirror of the offer's direction: ``sendonly`` → ``recvonly``,
``inactive`` → ``inactive``, the legacy ``0.0.0.0`` → ``recvonly`` (we send
it nothing), ``sendrecv`` → ``sendrecv``. None when the offer no longer
carries that codec: the B2BUA then relays the offer as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from huntgroup.errors import ProtocolError
from huntgroup.media.g711 import Codec
from huntgroup.media.sdp import Answer, Direction, Origin, SessionDescription, answer_offer

__all__ = ["answer_in_place", "first_audio", "holds", "on_hold"]


def first_audio(sdp: SessionDescription) -> tuple[Direction, bool] | None:
    """The first audio stream of ``sdp`` with a port: its direction (media or session
    level), and whether its connection address is ``0.0.0.0`` / ``::`` (the RFC 2543
    form of hold); None when there is no such stream."""
    for m in sdp.media:
        if m.media != "audio" or m.port == 0:
            continue
        conn = sdp.connection_of(m)
        return m.direction(sdp.direction), conn is not None and conn.is_unspecified
    return None


def holds(sdp: SessionDescription) -> bool:
    """The offer ``sdp`` puts its audio on hold: its first audio stream with a port is
    ``sendonly`` or ``inactive`` (media or session level), or its connection address is
    ``0.0.0.0`` / ``::``. An offer without such a stream does not hold (nothing to play
    music against)."""
    audio = first_audio(sdp)
    return audio is not None and (audio[1] or audio[0] in ("sendonly", "inactive"))


def on_hold(sdp: SessionDescription | None) -> bool:
    """``sdp`` holds its audio: sendonly, recvonly or inactive, ``c=0.0.0.0``, or no
    audio stream with a port. Such a call's RTP may stop: no inactivity timeout."""
    if sdp is None:
        return False
    audio = first_audio(sdp)
    return audio is None or audio[1] or audio[0] != "sendrecv"


def answer_in_place(
    offer: SessionDescription,
    *,
    local_address: str,
    local_port: int,
    origin: Origin,
    codecs: Sequence[Codec] = (Codec.PCMU, Codec.PCMA),
    payload_type: int | None = None,
) -> Answer | None:
    """Our answer to ``offer`` from ``local_port``, under ``origin``; None when the offer
    has no audio stream with one of ``codecs`` (and, if given, that ``payload_type``)."""
    audio = first_audio(offer)
    legacy_hold = audio is not None and audio[1]
    ours: Direction = "recvonly" if legacy_hold else "sendrecv"
    try:
        answer = answer_offer(
            offer,
            local_address=local_address,
            local_port=local_port,
            session_id=origin.session_id,
            session_version=origin.session_version,
            codecs=codecs,
            direction=ours,
            username=origin.username,
        )
    except ProtocolError:
        return None
    if payload_type is not None and answer.plan.payload_type != payload_type:
        return None
    return Answer(replace(answer.sdp, origin=origin), answer.plan)
