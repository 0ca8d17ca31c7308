"""Transfers in the group core: a member sends its call on (blind) or joins it to another.

Theory of operation
-------------------
A transfer is two facts for the core, whichever way the phone asked for it.

**Blind** (:class:`~huntgroup.queue.events.CallTransferred`, RFC 3515 REFER):
the member connected to a call sends it to a target. The member's part ends
exactly as if the call had ended for it: its talk time is credited up to now,
it is free again (after the group's wrap-up), and the queues it serves are
dispatched. The caller's call does not end: it is routed to the target like a
forward (:mod:`huntgroup.queue.forwards`): a pilot's group takes it as a new
arrival (its queue, music, algorithm and timers, FIFO by the time of the
transfer), a line rings, an outside number is a ``Forward`` out of the core.
A transfer is a new decision by a person, so the call's route starts again
from the target (a transfer back to the group the call came from is no
loop); the chain of forwards the target may start is bounded as usual.

**Attended** (:class:`~huntgroup.queue.events.CallsJoined`, RFC 3891
Replaces): the member, connected to a call, called a colleague or a pilot
itself (the consultation call) and joins the two. Its part of the first call
ends as above; the consultation call goes on, with its caller now the first
call's caller: its member's talk time runs on from that member's own answer
(the consultation is talk time too), and its wrap-up, when it ends, is its own
group's. The driver keeps the joined call under the consultation call's id.

A fact about a call the core does not hold, or whose connected member is not
``member``, changes nothing: a transfer never creates a call, and a call still
ends exactly once.
"""

from __future__ import annotations

from huntgroup.queue.actions import Action, Forward, Reroute
from huntgroup.queue.context import RoutedCall, RoutingContext
from huntgroup.queue.events import CallsJoined, CallTransferred
from huntgroup.queue.forwards import Reentry, follow
from huntgroup.queue.outcomes import hung_up


def connected_to(core: RoutingContext, call_id: str, member: str) -> RoutedCall | None:
    """The call ``call_id`` when ``member`` is the member connected to it."""
    call = core._calls.get(call_id)
    if call is None or call.member != member or call.connected_at is None:
        return None
    return call


def transfer(
    core: RoutingContext, event: CallTransferred | CallsJoined, actions: list[Action]
) -> None:
    """Carry out one transfer fact (see the module docstring)."""
    match event:
        case CallTransferred(call_id, member, target):
            call = connected_to(core, call_id, member)
            if call is None or not target:
                return
            caller, internal = call.caller, call.caller_internal
            hung_up(core, call_id, actions)  # the member's part ends, the member is freed
            limit = core.config.server.limits.max_internal_forwards
            step = follow(
                Forward(call_id, target, "transfer"),
                (),
                pilots=core._pilots,
                lines=core._lines,
                limit=limit,
            )
            if type(step) is Reroute:
                core._reentries.append(Reentry(step, caller, internal))
            actions.append(step)
        case CallsJoined(call_id, member, joined):
            other = core._calls.get(joined)
            if (
                connected_to(core, call_id, member) is None
                or other is None
                or other.member is None
                or other.connected_at is None
            ):
                return
            hung_up(core, call_id, actions)
