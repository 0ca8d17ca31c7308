"""Supervision keys: the dialog event package we serve (RFC 4235 over RFC 6665).

Theory of operation
-------------------
A line's phone SUBSCRIBEs (``Event: dialog``) to another line's number or to
a pilot; :func:`subscribe` checks it in this order:

1. ``server.subscriptions.enabled`` and an ``Event: dialog`` (else 489 Bad
   Event with ``Allow-Events: dialog``); the node draining: 503;
2. an ``Accept`` that admits ``application/dialog-info+xml`` (else 415);
3. the watcher: a trusted peer's P-Asserted-Identity naming one of our lines,
   or digest credentials of the line in From (:func:`~huntgroup.engine.b2bua.lines.authenticated`:
   401 or 407 challenge, 403, lockouts); the upstream never subscribes (403);
4. the target: one of our lines or pilots (else 404, only once authenticated);
5. ``Expires`` (RFC 6665 §4.2.1.1): absent, ``default_expires``; below
   ``min_expires`` (but not 0), 423 with Min-Expires; above ``max_expires``, cut
   down; 0 is a fetch: one NOTIFY with the state, ``terminated``;
6. the bounds: ``max_subscriptions`` on the node (503 with Retry-After) and
   ``max_per_line`` per watching line (403).

Accepted: 200 with the granted Expires and our Contact, then at once a NOTIFY
with the full state (:func:`notify`). Every NOTIFY carries the whole
document (:mod:`~huntgroup.engine.sip.dialog_info`, version + 1) and
``Subscription-State: active;expires=N``; a dialog gone since the last
document is listed once more as ``terminated``, then left out.

A SUBSCRIBE inside the subscription's dialog (:func:`in_subscription`)
refreshes it (a new expiry, a NOTIFY) or, with ``Expires: 0``, ends it (a
final NOTIFY, ``terminated;reason=timeout``). A subscription that is not
refreshed ends on its timer the same way (:func:`expire`). A NOTIFY answered
with anything but 2xx (481 first of all), timed out or undeliverable ends
the subscription at once, without another NOTIFY (:func:`notify_answered`).
A reload that removes the watched number ends its subscriptions
(``noresource``), one that removes the watching line ends its own
(``deactivated``); a node that starts draining ends them all
(``deactivated``: the phones subscribe again, to another node).

Changes: :func:`publish` runs at the end of every input the B2BUA handles
(the one observer hook, in the facade's ``flush``): when anybody is
subscribed it reads the watched numbers' dialogs (:mod:`line_states`, one
pass over the calls), and notifies the subscriptions whose number changed.
One NOTIFY in flight per subscription: a change meanwhile is sent when its
answer comes, as the latest state (RFC 6665 §4.2.2), so NOTIFYs never pile up.
"""

from __future__ import annotations

import logging
import math

from huntgroup.engine.b2bua.addressing import asserted_values, number_of, user_of
from huntgroup.engine.b2bua.context import ALLOW_EVENTS, Context
from huntgroup.engine.b2bua.line_states import dialogs_of
from huntgroup.engine.b2bua.lines import authenticated
from huntgroup.engine.b2bua.phone_watch import watch_failed, watch_notify, watch_response
from huntgroup.engine.b2bua.subscription_table import (
    Subscription,
    SubscriptionTable,
    take_answer,
)
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialog_info import CONTENT_TYPE, EVENT, DialogEntry, event_of, render
from huntgroup.engine.sip.dialogs import uas_dialog
from huntgroup.engine.sip.fields import parse_name_address
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError

log = logging.getLogger("huntgroup.calls")

FULL_RETRY_AFTER = "60"
"""Retry-After of the 503 when the subscription table is full."""


def subscribe(ctx: Context, key: TransactionKey, request: Request, source: Peer) -> None:
    """A SUBSCRIBE outside any dialog (see the module docstring for the checks)."""
    settings = ctx.config.server.subscriptions
    if not settings.enabled or event_of(request) != EVENT:
        ctx.respond(key, request, 489, headers=(("Allow-Events", ALLOW_EVENTS),))
        return
    if not ctx.accepting:
        ctx.respond(key, request, 503, headers=(("Retry-After", "30"),))
        return
    if not _accepts(request):
        ctx.respond(key, request, 415, headers=(("Accept", CONTENT_TYPE),))
        return
    watcher = _watcher(ctx, key, request, source)
    if watcher is None:
        return  # answered: 401, 407, 403 or 503
    target = number_of(user_of(request.uri))
    if not target or not _known(ctx, target):
        ctx.respond(key, request, 404)
        return
    expires = _granted(ctx, key, request)
    if expires is None:
        return  # answered 423
    table = ctx.subscriptions
    if expires and len(table) >= settings.max_subscriptions:
        log.info("SUBSCRIBE from %s refused (503): server.subscriptions.max_subscriptions", watcher)
        ctx.respond(key, request, 503, headers=(("Retry-After", FULL_RETRY_AFTER),))
        return
    if expires and table.per_line[watcher] >= settings.max_per_line:
        log.info("SUBSCRIBE from %s refused (403): server.subscriptions.max_per_line", watcher)
        ctx.respond(key, request, 403)
        return
    me = ctx.local_for(source)
    response = ctx.respond(key, request, 200, headers=_accepted_headers(expires, me))
    try:
        dialog = uas_dialog(request, response, source, me)
    except ProtocolError as err:  # a Contact we cannot read: no dialog, nothing kept
        log.info("SUBSCRIBE from %s: no usable dialog: %s", watcher, err)
        return
    sub = Subscription(
        id=f"s{next(ctx.seq)}",
        target=target,
        watcher=watcher,
        dialog=dialog,
        expires_at=ctx.now + expires,
    )
    if not expires:  # a fetch (RFC 6665 §4.4.3): the state once, no subscription kept
        _send(ctx, sub, _state(ctx, target), final="timeout")
        return
    table.add(sub)
    log.info("line %s watches %s for %d s", watcher, target, expires)
    notify(ctx, sub)


def in_subscription(ctx: Context, key: TransactionKey, request: Request) -> bool:
    """A SUBSCRIBE inside the dialog of one of our subscriptions: a refresh, or with
    ``Expires: 0`` the end of it; a NOTIFY inside one of our subscriptions to a phone
    (:mod:`phone_watch`). False when ``request`` belongs to none."""
    if request.method == "NOTIFY":
        return watch_notify(ctx, key, request)
    sub = ctx.subscriptions.by_dialog.get(
        (request.call_id, request.to.tag or "", request.from_.tag or "")
    )
    if sub is None or request.method != "SUBSCRIBE":
        return False
    if sub.ending is not None:  # its final NOTIFY is on the way: nothing to refresh
        ctx.respond(key, request, 481)
        return True
    dialog = sub.dialog
    if request.cseq.number <= dialog.remote_cseq:  # §12.2.2
        ctx.respond(key, request, 500, headers=(("Retry-After", "1"),))
        return True
    dialog.remote_cseq = request.cseq.number
    if event_of(request) != EVENT:
        ctx.respond(key, request, 489, headers=(("Allow-Events", ALLOW_EVENTS),))
        return True
    expires = _granted(ctx, key, request)
    if expires is None:
        return True  # answered 423
    ctx.respond(
        key, request, 200, to_tag=dialog.local_tag, headers=_accepted_headers(expires, dialog.me)
    )
    if not expires:
        log.info("line %s stops watching %s", sub.watcher, sub.target)
        end(ctx, sub, "timeout")
        return True
    ctx.subscriptions.rearm(sub, ctx.now + expires)
    notify(ctx, sub)
    return True


def notify(ctx: Context, sub: Subscription) -> None:
    """Send ``sub`` the current state (or mark it stale while a NOTIFY is in flight)."""
    if sub.pending is not None:
        sub.stale = True
        return
    _send(ctx, sub, _state(ctx, sub.target))


def end(ctx: Context, sub: Subscription, reason: str) -> None:
    """End ``sub`` with a final NOTIFY (``terminated;reason=``), once none is in flight."""
    sub.ending = reason
    ctx.subscriptions.changes += 1  # an ending subscription's expiry no longer counts
    if sub.pending is None:
        _send(ctx, sub, _state(ctx, sub.target), final=reason)


def end_all(ctx: Context, reason: str) -> None:
    """End every subscription (``deactivated`` when the node drains: RFC 6665 §4.2.2,
    the watcher subscribes again at once, to another node)."""
    for sub in list(ctx.subscriptions.subs.values()):
        if sub.ending is None:
            end(ctx, sub, reason)


def end_unknown(ctx: Context) -> None:
    """After a reload: end the subscriptions of a watcher that is no longer a line
    (``deactivated``) or to a number that is no longer a line or a pilot
    (``noresource``)."""
    for sub in list(ctx.subscriptions.subs.values()):
        if sub.ending is not None:
            continue
        if not _known(ctx, sub.target):
            end(ctx, sub, "noresource")
        elif ctx.config.line(sub.watcher) is None:
            end(ctx, sub, "deactivated")


def expire(ctx: Context) -> None:
    """The subscriptions whose time is up end (RFC 6665 §4.2.2: ``reason=timeout``)."""
    for sub in ctx.subscriptions.expired(now=ctx.now):
        log.info("line %s: subscription to %s expired", sub.watcher, sub.target)
        end(ctx, sub, "timeout")


def publish(ctx: Context) -> None:
    """Notify the subscriptions whose watched number's dialogs changed (see the module
    docstring); nothing to do, and nothing read, when nobody is subscribed. Only numbers
    with dialogs now or at the last look are compared: the cost is one pass over the
    calls, whatever the number of subscriptions."""
    table = ctx.subscriptions
    if not table.by_target:
        return
    now = dialogs_of(ctx, table.by_target)
    for target in [*now, *(t for t in table.last if t not in now)]:
        entries = now.get(target, ())
        if table.last.get(target, ()) == entries:
            continue
        _remember(table, target, entries)
        for sid in list(table.by_target.get(target, ())):
            sub = table.subs[sid]
            if sub.ending is None:
                notify(ctx, sub)


def notify_answered(ctx: Context, key: TransactionKey, status: int) -> bool:
    """The final answer (or failure: 408, 503) to one of our NOTIFYs; False when ``key``
    is no NOTIFY of ours."""
    table = ctx.subscriptions
    ours, sub = take_answer(table.notifies, table.subs, key)
    if sub is None:
        return ours
    if not 200 <= status < 300:
        log.info(
            "line %s: NOTIFY for %s answered %d, subscription ended",
            sub.watcher,
            sub.target,
            status,
        )
        table.remove(sub)
        return True
    if sub.ending is not None:
        _send(ctx, sub, _state(ctx, sub.target), final=sub.ending)
    elif sub.stale:
        sub.stale = False
        _send(ctx, sub, _state(ctx, sub.target))
    return True


def subscription_response(ctx: Context, key: TransactionKey | None, response: Response) -> bool:
    """``response`` finally answers one of our NOTIFYs or of our SUBSCRIBEs to phones
    (and was handled); False when it answers something else."""
    if key is None or response.status < 200:
        return False
    method = response.cseq.method
    if method == "NOTIFY":
        return notify_answered(ctx, key, response.status)
    if method == "SUBSCRIBE":
        return watch_response(ctx, key, response)
    return False


def subscription_failed(ctx: Context, key: TransactionKey, request: Request, status: int) -> bool:
    """One of our NOTIFYs or SUBSCRIBEs got no answer (408) or could not be sent (503)."""
    if request.method == "NOTIFY":
        return notify_answered(ctx, key, status)
    if request.method == "SUBSCRIBE":
        return watch_failed(ctx, key, status)
    return False


# ------------------------------------------------------------------ helpers
def _known(ctx: Context, number: str) -> bool:
    """``number`` is one of our lines or pilots."""
    return ctx.config.line(number) is not None or ctx.core.group_of_pilot(number) is not None


def _state(ctx: Context, target: str) -> tuple[DialogEntry, ...]:
    table = ctx.subscriptions
    entries = dialogs_of(ctx, {target}).get(target, ())
    if target in table.by_target:
        _remember(table, target, entries)
    return entries


def _remember(table: SubscriptionTable, target: str, entries: tuple[DialogEntry, ...]) -> None:
    """``target``'s state as last notified (an idle one is not kept)."""
    if entries:
        table.last[target] = entries
    else:
        table.last.pop(target, None)


def _send(
    ctx: Context,
    sub: Subscription,
    entries: tuple[DialogEntry, ...],
    *,
    final: str | None = None,
) -> None:
    live = {e.id for e in entries}
    gone = tuple(e.ended() for e in sub.shown if e.id not in live)
    sub.shown = entries
    entity = f"sip:{sub.target}@{ctx.config.server.domain}"
    body = render(entity, sub.version, entries + gone)
    sub.version += 1
    if final is not None:
        state = f"terminated;reason={final}"
    else:
        state = f"active;expires={max(0, math.ceil(sub.expires_at - ctx.now))}"
    dialog = sub.dialog
    request = dialog.request(
        "NOTIFY",
        ctx.rng,
        body=body,
        content_type=CONTENT_TYPE,
        headers=(
            ("Event", EVENT),
            ("Subscription-State", state),
            ("Contact", dialog.me.contact()),
        ),
    )
    key = ctx.start(request, dialog.peer)
    table = ctx.subscriptions
    if final is not None:
        table.remove(sub)
        return
    table.notifies[key] = sub.id
    sub.pending = key


def _accepted_headers(expires: int, me: Peer) -> tuple[tuple[str, str], ...]:
    return (("Expires", str(expires)), ("Contact", me.contact()))


def _granted(ctx: Context, key: TransactionKey, request: Request) -> int | None:
    """The Expires we grant, or None once answered 423 (RFC 6665 §4.2.1.1)."""
    settings = ctx.config.server.subscriptions
    asked = request.expires
    if asked is None:
        return settings.default_expires
    if 0 < asked < settings.min_expires:
        ctx.respond(key, request, 423, headers=(("Min-Expires", str(settings.min_expires)),))
        return None
    return min(asked, settings.max_expires)


def _accepts(request: Request) -> bool:
    """No Accept (RFC 4235 §3.5: dialog-info is the default), or one naming it or a range."""
    values = request.headers.get_all("Accept")
    if not values:
        return True
    wanted = ("application/dialog-info+xml", "application/*", "*/*")
    items = [item.split(";", 1)[0].strip().lower() for v in values for item in v.split(",")]
    return any(item in wanted for item in items) or items == [""]


def _watcher(ctx: Context, key: TransactionKey, request: Request, source: Peer) -> str | None:
    """The line subscribing: a trusted peer's asserted line, or the From's line once its
    digest credentials hold. None when answered (challenge, 403, lockout)."""
    trust = ctx.trust
    if trust.trusts(source.host) and not trust.is_peer(source.host):
        ctx.respond(key, request, 403)  # the upstream speaks for no line
        return None
    if trust.is_peer(source.host):
        for value in asserted_values(request):
            line = number_of(user_of(parse_name_address(value).uri))
            if line and ctx.config.line(line) is not None:
                return line
    number = number_of(user_of(request.from_.uri))
    proxy = request.headers.get("Authorization") is None
    if not authenticated(ctx, key, request, source, number, proxy=proxy):
        return None
    return number
