"""The access log: one line per request, text or JSON, never a secret, off when asked."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

import llm_gateway
from llm_gateway.logging_setup import log_handler
from llm_gateway.settings import Settings
from tests.conftest import Admin, GatewayFactory
from tests.servers import (
    ADMIN_KEY,
    SECRET_KEY,
    GatewayProcess,
    ThreadedGateway,
    Upstream,
    wait_until,
)

ACCESS_LOGGER = "llm_gateway.access"
# `<method> <path> <status> <ms>ms id=<request id> key=<key name> model=<model>`, `-` for none
LINE = re.compile(
    r"(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}|-) (?P<ms>\d+\.\d\d)ms "
    r"id=(?P<id>\S+) key=(?P<key>\S+) model=(?P<model>\S+)"
)


class Lines:
    """What the access logger writes, through the handler `llm-gateway serve` installs."""

    def __init__(self, fmt: str) -> None:
        self.stream = io.StringIO()
        self.handler = log_handler(fmt, self.stream)

    def all(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def wait_for(self, needle: str) -> str:
        """The line containing `needle` (the line is written just after the response)."""
        return str(wait_until(lambda: next((ln for ln in self.all() if needle in ln), None)))


@pytest.fixture
def text_lines() -> Iterator[Lines]:
    yield from _attached(Lines("text"))


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    yield from _attached(Lines("json"))


def _attached(lines: Lines) -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(lines.handler)
    try:
        yield lines
    finally:
        logger.removeHandler(lines.handler)


def _message(line: str) -> re.Match[str]:
    """The access part of a text line (after the time, level, logger and request tag)."""
    assert f" INFO {ACCESS_LOGGER}" in line, line
    match = LINE.search(line.split(": ", 1)[1])
    assert match is not None, line
    return match


def _proxy_setup(admin: Admin, upstream: Upstream) -> dict[str, Any]:
    provider = admin.provider(upstream.base_url())
    admin.model(provider["id"], "gpt-4o")
    return admin.key()


def _chat(gateway: ThreadedGateway, key: str) -> Any:
    client = OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0)
    try:
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        client.close()


def test_admin_request_gets_one_line_without_query_or_admin_key(
    gateway: ThreadedGateway, text_lines: Lines
) -> None:
    response = httpx.get(
        gateway.url + "/admin/keys",
        params={"token": "query-secret-value"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert response.status_code == 200
    line = text_lines.wait_for("GET /admin/keys ")
    match = _message(line)
    assert match["status"] == "200" and match["path"] == "/admin/keys"
    assert float(match["ms"]) > 0
    assert (match["id"], match["key"], match["model"]) == ("-", "-", "-")
    assert "query-secret-value" not in text_lines.stream.getvalue()
    assert ADMIN_KEY not in text_lines.stream.getvalue()
    assert len([ln for ln in text_lines.all() if "GET /admin/keys " in ln]) == 1


def test_proxy_request_line_has_status_time_and_request_id(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream, text_lines: Lines
) -> None:
    key = _proxy_setup(admin, upstream)
    raw = _chat(gateway, key["key"])
    gateway_id = raw.headers["x-gateway-request-id"]
    match = _message(text_lines.wait_for(f"id={gateway_id}"))
    assert (match["method"], match["path"], match["status"]) == (
        "POST",
        "/v1/chat/completions",
        "200",
    )
    assert float(match["ms"]) > 0
    refused = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"Authorization": "Bearer sk-not-a-key-0000"},
    )
    refused_line = text_lines.wait_for(f"id={refused.headers['x-gateway-request-id']}")
    assert _message(refused_line)["status"] == "401"
    logged = text_lines.stream.getvalue()
    for secret in (key["key"], "sk-not-a-key-0000", "Bearer", "sk-upstream-secret"):
        assert secret not in logged


def test_proxy_request_line_names_the_key_and_the_model(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream, text_lines: Lines
) -> None:
    key = _proxy_setup(admin, upstream)
    raw = _chat(gateway, key["key"])
    match = _message(text_lines.wait_for(f"id={raw.headers['x-gateway-request-id']}"))
    assert match["key"] == key["name"]
    assert match["model"] == "gpt-4o"


def test_unknown_paths_and_odd_characters_stay_on_one_line(
    gateway: ThreadedGateway, text_lines: Lines
) -> None:
    assert httpx.get(gateway.url + "/v1/foo").status_code == 404
    assert _message(text_lines.wait_for("GET /v1/foo "))["status"] == "404"
    # A decoded path with a line break or a space is written as a JSON string: no forged lines.
    httpx.get(gateway.url + "/v1/a%0AGET%20/forged%20200")
    line = text_lines.wait_for('"/v1/a\\nGET /forged 200"')
    assert line.endswith("id=- key=- model=-")
    assert not any(ln.startswith("GET /forged") for ln in text_lines.all())


def test_json_format_puts_the_fields_in_one_object_per_line(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream, json_lines: Lines
) -> None:
    key = _proxy_setup(admin, upstream)
    raw = _chat(gateway, key["key"])
    gateway_id = raw.headers["x-gateway-request-id"]
    entry = json.loads(json_lines.wait_for(gateway_id))
    assert entry["logger"] == ACCESS_LOGGER and entry["level"] == "info"
    assert entry["method"] == "POST" and entry["path"] == "/v1/chat/completions"
    assert entry["status"] == 200 and entry["request_id"] == gateway_id
    assert isinstance(entry["ms"], float) and entry["ms"] > 0
    assert {"key", "model", "time", "message"} <= set(entry)
    httpx.get(gateway.url + "/health")
    health = json.loads(json_lines.wait_for('"path":"/health"'))
    assert health["status"] == 200 and health["request_id"] is None
    assert all(line.startswith("{") for line in json_lines.all())


def test_access_log_can_be_turned_off(
    make_gateway: GatewayFactory, text_lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "false")
    assert Settings.load().gateway_access_log is False
    monkeypatch.delenv("GATEWAY_ACCESS_LOG")
    assert Settings.load().gateway_access_log is True
    gateway = make_gateway(gateway_access_log=False)
    quiet = httpx.get(gateway.url + "/health")
    assert quiet.status_code == 200
    noisy = make_gateway()
    httpx.get(noisy.url + "/ready")
    text_lines.wait_for("GET /ready ")  # the line of the other gateway arrives ...
    assert not any("GET /health " in line for line in text_lines.all())  # ... this one never


def test_serve_writes_json_access_lines_and_no_uvicorn_access_lines(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
        "ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_LOG_FORMAT": "json",
        # The code this test imported, also when PYTHONPATH is relative to the checkout.
        "PYTHONPATH": str(Path(llm_gateway.__file__).resolve().parents[1]),
    }
    gateway = GatewayProcess(env, tmp_path).start()
    try:
        httpx.get(gateway.url + "/health?probe=1")
    finally:
        assert gateway.stop() == 0
    entries = [json.loads(ln) for ln in gateway.log().splitlines() if ln.startswith("{")]
    access = [e for e in entries if e["logger"] == ACCESS_LOGGER and e["path"] == "/health"]
    assert len(access) == 1 and access[0]["status"] == 200
    assert "probe=1" not in gateway.log()
    assert not any(e["logger"].startswith("uvicorn.access") for e in entries)
    assert "HTTP/1.1" not in gateway.log()
