"""Budgets under concurrency, failed-auth throttling, secrets at rest and in logs, fuzzing."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Admin, GatewayFactory
from tests.servers import ADMIN_KEY, SECRET_KEY, GatewayProcess, Upstream, wait_until

CHAT = "/v1/chat/completions"


def _post(url: str, key: str, content: str = "hi", **extra: Any) -> httpx.Response:
    return httpx.post(
        url + CHAT,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra},
    )


def test_concurrent_requests_cannot_overrun_a_budget(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gateway = make_gateway()
    with Admin(gateway.url) as admin:
        provider = admin.provider(upstream.base_url())
        admin.model(
            provider["id"], "gpt-4o", input_token_coefficient=2, output_token_coefficient=3
        )  # 35 per call
        assert _post(gateway.url, admin.key()["key"]).status_code == 200  # cost now known
        key = admin.key(token_budget=350)
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            statuses = list(
                pool.map(
                    lambda _: _post(gateway.url, key["key"], "mode:slow:0.5").status_code, range(64)
                )
            )
        assert statuses.count(200) == 10, statuses
        assert statuses.count(429) == 54
        wait_until(lambda: admin.tokens_used(key["id"]) == 350)
        assert _post(gateway.url, key["key"]).status_code == 429


def test_reservations_survive_a_cache_reload(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    """A resync or an admin change replaces cache entries; calls in flight keep their hold."""
    import uuid

    gateway = make_gateway()
    store = gateway.runtime.store
    with Admin(gateway.url) as admin:
        provider = admin.provider(upstream.base_url())
        admin.model(provider["id"], "gpt-4o", input_token_coefficient=2, output_token_coefficient=3)
        assert _post(gateway.url, admin.key()["key"]).status_code == 200  # 35 per call
        key = admin.key(token_budget=350)
        key_id = uuid.UUID(key["id"])
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            slow = [pool.submit(_post, gateway.url, key["key"], "mode:slow:1") for _ in range(10)]
            wait_until(lambda: store.cache.key_by_id(key_id).reserved >= 350)
            held = store.cache.key_by_id(key_id).reserved
            gateway.run(store.resync())  # every entry is rebuilt from the database
            assert store.cache.key_by_id(key_id).reserved == held
            assert _post(gateway.url, key["key"]).status_code == 429
            admin.ok("PUT", f"/admin/keys/{key['id']}", json={"name": "renamed"})
            assert _post(gateway.url, key["key"]).status_code == 429
            assert [future.result().status_code for future in slow] == [200] * 10
        assert store.cache.key_by_id(key_id).reserved == 0
        wait_until(lambda: admin.tokens_used(key["id"]) == 350)


def test_a_cold_model_still_reserves_the_prompt(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    """Before any call has shown a model's cost, a call holds at least its prompt's size."""
    gateway = make_gateway()
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")  # 15 per call
        key = admin.key(token_budget=100)
        # About 100 tokens by size, so one call's reservation fills the budget.
        messages = [
            {"role": "user", "content": "mode:slow:0.5"},
            {"role": "user", "content": "x" * 400},
        ]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(
                pool.map(
                    lambda _: _post(gateway.url, key["key"], messages=messages).status_code,
                    range(16),
                )
            )
        assert 1 <= statuses.count(200) <= 2, statuses  # without the floor: all 16
        wait_until(lambda: admin.tokens_used(key["id"]) == 15 * statuses.count(200))


def test_an_internal_error_still_logs_charges_and_releases_the_call(
    make_gateway: GatewayFactory, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault inside the gateway's own relay code: 500, one log row, no reservation left."""
    import uuid

    from llm_gateway.proxy.record import CallRecord
    from llm_gateway.proxy.sse import UsageTap

    def broken(*_: object) -> None:
        raise RuntimeError("injected fault")

    gateway = make_gateway()
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
        key = admin.key(token_budget=1_000_000)
        monkeypatch.setattr(CallRecord, "take_usage", broken)
        assert _post(gateway.url, key["key"]).status_code == 500
        monkeypatch.setattr(UsageTap, "feed", broken)
        with pytest.raises(httpx.HTTPError):  # the stream had begun: the connection is dropped
            _post(gateway.url, key["key"], stream=True).read()
        monkeypatch.undo()
        logs = {"key_id": key["id"]}
        wait_until(lambda: admin.ok("GET", "/admin/logs", params=logs)["total"] >= 2, timeout=3)
        rows = admin.ok("GET", "/admin/logs", params=logs)["data"]
        assert [row["status_code"] for row in rows] == [500, 500]
        assert {row["error_message"] for row in rows} == {"internal error in the gateway"}
        entry = gateway.runtime.store.cache.key_by_id(uuid.UUID(key["id"]))
        assert entry.reserved == 0
        assert _post(gateway.url, key["key"]).status_code == 200


def test_failed_authentications_are_throttled_per_address(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gateway = make_gateway(gateway_auth_failure_limit=5)
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
        good = admin.key()["key"]
        statuses = [_post(gateway.url, f"sk-wrong-{i}").status_code for i in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        assert _post(gateway.url, good).status_code == 200  # valid keys keep working
        denied = httpx.get(
            gateway.url + "/admin/keys", headers={"Authorization": "Bearer not-the-admin-key-000"}
        )
        assert denied.status_code == 429
        assert denied.json()["error"]["code"] == "too_many_failed_authentications"
        assert admin.request("GET", "/admin/keys").status_code == 200


def test_no_secret_reaches_logs_rows_or_responses(
    database_url: str, upstream: Upstream, tmp_path: Path
) -> None:
    provider_secret = "sk-provider-never-leaks-0042"
    env = {
        "DATABASE_URL": database_url,
        "ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "LOG_REQUEST_BODY": "true",
        "LOG_RESPONSE_BODY": "true",
        "GATEWAY_LOG_FORMAT": "json",
    }
    gateway = GatewayProcess(env, tmp_path).start()
    responses: list[str] = []
    try:
        with Admin(gateway.url) as admin:
            provider = admin.provider(upstream.base_url(), api_key=provider_secret)
            responses.append(json.dumps(provider))
            admin.model(provider["id"], "gpt-4o")
            created = admin.key()
            user_key = created["key"]
            for content in ("hi", "mode:status:500", "mode:status:429", "mode:cut"):
                responses.append(_post(gateway.url, user_key, content).text)
                responses.append(_post(gateway.url, user_key, content, stream=True).text)
            responses.append(_post(gateway.url, user_key + "x").text)
            rotated = admin.ok("POST", f"/admin/keys/{created['id']}/rotate")["key"]
            responses.append(_post(gateway.url, user_key).text)
            responses.append(httpx.get(gateway.url + "/metrics").text)
            for path in ("/admin/providers", "/admin/models", "/admin/keys", "/admin/stats"):
                responses.append(admin.request("GET", path).text)
            wait_until(lambda: admin.ok("GET", "/admin/logs")["total"] >= 8)
            logs = admin.ok("GET", "/admin/logs", params={"per_page": 200})["data"]
            details = [admin.ok("GET", f"/admin/logs/{row['id']}") for row in logs]
            responses.append(json.dumps(details))
            unreachable = admin.provider("http://127.0.0.1:9/v1", api_key=provider_secret)
            admin.model(unreachable["id"], "dead")
            responses.append(
                httpx.post(
                    gateway.url + CHAT,
                    headers={"Authorization": f"Bearer {rotated}"},
                    json={"model": "dead", "messages": []},
                ).text
            )
    finally:
        gateway.stop()
    secrets = {
        "admin": ADMIN_KEY,
        "provider": provider_secret,
        "user": user_key,
        "rotated": rotated,
    }
    log_text = gateway.log()
    stored = b"".join(
        p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.name.startswith("gateway-")
    )
    if database_url.startswith("sqlite"):
        stored += b"".join(p.read_bytes() for p in Path(database_url[10:]).parent.glob("*.db*"))
    for name, secret in secrets.items():
        assert secret not in log_text, name
        assert secret.encode() not in stored, name
    for name in ("admin", "provider", "user"):
        assert all(secrets[name] not in text for text in responses), name


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"model": st.sampled_from(["gpt-4o", "missing"]) | st.text(max_size=10) | json_values},
        optional={
            "messages": json_values,
            "stream": st.booleans() | json_values,
            "stream_options": json_values,
            "temperature": json_values,
        },
    ),
)
# Printable ASCII without outer whitespace (the client library refuses such header values).
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60
).map(str.strip)


def test_fuzzed_requests_never_get_a_gateway_5xx(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gateway = make_gateway(gateway_auth_failure_limit=0)
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
        key = admin.key()["key"]
    client = httpx.Client(base_url=gateway.url, timeout=30)

    @settings(
        max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        body=bodies,
        raw=st.binary(max_size=64),
        use_raw=st.booleans(),
        request_id=header_text,
        organisation=header_text,
        auth=header_text,
        good_key=st.booleans(),
    )
    def check(
        body: Any,
        raw: bytes,
        use_raw: bool,
        request_id: str,
        organisation: str,
        auth: str,
        good_key: bool,
    ) -> None:
        headers = {
            "Authorization": f"Bearer {key}" if good_key else auth,
            "X-Request-ID": request_id,
            "OpenAI-Organization": organisation,
        }
        content = raw if use_raw else json.dumps(body).encode()
        response = client.post(CHAT, content=content, headers=headers)
        if response.status_code >= 500:
            # Only the upstream may answer 5xx, and then with its own body, passed through.
            assert response.json()["error"]["type"] == "mock_error", response.text
        else:
            assert response.status_code in (200, 400, 401, 404, 413, 429), response.text
            if response.status_code != 200:
                assert set(response.json()["error"]) == {"message", "type", "code", "param"}

    try:
        check()
    finally:
        client.close()
    assert httpx.get(gateway.url + "/health").status_code == 200


def test_reservations_end_with_every_call(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    """Completed, failed and abandoned calls all give their budget reservation back."""
    import uuid

    gateway = make_gateway()
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
        key = admin.key(token_budget=1_000_000)
    assert _post(gateway.url, key["key"]).status_code == 200  # the model's cost is now known
    assert _post(gateway.url, key["key"], "mode:status:500").status_code == 500
    with httpx.stream(
        "POST",
        gateway.url + CHAT,
        headers={"Authorization": f"Bearer {key['key']}"},
        json={
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": "mode:drip"}],
        },
    ) as response:
        next(response.iter_lines())  # abandon the stream after its first line
    entry = gateway.runtime.store.cache.key_by_id(uuid.UUID(key["id"]))
    wait_until(lambda: entry.reserved == 0, timeout=5)
    assert _post(gateway.url, key["key"]).status_code == 200
    assert entry.reserved == 0


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_request_bodies_nesting_deeper_than_the_limit_are_refused(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gateway = make_gateway(gateway_max_json_depth=16)
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
        key = admin.key()["key"]
    # The body object is level 1, so a 15-level value under it reaches the limit exactly.
    assert _post(gateway.url, key, metadata=_nested(15)).status_code == 200
    refused = _post(gateway.url, key, metadata=_nested(16))
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "json_too_deep"
    # Deeper than the parser goes at all: still a clean 400.
    deepest = httpx.post(
        gateway.url + CHAT,
        headers={"Authorization": f"Bearer {key}"},
        content=b'{"model": "gpt-4o", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    )
    assert deepest.status_code == 400
    assert deepest.json()["error"]["code"] == "invalid_json"
    # Brackets inside strings do not count as nesting.
    assert _post(gateway.url, key, "[{" * 100).status_code == 200


def _raw_request(url: str, head: bytes) -> tuple[int, bytes]:
    """Send a hand-made request head and read the answer until the server closes."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(head)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    status = int(received.split(b" ", 2)[1])
    return status, received.split(b"\r\n\r\n", 1)[1]


def test_request_heads_larger_than_the_limit_are_refused(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gateway = make_gateway(gateway_max_header_bytes=4096)
    fits = b"x" * 3000
    too_big = b"x" * 5000
    ok, _ = _raw_request(
        gateway.url, b"GET /health HTTP/1.1\r\nConnection: close\r\nX-Pad: " + fits + b"\r\n\r\n"
    )
    assert ok == 200
    status, body = _raw_request(
        gateway.url,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nX-Pad: " + too_big + b"\r\n\r\n",
    )
    assert status == 431
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    status, _ = _raw_request(gateway.url, b"GET /health?" + too_big + b" HTTP/1.1\r\n\r\n")
    assert status == 431
    # Many small headers add up.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"y" * 100) for i in range(60))
    status, _ = _raw_request(gateway.url, b"GET /health HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
    assert status == 431
    assert httpx.get(gateway.url + "/health").status_code == 200
