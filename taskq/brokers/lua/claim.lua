-- claim: recover expired leases, then move up to `limit` due jobs to running under a new lease,
-- and jobs due within `ahead` µs after them.
-- KEYS[1] waiting   KEYS[2] running   KEYS[3] jobs   KEYS[4] attempts   KEYS[5] crashes
-- KEYS[6] tokens (hash id -> fencing token)   KEYS[7] owners (hash id -> worker)
-- KEYS[8] token sequence (string counter)
-- ARGV[1] limit   ARGV[2] lease ms   ARGV[3] worker   ARGV[4] most leases to recover
-- ARGV[5] ahead µs
-- Returns: msgpack of {µs until the next waiting job is due (-1: none), id, body, token, attempt,
-- crashes, µs until that job is due (0: due now), ...}: one string, which the client unpacks in
-- C (a reply of 6 values per job made a worker parse them one by one, in Python)
local us = now_us()
local now = math.floor(us / 1000)  -- what now_ms() answers
recover(KEYS[2], KEYS[1], KEYS[5], KEYS[6], KEYS[7], now, tonumber(ARGV[4]))
local out = {0}
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', us + tonumber(ARGV[5]), 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[1]))
local ids, waits = {}, {}
for n = 1, #found, 2 do
  ids[#ids + 1] = found[n]
  waits[#waits + 1] = math.max(tonumber(found[n + 1]) - us, 0)
end
if #ids > 0 then
  -- a few commands for the whole batch: per-job commands were most of a claim's cost
  batched('ZREM', KEYS[1], ids)
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
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #head == 0 then
  out[1] = -1
else
  -- in µs, not whole ms: a worker sleeping until then must not oversleep by a rounding
  out[1] = math.max(tonumber(head[2]) - us, 0)
end
return cmsgpack.pack(out)
