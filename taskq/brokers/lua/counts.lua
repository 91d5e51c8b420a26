-- counts: how many jobs of a queue are due, scheduled, running and dead, by the server's clock.
-- KEYS[1] waiting   KEYS[2] running   KEYS[3] dead   KEYS[4] due (list)
-- Returns: {due, scheduled, running, dead}
local due = redis.call('ZCOUNT', KEYS[1], '-inf', now_us())
return {redis.call('LLEN', KEYS[4]) + due, redis.call('ZCARD', KEYS[1]) - due,
  redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])}
