"""Our subscriptions to members' phones: their own calls make the line busy for the core.

Theory of operation
-------------------
A phone may place or take calls the server never sees (a second account,
a call to a colleague's extension on the same PBX, a call placed straight to
a SIP URI). The server subscribes (SUBSCRIBE, ``Event: dialog``, RFC 4235)
to one registered contact of every line that is a member of a group: only
lines that registered with digest authentication, one subscription per line
(so the table is bounded by the configuration). Which contacts, by
``server.subscriptions.watch_phones``: ``auto`` (the default), only a
contact whose last REGISTER listed ``dialog`` in ``Allow-Events`` (RFC 6665
§8.2.2: the phone says it notifies that package; the registrar keeps it per
binding, :data:`WATCHED_EVENTS`); ``true``, any contact; ``false``, none.
The phone's NOTIFYs list its dialogs (full or partial documents,
:func:`~huntgroup.engine.sip.dialog_info.parse`); the dialogs of calls that
went through the server (a Call-ID of one of our member legs, or of a
caller's INVITE we took) are left out, so those calls never count twice;
while any other dialog is not terminated the line is busy, and each change
is told to the core as ``LineActivity(line, busy)`` on the B2BUA's normal
core-event path.

When: after every REGISTER of a member line (:func:`registered`: a refresh
that stops advertising ``dialog`` stops the watch, one that starts
advertising it starts one), and when the registrar's binding count changed
(:func:`look_at_registrations`, from the facade's observer hook: contacts
that expired or were evicted). A watch stays on its contact while that
contact may be watched; when it goes, the watch stops (a busy line is then
told not busy) and another eligible contact of the line, if any, is watched.
A watch is refreshed at 80% of the Expires the phone granted
(:func:`watches_due`). A contact registered through a proxy (``Path``, RFC
3327) is watched through it: the SUBSCRIBE goes to the first Path hop with the
Path as its Route set, and so do its refreshes unless the answer brought a
Record-Route. With several nodes only the node holding the binding watches
the phone (this node's registrar, never the other nodes' bindings).

Phones that do not serve the package: a refusal (``489 Bad Event``,
``405``, ``501``) is not asked again for ``watch_retry`` seconds; any other
failure (a 4xx-6xx, no answer, a ``terminated`` Subscription-State) backs
off 60 s, doubling up to ``watch_retry``. Both ends of the subscription
end on timers: ours by refresh or back-off, theirs by the Expires.
"""

from __future__ import annotations

import logging
import math

from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.member_legs import binding_target
from huntgroup.engine.b2bua.subscription_table import Watch, take_answer
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialog_info import CONTENT_TYPE, EVENT, event_of, parse
from huntgroup.engine.sip.dialogs import uac_dialog
from huntgroup.engine.sip.headers import Headers
from huntgroup.engine.sip.message import Request, Response, new_call_id, new_tag
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.engine.sip.uri import Uri
from huntgroup.errors import ProtocolError
from huntgroup.queue.events import LineActivity

log = logging.getLogger("huntgroup.calls")

REFUSALS = frozenset([405, 489, 501])
"""A phone that answers these does not serve the dialog package: asked again much later."""
FIRST_RETRY = 60.0
"""Back-off after the first failure that is not a refusal; it doubles up to watch_retry."""
MAX_WATCHED_DIALOGS = 64
"""Dialogs kept per phone (partial documents cannot grow the table beyond)."""
WATCHED_EVENTS = frozenset([EVENT])
"""The event packages of a REGISTER's Allow-Events the registrar keeps per binding."""


def watching(ctx: Context) -> bool:
    """``watch_phones`` is ``auto`` or ``true``."""
    return ctx.config.server.subscriptions.watch_phones is not False


def member_lines(ctx: Context) -> set[str]:
    """The lines that are members of a group."""
    return {m.line for g in ctx.config.groups for m in g.members if m.line}


def look_at_registrations(ctx: Context) -> None:
    """After an input: when the registrar's bindings changed, start and stop watches."""
    table = ctx.watches
    if not watching(ctx):
        return
    count = ctx.registrar.binding_count
    if count != table.registrations:
        table.registrations = count
        reconcile(ctx)


def registered(ctx: Context, line: str) -> None:
    """After a REGISTER of ``line`` was accepted: what its phone advertised may have
    changed (Allow-Events), or its contact moved."""
    if watching(ctx) and line in member_lines(ctx):
        reconcile_line(ctx, line)


def reconcile(ctx: Context) -> None:
    """One watch per member line with a contact that may be watched, none for the
    others (back-off kept); none at all when ``watch_phones`` is false."""
    table = ctx.watches
    lines = member_lines(ctx) if watching(ctx) else set()
    for line, watch in list(table.watches.items()):
        if line not in lines:
            stop(ctx, watch)
    if table.backoff:
        table.changes += 1  # back-offs forgotten or waited out below
    for line, (until, failures) in list(table.backoff.items()):
        if line not in lines:
            del table.backoff[line]
        elif until <= ctx.now:
            table.backoff[line] = (math.inf, failures)  # waited out: may be asked again
    for line in lines:
        reconcile_line(ctx, line)


def reconcile_line(ctx: Context, line: str) -> None:
    """Keep ``line``'s watch while its contact may be watched; else stop it and, past
    any back-off, watch the first contact that may be."""
    table = ctx.watches
    contacts = eligible(ctx, line)
    watch = table.watches.get(line)
    if watch is not None:
        if any(contact == watch.contact for contact, *_ in contacts):
            return
        log.info("line %s: contact %.120s no longer watched", line, watch.contact)
        stop(ctx, watch)
    until = table.backoff.get(line, (math.inf, 0))[0]
    if contacts and not ctx.now < until < math.inf:
        start(ctx, line, *contacts[0])


def eligible(ctx: Context, line: str) -> list[tuple[str, Uri, Peer, tuple[str, ...]]]:
    """``line``'s registered contacts that may be watched, best first, with where to
    send and the Route set (a binding's Path, RFC 3327): every one (``watch_phones:
    true``), or those whose REGISTER listed ``dialog`` in Allow-Events (``auto``).
    Only this node's own bindings: the node a phone registered with watches it, the
    others do not (one subscription per phone, whatever the number of nodes)."""
    auto = ctx.config.server.subscriptions.watch_phones == "auto"
    out: list[tuple[str, Uri, Peer, tuple[str, ...]]] = []
    for binding in ctx.registrar.contacts(line, now=ctx.now):
        if auto and EVENT not in binding.events:
            continue
        target = binding_target(binding)
        if target is not None:
            out.append((binding.uri, *target))
    return out


def watches_due(ctx: Context) -> None:
    """Timers: refresh the watches due, ask again the phones whose back-off is over."""
    table = ctx.watches
    for watch in list(table.watches.values()):
        if watch.refresh_at is not None and watch.refresh_at <= ctx.now:
            refresh(ctx, watch)
    if any(until <= ctx.now for until, _ in table.backoff.values()):
        reconcile(ctx)


def start(
    ctx: Context, line: str, contact: str, uri: Uri, peer: Peer, route: tuple[str, ...] = ()
) -> None:
    """SUBSCRIBE to ``contact`` at ``peer``; ``route``: the binding's Path, the SUBSCRIBE's
    Route set (and its refreshes', unless the answer brings a Record-Route)."""
    me = ctx.local_for(peer)
    domain = ctx.config.server.domain
    request = Request(
        method="SUBSCRIBE",
        uri=uri,
        headers=Headers(
            [
                ("Via", me.via(ctx.rng)),
                ("Max-Forwards", "70"),
                ("From", f"<sip:huntgroup@{domain}>;tag={new_tag(ctx.rng)}"),
                ("To", f"<sip:{line}@{domain}>"),
                ("Call-ID", new_call_id(ctx.rng, me.host)),
                ("CSeq", "1 SUBSCRIBE"),
                *(("Route", value) for value in route),
                *_subscribe_headers(ctx, me),
            ]
        ),
    )
    watch = Watch(
        line, contact, request.call_id, request.from_.tag or "", request, peer, route=route
    )
    ctx.watches.add(watch)
    log.info("line %s: subscribing to its phone's dialog events", line)
    _send(ctx, watch, request)


def refresh(ctx: Context, watch: Watch) -> None:
    if watch.dialog is None:  # never confirmed: start again
        stop(ctx, watch)
        reconcile_line(ctx, watch.line)
        return
    me = watch.dialog.me
    request = watch.dialog.request("SUBSCRIBE", ctx.rng, headers=_subscribe_headers(ctx, me))
    _send(ctx, watch, request)


def stop(ctx: Context, watch: Watch) -> None:
    """Forget ``watch``; a line it made busy is not busy any more."""
    ctx.watches.drop(watch)
    if watch.busy:
        watch.busy = False
        ctx.tell_core(LineActivity(watch.line, False))


def watch_response(ctx: Context, key: TransactionKey, response: Response) -> bool:
    """The final answer to one of our SUBSCRIBEs; False when ``key`` is none of ours."""
    table = ctx.watches
    ours, watch = take_answer(table.by_tx, table.watches, key)
    if watch is None:
        return ours
    if not 200 <= response.status < 300:
        failed(ctx, watch, response.status)
        return True
    try:
        granted = response.expires
        if watch.dialog is None:
            watch.dialog = uac_dialog(
                watch.request, response, watch.peer, ctx.local_for(watch.peer)
            )
            if not watch.dialog.route_set:  # no Record-Route: back through the Path
                watch.dialog.route_set = list(watch.route)
    except ProtocolError as err:
        log.info("line %s: unusable answer to our SUBSCRIBE: %s", watch.line, err)
        failed(ctx, watch, 400)
        return True
    if granted is None:
        granted = ctx.config.server.subscriptions.watch_expires
    if granted <= 0:
        stop(ctx, watch)
        return True
    watch.refresh_at = ctx.now + max(5.0, 0.8 * granted)
    table.backoff.pop(watch.line, None)
    table.changes += 1
    return True


def watch_failed(ctx: Context, key: TransactionKey, status: int) -> bool:
    """Our SUBSCRIBE got no answer (408) or could not be sent (503)."""
    ours, watch = take_answer(ctx.watches.by_tx, ctx.watches.watches, key)
    if watch is not None:
        failed(ctx, watch, status)
    return ours


def failed(ctx: Context, watch: Watch, status: int) -> None:
    """The phone refused or failed: stop, and ask again after the back-off."""
    stop(ctx, watch)
    table = ctx.watches
    failures = table.backoff.get(watch.line, (0.0, 0))[1] + 1
    retry = ctx.config.server.subscriptions.watch_retry
    delay = retry if status in REFUSALS else min(retry, FIRST_RETRY * 2 ** min(failures - 1, 20))
    table.backoff[watch.line] = (ctx.now + delay, failures)
    table.changes += 1
    log.info(
        "line %s: the phone's dialog events are not watched (%d); asked again in %.0f s",
        watch.line,
        status,
        delay,
    )


def watch_notify(ctx: Context, key: TransactionKey, request: Request) -> bool:
    """A NOTIFY in one of our subscriptions to a phone; False when it is none of ours."""
    watch = ctx.watches.find(request.call_id, request.to.tag or "")
    if watch is None:
        return False
    dialog = watch.dialog
    if dialog is not None:
        if request.from_.tag != dialog.remote_tag:
            ctx.respond(key, request, 481)
            return True
        if request.cseq.number <= dialog.remote_cseq:  # §12.2.2
            ctx.respond(key, request, 500, headers=(("Retry-After", "1"),))
            return True
        dialog.remote_cseq = request.cseq.number
    if event_of(request) != EVENT:
        ctx.respond(key, request, 489)
        return True
    info = None
    if request.body:
        ctype = (request.content_type or "").split(";")[0].strip().lower()
        try:
            if ctype != CONTENT_TYPE:
                raise ProtocolError(f"content type {ctype or 'none'}")
            info = parse(request.body)
        except ProtocolError as err:
            log.info("line %s: NOTIFY refused (400): %s", watch.line, err)
            ctx.respond(key, request, 400)
            return True
    ctx.respond(key, request, 200, to_tag=request.to.tag)
    if info is not None and (watch.version is None or info.version > watch.version):
        watch.version = info.version
        if info.full:
            watch.dialogs.clear()
        for d in info.dialogs:
            if d.state == "terminated":
                watch.dialogs.pop(d.id, None)
            elif d.id in watch.dialogs or len(watch.dialogs) < MAX_WATCHED_DIALOGS:
                watch.dialogs[d.id] = d
    state = (request.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
    if state == "terminated":
        failed(ctx, watch, 0)
        return True
    _tell(ctx, watch)
    return True


def _tell(ctx: Context, watch: Watch) -> None:
    """Tell the core when the line's busy state, calls through the server left out, changed."""
    busy = False
    if watch.dialogs:
        index = ctx.index
        ours = set(index.legs_by_call_id)
        ours.update(c.invite.call_id for c in index.calls.values())
        ours.update(leg.invite.call_id for leg in index.orphans.values())
        busy = any(not d.call_id or d.call_id not in ours for d in watch.dialogs.values())
    if busy != watch.busy:
        watch.busy = busy
        log.info("line %s: %s on its own", watch.line, "busy" if busy else "free")
        ctx.tell_core(LineActivity(watch.line, busy))


def _send(ctx: Context, watch: Watch, request: Request) -> None:
    key = ctx.start(request, watch.peer)
    watch.request = request
    watch.pending = key
    watch.refresh_at = None
    ctx.watches.by_tx[key] = watch.line
    ctx.watches.changes += 1


def _subscribe_headers(ctx: Context, me: Peer) -> tuple[tuple[str, str], ...]:
    return (
        ("Contact", me.contact()),
        ("Event", EVENT),
        ("Accept", CONTENT_TYPE),
        ("Expires", str(ctx.config.server.subscriptions.watch_expires)),
    )
