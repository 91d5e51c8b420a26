-- enqueue: write jobs that are not already waiting or running; wake the workers.
-- KEYS[1] waiting (zset id -> due µs)   KEYS[2] running (zset id -> lease end ms)
-- KEYS[3] jobs (hash id -> body)        KEYS[4] attempts (hash)   KEYS[5] crashes (hash)
-- KEYS[6] failures (hash)               KEYS[7] dead (zset)
-- ARGV[1] wake channel, then per job: id, body, delay ms, due-at ms ('' = use the delay)
-- Returns: one digit per job, as one string: 1 (written) or 0 (a job with that id is waiting or
-- running).
local us = now_us()
local written = {}
local soonest = nil
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  -- a new id (the common case) costs one HSETNX; a known one is waiting, running or dead
  local fresh = redis.call('HSETNX', KEYS[3], id, ARGV[i + 1]) == 1
  if not fresh and (redis.call('ZSCORE', KEYS[1], id) or redis.call('ZSCORE', KEYS[2], id)) then
    written[#written + 1] = 0
  else
    if not fresh then
      -- a dead job's id used again: the new job replaces it and starts afresh
      redis.call('ZREM', KEYS[7], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[6], id)
      redis.call('HSET', KEYS[3], id, ARGV[i + 1])
    end
    local due = due_after(us, tonumber(ARGV[i + 2]))
    if ARGV[i + 3] ~= '' then due = tonumber(ARGV[i + 3]) * 1000 end
    redis.call('ZADD', KEYS[1], due, id)
    written[#written + 1] = 1
    if soonest == nil or due < soonest then soonest = due end
  end
end
if soonest ~= nil then
  redis.call('PUBLISH', ARGV[1], ms_until(soonest, us))
end
return table.concat(written)  -- one string to read, not one reply per job
