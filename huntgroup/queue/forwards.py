"""Forwards to our own numbers: the core follows the chain itself.

Theory of operation
-------------------
A group's ``queue.overflow_to`` and ``no_answer.forward_to``, and a line's
``forward_busy`` and ``forward_no_answer``, name a target. A target outside
the server (another number, a SIP URI) is the end of the call in the core: a
``Forward`` action, which the B2BUA turns into a 302 or a leg to the upstream.
A target that is one of our own numbers, a pilot or a line of the
configuration, is not: the core routes the call again there, under the same
call id, as a new arrival (the group's queue, algorithm, music and timers
from that instant; or the line's ringing and its own forwards), and tells the
driver with ``Reroute``. The live server and the simulator follow the same
chains because they drive the same core.

Each call keeps its route: the number first dialled, then every number of ours
it was forwarded to. A forward to a number already on the route ends the call
with 482 Loop Detected; a forward past ``server.limits.max_internal_forwards``
forwards with 483 Too Many Hops (``RefuseForward``). So a call is routed at
most ``max_internal_forwards + 1`` times. ``huntgroup check`` refuses the
loops it can see in the file; these bounds catch the ones that only appear
while the server runs (``hunt_direct_calls``, a reload).

The new arrival (a :class:`Reentry`) waits until the event that caused the
forward is fully handled: the group that let the call go hands its freed
members to its own queue first, as if a driver fed the arrival as a new event.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from huntgroup.queue.actions import Forward, Identity, RefuseForward, Reroute

LOOP_DETECTED = 482
TOO_MANY_HOPS = 483


def follow(
    forward: Forward,
    route: tuple[str, ...],
    *,
    pilots: Mapping[str, str],
    lines: Container[str],
    limit: int,
) -> Forward | Reroute | RefuseForward:
    """What a forward of a call that went through ``route`` becomes.

    ``pilots`` maps our pilots to their groups, ``lines`` holds our line numbers,
    ``limit`` is ``server.limits.max_internal_forwards``.
    """
    target = forward.target
    group = pilots.get(target)
    if group is None and target not in lines:
        return forward  # leaves the server
    status = LOOP_DETECTED if target in route else TOO_MANY_HOPS if len(route) > limit else None
    if status is not None:
        return RefuseForward(forward.call_id, target, forward.reason, status, route)
    return Reroute(forward.call_id, target, forward.reason, group, route)


@dataclass(frozen=True, slots=True)
class Reentry:
    """A rerouted call waiting to arrive at its new number."""

    reroute: Reroute
    caller: Identity
    caller_internal: bool

    @property
    def route(self) -> tuple[str, ...]:
        """The call's route once it arrived: ``target`` last."""
        return (*self.reroute.route, self.reroute.target)
