"""Small helpers shared by the admin services."""

from __future__ import annotations

import uuid

from llm_gateway.errors import NotFound


def parse_id(value: str, what: str) -> uuid.UUID:
    """A path id that is not a UUID names nothing: 404, never 500."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"{what} {value!r} not found") from None
