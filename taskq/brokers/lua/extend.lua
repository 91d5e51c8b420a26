-- extend: renew the leases of running jobs whose token is current and whose lease has not ended.
-- KEYS[1] running   KEYS[2] tokens   KEYS[3] cancels
-- ARGV[1] lease ms, then per lease: id, token
-- Returns: one digit per lease, as one string: 0 (refused: stale token or lease already ended),
-- 1 (renewed) or 2 (renewed, and a cancel of the job was requested).
local now = now_ms()
local lease_end = now + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local until_ms = redis.call('ZSCORE', KEYS[1], id)
  if until_ms and tonumber(until_ms) >= now and owns(KEYS[2], id, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', lease_end, id)
    out[#out + 1] = redis.call('HEXISTS', KEYS[3], id) + 1
  else
    out[#out + 1] = 0
  end
end
return table.concat(out)  -- one string to read, not one reply per job
