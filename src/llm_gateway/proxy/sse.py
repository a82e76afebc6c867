"""Server-sent events, read on the way through: usage is picked out, everything else passes.

Bytes are framed into events (separated by a blank line) so that an event can be dropped whole:
when the gateway asked the upstream for usage on the client's behalf, the usage-only chunk
(`choices: []`) is removed so the client sees what the upstream would have sent it. Complete
events are released as soon as they arrive; only an incomplete tail waits for its next bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from llm_gateway.errors import GatewayError

_EVENT = re.compile(rb".*?\r?\n\r?\n", re.DOTALL)


class _Framing:
    """Holds back an incomplete last event until its next bytes arrive."""

    def __init__(self) -> None:
        self._tail = b""

    def _complete(self, data: bytes) -> bytes:
        """The complete events among what was held back and `data`."""
        buffer = self._tail + data if self._tail else data
        cut = _last_boundary(buffer)
        self._tail = buffer[cut:]
        return buffer[:cut]

    def finish(self) -> bytes:
        """Whatever the upstream sent after its last complete event."""
        tail, self._tail = self._tail, b""
        return tail


class UsageTap(_Framing):
    def __init__(self, drop_usage_chunk: bool) -> None:
        super().__init__()
        self._drop = drop_usage_chunk
        self.usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        """Take upstream bytes; return the bytes to send to the client now."""
        complete = self._complete(data)
        found = complete.find(b'"usage"')  # the one full scan of the bytes
        if found < 0:
            return complete  # nothing to read or remove: pass the bytes through as they are
        return self._read_usage(complete, found)

    def _read_usage(self, complete: bytes, found: int) -> bytes:
        """Read (and drop, if asked) the usage events of `complete`; `found` is where
        `"usage"` first appears in it."""
        if b"\r" not in complete:
            return self._read_usage_lf(complete, found)
        pieces = _events(complete)
        kept: list[bytes] = []
        dropped = False
        for event in pieces:
            # `"usage":null` rides on every chunk once usage is requested; skip those cheaply.
            if b'"usage"' in event and b'"usage":null' not in event and self._inspect(event):
                dropped = True
                continue
            kept.append(event)
        return b"".join(kept) if dropped else complete

    def _read_usage_lf(self, complete: bytes, found: int) -> bytes:
        """`_read_usage` for events ended by blank lines of bare LFs (the usual case): only the
        events that mention usage are cut out and read; the rest stays one piece of bytes."""
        kept: list[bytes] = []
        start = 0  # of what is not yet in `kept`
        while found >= 0:
            boundary = complete.rfind(b"\n\n", 0, found)
            begin = boundary + 2 if boundary >= 0 else 0
            end = complete.find(b"\n\n", found) + 2  # `complete` ends with a blank line
            event = complete[begin:end]
            if b'"usage":null' not in event and self._inspect(event):
                kept.append(complete[start:begin])
                start = end
            found = complete.find(b'"usage"', end)
        if not kept:
            return complete
        kept.append(complete[start:])
        return b"".join(kept)

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
    if buffer.endswith(b"\n\n"):  # the usual piece: whole events with bare-LF lines
        return len(buffer)
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


class ChatTap(UsageTap):
    """A chat or legacy-completions stream passed through; a break ends it with an error chunk."""

    def fail(self, error: GatewayError) -> bytes:
        return self.finish() + b"data: " + error.body() + b"\n\n"


class EventUsageTap(_Framing):
    """A Responses or Anthropic stream passed through unchanged; usage read from the events
    that carry it (`read` maps an event's JSON to accounting usage, or None)."""

    def __init__(self, read: Callable[[Any], dict[str, Any] | None], fail: FailRenderer) -> None:
        super().__init__()
        self._read = read
        self._fail = fail
        self.usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        complete = self._complete(data)
        if b'"usage"' in complete:
            for event in _events(complete):
                if b'"usage"' in event:
                    found = self._read(_data_json(event))
                    if found is not None:
                        self.usage = _merged(self.usage, found)
        return complete

    def fail(self, error: GatewayError) -> bytes:
        return self.finish() + self._fail(error)


class EventReader(_Framing):
    """Complete SSE events out of arbitrary chunks, as (event type, parsed data)."""

    def feed(self, data: bytes) -> list[tuple[str | None, Any]]:
        found: list[tuple[str | None, Any]] = []
        for event in _events(self._complete(data)):
            kind = None
            for line in event.splitlines():
                if line.startswith(b"event:"):
                    kind = line[6:].strip().decode("utf-8", "replace")
            payload = _data_json(event)
            if payload is not None:
                found.append((kind, payload))
        return found


class TranslatedStream:
    """A bridged stream: upstream events parsed, handed to a translator, its bytes sent on.

    `translator` has `feed(...)`, `finish()` and `fail(message)` returning lists of bytes and a
    `usage` attribute; `typed` says whether `feed` takes (event type, data) or data alone;
    `read_usage` turns the translator's usage into the accounting shape.
    """

    def __init__(
        self, translator: Any, typed: bool, read_usage: Callable[[Any], dict[str, Any] | None]
    ) -> None:
        self._translator = translator
        self._typed = typed
        self._read_usage = read_usage
        self._reader = EventReader()

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._read_usage(self._translator.usage)

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for kind, payload in self._reader.feed(data):
            if not isinstance(payload, dict):
                continue
            if self._typed:
                out += self._translator.feed(kind or str(payload.get("type", "")), payload)
            else:
                out += self._translator.feed(payload)
        return b"".join(out)

    def finish(self) -> bytes:
        return b"".join(self._translator.finish())

    def fail(self, error: GatewayError) -> bytes:
        return b"".join(self._translator.fail(error.message))


FailRenderer = Callable[[GatewayError], bytes]


def _events(complete: bytes) -> list[bytes]:
    if b"\r" in complete:
        return [m.group(0) for m in _EVENT.finditer(complete)]
    return [event + b"\n\n" for event in complete.split(b"\n\n")[:-1]]


def _merged(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Anthropic reports input usage at the start and output usage at the end: keep the most
    of each; Responses reports it once, at the end."""
    if old is None:
        return new
    prompt = max(old["prompt_tokens"], new["prompt_tokens"])
    completion = max(old["completion_tokens"], new["completion_tokens"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": max(old.get("cached_tokens", 0), new.get("cached_tokens", 0)),
    }
