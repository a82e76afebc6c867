"""The pooled upstream HTTP client and the mapping of transport failures onto gateway errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from llm_gateway.errors import UpstreamError, UpstreamTimeout


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 600.0


@dataclass(frozen=True)
class PoolLimits:
    max_connections: int = 0  # 0: unbounded; the event loop is the limit
    keepalive_seconds: float = 60.0


def create_session(timeouts: Timeouts, limits: PoolLimits | None = None) -> aiohttp.ClientSession:
    limits = limits or PoolLimits()
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections,
        ttl_dns_cache=300,
        keepalive_timeout=limits.keepalive_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
        ),
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )


def classify(exc: BaseException) -> UpstreamError:
    """Map a client exception onto 502/504 with a message that names no URL or secret."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout("upstream connect timed out", code="upstream_connect_timeout")
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return UpstreamTimeout("upstream did not answer in time", code="upstream_timeout")
    if isinstance(exc, aiohttp.ClientSSLError):
        return UpstreamError("TLS handshake with upstream failed", code="upstream_tls_error")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return UpstreamError("upstream host could not be resolved", code="upstream_dns_error")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError("upstream refused the connection", code="upstream_unreachable")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return UpstreamError("upstream closed the connection", code="upstream_disconnected")
    return UpstreamError("upstream request failed", code="upstream_error")
