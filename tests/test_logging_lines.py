"""Log lines: the access log's direct path writes exactly what the logging path would."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from llm_gateway import access_log
from llm_gateway.logging_setup import (
    RequestContextFilter,
    direct_handler,
    log_handler,
    request_context,
)

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture(params=["text", "json"])
def lines(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, logging.Handler, io.StringIO]]:
    stream = io.StringIO()
    handler = log_handler(request.param, stream)
    logger = logging.getLogger("llm-gateway-test.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    monkeypatch.setattr(access_log, "log", logger)
    yield request.param, handler, stream
    logger.removeHandler(handler)
    handler.close()


def _without_time(fmt: str, line: str) -> object:
    if fmt == "text":
        return TIME.sub("", line)
    entry = json.loads(line)
    entry.pop("time")
    return entry


def test_the_direct_line_is_the_formatted_line(
    lines: tuple[str, logging.Handler, io.StringIO],
) -> None:
    fmt, handler, stream = lines
    assert direct_handler(access_log.log) is handler
    token = request_context.set(("req-1", "key-1"))
    try:
        access_log.write("POST", "/v1/chat/completions", 200, 1.5, "req-1", "my app", "gpt-4o")
        handler.addFilter(RequestContextFilter())  # a second filter: the logging path now
        assert direct_handler(access_log.log) is None
        access_log.write("POST", "/v1/chat/completions", 200, 1.5, "req-1", "my app", "gpt-4o")
    finally:
        request_context.reset(token)
    handler.flush()
    direct, logged = stream.getvalue().splitlines()
    assert _without_time(fmt, direct) == _without_time(fmt, logged)
    assert "req-1" in direct
    assert "my app" in direct


def test_a_second_handler_on_the_way_takes_the_logging_path(
    lines: tuple[str, logging.Handler, io.StringIO],
) -> None:
    _, handler, stream = lines
    other = logging.StreamHandler(io.StringIO())
    access_log.log.addHandler(other)
    try:
        assert direct_handler(access_log.log) is None
        access_log.write("GET", "/health", 200, 0.1, None, None, None)
    finally:
        access_log.log.removeHandler(other)
    handler.flush()
    assert "/health" in stream.getvalue()
    assert "/health" in other.stream.getvalue()
