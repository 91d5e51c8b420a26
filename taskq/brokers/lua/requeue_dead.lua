-- requeue_dead: make dead jobs due now with a fresh attempt count (their last failure is kept),
-- and wake the workers.
-- KEYS[1] dead   KEYS[2] due (list)   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] jobs
-- KEYS[6] due_at (list)
-- ARGV[1] wake channel, then the ids
-- Returns: how many jobs moved.
local moved = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 and redis.call('HEXISTS', KEYS[5], id) == 1 then
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    moved[#moved + 1] = id
  end
end
if #moved > 0 then
  push_due(KEYS[2], KEYS[6], moved, now_us())
  redis.call('PUBLISH', ARGV[1], 0)
end
return #moved
