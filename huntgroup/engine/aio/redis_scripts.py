"""The two Lua scripts of the shared state in Redis, each run atomically.

``BATCH_SCRIPT`` applies one node's batch (the writes encoded by
:func:`huntgroup.queue.state.codec.encode_writes`) unless its number was seen,
refreshes the node's keys and publishes the batch; it answers 1 (applied),
0 (already applied) or -1 (the state marker is gone: Redis lost its data).
``RESTORE_SCRIPT`` writes a node's image (the payload of
:func:`huntgroup.queue.state.codec.encode_image`) if the marker is gone, and
answers 1 if it did. Membership, pauses and pointers are
written only by a newer Lamport stamp (``newer``: counter, then node id).
"""

from __future__ import annotations

_NEWER = """
local function newer(a, b)
  if not b then return true end
  local ia = string.find(a, '|', 1, true)
  local ib = string.find(b, '|', 1, true)
  local ca = tonumber(string.sub(a, 1, ia - 1))
  local cb = tonumber(string.sub(b, 1, ib - 1))
  if ca ~= cb then return ca > cb end
  local na = string.sub(a, ia + 1)
  local nb = string.sub(b, ib + 1)
  for i = 1, math.min(#na, #nb) do
    local x, y = string.byte(na, i), string.byte(nb, i)
    if x ~= y then return x > y end
  end
  return #na > #nb
end
"""

# KEYS: joined, joined stamps, talk, pointer, pointer stamps, seq, activity, queues, alive, marker,
#       paused, paused stamps
# ARGV: node, seq, ttl, channel, message, writes (JSON list)
BATCH_SCRIPT = (
    _NEWER
    + """
if redis.call('EXISTS', KEYS[10]) == 0 then return -1 end
local last = tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= last then return 0 end
for _, w in ipairs(cjson.decode(ARGV[6])) do
  local k = w[1]
  if k == 'j' then
    if newer(w[4], redis.call('HGET', KEYS[2], w[2])) then
      redis.call('HSET', KEYS[1], w[2], w[3])
      redis.call('HSET', KEYS[2], w[2], w[4])
      if w[3] ~= '-' then redis.call('HSET', KEYS[3], w[2], '0') end
    end
  elseif k == 'p' then
    if newer(w[4], redis.call('HGET', KEYS[5], w[2])) then
      redis.call('HSET', KEYS[4], w[2], w[3])
      redis.call('HSET', KEYS[5], w[2], w[4])
    end
  elseif k == 'u' then
    if newer(w[4], redis.call('HGET', KEYS[12], w[2])) then
      redis.call('HSET', KEYS[11], w[2], w[3])
      redis.call('HSET', KEYS[12], w[2], w[4])
    end
  elseif k == 't' then
    redis.call('HINCRBYFLOAT', KEYS[3], w[2], w[3])
  elseif k == 'a' or k == 'q' then
    local key = KEYS[7]
    if k == 'q' then key = KEYS[8] end
    if w[3] == '' then redis.call('HDEL', key, w[2]) else redis.call('HSET', key, w[2], w[3]) end
  elseif k == 'clear' then
    redis.call('DEL', KEYS[7], KEYS[8])
  end
end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[2])
redis.call('SET', KEYS[9], '1', 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[7], ARGV[3])
redis.call('EXPIRE', KEYS[8], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""
)

# KEYS: joined, joined stamps, talk, pointer, pointer stamps, marker, seq, paused, paused stamps
# ARGV: image (JSON), token, node, seq covered by the image, channel, message to publish
RESTORE_SCRIPT = """
if redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
local img = cjson.decode(ARGV[1])
for _, w in ipairs(img['j']) do
  redis.call('HSET', KEYS[1], w[1], w[2])
  redis.call('HSET', KEYS[2], w[1], w[3])
end
for _, w in ipairs(img['u'] or {}) do
  redis.call('HSET', KEYS[8], w[1], w[2])
  redis.call('HSET', KEYS[9], w[1], w[3])
end
for _, w in ipairs(img['t']) do redis.call('HSET', KEYS[3], w[1], w[2]) end
for _, w in ipairs(img['p']) do
  redis.call('HSET', KEYS[4], w[1], w[2])
  redis.call('HSET', KEYS[5], w[1], w[3])
end
redis.call('SET', KEYS[6], ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('HSET', KEYS[7], ARGV[3], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
"""
