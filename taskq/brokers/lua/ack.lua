-- ack: finish running jobs: keep each result for its time to live and a finished record.
-- KEYS[1] running   KEYS[2] jobs   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] tokens
-- KEYS[6] owners    KEYS[7] failures   KEYS[8] finished   KEYS[9] endings   KEYS[10] cancels
-- KEYS[11] stats    KEYS[12..] one result key per job, in ARGV order
-- ARGV[1] done channel   ARGV[2] most finished records kept   ARGV[3] their time to live ms,
-- then per job: id, token, result ttl ms (0 = keep none), result bytes
-- Returns: one digit per job, as one string: 1 (finished) or 0 (refused: stale token); publishes
-- the finished ids.
local now = now_ms()
local out = {}
local done = {}
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  if owns(KEYS[5], id, ARGV[i + 1]) then
    local attempt = redis.call('HGET', KEYS[3], id)
    local worker = redis.call('HGET', KEYS[6], id)
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[6], id)
    redis.call('HDEL', KEYS[7], id)
    redis.call('HDEL', KEYS[10], id)
    local ttl = tonumber(ARGV[i + 2])
    local result_key = KEYS[12 + (i - 4) / 4]
    if ttl > 0 then
      redis.call('SET', result_key, ARGV[i + 3], 'PX', ttl)
    else
      redis.call('DEL', result_key)  -- an earlier job of this id may have kept one
    end
    record_finished(KEYS[8], KEYS[9], now, id, 'succeeded', attempt, worker, ttl > 0 and 1 or 0)
    done[#done + 1] = id
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #done > 0 then
  count_stat(KEYS[11], now, 's', #done)
  trim_finished(KEYS[8], KEYS[9], now, tonumber(ARGV[2]), tonumber(ARGV[3]), #done)
  redis.call('PUBLISH', ARGV[1], cmsgpack.pack(done))
end
return table.concat(out)  -- one string to read, not one reply per job
