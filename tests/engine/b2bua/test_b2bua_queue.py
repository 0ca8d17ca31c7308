"""Callers waiting in a group's queue: answered with music (or 183), bounded, timed out."""

from __future__ import annotations

from huntgroup.media.commands import ConfirmMedia, PlayMusic, StartRelay
from huntgroup.media.g711 import Codec
from huntgroup.media.sdp import parse_sdp
from tests.support.b2bua_peers import PILOT, Network, UacCall, UasCall, make_config
from tests.support.b2bua_peers import sdp as sdp_body


class QueueWorld:
    """One member m1 (linear), a queue of ``max_length`` (default 1)."""

    def __init__(self, **queue: object) -> None:
        settings = {"max_length": 1, "max_wait": 60, **queue}
        self.net = Network(make_config("linear", members=1, queue=settings))
        self.m1 = self.net.phone("m1", 7001, "m1")
        self.callers = [self.net.phone(f"c{i}", 6000 + i, f"06000000{i:02d}") for i in range(4)]

    def connect_first(self) -> tuple[UacCall, UasCall]:
        """Caller c0 reaches m1, who answers: m1 is busy from now on."""
        c0 = self.callers[0]
        call = c0.invite(PILOT, rtp=10000)
        leg = self.m1.answering(self.m1.request("INVITE"))
        leg.reply(200, rtp=27001)
        self.m1.request("ACK")
        call.ack(c0.response(200))
        c0.drop()
        return call, leg


def port_of(body: bytes) -> int:
    return parse_sdp(body).media[0].port


def test_second_caller_is_answered_with_music_and_bridged_without_a_new_200() -> None:
    w = QueueWorld()
    first, _first_leg = w.connect_first()
    net, c1 = w.net, w.callers[1]

    queued = c1.invite(PILOT, rtp=10002)
    ok = c1.response(200)
    assert not c1.has(180), "a queued caller is answered, not rung"
    assert ok.content_type == "application/sdp"
    caller_port = port_of(ok.body)
    music = net.music
    assert music == [  # held until its ACK or first packet: a UDP source may be forged
        PlayMusic(
            music[0].session,
            caller_port,
            ("127.0.0.1", 10002),
            Codec.PCMU,
            0,
            None,
            unconfirmed=True,
        )
    ]
    queued.ack(ok)
    assert net.media_of(ConfirmMedia)[-1] == ConfirmMedia(music[0].session, caller_port)
    w.m1.quiet()  # m1 is busy: not offered the queued call

    # A third caller finds the queue full: 486.
    c2 = w.callers[2]
    full = c2.invite(PILOT, rtp=10004)
    busy = c2.response(486)
    full.ack_failure(busy)
    assert net.b2b.active_calls == 2

    # The first call ends: m1 is free, the queued caller is offered to it.
    first.bye()
    w.callers[0].response(200, "BYE")
    bye = w.m1.request("BYE")
    w.m1.respond(bye, 200)
    inv = w.m1.request("INVITE")
    assert inv.from_.uri.user == "0600000001"  # type: ignore[union-attr]
    leg = w.m1.answering(inv)
    leg.reply(200, rtp=27011)
    w.m1.request("ACK")
    relays = [r for r in net.relays if r.session == music[0].session]
    assert relays == [
        StartRelay(
            music[0].session,
            caller_port,
            ("127.0.0.1", 10002),
            port_of(inv.body),
            ("127.0.0.1", 27011),
        )
    ]
    net.advance(5)
    assert c1.count(200, method="INVITE") == 1, "already answered: no second 200"
    c1.quiet()

    # And it ends normally.
    leg.bye()
    w.m1.response(200, "BYE")
    c1.request("BYE")
    assert net.ports_in_use == 0


def test_queue_max_wait_hangs_up_an_answered_caller() -> None:
    w = QueueWorld()
    w.connect_first()
    c1 = w.callers[1]
    w.net.at(10.0)
    queued = c1.invite(PILOT)
    ok = c1.response(200)
    queued.ack(ok)
    w.net.at(69.9)
    assert not c1.has("BYE")
    w.net.at(70.0)
    bye = c1.request("BYE")
    assert bye.call_id == queued.call_id
    assert bye.from_.tag == ok.to.tag and bye.to.tag == queued.from_tag
    c1.respond(bye, 200, to_tag=queued.from_tag)
    w.m1.quiet()
    assert w.net.b2b.active_calls == 1
    assert w.net.ports_in_use == 2  # only the first call's ports remain


def test_queue_without_answer_gives_183_and_480_at_max_wait() -> None:
    w = QueueWorld(answer=False)
    w.connect_first()
    c1 = w.callers[1]
    queued = c1.invite(PILOT, rtp=10002)
    early = c1.response(183)
    assert early.to.tag
    assert early.content_type == "application/sdp"
    port = port_of(early.body)
    assert [m.port for m in w.net.music] == [port]
    assert not c1.has(200)
    w.net.at(59.9)
    assert not c1.has(480)
    w.net.at(60.0)
    final = c1.response(480)
    assert final.to.tag == early.to.tag
    queued.ack_failure(final)
    assert w.net.ports_in_use == 2


def test_early_media_queued_caller_gets_200_when_bridged() -> None:
    w = QueueWorld(answer=False)
    first, _ = w.connect_first()
    c1 = w.callers[1]
    queued = c1.invite(PILOT, rtp=10002)
    early = c1.response(183)
    first.bye()
    w.m1.respond(w.m1.request("BYE"), 200)
    leg = w.m1.answering(w.m1.request("INVITE"))
    leg.reply(200, rtp=27011)
    ok = c1.response(200)
    assert ok.to.tag == early.to.tag
    assert port_of(ok.body) == port_of(early.body), "the caller keeps the anchored port"
    queued.ack(ok)
    assert w.net.relays[-1].member_remote == ("127.0.0.1", 27011)


def test_queued_caller_hanging_up_frees_its_place() -> None:
    w = QueueWorld()
    w.connect_first()
    c1, c2 = w.callers[1], w.callers[2]
    queued = c1.invite(PILOT)
    queued.ack(c1.response(200))
    queued.bye()
    c1.response(200, "BYE")
    assert w.net.ports_in_use == 2
    again = c2.invite(PILOT)
    ok = c2.response(200)
    again.ack(ok)
    assert not c2.has(486)


def test_queue_length_zero_sends_486_when_member_busy() -> None:
    w = QueueWorld(max_length=0)
    w.connect_first()
    c1 = w.callers[1]
    c1.invite(PILOT)
    c1.response(486)
    c1.quiet()
    assert not w.net.music


def test_overflow_target_gets_302_when_queue_full() -> None:
    w = QueueWorld(max_length=0, overflow_to="0999888777")
    w.connect_first()
    c1 = w.callers[1]
    call = c1.invite(PILOT)
    moved = c1.response(302)
    assert [str(c.uri) for c in moved.contacts] == ["sip:0999888777@voip.example.net"]
    call.ack_failure(moved)
    assert w.net.ports_in_use == 2


def test_max_wait_counts_hunting_time_and_cancels_the_ringing_member() -> None:
    net = Network(make_config("linear", members=2, queue={"max_wait": 20}))
    caller = net.phone("caller", 6000, "0600000000")
    m1, m2 = net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    call = caller.invite(PILOT)
    m1.answering(m1.request("INVITE")).reply(180)
    net.at(15)
    m1.request("CANCEL")
    inv2 = m2.request("INVITE")
    m2.answering(inv2).reply(180)
    net.at(19.9)
    assert not caller.has(480)
    net.at(20)
    final = caller.response(480)
    call.ack_failure(final)
    cancel = m2.request("CANCEL")
    assert cancel.top_via.branch == inv2.top_via.branch


def test_overflow_of_an_answered_caller_is_a_new_leg_to_the_target() -> None:
    target = "sip:overflow@127.0.0.1:7900"
    w = QueueWorld(max_wait=30, overflow_to=target)
    w.connect_first()
    overflow = w.net.phone("overflow", 7900, "overflow")
    c1 = w.callers[1]
    queued = c1.invite(PILOT, rtp=10002)
    ok = c1.response(200)
    queued.ack(ok)
    w.net.at(30)
    inv = overflow.request("INVITE")
    assert str(inv.uri) == target
    leg = overflow.answering(inv)
    leg.reply(200, rtp=27900)
    overflow.request("ACK")
    assert w.net.relays[-1].member_remote == ("127.0.0.1", 27900)
    assert w.net.relays[-1].caller_port == port_of(ok.body)
    c1.quiet()  # no new 200, no BYE: the caller stays on the same dialog
    queued.bye()
    c1.response(200, "BYE")
    overflow.request("BYE")


def test_linear_no_answer_forward_to_external_number_gives_302() -> None:
    net = Network(make_config("linear", members=1, no_answer={"forward_to": "0999888777"}))
    caller = net.phone("caller", 6000, "0600000000")
    m1 = net.phone("m1", 7001, "m1")
    call = caller.invite(PILOT)
    m1.answering(m1.request("INVITE")).reply(486)
    moved = caller.response(302)
    assert [str(c.uri) for c in moved.contacts] == ["sip:0999888777@voip.example.net"]
    call.ack_failure(moved)
    assert net.ports_in_use == 0


def test_overflow_leg_presents_the_callers_identity() -> None:
    w = QueueWorld(max_wait=30, overflow_to="sip:overflow@127.0.0.1:7900")
    w.connect_first()
    overflow = w.net.phone("overflow", 7900, "overflow")
    c1 = w.callers[1]
    queued = c1.invite(PILOT, rtp=10002)
    queued.ack(c1.response(200))
    w.net.at(30)
    inv = overflow.request("INVITE")
    assert inv.from_.uri.user == "0600000001"  # type: ignore[union-attr]


def test_a_queued_caller_that_moves_its_media_gets_the_music_at_its_new_address() -> None:
    w = QueueWorld()
    w.connect_first()
    net, c1 = w.net, w.callers[1]
    queued = c1.invite(PILOT, rtp=10002)
    ok = c1.response(200)
    queued.ack(ok)
    music = net.music[-1]
    queued.reinvite(sdp_body(10070))
    again = c1.response(200)
    assert again.body == ok.body
    queued.ack(again)
    assert net.music[-1].remote == ("127.0.0.1", 10070)
    assert net.music[-1].session == music.session
    # the same address again: nothing to re-send
    count = len(net.music)
    queued.reinvite(sdp_body(10070))
    queued.ack(c1.response(200))
    assert len(net.music) == count
