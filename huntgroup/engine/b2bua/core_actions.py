"""The group core's side of a call: the events that start it, its actions carried out in SIP.

Theory of operation
-------------------
A call taken in becomes a core event (:func:`route`: ``CallArrived`` for a
pilot, ``DirectCallArrived`` for a line; :func:`outgoing`:
``OutgoingCallStarted`` for a line calling out through the upstream). The
core's actions come back through :func:`carry_out`: ``Ringback`` → 180,
``Hold`` → 183 or 200 with music, ``Ring`` → member legs, ``Cancel`` → the
member's legs cancelled, ``Bridge`` → the winning leg connected, ``Release``
→ the call ended with its status, ``Forward`` → :func:`forward` (routed again
when the target is one of our numbers, else 302 or a new leg out).
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
from huntgroup.engine.b2bua.caller_leg import connect, hold, ringing
from huntgroup.engine.b2bua.calls import Call, CallState, LegState
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.member_legs import new_leg, ring
from huntgroup.engine.b2bua.teardown import cancel_leg, end_call, forget
from huntgroup.engine.sip.uri import parse_uri
from huntgroup.queue.actions import (
    Action,
    Bridge,
    Cancel,
    Forward,
    Hold,
    Identity,
    Release,
    Ring,
    Ringback,
)
from huntgroup.queue.events import CallArrived, DirectCallArrived, OutgoingCallStarted

log = logging.getLogger("huntgroup.calls")


def carry_out(ctx: Context, actions: list[Action]) -> None:
    by_core = ctx.index.by_core
    for action in actions:
        call = by_core.get(action.call_id)
        if call is None:
            continue
        match action:
            case Ringback():
                ringing(ctx, call)
            case Hold(_, answer):
                hold(ctx, call, answer)
            case Ring(_, member, caller_id, group, _timeout):
                ring(ctx, call, member, caller_id, group)
            case Cancel(_, member):
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
                log.info("call %s: released (%s, %d)", call.key, reason, status)
                end_call(ctx, call, bye_caller=True, status=status, tell_core=False)
            case Forward(_, target, reason):
                forward(ctx, call, target, reason)


def route(
    ctx: Context, call: Call, caller_number: str, name: str, group: str | None, number: str
) -> None:
    """Hand ``call`` to the core: to ``group`` when it called a pilot, else to line
    ``number``."""
    ctx.index.add_core_id(call, f"{call.key}.{next(ctx.seq)}")
    if group is not None:
        log.info("call %s: %s -> group %s (%s)", call.key, caller_number, group, number)
        ctx.tell_core(CallArrived(call.core_id, group, caller_number, name))
    else:
        internal = call.verified_line is not None  # authenticated, not a From claim
        log.info(
            "call %s: %s -> line %s (%s)",
            call.key,
            caller_number,
            number,
            "internal" if internal else "external",
        )
        ctx.tell_core(DirectCallArrived(call.core_id, number, caller_number, name, internal))


def outgoing(ctx: Context, call: Call, line: str, name: str, number: str) -> None:
    """Line ``line`` calls ``number`` out through the upstream."""
    ctx.index.add_core_id(call, f"{call.key}.{next(ctx.seq)}")
    call.outgoing_line = line
    log.info("call %s: line %s -> %s via upstream", call.key, line, number)
    ctx.tell_core(OutgoingCallStarted(call.core_id, line))
    upstream = ctx.config.server.upstream
    assert upstream is not None
    destination = peer_of(parse_uri(upstream))
    if destination is None:
        end_call(ctx, call, bye_caller=False, status=502)
        return
    target = target_uri(number, ctx.config.server.domain, upstream)
    new_leg(ctx, call, "", target, destination, Identity(line, name), call.asserted)


def forward(ctx: Context, call: Call, target: str, reason: str) -> None:
    """The core forwards ``call`` to ``target``: one of our numbers is routed again
    here (a bounded number of times), anything else gets a 302 (caller not answered
    yet) or a new leg out through the upstream."""
    log.info("call %s: forwarded to %s (%s)", call.key, target, reason)
    ctx.index.by_core.pop(call.core_id, None)
    group = ctx.core.group_of_pilot(target)
    if group is not None or ctx.config.line(target) is not None:
        # One of our numbers: routed again here, a bounded number of times. The loops
        # `huntgroup check` cannot see (hunt_direct_calls, a reload) end with 482/483.
        route_so_far = call.route or [call.number]
        status = 482 if target in route_so_far else None
        if status is None and len(route_so_far) > ctx.config.server.limits.max_internal_forwards:
            status = 483
        if status is not None:
            log.warning(
                "call %s: forward loop %s -> %s: ended (%d)",
                call.key,
                " -> ".join(route_so_far),
                target,
                status,
            )
            end_call(ctx, call, bye_caller=True, status=status, tell_core=False)
            return
        call.route = [*route_so_far, target]
        caller = call.invite.from_
        route(
            ctx,
            call,
            user_of(caller.uri) or "anonymous",
            caller.display_name or "",
            group,
            target,
        )
        return
    uri = target_uri(target, ctx.config.server.domain, ctx.config.server.upstream)
    if call.state is CallState.EARLY:
        ctx.respond(
            call.tx, call.invite, 302, to_tag=call.to_tag, headers=(("Contact", f"<{uri}>"),)
        )
        call.state = CallState.ENDED
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
    if number == call.verified_line or not ours(ctx, number):
        return Identity(user, caller.display_name or "")
    hidden = call.privacy is not None and call.privacy.strip().lower() != "none"
    if call.verified_line is not None and not hidden:
        return Identity(call.verified_line)
    forwarding = call.route[-1] if call.route else call.number
    group = ctx.core.group_of_pilot(forwarding)
    if group is not None:
        return Identity(forwarding, group)
    return Identity(ANONYMOUS, "Anonymous")


def ours(ctx: Context, number: str) -> bool:
    """``number`` (a user part: escapes and visual separators do not hide it, see
    :func:`number_of`) is one of our lines or pilots."""
    number = number_of(number)
    return ctx.config.line(number) is not None or ctx.core.group_of_pilot(number) is not None
