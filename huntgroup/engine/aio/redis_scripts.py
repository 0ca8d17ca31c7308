"""The Lua scripts of the shared state in Redis, each run atomically.

``BATCH_SCRIPT`` applies one node's batch (the writes encoded by
:func:`huntgroup.queue.state.codec.encode_writes`) unless its number was seen,
refreshes the node's keys and publishes the batch; it answers 1 (applied),
0 (already applied) or -1 (the state marker is gone: Redis lost its data).
``RESTORE_SCRIPT`` writes a node's image (the payload of
:func:`huntgroup.queue.state.codec.encode_image`) if the marker is gone, and
answers 1 if it did. Membership, pauses and pointers are
written only by a newer Lamport stamp (``newer``: counter, then node id).
``CLAIM_SCRIPT`` and ``ASSERT_SCRIPT`` claim members before they are rung, and renew,
re-assert and release those claims (``docs/state.md``, "Several nodes: claims").
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
#       paused, paused stamps, the nodes' leases
# ARGV: node, seq, ttl, channel, message, writes (JSON list), the node's own channel
# The batch is published only if someone else listens: a subscriber of the channel other than
# the node itself (its own channel, which nothing is published to, tells its subscription from
# the others), or another node with a lease (its subscription may be on another shard of a
# Cluster, where NUMSUB does not see it; ended leases are swept at every node's renewal). A
# lone node does not read its own batches back.
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
local subs = redis.call('PUBSUB', 'NUMSUB', ARGV[4], ARGV[7])
local others = subs[2] > subs[4]
if not others then
  for _, node in ipairs(redis.call('HKEYS', KEYS[13])) do
    if node ~= ARGV[1] then others = true end
  end
end
if others then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
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

# The claims on members (see huntgroup.queue.state.claims): one hash per member, one field
# per holder ("NODE CALL"), its value "END KIND NODE": END the lease's end in milliseconds of
# Redis's own clock, KIND r (rings), t (talks) or w (wraps up). Only another node's live claim
# counts; an expired field is dropped when seen.
_CLAIMS = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function blocked(key, node, waiting, now)
  local fields = redis.call('HGETALL', key)
  local found = false
  for i = 1, #fields, 2 do
    local ends, kind, owner = string.match(fields[i + 1], '^(%d+) (%a) (.*)$')
    if not ends or tonumber(ends) <= now then
      redis.call('HDEL', key, fields[i])
    elseif owner ~= node and (waiting ~= '1' or kind ~= 't') then
      found = true
    end
  end
  return found
end
local function hold(key, field, kind, node, now, ms)
  redis.call('HSET', key, field, string.format('%d %s %s', now + ms, kind, node))
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: the member's claims, the nodes' leases (a hash: node -> end of its lease, ms), then (a
# group call) the group's waiting callers (a sorted set of "NODE CALL" by arrival, wall-clock
# seconds). ARGV: node, call, call_waiting (1 or 0), lease (ms), the call's arrival. Answers 1
# (granted: the field holds the claim, ringing), 0 (another node holds the member) or 2 (an
# older caller of the group waits on another live node: the member is left for it; the
# entries of nodes whose lease ended are dropped).
CLAIM_SCRIPT = (
    _CLAIMS
    + """
local now = clock()
if KEYS[3] then
  for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[5])) do
    local owner = string.match(e, '^(%S+) ')
    if owner ~= ARGV[1] then
      local ends = owner and redis.call('HGET', KEYS[2], owner)
      if ends and tonumber(ends) > now then return 2 end
      redis.call('ZREM', KEYS[3], e)
    end
  end
end
if blocked(KEYS[1], ARGV[1], ARGV[3], now) then return 0 end
hold(KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'r', ARGV[1], now, tonumber(ARGV[4]))
return 1
"""
)

# KEYS: the nodes' leases, then the claims of each member written. ARGV: node, JSON [[call,
# kind, ms], ...] (one per member key), this node's lease (ms; '' ends it: the node stops),
# sweep ('1': the periodic renewal). The node's lease is renewed, and with sweep the leases
# that ended are dropped. For each claim: kind ''
# releases; r, t, w write (renew or re-assert) for ms. A claim the hash no longer holds (the
# lease ran out, or Redis lost it) is taken again if no other node holds a live claim on the
# member; else it is refused: an r claim is not written, a t or w claim is written all the
# same (the member talks, or wraps up) and drops the other nodes' r claims (those nodes find
# them gone at their next renewal, and end their offers). Answers the 1-based indexes of the
# claims refused.
ASSERT_SCRIPT = (
    _CLAIMS
    + """
local now = clock()
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[3]))
  if ARGV[4] == '1' then
    local leases = redis.call('HGETALL', KEYS[1])
    for j = 1, #leases, 2 do
      if tonumber(leases[j + 1]) <= now then redis.call('HDEL', KEYS[1], leases[j]) end
    end
  end
end
local refused = {}
for i, w in ipairs(cjson.decode(ARGV[2])) do
  local key, field, kind, ms = KEYS[i + 1], ARGV[1] .. ' ' .. w[1], w[2], w[3]
  if kind == '' then
    redis.call('HDEL', key, field)
  else
    local mine = redis.call('HGET', key, field)
    if not mine or tonumber(string.match(mine, '^(%d+)') or '0') <= now then
      if blocked(key, ARGV[1], '0', now) then
        table.insert(refused, i)
        if kind ~= 'r' then
          local fields = redis.call('HGETALL', key)
          for j = 1, #fields, 2 do
            if string.match(fields[j + 1], '^%d+ r ') then redis.call('HDEL', key, fields[j]) end
          end
          hold(key, field, kind, ARGV[1], now, ms)
        end
      else
        hold(key, field, kind, ARGV[1], now, ms)
      end
    else
      hold(key, field, kind, ARGV[1], now, ms)
    end
  end
end
return refused
"""
)
