-- due_time: the due time of a job in the due list, if it is among the list's first `scan` entries
-- (a longer scan would hold Redis up: ~16 ms for a job behind a million others).
-- KEYS[1] due (list)   KEYS[2] due_at (list)   KEYS[3] jobs   KEYS[4] waiting   KEYS[5] running
-- KEYS[6] dead
-- ARGV[1] id   ARGV[2] scan
-- Returns: its due time in µs; 0 when it is in the list, further on (a body in none of the sets);
-- nil when it is not in the list.
local id = ARGV[1]
local at = redis.call('LPOS', KEYS[1], id, 'MAXLEN', tonumber(ARGV[2]))
if at then return redis.call('LINDEX', KEYS[2], at) end
if redis.call('HEXISTS', KEYS[3], id) == 1 and not redis.call('ZSCORE', KEYS[4], id)
    and not redis.call('ZSCORE', KEYS[5], id) and not redis.call('ZSCORE', KEYS[6], id) then
  return 0
end
return nil
