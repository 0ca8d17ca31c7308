"""Announcements to queued callers (queue.announcements): the greeting once on entry, the
periodic message every N s, the position from the core's queue, and nothing once the caller
is bridged or gone. Sans-I/O: the scripted clock, the media commands the B2BUA emits."""

from __future__ import annotations

from typing import Any

import pytest

from huntgroup.config.models import Config
from huntgroup.engine.b2bua.announcements import spoken_number
from huntgroup.engine.b2bua.context import TimerKind
from huntgroup.media.announcements import PlayAnnouncement
from huntgroup.media.commands import PlayMusic
from huntgroup.media.g711 import Codec
from tests.support.b2bua_peers import PILOT, Network, Phone, UacCall, UasCall, make_config

GREETING = "/audio/greeting.wav"
BUSY = "/audio/all-busy.wav"
PROMPTS = {name: f"/audio/prompts/{name}.wav" for name in ["you-are-caller", "in-queue"]}
PROMPTS |= {str(d): f"/audio/prompts/{d}.wav" for d in range(10)}


def config(announcements: dict[str, Any], max_length: int = 3) -> Config:
    queue = {"max_length": max_length, "max_wait": None, "announcements": announcements}
    return make_config("linear", members=1, queue=queue)


class World:
    """One member m1, busy with caller c0; callers c1.. wait in the queue."""

    def __init__(self, announcements: dict[str, Any]) -> None:
        self.net = Network(config(announcements))
        self.m1 = self.net.phone("m1", 7001, "m1")
        self.callers = [self.net.phone(f"c{i}", 6000 + i, f"06000000{i:02d}") for i in range(4)]
        self.first, self.first_leg = self.connect_first()

    def connect_first(self) -> tuple[UacCall, UasCall]:
        c0 = self.callers[0]
        call = c0.invite(PILOT, rtp=10000)
        leg = self.m1.answering(self.m1.request("INVITE"))
        leg.reply(200, rtp=27001)
        self.m1.request("ACK")
        call.ack(c0.response(200))
        c0.drop()
        return call, leg

    def queue(self, i: int) -> tuple[UacCall, str]:
        """Caller ``i`` joins the queue; returns its call and its media session."""
        phone = self.callers[i]
        call = phone.invite(PILOT, rtp=10000 + 2 * i)
        call.ack(phone.response(200))
        return call, self.net.music[-1].session

    def said(self, session: str) -> list[tuple[str, ...]]:
        return [m.clips for m in self.net.media_of(PlayAnnouncement) if m.session == session]  # type: ignore[union-attr]

    def free_m1(self) -> None:
        """c0 hangs up: m1 is free and offered the next caller."""
        self.first.bye()
        self.callers[0].response(200, "BYE")
        self.m1.respond(self.m1.request("BYE"), 200)


def answer_next(w: World) -> None:
    leg = w.m1.answering(w.m1.request("INVITE"))
    leg.reply(200, rtp=27011)
    w.m1.request("ACK")


def test_greeting_plays_once_on_entry_right_after_the_music_starts() -> None:
    w = World({"greeting": GREETING})
    _call, session = w.queue(1)
    kinds = [type(m) for m in w.net.media if getattr(m, "session", None) == session]
    assert kinds.index(PlayMusic) < kinds.index(PlayAnnouncement), "the music stream first"
    announcement = w.net.media_of(PlayAnnouncement)[0]
    music = w.net.music[-1]
    assert announcement == PlayAnnouncement(session, music.port, Codec.PCMU, (GREETING,))
    w.net.advance(600)
    assert w.said(session) == [(GREETING,)]


def test_periodic_message_every_n_seconds_from_entry() -> None:
    w = World({"periodic": {"file": BUSY, "every": 10}})
    w.net.at(5)
    _call, session = w.queue(1)  # enters at t = 5
    w.net.at(14.9)
    assert w.said(session) == []
    w.net.at(15)
    assert w.said(session) == [(BUSY,)]
    w.net.at(44.9)
    assert w.said(session) == [(BUSY,)] * 3  # at 15, 25, 35
    w.net.at(45)
    assert len(w.said(session)) == 4


def test_no_announcements_configured_means_none() -> None:
    w = World({})
    _call, session = w.queue(1)
    w.net.advance(300)
    assert w.said(session) == []


def position_of(clips: tuple[str, ...]) -> str:
    names = [c.rsplit("/", 1)[1].removesuffix(".wav") for c in clips]
    assert names[0] == "you-are-caller" and names[-1] == "in-queue", names
    return "".join(names[1:-1])


def test_position_is_right_and_follows_the_queue() -> None:
    w = World({"position": {"prompts": PROMPTS, "every": 20}})
    c1, s1 = w.queue(1)
    w.net.advance(5)
    _c2, s2 = w.queue(2)
    w.net.advance(15)  # c1's first position announcement (t = 20)
    assert [position_of(x) for x in w.said(s1)] == ["1"]
    w.net.advance(5)  # c2's (t = 25)
    assert [position_of(x) for x in w.said(s2)] == ["2"]
    c1.bye()  # c1 gives up: c2 moves up
    w.callers[1].response(200, "BYE")
    w.net.advance(20)
    assert [position_of(x) for x in w.said(s2)] == ["2", "1"]
    assert [position_of(x) for x in w.said(s1)] == ["1"], "nothing to a caller who left"


def test_periodic_and_position_due_together_make_one_announcement() -> None:
    w = World(
        {"periodic": {"file": BUSY, "every": 30}, "position": {"prompts": PROMPTS, "every": 15}}
    )
    _call, session = w.queue(1)
    w.net.advance(30)
    said = w.said(session)
    assert len(said) == 2  # at 15: position; at 30: message then position
    assert position_of(said[0]) == "1"
    assert said[1][0] == BUSY and position_of(said[1][1:]) == "1"


def test_announcements_stop_once_the_caller_is_bridged() -> None:
    w = World({"greeting": GREETING, "periodic": {"file": BUSY, "every": 10}})
    _call, session = w.queue(1)
    w.net.advance(10)
    assert w.said(session) == [(GREETING,), (BUSY,)]
    w.free_m1()
    answer_next(w)  # c1 is bridged to m1
    assert any(r.session == session for r in w.net.relays)
    w.net.advance(100)
    assert w.said(session) == [(GREETING,), (BUSY,)]


def test_announcements_stop_when_the_caller_hangs_up() -> None:
    w = World({"periodic": {"file": BUSY, "every": 10}})
    call, session = w.queue(1)
    w.net.advance(10)
    call.bye()
    w.callers[1].response(200, "BYE")
    w.net.advance(100)
    assert w.said(session) == [(BUSY,)]
    b2b = w.net.b2b
    assert not any(e[2] is TimerKind.ANNOUNCE and b2b.timer_live(e) for e in b2b.timer_heap)


def test_a_reload_without_announcements_stops_them() -> None:
    w = World({"periodic": {"file": BUSY, "every": 10}})
    _call, session = w.queue(1)
    w.net.advance(10)
    w.net.b2b.reload(config({}), now=w.net.now)
    w.net.advance(100)
    assert w.said(session) == [(BUSY,)]


def test_a_late_timer_does_not_pile_announcements_up() -> None:
    w = World({"periodic": {"file": BUSY, "every": 10}})
    w.queue(1)
    outputs = w.net.b2b.handle_timer(now=w.net.now + 35)  # woken late, once
    w.net.now += 35
    assert sum(isinstance(o, PlayAnnouncement) for o in outputs) == 1
    assert w.net.b2b.get_timer() == pytest.approx(40)


def test_early_media_queueing_is_announced_too() -> None:
    net = Network(
        make_config(
            "linear",
            members=1,
            queue={"max_length": 2, "answer": False, "announcements": {"greeting": GREETING}},
        )
    )
    m1 = net.phone("m1", 7001, "m1")
    c0: Phone = net.phone("c0", 6000, "0600000000")
    c0.invite(PILOT)
    m1.answering(m1.request("INVITE")).reply(200)
    c1 = net.phone("c1", 6001, "0600000001")
    c1.invite(PILOT)
    c1.response(183)
    assert [m.clips for m in net.media_of(PlayAnnouncement)] == [(GREETING,)]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("n", "available", "words"),
    [
        (1, set("0123456789"), ("1",)),
        (12, set("0123456789"), ("1", "2")),
        (12, {*"0123456789", "12"}, ("12",)),
        (21, {*"0123456789", "20"}, ("20", "1")),
        (30, {*"0123456789", "20"}, ("3", "0")),
        (105, set("0123456789"), ("1", "0", "5")),
        (7, set("012345"), None),
        (0, {"0"}, ("0",)),
    ],
)
def test_spoken_number(n: int, available: set[str], words: tuple[str, ...] | None) -> None:
    assert spoken_number(n, available) == words


def test_overflow_into_another_group_starts_that_groups_announcements() -> None:
    """Support's queue gives up after 10 s (max_wait) and overflows to Sales, whose only
    member (m1, busy too) cannot take the call: the caller waits on, told Sales's
    greeting at once and Sales's message from then on, never Support's again."""
    from huntgroup.config.models import GroupConfig, MemberConfig, QueueConfig

    sales_pilot = "0140000009"
    base = make_config("linear", members=1)
    support = base.groups[0].model_copy(
        update={
            "queue": QueueConfig(
                max_length=3,
                max_wait=10,
                overflow_to=sales_pilot,
                announcements={"periodic": {"file": BUSY, "every": 4}},  # type: ignore[arg-type]
            )
        }
    )
    sales = GroupConfig(
        name="Sales",
        pilot=sales_pilot,
        algorithm="linear",
        members=(MemberConfig(uri=base.groups[0].members[0].uri, position=1),),
        queue=QueueConfig(
            max_length=3,
            max_wait=None,
            announcements={
                "greeting": "/audio/sales.wav",
                "periodic": {"file": "/audio/s.wav", "every": 5},
            },  # type: ignore[arg-type]
        ),
    )
    net = Network(base.model_copy(update={"groups": (support, sales)}))
    m1 = net.phone("m1", 7001, "m1")
    c0, c1 = net.phone("c0", 6000, "0600000000"), net.phone("c1", 6001, "0600000001")
    first = c0.invite(PILOT)
    m1.answering(m1.request("INVITE")).reply(200)
    m1.request("ACK")
    first.ack(c0.response(200))
    waiting = c1.invite(PILOT, rtp=10002)
    waiting.ack(c1.response(200))
    session = net.music[-1].session

    def said() -> list[tuple[str, ...]]:
        return [m.clips for m in net.media_of(PlayAnnouncement) if m.session == session]  # type: ignore[union-attr]

    net.at(9.9)
    assert said() == [(BUSY,), (BUSY,)]  # at 4 and 8 in Support
    net.at(10)  # max_wait: overflow to Sales, where m1 is still busy
    assert said()[2:] == [("/audio/sales.wav",)]
    net.at(20)
    assert said()[2:] == [("/audio/sales.wav",), ("/audio/s.wav",), ("/audio/s.wav",)]
    assert net.b2b.active_calls == 2
