"""The names of every Redis key and channel of the shared state, in one place.

Theory of operation
-------------------
Every key huntgroup writes carries the same Redis Cluster hash tag: the
prefix in braces (``{huntgroup}:joined``, ``{huntgroup}:activity:NODE`` ...).
Redis Cluster hashes only the part between the first ``{`` and ``}``, so all
the keys land in one slot, on one shard, and the multi-key Lua scripts never
meet ``CROSSSLOT``. The shared state is small (a few hashes of one entry per
member and group, plus one hash per live node), so one shard holds it with room
to spare; a Cluster adds availability here, not capacity.

The pub/sub channel (``huntgroup:ops``) is not a key: Cluster broadcasts
``PUBLISH`` to every shard, and its name keeps the plain prefix.

Versions before issue 13 used untagged names (``huntgroup:joined``): they are
listed in :meth:`RedisKeys.legacy` for the one-time migration
(``redis_migration.py``).

The scripts take their keys in the fixed orders of :meth:`RedisKeys.batch` and
:meth:`RedisKeys.restore`; a new key is added to those lists here. The claims'
scripts (``redis_claims.py``) take a member's claims (:meth:`RedisKeys.claims`),
the nodes' leases (:attr:`RedisKeys.leases`) and a group's waiting callers
(:meth:`RedisKeys.waiting`): under the same tag, so that ``ASSERT_SCRIPT``,
which writes the claims of several members in one call, stays in one slot.
Claims are leases of a few seconds: they are not in :meth:`RedisKeys.legacy`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The key names of one prefix (``huntgroup`` unless a test or an operator says otherwise)."""

    prefix: str = "huntgroup"

    @property
    def tag(self) -> str:
        """The hash tag every key starts with: ``{prefix}``."""
        return "{" + self.prefix + "}"

    def key(self, name: str) -> str:
        """The key ``name`` under the shared hash tag."""
        return f"{self.tag}:{name}"

    @property
    def channel(self) -> str:
        """The pub/sub channel of the batches (not a key: no hash tag)."""
        return f"{self.prefix}:ops"

    @property
    def state(self) -> list[str]:
        """joined, joined stamps, talk, pointer, pointer stamps, batch numbers per node."""
        return [
            self.key("joined"),
            self.key("joined:stamp"),
            self.key("talk"),
            self.key("pointer"),
            self.key("pointer:stamp"),
            self.key("seq"),
        ]

    @property
    def paused(self) -> list[str]:
        """paused, paused stamps."""
        return [self.key("paused"), self.key("paused:stamp")]

    @property
    def marker(self) -> str:
        """Present while Redis holds the state (absent: Redis lost its data)."""
        return self.key("marker")

    @property
    def activity_prefix(self) -> str:
        return self.key("activity:")

    @property
    def alive_prefix(self) -> str:
        return self.key("alive:")

    def activity(self, node: str) -> str:
        return f"{self.activity_prefix}{node}"

    def queues(self, node: str) -> str:
        return self.key(f"queues:{node}")

    def alive(self, node: str) -> str:
        return f"{self.alive_prefix}{node}"

    def claims(self, member: str) -> str:
        """``member``'s claims: one field per holder (``docs/state.md``)."""
        return self.key(f"claims:{member}")

    def waiting(self, group: str) -> str:
        """``group``'s waiting callers, every node's (a sorted set by arrival)."""
        return self.key(f"waiting:{group}")

    @property
    def leases(self) -> str:
        """The nodes' leases (node → end, Redis's clock): a node's waiting callers count
        for the other nodes' claims only while it renews its lease."""
        return self.key("leases")

    @property
    def bindings_prefix(self) -> str:
        """Every node's shares of registrations start with it (SCANned on reconnection)."""
        return self.key("bindings:")

    def bindings(self, node: str, aor: str) -> str:
        """``node``'s registrations of ``aor`` (a JSON share, expiring at its last binding's
        end: ``redis_bindings.py``)."""
        return f"{self.bindings_prefix}{node}:{aor}"

    @property
    def bindings_channel(self) -> str:
        """The pub/sub channel of the shares of registrations (not a key: no hash tag)."""
        return f"{self.prefix}:bindings"

    def node_keys(self, node: str) -> list[str]:
        """The keys a node owns and removes when it stops."""
        return [self.activity(node), self.queues(node), self.alive(node)]

    def batch(self, node: str) -> list[str]:
        """The KEYS of ``BATCH_SCRIPT``, in its order."""
        return [
            *self.state,
            self.activity(node),
            self.queues(node),
            self.alive(node),
            self.marker,
            *self.paused,
            self.leases,
        ]

    def own_channel(self, node: str) -> str:
        """A channel ``node`` subscribes to and nothing is published to: ``PUBSUB NUMSUB``
        of it tells the node's own subscription to the state's channel from the others'."""
        return f"{self.channel}:self:{node}"

    def restore(self) -> list[str]:
        """The KEYS of ``RESTORE_SCRIPT``, in its order."""
        return [*self.state[:5], self.marker, self.state[5], *self.paused]

    def legacy(self) -> list[tuple[str, str]]:
        """(name before issue 13, name now) of the keys that outlive the nodes."""
        names = [*self.state, *self.paused]
        return [(f"{self.prefix}:{name[len(self.tag) + 1 :]}", name) for name in names]

    @property
    def legacy_marker(self) -> str:
        return f"{self.prefix}:marker"
