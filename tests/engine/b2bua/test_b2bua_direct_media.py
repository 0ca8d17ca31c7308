"""``server.media.mode: direct``: once bridged, RTP flows between the phones, not through us."""

from __future__ import annotations

from huntgroup.engine.sip.message import Request
from huntgroup.media.sdp import SessionDescription, audio_endpoint, parse_sdp
from tests.support.b2bua_peers import PILOT, Network, UacCall, UasCall, make_config, sdp


def parsed(body: bytes) -> SessionDescription:
    return parse_sdp(body)


def endpoint(body: bytes) -> tuple[str, int] | None:
    return audio_endpoint(parse_sdp(body))


class World:
    """One member m1; callers c0..c3; media in direct mode."""

    def __init__(self, **queue: object) -> None:
        settings = {"max_length": 2, "max_wait": 60, **queue}
        config = make_config("linear", members=1, queue=settings)
        self.net = Network(config, media_mode="direct")
        self.m1 = self.net.phone("m1", 7001, "m1")
        self.callers = [self.net.phone(f"c{i}", 6000 + i, f"06000000{i:02d}") for i in range(4)]

    def bridge_first(self) -> tuple[UacCall, UasCall]:
        c0 = self.callers[0]
        call = c0.invite(PILOT, rtp=10000)
        leg = self.m1.answering(self.m1.request("INVITE"))
        leg.reply(200, rtp=27001)
        self.m1.request("ACK")
        call.ack(c0.response(200))
        c0.drop()
        return call, leg

    def queue_second(self) -> tuple[UacCall, bytes]:
        """c1 waits in the queue (answered with our SDP and music) while m1 talks."""
        c1 = self.callers[1]
        call = c1.invite(PILOT, rtp=10002)
        ok = c1.response(200)
        call.ack(ok)
        return call, ok.body

    def free_m1(self, first: UacCall) -> Request:
        """The first call ends; m1 is offered the queued call: its INVITE."""
        first.bye()
        self.callers[0].response(200, "BYE")
        self.m1.respond(self.m1.request("BYE"), 200)
        return self.m1.request("INVITE")


def closed(net: Network, session: str) -> bool:
    return any(m.session == session for m in net.closes)


def test_a_member_answering_a_ringing_call_gets_the_callers_media_and_vice_versa() -> None:
    w = World()
    net, caller, m1 = w.net, w.callers[0], w.m1
    call = caller.invite(PILOT, rtp=10000)
    invite = m1.request("INVITE")
    offer = parsed(invite.body)
    assert endpoint(invite.body) == ("127.0.0.1", 10000), "the member is offered the caller's RTP"
    assert offer.origin.username == "huntgroup", "under our own o= line"
    leg = m1.answering(invite)
    leg.reply(180)
    caller.response(180)
    leg.reply(200, rtp=27001)
    m1.request("ACK")
    ok = caller.response(200)
    assert endpoint(ok.body) == ("127.0.0.1", 27001), "the caller is answered with the member's RTP"
    assert parsed(ok.body).origin.username == "huntgroup"
    call.ack(ok)
    assert not net.relays and not net.music, "nothing is relayed or played"
    assert len(net.closes) == 1 and net.ports_in_use == 0, "the call's port went back at once"
    caller.quiet()
    m1.quiet()  # no re-INVITE either way: both sides already know each other
    call.bye()
    caller.response(200, "BYE")
    m1.respond(m1.request("BYE"), 200)
    assert len(net.closes) == 1 and net.ports_in_use == 0 and net.b2b.active_calls == 0


def test_a_queued_caller_is_reinvited_to_the_member_and_the_relay_stops() -> None:
    w = World()
    net, c1, m1 = w.net, w.callers[1], w.m1
    first, _ = w.bridge_first()
    queued, our_answer = w.queue_second()
    music = net.music[-1]
    invite = w.free_m1(first)
    assert endpoint(invite.body) == ("127.0.0.1", 10002)
    leg = m1.answering(invite)
    leg.reply(200, rtp=27011)
    m1.request("ACK")
    # Until the caller switches, its audio (sent to our port) is relayed to the member.
    relay = [r for r in net.relays if r.session == music.session]
    assert len(relay) == 1 and relay[0].member_remote == ("127.0.0.1", 27011)
    assert relay[0].caller_remote == ("127.0.0.1", 10002)
    reinvite = c1.request("INVITE")
    offer = parsed(reinvite.body)
    assert endpoint(reinvite.body) == ("127.0.0.1", 27011)
    ours = parsed(our_answer).origin
    assert (offer.origin.session_id, offer.origin.session_version) == (
        ours.session_id,
        ours.session_version + 1,
    ), "RFC 3264 §8: the same session, one version up"
    # The caller's own re-INVITE crosses ours: glare, 491.
    c1.send(queued.in_dialog("INVITE", body=sdp(10002)))
    assert c1.response(491).status == 491
    c1.respond(reinvite, 200, body=sdp(10002), contact=True)
    ack = c1.request("ACK")
    assert ack.cseq.number == reinvite.cseq.number
    m1.quiet()  # the caller kept its address: the member needs no re-INVITE
    assert closed(net, music.session), "the relay stopped"
    assert net.ports_in_use == 0, "the relay's two ports went back"


def test_a_caller_that_moves_its_media_gets_the_member_reinvited() -> None:
    w = World()
    net, c1, m1 = w.net, w.callers[1], w.m1
    first, _ = w.bridge_first()
    w.queue_second()
    leg = m1.answering(w.free_m1(first))
    leg.reply(200, rtp=27011)
    m1.request("ACK")
    reinvite = c1.request("INVITE")
    c1.respond(reinvite, 200, body=sdp(10050), contact=True)
    c1.request("ACK")
    update = m1.request("INVITE")
    assert endpoint(update.body) == ("127.0.0.1", 10050)
    assert parsed(update.body).origin.session_version == 2
    assert not net.closes[1:], "still relayed until the member agrees"
    m1.respond(update, 200, body=sdp(27011), contact=True)
    assert m1.request("ACK").cseq.number == update.cseq.number
    assert net.ports_in_use == 0


def switch_queued_caller(w: World) -> tuple[UasCall, Request]:
    """c1 queued, m1 answers it: the re-INVITE c1 receives."""
    first, _ = w.bridge_first()
    w.queue_second()
    leg = w.m1.answering(w.free_m1(first))
    leg.reply(200, rtp=27011)
    w.m1.request("ACK")
    return leg, w.callers[1].request("INVITE")


def test_a_caller_refusing_the_switch_stays_relayed_until_the_end() -> None:
    w = World()
    net, c1 = w.net, w.callers[1]
    leg, reinvite = switch_queued_caller(w)
    c1.respond(reinvite, 488)
    c1.request("ACK")  # the transaction's own ACK of a failure
    net.advance(30)
    c1.quiet()
    w.m1.quiet()
    assert net.ports_in_use == 2, "the relay goes on with its two ports"
    leg.bye()
    w.m1.response(200, "BYE")
    c1.respond(c1.request("BYE"), 200)
    assert net.ports_in_use == 0 and net.b2b.active_calls == 0


def test_glare_on_the_switch_is_retried_after_the_rfc_3261_delay() -> None:
    w = World()
    net, c1 = w.net, w.callers[1]
    _, reinvite = switch_queued_caller(w)
    c1.respond(reinvite, 491)
    c1.request("ACK")
    c1.quiet()  # not at once
    net.advance(2.1)  # §14.1: 0-2 s when the Call-ID is the caller's
    again = c1.request("INVITE")
    assert again.cseq.number > reinvite.cseq.number
    assert endpoint(again.body) == ("127.0.0.1", 27011)
    c1.respond(again, 200, body=sdp(10002), contact=True)
    c1.request("ACK")
    assert net.ports_in_use == 0


def test_a_caller_that_never_answers_the_switch_is_hung_up() -> None:
    w = World()
    net, c1, m1 = w.net, w.callers[1], w.m1
    switch_queued_caller(w)
    net.advance(40)  # timer B: 64*T1 without any answer, §14.1: the dialog is gone
    m1.respond(m1.request("BYE"), 200)
    assert c1.has("BYE")
    assert net.b2b.active_calls == 0 and net.ports_in_use == 0


def test_a_caller_that_heard_early_media_gets_our_sdp_then_the_switch_after_its_ack() -> None:
    w = World(answer=False)  # the queue plays music as early media (183)
    net, c1, m1 = w.net, w.callers[1], w.m1
    first, _ = w.bridge_first()
    queued = c1.invite(PILOT, rtp=10002)
    early = c1.response(183)
    assert endpoint(early.body) != ("127.0.0.1", 27001)
    leg = m1.answering(w.free_m1(first))
    leg.reply(200, rtp=27011)
    m1.request("ACK")
    ok = c1.response(200)
    assert ok.body == early.body, "the 200 repeats the answer of the 183"
    c1.quiet()  # §14.1: no re-INVITE before the ACK of our 200
    queued.ack(ok)
    reinvite = c1.request("INVITE")
    assert endpoint(reinvite.body) == ("127.0.0.1", 27011)
    c1.respond(reinvite, 200, body=sdp(10002), contact=True)
    c1.request("ACK")
    assert net.ports_in_use == 0


def test_a_caller_behind_nat_is_relayed_as_in_relay_mode() -> None:
    w = World()
    net, caller, m1 = w.net, w.callers[0], w.m1
    call = caller.invite(PILOT, body=sdp(10000, host="192.168.1.20"))
    invite = m1.request("INVITE")
    host, member_port = endpoint(invite.body) or ("", 0)
    assert host == "127.0.0.1", "the member is offered our relay"
    assert net.planner.ports.is_allocated(member_port)
    leg = m1.answering(invite)
    leg.reply(200, rtp=27001)
    m1.request("ACK")
    ok = caller.response(200)
    host, caller_port = endpoint(ok.body) or ("", 0)
    assert host == "127.0.0.1" and net.planner.ports.is_allocated(caller_port)
    assert caller_port != member_port
    call.ack(ok)
    assert len(net.relays) == 1 and not net.closes
    relay = net.relays[0]
    assert relay.caller_nat == caller.peer.host, "latched onto the caller's signalling IP"
    assert relay.caller_remote == ("192.168.1.20", 10000) and relay.member_nat is None
    assert not caller.has("INVITE"), "no re-INVITE: the relay stays"


def test_after_the_switch_relayed_offers_keep_the_phones_addresses() -> None:
    w = World()
    net, caller, m1 = w.net, w.callers[0], w.m1
    call, _leg = w.bridge_first()
    call.reinvite(sdp(10100, session=1))
    caller.response(100)
    update = m1.request("INVITE")
    assert endpoint(update.body) == ("127.0.0.1", 10100), "passed through, not anchored on us"
    assert parsed(update.body).origin.session_version == 2
    m1.respond(update, 200, body=sdp(27050), contact=True)
    m1.request("ACK")
    ok = caller.response(200)
    assert endpoint(ok.body) == ("127.0.0.1", 27050)
    assert parsed(ok.body).origin.session_version == 2
    call.ack(ok)
    assert not net.relays and net.ports_in_use == 0


def test_a_queued_caller_that_moves_its_media_gets_the_music_there_and_members_its_sdp() -> None:
    w = World()
    net, c1 = w.net, w.callers[1]
    first, _ = w.bridge_first()
    queued, our_answer = w.queue_second()
    music = net.music[-1]
    queued.reinvite(sdp(10060))  # e.g. the phone's network changed while on hold
    ok = c1.response(200)
    assert ok.body == our_answer, "our side of the session did not change"
    queued.ack(ok)
    assert net.music[-1] == music.__class__(
        music.session, music.port, ("127.0.0.1", 10060), music.codec, music.payload_type, None
    ), "the music follows the caller, on the same session (same RTP stream)"
    invite = w.free_m1(first)
    assert endpoint(invite.body) == ("127.0.0.1", 10060), "the member gets the new address"
