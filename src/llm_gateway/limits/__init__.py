"""Key policies: which models a key may call, until when, how fast, and how much per period.

policy.py   a key's policy as the hot path reads it (allowed models, expiry, limits)
periods.py  UTC calendar budget periods (pure)
window.py   the rolling-minute arithmetic shared by both rate limiters (pure)
local.py    rate limits kept in this process (embedded default, or a share while Redis is down)
shared.py   rate limits kept in Redis, one script per request, with the local share as fallback
"""
