"""The groups of a configuration as the core holds them, and what a reload changes.

Theory of operation
-------------------
:func:`install` turns the groups of a :class:`Config` into :class:`GroupInfo`
(the group's settings, its strategy, its members in position order) and brings
the membership in the state store in line with the file:

- at start (``first``), a member the store already knows keeps its membership
  and talk time (a restart on shared state); any other member takes the file's
  ``joined``;
- on a reload, a member new to its group joins afresh (new join date, talk time
  zero); a member removed from its group, or whose group is removed, leaves it,
  so that added back it starts again; a member whose ``joined`` flag the file
  changed is returned, for the core to log it in or out (and end its offers);
- the round-robin pointer names a member (:data:`Pointer`). When a reload
  removes that member, the pointer moves back to the nearest member before it,
  in the old order and wrapping around, that is still in the group: the next
  call starts with the member that followed the removed one.

Invariants: after :func:`install`, every member of every group has a membership
entry in the store; a member the file removed from a group is not joined to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from huntgroup.config.models import Config, GroupConfig
from huntgroup.distribution.algorithms import Candidate, Strategy, strategy_for
from huntgroup.queue.actions import Identity
from huntgroup.queue.state.store import Pointer, StateStore


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One group: its settings, its strategy, its members by position.

    The settings every decision reads are copied out of ``config`` into plain
    attributes once, when the group is installed (at start and at each reload), so
    that a decision does not walk the configuration's nested models (issue 14).
    """

    config: GroupConfig
    strategy: Strategy
    candidates: tuple[Candidate, ...]
    positions: dict[str, int]
    name: str = field(init=False)
    route: tuple[str, ...] = field(init=False)  # a call to the pilot: its route
    pilot_caller: Identity | None = field(init=False)  # ``pilot_as_caller_id``: the caller
    max_wait: float | None = field(init=False)
    max_length: int = field(init=False)
    overflow_when_empty: bool = field(init=False)  # ``queue.when_empty: overflow``
    no_answer_timeout: float = field(init=False)
    no_answer_after: float | None = field(init=False)
    call_waiting: bool = field(init=False)

    def __post_init__(self) -> None:
        g, put = self.config, object.__setattr__
        put(self, "name", g.name)
        put(self, "route", (g.pilot,))
        put(self, "pilot_caller", Identity(g.pilot, g.name) if g.pilot_as_caller_id else None)
        put(self, "max_wait", g.queue.max_wait)
        put(self, "max_length", g.queue.max_length)
        put(self, "overflow_when_empty", g.queue.when_empty == "overflow")
        put(self, "no_answer_timeout", g.no_answer_timeout)
        put(self, "no_answer_after", g.no_answer.after)
        put(self, "call_waiting", g.call_waiting)


def position_of(info: GroupInfo, pointer: Pointer | None) -> int | None:
    """Where ``pointer`` stands in the group: its member's position (None when that
    member is not in the group); a position stored by an older version as is."""
    if pointer is None or isinstance(pointer, int):
        return pointer
    return info.positions.get(pointer)


@dataclass(frozen=True, slots=True)
class Installed:
    """What :func:`install` made of a configuration."""

    groups: dict[str, GroupInfo]
    groups_of: dict[str, tuple[str, ...]]  # member -> the groups it is a member of
    flipped: list[tuple[str, str, bool]]  # (group, member, joined) the file changed
    # (group, member) taken out of a group by a reload while logged in: they log out
    left: list[tuple[str, str]] = field(default_factory=list)


def install(
    config: Config,
    old: dict[str, GroupInfo],
    store: StateStore,
    *,
    now: float,
    first: bool,
) -> Installed:
    """The groups of ``config``, after ``old`` (empty at start); membership written."""
    groups: dict[str, GroupInfo] = {}
    groups_of: dict[str, list[str]] = {}
    flipped: list[tuple[str, str, bool]] = []
    left: list[tuple[str, str]] = []
    for g in config.groups:
        members = g.ordered_members()
        info = groups[g.name] = GroupInfo(
            config=g,
            strategy=strategy_for(g.algorithm),
            candidates=tuple(Candidate(m.key, m.position) for m in members),
            positions={m.key: m.position for m in members},
        )
        was = old.get(g.name)
        before = {m.key: m.joined for m in was.config.members} if was else {}
        for m in members:
            groups_of.setdefault(m.key, []).append(g.name)
            if m.key in before:
                if before[m.key] != m.joined:
                    flipped.append((g.name, m.key, m.joined))
            elif first:
                if not store.knows_membership(g.name, m.key):
                    store.set_joined(g.name, m.key, m.joined, now=now)
            elif m.joined:  # added by a reload: logs in (core.reload), noted as a login
                flipped.append((g.name, m.key, True))
            else:
                store.set_joined(g.name, m.key, False, now=now)
        if was is not None:
            left += _leave_removed(was, info, store, now=now)
    for name, was in old.items():
        if name not in groups:  # a group removed: its members leave it
            for c in was.candidates:
                if store.joined_since(name, c.key) is not None:
                    left.append((name, c.key))
                store.set_joined(name, c.key, False, now=now)
    return Installed(groups, {k: tuple(v) for k, v in groups_of.items()}, flipped, left)


def _leave_removed(
    was: GroupInfo, info: GroupInfo, store: StateStore, *, now: float
) -> list[tuple[str, str]]:
    """Members a reload took out of a group leave it; the pointer leaves them too.
    Returns the (group, member) of those that were logged in."""
    name, kept = was.config.name, info.positions
    removed = [c.key for c in was.candidates if c.key not in kept]
    left = [(name, key) for key in removed if store.joined_since(name, key) is not None]
    for key in removed:
        store.set_joined(name, key, False, now=now)
    pointer = store.last_answered(name)
    position = position_of(was, pointer)
    if not removed or position is None or (isinstance(pointer, str) and pointer in kept):
        return left
    before = [c.key for c in was.candidates if c.position <= position]
    after = [c.key for c in was.candidates if c.position > position]
    survivor = next((k for k in reversed(after + before) if k in kept), None)
    if survivor is not None:
        store.set_last_answered(name, survivor)
    return left
