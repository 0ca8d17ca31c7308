"""What puts a call on hold in SDP (RFC 3264 §8.4), and our answer to it (media/hold.py)."""

from __future__ import annotations

import pytest

from huntgroup.media.g711 import Codec
from huntgroup.media.hold import answer_in_place, holds
from huntgroup.media.sdp import Answer, Origin, parse_sdp

ORIGIN = Origin("huntgroup", 42, 7, "192.0.2.1")


def sdp(media_lines: str, *, host: str = "198.51.100.7", session: str = "") -> bytes:
    return (
        f"v=0\r\no=phone 1 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"{session}{media_lines}"
    ).encode()


AUDIO = "m=audio 4000 RTP/AVP 0 8\r\n"


@pytest.mark.parametrize(
    ("body", "held"),
    [
        (sdp(AUDIO + "a=sendonly\r\n"), True),
        (sdp(AUDIO + "a=inactive\r\n"), True),
        (sdp(AUDIO, session="a=sendonly\r\n"), True),  # session level: every stream's default
        (sdp(AUDIO + "a=sendrecv\r\n", session="a=sendonly\r\n"), False),  # media level wins
        (sdp(AUDIO, host="0.0.0.0"), True),  # RFC 2543
        (sdp(AUDIO + "a=recvonly\r\n"), False),  # RFC 3264 §8.4: not a hold
        (sdp(AUDIO + "a=sendrecv\r\n"), False),
        (sdp("m=audio 0 RTP/AVP 0\r\na=sendonly\r\n"), False),  # no stream to hold
        (sdp("m=video 5000 RTP/AVP 96\r\na=sendonly\r\n" + AUDIO), False),  # audio decides
    ],
)
def test_what_holds(body: bytes, held: bool) -> None:
    assert holds(parse_sdp(body)) is held


@pytest.mark.parametrize(
    ("body", "direction"),
    [
        (sdp(AUDIO + "a=sendonly\r\n"), "recvonly"),
        (sdp(AUDIO + "a=inactive\r\n"), "inactive"),
        (sdp(AUDIO, host="0.0.0.0"), "recvonly"),
        (sdp(AUDIO + "a=sendrecv\r\n"), "sendrecv"),
        (sdp(AUDIO + "a=recvonly\r\n"), "sendonly"),
    ],
)
def test_the_answer_mirrors_the_offer_from_our_port_under_our_origin(
    body: bytes, direction: str
) -> None:
    answer = answer_in_place(
        parse_sdp(body), local_address="192.0.2.1", local_port=30000, origin=ORIGIN
    )
    assert answer is not None
    audio = answer.sdp.media[0]
    assert audio.direction(answer.sdp.direction) == direction
    assert (audio.port, answer.sdp.origin) == (30000, ORIGIN)
    assert answer.plan.remote_port == 4000


def ours(
    offer: bytes, codecs: tuple[Codec, ...] = (Codec.PCMU, Codec.PCMA), pt: int | None = None
) -> Answer | None:
    return answer_in_place(
        parse_sdp(offer),
        local_address="192.0.2.1",
        local_port=30000,
        origin=ORIGIN,
        codecs=codecs,
        payload_type=pt,
    )


def test_the_codec_in_use_or_none() -> None:
    pcma = sdp("m=audio 4000 RTP/AVP 8\r\na=sendonly\r\n")
    kept = ours(pcma, (Codec.PCMA,), 8)
    assert kept is not None and kept.plan.payload_type == 8
    assert ours(pcma, (Codec.PCMU,)) is None, "the codec in use is gone"
    dynamic = sdp("m=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMA/8000\r\n")
    # the relay passes RTP through: another payload type number is another codec to the peer
    assert ours(dynamic, (Codec.PCMA,), 8) is None
    assert ours(dynamic, (Codec.PCMA,)) is not None
