"""How a call leaves the core, or the group or line of ours it reached.

Theory of operation
-------------------
A call the core gives up on ends with one final action (:func:`finish`): a
``Release`` with its status, or a forward. The forward is followed
(:mod:`~huntgroup.queue.forwards`): a target outside the server is a
``Forward`` out of the core; one of our own numbers is a ``Reroute``, and the
call arrives there as a :class:`~huntgroup.queue.forwards.Reentry` once the
event that caused it is handled; a loop or a chain too long is a
``RefuseForward``. Either way the call leaves its queue and the core's table
of calls here, so it ends exactly once.

The rules that pick that final action:

- a full queue (:func:`queue_full`): ``queue.overflow_to``, else 486;
- a group with no member available and ``when_empty: overflow``
  (:func:`overflow_empty`): ``queue.overflow_to``, else 480;
- a call to a line's own number that the line did not take
  (:func:`line_rule`): its ``forward_busy`` (else 486) when the line was busy,
  its ``forward_no_answer`` (else 480) otherwise.
"""

from __future__ import annotations

from typing import Literal

from huntgroup.queue.actions import Action, Forward, Release, Reroute
from huntgroup.queue.context import RoutedCall, RoutingContext
from huntgroup.queue.forwards import Reentry, follow


def finish(
    core: RoutingContext, call: RoutedCall, final: Release | Forward, actions: list[Action]
) -> None:
    """The caller's call leaves the core (released or forwarded), or this group or line
    of ours: a forward to another of our numbers arrives there once the event that
    caused it is handled (``arrivals.follow_forwards``)."""
    if call.group is not None:
        core.store.dequeue(call.group.name, call.id)
    core._calls.pop(call.id, None)
    if type(final) is Forward:
        limit = core.config.server.limits.max_internal_forwards
        step = follow(final, call.route, pilots=core._pilots, lines=core._lines, limit=limit)
        if type(step) is Reroute:
            core._reentries.append(Reentry(step, call.caller, call.caller_internal))
        actions.append(step)
        return
    actions.append(final)


FinalReason = Literal["queue_full", "empty", "busy", "no_answer"]
"""The reasons that are both a forward's and a release's."""


def forward_or_release(
    core: RoutingContext,
    call: RoutedCall,
    target: str | None,
    reason: FinalReason,
    status: int,
    actions: list[Action],
) -> None:
    """The call goes to ``target`` when there is one, else is released with ``status``."""
    final = Forward(call.id, target, reason) if target else Release(call.id, status, reason)
    finish(core, call, final, actions)


def queue_full(core: RoutingContext, call: RoutedCall, actions: list[Action]) -> None:
    """No place in the queue: ``overflow_to``, else 486 Busy Here."""
    assert call.group is not None
    forward_or_release(core, call, call.group.queue.overflow_to, "queue_full", 486, actions)


def overflow_empty(core: RoutingContext, call: RoutedCall, actions: list[Action]) -> None:
    """No member available and ``when_empty: overflow``: ``overflow_to``, else 480."""
    assert call.group is not None
    forward_or_release(core, call, call.group.queue.overflow_to, "empty", 480, actions)


def line_rule(core: RoutingContext, call: RoutedCall, *, busy: bool, actions: list[Action]) -> None:
    """A direct call the line did not take follows the line's own forwarding."""
    line = call.line
    assert line is not None
    if busy:
        forward_or_release(core, call, line.forward_busy, "busy", 486, actions)
    else:
        forward_or_release(core, call, line.forward_no_answer, "no_answer", 480, actions)
