"""Sending the committed answer to the client: a whole body, or a stream event by event."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from llm_gateway.errors import GatewayError
from llm_gateway.proxy.asgi import Headers, Send, send_bytes, send_error
from llm_gateway.proxy.attempt import Answered, Streaming
from llm_gateway.proxy.record import CallRecord
from llm_gateway.proxy.sse import UsageTap
from llm_gateway.upstream.client import classify

# Upstream headers clients rely on, copied back unchanged.
_RELAYED = (b"x-request-id", b"openai-processing-ms", b"retry-after", b"retry-after-ms")
_SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(slots=True)
class Reply:
    """How to answer the client: its ASGI `send` and the headers every answer carries."""

    send: Send
    request_id: bytes
    attempts: int = 0

    def headers(self) -> Headers:
        return [
            (b"x-gateway-request-id", self.request_id),
            (b"x-gateway-attempts", str(self.attempts).encode()),
        ]

    async def error(self, error: GatewayError) -> None:
        await send_error(self.send, error, self.headers())


async def relay_answer(answered: Answered, reply: Reply, call: CallRecord, keep: bool) -> None:
    """Return a whole upstream answer unchanged, reading its usage on the way."""
    response, data = answered.response, answered.body
    call.status_code = response.status
    call.response_id = response.headers.get("x-request-id")
    call.upstream_done()
    call.is_error = response.status >= 400
    if call.is_error:
        call.error_message = data[:500].decode("utf-8", "replace")
    else:
        call.read_usage_from_json(data)
    if keep:
        call.response_body = data
    await send_bytes(reply.send, response.status, data, _response_headers(response, reply))


async def relay_stream(
    streaming: Streaming, reply: Reply, call: CallRecord, drop_usage: bool, keep: bool
) -> None:
    """Relay a committed stream to its end; a failure from here on ends it with an error event."""
    response = streaming.response
    call.status_code = 200
    call.response_id = response.headers.get("x-request-id")
    send = reply.send
    headers = _SSE_HEADERS + _response_headers(response, reply)[1:]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    tap = UsageTap(drop_usage)
    try:
        out = tap.feed(streaming.head)
        if out:
            call.chunk_sent(out, keep)
            await send({"type": "http.response.body", "body": out, "more_body": True})
        async for chunk in response.content.iter_any():
            out = tap.feed(chunk)
            if out:
                call.chunk_sent(out, keep)
                await send({"type": "http.response.body", "body": out, "more_body": True})
        tail = tap.finish()
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = classify(exc)
        call.is_error = True
        call.error_message = f"stream interrupted: {error.message}"
        call.upstream_error_kind = error.code
        tail = b"data: " + error.body() + b"\n\n"
    finally:
        response.close()
        call.upstream_done()
        call.stream_usage(tap.usage)
    await send({"type": "http.response.body", "body": tail, "more_body": False})


def _response_headers(response: aiohttp.ClientResponse, reply: Reply) -> Headers:
    content_type = response.headers.get("content-type", "application/json").encode("latin-1")
    headers: Headers = [(b"content-type", content_type), *reply.headers()]
    for name, value in response.raw_headers:
        lower = name.lower()
        if lower in _RELAYED or lower.startswith(b"x-ratelimit-"):
            headers.append((lower, value))
    return headers
