"""Request logs, stats, retention and metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from llm_gateway.db.tables import request_logs
from llm_gateway.services.retention import delete_expired
from tests.conftest import Admin, GatewayFactory, assert_openai_error
from tests.servers import ThreadedGateway, Upstream, wait_until


def _flush(gateway: ThreadedGateway) -> None:
    runtime = gateway.runtime
    gateway.run(runtime.log_writer.write_pending())
    gateway.run(runtime.store.ledger.flush(runtime.store.engine))


def _setup(admin: Admin, upstream: Upstream) -> tuple[dict[str, Any], dict[str, Any]]:
    provider = admin.provider(upstream.base_url(), name="mock-provider")
    admin.model(provider["id"], "gpt-4o", input_token_coefficient=2, output_token_coefficient=3)
    return provider, admin.key()


def _post(gateway: ThreadedGateway, key: str, content: str = "hi", **body: Any) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_a_log_row_for_every_kind_of_outcome(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    provider, key = _setup(admin, upstream)
    ok = _post(gateway, key["key"])
    streamed = _post(gateway, key["key"], stream=True)
    upstream_error = _post(gateway, key["key"], "mode:status:500")
    gateway_error = _post(gateway, key["key"], model="missing-model")
    assert [r.status_code for r in (ok, streamed, upstream_error, gateway_error)] == [
        200,
        200,
        500,
        404,
    ]
    _post(gateway, "sk-unknown")  # not authenticated: no row
    _flush(gateway)
    page = admin.ok("GET", "/admin/logs", params={"per_page": 10})
    assert page["total"] == 4
    rows = {r["gateway_request_id"]: r for r in page["data"]}
    row = rows[ok.headers["x-gateway-request-id"]]
    assert row["request_id"] == ok.headers["x-request-id"]
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (10, 5, 15)
    assert row["weighted_total_tokens"] == 35
    assert row["provider_id"] == provider["id"] and row["provider_kind"] == "openai"
    assert row["is_stream"] is False and row["is_error"] is False
    assert row["latency_ms"] >= 0 and row["ttfb_ms"] is not None
    stream_row = rows[streamed.headers["x-gateway-request-id"]]
    assert stream_row["is_stream"] is True and stream_row["total_tokens"] == 15
    error_row = rows[upstream_error.headers["x-gateway-request-id"]]
    assert error_row["status_code"] == 500 and error_row["is_error"] is True
    assert "mock error 500" in error_row["error_message"]
    missing = rows[gateway_error.headers["x-gateway-request-id"]]
    assert missing["status_code"] == 404 and missing["model_requested"] == "missing-model"
    # Newest first.
    assert page["data"][0]["gateway_request_id"] == gateway_error.headers["x-gateway-request-id"]
    assert "request_body" not in page["data"][0]


def test_log_filters_and_pagination(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    _, key = _setup(admin, upstream)
    other = admin.key()
    for _ in range(5):
        _post(gateway, key["key"])
    _post(gateway, other["key"], "mode:status:429")
    _flush(gateway)
    page1 = admin.ok("GET", "/admin/logs", params={"per_page": 2, "page": 1})
    page3 = admin.ok("GET", "/admin/logs", params={"per_page": 2, "page": 3})
    assert page1["total"] == 6 and len(page1["data"]) == 2 and len(page3["data"]) == 2
    assert {r["id"] for r in page1["data"]}.isdisjoint({r["id"] for r in page3["data"]})
    by_key = admin.ok("GET", "/admin/logs", params={"key_id": other["id"]})
    assert by_key["total"] == 1 and by_key["data"][0]["status_code"] == 429
    assert admin.ok("GET", "/admin/logs", params={"is_error": "true"})["total"] == 1
    assert admin.ok("GET", "/admin/logs", params={"status_code": 200})["total"] == 5
    assert admin.ok("GET", "/admin/logs", params={"model": "gpt-4o"})["total"] == 6
    assert admin.ok("GET", "/admin/logs", params={"model": "nope"})["total"] == 0
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert admin.ok("GET", "/admin/logs", params={"since": future})["total"] == 0
    for bad in ({"per_page": 201}, {"per_page": 0}, {"page": 0}, {"key_id": "x"}):
        assert_openai_error(admin.request("GET", "/admin/logs", params=bad), 400)


def test_bodies_are_stored_only_when_enabled(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gateway = make_gateway(log_request_body=True, log_response_body=True)
    with Admin(gateway.url) as admin:
        _, key = _setup(admin, upstream)
        plain = _post(gateway, key["key"], "remember me")
        streamed = _post(gateway, key["key"], "stream me", stream=True)
        _flush(gateway)
        rows = admin.ok("GET", "/admin/logs")["data"]
        by_id = {r["gateway_request_id"]: r["id"] for r in rows}
        detail = admin.ok("GET", f"/admin/logs/{by_id[plain.headers['x-gateway-request-id']]}")
        assert "remember me" in detail["request_body"]
        assert '"Hello!"' in detail["response_body"]
        stream_detail = admin.ok(
            "GET", f"/admin/logs/{by_id[streamed.headers['x-gateway-request-id']]}"
        )
        import json

        chunks = json.loads(stream_detail["response_body"])
        assert isinstance(chunks, list) and any("mock" in c for c in chunks)
        for row in (detail, stream_detail):
            assert key["key"] not in str(row)
            assert "sk-upstream-secret" not in str(row)
        assert_openai_error(admin.request("GET", "/admin/logs/999999"), 404)


def _insert_rows(gateway: ThreadedGateway, rows: list[dict[str, Any]]) -> None:
    """Log rows through the gateway's own log writer, which also adds them to the stats rollup."""

    async def insert() -> None:
        writer = gateway.runtime.log_writer
        for row in rows:
            writer.submit(row)
        await writer.write_pending()

    gateway.run(insert())


def _row(when: datetime, **fields: Any) -> dict[str, Any]:
    """A request-log row as the proxy submits it (columns it leaves out at their defaults)."""
    defaults = {c.name: getattr(c.default, "arg", None) for c in request_logs.c if c.name != "id"}
    base = {
        "gateway_request_id": uuid.uuid4().hex,
        "request_id": None,
        "user_key_id": uuid.uuid4(),
        "model_requested": "gpt-4o",
        "model_sent": "gpt-4o",
        "provider_id": None,
        "provider_kind": "openai",
        "status_code": 200,
        "is_error": False,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "weighted_total_tokens": 15,
        "latency_ms": 100,
        "ttfb_ms": 50,
        "is_stream": False,
        "error_message": None,
        "request_body": None,
        "response_body": None,
        "created_at": when,
    }
    return {**defaults, **base, **fields}


def test_stats_from_known_rows(gateway: ThreadedGateway, admin: Admin) -> None:
    provider = admin.provider("http://127.0.0.1:9/v1", name="stats-provider")
    pid = uuid.UUID(provider["id"])
    now = datetime.now(UTC)
    rows = [
        _row(now - timedelta(minutes=5), provider_id=pid, latency_ms=100),
        _row(
            now - timedelta(minutes=6),
            provider_id=pid,
            latency_ms=300,
            status_code=500,
            is_error=True,
            total_tokens=0,
        ),
        _row(
            now - timedelta(hours=2),
            provider_id=pid,
            model_requested="qwen",
            latency_ms=200,
            total_tokens=40,
        ),
        _row(now - timedelta(days=2), provider_id=pid, model_requested="qwen", total_tokens=7),
        _row(now - timedelta(days=10), provider_id=pid),
    ]
    _insert_rows(gateway, rows)
    stats = admin.ok("GET", "/admin/stats")
    assert stats["total_requests"] == 5
    assert stats["total_requests_24h"] == 3
    assert stats["total_errors_24h"] == 1
    assert stats["total_tokens_24h"] == 55
    assert stats["avg_latency_24h"] == 200.0
    hours = stats["requests_per_hour"]
    assert len(hours) == 24
    assert sum(h["requests"] for h in hours) == 3
    current = hours[-1]
    if (now - timedelta(minutes=6)).hour == now.hour:
        assert current["requests"] == 2 and current["errors"] == 1
        assert current["avg_latency"] == 200.0
    usage = {m["model"]: m for m in stats["model_usage"]}
    assert usage["gpt-4o"] == {"model": "gpt-4o", "requests": 2, "tokens": 15, "cost_usd": 0.0}
    assert usage["qwen"] == {"model": "qwen", "requests": 2, "tokens": 47, "cost_usd": 0.0}
    assert stats["provider_usage"] == [
        {"provider": "stats-provider", "requests": 4, "errors": 1, "cost_usd": 0.0}
    ]


def test_retention_deletes_only_old_rows(gateway: ThreadedGateway) -> None:
    now = datetime.now(UTC)
    old = [_row(now - timedelta(days=8, minutes=i)) for i in range(25)]
    recent = [_row(now - timedelta(days=6)), _row(now)]
    _insert_rows(gateway, old + recent)
    engine = gateway.runtime.store.engine
    deleted = gateway.run(delete_expired(engine, 7, batch_size=10))
    assert deleted == 25

    async def remaining() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(request_logs)))

    assert gateway.run(remaining()) == 2


def test_metrics_move_with_traffic(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    _, key = _setup(admin, upstream)

    def sample(name: str, **labels: str) -> float:
        text = httpx.get(gateway.url + "/metrics").text
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = sample("llm_gateway_requests_total", model="gpt-4o", status="200")
    _post(gateway, key["key"])
    _post(gateway, key["key"], stream=True)
    after = sample("llm_gateway_requests_total", model="gpt-4o", status="200")
    assert after - before == 2
    assert sample("llm_gateway_tokens_total", model="gpt-4o", type="weighted") >= 70
    assert sample("llm_gateway_overhead_seconds_count") >= 2
    assert sample("llm_gateway_time_to_first_byte_seconds_count") >= 2
    assert sample("llm_gateway_key_cache_hits") >= 2
    text = httpx.get(gateway.url + "/metrics").text
    assert "llm_gateway_log_queue_depth" in text
    assert key["key"] not in text


@pytest.mark.parametrize("client_id", [None, "client-trace-1"])
def test_gateway_request_id_is_returned_and_stored(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream, client_id: str | None
) -> None:
    _, key = _setup(admin, upstream)
    headers = {"Authorization": f"Bearer {key['key']}"}
    if client_id:
        headers["X-Request-ID"] = client_id
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
    )
    gateway_id = response.headers["x-gateway-request-id"]
    if client_id:
        assert gateway_id == client_id
    _flush(gateway)
    wait_until(lambda: admin.ok("GET", "/admin/logs")["total"] == 1)
    row = admin.ok("GET", "/admin/logs")["data"][0]
    assert row["gateway_request_id"] == gateway_id
    assert row["request_id"] == response.headers["x-request-id"]
