-- Shared helpers, prepended to every taskq script when it is loaded.

-- Milliseconds since the epoch by the Redis server's clock: the only clock that decides.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The due time of a job delayed `delay` ms from `now` (the server clock rounded down): a delay
-- counts from the next whole ms, so a job is never due early; no delay is due at once.
local function due_after(now, delay)
  if delay > 0 then return now + 1 + delay end
  return now
end

-- Move up to `limit` running jobs whose lease ended before `now` back to waiting, due now.
-- Each recovery counts a crash and drops the token, so the old owner's writes are refused.
local function recover(running, waiting, crashes, tokens, owners, now, limit)
  local expired = redis.call('ZRANGEBYSCORE', running, '-inf', '(' .. now, 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do
    redis.call('ZREM', running, id)
    redis.call('ZADD', waiting, now, id)
    redis.call('HINCRBY', crashes, id, 1)
    redis.call('HDEL', tokens, id)
    redis.call('HDEL', owners, id)
  end
  return #expired
end

-- True when `token` is the current fencing token of running job `id`.
local function owns(tokens, id, token)
  return redis.call('HGET', tokens, id) == token
end
