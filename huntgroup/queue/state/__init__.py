"""Shared state of the group core, sans-I/O.

- ``store``: the interface the core reads and writes, and the in-memory store;
- ``operations``: the ops one node tells the others, snapshots, batches, compaction;
- ``journal``: the store that records its ops and merges other nodes' (the merge rules);
- ``codec``: the one codec: batches on the wire, the hashes of the store of record;
- ``sync``: the sync protocol (outbox, batch numbers, resync, remote wrap-up timers).

The Redis driver (``huntgroup.engine.aio.redis_state``) runs ``sync`` against Redis.
"""
