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
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_head_bytes: int = self.config.h11_max_incomplete_event_size or (
            DEFAULT_MAX_HEAD_BYTES
        )
        self._head_bytes = 0
        self._head_too_large = False

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
