-- retry: put running jobs back to waiting, due after a delay (none: at the tail of the due list;
-- a job handed back, its attempt not counted, at its head), keeping their last failure; a job
-- whose cancel was requested while it ran ends cancelled instead.
-- KEYS[1] waiting   KEYS[2] running   KEYS[3] attempts   KEYS[4] tokens   KEYS[5] owners
-- KEYS[6] failures  KEYS[7] jobs   KEYS[8] crashes   KEYS[9] cancels   KEYS[10] finished
-- KEYS[11] endings  KEYS[12] stats   KEYS[13] due (list)   KEYS[14] due_at (list)
-- ARGV[1] wake channel   ARGV[2] done channel   ARGV[3] most finished records kept
-- ARGV[4] their ttl ms, then per job: id, token, delay ms, count attempt (1/0), failure ('' = none)
-- Returns: one digit per job, as one string: 1 (put back or cancelled) or 0 (refused: stale token).
local us = now_us()
local now = math.floor(us / 1000)  -- what now_ms() answers
local out = {}
local soonest = nil
local failed = 0
local cancelled = {}
local front = {}
for i = 5, #ARGV, 5 do
  local id = ARGV[i]
  if owns(KEYS[4], id, ARGV[i + 1]) then
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    if ARGV[i + 3] == '0' then redis.call('HINCRBY', KEYS[3], id, -1) end
    if ARGV[i + 4] ~= '' then
      redis.call('HSET', KEYS[6], id, ARGV[i + 4])
      failed = failed + 1
    end
    if redis.call('HDEL', KEYS[9], id) == 1 then
      local attempt = redis.call('HGET', KEYS[3], id)
      for _, key in ipairs({KEYS[3], KEYS[6], KEYS[7], KEYS[8]}) do redis.call('HDEL', key, id) end
      record_finished(KEYS[10], KEYS[11], now, id, 'cancelled', attempt, false, 0)
      cancelled[#cancelled + 1] = id
    else
      local due = due_after(us, tonumber(ARGV[i + 2]))
      if due == us and ARGV[i + 3] == '0' then
        front[#front + 1] = id  -- handed back: first in line again, in the order given
      elseif due == us then
        push_due(KEYS[13], KEYS[14], {id}, us)
      else
        redis.call('ZADD', KEYS[1], due, id)
      end
      if soonest == nil or due < soonest then soonest = due end
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #front > 0 then push_due_front(KEYS[1], KEYS[13], KEYS[14], front, us) end
count_stat(KEYS[12], now, 'f', failed)
if #cancelled > 0 then
  trim_finished(KEYS[10], KEYS[11], now, tonumber(ARGV[3]), tonumber(ARGV[4]))
  redis.call('PUBLISH', ARGV[2], cmsgpack.pack(cancelled))
end
if soonest ~= nil then
  redis.call('PUBLISH', ARGV[1], ms_until(soonest, us))
end
return table.concat(out)  -- one string to read, not one reply per job
