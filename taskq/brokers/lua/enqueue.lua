-- enqueue: write jobs that are not already waiting or running; wake the workers.
-- KEYS[1] waiting (zset id -> due µs)   KEYS[2] due (list of ids)   KEYS[3] jobs (hash id -> body)
-- KEYS[4] attempts (hash)   KEYS[5] crashes (hash)   KEYS[6] failures (hash)   KEYS[7] dead (zset)
-- KEYS[8] due_at (list of due µs, the twin of due)
-- ARGV[1] wake channel, then per job: id, body, delay ms, due-at ms ('' = use the delay)
-- Returns: one digit per job, as one string: 1 (written) or 0 (a job with that id is waiting or
-- running).
-- A job due now joins the tail of the due list. Only a job that finds the list empty wakes the
-- workers: a claim that leaves jobs in the list tells its worker to claim again.
local us = now_us()
-- the usual `delay()` or `delay_by()`: one job, due now or after a delay, its id new. One HSETNX
-- writes it, where the batch path below takes an HMGET and an HSET
if #ARGV == 5 and ARGV[5] == '' and redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[3]) == 1 then
  if ARGV[4] == '0' then
    if push_due(KEYS[2], KEYS[8], {ARGV[2]}, us) == 1 then redis.call('PUBLISH', ARGV[1], 0) end
  else
    local due = due_after(us, tonumber(ARGV[4]))
    redis.call('ZADD', KEYS[1], due, ARGV[2])
    redis.call('PUBLISH', ARGV[1], ms_until(due, us))
  end
  return '1'
end
local ids = {}
for i = 2, #ARGV, 4 do ids[#ids + 1] = ARGV[i] end
-- a few commands for the whole batch (bodies looked up, written and scheduled together): two
-- per job were most of a bulk enqueue's Redis time
-- a body kept under the id: its job is waiting (in either set), running or dead
local known = hmget(KEYS[3], ids)
local written, bodies, dues, now_due, taken = {}, {}, {}, {}, {}
local soonest = nil
for n, id in ipairs(ids) do
  local i = 2 + (n - 1) * 4
  local dead = known[n] and redis.call('ZSCORE', KEYS[7], id)
  if taken[id] or (known[n] and not dead) then
    written[n] = 0
  else
    if dead then
      -- a dead job's id used again: the new job replaces it and starts afresh
      redis.call('ZREM', KEYS[7], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[6], id)
    end
    taken[id] = true  -- the same id twice in one batch: the first one is written
    local due = due_after(us, tonumber(ARGV[i + 2]))
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = ARGV[i + 1]
    if ARGV[i + 3] ~= '' then
      due = tonumber(ARGV[i + 3]) * 1000
      dues[#dues + 1] = due  -- a due time of its own, even a past one, is kept
      dues[#dues + 1] = id
    elseif due == us then
      now_due[#now_due + 1] = id
    else
      dues[#dues + 1] = due
      dues[#dues + 1] = id
    end
    written[n] = 1
    if soonest == nil or due < soonest then soonest = due end
  end
end
batched('HSET', KEYS[3], bodies, 2)
batched('ZADD', KEYS[1], dues, 2)
local length = push_due(KEYS[2], KEYS[8], now_due, us)
if #dues > 0 or length == #now_due and length > 0 then
  redis.call('PUBLISH', ARGV[1], ms_until(soonest, us))
end
return table.concat(written)  -- one string to read, not one reply per job
