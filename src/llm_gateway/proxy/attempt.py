"""One upstream attempt: send the request and read up to the point where the answer commits.

A non-stream answer commits once it has been read whole; a stream once its first event has
arrived (within the first-byte timeout). Until then every failure is a `Failed` the caller may
fail over from, since nothing has reached the client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from llm_gateway.errors import GatewayError, UpstreamTimeout
from llm_gateway.routing.plan import Failure
from llm_gateway.routing.rules import fails_over, retry_after_seconds
from llm_gateway.upstream.client import classify


@dataclass(slots=True)
class Answered:
    """A whole answer: a non-stream one, or a plain (usually error) answer to a stream."""

    response: aiohttp.ClientResponse  # released; its status and headers stay readable
    body: bytes


@dataclass(slots=True)
class Streaming:
    """A stream whose first event has arrived: `head` holds the bytes read so far."""

    response: aiohttp.ClientResponse  # open; the caller relays the rest and closes it
    head: bytes


@dataclass(slots=True)
class Failed:
    failure: Failure
    answer: Answered | None = None  # the upstream's answer, relayed if no attempt follows
    error: GatewayError | None = None  # for transport failures: what the client gets


async def attempt(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    stream: bool,
    first_byte_timeout: float,
) -> Answered | Streaming | Failed:
    response: aiohttp.ClientResponse | None = None
    try:
        if stream:
            async with asyncio.timeout(first_byte_timeout):
                response = await session.post(url, data=body, headers=headers)
                if response.status == 200 and _is_event_stream(response):
                    head = await _first_event(response)
                    streaming, response = Streaming(response, head), None
                    return streaming
                data = await response.read()
        else:  # the client's own timeouts bound a whole answer
            response = await session.post(url, data=body, headers=headers)
            data = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        if response is not None:
            response.close()
        error: GatewayError = classify(exc)
        if stream and error.code == "upstream_timeout":  # connected, but no event in time
            error = UpstreamTimeout(
                f"upstream sent no event within {first_byte_timeout:g} s",
                code="first_byte_timeout",
            )
        return Failed(Failure(error.code or "upstream_error"), error=error)
    except BaseException:
        if response is not None:
            response.close()
        raise
    response.release()
    answered = Answered(response, data)
    status = response.status
    if fails_over(status):
        retry_after = retry_after_seconds(response.headers, time.time())
        return Failed(Failure(str(status), status, retry_after), answer=answered)
    return answered


def _is_event_stream(response: aiohttp.ClientResponse) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


async def _first_event(response: aiohttp.ClientResponse) -> bytes:
    """Read until a complete event with data has arrived (comments alone do not count)."""
    buffer = b""
    while True:
        chunk = await response.content.readany()
        if not chunk:
            raise aiohttp.ServerDisconnectedError("stream ended before its first event")
        buffer += chunk
        # A `data:` line, and an event boundary after it (a boundary cannot start inside it).
        data = buffer.find(b"data:")
        if data >= 0 and (buffer.find(b"\n\n", data) >= 0 or buffer.find(b"\r\n\r\n", data) >= 0):
            return buffer
