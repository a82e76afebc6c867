"""One-connection latency with a monotonic clock: request after request on one keep-alive socket.

wrk times requests with the wall clock, and on this virtual machine its one-connection figures
were not self-consistent (the recorded latencies summed to more than the run lasted), so the
harness measures p50/p99 at one connection here instead. Reads JSON answers by Content-Length
and streams to their last chunk (chunked encoding) or Content-Length.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int


def _read_response(conn: socket.socket) -> int:
    """Read one whole response; returns its status code."""
    data = b""
    while (head_end := data.find(b"\r\n\r\n")) < 0:
        data += _recv(conn)
    head = data[:head_end].lower()
    status = int(head.split(b" ", 2)[1])
    body = data[head_end + 4 :]
    if b"content-length:" in head:
        length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += _recv(conn)
    else:  # chunked: the last chunk is empty
        while not body.endswith(b"0\r\n\r\n"):
            body += _recv(conn)
    return status


def _recv(conn: socket.socket) -> bytes:
    chunk = conn.recv(65536)
    if not chunk:
        raise ConnectionError("server closed the connection")
    return chunk


def measure_latency(url: str, body: str, key: str, seconds: float) -> Latency:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    payload = body.encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        + (f"Authorization: Bearer {key}\r\n" if key else "")
        + "\r\n"
    ).encode()
    request = head + payload
    samples: list[float] = []
    errors = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.sendall(request)
            status = _read_response(conn)
            samples.append((time.perf_counter() - started) * 1000)
            errors += status != 200
    samples.sort()
    return Latency(
        p50_ms=samples[len(samples) // 2],
        p99_ms=samples[int(len(samples) * 0.99)],
        max_ms=samples[-1],
        requests=len(samples),
        errors=errors,
    )
