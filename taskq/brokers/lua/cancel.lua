-- cancel: remove a waiting job (keeping a finished record), or ask a running job to stop.
-- KEYS[1] waiting   KEYS[2] jobs   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] failures
-- KEYS[6] running   KEYS[7] cancels   KEYS[8] finished   KEYS[9] endings   KEYS[10] dead
-- KEYS[11] due (list)   KEYS[12] due_at (list)
-- ARGV[1] id   ARGV[2] done channel   ARGV[3] most finished records kept   ARGV[4] their ttl ms
-- Returns: 1 (was waiting, now cancelled), 2 (running: cancel requested), 0 (neither).
local id = ARGV[1]
if redis.call('ZREM', KEYS[1], id) == 0 then
  if redis.call('ZSCORE', KEYS[6], id) then
    redis.call('HSET', KEYS[7], id, 1)
    return 2
  end
  -- a body that is not running nor dead belongs to a job in the due list: LPOS finds it (a scan
  -- of the list, as long as the jobs due before it), and its due time at the same index goes too
  local at = redis.call('HEXISTS', KEYS[2], id) == 1 and not redis.call('ZSCORE', KEYS[10], id)
    and redis.call('LPOS', KEYS[11], id)
  if not at then return 0 end
  -- the removals scan from the nearer end (LREM -1: from the tail)
  local from = at > redis.call('LLEN', KEYS[11]) / 2 and -1 or 1
  redis.call('LSET', KEYS[12], at, '-')  -- due times are numbers: '-' marks the one to drop
  redis.call('LREM', KEYS[12], from, '-')
  redis.call('LREM', KEYS[11], from, id)
end
local now = now_ms()
local attempt = redis.call('HGET', KEYS[3], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
redis.call('HDEL', KEYS[7], id)
record_finished(KEYS[8], KEYS[9], now, id, 'cancelled', attempt, false, 0)
trim_finished(KEYS[8], KEYS[9], now, tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[2], cmsgpack.pack({id}))
return 1
