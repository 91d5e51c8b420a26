-- claim: recover expired leases, then move up to `limit` due jobs to running under a new lease, in
-- due order, and jobs due within `ahead` µs after them.
-- KEYS[1] waiting   KEYS[2] running   KEYS[3] jobs   KEYS[4] attempts   KEYS[5] crashes
-- KEYS[6] tokens (hash id -> fencing token)   KEYS[7] owners (hash id -> worker)
-- KEYS[8] token sequence (string counter)   KEYS[9] due (list)   KEYS[10] due_at (list)
-- ARGV[1] limit   ARGV[2] lease ms   ARGV[3] worker   ARGV[4] most leases to recover
-- ARGV[5] ahead µs
-- Returns: msgpack of {µs until the next waiting job is due (-1: none), id, body, token, attempt,
-- crashes, µs until that job is due (0: due now), ...}: one string, which the client unpacks in
-- C (a reply of 6 values per job made a worker parse them one by one, in Python)
local us = now_us()
local now = math.floor(us / 1000)  -- what now_ms() answers
local limit = tonumber(ARGV[1])
recover(KEYS[1], KEYS[2], KEYS[9], KEYS[10], KEYS[5], KEYS[6], KEYS[7], now, tonumber(ARGV[4]))
local ids, waits = {}, {}
if limit > 0 then
  -- the due jobs of both sets, merged by due time (the list's first on a tie)
  local listed = redis.call('LRANGE', KEYS[9], 0, limit - 1)
  local listed_at = #listed > 0 and redis.call('LRANGE', KEYS[10], 0, limit - 1) or {}
  local came = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', us, 'WITHSCORES', 'LIMIT', 0, limit)
  local i, j, from_set = 1, 1, {}
  while #ids < limit and (i <= #listed or j <= #came) do
    if j > #came or (i <= #listed and tonumber(listed_at[i] or 0) <= tonumber(came[j + 1])) then
      ids[#ids + 1] = listed[i]
      i = i + 1
    else
      ids[#ids + 1] = came[j]
      from_set[#from_set + 1] = came[j]
      j = j + 2
    end
    waits[#ids] = 0
  end
  if i > 1 then
    redis.call('LTRIM', KEYS[9], i - 1, -1)
    redis.call('LTRIM', KEYS[10], i - 1, -1)
  end
  if #from_set > 0 then batched('ZREM', KEYS[1], from_set) end
  local ahead = tonumber(ARGV[5])
  if #ids < limit and ahead > 0 then
    local soon = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. us, us + ahead, 'WITHSCORES',
      'LIMIT', 0, limit - #ids)
    local taken = {}
    for n = 1, #soon, 2 do
      taken[#taken + 1] = soon[n]
      ids[#ids + 1] = soon[n]
      waits[#ids] = tonumber(soon[n + 1]) - us
    end
    if #taken > 0 then batched('ZREM', KEYS[1], taken) end
  end
end
local out = {0}
if #ids > 0 then
  -- a few commands for the whole batch: per-job commands were most of a claim's cost
  local bodies, attempts, crashes = hmget(KEYS[3], ids), hmget(KEYS[4], ids), hmget(KEYS[5], ids)
  local last = redis.call('INCRBY', KEYS[8], #ids)
  local lease_end = now + tonumber(ARGV[2])
  local running, tokens, owners, counts = {}, {}, {}, {}
  for n, id in ipairs(ids) do
    if bodies[n] then  -- an id without a body has nothing to run: it just leaves waiting
      local token = tostring(last - #ids + n)
      local attempt = tonumber(attempts[n] or '0') + 1
      running[#running + 1] = lease_end
      running[#running + 1] = id
      tokens[#tokens + 1] = id
      tokens[#tokens + 1] = token
      owners[#owners + 1] = id
      owners[#owners + 1] = ARGV[3]
      counts[#counts + 1] = id
      counts[#counts + 1] = attempt
      out[#out + 1] = id
      out[#out + 1] = bodies[n]
      out[#out + 1] = token
      out[#out + 1] = attempt
      out[#out + 1] = tonumber(crashes[n] or '0')
      out[#out + 1] = waits[n]
    end
  end
  if #running > 0 then
    batched('ZADD', KEYS[2], running, 2)
    batched('HSET', KEYS[6], tokens, 2)
    batched('HSET', KEYS[7], owners, 2)
    batched('HSET', KEYS[4], counts, 2)
  end
end
if redis.call('LLEN', KEYS[9]) > 0 then
  out[1] = 0
else
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #head == 0 then
    out[1] = -1
  else
    -- in µs, not whole ms: a worker sleeping until then must not oversleep by a rounding
    out[1] = math.max(tonumber(head[2]) - us, 0)
  end
end
return cmsgpack.pack(out)
