"""The proxy end to end: the official OpenAI SDK -> gateway -> a real local upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Admin, GatewayFactory, assert_openai_error
from tests.servers import ThreadedGateway, Upstream, wait_until

PROVIDER_SECRET = "sk-upstream-secret-0001"


@dataclass
class Setup:
    gateway: ThreadedGateway
    admin: Admin
    upstream: Upstream
    base_url: str
    provider: dict[str, Any]
    model: dict[str, Any]
    key: dict[str, Any]
    clients: list[openai.OpenAI] = field(default_factory=list)  # closed after the test

    def client(self, key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        client = openai.OpenAI(
            api_key=key or self.key["key"],
            base_url=self.gateway.url + "/v1",
            max_retries=0,
            **kwargs,
        )
        self.clients.append(client)
        return client

    def post(self, body: dict[str, Any], key: str | None = None, **headers: str) -> httpx.Response:
        return httpx.post(
            self.gateway.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key or self.key['key']}", **headers},
            timeout=30,
        )

    def seen(self) -> list[dict[str, Any]]:
        return self.upstream.requests(self.base_url)

    def tokens_used(self) -> int:
        return self.admin.tokens_used(self.key["id"])


@pytest.fixture
def setup(gateway: ThreadedGateway, admin: Admin, upstream: Upstream) -> Iterator[Setup]:
    base_url = upstream.base_url()
    provider = admin.provider(base_url, api_key=PROVIDER_SECRET)
    model = admin.model(provider["id"], "gpt-4o")
    key = admin.key()
    prepared = Setup(gateway, admin, upstream, base_url, provider, model, key)
    yield prepared
    for client in prepared.clients:
        client.close()


def say(text: str = "Hello!") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_non_streaming_completion_through_the_sdk(setup: Setup) -> None:
    completion = setup.client().chat.completions.create(model="gpt-4o", messages=say())
    assert completion.choices[0].message.content == "Hello!"
    assert completion.usage is not None and completion.usage.total_tokens == 15
    [seen] = setup.seen()
    assert seen["body"]["model"] == "gpt-4o"
    assert seen["headers"]["authorization"] == f"Bearer {PROVIDER_SECRET}"
    assert setup.key["key"] not in str(seen)


def test_streaming_completion_through_the_sdk(setup: Setup) -> None:
    stream = setup.client().chat.completions.create(model="gpt-4o", messages=say(), stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock!"
    # The client did not ask for usage: it must not see the usage-only chunk.
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    [seen] = setup.seen()
    assert seen["body"]["stream_options"] == {"include_usage": True}
    wait_until(lambda: setup.tokens_used() == 15)


def test_stream_usage_chunk_passes_when_the_client_asks(setup: Setup) -> None:
    stream = setup.client().chat.completions.create(
        model="gpt-4o", messages=say(), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 10


def test_body_is_forwarded_byte_for_byte_when_nothing_changes(setup: Setup) -> None:
    raw = b'{"model":"gpt-4o",  "messages":[{"role":"user","content":"hi"}], "temperature":0.25}'
    response = httpx.post(
        setup.gateway.url + "/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {setup.key['key']}", "content-type": "application/json"},
    )
    assert response.status_code == 200
    [seen] = setup.seen()
    assert seen["body"]["temperature"] == 0.25
    assert int(seen["headers"]["content-length"]) == len(raw)


@pytest.mark.asyncio
async def test_async_sdk_streams_and_completes(setup: Setup) -> None:
    client = openai.AsyncOpenAI(
        api_key=setup.key["key"], base_url=setup.gateway.url + "/v1", max_retries=0
    )
    async with client:
        results = await asyncio.gather(
            *(client.chat.completions.create(model="gpt-4o", messages=say()) for _ in range(5))
        )
        stream = await client.chat.completions.create(model="gpt-4o", messages=say(), stream=True)
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert all(r.choices[0].message.content == "Hello!" for r in results)
    assert "".join(pieces) == "Hello from the mock!"


def test_model_name_is_rewritten_for_the_provider(setup: Setup) -> None:
    setup.admin.model(setup.provider["id"], "qwen-max", provider_model_name="qwen-max-latest")
    setup.client().chat.completions.create(model="qwen-max", messages=say())
    setup.client().chat.completions.create(model="qwen-max", messages=say(), stream=True)
    bodies = [r["body"] for r in setup.seen()]
    assert [b["model"] for b in bodies] == ["qwen-max-latest", "qwen-max-latest"]


def test_headers_are_relayed_both_ways(setup: Setup) -> None:
    response = setup.post(
        {"model": "gpt-4o", "messages": say()},
        **{"OpenAI-Organization": "org-1", "X-Title": "not-for-openai", "X-Request-ID": "trace-7"},
    )
    assert response.headers["x-request-id"].startswith("req-mock-")
    assert response.headers["x-ratelimit-remaining-requests"] == "99"
    assert response.headers["openai-processing-ms"] == "7"
    assert response.headers["x-gateway-request-id"] == "trace-7"
    assert "x-unrelated-header" not in response.headers
    [seen] = setup.seen()
    assert seen["headers"]["openai-organization"] == "org-1"
    assert "x-title" not in seen["headers"]


def test_openrouter_gets_referer_and_title(setup: Setup) -> None:
    base_url = setup.upstream.base_url()
    router = setup.admin.provider(base_url, kind="openrouter")
    setup.admin.model(router["id"], "router-model")
    setup.post(
        {"model": "router-model", "messages": say()},
        **{
            "HTTP-Referer": "https://app.example",
            "X-Title": "My App",
            "OpenAI-Organization": "org-x",
        },
    )
    [seen] = setup.upstream.requests(base_url)
    assert seen["headers"]["http-referer"] == "https://app.example"
    assert seen["headers"]["x-title"] == "My App"
    assert "openai-organization" not in seen["headers"]


def test_generated_gateway_request_id(setup: Setup) -> None:
    first = setup.post({"model": "gpt-4o", "messages": say()})
    second = setup.post({"model": "gpt-4o", "messages": say()})
    assert len(first.headers["x-gateway-request-id"]) >= 16
    assert first.headers["x-gateway-request-id"] != second.headers["x-gateway-request-id"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer sk-00000000-0000-4000-8000-000000000000", "Bearer garbage", "Token x"],
)
def test_missing_or_unknown_key_is_a_401(setup: Setup, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(
        setup.gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": say()},
        headers=headers,
    )
    assert_openai_error(response, 401, "invalid_api_key")
    assert setup.seen() == []


def test_sdk_raises_authentication_error_for_a_bad_key(setup: Setup) -> None:
    with pytest.raises(openai.AuthenticationError):
        setup.client(key="sk-not-a-real-key").chat.completions.create(
            model="gpt-4o", messages=say()
        )


def test_rotated_key_is_rejected_immediately(setup: Setup) -> None:
    old = setup.key["key"]
    assert setup.post({"model": "gpt-4o", "messages": say()}, key=old).status_code == 200
    rotated = setup.admin.ok("POST", f"/admin/keys/{setup.key['id']}/rotate")
    assert_openai_error(setup.post({"model": "gpt-4o", "messages": say()}, key=old), 401)
    assert setup.post({"model": "gpt-4o", "messages": say()}, key=rotated["key"]).status_code == 200


def test_revoked_key_is_rejected_immediately(setup: Setup) -> None:
    setup.admin.ok("DELETE", f"/admin/keys/{setup.key['id']}", 204)
    assert_openai_error(setup.post({"model": "gpt-4o", "messages": say()}), 401)


def test_unknown_and_inactive_models_are_404(setup: Setup) -> None:
    with pytest.raises(openai.NotFoundError):
        setup.client().chat.completions.create(model="nope", messages=say())
    setup.admin.ok("PUT", f"/admin/models/{setup.model['id']}", json={"is_active": False})
    assert_openai_error(setup.post({"model": "gpt-4o", "messages": say()}), 404, "model_not_found")
    setup.admin.ok("PUT", f"/admin/models/{setup.model['id']}", json={"is_active": True})
    setup.admin.ok("PUT", f"/admin/providers/{setup.provider['id']}", json={"is_active": False})
    assert_openai_error(setup.post({"model": "gpt-4o", "messages": say()}), 404, "model_not_found")
    assert setup.seen() == []


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{bad json", 400),
        (b"[1, 2]", 400),
        (b'{"messages": []}', 400),
        (b'{"model": 5, "messages": []}', 400),
        (b'{"model": "gpt-4o", "stream": "yes", "messages": []}', 400),
    ],
)
def test_bad_requests_are_400(setup: Setup, content: bytes, status: int) -> None:
    response = httpx.post(
        setup.gateway.url + "/v1/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {setup.key['key']}"},
    )
    assert_openai_error(response, status)
    assert setup.seen() == []


def test_body_over_the_limit_is_413(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gateway = make_gateway(gateway_max_body_bytes=1024)
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
        key = admin.key()["key"]
    big = {"model": "gpt-4o", "messages": say("x" * 2000)}
    response = httpx.post(
        gateway.url + "/v1/chat/completions", json=big, headers={"Authorization": f"Bearer {key}"}
    )
    assert_openai_error(response, 413)
    small = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": say()},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert small.status_code == 200


@pytest.mark.parametrize(
    ("code", "exception"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_upstream_errors_pass_through_with_their_body(
    setup: Setup, code: int, exception: type[Exception]
) -> None:
    response = setup.post({"model": "gpt-4o", "messages": say(f"mode:status:{code}")})
    assert response.status_code == code
    assert response.json()["error"]["code"] == f"mock_{code}"
    if code == 429:
        assert response.headers["x-ratelimit-reset-requests"] == "1s"
    with pytest.raises(exception):
        setup.client().chat.completions.create(model="gpt-4o", messages=say(f"mode:status:{code}"))
    streamed = setup.post(
        {"model": "gpt-4o", "messages": say(f"mode:status:{code}"), "stream": True}
    )
    assert streamed.status_code == code
    assert streamed.json()["error"]["code"] == f"mock_{code}"


def test_unreachable_upstream_is_502(setup: Setup) -> None:
    from tests.servers import free_port

    dead = setup.admin.provider(f"http://127.0.0.1:{free_port()}/v1")
    setup.admin.model(dead["id"], "dead-model")
    response = setup.post({"model": "dead-model", "messages": say()})
    assert_openai_error(response, 502, "upstream_unreachable")
    assert PROVIDER_SECRET not in response.text
    assert "127.0.0.1" not in response.text


def test_slow_upstream_is_504(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gateway = make_gateway(gateway_read_timeout=0.3)
    with Admin(gateway.url) as admin:
        admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
        key = admin.key()["key"]
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": say("mode:slow:2")},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert_openai_error(response, 504, "upstream_timeout")


def test_stream_cut_midway_ends_with_an_error_event(setup: Setup) -> None:
    stream = setup.client().chat.completions.create(
        model="gpt-4o", messages=say("mode:cut"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello from"
    # Usage never arrived; what was streamed is still charged (estimated).
    wait_until(lambda: setup.tokens_used() > 0)


def test_client_disconnect_cancels_the_upstream_request(setup: Setup) -> None:
    with httpx.stream(
        "POST",
        setup.gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": say("mode:drip"), "stream": True},
        headers={"Authorization": f"Bearer {setup.key['key']}"},
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any("tick" in line for line in got)
        closed_at = time.time()
    record = wait_until(lambda: [r for r in setup.seen() if r["cancelled"]], timeout=5)[0]
    assert record["cancelled_at"] - closed_at < 1.0
    assert not record["completed"]
    wait_until(lambda: setup.tokens_used() > 0)


def test_models_list_for_a_key(setup: Setup) -> None:
    setup.admin.model(setup.provider["id"], "qwen-max", provider_model_name="qwen-max-latest")
    models = setup.client().models.list()
    listed = {m.id: m for m in models}
    assert set(listed) == {"gpt-4o", "qwen-max"}
    assert listed["gpt-4o"].owned_by == setup.provider["name"]
    assert listed["gpt-4o"].object == "model"
    with pytest.raises(openai.AuthenticationError):
        setup.client(key="sk-wrong").models.list()


def test_budget_with_coefficients(setup: Setup) -> None:
    """Budget 50, coefficients 2 and 3, usage 10/5 -> 35 per call: 2 calls allowed, 3rd refused."""
    setup.admin.model(
        setup.provider["id"], "weighted", input_token_coefficient=2, output_token_coefficient=3
    )
    key = setup.admin.key(token_budget=50)
    client = setup.client(key=key["key"])
    client.chat.completions.create(model="weighted", messages=say())
    setup.gateway.run(setup.gateway.runtime.store.ledger.flush(setup.gateway.runtime.store.engine))
    client.chat.completions.create(model="weighted", messages=say())
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="weighted", messages=say())
    assert refused.value.code == "insufficient_quota"
    assert len([r for r in setup.seen() if r["body"]["model"] == "weighted"]) == 2
    listed = {k["id"]: k for k in setup.admin.ok("GET", "/admin/keys")}
    assert listed[key["id"]]["tokens_used"] == 70
    # A raised budget applies to the next request; so does a reset.
    setup.admin.ok("PUT", f"/admin/keys/{key['id']}", json={"token_budget": 200})
    client.chat.completions.create(model="weighted", messages=say())
    setup.admin.ok("PUT", f"/admin/keys/{key['id']}", json={"token_budget": 35})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="weighted", messages=say())
    reset = setup.admin.ok("PUT", f"/admin/keys/{key['id']}", json={"reset_usage": True})
    assert reset["tokens_used"] == 0
    client.chat.completions.create(model="weighted", messages=say())
    assert setup.admin.tokens_used(key["id"]) == 35  # usage after a reset lands


def test_streamed_usage_counts_against_the_budget(setup: Setup) -> None:
    key = setup.admin.key(token_budget=15)
    client = setup.client(key=key["key"])
    list(client.chat.completions.create(model="gpt-4o", messages=say(), stream=True))
    wait_until(lambda: setup.admin.tokens_used(key["id"]) == 15)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=say(), stream=True)


def test_steady_state_proxying_makes_no_database_queries(setup: Setup) -> None:
    from sqlalchemy import event

    engine = setup.gateway.runtime.store.engine.sync_engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    setup.post({"model": "gpt-4o", "messages": say()})  # warm the upstream pool
    runtime = setup.gateway.runtime
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(50):
            assert setup.post({"model": "gpt-4o", "messages": say()}).status_code == 200
        with httpx.stream(
            "POST",
            setup.gateway.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": say(), "stream": True},
            headers={"Authorization": f"Bearer {setup.key['key']}"},
        ) as response:
            assert response.status_code == 200
            response.read()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # The only statements are the background batch writers' (usage flush, request-log insert
    # with its stats sums): no read and no per-request query on the request path.
    background = (
        "UPDATE user_keys SET tokens_used",
        "INSERT INTO request_logs",
        "INSERT INTO request_stats_",
    )
    assert [s for s in statements if not s.startswith(background)] == []
    assert runtime.log_writer.dropped == 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models"])
def test_a_missing_authorization_header_is_named_as_missing(setup: Setup, path: str) -> None:
    method = "GET" if path == "/v1/models" else "POST"
    body = {"model": "gpt-4o", "messages": say()}
    missing = httpx.request(method, setup.gateway.url + path, json=body)
    wrong = httpx.request(
        method, setup.gateway.url + path, json=body, headers={"Authorization": "Bearer sk-no"}
    )
    assert_openai_error(missing, 401, "invalid_api_key")
    assert_openai_error(wrong, 401, "invalid_api_key")
    assert "No API key provided" in missing.json()["error"]["message"]
    assert "Authorization header" in missing.json()["error"]["message"]
    assert "Incorrect API key" in wrong.json()["error"]["message"]
    assert setup.seen() == []
