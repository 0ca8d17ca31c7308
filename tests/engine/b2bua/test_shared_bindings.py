"""The other nodes' bindings: the table, its wire format, the merge with local ones."""

from __future__ import annotations

import json

import pytest

from huntgroup.engine.b2bua.shared_bindings import (
    MAX_SHARE_BYTES,
    SharedBindings,
    ShareError,
    decode_share,
    encode_share,
    merge,
    reachable_remotely,
)
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.registrar import Binding

AOR = "0601020304"
PATH = "<sip:10.0.0.9:5060;lr>"


def binding(
    uri: str = f"sip:{AOR}@192.0.2.10:5062",
    *,
    at: float = 100.0,
    expires: float = 3700.0,
    q: float = 1.0,
    instance: str | None = None,
    transport: str = "UDP",
    path: tuple[str, ...] = (),
) -> Binding:
    return Binding(
        aor=AOR,
        uri=uri,
        expires_at=expires,
        q=q,
        call_id=f"c-{uri}-{at}",
        cseq=1,
        registered_at=at,
        source=Peer("192.0.2.10", 5062, transport),
        instance=instance,
        events=frozenset(["dialog"]),
        path=path,
    )


# ------------------------------------------------------------------ wire format


def test_a_share_survives_the_wire_with_times_moved_between_clocks() -> None:
    sent = (binding(path=(PATH,), instance="urn:uuid:1"), binding("sip:x@192.0.2.11", q=0.5))
    # the sender's now is 1000 s behind wall time, the receiver's 5000 s
    value = encode_share("a", AOR, sent, removed=[("uri:sip:y@h", 90.0)], wall_offset=1000.0)
    share = decode_share(value, wall_offset=5000.0, max_contacts=10)
    assert (share.node, share.aor) == ("a", AOR)
    back = {b.uri: b for b in share.bindings}
    first = back[sent[0].uri]
    assert first.expires_at == sent[0].expires_at - 4000.0
    assert first.registered_at == sent[0].registered_at - 4000.0
    assert (first.path, first.instance, first.source, first.events) == (
        (PATH,),
        "urn:uuid:1",
        sent[0].source,
        frozenset(["dialog"]),
    )
    assert back["sip:x@192.0.2.11"].q == 0.5
    assert share.removed == (("uri:sip:y@h", 90.0 - 4000.0),)


def test_a_share_keeps_at_most_max_contacts_bindings_the_most_recent() -> None:
    sent = [binding(f"sip:{i}@192.0.2.1", at=float(i)) for i in range(6)]
    share = decode_share(encode_share("a", AOR, sent, wall_offset=0), wall_offset=0, max_contacts=3)
    assert [b.uri for b in share.bindings] == [f"sip:{i}@192.0.2.1" for i in (5, 4, 3)]


GOOD = json.loads(encode_share("a", AOR, [binding()], wall_offset=0.0))


def hostile(**changes: object) -> str:
    value = json.loads(json.dumps(GOOD))
    for path, new in changes.items():
        where = value
        *parents, last = path.split("__")
        for part in parents:
            where = where[int(part)] if part.isdigit() else where[part]
        where[last] = new
    return json.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not json",
        "[]",
        '{"v": 2}',
        b"\xff\xfe",
        "x" * (MAX_SHARE_BYTES + 1),
        hostile(node=""),
        hostile(node=7),
        hostile(aor=None),
        hostile(bindings="many"),
        hostile(bindings=[1]),
        hostile(bindings__0__uri="u" * 5000),
        hostile(bindings__0__expires="soon"),
        hostile(bindings__0__expires=float("inf")),
        hostile(bindings__0__q=2),
        hostile(bindings__0__cseq=1.5),
        hostile(bindings__0__source=["SCTP", "h", 5060]),
        hostile(bindings__0__source=["UDP", "h", 70000]),
        hostile(bindings__0__source="h"),
        hostile(bindings__0__path=[PATH] * 9),
        hostile(bindings__0__events={}),
        hostile(removed=[["k"]]),
        hostile(bindings=[GOOD["bindings"][0]] * 41),
    ],
)
def test_hostile_values_are_refused_whole(value: str | bytes) -> None:
    with pytest.raises(ShareError):
        decode_share(value, wall_offset=0.0, max_contacts=10)


# ------------------------------------------------------------------ the table


def test_a_share_replaces_the_nodes_previous_one_and_empty_forgets_it() -> None:
    table = SharedBindings(max_contacts=10)
    assert table.replace("a", AOR, (binding(), binding("sip:b@192.0.2.1")), now=0.0)
    assert not table.replace("a", AOR, (binding("sip:b@192.0.2.1"), binding()), now=0.0)
    assert table.replace("b", AOR, (binding("sip:c@192.0.2.1"),), now=0.0)
    assert len(table) == 3 and table.nodes(AOR) == ["a", "b"]
    assert table.replace("a", AOR, (), now=0.0)
    assert [b.uri for b in table.of(AOR, now=0.0)] == ["sip:c@192.0.2.1"]
    assert table.replace("b", AOR, (), now=0.0)
    assert table.aors() == [] and len(table) == 0


def test_bindings_expire_on_their_own_timer() -> None:
    table = SharedBindings(max_contacts=10)
    table.replace("a", AOR, (binding(expires=50.0), binding("sip:b@h", expires=80.0)), now=0.0)
    assert table.get_timer() == 50.0
    assert [b.uri for b in table.of(AOR, now=60.0)] == ["sip:b@h"]  # even before the timer
    assert table.handle_timer(now=60.0) == [AOR]
    assert len(table) == 1 and table.get_timer() == 80.0
    assert table.handle_timer(now=80.0) == [AOR]
    assert table.aors() == [] and table.get_timer() is None
    assert not table.replace("a", AOR, (binding(expires=90.0),), now=100.0)  # dead on arrival


def test_the_table_is_bounded_per_node_and_in_nodes() -> None:
    table = SharedBindings(max_contacts=2, max_nodes=3)
    many = tuple(binding(f"sip:{i}@h", at=float(i)) for i in range(5))
    table.replace("a", AOR, many, now=0.0)
    assert [b.uri for b in table.of(AOR, now=0.0)] == ["sip:4@h", "sip:3@h"]
    for node in ("b", "c", "d"):
        table.replace(node, AOR, (binding(f"sip:{node}@h"),), now=0.0)
    assert table.nodes(AOR) == ["a", "b", "c"] and table.refused_nodes == 1
    for i in range(1000):  # refreshes never grow the heap without bound
        table.replace("a", AOR, (binding(at=float(i), expires=4000.0 + i),), now=0.0)
    assert len(table._heap) <= 2 * len(table) + 64


# ------------------------------------------------------------------ merge


def test_remote_tcp_or_tls_bindings_without_path_are_not_reachable() -> None:
    assert reachable_remotely(binding())
    assert reachable_remotely(binding(transport="TCP", path=(PATH,)))
    assert not reachable_remotely(binding(transport="TCP"))
    assert not reachable_remotely(binding(transport="TLS"))
    assert not reachable_remotely(binding(f"sip:{AOR}@192.0.2.10;transport=tcp"))
    assert not reachable_remotely(binding(f"sips:{AOR}@192.0.2.10"))


def test_merge_keeps_the_most_recent_binding_of_each_key_ordered_like_the_registrar() -> None:
    local = [binding(at=100.0), binding("sip:other@192.0.2.3", at=50.0, q=0.5)]
    remote = [
        binding(at=200.0),  # the same phone registered again on another node: it wins
        binding("sip:new@192.0.2.4", at=300.0, instance="urn:uuid:9"),
        binding("sip:moved@192.0.2.5", at=10.0, instance="urn:uuid:9"),  # older, same key
        binding("sip:tcp@192.0.2.6", at=400.0, transport="TCP"),  # unreachable from here
    ]
    merged = merge(local, remote)
    assert [(b.uri, b.registered_at) for b in merged] == [
        ("sip:new@192.0.2.4", 300.0),
        (f"sip:{AOR}@192.0.2.10:5062", 200.0),
        ("sip:other@192.0.2.3", 50.0),
    ]


def test_a_tombstone_hides_older_bindings_of_its_key_whatever_node_holds_them() -> None:
    table = SharedBindings(max_contacts=2)
    old, other = binding(at=100.0), binding("sip:x@192.0.2.11", at=100.0)
    table.replace("a", AOR, (old, other), now=0.0)
    key = "uri:" + old.uri.lower()
    table.replace("b", AOR, (), now=0.0, removed=((key, 150.0),))  # b: no binding, a tombstone
    assert table.of(AOR, now=0.0) == [other]  # a is dead: its stale binding still hidden
    newer = binding(at=200.0)  # registered again after the removal: counts
    table.replace("c", AOR, (newer,), now=0.0)
    assert sorted(b.registered_at for b in table.of(AOR, now=0.0)) == [100.0, 200.0]
    table.replace("b", AOR, (), now=0.0, removed=(("*", 120.0),))  # every older phone
    assert table.of(AOR, now=0.0) == [newer]
    # a reload forgets the others' tombstones, never this node's own
    table.set_own_tombstones(AOR, [(key, 300.0)])
    table.clear()
    assert table.own_tombstones(AOR) == ((key, 300.0),) and table.tombstones(AOR) == [(key, 300.0)]
    table.set_own_tombstones(AOR, [(f"uri:{i}", float(i)) for i in range(5)])
    assert len(table.own_tombstones(AOR)) == 2  # bounded per line: max_contacts
