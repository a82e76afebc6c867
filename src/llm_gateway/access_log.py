"""One access-log line per HTTP request, from a small raw-ASGI middleware around the whole app.

    GET /v1/chat/completions 200 0.84ms id=5f0c... key=my-app model=gpt-4o

Method, path (never the query string, never a header), status, milliseconds until the response
was sent in full (a stream: until its end), the gateway request id (the `X-Gateway-Request-ID`
response header, on proxy answers) and, when the handler filled them in, the key name and the
model; `-` where there is none. A value with spaces, quotes or control characters is written as
a JSON string, so one request is always one line. With `GATEWAY_LOG_FORMAT=json` the same fields
are keys of the line's JSON object. `GATEWAY_ACCESS_LOG=false` leaves the middleware out, and a
log level above `info` skips its work.

The proxy endpoints write their own line (`write`) when a call ends: they know every field, and
the hot path is spared a wrapper around each `send`. The middleware covers every other path
(no key or model there).
"""

from __future__ import annotations

import logging
import re
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_gateway.logging_setup import direct_handler

_REQUEST_ID_HEADER = b"x-gateway-request-id"
_FORMAT = "%s %s %s %.2fms id=%s key=%s model=%s"
_PLAIN = re.compile(r"[!#-~]+")  # printable ASCII without space and `"`: written as it is

log = logging.getLogger("llm_gateway.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        request_id: str | None = None

        async def watch(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == _REQUEST_ID_HEADER:
                        request_id = value.decode("latin-1")
                        break
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            status = status or 500  # what the server answers for an exception
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            write(scope["method"], scope["path"], status, ms, request_id, None, None)


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def write(
    method: str,
    path: str,
    status: int,
    ms: float,
    request_id: str | None,
    key: str | None,
    model: str | None,
) -> None:
    """One access line (the caller checked `enabled()`)."""
    fields = {
        "method": method,
        "path": path,
        "status": status or None,  # None: no response was sent (the client went away)
        "ms": round(ms, 2),
        "request_id": request_id,
        "key": key,
        "model": model,
    }
    args = (method, _text(path), status or "-", ms, _text(request_id), _text(key), _text(model))
    direct = direct_handler(log)
    if direct is not None:  # the usual case: the line goes straight to the batched handler
        direct.add_info_line(log.name, _FORMAT % args, fields)
        return
    # `log.info` would also walk the stack for the caller's file and line: skip that on every call.
    record = log.makeRecord(log.name, logging.INFO, __name__, 0, _FORMAT, args, None)
    record.access = fields
    log.handle(record)


def _text(value: str | None) -> str:
    if value is None:
        return "-"
    if _PLAIN.fullmatch(value):
        return value
    return orjson.dumps(value).decode()
