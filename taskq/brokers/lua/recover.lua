-- recover: make every job whose lease ended due again (bounded work per call).
-- KEYS[1] due (list)   KEYS[2] running   KEYS[3] crashes   KEYS[4] tokens   KEYS[5] owners
-- KEYS[6] due_at (list)   KEYS[7] waiting
-- ARGV[1] most leases to recover
-- Returns: how many jobs were recovered.
return recover(
  KEYS[7], KEYS[2], KEYS[1], KEYS[6], KEYS[3], KEYS[4], KEYS[5], now_ms(), tonumber(ARGV[1])
)
