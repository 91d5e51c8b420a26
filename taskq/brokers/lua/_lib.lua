-- Shared helpers, prepended to every taskq script when it is loaded.

-- Milliseconds since the epoch by the Redis server's clock: the only clock that decides.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Microseconds since the epoch by the Redis server's clock (exact in a Lua double).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The due time, in µs (the unit of the waiting set's scores), of a job delayed `delay` ms from
-- `us`, the server clock in µs. Scored to the µs, a due time adds no rounding to a job's start
-- (scored in whole ms, rounded up so as never to be early, it added up to 1 ms).
local function due_after(us, delay)
  return us + delay * 1000
end

-- The whole ms from `us` to the due time `due` (both in µs), rounded down, never below 0: what a
-- wake-up message says (a worker woken a little early claims nothing and sleeps again).
local function ms_until(due, us)
  return math.max(math.floor((due - us) / 1000), 0)
end


-- Call `command` with `args` (a flat list) after `key` (nil: none), in as few calls as Lua's
-- stack allows: a batch costs a few calls, not a few per job. `step` is how many arguments make
-- one item (2 for field-value pairs), so that no call splits an item. Returns the last call's
-- reply (nil: no call, `args` was empty).
local function batched(command, key, args, step)
  local per = 1000 - 1000 % (step or 1)
  local reply = nil
  for i = 1, #args, per do
    local last = math.min(i + per - 1, #args)
    if key then
      reply = redis.call(command, key, unpack(args, i, last))
    else
      reply = redis.call(command, unpack(args, i, last))
    end
  end
  return reply
end

-- Append `ids`, all due at `us`, to the tail of the due list `due` and their due times to the
-- tail of its twin `due_at` (see redis_keys.py). Returns the due list's new length (0: no ids).
local function push_due(due, due_at, ids, us)
  local times = {}
  for n = 1, #ids do times[n] = us end
  batched('RPUSH', due_at, times)
  return batched('RPUSH', due, ids) or 0
end

-- Put `ids`, in order, at the head of the due list `due` (and `due_at`): ahead of every job due
-- already, as they were before they were claimed. They are due at the earliest of `us`, the list's
-- head and the first due job of the waiting set `waiting` (µs), so the list stays in due order
-- and a claim takes them first (the list's job goes first on a tie).
local function push_due_front(waiting, due, due_at, ids, us)
  local at = us
  local head = redis.call('LINDEX', due_at, 0)
  if head then at = math.min(at, tonumber(head)) end
  local first = redis.call('ZRANGEBYSCORE', waiting, '-inf', us, 'WITHSCORES', 'LIMIT', 0, 1)
  if #first > 0 then at = math.min(at, tonumber(first[2])) end
  local reversed, times = {}, {}
  for n = #ids, 1, -1 do
    reversed[#reversed + 1] = ids[n]
    times[#times + 1] = at
  end
  batched('LPUSH', due_at, times)
  batched('LPUSH', due, reversed)
end

-- Move up to `limit` running jobs whose lease ended before `now` (ms) to the head of the due list
-- `due` (and `due_at`): a job a dead worker held does not wait behind the backlog again. Each
-- recovery counts a crash and drops the token, so the old owner's writes are refused.
local function recover(waiting, running, due, due_at, crashes, tokens, owners, now, limit)
  local expired = redis.call('ZRANGEBYSCORE', running, '-inf', '(' .. now, 'LIMIT', 0, limit)
  if #expired == 0 then return 0 end
  batched('ZREM', running, expired)
  push_due_front(waiting, due, due_at, expired, now * 1000)
  batched('HDEL', tokens, expired)
  batched('HDEL', owners, expired)
  for _, id in ipairs(expired) do redis.call('HINCRBY', crashes, id, 1) end
  return #expired
end

-- HMGET of `ids` in `key` (batched like above): a value or false per id, in order.
local function hmget(key, ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local part = redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))
    for n = 1, #part do out[#out + 1] = part[n] end
  end
  return out
end

-- True when `token` is the current fencing token of running job `id`.
local function owns(tokens, id, token)
  return redis.call('HGET', tokens, id) == token
end

-- Add `n` to this minute's count `field` ('s' succeeded, 'f' failed) in the `stats` hash: a ring
-- of 60 slots (t<slot> holds the minute a slot counts), so it never grows.
local function count_stat(stats, now, field, n)
  if n == 0 then return end
  local minute = math.floor(now / 60000)
  local slot = minute % 60
  if tonumber(redis.call('HGET', stats, 't' .. slot)) ~= minute then
    redis.call('HSET', stats, 't' .. slot, minute, 's' .. slot, 0, 'f' .. slot, 0)
  end
  redis.call('HINCRBY', stats, field .. slot, n)
end

-- A job's ending, as the `endings` hash keeps it: msgpack {state, attempt, worker or false,
-- result kept 1/0}.
local function ending(state, attempt, worker, kept)
  return cmsgpack.pack({state, tonumber(attempt or '0'), worker, kept})
end

-- Keep the finished record of job `id`: `finished` zset id -> ms, `endings` hash id -> ending.
local function record_finished(finished, endings, now, id, state, attempt, worker, kept)
  redis.call('ZADD', finished, now, id)
  redis.call('HSET', endings, id, ending(state, attempt, worker, kept))
end

-- Drop finished records older than `ttl` ms or beyond the newest `max` (bounded work per call).
-- `added`: how many this call just recorded. The trim may drop that many more than the usual
-- 1000, or a call adding over 1000 would grow the set past `max` for good (found by
-- tests/faults/test_retention.py); the work stays proportional to the call's own.
-- The records to drop are the oldest (lowest scores) either way: a few commands drop them all.
local function trim_finished(finished, endings, now, max, ttl, added)
  local old = redis.call('ZCOUNT', finished, '-inf', '(' .. (now - ttl))
  local over = redis.call('ZCARD', finished) - max
  local drop = math.min(math.max(old, over), 1000 + (added or 0))
  if drop > 0 then
    redis.call('HDEL', endings, unpack(redis.call('ZRANGE', finished, 0, drop - 1)))
    redis.call('ZREMRANGEBYRANK', finished, 0, drop - 1)
  end
end
