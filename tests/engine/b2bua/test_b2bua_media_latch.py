"""Which RTP addresses the relay may send to before a packet came from them.

docs/security.md, "RTP hijacking": a side's SDP address is vouched for (sent
to at once) when it is the address the side's SIP came from and not in a
private network, or when the SIP came from a trusted peer. Any other side
(a forged INVITE naming a victim, NAT, a SIP ALG or STUN phone) carries its
signalling IP in the media commands: the relay sends it nothing until it has
latched (tests/engine/test_media_io_sockets.py)."""

from __future__ import annotations

from typing import Any

import pytest

from huntgroup.config.models import Config
from huntgroup.engine.sip.address import Peer
from huntgroup.media.commands import ConfirmMedia
from huntgroup.media.nat import unverified_media
from tests.support.b2bua_peers import PILOT, Network, Phone, make_config, sdp

PUBLIC = "8.8.4.4"  # stands for a public address; no packet is sent anywhere here


def with_server(config: Config, **server: Any) -> Config:
    return config.model_copy(update={"server": config.server.model_copy(update=server)})


def caller_at(net: Network, host: str, port: int, user: str = "0611223344") -> Phone:
    """A phone whose SIP comes from ``host`` (a loopback alias, or any address)."""
    phone = Phone(net, f"c-{host}", port, user)
    phone.peer = Peer(host, port, "UDP")
    net.phones[(host, port)] = phone
    return phone


@pytest.mark.parametrize(
    ("sdp_host", "source", "trusted", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", False, None),  # the phone's usual case (loopback here)
        (PUBLIC, PUBLIC, False, None),  # the same public address: vouched for
        ("192.168.1.20", "192.168.1.20", False, "192.168.1.20"),  # a private network
        ("::ffff:8.8.4.4", PUBLIC, False, None),  # one address, two spellings
        ("127.0.0.1", "127.0.0.2", False, "127.0.0.2"),  # a forged INVITE naming a victim
        ("10.1.2.3", PUBLIC, False, PUBLIC),  # behind NAT
        ("93.184.216.34", PUBLIC, False, PUBLIC),  # a SIP ALG / STUN phone, or a victim
        ("phone.example.com", PUBLIC, False, PUBLIC),  # a name is nobody's address
        ("10.1.2.3", PUBLIC, True, None),  # a trusted peer's media gateway
        ("0.0.0.0", PUBLIC, False, None),  # on hold: nothing is sent anyway
        ("10.1.2.3", None, False, None),  # an unknown source
    ],
)
def test_unverified_media(
    sdp_host: str, source: str | None, trusted: bool, expected: str | None
) -> None:
    assert unverified_media(sdp_host, source, trusted=trusted) == expected


def test_a_forged_invite_naming_another_host_carries_its_signalling_ip() -> None:
    """Finding 3: one INVITE from 127.0.0.2 naming 127.0.0.1:10002 (the victim)."""
    net = Network(make_config("linear", members=0, queue={"max_length": 2}))
    spoofer = caller_at(net, "127.0.0.2", 6000)
    spoofer.invite(PILOT, rtp=10002)  # the SDP names 127.0.0.1
    assert spoofer.response(200).status == 200
    (music,) = net.music
    assert music.remote == ("127.0.0.1", 10002)
    assert music.nat == "127.0.0.2", "the relay must send nothing before a latch"


def test_a_caller_whose_sdp_names_its_own_address_gets_music_at_once() -> None:
    net = Network(make_config("linear", members=0, queue={"max_length": 2}))
    caller = caller_at(net, "127.0.0.1", 6000)
    caller.invite(PILOT, rtp=10002)
    caller.response(200)
    (music,) = net.music
    assert music.remote == ("127.0.0.1", 10002) and music.nat is None


def test_a_trusted_peer_is_sent_to_its_sdp_address_at_once() -> None:
    config = with_server(
        make_config("linear", members=0, queue={"max_length": 2}), trusted_peers=("127.0.0.2",)
    )
    net = Network(config)
    sbc = caller_at(net, "127.0.0.2", 6000)
    sbc.invite(PILOT, rtp=10002)  # its media gateway (127.0.0.1) is not its SIP address
    sbc.response(200)
    (music,) = net.music
    assert music.nat is None


def test_a_member_with_a_public_sdp_address_not_its_own_latches_from_its_signalling_ip() -> None:
    """Finding 8: a SIP ALG / STUN phone announces a public address; its NAT changes the port."""
    net = Network(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller = caller_at(net, "127.0.0.1", 6000)
    call = caller.invite(PILOT, rtp=10000)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200, body=sdp(27001, host=PUBLIC))
    m1.request("ACK")
    call.ack(caller.response(200))
    (relay,) = net.relays
    assert relay.member_remote == (PUBLIC, 27001)
    assert relay.member_nat == "127.0.0.1", "its RTP comes from its signalling IP"
    assert relay.caller_nat is None


def test_a_new_sdp_address_of_a_side_is_judged_again() -> None:
    """A re-INVITE moving the caller's media elsewhere: no longer vouched for."""
    net = Network(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller = caller_at(net, "127.0.0.1", 6000)
    call = caller.invite(PILOT, rtp=10000)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200, rtp=27001)
    m1.request("ACK")
    call.ack(caller.response(200))
    call.reinvite(sdp(10100, host=PUBLIC, session=1))
    m1.respond(m1.request("INVITE"), 200, body=sdp(27001))
    first, *later = net.relays
    assert first.caller_nat is None and later
    assert {r.caller_nat for r in later} == {"127.0.0.1"}
    assert net.relays[-1].caller_remote == (PUBLIC, 10100)


# A UDP source can be forged (second review, finding B): an INVITE "from" the victim
# naming the victim's own address is vouched for by that address, so a caller whose SIP
# came over UDP from an untrusted source is sent nothing (music, relayed audio) until its
# dialog is confirmed (its ACK carries our To tag, which a forger never sees) or it sent
# a packet from its SDP address (tests/engine/test_media_io_sockets.py).


def test_a_forged_udp_invite_naming_its_own_source_gets_no_music_in_early_media() -> None:
    """queue.answer false: 183 and music with no ACK to wait for; one packet releases it."""
    net = Network(make_config("linear", members=0, queue={"max_length": 2, "answer": False}))
    victim = caller_at(net, PUBLIC, 6000)
    victim.invite(PILOT, body=sdp(4444, host=PUBLIC))
    assert victim.response(183).status == 183
    (music,) = net.music
    assert music.remote == (PUBLIC, 4444) and music.nat is None
    assert music.unconfirmed, "nothing may be sent before a packet from the caller"
    assert not net.media_of(ConfirmMedia)


def test_an_answered_udp_caller_is_sent_music_from_its_ack_on() -> None:
    net = Network(make_config("linear", members=0, queue={"max_length": 2}))
    caller = caller_at(net, PUBLIC, 6000)
    call = caller.invite(PILOT, body=sdp(4444, host=PUBLIC))
    ok = caller.response(200)
    (music,) = net.music
    assert music.unconfirmed and not net.media_of(ConfirmMedia)
    call.ack(ok)
    (confirm,) = net.media_of(ConfirmMedia)
    assert confirm == ConfirmMedia(music.session, music.port)
    call.ack(ok)  # a retransmitted ACK confirms nothing more
    assert len(net.media_of(ConfirmMedia)) == 1
    call.reinvite(sdp(4446, host=PUBLIC, session=1))  # the music follows it, unheld
    caller.response(200)
    assert net.music[-1].remote == (PUBLIC, 4446) and not net.music[-1].unconfirmed


def test_a_bridged_udp_caller_hears_the_member_only_from_its_ack_on() -> None:
    net = Network(make_config("linear", members=1))
    m1 = net.phone("m1", 7001, "m1")
    caller = caller_at(net, PUBLIC, 6000)
    call = caller.invite(PILOT, body=sdp(4444, host=PUBLIC))
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(200, rtp=27001)
    m1.request("ACK")
    ok = caller.response(200)
    (relay,) = net.relays
    assert relay.caller_unconfirmed and relay.caller_nat is None
    call.ack(ok)
    (confirm,) = net.media_of(ConfirmMedia)
    assert (confirm.session, confirm.port) == (relay.session, relay.caller_port)


@pytest.mark.parametrize("how", ["tcp", "trusted"])
def test_a_source_that_cannot_be_forged_or_is_trusted_is_sent_music_at_once(how: str) -> None:
    config = make_config("linear", members=0, queue={"max_length": 2, "answer": False})
    if how == "trusted":
        config = with_server(config, trusted_peers=(PUBLIC,))
    net = Network(config)
    caller = caller_at(net, PUBLIC, 6000)
    if how == "tcp":
        caller.peer = Peer(PUBLIC, 6000, "TCP")
    caller.invite(PILOT, body=sdp(4444, host=PUBLIC))
    (music,) = net.music
    assert music.remote == (PUBLIC, 4444) and not music.unconfirmed
