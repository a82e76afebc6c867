"""The proxy hot path: `/v1/chat/completions` and `/v1/models`."""
