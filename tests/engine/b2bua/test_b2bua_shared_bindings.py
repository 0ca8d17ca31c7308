"""Two nodes, one line: a phone registered on node A is reached from node B.

Two sans-I/O B2BUAs (``Network``), their ``BindingsOutput`` carried by hand
from one to the other the way the Redis driver carries them.
"""

from __future__ import annotations

from collections.abc import Sequence

from huntgroup.config.models import Config
from huntgroup.engine.b2bua.line_contacts import line_bindings
from huntgroup.engine.b2bua.member_legs import targets_of
from huntgroup.engine.b2bua.shared_bindings import MAX_SHARE_BYTES, BindingsOutput, encode_share
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.message import Response
from huntgroup.engine.sip.registrar import Binding
from tests.engine.b2bua.test_b2bua_path import PATH, PROXY
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    digest_authorization,
    make_config,
    parse_challenge,
)

ALICE_PORT = 7101


def config() -> Config:
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    server = cfg.server.model_copy(update={"trusted_peers": (PROXY,)})
    return cfg.model_copy(update={"server": server})


def node(name: str, now: float = 0.0) -> Network:
    net = Network(config(), node_id=f"{name}/run", now=now)
    net.b2b.share_bindings = True
    return net


def shares(net: Network) -> list[BindingsOutput]:
    """The shares ``net`` emitted so far (taken: the next call returns the new ones)."""
    out = [m for m in net.media if isinstance(m, BindingsOutput)]
    net.media = [m for m in net.media if not isinstance(m, BindingsOutput)]
    return out  # type: ignore[return-value]


def carry(source: Network, *targets: Network) -> list[BindingsOutput]:
    sent = shares(source)
    for share in sent:
        for target in targets:
            target._route(target.b2b.bindings_received(share.value, now=target.now))
    return sent


def register(
    phone: Phone,
    *,
    call_id: str = "reg-1@test",
    cseq: int = 1,
    expires: int = 3600,
    extra: Sequence[tuple[str, str]] = (),
) -> Response:
    phone.register(LINE_A, call_id=call_id, cseq=cseq, expires=expires, extra=extra)
    challenge = phone.response(401, "REGISTER")
    offered = {
        parse_challenge(v)["algorithm"]: v for v in challenge.headers.get_all("WWW-Authenticate")
    }
    authorization = digest_authorization(
        offered["SHA-256"],
        username=LINE_A,
        password=PASSWORD,
        method="REGISTER",
        uri=f"sip:{DOMAIN}",
    )
    phone.register(
        LINE_A,
        call_id=call_id,
        cseq=cseq + 1,
        expires=expires,
        authorization=authorization,
        extra=extra,
    )
    final = phone.next()
    assert isinstance(final, Response)
    return final


def test_a_phone_registered_on_node_a_is_rung_by_a_call_entering_node_b() -> None:
    a, b = node("a"), node("b")
    alice_a = a.phone("alice", ALICE_PORT, LINE_A)
    alice_b = b.phone("alice", ALICE_PORT, LINE_A)  # the same phone, seen from B
    caller = b.phone("caller", 6000, CALLER_NUMBER)
    assert register(alice_a).status == 200
    (share,) = carry(a, b)
    assert share.live == 1 and share.aor == LINE_A
    assert [x.uri for x in line_bindings(b.b2b, LINE_A)] == [f"sip:{LINE_A}@127.0.0.1:7101"]
    assert b.b2b.registrar.binding_count == 0  # B's own registrar is untouched
    caller.invite(PILOT)
    invite = alice_b.request("INVITE")
    assert str(invite.uri) == f"sip:{LINE_A}@127.0.0.1:{ALICE_PORT}"


def test_without_the_share_node_b_finds_no_contact() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A))
    alice_b = b.phone("alice", ALICE_PORT, LINE_A)
    b.phone("caller", 6000, CALLER_NUMBER).invite(PILOT)
    assert not alice_b.has("INVITE")


def test_a_binding_with_a_path_is_rung_through_the_path_from_the_other_node() -> None:
    a, b = node("a"), node("b")
    proxy_a = Phone(a, "proxy", 5070, LINE_A)
    proxy_a.peer = Peer(PROXY, 5070, "UDP")
    a.phones[(PROXY, 5070)] = proxy_a
    proxy_b = Phone(b, "proxy", 5070, LINE_A)
    b.phones[(PROXY, 5070)] = proxy_b
    assert register(proxy_a, extra=(("Path", PATH),)).status == 200
    carry(a, b)
    b.phone("caller", 6000, CALLER_NUMBER).invite(PILOT)
    invite = proxy_b.request("INVITE")
    assert invite.headers.get_all("Route") == [PATH]
    sent = [t.destination for _, t in b.transmits if t.data.startswith(b"INVITE")]
    assert sent == [Peer(PROXY, 5070, "UDP")]


def remote_share(
    net: Network, *, transport: str, expires: float = 600.0, path: tuple[str, ...] = ()
) -> str:
    """A share of node ``c`` for LINE_A, with one binding over ``transport``."""
    bound = Binding(
        aor=LINE_A,
        uri=f"sip:{LINE_A}@127.0.0.1:{ALICE_PORT}",
        expires_at=net.now + expires,
        q=1.0,
        call_id="c-1",
        cseq=2,
        registered_at=net.now,
        source=Peer("127.0.0.1", ALICE_PORT, transport),
        path=path,
    )
    return encode_share("c", LINE_A, [bound], wall_offset=net.b2b.wall_offset)


def test_a_remote_tcp_binding_without_path_is_no_target_but_with_a_path_it_is() -> None:
    b = node("b")
    b._route(b.b2b.bindings_received(remote_share(b, transport="TCP"), now=b.now))
    assert len(b.b2b.shared) == 1
    assert targets_of(b.b2b, LINE_A) == []
    alice_b = b.phone("alice", ALICE_PORT, LINE_A)
    b.phone("caller", 6000, CALLER_NUMBER).invite(PILOT)
    assert not alice_b.has("INVITE")
    b._route(b.b2b.bindings_received(remote_share(b, transport="TCP", path=(PATH,)), now=b.now))
    (target,) = targets_of(b.b2b, LINE_A)
    assert target[1] == Peer(PROXY, 5070, "UDP") and target[2] == (PATH,)


def test_a_remote_binding_stops_counting_when_it_expires() -> None:
    b = node("b", now=1000.0)
    alice_b = b.phone("alice", ALICE_PORT, LINE_A)
    caller = b.phone("caller", 6000, CALLER_NUMBER)
    b._route(b.b2b.bindings_received(remote_share(b, transport="UDP", expires=120), now=b.now))
    assert targets_of(b.b2b, LINE_A)
    b.advance(121)
    assert targets_of(b.b2b, LINE_A) == [] and len(b.b2b.shared) == 0
    caller.invite(PILOT)
    assert not alice_b.has("INVITE")


def test_expiry_on_the_owning_node_is_published_and_empties_the_line_elsewhere() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A), expires=300)
    carry(a, b)
    a.advance(301)
    (gone,) = carry(a, b)
    assert gone.live == 0
    assert line_bindings(b.b2b, LINE_A) == []


def test_a_phone_that_registers_again_through_node_b_is_dropped_on_node_a() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A), call_id="first@test")
    carry(a, b)
    a.advance(10)
    b.advance(10)
    # the proxy failed over: the phone's next REGISTER (a new Call-ID) lands on B
    register(b.phone("alice", ALICE_PORT, LINE_A), call_id="second@test")
    carry(b, a)
    assert a.b2b.registrar.binding_count == 0  # A's older binding of that phone went
    (republished,) = carry(a, b)  # ... and A told the others
    assert republished.live == 0
    assert [x.call_id for x in line_bindings(a.b2b, LINE_A)] == ["second@test"]
    assert [x.call_id for x in line_bindings(b.b2b, LINE_A)] == ["second@test"]


def test_a_phone_that_unregisters_through_node_b_is_dropped_on_node_a() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A), call_id="first@test")
    carry(a, b)
    a.advance(10)
    b.advance(10)
    register(b.phone("alice", ALICE_PORT, LINE_A), call_id="bye@test", expires=0)
    (share,) = carry(b, a)
    assert share.live == 0 and share.removes
    assert a.b2b.registrar.binding_count == 0
    carry(a, b)
    assert line_bindings(a.b2b, LINE_A) == [] and line_bindings(b.b2b, LINE_A) == []


def test_a_newer_local_binding_is_kept_against_an_older_remote_removal() -> None:
    a, b = node("a"), node("b")
    register(b.phone("alice", ALICE_PORT, LINE_A), call_id="bye@test", expires=0)
    removal = shares(b)
    a.advance(10)
    register(a.phone("alice", ALICE_PORT, LINE_A), call_id="again@test")
    for share in removal:  # late: the phone registered on A after it unregistered on B
        a._route(a.b2b.bindings_received(share.value, now=a.now))
    assert a.b2b.registrar.binding_count == 1


def test_own_shares_and_unknown_lines_are_ignored_and_memory_state_publishes_nothing() -> None:
    a = node("a")
    register(a.phone("alice", ALICE_PORT, LINE_A))
    (own,) = shares(a)
    a._route(a.b2b.bindings_received(own.value, now=a.now))
    assert len(a.b2b.shared) == 0
    stranger = own.value.replace('"node":"a"', '"node":"c"').replace(LINE_A, "0999999999")
    a._route(a.b2b.bindings_received(stranger, now=a.now))
    assert len(a.b2b.shared) == 0
    a._route(a.b2b.bindings_received(b"{not json", now=a.now))
    assert a.b2b.shared.bad_shares == 1
    single = Network(config())  # share_bindings off: one node, memory state
    register(single.phone("alice", ALICE_PORT, LINE_A))
    assert shares(single) == []


def test_a_reload_of_every_share_replaces_what_was_heard_and_republishes_our_own() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A))
    carry(a, b)
    b._route(b.b2b.bindings_received(remote_share(b, transport="UDP"), now=b.now))
    assert b.b2b.shared.nodes(LINE_A) == ["a", "c"]
    b._route(b.b2b.bindings_reloaded([remote_share(b, transport="UDP")], now=b.now))
    assert b.b2b.shared.nodes(LINE_A) == ["c"]  # a's share was deleted meanwhile
    a._route(a.b2b.bindings_reloaded([], now=a.now))
    (again,) = shares(a)
    assert again.live == 1 and again.aor == LINE_A


def test_a_line_removed_by_a_reload_loses_its_bindings_here_and_tells_the_others() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A))
    carry(a, b)
    b._route(b.b2b.bindings_received(remote_share(a, transport="UDP"), now=b.now))
    a._route(a.b2b.bindings_received(remote_share(a, transport="UDP"), now=a.now))
    shares(a)
    base = make_config("linear", members=1)
    without = base.model_copy(
        update={
            "lines": tuple(x for x in base.lines if x.number != LINE_A),
            "server": config().server,
        }
    )
    a._route(a.b2b.reload(without, now=a.now))
    assert a.b2b.registrar.binding_count == 0 and len(a.b2b.shared) == 0
    (gone,) = shares(a)
    assert gone.aor == LINE_A and gone.live == 0


def test_own_shares_read_from_redis_stale_ones_deleted_a_previous_runs_kept() -> None:
    a = node("a")
    caller = a.phone("caller", 6000, CALLER_NUMBER)
    alice = a.phone("alice", ALICE_PORT, LINE_A)
    previous = remote_share(a, transport="UDP").replace('"node":"c","run":""', '"node":"a"')
    stale = previous.replace('"node":"a"', '"node":"a","run":"run"')
    assert '"node":"a"' in previous and '"run":"run"' in stale
    # a share of this very run that this node no longer backs: deleted (an empty share)
    a._route(a.b2b.bindings_reloaded([stale], now=a.now))
    (deleted,) = shares(a)
    assert deleted.live == 0 and deleted.aor == LINE_A and len(a.b2b.shared) == 0
    # one of a previous run of this node (restarted): its phones stay reachable
    a._route(a.b2b.bindings_reloaded([previous], now=a.now))
    assert a.b2b.shared.nodes(LINE_A) == ["a~previous"] and shares(a) == []
    caller.invite(PILOT)
    assert alice.has("INVITE")
    # this run's first share of the line carries the previous run's binding on (it
    # overwrites that key in Redis): a restart loses no registered phone
    register(a.phone("alice2", ALICE_PORT + 1, LINE_A))
    (written,) = shares(a)
    assert written.live == 2 and '"call_id":"c-1"' in written.value
    assert len(line_bindings(a.b2b, LINE_A)) == 2


def test_a_share_of_this_run_read_back_after_its_bindings_went_is_deleted() -> None:
    a = node("a")
    register(a.phone("alice", ALICE_PORT, LINE_A), expires=300)
    (written,) = shares(a)  # what Redis holds
    a.b2b.registrar.drop(LINE_A)  # gone meanwhile (say an unregistration lost in an outage)
    a._route(a.b2b.bindings_reloaded([written.value], now=a.now))
    (deleted,) = shares(a)
    assert deleted.live == 0 and len(a.b2b.shared) == 0


def test_an_unregistration_through_b_hides_a_dead_nodes_binding_on_every_node() -> None:
    a, b, c = node("a"), node("b"), node("c")
    register(a.phone("alice", ALICE_PORT, LINE_A), call_id="first@test")
    carry(a, b, c)
    for n in (b, c):
        n.advance(10)
    # a dies; the phone's next REGISTER goes through b and unregisters
    register(b.phone("alice", ALICE_PORT, LINE_A), call_id="bye@test", expires=0)
    (removal,) = carry(b, c)
    assert line_bindings(b.b2b, LINE_A) == [] and line_bindings(c.b2b, LINE_A) == []
    # the share keeps its tombstone: the key stays in Redis (not deleted) until it ends
    assert removal.live == 0 and removal.tombstones == 1
    assert removal.expires_at >= b.now + b.b2b.registrar.max_expires
    # a newer registration of the key through c: counts again everywhere
    c.advance(1)
    register(c.phone("alice", ALICE_PORT, LINE_A), call_id="again@test")
    carry(c, b)
    assert [x.call_id for x in line_bindings(b.b2b, LINE_A)] == ["again@test"]


def test_a_node_that_missed_a_removal_learns_it_when_it_reads_the_shares_again() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A), call_id="first@test")
    carry(a, b)
    a.advance(10)
    b.advance(10)
    register(b.phone("alice", ALICE_PORT, LINE_A), call_id="bye@test", expires=0)
    (missed,) = shares(b)  # published while a's subscription was down: a never hears it
    assert missed.tombstones == 1  # but it stays in Redis, where a's reload finds it
    a._route(a.b2b.bindings_reloaded([missed.value], now=a.now))
    assert line_bindings(a.b2b, LINE_A) == []
    assert [s.live for s in shares(a)] == [0]  # a's own share of the phone is withdrawn
    # b's tombstone outlives any binding it could have removed, then goes
    b.advance(b.b2b.registrar.max_expires + 1)
    register(b.phone("bob", ALICE_PORT + 1, LINE_A), call_id="bob@test")
    (later,) = shares(b)
    assert later.tombstones == 0 and later.live == 1


def test_a_binding_beyond_the_receivers_limits_is_left_out_the_others_travel() -> None:
    a, b = node("a"), node("b")
    register(a.phone("alice", ALICE_PORT, LINE_A), call_id="alice@test")
    shares(a)
    long_id = "x" * 3000 + "@test"  # beyond the 2048 characters a receiver takes
    register(a.phone("bob", ALICE_PORT + 1, LINE_A), call_id=long_id)
    (share,) = carry(a, b)
    assert share.live == 1 and a.b2b.shared.left_out == 1
    assert [x.call_id for x in line_bindings(b.b2b, LINE_A)] == ["alice@test"]
    assert b.b2b.shared.bad_shares == 0


def test_a_restarted_node_keeps_sharing_the_phones_its_previous_run_registered() -> None:
    """Review: P1's refresh on the restarted node replaced the whole share, so P2 (still
    validly registered) was unreachable everywhere until it refreshed too."""
    a, b = node("a"), node("b")
    register(a.phone("p1", ALICE_PORT, LINE_A), call_id="p1@test")
    register(a.phone("p2", ALICE_PORT + 1, LINE_A), call_id="p2@test")
    stored = carry(a, b)[-1]  # what Redis holds of a's line
    assert stored.live == 2
    restarted = Network(config(), node_id="a/run2", now=100.0)  # same HUNTGROUP_NODE_ID
    restarted.b2b.share_bindings = True
    restarted._route(restarted.b2b.bindings_reloaded([stored.value], now=restarted.now))
    b.advance(100)
    register(restarted.phone("p1", ALICE_PORT, LINE_A), call_id="p1@test", cseq=3)
    written = carry(restarted, b)[-1]
    assert written.live == 2
    for n in (restarted, b):
        assert sorted(x.call_id for x in line_bindings(n.b2b, LINE_A)) == ["p1@test", "p2@test"]
    # P2 unregisters through the restarted node: its carried binding goes everywhere
    register(restarted.phone("p2", ALICE_PORT + 1, LINE_A), call_id="p2@test", cseq=3, expires=0)
    (gone,) = carry(restarted, b)
    assert gone.live == 1
    for n in (restarted, b):
        assert [x.call_id for x in line_bindings(n.b2b, LINE_A)] == ["p1@test"]


def test_a_share_larger_than_the_receivers_take_leaves_its_oldest_bindings_out() -> None:
    a, b = node("a"), node("b")
    hops = tuple(f"<sip:{'p' * 1990}@proxy;lr>" for _ in range(8))  # ~16 KB a binding
    big = tuple(
        Binding(
            aor=LINE_A,
            uri=f"sip:{LINE_A}@127.0.0.1:{7200 + i}",
            expires_at=600.0,
            q=1.0,
            call_id=f"old-{i}",
            cseq=1,
            registered_at=-10.0 + i,
            path=hops,
        )
        for i in range(5)
    )
    a.b2b.shared.replace("a~previous", LINE_A, big, now=a.now)  # carried from a previous run
    register(a.phone("alice", ALICE_PORT, LINE_A), call_id="alice@test")
    (share,) = carry(a, b)
    assert len(share.value) <= MAX_SHARE_BYTES and b.b2b.shared.bad_shares == 0
    assert a.b2b.shared.left_out == 1 and share.live == 5
    assert '"old-0"' not in share.value and '"old-1"' in share.value  # the oldest went
    assert "alice@test" in share.value
