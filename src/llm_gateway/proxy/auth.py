"""User-key authentication for the proxy: a SHA-256 lookup in the in-process key cache.

Unknown, revoked, rotated-out and malformed keys all take the same path (one hash, one dict
lookup) and get the same answer, so neither the response nor its timing tells them apart.
"""

from __future__ import annotations

import hashlib

from llm_gateway.errors import AuthenticationError
from llm_gateway.state.cache import Cache, KeyEntry

INVALID_KEY = AuthenticationError(
    "Incorrect API key provided. Use a key issued by this gateway as a Bearer token."
)


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
