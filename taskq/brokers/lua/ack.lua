-- ack: finish running jobs: keep each result for its time to live and a finished record.
-- KEYS[1] running   KEYS[2] jobs   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] tokens
-- KEYS[6] owners    KEYS[7] failures   KEYS[8] finished   KEYS[9] endings   KEYS[10] cancels
-- KEYS[11] stats    KEYS[12..] one result key per job, in ARGV order
-- ARGV[1] done channel   ARGV[2] most finished records kept   ARGV[3] their time to live ms,
-- then per job: id, token, result ttl ms (0 = keep none), result bytes
-- Returns: one digit per job, as one string: 1 (finished) or 0 (refused: stale token); publishes
-- the finished ids.
local now = now_ms()
local ids = {}
for i = 4, #ARGV, 4 do ids[#ids + 1] = ARGV[i] end
-- a few commands for the whole batch: per-job commands were most of an ack's cost
local tokens, attempts, workers = hmget(KEYS[5], ids), hmget(KEYS[3], ids), hmget(KEYS[6], ids)
local out, done, seen, dropped, finished, endings = {}, {}, {}, {}, {}, {}
for n, id in ipairs(ids) do
  local i = 4 * n
  if tokens[n] == ARGV[i + 1] and not seen[id] then
    seen[id] = true
    local ttl = tonumber(ARGV[i + 2])
    local result_key = KEYS[11 + n]
    if ttl > 0 then
      redis.call('SET', result_key, ARGV[i + 3], 'PX', ttl)
    else
      dropped[#dropped + 1] = result_key  -- an earlier job of this id may have kept one
    end
    finished[#finished + 1] = now
    finished[#finished + 1] = id
    endings[#endings + 1] = id
    endings[#endings + 1] = ending('succeeded', attempts[n], workers[n], ttl > 0 and 1 or 0)
    done[#done + 1] = id
    out[n] = 1
  else
    out[n] = 0
  end
end
if #done > 0 then
  batched('ZREM', KEYS[1], done)
  for _, key in ipairs({KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[10]}) do
    batched('HDEL', key, done)
  end
  batched('DEL', nil, dropped)
  batched('ZADD', KEYS[8], finished, 2)
  batched('HSET', KEYS[9], endings, 2)
  count_stat(KEYS[11], now, 's', #done)
  trim_finished(KEYS[8], KEYS[9], now, tonumber(ARGV[2]), tonumber(ARGV[3]), #done)
  redis.call('PUBLISH', ARGV[1], cmsgpack.pack(done))
end
return table.concat(out)  -- one string to read, not one reply per job
