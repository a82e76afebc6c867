"""Which deployment serves a request: the pick, cooldowns and retry rules (pure, no I/O)."""
