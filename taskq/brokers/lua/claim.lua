-- claim: recover expired leases, then move up to `limit` due jobs to running under a new lease.
-- KEYS[1] waiting   KEYS[2] running   KEYS[3] jobs   KEYS[4] attempts   KEYS[5] crashes
-- KEYS[6] tokens (hash id -> fencing token)   KEYS[7] owners (hash id -> worker)
-- KEYS[8] token sequence (string counter)
-- ARGV[1] limit   ARGV[2] lease ms   ARGV[3] worker   ARGV[4] most leases to recover
-- Returns: msgpack of {µs until the next waiting job is due (-1: none), id, body, token, attempt,
-- crashes, ...}: one string, which the client unpacks in C (a reply of 5 values per job made a
-- worker parse them one by one, in Python)
local us = now_us()
local now = math.floor(us / 1000)  -- what now_ms() answers
recover(KEYS[2], KEYS[1], KEYS[5], KEYS[6], KEYS[7], now, tonumber(ARGV[4]))
local out = {0}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', us, 'LIMIT', 0, tonumber(ARGV[1]))
if #ids > 0 then
  local lease_end = now + tonumber(ARGV[2])
  local last = redis.call('INCRBY', KEYS[8], #ids)
  for n, id in ipairs(ids) do
    redis.call('ZREM', KEYS[1], id)
    local body = redis.call('HGET', KEYS[3], id)
    if body then
      local token = tostring(last - #ids + n)
      redis.call('ZADD', KEYS[2], lease_end, id)
      redis.call('HSET', KEYS[6], id, token)
      redis.call('HSET', KEYS[7], id, ARGV[3])
      local attempt = redis.call('HINCRBY', KEYS[4], id, 1)
      local crashes = tonumber(redis.call('HGET', KEYS[5], id) or '0')
      out[#out + 1] = id
      out[#out + 1] = body
      out[#out + 1] = token
      out[#out + 1] = attempt
      out[#out + 1] = crashes
    end
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
