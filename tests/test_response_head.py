"""The gateway's HTTP protocol writes response heads itself (server.QuickHeadCycle): byte for
byte what uvicorn's own protocol writes, for every framing case, on two real servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llm_gateway import server
from tests.servers import free_port, wait_until

Receive = Any
Send = Any


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answers shaped by the path: each one a framing case of HTTP/1.1."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    headers = [(b"Content-Type", b"application/json"), (b"X-Custom-Name", b"a\tb")]
    if path == "/length":
        headers.append((b"Content-Length", b"7"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"a":1}'})
    elif path == "/chunked":
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
    elif path == "/explicit-chunked":
        headers.append((b"Transfer-Encoding", b"Chunked"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"abc"})
    elif path == "/close":
        headers += [(b"Content-Length", b"2"), (b"Connection", b"keep-alive, Close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/bad-value":
        headers.append((b"x-bad", b"line\nbreak"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
    elif path == "/bad-name":
        headers.append((b"x bad", b"v"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})


class Server:
    def __init__(self, protocol: type[HttpToolsProtocol]) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            http=protocol,
            loop="uvloop",
            lifespan="off",
            log_config=None,
            log_level="critical",
            access_log=False,
            date_header=False,  # the heads are compared byte for byte
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        wait_until(lambda: self.server.started)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def exchange(self, request: bytes) -> bytes:
        """Send raw requests, then one that asks to close; read until the server closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(request + b"GET /length HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
            return received


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    with Server(HttpToolsProtocol) as stock, Server(server.BoundedHttpToolsProtocol) as ours:
        yield stock, ours


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /length HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /explicit-chunked HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /empty HTTP/1.1\r\nHost: t\r\n\r\n",
        b"HEAD /length HTTP/1.1\r\nHost: t\r\n\r\n",
        b"HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /length HTTP/1.0\r\n\r\n",  # no keep-alive: the server adds `connection: close`
        b"GET /length HTTP/1.1\r\nHost: t\r\n\r\nGET /chunked HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /bad-value HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /bad-name HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
)
def test_response_heads_are_uvicorns_byte_for_byte(
    servers: tuple[Server, Server], request_head: bytes
) -> None:
    stock, ours = servers
    expected = stock.exchange(request_head)
    assert ours.exchange(request_head) == expected
    if b"/bad-" not in request_head:  # a broken head: the server drops the connection
        assert expected.startswith(b"HTTP/1.1 ")  # real answers, not two empty ones


def test_the_quick_head_is_the_one_that_wrote(servers: tuple[Server, Server]) -> None:
    _, ours = servers
    answer = ours.exchange(b"GET /length HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b"\r\nx-custom-name: a\tb\r\n" in answer
    assert server._NAMES[b"X-Custom-Name"] == b"x-custom-name"
