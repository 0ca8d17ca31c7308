"""A line's contacts on every node, and this node's share of them for the others.

Theory of operation
-------------------
:func:`line_bindings` answers "where is this line now" for ringing and for the
core's reachability: this node's live bindings merged with the other nodes'
that this node can reach (:func:`~huntgroup.engine.b2bua.shared_bindings.merge`).
:func:`publish_share` hands this node's whole share of an AOR to the driver
(a :class:`~huntgroup.engine.b2bua.shared_bindings.BindingsOutput`) after
every accepted REGISTER, every expiry and every drop; :func:`receive_share`
and :func:`reload_shares` take the other nodes' shares in (see
:mod:`~huntgroup.engine.b2bua.shared_bindings` for the table, the wire format
and the rules). Nothing goes out unless the driver shares bindings
(``Context.share_bindings``: several nodes on Redis).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.shared_bindings import (
    BindingsOutput,
    ShareError,
    decode_share,
    encode_share,
    merge,
)
from huntgroup.engine.sip.registrar import Binding, binding_key
from huntgroup.queue.events import MemberReachable

log = logging.getLogger("huntgroup.calls")


def line_bindings(ctx: Context, number: str) -> list[Binding]:
    """Line ``number``'s live contacts on every node that this node can reach."""
    local = ctx.registrar.contacts(number, now=ctx.now)
    remote = ctx.shared.of(number, now=ctx.now)
    if not remote:
        return local
    return merge(local, remote)


def report_contacts(ctx: Context, number: str) -> None:
    """Tell the core whether line ``number`` has a live contact now (on any node this
    node reaches): a line without one is unavailable to its groups. Told after every
    REGISTER (a refresh from a phone found unreachable ends its back-off), every expiry
    of its last contact, every share of another node that changed it, at start
    (:class:`Context`) and after a reload."""
    ctx.tell_core(MemberReachable(number, bool(line_bindings(ctx, number))))


# --------------------------------------------------------------------------- publishing


def node_name(ctx: Context) -> str:
    """This node's name in the shared state (its id up to the "/" of the run)."""
    return ctx.node_id.partition("/")[0]


def run_of(ctx: Context) -> str:
    """This process's run of the node (the id's part after the "/"): a restart is a new
    run, and tells this run's shares from those a previous run left in Redis."""
    return ctx.node_id.partition("/")[2]


def publish_share(ctx: Context, aor: str, removed_keys: Iterable[str] = ()) -> None:
    """This node's share of ``aor`` changed (a REGISTER, an expiry, a drop): its whole
    share goes out to the driver, with the keys ``removed_keys`` removed just now."""
    if not ctx.share_bindings:
        return
    local = ctx.registrar.contacts(aor, now=ctx.now)
    ctx.shared.replace(f"{node_name(ctx)}~previous", aor, (), now=ctx.now)  # overwritten
    removed = [(key, ctx.now) for key in removed_keys]
    value = encode_share(
        node_name(ctx), aor, local, removed=removed, wall_offset=ctx.wall_offset, run=run_of(ctx)
    )
    latest = max((b.expires_at for b in local), default=ctx.now) + ctx.wall_offset
    ctx.out.append(BindingsOutput(aor, value, latest, len(local), removes=bool(removed)))


def publish_all(ctx: Context) -> None:
    """Every share of this node again (the driver rewrites them after Redis returned)."""
    for aor in ctx.registrar.aors():
        if ctx.registrar.contacts(aor, now=ctx.now):
            publish_share(ctx, aor)


def receive_share(ctx: Context, data: str | bytes, *, reading: bool = False) -> None:
    """Another node's share (a published message, or with ``reading`` a value read from
    Redis): kept when it is well formed, of another node, for one of our lines; older
    local bindings of the same phones are dropped (and this node's share published
    again). A share of this node read from Redis is either of this run and stale (this
    node holds no binding of that line any more: deleted, by an empty share) or of a
    previous run of this node (kept as another node's, ``NODE~previous``, so the phones
    registered before a restart stay reachable until they expire or register again;
    this run's first share of that line overwrites it in Redis, and here)."""
    try:
        share = decode_share(
            data, wall_offset=ctx.wall_offset, max_contacts=ctx.registrar.max_contacts
        )
    except ShareError as err:
        ctx.shared.bad_shares += 1
        log.info("bindings: another node's share ignored: %s", err)
        return
    if share.aor not in _line_numbers(ctx):
        return
    node = share.node
    if node == node_name(ctx):
        if not reading:
            return
        if share.run == run_of(ctx):
            if not ctx.registrar.contacts(share.aor, now=ctx.now):
                publish_share(ctx, share.aor)  # stale: what Redis missed while away
            return
        node = f"{node}~previous"
    aor = share.aor
    before = bool(line_bindings(ctx, aor))
    held = [b.registered_at for b in ctx.shared.of(aor, now=ctx.now)]
    ctx.shared.replace(node, aor, share.bindings, now=ctx.now)
    dropped: list[Binding] = []
    for b in share.bindings:
        dropped += ctx.registrar.discard(aor, binding_key(b), older_than=b.registered_at)
    for key, at in share.removed:
        dropped += ctx.registrar.discard(aor, key, older_than=at)
    if dropped:
        log.info(
            "line %s: %d contact(s) registered again or removed through node %s, dropped here",
            aor,
            len(dropped),
            node,
        )
        publish_share(ctx, aor)
    fresh = any(b.registered_at > max(held, default=-math.inf) for b in share.bindings)
    if fresh or before != bool(line_bindings(ctx, aor)):
        report_contacts(ctx, aor)


def _line_numbers(ctx: Context) -> frozenset[str]:
    """The configured lines' numbers (kept with the table; made again after a reload)."""
    table = ctx.shared
    if table.lines_of is not ctx.config.lines:
        table.lines_of = ctx.config.lines
        table.line_numbers = frozenset(line.number for line in ctx.config.lines)
    return table.line_numbers


def reload_shares(ctx: Context, values: Iterable[str | bytes]) -> None:
    """Every node's shares as read from Redis after a (re)connection: they replace the
    table (shares deleted while this node was away go)."""
    before = {aor: bool(line_bindings(ctx, aor)) for aor in ctx.shared.aors()}
    ctx.shared.clear()
    for value in values:
        receive_share(ctx, value, reading=True)
    for aor, reachable in before.items():
        if reachable != bool(line_bindings(ctx, aor)):
            report_contacts(ctx, aor)


def shares_expired(ctx: Context) -> None:
    """Timers: other nodes' bindings that ran out; a line left without contact is told."""
    for aor in ctx.shared.handle_timer(now=ctx.now):
        if not line_bindings(ctx, aor):
            report_contacts(ctx, aor)


def forget_lines(ctx: Context) -> None:
    """After a reload: the bindings, here and of other nodes, of lines that are gone."""
    lines = _line_numbers(ctx)
    for aor in ctx.registrar.aors():
        if aor not in lines and ctx.registrar.drop(aor):
            log.info("line %s: removed by the reload, its contacts dropped", aor)
            publish_share(ctx, aor)
    for aor in ctx.shared.aors():
        if aor not in lines:
            ctx.shared.drop_aor(aor)
