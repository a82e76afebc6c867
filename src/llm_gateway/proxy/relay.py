"""Sending the committed answer to the client: a whole body, or a stream event by event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from llm_gateway.errors import GatewayError, UpstreamError
from llm_gateway.proxy.asgi import JSON_CONTENT_TYPE, Headers, Send, send_bytes
from llm_gateway.proxy.attempt import Answered, Streaming
from llm_gateway.proxy.endpoints.base import Exchange, ProxyRequest, StreamRelay
from llm_gateway.proxy.record import CallRecord
from llm_gateway.upstream.client import classify

log = logging.getLogger("llm_gateway.proxy")

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
    render: Callable[[GatewayError], bytes]  # the endpoint's error shape
    attempts: int = 0
    # A rate-limited key's own `x-ratelimit-*` (and, when refused, `retry-after`) headers;
    # they replace the upstream's.
    limits: Headers | None = None

    def headers(self) -> Headers:
        headers = [
            (b"x-gateway-request-id", self.request_id),
            (b"x-gateway-attempts", str(self.attempts).encode()),
        ]
        if self.limits is not None:
            headers += self.limits
        return headers

    async def error(self, error: GatewayError) -> None:
        headers = [JSON_CONTENT_TYPE, *self.headers()]
        await send_bytes(self.send, error.status, self.render(error), headers)


async def relay_answer(
    answered: Answered,
    reply: Reply,
    call: CallRecord,
    keep: bool,
    exchange: Exchange,
    request: ProxyRequest,
) -> None:
    """Return a whole upstream answer (translated by a bridge), reading its usage on the way."""
    response, data = answered.response, answered.body
    status = response.status
    if exchange.translate is not None:
        try:
            data = exchange.translate(status, data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("upstream answer could not be translated: %s", type(exc).__name__)
            error = UpstreamError(
                "the upstream's answer could not be translated", code="bad_upstream_answer"
            )
            call.fail(error)
            await reply.error(error)
            return
    call.status_code = status
    call.response_id = response.headers.get("x-request-id")
    call.upstream_done()
    call.is_error = status >= 400
    if call.is_error:
        call.error_message = data[:500].decode("utf-8", "replace")
    else:
        call.take_usage(request.usage(data))
    if keep:
        call.response_body = data
    headers = _response_headers(response, reply)
    if exchange.translate is not None:
        headers[0] = JSON_CONTENT_TYPE
    await send_bytes(reply.send, status, data, headers)


async def relay_stream(
    streaming: Streaming, reply: Reply, call: CallRecord, relay: StreamRelay, keep: bool
) -> None:
    """Relay a committed stream to its end; a failure from here on ends it with an error event."""
    response = streaming.response
    call.status_code = 200
    call.response_id = response.headers.get("x-request-id")
    send = reply.send
    headers = _SSE_HEADERS + _response_headers(response, reply)[1:]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    content = response.content
    last = b""  # the upstream's final piece, sent with the end of the body (one send less)
    try:
        out = relay.feed(streaming.head)
        if content.at_eof():
            last = out
        else:
            if out:
                call.chunk_sent(out, keep)
                await send({"type": "http.response.body", "body": out, "more_body": True})
            async for chunk in content.iter_any():
                out = relay.feed(chunk)
                if content.at_eof():  # everything has arrived: this piece is the last
                    last = out
                    break
                if out:
                    call.chunk_sent(out, keep)
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        if last:
            call.chunk_sent(last, keep)
        tail = last + relay.finish()
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = classify(exc)
        call.is_error = True
        call.error_message = f"stream interrupted: {error.message}"
        call.upstream_error_kind = error.code
        tail = relay.fail(error)
    finally:
        response.close()
        call.upstream_done()
        call.stream_usage(relay.usage)
    await send({"type": "http.response.body", "body": tail, "more_body": False})


def _response_headers(response: aiohttp.ClientResponse, reply: Reply) -> Headers:
    content_type = response.headers.get("content-type", "application/json").encode("latin-1")
    headers: Headers = [(b"content-type", content_type), *reply.headers()]
    upstream_limits = reply.limits is None  # a limited key's own headers replace them
    for name, value in response.raw_headers:
        lower = name.lower()
        if lower in _RELAYED or (upstream_limits and lower.startswith(b"x-ratelimit-")):
            headers.append((lower, value))
    return headers
