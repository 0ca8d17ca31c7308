"""``StateStore.standing``: the roster's one read of a member, against the reads it replaces."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.store import BULK_MIN, MemoryStore

MEMBERS = [f"m{i}" for i in range(BULK_MIN + 2)]
GROUPS = ["G", "H"]

step = st.tuples(
    st.sampled_from(
        [
            "join",
            "leave",
            "pause",
            "unpause",
            "ring",
            "unring",
            "ring_many",
            "active",
            "inactive",
            "wrap_up",
        ]
    ),
    st.integers(0, len(MEMBERS) - 1),
    st.integers(0, 1),
    st.floats(0, 100),
)


@settings(max_examples=200, deadline=None)
@given(script=st.lists(step, max_size=40), journaled=st.booleans())
@example(script=[("join", 0, 0, 0.0), ("wrap_up", 0, 0, 7.5)], journaled=False)  # now == until
@example(script=[("join", 0, 0, 0.0), ("wrap_up", 0, 0, 7.5)], journaled=True)
def test_standing_is_joined_unpaused_then_free(
    script: list[tuple[str, int, int, float]], journaled: bool
) -> None:
    store = JournalingStore("n1") if journaled else MemoryStore()
    for op, i, g, t in script:
        member, group, call = MEMBERS[i], GROUPS[g], f"c{i % 3}"
        if op in ("join", "leave"):
            store.set_joined(group, member, op == "join", now=t)
        elif op in ("pause", "unpause"):
            store.set_paused(group, member, op == "pause", now=t)
        elif op in ("ring", "unring"):
            store.set_ringing(member, call, op == "ring")
        elif op == "ring_many":  # a ring all: a bulk record from BULK_MIN members up
            store.set_ringing_many(MEMBERS[i:] + MEMBERS[:i], f"all{i}")
        elif op in ("active", "inactive"):
            store.set_active(member, call, op == "active")
        else:
            store.set_wrap_up_until(member, t)
    times = sorted({0.0, 50.0, 150.0, *(t for *_, t in script)})  # a wrap-up's end exactly
    for group in GROUPS:
        for member in MEMBERS:
            for now in times:
                for waiting in (False, True):
                    available = (
                        store.joined_since(group, member) is not None
                        and store.paused(group, member) is None
                    )
                    free = store.is_free(group, member, now=now, call_waiting=waiting)
                    expected = 2 if free else 1 if available else 0
                    assert store.standing(group, member, now=now, call_waiting=waiting) == expected
