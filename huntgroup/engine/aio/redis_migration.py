"""The one-time move of the shared state from the untagged key names (before issue 13).

Theory of operation
-------------------
Issue 13 put every key under one Redis Cluster hash tag (``redis_keys.py``).
A node that starts on a Redis holding the old names and not yet the new ones
copies membership, pauses, talk time and pointers (with their stamps) to the new
names, in one atomic script, and sets the new state marker; the old keys are
left as they were (an operator deletes them once every node runs the new
version). The script does nothing when the new marker exists (another node
migrated first, or the state is already new) or the old one is absent (nothing
to migrate). Per-node keys (activity, queues, liveness) are not copied: they
expire within seconds and every node rewrites its own.

On a Redis Cluster the old names hash to several slots and the script is
refused with ``CROSSSLOT``; a Cluster never ran the old layout (its scripts
failed the same way), so there is nothing to migrate and the refusal is
ignored.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from huntgroup.engine.aio.redis_keys import RedisKeys

log = logging.getLogger("huntgroup.state")

# KEYS: new marker, old marker, then (old, new) pairs of hashes
MIGRATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for i = 3, #KEYS, 2 do
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do redis.call('HSET', KEYS[i + 1], flat[j], flat[j + 1]) end
end
redis.call('SET', KEYS[1], redis.call('GET', KEYS[2]) or '1')
return 1
"""


async def migrate_legacy_keys(client: aioredis.Redis, keys: RedisKeys) -> bool:
    """Copy the state from the untagged names if it is only there; True if it was copied."""
    names = [keys.marker, keys.legacy_marker]
    for old, new in keys.legacy():
        names += [old, new]
    try:
        moved = int(await client.eval(MIGRATE_SCRIPT, len(names), *names)) == 1
    except ResponseError as err:
        if "CROSSSLOT" not in str(err):
            raise
        return False
    if moved:
        log.warning(
            "the shared state was copied from the key names before issue 13 (%s:*) to %s:*; "
            "delete the old keys once every node runs this version",
            keys.prefix,
            keys.tag,
        )
    return moved
