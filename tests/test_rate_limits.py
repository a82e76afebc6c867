"""Requests and tokens per rolling minute: in one process, and over processes sharing Redis.

In one process the window follows the gateway's clock, so tests move it instead of waiting.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis as redis_client

from tests.conftest import Admin, GatewayFactory
from tests.policy_rig import SAY, Rig, at
from tests.servers import (
    ADMIN_KEY,
    SECRET_KEY,
    GatewayProcess,
    Postgres,
    Redis,
    ThreadedGateway,
    Upstream,
    run_redis,
    wait_until,
)

LIMIT_HEADERS = [
    f"x-ratelimit-{part}-{kind}"
    for kind in ("requests", "tokens")
    for part in ("limit", "remaining", "reset")
]


@pytest.fixture
def rig(gateway: ThreadedGateway, admin: Admin, upstream: Upstream) -> Iterator[Rig]:
    prepared = Rig.build(gateway, admin, upstream)
    prepared.model("gpt-4o")
    yield prepared
    prepared.close()


def _limits(response: httpx.Response) -> dict[str, list[str]]:
    return {name: response.headers.get_list(name) for name in LIMIT_HEADERS}


# ---- one process -----------------------------------------------------------------------------
def test_requests_per_minute_refused_with_a_computed_retry_after(rig: Rig) -> None:
    rig.clock.set(at("2025-05-05 10:00:01"))  # one second into a minute window
    key = rig.key(rpm_limit=3)
    client = rig.client(key)
    remaining = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=SAY)
        remaining.append(raw.headers.get_list("x-ratelimit-remaining-requests"))
        assert raw.headers.get_list("x-ratelimit-limit-requests") == ["3"]
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no token limit set
    # The key's own headers replace the upstream's (the mock says 99 remaining).
    assert remaining == [["2"], ["1"], ["0"]]

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=SAY)
    error = refused.value
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_error"
    headers = error.response.headers
    # Three requests in this window's first seconds slide out over the next one: room for
    # a fourth after 59 s (the window's rest) + 20 s (a third of the next window).
    retry = int(headers["retry-after"])
    assert 77 <= retry <= 80, retry
    assert int(headers["retry-after-ms"]) == pytest.approx(retry * 1000, abs=1000)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert len(rig.upstream.requests(rig.provider["base_url"])) == 3  # the 4th never left

    rig.clock.advance(retry - 5)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=SAY)
    rig.clock.advance(5)
    assert client.chat.completions.create(model="gpt-4o", messages=SAY).choices


def test_every_answer_to_a_limited_key_carries_its_headers(rig: Rig) -> None:
    key = rig.key(rpm_limit=100, tpm_limit=10_000)
    response = rig.post(key, {"model": "gpt-4o", "messages": SAY})
    limits = _limits(response)
    assert limits["x-ratelimit-limit-requests"] == ["100"]
    assert limits["x-ratelimit-remaining-requests"] == ["99"]
    assert limits["x-ratelimit-limit-tokens"] == ["10000"]
    assert all(len(values) == 1 for values in limits.values()), limits
    with httpx.stream(
        "POST",
        rig.gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": SAY, "stream": True},
        headers={"Authorization": f"Bearer {key['key']}"},
    ) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers.get_list("x-ratelimit-remaining-requests") == ["98"]
    # Refused before the limits were asked: the headers still come, and nothing was taken.
    failed = rig.post(key, {"model": "unknown-model", "messages": SAY})
    assert failed.status_code == 404
    assert failed.headers.get_list("x-ratelimit-remaining-requests") == ["98"]
    assert rig.post(key, {"model": "gpt-4o"}).headers["x-ratelimit-limit-tokens"] == "10000"
    # A key without limits gets the upstream's headers as they were.
    plain = rig.post(rig.key(), {"model": "gpt-4o", "messages": SAY})
    assert plain.headers.get_list("x-ratelimit-remaining-requests") == ["99"]
    assert "x-ratelimit-limit-tokens" not in plain.headers


def test_tokens_reserve_an_estimate_and_settle_to_the_real_usage(rig: Rig) -> None:
    rig.clock.set(at("2025-05-05 10:00:01"))
    key = rig.key(tpm_limit=100)
    body = {"model": "gpt-4o", "messages": SAY, "max_tokens": 5}
    estimate = len(httpx.Request("POST", "/", json=body).content) // 4 + 5
    assert 20 <= estimate <= 30
    first = rig.post(key, body)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(100 - estimate)
    answered = 1
    while answered < 10:
        response = rig.post(key, body)
        if response.status_code != 200:
            break
        answered += 1
        # Each earlier call counts its real 15 tokens; this one its estimate.
        expected = 100 - 15 * (answered - 1) - estimate
        assert response.headers["x-ratelimit-remaining-tokens"] == str(expected)
    # Settled at 15 a call, 100 tokens take calls until 15·n + estimate > 100.
    assert answered == math.floor((100 - estimate) / 15) + 1
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1


def test_a_request_larger_than_the_token_limit_still_passes_alone(rig: Rig) -> None:
    key = rig.key(tpm_limit=10)
    response = rig.post(key, {"model": "gpt-4o", "messages": SAY, "max_tokens": 500})
    assert response.status_code == 200
    assert rig.post(key, {"model": "gpt-4o", "messages": SAY}).status_code == 429


def test_anthropic_clients_get_a_rate_limit_error_in_their_shape(rig: Rig) -> None:
    key = rig.key(rpm_limit=1)
    client = anthropic.Anthropic(api_key=key["key"], base_url=rig.gateway.url, max_retries=0)
    try:
        message = client.messages.create(model="gpt-4o", max_tokens=20, messages=SAY)  # type: ignore[arg-type]
        assert message.content
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.create(model="gpt-4o", max_tokens=20, messages=SAY)  # type: ignore[arg-type]
        assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert int(refused.value.response.headers["retry-after"]) >= 1
    finally:
        client.close()


def test_a_limit_change_applies_to_the_next_request(rig: Rig) -> None:
    key = rig.key(rpm_limit=1)
    assert rig.post(key, {"model": "gpt-4o", "messages": SAY}).status_code == 200
    assert rig.post(key, {"model": "gpt-4o", "messages": SAY}).status_code == 429
    rig.update(key["id"], rpm_limit=5)
    assert rig.post(key, {"model": "gpt-4o", "messages": SAY}).status_code == 200
    rig.update(key["id"], rpm_limit=None)
    response = rig.post(key, {"model": "gpt-4o", "messages": SAY})
    assert response.headers.get_list("x-ratelimit-remaining-requests") == ["99"]  # upstream's


# ---- processes sharing Redis -------------------------------------------------------------------
def _script_calls(redis: Redis) -> int:
    """How many scripts (EVALSHA) the Redis server has run (not counting the first call of a
    script it did not know yet, which the client follows with SCRIPT LOAD and a new call)."""
    client = redis_client.Redis.from_url(redis.url)
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    evalsha = stats.get("cmdstat_evalsha", {})
    return int(evalsha.get("calls", 0)) - int(evalsha.get("failed_calls", 0))


def test_one_redis_call_per_limited_request_even_near_the_end_of_a_budget_none_without(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    with run_redis() as redis:
        gateway = make_gateway(redis_url=redis.url)
        with Admin(gateway.url) as admin:
            rig = Rig.build(gateway, admin, upstream)
            rig.model("gpt-4o")
            # 15 tokens a call: room for 3. Near the end of a budget, its reservation is
            # shared through Redis; here it rides in the rate-limit script's one call.
            key = rig.key(rpm_limit=1000, token_budget=45)
            before = _script_calls(redis)
            statuses = [rig.post(key, {"model": "gpt-4o", "messages": SAY}) for _ in range(4)]
            assert [r.status_code for r in statuses] == [200, 200, 200, 429]
            assert statuses[3].json()["error"]["code"] == "insufficient_quota"
            assert statuses[3].headers["x-ratelimit-remaining-requests"] == "997"
            # At most one script call per request (the fourth may be refused on the local
            # view, or by Redis), each one carrying the budget's reservation too.
            calls = _script_calls(redis) - before
            assert 3 <= calls <= 4
            assert gateway.runtime.shared_budget.asked == calls
            # A key without rate limits, its budget far from its end: no script call at all.
            plain = rig.key(token_budget=10**9)
            before = _script_calls(redis)
            for _ in range(3):
                assert rig.post(plain, {"model": "gpt-4o", "messages": SAY}).status_code == 200
            assert _script_calls(redis) == before
            rig.close()


Pair = tuple[GatewayProcess, GatewayProcess, Redis]


@pytest.fixture
def pair(postgres_server: Postgres, tmp_path: Path) -> Iterator[Pair]:
    name = postgres_server.create_database()
    with run_redis() as redis:
        env = {
            "DATABASE_URL": postgres_server.dsn(name),
            "REDIS_URL": redis.url,
            "ADMIN_KEY": ADMIN_KEY,
            "GATEWAY_SECRET_KEY": SECRET_KEY,
            "GATEWAY_ACCESS_LOG": "false",
        }
        first = GatewayProcess(env, tmp_path).start()
        second = GatewayProcess(env, tmp_path).start()
        try:
            yield first, second, redis
        finally:
            first.stop()
            second.stop()
    postgres_server.drop_database(name)


def _burst(gateways: list[GatewayProcess], key: str, calls: int) -> list[httpx.Response]:
    """`calls` requests from 64 concurrent clients, spread over the gateways in turn."""
    body = {"model": "gpt-4o", "messages": SAY}
    clients = [httpx.Client(timeout=30) for _ in range(64)]

    def call(index: int) -> httpx.Response:
        gateway = gateways[index % len(gateways)]
        return clients[index % 64].post(
            gateway.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        )

    try:
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            return list(pool.map(call, range(calls)))
    finally:
        for client in clients:
            client.close()


def _metric(gateway: GatewayProcess, name: str) -> float:
    for line in httpx.get(gateway.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _wait_for_metric(gateway: GatewayProcess, name: str, value: float) -> None:
    wait_until(lambda: _metric(gateway, name) == value, timeout=15)


def _setup(gateway: GatewayProcess, upstream: Upstream, **key_fields: Any) -> dict[str, Any]:
    with Admin(gateway.url) as admin:
        provider = admin.provider(upstream.base_url())
        admin.model(provider["id"], "gpt-4o")
        return admin.key(**key_fields)


def test_a_rate_limit_holds_across_processes_sharing_redis(pair: Pair, upstream: Upstream) -> None:
    first, second, _ = pair
    key = _setup(first, upstream, rpm_limit=20)
    wait_until(lambda: _status(second, key["key"]) == 200)  # the key reached the other process
    responses = _burst([first, second], key["key"], 200)
    answered = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(answered) + len(refused) == 200
    # 19 left after the probe above; both processes draw on one count.
    assert 19 <= len(answered) <= 22, len(answered)
    assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_exceeded"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert {r.headers["x-ratelimit-limit-requests"] for r in responses} == {"20"}
    assert _metric(first, "llm_gateway_rate_limit_local_share") == 0
    # Each process counts the live ones through a heartbeat (every few seconds).
    _wait_for_metric(first, "llm_gateway_rate_limit_processes", 2)


def test_with_redis_down_each_process_keeps_its_share(pair: Pair, upstream: Upstream) -> None:
    first, second, redis = pair
    key = _setup(first, upstream, rpm_limit=20)
    wait_until(lambda: _status(second, key["key"]) == 200)
    for gateway in (first, second):  # each has counted the live processes
        _wait_for_metric(gateway, "llm_gateway_rate_limit_processes", 2)
    redis.stop()
    for gateway in (first, second):
        _wait_for_metric(gateway, "llm_gateway_redis_up", 0)
    per_process = [
        sum(r.status_code == 200 for r in _burst([gateway], key["key"], 30))
        for gateway in (first, second)
    ]
    # Each process allows 20 / 2 live processes: the total stays at the limit, not twice it.
    assert per_process == [10, 10]
    for gateway in (first, second):
        assert _metric(gateway, "llm_gateway_rate_limit_local_share") == 0.5
    refused = _call(first, key["key"])
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-limit-requests"] == "10"


def _call(gateway: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": SAY},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _status(gateway: GatewayProcess, key: str) -> int:
    return _call(gateway, key).status_code
