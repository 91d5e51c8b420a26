-- purge_dead: delete every dead job of a queue (bounded work per call; call until 0).
-- KEYS[1] dead   KEYS[2] jobs   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] failures
-- ARGV[1] most jobs to delete
-- Returns: how many jobs were deleted.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
end
return #ids
