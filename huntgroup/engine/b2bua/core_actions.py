"""The group core's side of a call: the events that start it, its actions carried out in SIP.

Theory of operation
-------------------
A call taken in gets its id in the core for its whole life (:func:`enter_core`)
and becomes a core event: ``CallArrived`` for a pilot, ``DirectCallArrived``
for a line (sent by :func:`~huntgroup.engine.b2bua.inbound.new_invite`, after
:func:`route` noted the number the call is at), ``OutgoingCallStarted`` for a
line calling out through the upstream (:func:`outgoing`). The core's actions come back
through :func:`carry_out`: ``Claim`` (several nodes) → to the driver, ``Ringback`` →
180, ``Hold`` → 183 or 200 with the group's music, ``Ring`` → member legs
(``RingAll``, ring all: those of each of its members), ``Cancel`` → the member's legs
cancelled, ``Bridge`` → the winning leg connected, ``Release`` → the call ended with
its status, ``Forward`` (a target outside the server) → :func:`forward` (302, or a new
leg out). A forward to one of our own numbers is followed by the core itself:
``Reroute`` is only noted (logged, and :func:`route`: the number the call is at now),
``RefuseForward`` ends the call (482 or 483: a forward loop).
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.addressing import (
    ANONYMOUS,
    PHONE_NUMBER,
    number_of,
    peer_of,
    target_uri,
    user_of,
)
from huntgroup.engine.b2bua.call_log import CallEvent, about
from huntgroup.engine.b2bua.caller_leg import connect, hold, ringing
from huntgroup.engine.b2bua.calls import Call, CallState, LegState
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.control import take_member_changes
from huntgroup.engine.b2bua.member_legs import new_leg, ring
from huntgroup.engine.b2bua.teardown import cancel_leg, end_call, forget
from huntgroup.engine.sip.uri import parse_uri
from huntgroup.queue.actions import (
    Action,
    Bridge,
    Cancel,
    Claim,
    Forward,
    Hold,
    Identity,
    RefuseForward,
    Release,
    Reroute,
    Ring,
    RingAll,
    Ringback,
)
from huntgroup.queue.events import OutgoingCallStarted

log = logging.getLogger("huntgroup.calls")


def carry_out(ctx: Context, actions: list[Action]) -> None:
    take_member_changes(ctx)  # the control changes the core noted: records
    by_core = ctx.index.by_core
    for action in actions:
        call = by_core.get(action.call_id)
        if call is None:
            continue
        match action:
            case Ringback():
                ctx.records.entered(call.key, wall=ctx.wall())
                ringing(ctx, call)
            case Hold(_, answer, music):
                ctx.records.entered(call.key, wall=ctx.wall())
                hold(ctx, call, answer, music)
            case Ring(_, member, caller_id, group, timeout):
                ctx.records.offered(call.key, member, wall=ctx.wall(), deadline=ctx.now + timeout)
                ring(ctx, call, member, caller_id, group)
            case RingAll(_, members, caller_id, group, timeout):
                for member in members:  # ring all: each member as for its own Ring
                    ctx.records.offered(
                        call.key, member, wall=ctx.wall(), deadline=ctx.now + timeout
                    )
                    ring(ctx, call, member, caller_id, group)
            case Claim():
                ctx.out.append(action)  # the driver asks the shared state, then tells us
            case Cancel(_, member):
                ctx.records.offer_cancelled(call.key, member, now=ctx.now, wall=ctx.wall())
                for leg in call.legs.values():
                    if leg.member == member and leg.state is not LegState.ENDED:
                        cancel_leg(ctx, leg)
            case Bridge(_, member):
                winner = next(
                    (x for x in call.legs.values() if x.member == member and x.dialog), None
                )
                if winner is not None:
                    connect(ctx, call, winner)
            case Release(_, status, reason):
                log.info(
                    "call %s: released (%s, %d)",
                    call.key,
                    reason,
                    status,
                    extra=about(ctx, call, "released"),
                )
                ctx.records.released(call.key, reason, wall=ctx.wall())
                end_call(ctx, call, bye_caller=True, status=status, tell_core=False)
            case Forward(_, target, reason):
                forward(ctx, call, target, reason)
            case Reroute(_, target, reason, group):
                log_forwarded(ctx, call, target, reason)
                ctx.records.left(call.key, reason, wall=ctx.wall(), target=target)
                route(ctx, call, user_of(call.invite.from_.uri) or "anonymous", group, target)
            case RefuseForward(_, target, reason, status, route_so_far):
                log_forwarded(ctx, call, target, reason)
                log.warning(
                    "call %s: forward loop %s -> %s: ended (%d)",
                    call.key,
                    " -> ".join(route_so_far),
                    target,
                    status,
                    extra=about(ctx, call, "forward_loop"),
                )
                ctx.records.caused(call.key, "refused")
                ctx.records.left(call.key, reason, wall=ctx.wall())
                end_call(ctx, call, bye_caller=True, status=status, tell_core=False)


def enter_core(ctx: Context, call: Call) -> None:
    """Give the call its id in the group core, kept for its whole life."""
    ctx.index.add_core_id(call, f"{call.key}.{next(ctx.seq)}")


def route(ctx: Context, call: Call, caller_number: str, group: str | None, number: str) -> None:
    """The call is at our ``number`` now (the pilot of ``group``, else a line): when it
    arrives, then at each forward to another of our numbers, which the core follows."""
    event: CallEvent = "arrived" if call.number == number else "rerouted"
    call.number = number
    ctx.records.routed(call.key, group, number)
    if log.isEnabledFor(logging.INFO):  # about() is work: only when the line is written
        _log_routed(ctx, call, caller_number, group, number, event)


def _log_routed(
    ctx: Context, call: Call, caller_number: str, group: str | None, number: str, event: CallEvent
) -> None:
    if group is not None:
        log.info(
            "call %s: %s -> group %s (%s)",
            call.key,
            caller_number,
            group,
            number,
            extra=about(ctx, call, event),
        )
    else:
        log.info(
            "call %s: %s -> line %s (%s)",
            call.key,
            caller_number,
            number,
            "internal" if call.verified_line is not None else "external",
            extra=about(ctx, call, event),
        )


def outgoing(ctx: Context, call: Call, line: str, name: str, number: str) -> None:
    """Line ``line`` calls ``number`` out through the upstream."""
    enter_core(ctx, call)
    call.outgoing_line = line
    log.info(
        "call %s: line %s -> %s via upstream",
        call.key,
        line,
        number,
        extra=about(ctx, call, "outgoing"),
    )
    ctx.records.outgoing(call.key)
    ctx.tell_core(OutgoingCallStarted(call.core_id, line))
    upstream = ctx.config.server.upstream
    assert upstream is not None
    destination = peer_of(parse_uri(upstream))
    if destination is None:
        ctx.records.caused(call.key, "refused")
        end_call(ctx, call, bye_caller=False, status=502)
        return
    target = target_uri(number, ctx.config.server.domain, upstream)
    new_leg(ctx, call, "", target, destination, Identity(line, name), call.asserted)


def forward(ctx: Context, call: Call, target: str, reason: str) -> None:
    """The core forwards ``call`` out of the server, to ``target``: a 302 (caller not
    answered yet) or a new leg out through the upstream. (The core follows forwards to
    our own numbers itself: :class:`Reroute`.)"""
    log_forwarded(ctx, call, target, reason)
    ctx.records.caused(call.key, "forwarded")
    ctx.records.left(call.key, reason, wall=ctx.wall(), target=target)
    ctx.index.by_core.pop(call.core_id, None)
    uri = target_uri(target, ctx.config.server.domain, ctx.config.server.upstream)
    if call.state is CallState.EARLY:
        ctx.respond(
            call.tx, call.invite, 302, to_tag=call.to_tag, headers=(("Contact", f"<{uri}>"),)
        )
        call.state = CallState.ENDED
        ctx.records.ending(call.key, 302)
        forget(ctx, call)
        return
    destination = peer_of(parse_uri(ctx.config.server.upstream or str(uri)))
    if destination is None:
        end_call(ctx, call, bye_caller=True, tell_core=False)
        return
    new_leg(
        ctx,
        call,
        "",
        parse_uri(str(uri)),
        destination,
        presented_outside(ctx, call),
        call.asserted,
    )


def log_forwarded(ctx: Context, call: Call, target: str, reason: str) -> None:
    """The log line of a call the core forwards: out of the server, to one of our own
    numbers, or into a forward loop."""
    log.info(
        "call %s: forwarded to %s (%s)",
        call.key,
        target,
        reason,
        extra=about(ctx, call, "forwarded"),
    )


def presented_outside(ctx: Context, call: Call) -> Identity:
    """The caller shown in the From of a call forwarded out of the server (a trunk that
    gets no PAI takes the caller ID from it).

    An outside caller keeps the number it called from, and a line its own number. But a
    From naming one of our numbers (a line, a pilot) that is not the verified caller is a
    claim nobody checked: the trunk must not present it. It becomes the verified line
    (a trusted peer asserted one, no Privacy asked), else the pilot the call was
    routed to last (the group whose overflow sends it out), else anonymous (RFC 3323:
    a line's own forward; the core no longer says which group a finished call had)."""
    caller = call.invite.from_
    user = user_of(caller.uri) or ANONYMOUS
    number = number_of(user)  # %30102030405 and 01-02-03-04-05 are 0102030405
    if PHONE_NUMBER.fullmatch(number):
        user = number  # a telephone number is presented as compared (john.doe stays)
    if number == call.verified_line:  # our line: its licence name, if it has one
        return Identity(user, line_name(ctx, number) or caller.display_name or "")
    if not ours(ctx, number):
        return Identity(user, caller.display_name or "")
    hidden = call.privacy is not None and call.privacy.strip().lower() != "none"
    if call.verified_line is not None and not hidden:
        return Identity(call.verified_line, line_name(ctx, call.verified_line))
    group = ctx.core.group_of_pilot(call.number)
    if group is not None:
        return Identity(call.number, group)
    return Identity(ANONYMOUS, "Anonymous")


def line_name(ctx: Context, line: str | None) -> str:
    """The licence name of our line ``line`` (``lines[].name``), "" for none: the display
    name the line's calls are presented under."""
    config = ctx.config.line(line) if line is not None else None
    return config.name if config is not None else ""


def ours(ctx: Context, number: str) -> bool:
    """``number`` (a user part: escapes and visual separators do not hide it, see
    :func:`number_of`) is one of our lines or pilots."""
    number = number_of(number)
    return ctx.config.line(number) is not None or ctx.core.group_of_pilot(number) is not None
