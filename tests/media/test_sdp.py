"""SDP parsing/serialising and G.711 offer/answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huntgroup.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from huntgroup.media.g711 import Codec
from huntgroup.media.sdp import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpNotAcceptable,
    SdpSyntaxError,
    SessionDescription,
    accept_answer,
    answer_offer,
    make_offer,
    parse_sdp,
)

HEAD = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n"
HC = "v=0\no=- 1 1 IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\n"
HM = HC + "m=audio 4000 RTP/AVP 0\n"

SOFTPHONE_OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    "s=Talk\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "b=AS:80\r\n"
    "t=0 0\r\n"
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"
    "m=audio 7078 RTP/AVP 96 8 0 101 97\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 useinbandfec=1\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=rtpmap:97 telephone-event/48000\r\n"
    "a=ptime:20\r\n"
    "m=video 9078 RTP/AVP 103\r\n"
    "a=rtpmap:103 VP8/90000\r\n"
)


def _answer(offer: str | bytes, **kwargs: object) -> tuple[SessionDescription, object]:
    result = answer_offer(
        parse_sdp(offer),
        local_address="203.0.113.5",
        local_port=20000,
        session_id=42,
        session_version=1,
        **kwargs,  # type: ignore[arg-type]
    )
    return result.sdp, result.plan


def test_parse_softphone_offer() -> None:
    sdp = parse_sdp(SOFTPHONE_OFFER.encode())
    assert sdp.origin == Origin("alice", 2890844526, 2890844526, "192.0.2.10")
    assert sdp.session_name == "Talk"
    assert sdp.connection == Connection("192.0.2.10", "IP4")
    assert sdp.bandwidths == ("AS:80",)
    assert sdp.times == ((0, 0),)
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 7078, "RTP/AVP")
    assert audio.formats == ("96", "8", "0", "101", "97")
    assert audio.rtpmaps()[96] == RtpMap(96, "opus", 48000, 2)
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp(8) is None
    assert audio.ptime == 20
    assert audio.direction() == "sendrecv"
    assert audio.codecs() == [(8, Codec.PCMA), (0, Codec.PCMU)]
    assert audio.telephone_event() == 101  # not the 48 kHz one
    assert video.media == "video"
    assert sdp.connection_of(video) == sdp.connection


def test_answer_picks_the_first_g711_codec_of_the_offer() -> None:
    answer, plan = _answer(SOFTPHONE_OFFER)
    text = str(answer)
    assert text == (
        "v=0\r\n"
        "o=huntgroup 42 1 IN IP4 203.0.113.5\r\n"
        "s=-\r\n"
        "c=IN IP4 203.0.113.5\r\n"
        "t=0 0\r\n"
        "m=audio 20000 RTP/AVP 8 101\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
        "m=video 0 RTP/AVP 103\r\n"
    )
    assert (
        plan
        == answer_offer(
            parse_sdp(SOFTPHONE_OFFER),
            local_address="203.0.113.5",
            local_port=20000,
            session_id=42,
            session_version=1,
        ).plan
    )
    assert (plan.codec, plan.payload_type, plan.telephone_event) == (Codec.PCMA, 8, 101)  # type: ignore[attr-defined]
    assert (plan.remote_address, plan.remote_port, plan.remote_ptime) == ("192.0.2.10", 7078, 20)  # type: ignore[attr-defined]
    assert plan.sends and plan.receives  # type: ignore[attr-defined]
    assert parse_sdp(answer.to_bytes()) == answer


def test_pcmu_first_static_only_without_rtpmap() -> None:
    offer = HEAD + "m=audio 4000 RTP/AVP 0 8\n"
    answer, plan = _answer(offer)
    assert answer.media[0].formats == ("0",)
    assert plan.codec is Codec.PCMU  # type: ignore[attr-defined]
    assert plan.telephone_event is None  # type: ignore[attr-defined]
    assert "telephone-event" not in str(answer)


def test_dynamic_payload_type_for_g711_and_our_codec_choice() -> None:
    offer = (
        "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 110 111\r\nc=IN IP4 198.51.100.2\r\n"
        "a=rtpmap:110 pcmu/8000\r\na=rtpmap:111 PCMA/8000/1\r\n"
    )
    answer, plan = _answer(offer)
    assert (plan.payload_type, plan.codec) == (110, Codec.PCMU)  # type: ignore[attr-defined]
    assert plan.remote_address == "198.51.100.2"  # type: ignore[attr-defined]
    assert "a=rtpmap:110 PCMU/8000" in str(answer)
    _, plan = _answer(offer, codecs=(Codec.PCMA,))
    assert (plan.payload_type, plan.codec) == (111, Codec.PCMA)  # type: ignore[attr-defined]


def test_an_rtpmap_overrides_a_static_number() -> None:
    offer = (
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n"
        "m=audio 4000 RTP/AVP 0 8\na=rtpmap:0 PCMA/8000\n"
    )
    _, plan = _answer(offer)
    assert (plan.payload_type, plan.codec) == (0, Codec.PCMA)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", "sendrecv"),
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
    ],
)
def test_direction_is_mirrored(offered: str, answered: str) -> None:
    media_level = (
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n"
        f"m=audio 4000 RTP/AVP 0\na={offered}\n"
    )
    session_level = (
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n"
        f"a={offered}\nm=audio 4000 RTP/AVP 0\n"
    )
    for offer in (media_level, session_level):
        answer, plan = _answer(offer)
        assert answer.media[0].direction() == answered
        assert plan.direction == answered  # type: ignore[attr-defined]


def test_our_direction_is_intersected() -> None:
    offer = HEAD + "m=audio 4000 RTP/AVP 0\na=sendonly\n"
    _, plan = _answer(offer, direction="sendonly")  # they only send, we only send: nothing
    assert plan.direction == "inactive"  # type: ignore[attr-defined]
    _, plan = _answer(offer.replace("sendonly", "sendrecv"), direction="sendonly")
    assert plan.direction == "sendonly"  # type: ignore[attr-defined]


def test_old_style_hold_address_means_do_not_send() -> None:
    offer = (
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 4000 RTP/AVP 8\n"
    )
    _, plan = _answer(offer)
    assert not plan.sends  # type: ignore[attr-defined]
    assert plan.receives  # type: ignore[attr-defined]


def test_ipv6_offer_and_ipv6_answer() -> None:
    offer = (
        "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\n"
        "m=audio 4000 RTP/AVP 0\n"
    )
    result = answer_offer(
        parse_sdp(offer),
        local_address="2001:db8::5",
        local_port=20002,
        session_id=7,
        session_version=8,
    )
    assert result.plan.remote_address == "2001:db8::1"
    assert "c=IN IP6 2001:db8::5\r\n" in str(result.sdp)
    assert "o=huntgroup 7 8 IN IP6 2001:db8::5\r\n" in str(result.sdp)


def test_only_the_first_acceptable_stream_is_taken() -> None:
    offer = (
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n"
        "m=audio 0 RTP/AVP 0\n"  # disabled stream
        "m=audio 3000 RTP/SAVP 0\n"  # SRTP: we cannot
        "m=audio 4000 RTP/AVP 18 8\n"
        "m=audio 5000 RTP/AVP 0\n"
        "m=image 6000 udptl t38\n"
    )
    answer, plan = _answer(offer)
    assert [(m.media, m.port, m.proto) for m in answer.media] == [
        ("audio", 0, "RTP/AVP"),
        ("audio", 0, "RTP/SAVP"),
        ("audio", 20000, "RTP/AVP"),
        ("audio", 0, "RTP/AVP"),
        ("image", 0, "udptl"),
    ]
    assert answer.media[4].formats == ("t38",)
    assert (plan.stream_index, plan.remote_port, plan.codec) == (2, 4000, Codec.PCMA)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "media",
    [
        "m=audio 4000 RTP/AVP 18 9\na=rtpmap:18 G729/8000\n",
        "m=audio 4000 RTP/SAVP 0 8\n",
        "m=video 4000 RTP/AVP 0\n",
        "m=audio 4000 RTP/AVP 96\na=rtpmap:96 PCMU/16000\n",
        "m=audio 0 RTP/AVP 0\n",
        "",
    ],
)
def test_no_g711_is_488(media: str) -> None:
    offer = HEAD + media
    with pytest.raises(SdpNotAcceptable) as info:
        _answer(offer)
    assert info.value.status == 488
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "v=1\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n",
        "o=- 1 1 IN IP4 192.0.2.1\nv=0\n",
        "v=0\ns=-\nt=0 0\n",  # no o=
        "v=0\no=- 1 1 IN IP4 192.0.2.1\no=- 1 1 IN IP4 192.0.2.1\n",
        "v=0\no=- x 1 IN IP4 192.0.2.1\n",
        "v=0\no=- 1 1 IN IP4\n",
        "v=0\no=- 1 1 IN IP4 2001:db8::1\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nc=IN IP4 300.1.1.1\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nc=IN IP6 192.0.2.1\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nc=XX IP4 192.0.2.1\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nt=now\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nx=unknown\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nthis is not sdp\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 0\n",  # no c= anywhere
        HC + "m=audio 99999 RTP/AVP 0\n",
        HC + "m=audio 4000 RTP/AVP\n",
        HC + "m=audio x RTP/AVP 0\n",
        HM + "a=rtpmap:0\n",
        HM + "a=rtpmap:300 X/8000\n",
        HM + "a=ptime:fast\n",
        HM + "a=ptime:-5\n",
        HM + "t=0 0\n",
        HM + "c=IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\na=:nameless\n",
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=a\x00b\n",
    ],
)
def test_malformed_sdp_is_400(text: str) -> None:
    with pytest.raises(SdpSyntaxError) as info:
        parse_sdp(text)
    assert info.value.status == 400
    assert isinstance(info.value, RemoteProtocolError)


def test_bad_encoding_and_size() -> None:
    with pytest.raises(SdpSyntaxError, match="UTF-8") as info:
        parse_sdp(b"v=0\r\no=\xff\xfe 1 1 IN IP4 192.0.2.1\r\n")
    assert info.value.status == 400
    with pytest.raises(SdpSyntaxError) as info:
        parse_sdp(b"v=0\r\n" + b"a=x\r\n" * 20000)
    assert info.value.status == 413


def test_lenient_on_harmless_things() -> None:
    sdp = parse_sdp(
        "v=0\n\no=- 1 1 IN IP4 pbx.example.net\nc=IN IP4 224.2.1.1/127\n"
        "i=info\nu=http://example.net\ne=a@example.net\np=+1 555\nk=prompt\n"
        "t=0 0\nr=7d 1h 0 25h\nz=0 0\nm=audio 4000/2 RTP/AVP 0\ni=voice\nb=AS:64\nk=clear:x\n"
        "a=ptime:20.0\na=maxptime:40\n"
    )
    assert sdp.session_name == "-"  # missing s= tolerated
    assert sdp.origin.address == "pbx.example.net"
    assert sdp.media[0].port_count == 2
    assert sdp.media[0].ptime == 20
    again = parse_sdp(sdp.to_bytes())
    assert again == sdp
    lines = str(sdp).split("\r\n")
    # RFC 4566 order: v o s i u e p c b t r z k a m
    order = [line[0] for line in lines if line][:12]
    assert order == ["v", "o", "s", "i", "u", "e", "p", "c", "t", "r", "z", "k"]


def test_make_offer_and_accept_answer() -> None:
    offer = make_offer(
        local_address="203.0.113.5", local_port=20004, session_id=9, session_version=3
    )
    assert str(offer) == (
        "v=0\r\n"
        "o=huntgroup 9 3 IN IP4 203.0.113.5\r\n"
        "s=-\r\n"
        "c=IN IP4 203.0.113.5\r\n"
        "t=0 0\r\n"
        "m=audio 20004 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert parse_sdp(offer.to_bytes()) == offer
    # A member's phone answers our offer, through our own answerer.
    answer = answer_offer(
        parse_sdp(offer.to_bytes()),
        local_address="192.0.2.20",
        local_port=30000,
        session_id=1,
        session_version=1,
    )
    plan = accept_answer(offer, parse_sdp(answer.sdp.to_bytes()))
    assert (plan.codec, plan.payload_type, plan.telephone_event) == (Codec.PCMU, 0, 101)
    assert (plan.remote_address, plan.remote_port, plan.direction) == (
        "192.0.2.20",
        30000,
        "sendrecv",
    )


def test_accept_answer_rejects_bad_answers() -> None:
    offer = make_offer(
        local_address="203.0.113.5",
        local_port=20004,
        session_id=9,
        session_version=3,
        codecs=(Codec.PCMA,),
        telephone_event=None,
        direction="sendonly",
    )
    head = "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\n"
    with pytest.raises(SdpNotAcceptable, match="no audio stream"):
        accept_answer(offer, parse_sdp(head + "m=audio 4000 RTP/AVP 0\n"))
    with pytest.raises(SdpNotAcceptable, match="no audio stream"):
        accept_answer(offer, parse_sdp(head + "m=audio 0 RTP/AVP 8\n"))
    with pytest.raises(SdpNotAcceptable, match="2 media streams"):
        accept_answer(offer, parse_sdp(head + "m=audio 4000 RTP/AVP 8\nm=audio 4002 RTP/AVP 8\n"))
    plan = accept_answer(offer, parse_sdp(head + "m=audio 4000 RTP/AVP 8\na=recvonly\n"))
    assert plan.direction == "sendonly"
    assert plan.sends and not plan.receives


def test_local_misuse_is_a_local_error() -> None:
    offer = parse_sdp(SOFTPHONE_OFFER)
    with pytest.raises(LocalProtocolError):
        answer_offer(
            offer, local_address="not-an-ip", local_port=1, session_id=1, session_version=1
        )
    with pytest.raises(LocalProtocolError):
        answer_offer(
            offer, local_address="192.0.2.1", local_port=0, session_id=1, session_version=1
        )
    with pytest.raises(LocalProtocolError):
        make_offer(
            local_address="192.0.2.1", local_port=2, session_id=1, session_version=1, codecs=()
        )
    with pytest.raises(LocalProtocolError):
        make_offer(
            local_address="192.0.2.1",
            local_port=2,
            session_id=1,
            session_version=1,
            telephone_event=8,
        )


# --- Properties and fuzzing ---

tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    if draw(st.booleans()):
        return Connection(draw(ipv4), "IP4")
    return Connection(draw(ipv6), "IP6")


attributes = st.one_of(
    st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive", "rtcp-mux"]).map(Attribute),
    st.builds(
        lambda pt, name, rate: Attribute("rtpmap", f"{pt} {name}/{rate}"),
        st.integers(0, 127),
        st.sampled_from(["PCMU", "PCMA", "opus", "telephone-event"]),
        st.sampled_from([8000, 16000, 48000]),
    ),
    st.integers(10, 60).map(lambda p: Attribute("ptime", str(p))),
    st.builds(
        lambda n, v: Attribute(n, v),
        tokens.filter(lambda n: n not in ("rtpmap", "fmtp", "ptime", "maxptime")),
        tokens,
    ),
)

media_descriptions = st.builds(
    MediaDescription,
    media=st.sampled_from(["audio", "video", "image", "text"]),
    port=st.integers(0, 65535),
    proto=st.sampled_from(["RTP/AVP", "RTP/SAVP", "udptl", "RTP/AVPF"]),
    formats=st.lists(st.integers(0, 127).map(str), min_size=1, max_size=6).map(tuple),
    connection=st.none() | connections(),
    attributes=st.lists(attributes, max_size=6).map(tuple),
    bandwidths=st.lists(st.sampled_from(["AS:64", "TIAS:64000"]), max_size=2).map(tuple),
)


@st.composite
def descriptions(draw: st.DrawFn) -> SessionDescription:
    connection = draw(connections())
    return SessionDescription(
        origin=Origin(
            draw(tokens),
            draw(st.integers(0, 2**63)),
            draw(st.integers(0, 2**63)),
            connection.address,
            connection.addr_type,
        ),
        session_name=draw(tokens),
        connection=connection,
        times=((0, 0),),
        attributes=tuple(draw(st.lists(attributes, max_size=3))),
        media=tuple(draw(st.lists(media_descriptions, max_size=4))),
    )


@given(descriptions())
def test_serialise_then_parse_is_identity(sdp: SessionDescription) -> None:
    assert parse_sdp(sdp.to_bytes()) == sdp
    assert parse_sdp(str(sdp).replace("\r\n", "\n")) == sdp


@given(descriptions())
def test_answer_invariants(offer: SessionDescription) -> None:
    try:
        result = answer_offer(
            parse_sdp(offer.to_bytes()),
            local_address="203.0.113.5",
            local_port=20000,
            session_id=1,
            session_version=1,
        )
    except SdpNotAcceptable as exc:
        assert exc.status == 488
        return
    answer = result.sdp
    assert len(answer.media) == len(offer.media)
    assert [m.media for m in answer.media] == [m.media for m in offer.media]
    accepted = [i for i, m in enumerate(answer.media) if m.port != 0]
    assert accepted == [result.plan.stream_index]
    offered = offer.media[result.plan.stream_index]
    assert str(result.plan.payload_type) in offered.formats
    assert set(answer.media[accepted[0]].formats) <= set(offered.formats)
    assert parse_sdp(answer.to_bytes()) == answer


LINE_PARTS = st.sampled_from(
    [
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "c=IN IP6 ::1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0 8 101",
        "m=video 0 RTP/AVP 31",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendonly",
        "b=AS:64",
        "m=audio 4000 RTP/AVP 96",
        "a=rtpmap:96 PCMA/8000",
        "a=rtpmap:",
        "m=",
        "c=IN",
        "o=",
    ]
)


@given(st.lists(LINE_PARTS | st.text(max_size=30), max_size=15), st.sampled_from(["\r\n", "\n"]))
def test_fuzz_lines_parse_or_raise_remote_protocol_error(lines: list[str], eol: str) -> None:
    text = eol.join(lines)
    try:
        sdp = parse_sdp(text)
    except RemoteProtocolError as exc:
        assert exc.status in (400, 413)
        return
    try:
        answer_offer(
            sdp, local_address="192.0.2.5", local_port=2000, session_id=1, session_version=1
        )
    except RemoteProtocolError as exc:
        assert exc.status in (400, 488)


@given(st.binary(max_size=300))
def test_fuzz_bytes_parse_or_raise_remote_protocol_error(data: bytes) -> None:
    try:
        parse_sdp(data)
    except RemoteProtocolError as exc:
        assert exc.status == 400


_SDP_CHARS = st.sampled_from(
    ["v=0", "a=", "s", "=", "x", " ", "\t", "\r", "\n", "\r\n", "\x01", "\x7f", "é", "A"]
)


@given(st.lists(_SDP_CHARS, max_size=30).map("".join))
def test_the_one_match_fast_path_splits_as_the_line_by_line_checks_do(text: str) -> None:
    """A well-formed body is split by one regular expression (issue 14); anything it
    takes, the line-by-line checks take the same way, and it takes nothing they refuse."""
    import re

    from huntgroup.media import sdp

    def split(fast: bool) -> object:
        saved = sdp._WELL_FORMED
        if not fast:
            sdp._WELL_FORMED = re.compile("(?!)")  # never matches: the line by line path
        try:
            return sdp._split_lines(text)
        except RemoteProtocolError as err:
            return str(err)
        finally:
            sdp._WELL_FORMED = saved

    assert split(True) == split(False)
    if sdp._WELL_FORMED.fullmatch(text) is not None:
        assert all(len(kind) == 1 for kind, _ in sdp._split_lines(text))
