"""The group core routes on a JournalingStore exactly as on a MemoryStore."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.queue.events import (
    CallArrived,
    CallHungUp,
    Event,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    OutgoingCallStarted,
)
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.store import MemoryStore
from tests.support.state_harness import LINES, Node, make_config

ALGORITHMS = ["ring_all", "linear", "circular", "round_robin", "least_active"]
CALLS = ["c1", "c2", "c3"]
MEMBERS = LINES[:3]

KINDS = ["arrive", "answer", "decline", "hangup", "join", "leave", "outgoing", "wait"]


def next_event(data: st.DataObject, node: Node) -> Event | None:
    """An event that makes sense now: answers and declines pick a member being offered."""
    kind = data.draw(st.sampled_from(KINDS))
    offered = [(c, mb) for c in node.core.call_ids() for mb in node.core.offers_of(c)]
    if kind in ("answer", "decline") and offered:
        call, member = data.draw(st.sampled_from(offered))
        return MemberAnswered(call, member) if kind == "answer" else MemberFailed(call, member)
    if kind == "arrive":
        return CallArrived(data.draw(st.sampled_from(CALLS)), "G", "0611111111")
    if kind == "hangup" and node.core.call_ids():
        return CallHungUp(data.draw(st.sampled_from(sorted(node.core.call_ids()))))
    if kind == "join":
        return MemberJoined("G", data.draw(st.sampled_from(MEMBERS)))
    if kind == "leave":
        return MemberLeft("G", data.draw(st.sampled_from(MEMBERS)))
    if kind == "outgoing":
        return OutgoingCallStarted(data.draw(st.sampled_from(["o1", "o2"])), MEMBERS[0])
    return None


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ALGORITHMS), st.data())
def test_same_actions_as_on_a_memory_store(algorithm: str, data: st.DataObject) -> None:
    config = make_config(algorithm, wrap_up=5, queue={"max_length": 3})
    plain = Node(config, MemoryStore())
    journal = JournalingStore("A")
    journaled = Node(config, journal)
    t = 0.0
    for _ in range(data.draw(st.integers(0, 40))):
        t += data.draw(st.floats(min_value=0, max_value=20, allow_nan=False))
        plain.at(t)
        journaled.at(t)
        event = next_event(data, plain)
        if event is not None:
            plain.ev(event)
            journaled.ev(event)
    plain.at(t + 200)
    journaled.at(t + 200)
    assert journaled.log == plain.log
    # and the journal, replayed on another node, gives that node the same shared state
    other = JournalingStore("B")
    for op in journal.drain():
        other.apply_remote(op)
    for member in MEMBERS:
        assert other.joined_since("G", member) == journal.joined_since("G", member)
        assert other.talk_time("G", member) == journal.talk_time("G", member)
        assert other.ringing(member) == {f"A\x00{c}" for c in journal.ringing(member)}
        assert other.active_calls(member) == {f"A\x00{c}" for c in journal.active_calls(member)}
        assert other.wrap_up_until(member) == journal.wrap_up_until(member)
    assert other.last_answered("G") == journal.last_answered("G")
