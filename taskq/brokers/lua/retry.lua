-- retry: put running jobs back to waiting, due after a delay, keeping their last failure.
-- KEYS[1] waiting   KEYS[2] running   KEYS[3] attempts   KEYS[4] tokens   KEYS[5] owners
-- KEYS[6] failures
-- ARGV[1] wake channel, then per job: id, token, delay ms, count attempt (1/0), failure ('' = none)
-- Returns: one 1 (put back) or 0 (refused: stale token) per job.
local now = now_ms()
local out = {}
local soonest = nil
for i = 2, #ARGV, 5 do
  local id = ARGV[i]
  if owns(KEYS[4], id, ARGV[i + 1]) then
    local due = due_after(now, tonumber(ARGV[i + 2]))
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZADD', KEYS[1], due, id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    if ARGV[i + 3] == '0' then redis.call('HINCRBY', KEYS[3], id, -1) end
    if ARGV[i + 4] ~= '' then redis.call('HSET', KEYS[6], id, ARGV[i + 4]) end
    if soonest == nil or due < soonest then soonest = due end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if soonest ~= nil then
  redis.call('PUBLISH', ARGV[1], math.max(soonest - now, 0))
end
return out
