"""How uvicorn serves the gateway: its options, and an HTTP protocol with a bounded head.

httptools itself accepts a head of any size, so a client could make the server buffer headers
without end. This protocol counts the bytes of the URL and headers as the parser hands them
over and, past the limit, answers 431 with an OpenAI-shaped error and closes the connection.
The limit is uvicorn's `h11_max_incomplete_event_size` (the same bound on its h11 protocol),
so it reaches worker processes with the rest of uvicorn's configuration.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from llm_gateway.settings import Config

DEFAULT_MAX_HEAD_BYTES = 32 * 1024


def uvicorn_options(config: Config) -> dict[str, Any]:
    """The uvicorn settings shared by `llm-gateway serve` and the test servers."""
    return {
        "loop": "uvloop",
        "http": BoundedHttpToolsProtocol,
        "h11_max_incomplete_event_size": config.max_header_bytes,
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "log_config": None,
        "timeout_keep_alive": 75,
        "proxy_headers": False,  # no forwarding headers are read; skip that middleware
    }


class ListenError(Exception):
    """The listening socket could not be opened; the message is one line for the operator."""


def bind_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """Bind and listen before anything is announced, so a busy port fails first and cleanly.

    uvicorn serves on this socket (and its worker processes inherit it).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else None
        if reason is None and isinstance(exc, socket.gaierror):
            reason = "unknown host"
        reason = reason or (exc.strerror or str(exc)).lower()
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


class HeadTooLarge(Exception):
    pass


_NAMES: dict[bytes, bytes] = {}  # response header names already checked, lowercased
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))


class QuickHeadCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing the response head with less work per header.

    uvicorn checks every header name with a regular expression and lowercases it, per
    response; a limited key's answer carries a dozen headers, nearly all with the same names
    every time. Here a name is checked and lowercased once per process (then remembered), each
    value is still checked, and the framing headers are handled as uvicorn handles them. Any
    other case (an access log, a paused or closed connection) takes uvicorn's own path.
    """

    async def send(self, message: Any) -> None:
        if (
            message["type"] != "http.response.start"
            or self.response_started
            or self.disconnected
            or self.flow.write_paused
            or self.access_log
        ):
            await super().send(message)
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        status = message["status"]
        content = [STATUS_LINE[status]]
        close_sent = False
        bad_value = HEADER_VALUE_RE.search
        for headers in (self.default_headers, message.get("headers", ())):
            for name, value in headers:
                lowered = _NAMES.get(name)
                if lowered is None:
                    if HEADER_RE.search(name):
                        raise RuntimeError("Invalid HTTP header name.")
                    lowered = name.lower()
                    if len(_NAMES) < 1_000:
                        _NAMES[name] = lowered
                if bad_value(value):
                    raise RuntimeError("Invalid HTTP header value.")
                if lowered in _FRAMING:
                    close_sent |= self._framing(lowered, value)
                content += (lowered, b": ", value, b"\r\n")
        if not self.keep_alive and not close_sent:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        self.transport.write(b"".join(content))

    def _framing(self, name: bytes, value: bytes) -> bool:
        """What uvicorn does for a framing header; True for `connection: close`."""
        if name == b"content-length":
            if self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
        elif name == b"transfer-encoding":
            if value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
        elif b"close" in [token.lower().strip() for token in value.split(b",")]:
            self.keep_alive = False
            return True
        return False


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_head_bytes: int = self.config.h11_max_incomplete_event_size or (
            DEFAULT_MAX_HEAD_BYTES
        )
        self._head_bytes = 0
        self._head_too_large = False

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = QuickHeadCycle  # the same object, with the quicker response head
        super()._start_asgi_task(cycle, app)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._max_head_bytes:
            self._head_too_large = True
            raise HeadTooLarge  # the parser stops; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        body = orjson.dumps(
            {
                "error": {
                    "message": f"request line and headers exceed {self._max_head_bytes} bytes",
                    "type": "invalid_request_error",
                    "code": "headers_too_large",
                    "param": None,
                }
            }
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
