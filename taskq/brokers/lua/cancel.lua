-- cancel: remove a waiting job and everything kept for it.
-- KEYS[1] waiting   KEYS[2] jobs   KEYS[3] attempts   KEYS[4] crashes   KEYS[5] failures
-- ARGV[1] id
-- Returns: 1 if the job was waiting and is gone, else 0.
local id = ARGV[1]
if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
return 1
