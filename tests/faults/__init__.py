"""Fault-injection tests: real worker processes, signals, kills and Redis restarts."""
