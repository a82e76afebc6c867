"""Server-sent events, read on the way through: usage is picked out, everything else passes.

Bytes are framed into events (separated by a blank line) so that an event can be dropped whole:
when the gateway asked the upstream for usage on the client's behalf, the usage-only chunk
(`choices: []`) is removed so the client sees what the upstream would have sent it. Complete
events are released as soon as they arrive; only an incomplete tail waits for its next bytes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_EVENT = re.compile(rb".*?\r?\n\r?\n", re.DOTALL)


class UsageTap:
    def __init__(self, drop_usage_chunk: bool) -> None:
        self._drop = drop_usage_chunk
        self._tail = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        """Take upstream bytes; return the bytes to send to the client now."""
        buffer = self._tail + data if self._tail else data
        cut = _last_boundary(buffer)
        self._tail = buffer[cut:]
        complete = buffer[:cut]
        if b'"usage"' not in complete:
            return complete  # nothing to read or remove: pass the bytes through as they are
        return self._read_usage(complete)

    def _read_usage(self, complete: bytes) -> bytes:
        if b"\r" in complete:
            pieces = [m.group(0) for m in _EVENT.finditer(complete)]
        else:
            pieces = [event + b"\n\n" for event in complete.split(b"\n\n")[:-1]]
        kept: list[bytes] = []
        dropped = False
        for event in pieces:
            # `"usage":null` rides on every chunk once usage is requested; skip those cheaply.
            if b'"usage"' in event and b'"usage":null' not in event and self._inspect(event):
                dropped = True
                continue
            kept.append(event)
        return b"".join(kept) if dropped else complete

    def finish(self) -> bytes:
        """Whatever the upstream sent after its last complete event."""
        tail, self._tail = self._tail, b""
        return tail

    def _inspect(self, event: bytes) -> bool:
        """Record usage found in `event`; return True when the event must be dropped."""
        payload = _data_json(event)
        if not isinstance(payload, dict):
            return False
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            return self._drop and payload.get("choices") == []
        return False


def _last_boundary(buffer: bytes) -> int:
    lf = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _data_json(event: bytes) -> Any:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        return orjson.loads(b"\n".join(lines))
    except orjson.JSONDecodeError:
        return None
