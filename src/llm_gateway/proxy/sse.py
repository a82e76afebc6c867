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

_EVENT_END = re.compile(rb"\r?\n\r?\n")


class UsageTap:
    def __init__(self, drop_usage_chunk: bool) -> None:
        self._drop = drop_usage_chunk
        self._tail = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        """Take upstream bytes; return the bytes to send to the client now."""
        buffer = self._tail + data if self._tail else data
        if b'"usage"' not in buffer and not self._drop:
            # Nothing to read or remove: pass through, keeping the incomplete tail for framing.
            cut = _last_boundary(buffer)
            self._tail = buffer[cut:]
            return buffer[:cut]
        out: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(buffer):
            event = buffer[start : match.end()]
            start = match.end()
            if b'"usage"' in event and self._inspect(event):
                continue
            out.append(event)
        self._tail = buffer[start:]
        return b"".join(out)

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
