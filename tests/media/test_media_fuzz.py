"""Fuzzing the media entry points: SDP bodies (parser, offer/answer, the call's media
plan) and RTP packets. Any input is taken or refused with the layer's own error type:
ProtocolError for SDP (400/413/415/488/503), InvalidRtpPacket for RTP; nothing else
leaves the layer. benchmarks/fuzz_deep.py runs the same checks with many more
examples.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.errors import ProtocolError, RemoteProtocolError
from huntgroup.media.offer_answer import MediaPlanner
from huntgroup.media.rtp import InvalidRtpPacket, RtpExtension, RtpPacket
from huntgroup.media.sdp import answer_offer, parse_sdp

SDP_SEED = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    b"m=video 0 RTP/AVP 31\r\n"
)
SDP_SEED_V6 = SDP_SEED.replace(b"IN IP4 192.0.2.10", b"IN IP6 2001:db8::10")
SDP_ALPHABET = b" \r\n=:/-.0123456789abcdefgmostvIPN46RTAV"


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: list[bytes], alphabet: bytes) -> bytes:
    """A seed with a few flips, insertions (any byte), deletions and duplications."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.sampled_from(alphabet + bytes([0, 0x7F, 0x80, 0xC3, 0xFF])))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            end = pos + draw(st.integers(1, 60))
            data[pos:pos] = data[pos:end]
    return bytes(data)


def sdp_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_bytes([SDP_SEED, SDP_SEED_V6], SDP_ALPHABET), st.binary(max_size=400))


def check_sdp(body: bytes) -> None:
    """parse_sdp, answer_offer and the call's media plan raise only ProtocolError."""
    try:
        offer = parse_sdp(body)
    except RemoteProtocolError as exc:
        assert exc.status in (400, 413)
    else:
        try:
            answer_offer(
                offer, local_address="192.0.2.5", local_port=2000, session_id=1, session_version=1
            )
        except RemoteProtocolError as exc:
            assert exc.status in (400, 488)
    for mode in ("relay", "direct"):
        planner = MediaPlanner("192.0.2.5", (20000, 20009), random.Random(1), mode=mode)
        try:
            media = planner.caller_offer(body, "application/sdp", source_host="198.51.100.7")
        except ProtocolError as exc:
            assert 400 <= exc.status < 600
            continue
        planner.open_caller_port(media)
        planner.member_answer(media, body)  # None or an address: never raises
        planner.caller_reoffered(media, body)
        planner.close(media)
        assert planner.ports.in_use == 0


RTP_SEEDS = [
    RtpPacket(0, 1, 160, 0x1234, b"\xff" * 160).to_bytes(),
    RtpPacket(101, 65535, 2**32 - 1, 7, b"\x01\x00\x00\xa0", marker=True).to_bytes(),
    RtpPacket(
        8, 9, 320, 1, b"\xd5" * 40, csrcs=(1, 2), extension=RtpExtension(0xBEDE, b"\0" * 8)
    ).to_bytes(),
    RtpPacket(0, 2, 480, 3, b"\x00" * 20, padding=4).to_bytes(),
]


def rtp_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_bytes(RTP_SEEDS, bytes(range(256))), st.binary(max_size=80))


def check_rtp(data: bytes) -> None:
    """RtpPacket.parse raises only InvalidRtpPacket; what parses serialises back."""
    try:
        packet = RtpPacket.parse(data)
    except InvalidRtpPacket:
        return
    again = RtpPacket.parse(packet.to_bytes())
    assert again == packet


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sdp_inputs())
def test_sdp_bodies_are_taken_or_refused_with_a_protocol_error(body: bytes) -> None:
    check_sdp(body)


@settings(max_examples=500, deadline=None)
@given(rtp_inputs())
def test_rtp_packets_parse_or_raise_invalid_rtp_packet(data: bytes) -> None:
    check_rtp(data)
