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
    MAX_SHARE_BYTES,
    BindingsOutput,
    Share,
    ShareError,
    decode_share,
    encode_share,
    merge,
    shareable,
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


def previous_run(ctx: Context) -> str:
    """The table's name of the bindings a previous run of this node left in Redis."""
    return f"{node_name(ctx)}~previous"


def publish_share(ctx: Context, aor: str, removed_keys: Iterable[str] = ()) -> None:
    """This node's share of ``aor`` changed (a REGISTER, an expiry, a drop): its whole
    share goes out to the driver, with the keys ``removed_keys`` removed just now.

    The share holds this run's live bindings, the previous run's bindings of the line
    this run has not superseded (same key) nor removed (a restart loses no phone), and
    this node's tombstones: the keys removed through this node, each kept for as long as
    the binding it removed could have lived (``max_expires``), at most ``max_contacts``
    (the most recent): the key stays in Redis while it holds one, so a node that missed
    the removal learns it when it reads the shares again. A binding beyond the
    receivers' limits is left out (logged, counted), the others still travel."""
    if not ctx.share_bindings:
        return
    now = ctx.now
    local = ctx.registrar.contacts(aor, now=now)
    keys = {binding_key(b) for b in local}
    lifetime = ctx.registrar.max_expires
    tombs = dict(ctx.shared.own_tombstones(aor))
    for key in removed_keys:
        tombs[key] = now
    registered = {binding_key(b): b.registered_at for b in local}
    kept = sorted(
        (
            (key, at)
            for key, at in tombs.items()
            if at + lifetime > now and registered.get(key, -math.inf) < at
        ),
        key=lambda t: (-t[1], t[0]),
    )[: ctx.registrar.max_contacts]
    ctx.shared.set_own_tombstones(aor, kept)
    carried = [
        b for b in ctx.shared.of_node(aor, previous_run(ctx), now=now) if binding_key(b) not in keys
    ]
    bindings = [b for b in [*local, *carried] if _fits(ctx, aor, b)]
    value, bindings = _encode(ctx, aor, bindings, kept)
    ends = [b.expires_at for b in bindings] + [at + lifetime for _, at in kept]
    latest = max(ends, default=now) + ctx.wall_offset
    ctx.out.append(
        BindingsOutput(
            aor, value, latest, len(bindings), removes=bool(removed_keys), tombstones=len(kept)
        )
    )


def _fits(ctx: Context, aor: str, binding: Binding) -> bool:
    if shareable(binding):
        return True
    ctx.shared.left_out += 1
    log.warning("line %s: a binding too large for the other nodes is not shared", aor)
    return False


def _encode(
    ctx: Context, aor: str, bindings: list[Binding], tombs: list[tuple[str, float]]
) -> tuple[str, list[Binding]]:
    """The share's JSON and the bindings in it: while larger than the receivers take, its
    oldest binding is left out (logged, counted)."""
    ordered = sorted(bindings, key=lambda b: -b.registered_at)
    while True:
        value = encode_share(
            node_name(ctx),
            aor,
            ordered,
            removed=tombs,
            wall_offset=ctx.wall_offset,
            run=run_of(ctx),
        )
        if len(value.encode()) <= MAX_SHARE_BYTES or not ordered:
            return value, ordered
        ordered.pop()
        ctx.shared.left_out += 1
        log.warning("line %s: share too large for the other nodes, a binding left out", aor)


def publish_all(ctx: Context) -> None:
    """Every share of this node again (the driver rewrites them after Redis returned):
    of every line with a binding here or a tombstone."""
    for aor in sorted({*ctx.registrar.aors(), *ctx.shared.own_tombstone_aors()}):
        if ctx.registrar.contacts(aor, now=ctx.now) or ctx.shared.own_tombstones(aor):
            publish_share(ctx, aor)


def receive_share(ctx: Context, data: str | bytes, *, reading: bool = False) -> None:
    """Another node's share (a published message, or with ``reading`` a value read from
    Redis): kept when it is well formed, of another node, for one of our lines. Its
    bindings and its tombstones drop older local bindings of the same keys (and this
    node's share is published again); its tombstones also hide older bindings of their
    keys that other nodes shared (:meth:`SharedBindings.of`).

    A share of this node read from Redis: its bindings registered before this run
    started (a previous run's, carried on) are kept as ``NODE~previous``: reachable,
    and carried in this run's shares until they expire or register again
    (:func:`publish_share`); a previous run's tombstones become this run's. One of this
    run whose bindings this node no longer holds is stale (an outage lost the write):
    published again."""
    try:
        share = decode_share(
            data, wall_offset=ctx.wall_offset, max_contacts=ctx.registrar.max_contacts
        )
    except ShareError as err:
        ctx.shared.bad_shares += 1
        log.info("bindings: another node's share ignored: %s", err)
        return
    aor = share.aor
    if aor not in _line_numbers(ctx):
        return
    if share.node == node_name(ctx):
        if reading:
            _own_share_read(ctx, share)
        return
    node = share.node
    before = bool(line_bindings(ctx, aor))
    held = [b.registered_at for b in ctx.shared.of(aor, now=ctx.now)]
    ctx.shared.replace(node, aor, share.bindings, now=ctx.now, removed=share.removed)
    if _discard_local(ctx, aor, share.bindings, share.removed, node):
        publish_share(ctx, aor)
    fresh = any(b.registered_at > max(held, default=-math.inf) for b in share.bindings)
    if fresh or before != bool(line_bindings(ctx, aor)):
        report_contacts(ctx, aor)


def _discard_local(
    ctx: Context,
    aor: str,
    bindings: Iterable[Binding],
    removed: Iterable[tuple[str, float]],
    node: str,
) -> bool:
    """Drop this node's bindings of ``aor`` that a newer binding or a tombstone of the
    same key supersedes; whether any went."""
    dropped: list[Binding] = []
    for b in bindings:
        dropped += ctx.registrar.discard(aor, binding_key(b), older_than=b.registered_at)
    for key, at in removed:
        dropped += ctx.registrar.discard(aor, key, older_than=at)
    if dropped:
        log.info(
            "line %s: %d contact(s) registered again or removed through node %s, dropped here",
            aor,
            len(dropped),
            node,
        )
    return bool(dropped)


def _own_share_read(ctx: Context, share: Share) -> None:
    aor = share.aor
    before = bool(line_bindings(ctx, aor))
    this_run = share.run == run_of(ctx)
    older = tuple(b for b in share.bindings if not this_run or b.registered_at < ctx.run_started)
    ctx.shared.replace(previous_run(ctx), aor, older, now=ctx.now)
    if not this_run and share.removed:
        mine = dict(ctx.shared.own_tombstones(aor))
        for key, at in share.removed:
            mine[key] = max(at, mine.get(key, -math.inf))
        ctx.shared.set_own_tombstones(aor, mine.items())
        if _discard_local(ctx, aor, (), share.removed, share.node):
            publish_share(ctx, aor)
    stale = this_run and len(share.bindings) > len(older)
    if stale and not ctx.registrar.contacts(aor, now=ctx.now):
        publish_share(ctx, aor)  # what Redis missed while away
    if before != bool(line_bindings(ctx, aor)):
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
