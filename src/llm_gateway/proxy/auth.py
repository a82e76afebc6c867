"""User-key authentication for the proxy: a SHA-256 lookup in the in-process key cache.

Unknown, revoked, rotated-out and malformed keys all take the same path (one hash, one dict
lookup) and get the same answer, so neither the response nor its timing tells them apart.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from llm_gateway.errors import AuthenticationError, ThrottledError
from llm_gateway.state.cache import Cache, KeyEntry

INVALID_KEY = AuthenticationError(
    "Incorrect API key provided. Use a key issued by this gateway as a Bearer token."
)
MISSING_KEY = AuthenticationError(
    "No API key provided: send a key issued by this gateway in the Authorization header "
    "(Authorization: Bearer sk-...)."
)


def refusal(authorization: bytes | None, throttled: bool) -> AuthenticationError | ThrottledError:
    """What a request whose key was not found is told: a missing header is named as such."""
    if throttled:
        return TOO_MANY_FAILURES
    return MISSING_KEY if authorization is None else INVALID_KEY


TOO_MANY_FAILURES = ThrottledError(
    "Too many failed authentications from this address; try again later.",
    code="too_many_failed_authentications",
)


def expired() -> AuthenticationError:
    """The refusal of a key past its `expires_at` (a new error each time: it is raised)."""
    return AuthenticationError("This API key has expired.", code="key_expired")


def authenticate(cache: Cache, authorization: bytes | None) -> KeyEntry | None:
    token = b""
    if authorization is not None and authorization[:7].lower() == b"bearer ":
        token = authorization[7:].strip()
    return cache.lookup_key(hashlib.sha256(token).hexdigest())


def authorization_header(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            return value
    return None


class FailedAuthThrottle:
    """Counts failed authentications per client address in fixed windows.

    An address past `limit` failures in `window` seconds gets 429 for its further failures until
    the window ends; valid keys from it keep working. Only the failure path touches this.
    """

    def __init__(self, limit: int, window: float = 60.0, max_tracked: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._max_tracked = max_tracked
        self._seen: dict[str, tuple[float, int]] = {}

    def failed(self, address: str) -> bool:
        """Record a failure; True when the address is now over its limit."""
        if self.limit <= 0:
            return False
        now = time.monotonic()
        started, count = self._seen.get(address, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        self._seen[address] = (started, count + 1)
        if len(self._seen) > self._max_tracked:
            self._forget_expired(now)
        return count + 1 > self.limit

    def _forget_expired(self, now: float) -> None:
        expired = [a for a, (started, _) in self._seen.items() if now - started >= self.window]
        for address in expired:
            del self._seen[address]
        if len(self._seen) > self._max_tracked:  # still full: start over rather than grow
            self._seen.clear()


def client_address(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
