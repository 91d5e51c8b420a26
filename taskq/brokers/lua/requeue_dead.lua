-- requeue_dead: make dead jobs due now with a fresh attempt count (their last failure is kept).
-- KEYS[1] dead   KEYS[2] waiting   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] jobs
-- ARGV ids
-- Returns: how many jobs moved.
local us = now_us()
local moved = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 and redis.call('HEXISTS', KEYS[5], id) == 1 then
    redis.call('ZADD', KEYS[2], us, id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    moved = moved + 1
  end
end
return moved
