"""Log lines: plain text by default, one JSON object per line with `GATEWAY_LOG_FORMAT=json`.

A record may carry structured fields in `extra={"access": {...}}` (the access log does); the
JSON form makes them keys of the line's object, the text form shows the message only.
"""

from __future__ import annotations

import logging
import sys
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


def log_handler(fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """The handler every log line goes through: text or JSON, with the request context."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
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
