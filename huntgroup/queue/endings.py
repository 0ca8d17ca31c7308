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


def queue_full(core: RoutingContext, call: RoutedCall, actions: list[Action]) -> None:
    """No place in the queue: ``overflow_to``, else 486 Busy Here."""
    assert call.group is not None
    target = call.group.queue.overflow_to
    finish(
        core,
        call,
        Forward(call.id, target, "queue_full") if target else Release(call.id, 486, "queue_full"),
        actions,
    )


def overflow_empty(core: RoutingContext, call: RoutedCall, actions: list[Action]) -> None:
    """No member available and ``when_empty: overflow``: ``overflow_to``, else 480."""
    assert call.group is not None
    target = call.group.queue.overflow_to
    finish(
        core,
        call,
        Forward(call.id, target, "empty") if target else Release(call.id, 480, "empty"),
        actions,
    )


def line_rule(core: RoutingContext, call: RoutedCall, *, busy: bool, actions: list[Action]) -> None:
    """A direct call the line did not take follows the line's own forwarding."""
    line = call.line
    assert line is not None
    final: Release | Forward
    if busy:
        target = line.forward_busy
        final = Forward(call.id, target, "busy") if target else Release(call.id, 486, "busy")
    else:
        target = line.forward_no_answer
        final = (
            Forward(call.id, target, "no_answer") if target else Release(call.id, 480, "no_answer")
        )
    finish(core, call, final, actions)
