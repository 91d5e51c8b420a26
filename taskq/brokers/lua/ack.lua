-- ack: finish running jobs, keeping each result for its time to live.
-- KEYS[1] running   KEYS[2] jobs   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] tokens
-- KEYS[6] owners    KEYS[7] failures   KEYS[8..] one result key per job, in ARGV order
-- ARGV per job: id, token, result ttl ms (0 = keep none), result bytes
-- Returns: one 1 (finished) or 0 (refused: stale token) per job.
local out = {}
for i = 1, #ARGV, 4 do
  local id = ARGV[i]
  if owns(KEYS[5], id, ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[6], id)
    redis.call('HDEL', KEYS[7], id)
    local ttl = tonumber(ARGV[i + 2])
    if ttl > 0 then
      redis.call('SET', KEYS[8 + (i - 1) / 4], ARGV[i + 3], 'PX', ttl)
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
