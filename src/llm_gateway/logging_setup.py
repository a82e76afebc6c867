"""Log lines: plain text by default, one JSON object per line with `GATEWAY_LOG_FORMAT=json`."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

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
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("gateway_request_id", "key_id"):
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s")
        )
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
