"""Call hold (RFC 3264 §8.4): one side holds, the other hears music until the resume.

Relay mode: the holder's offer is answered here, the held party's session does not
change, the music goes out of the held party's own port. Direct mode: the holder is
answered from a port of ours, the held party is re-INVITEd onto another, and on resume
the holder's offer is relayed end to end and our ports go back.
"""

from __future__ import annotations

import pytest

from huntgroup.config.models import Config, MediaConfig
from huntgroup.engine.sip.message import Response
from huntgroup.media.commands import CloseMedia, PlayMusic, StartRelay
from huntgroup.media.sdp import SessionDescription, audio_endpoint, parse_sdp
from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import (
    LINE_A,
    LINE_B,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    UacCall,
    UasCall,
    make_config,
)

GROUP_MUSIC = "/srv/moh/group.wav"
SERVER_MUSIC = "/srv/moh/server.wav"
ALICE_MUSIC = "/srv/moh/alice.wav"
BOB_MUSIC = "/srv/moh/bob.wav"


def offer(port: int, direction: str = "sendrecv", *, host: str = "127.0.0.1", pt: int = 0) -> bytes:
    """An offer of one audio stream (payload type ``pt``) with ``direction`` at media level."""
    name = {0: "PCMU", 8: "PCMA"}[pt]
    return (
        f"v=0\r\no=peer 1 7 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\na={direction}\r\n"
    ).encode()


def session_level(port: int, direction: str) -> bytes:
    """The direction at session level only (it is every stream's default)."""
    return (
        f"v=0\r\no=peer 1 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"a={direction}\r\nm=audio {port} RTP/AVP 0\r\n"
    ).encode()


def audio(body: bytes) -> tuple[SessionDescription, str, tuple[str, int] | None]:
    parsed = parse_sdp(body)
    return parsed, parsed.media[0].direction(parsed.direction), audio_endpoint(parsed)


def with_music(config: Config, *, server: str | None = None) -> Config:
    media = MediaConfig(music=server)
    return config.model_copy(update={"server": config.server.model_copy(update={"media": media})})


class World:
    """Group Support (m1, then the line alice); a caller c0; relay mode unless said."""

    def __init__(
        self,
        *,
        group_music: str | None = GROUP_MUSIC,
        server_music: str | None = SERVER_MUSIC,
        alice_music: str | None = None,
        bob_music: str | None = None,
        members: int = 1,
        mode: str = "relay",
        member_lines: tuple[str, ...] = (LINE_A,),
    ) -> None:
        config = make_config(
            "linear",
            members=members,
            member_lines=member_lines,
            lines=[
                {"number": LINE_A, "music": alice_music},
                {"number": LINE_B, "music": bob_music},
            ],
            queue={"music": group_music},
        )
        self.net = Network(with_music(config, server=server_music), media_mode=mode)  # type: ignore[arg-type]
        self.m1 = self.net.phone("m1", 7001, "m1")
        self.alice = self.net.phone("alice", 7101, LINE_A)
        self.bob = self.net.phone("bob", 7102, LINE_B)
        self.c0 = self.net.phone("c0", 6000, "0600000000")

    def bridge(self, caller: Phone | None = None, number: str = PILOT) -> tuple[UacCall, UasCall]:
        """``caller`` (c0) calls ``number``; m1 (or alice for her number) answers."""
        caller = caller or self.c0
        call = caller.invite(number, rtp=10000)
        member = (
            self.alice
            if number == LINE_A or not self.net.config.groups[0].members[0].uri
            else self.m1
        )
        leg = member.answering(member.request("INVITE"))
        leg.reply(200, rtp=27001)
        member.request("ACK")
        call.ack(caller.response(200))
        caller.drop()
        return call, leg

    def relay(self) -> StartRelay:
        return self.net.relays[-1]


def hold(call: UacCall, phone: Phone, body: bytes) -> Response:
    """The caller re-INVITEs with ``body``; its 200, ACKed."""
    call.reinvite(body)
    ok = phone.response(200)
    call.ack(ok)
    return ok


# ------------------------------------------------------------------ relay mode


@pytest.mark.parametrize(
    ("body", "answered"),
    [
        (offer(10000, "sendonly"), "recvonly"),
        (offer(10000, "inactive"), "inactive"),
        (session_level(10000, "sendonly"), "recvonly"),
        (offer(10000, "sendrecv", host="0.0.0.0"), "recvonly"),  # RFC 2543 hold
    ],
    ids=["sendonly", "inactive", "session-level", "c=0.0.0.0"],
)
def test_a_caller_holding_is_answered_here_and_the_member_hears_the_groups_music(
    body: bytes, answered: str
) -> None:
    w = World()
    net = w.net
    call, leg = w.bridge()
    relay = w.relay()
    ok = hold(call, w.c0, body)
    parsed, direction, endpoint = audio(ok.body)
    assert direction == answered, "RFC 3264 §8.4: the mirror of the hold offer"
    assert endpoint == ("127.0.0.1", relay.caller_port), "the port the caller already talks to"
    assert parsed.media[0].formats[0] == "0", "the codec in use"
    assert ok.contacts, "a 2xx to a re-INVITE carries a Contact"
    w.m1.quiet()  # the member's session does not change: no re-INVITE
    music = net.media[-1]
    assert isinstance(music, PlayMusic)
    assert (music.side, music.port, music.remote) == (
        "member",
        relay.member_port,
        ("127.0.0.1", 27001),
    ), "the music goes to the member, out of the port it talks to"
    assert music.music == GROUP_MUSIC and music.session == relay.session
    del leg


def test_the_resume_is_answered_here_and_the_relay_starts_again() -> None:
    w = World()
    net = w.net
    call, _ = w.bridge()
    first = hold(call, w.c0, offer(10000, "sendonly"))
    ok = hold(call, w.c0, offer(10000, "sendrecv"))
    parsed, direction, _ = audio(ok.body)
    assert direction == "sendrecv"
    assert parsed.origin.session_version == parse_sdp(first.body).origin.session_version + 1
    relay = net.media[-1]
    assert isinstance(relay, StartRelay) and relay.watch
    assert relay.member_remote == ("127.0.0.1", 27001)
    w.m1.quiet()
    # hold and resume again: music again, relayed again
    hold(call, w.c0, offer(10000, "inactive"))
    assert isinstance(net.media[-1], PlayMusic)
    hold(call, w.c0, offer(10000, "recvonly"))  # recvonly is no hold (RFC 3264 §8.4)
    assert isinstance(net.media[-1], StartRelay)
    call.bye()
    w.c0.response(200, "BYE")
    w.m1.respond(w.m1.request("BYE"), 200)
    assert net.ports_in_use == 0


def test_a_hold_and_a_resume_by_update_are_answered_here_too() -> None:
    w = World()
    net = w.net
    call, _ = w.bridge()
    w.c0.send(call.in_dialog("UPDATE", body=offer(10000, "sendonly")))
    assert audio(w.c0.response(200, "UPDATE").body)[1] == "recvonly"
    assert isinstance(net.media[-1], PlayMusic) and net.media[-1].side == "member"
    w.c0.send(call.in_dialog("UPDATE", body=offer(10000, "sendrecv")))
    assert audio(w.c0.response(200, "UPDATE").body)[1] == "sendrecv"
    assert isinstance(net.media[-1], StartRelay)
    w.m1.quiet()


def test_a_member_holding_gets_the_caller_music_from_the_callers_port() -> None:
    w = World()
    net = w.net
    _call, leg = w.bridge()
    relay = w.relay()
    w.m1.send(leg.in_dialog("INVITE", body=offer(27001, "sendonly")))
    ok = w.m1.response(200)
    assert audio(ok.body)[1:] == ("recvonly", ("127.0.0.1", relay.member_port))
    w.c0.quiet()
    music = net.media[-1]
    assert isinstance(music, PlayMusic)
    assert (music.side, music.port, music.remote, music.music) == (
        "caller",
        relay.caller_port,
        ("127.0.0.1", 10000),
        GROUP_MUSIC,
    )
    w.m1.send(leg.in_dialog("INVITE", body=offer(27001, "sendrecv")))
    assert audio(w.m1.response(200).body)[1] == "sendrecv"
    assert isinstance(net.media[-1], StartRelay)


def test_the_holders_refresh_keeps_the_music_and_a_held_party_that_moves_gets_it_there() -> None:
    w = World()
    net = w.net
    call, leg = w.bridge()
    hold(call, w.c0, offer(10000, "sendonly"))
    hold(call, w.c0, offer(10000, "sendonly"))  # the same hold again (a refresh)
    assert isinstance(net.media[-1], PlayMusic) and net.media[-1].side == "member"
    # The held member moves its media: its offer goes to the caller (who still holds).
    w.m1.send(leg.in_dialog("INVITE", body=offer(27050)))
    reinvite = w.c0.request("INVITE")
    w.c0.respond(reinvite, 200, body=offer(10000, "sendonly"), contact=True)
    w.c0.request("ACK")
    assert w.m1.response(200).status == 200
    music = net.media[-1]
    assert isinstance(music, PlayMusic) and music.remote == ("127.0.0.1", 27050)


def test_both_holding_nothing_is_played_and_nothing_is_watched() -> None:
    w = World()
    net = w.net
    call, leg = w.bridge()
    hold(call, w.c0, offer(10000, "sendonly"))
    w.m1.send(leg.in_dialog("INVITE", body=offer(27001, "inactive")))
    assert audio(w.m1.response(200).body)[1] == "inactive"
    last = net.media[-1]
    assert isinstance(last, StartRelay) and not last.watch
    hold(call, w.c0, offer(10000, "sendrecv"))  # the caller resumes: the member still holds
    music = net.media[-1]
    assert isinstance(music, PlayMusic) and music.side == "caller"


def test_when_one_of_two_holders_resumes_the_other_holders_music_plays() -> None:
    w = World(alice_music=ALICE_MUSIC, bob_music=BOB_MUSIC, members=0)
    register(w.alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    register(w.bob, LINE_B, PASSWORD, call_id="reg-bob@test")
    w.alice.drop()
    w.bob.drop()
    call, leg = w.bridge(caller=w.bob)  # bob calls the group, alice answers
    hold(call, w.bob, offer(10000, "sendonly"))
    assert w.net.music[-1].music == BOB_MUSIC
    w.alice.send(leg.in_dialog("INVITE", body=offer(27001, "sendonly")))
    w.alice.response(200)  # both hold: nothing plays
    w.alice.send(leg.in_dialog("INVITE", body=offer(27001, "sendrecv")))
    w.alice.response(200)  # alice resumes: bob alone holds, alice hears bob's music
    music = w.net.media[-1]
    assert isinstance(music, PlayMusic) and (music.side, music.music) == ("member", BOB_MUSIC)
    hold(call, w.bob, offer(10000, "sendrecv"))
    w.alice.send(leg.in_dialog("INVITE", body=offer(27001, "inactive")))
    w.alice.response(200)  # now alice holds: bob hears alice's music
    music = w.net.media[-1]
    assert isinstance(music, PlayMusic) and (music.side, music.music) == ("caller", ALICE_MUSIC)


def test_a_hold_with_another_codec_is_relayed_and_the_music_still_plays() -> None:
    w = World()
    net = w.net
    call, _ = w.bridge()
    call.reinvite(offer(10000, "sendonly", pt=8))  # PCMA only: the call is on PCMU
    reinvite = w.m1.request("INVITE")
    assert audio(reinvite.body)[1] == "sendonly"
    assert isinstance(net.media[-1], PlayMusic) and net.media[-1].side == "member"
    w.m1.respond(reinvite, 200, body=offer(27001, "recvonly", pt=8), contact=True)
    w.m1.request("ACK")
    call.ack(w.c0.response(200))
    assert isinstance(net.media[-1], PlayMusic), "still held"


# --------------------------------------------------------------- which music


def test_the_server_default_music_for_a_group_without_music() -> None:
    w = World(group_music=None)
    call, _ = w.bridge()
    hold(call, w.c0, offer(10000, "sendonly"))
    assert w.net.music[-1].music == SERVER_MUSIC


def test_a_queued_caller_of_a_group_without_music_hears_the_server_default() -> None:
    w = World(group_music=None, member_lines=())
    w.bridge()  # m1 is busy: the next caller waits
    waiting = w.net.phone("c1", 6001, "0600000001")
    waiting.invite(PILOT, rtp=10002)
    queued = w.net.music[-1]
    assert (queued.side, queued.music, queued.remote) == (
        "caller",
        SERVER_MUSIC,
        ("127.0.0.1", 10002),
    )


def test_the_built_in_music_without_any() -> None:
    w = World(group_music=None, server_music=None)
    call, _ = w.bridge()
    hold(call, w.c0, offer(10000, "sendonly"))
    assert w.net.music[-1].music is None


def test_the_holding_lines_own_music_wins_over_the_groups() -> None:
    w = World(alice_music=ALICE_MUSIC, members=0)
    register(w.alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    w.alice.drop()
    _call, leg = w.bridge()  # alice answers the group call
    w.alice.send(leg.in_dialog("INVITE", body=offer(27001, "sendonly")))
    w.alice.response(200)
    assert w.net.music[-1].music == ALICE_MUSIC


def test_a_line_that_holds_without_music_of_its_own_gets_the_groups() -> None:
    w = World(members=0)
    register(w.alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    w.alice.drop()
    _call, leg = w.bridge()
    w.alice.send(leg.in_dialog("INVITE", body=offer(27001, "sendonly")))
    w.alice.response(200)
    assert w.net.music[-1].music == GROUP_MUSIC


def test_a_direct_call_held_by_the_called_line_gets_the_server_default() -> None:
    w = World()
    register(w.alice, LINE_A, PASSWORD, call_id="reg-alice@test")
    w.alice.drop()
    _call, leg = w.bridge(number=LINE_A)
    w.alice.send(leg.in_dialog("INVITE", body=offer(27001, "sendonly")))
    w.alice.response(200)
    assert w.net.music[-1].music == SERVER_MUSIC


def test_a_calling_line_that_holds_plays_its_own_music_to_the_member() -> None:
    w = World(bob_music=BOB_MUSIC)
    register(w.bob, LINE_B, PASSWORD, call_id="reg-bob@test")
    w.bob.drop()
    call, _ = w.bridge(caller=w.bob)
    hold(call, w.bob, offer(10000, "sendonly"))
    music = w.net.music[-1]
    assert (music.side, music.music) == ("member", BOB_MUSIC)


# ----------------------------------------------------------------- direct mode


def direct_world() -> tuple[World, UacCall, UasCall]:
    w = World(mode="direct")
    call, leg = w.bridge()
    assert w.net.ports_in_use == 0, "end to end"
    return w, call, leg


def test_direct_a_caller_holding_moves_the_member_onto_the_music_and_back() -> None:
    w, call, _leg = direct_world()
    net = w.net
    call.reinvite(offer(10000, "sendonly"))
    ok = w.c0.response(200)
    call.ack(ok)
    _, direction, ours = audio(ok.body)
    assert direction == "recvonly" and ours is not None and ours[1] >= 40000, "our port"
    moved = w.m1.request("INVITE")
    _, offered, music_port = audio(moved.body)
    assert offered == "sendonly", "we only send: the music"
    assert music_port is not None and music_port != ours
    assert not net.music, "no music before the member answered"
    w.m1.respond(moved, 200, body=offer(27001, "recvonly"), contact=True)
    assert w.m1.request("ACK").cseq.number == moved.cseq.number
    music = net.media[-1]
    assert isinstance(music, PlayMusic)
    assert (music.side, music.port, music.remote, music.music) == (
        "member",
        music_port[1],
        ("127.0.0.1", 27001),
        GROUP_MUSIC,
    )
    assert net.ports_in_use == 2
    leg_dialog = next(iter(net.b2b.index.calls.values())).legs
    assert [x.dialog.local_sdp for x in leg_dialog.values() if x.dialog] == [moved.body], (
        "a session refresh re-INVITE would offer the music SDP again"
    )
    # resume: relayed end to end, with the caller's own SDP
    call.reinvite(offer(10000, "sendrecv"))
    resumed = w.m1.request("INVITE")
    assert audio(resumed.body)[1:] == ("sendrecv", ("127.0.0.1", 10000))
    w.m1.respond(resumed, 200, body=offer(27001), contact=True)
    w.m1.request("ACK")
    ok = w.c0.response(200)
    call.ack(ok)
    assert audio(ok.body)[1:] == ("sendrecv", ("127.0.0.1", 27001)), "the member's own address"
    assert isinstance(net.media[-1], CloseMedia) and net.ports_in_use == 0
    w.m1.quiet()


def test_direct_glare_on_the_move_is_retried_and_a_refusal_leaves_the_call_up() -> None:
    w, call, _leg = direct_world()
    net = w.net
    hold(call, w.c0, offer(10000, "sendonly"))
    moved = w.m1.request("INVITE")
    w.m1.respond(moved, 491)
    w.m1.request("ACK")
    w.m1.quiet()
    net.advance(4.1)  # §14.1: we own the member leg's Call-ID: 2.1 to 4 s
    again = w.m1.request("INVITE")
    assert again.cseq.number > moved.cseq.number
    w.m1.respond(again, 488)
    w.m1.request("ACK")
    assert not net.music and net.b2b.active_calls == 1, "silence, but the call stays up"
    call.reinvite(offer(10000, "sendrecv"))
    resumed = w.m1.request("INVITE")
    w.m1.respond(resumed, 200, body=offer(27001), contact=True)
    w.m1.request("ACK")
    call.ack(w.c0.response(200))
    assert net.ports_in_use == 0, "end to end again"


def test_direct_a_held_party_whose_dialog_is_gone_ends_the_call() -> None:
    w, call, _leg = direct_world()
    hold(call, w.c0, offer(10000, "sendonly"))
    moved = w.m1.request("INVITE")
    w.m1.respond(moved, 481)
    w.m1.request("ACK")
    assert w.c0.request("BYE").call_id == call.call_id
    assert w.net.ports_in_use == 0


def test_direct_a_held_party_that_never_answers_the_move_ends_the_call_on_timer_b() -> None:
    w, call, _leg = direct_world()
    hold(call, w.c0, offer(10000, "sendonly"))
    w.m1.request("INVITE")  # never answered
    w.net.advance(31.0)
    assert not w.c0.has("BYE"), "Timer B is 64 x T1 = 32 s"
    w.net.advance(2.0)
    assert w.c0.request("BYE").call_id == call.call_id
    assert w.net.ports_in_use == 0 and w.net.b2b.active_calls == 0


def test_direct_a_failed_resume_keeps_the_hold() -> None:
    w, call, _leg = direct_world()
    net = w.net
    hold(call, w.c0, offer(10000, "sendonly"))
    moved = w.m1.request("INVITE")
    w.m1.respond(moved, 200, body=offer(27001, "recvonly"), contact=True)
    w.m1.request("ACK")
    call.reinvite(offer(10000, "sendrecv"))
    resumed = w.m1.request("INVITE")
    w.m1.respond(resumed, 488)
    w.m1.request("ACK")
    assert w.c0.response(488).status == 488
    assert net.ports_in_use == 2 and isinstance(net.media[-1], PlayMusic), "still on hold"


def test_direct_a_member_holding_moves_the_caller() -> None:
    w, _call, leg = direct_world()
    net = w.net
    w.m1.send(leg.in_dialog("INVITE", body=offer(27001, "inactive")))
    assert audio(w.m1.response(200).body)[1] == "inactive"
    moved = w.c0.request("INVITE")
    assert audio(moved.body)[1] == "sendonly"
    w.c0.respond(moved, 200, body=offer(10000, "recvonly"), contact=True)
    w.c0.request("ACK")
    music = net.media[-1]
    assert isinstance(music, PlayMusic) and (music.side, music.remote) == (
        "caller",
        ("127.0.0.1", 10000),
    )
    assert not music.unconfirmed, "the caller's ACK confirmed it, end to end as it was"
