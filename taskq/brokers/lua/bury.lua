-- bury: move running jobs to the dead-letter store, then trim it by age and count.
-- KEYS[1] running   KEYS[2] dead (zset id -> buried at ms)   KEYS[3] jobs   KEYS[4] attempts
-- KEYS[5] crashes   KEYS[6] tokens   KEYS[7] owners   KEYS[8] failures
-- ARGV[1] most dead jobs kept   ARGV[2] dead time to live ms, then per job: id, token, failure
-- Returns: one 1 (buried) or 0 (refused: stale token) per job.
local now = now_ms()
local out = {}
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  if owns(KEYS[6], id, ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], now, id)
    redis.call('HDEL', KEYS[6], id)
    redis.call('HDEL', KEYS[7], id)
    redis.call('HSET', KEYS[8], id, ARGV[i + 2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
-- the oldest go first; work per call is bounded so a huge backlog is trimmed over several calls
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[8], id)
  end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[2])),
  'LIMIT', 0, 1000))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[1])
if over > 0 then
  drop(redis.call('ZRANGE', KEYS[2], 0, math.min(over, 1000) - 1))
end
return out
