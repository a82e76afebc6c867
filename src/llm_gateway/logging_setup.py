"""Log lines: plain text by default, one JSON object per line with `GATEWAY_LOG_FORMAT=json`.

A record may carry structured fields in `extra={"access": {...}}` (the access log does); the
JSON form makes them keys of the line's object, the text form shows the message only.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

import orjson

# The request a log line is about, bound once by the proxy handler for the whole request.
request_context: ContextVar[tuple[str, str] | None] = ContextVar("request_context", default=None)


class RequestContextFilter(logging.Filter):
    """Adds `gateway_request_id` and `key_id` of the current request to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = request_context.get()
        record.gateway_request_id, record.key_id = context if context else (None, None)
        record.request_tag = f" [{context[0]}]" if context else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("gateway_request_id", "key_id"):
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        fields = getattr(record, "access", None)
        if fields is not None:
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class BatchedStreamHandler(logging.StreamHandler[IO[str]]):
    """Writes lines in batches: one write every `interval` seconds (or `max_lines` lines)
    instead of a write and a flush per line, which cost more than the line itself at an access
    line per request. Warnings and errors are written at once, with what waits before them; a
    background thread writes the rest, and `flush`/`close` (run at exit) write what is left."""

    def __init__(
        self, stream: IO[str], fmt: str = "text", interval: float = 0.1, max_lines: int = 256
    ) -> None:
        super().__init__(stream)
        self.fmt = fmt
        self._pending: list[str] = []
        self._max_lines = max_lines
        self._stop = threading.Event()
        self._writer = threading.Thread(
            target=self._write_every, args=(interval,), name="log-writer", daemon=True
        )
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)  # `handle` holds the lock around `emit`
        if record.levelno >= logging.WARNING or len(self._pending) >= self._max_lines:
            self._write()

    def add_info_line(self, logger_name: str, message: str, fields: dict[str, Any]) -> None:
        """An INFO line formatted here as the formatter would, without a `LogRecord`: the
        access log's path, taken once per request (see `direct_handler`)."""
        now = time.time()
        context = request_context.get()
        if self.fmt == "json":
            entry: dict[str, Any] = {
                "time": datetime.fromtimestamp(now, UTC).isoformat(),
                "level": "info",
                "logger": logger_name,
                "message": message,
            }
            if context is not None:
                entry["gateway_request_id"], entry["key_id"] = context
            entry.update(fields)
            line = orjson.dumps(entry).decode()
        else:
            tag = f" [{context[0]}]" if context else ""
            line = f"{_asctime(now)} INFO {logger_name}{tag}: {message}"
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            if len(self._pending) >= self._max_lines:
                self._write()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()

    def _write(self) -> None:
        if self._pending:
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # the stream went away (a closed pipe at exit)
                pass

    def _write_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()


_second: tuple[int, str] = (0, "")


def _asctime(now: float) -> str:
    """`logging.Formatter`'s default time, the seconds part formatted once per second."""
    global _second
    whole = int(now)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole)))
    return f"{_second[1]},{int((now - whole) * 1000):03d}"


def direct_handler(logger: logging.Logger) -> BatchedStreamHandler | None:
    """The one handler `logger`'s INFO records reach, when it is ours and nothing else (no
    other handler, no filter beyond the request context) stands on the way; else None."""
    found: BatchedStreamHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, BatchedStreamHandler):
                return None
            if handler.level > logging.INFO or len(handler.filters) != 1:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def log_handler(fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """The handler every log line goes through: text or JSON, with the request context."""
    handler = BatchedStreamHandler(stream if stream is not None else sys.stderr, fmt)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s")
        )
    handler.addFilter(RequestContextFilter())
    return handler


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = log_handler(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
