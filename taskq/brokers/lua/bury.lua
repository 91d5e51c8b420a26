-- bury: move running jobs to the dead-letter store, then trim it by age and count.
-- KEYS[1] running   KEYS[2] dead (zset id -> buried at ms)   KEYS[3] jobs   KEYS[4] attempts
-- KEYS[5] crashes   KEYS[6] tokens   KEYS[7] owners   KEYS[8] failures   KEYS[9] cancels
-- KEYS[10] stats
-- ARGV[1] done channel   ARGV[2] most dead jobs kept   ARGV[3] dead time to live ms,
-- then per job: id, token, failure
-- Returns: one digit per job, as one string: 1 (buried) or 0 (refused: stale token); publishes the
-- buried ids.
local now = now_ms()
local out = {}
local done = {}
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  if owns(KEYS[6], id, ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], now, id)
    redis.call('HDEL', KEYS[6], id)
    redis.call('HDEL', KEYS[7], id)
    redis.call('HDEL', KEYS[9], id)
    redis.call('HSET', KEYS[8], id, ARGV[i + 2])
    done[#done + 1] = id
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
drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[3])),
  'LIMIT', 0, 1000))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[2])
if over > 0 then
  -- beyond the usual 1000, as many as this call buried: else a call burying more than 1000
  -- grows the store past its maximum for good (found by tests/faults/test_retention.py)
  drop(redis.call('ZRANGE', KEYS[2], 0, math.min(over, 1000 + #done) - 1))
end
if #done > 0 then
  count_stat(KEYS[10], now, 'f', #done)
  redis.call('PUBLISH', ARGV[1], cmsgpack.pack(done))
end
return table.concat(out)  -- one string to read, not one reply per job
