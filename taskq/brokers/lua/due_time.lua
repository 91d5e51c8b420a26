-- due_time: the due time of a job in the due list (a scan of the list, up to the job).
-- KEYS[1] due (list)   KEYS[2] due_at (list)
-- ARGV[1] id
-- Returns: its due time in µs, or nil: not in the list.
local at = redis.call('LPOS', KEYS[1], ARGV[1])
if not at then return nil end
return redis.call('LINDEX', KEYS[2], at)
