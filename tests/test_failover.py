"""Several deployments per model, end to end: the openai SDK -> gateway -> real upstreams.

Each deployment is a provider whose base URL tells the mock upstream how to behave
(`/behave/id=<label>,status=503/...`), so one request can meet a failing deployment and then a
working one, and the mock's records say which deployments were asked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Admin, GatewayFactory
from tests.servers import (
    ADMIN_KEY,
    SECRET_KEY,
    GatewayProcess,
    Postgres,
    Redis,
    ThreadedGateway,
    Upstream,
    free_port,
    wait_until,
)

SAY = [{"role": "user", "content": "Hello!"}]
STREAMED_TEXT = "Hello from the mock!"


@dataclass
class Fleet:
    """A gateway and helpers to build deployments on the mock upstream."""

    gateway: ThreadedGateway | GatewayProcess
    admin: Admin
    upstream: Upstream
    key: dict[str, Any]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    clients: list[openai.OpenAI] = field(default_factory=list)

    def provider(self, label: str, behaviour: str = "") -> dict[str, Any]:
        spec = f"id={self.run}-{label}" + (f",{behaviour}" if behaviour else "")
        return self.admin.provider(f"{self.upstream.url}/behave/{spec}/v1", name=label + self.run)

    def model(self, name: str, *deployments: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"name": name, "deployments": list(deployments), **fields}
        return dict(self.admin.ok("POST", "/admin/models", 201, json=body))

    def received(self, label: str) -> list[dict[str, Any]]:
        """The requests the deployment labelled `label` has received."""
        prefix = f"/behave/id={self.run}-{label}"
        found = httpx.get(f"{self.upstream.url}/_requests", params={"prefix": prefix}).json()
        return [
            record
            for record in found
            if record["path"].startswith(prefix + ",") or record["path"].startswith(prefix + "/")
        ]

    def asked(self, label: str) -> int:
        """How many requests the deployment labelled `label` has received."""
        return len(self.received(label))

    def client(self) -> openai.OpenAI:
        client = openai.OpenAI(
            api_key=self.key["key"], base_url=self.gateway.url + "/v1", max_retries=0
        )
        self.clients.append(client)
        return client

    def post(self, model: str, stream: bool = False) -> httpx.Response:
        return httpx.post(
            self.gateway.url + "/v1/chat/completions",
            json={"model": model, "messages": SAY, "stream": stream},
            headers={"Authorization": f"Bearer {self.key['key']}"},
            timeout=30,
        )

    def last_log(self) -> dict[str, Any]:
        def latest() -> dict[str, Any] | None:
            rows = self.admin.ok("GET", "/admin/logs", params={"per_page": 1})["data"]
            return rows[0] if rows else None

        row = wait_until(latest)
        return dict(self.admin.ok("GET", f"/admin/logs/{row['id']}"))


def at(provider: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"provider_id": provider["id"], **fields}


@pytest.fixture
def fleet(make_gateway: GatewayFactory, upstream: Upstream) -> Iterator[Fleet]:
    gateway = make_gateway(gateway_cooldown_seconds=1.0, gateway_first_byte_timeout=1.0)
    with Admin(gateway.url) as admin:
        prepared = Fleet(gateway, admin, upstream, admin.key())
        yield prepared
        for client in prepared.clients:
            client.close()


def test_weights_are_honoured_over_a_few_hundred_requests(fleet: Fleet) -> None:
    light, heavy = fleet.provider("light"), fleet.provider("heavy")
    fleet.model("weighted", at(light, weight=1), at(heavy, weight=3))
    client = fleet.client()
    for _ in range(300):
        client.chat.completions.create(model="weighted", messages=SAY)  # type: ignore[arg-type]
    share = fleet.asked("heavy") / 300
    assert fleet.asked("light") + fleet.asked("heavy") == 300
    assert 0.65 < share < 0.85, share  # 0.75 expected; this band fails about once in 10^5


def test_priorities_send_everything_to_the_first_group(fleet: Fleet) -> None:
    main, backup = fleet.provider("main"), fleet.provider("backup")
    model = fleet.model("prio", at(backup, priority=1), at(main, priority=0))
    assert model["provider_name"] == main["name"]  # the first deployment: lowest priority
    client = fleet.client()
    for _ in range(20):
        client.chat.completions.create(model="prio", messages=SAY)  # type: ignore[arg-type]
    assert (fleet.asked("main"), fleet.asked("backup")) == (20, 0)


FAILING = [
    "status=408",
    "status=429",
    "status=500",
    "status=502",
    "status=503",
    "status=504",
    "status=529",
    "status=401",
    "status=403",
    "status=404",
    "close",
]


def test_every_failure_of_the_rule_list_fails_over_invisibly(fleet: Fleet) -> None:
    good = fleet.provider("good")
    dead_port = free_port()  # nothing listens here: connection refused
    dead = fleet.admin.provider(f"http://127.0.0.1:{dead_port}/v1", name="dead" + fleet.run)
    cases = [
        (behaviour, fleet.provider(f"bad{i}", behaviour)) for i, behaviour in enumerate(FAILING)
    ]
    cases.append(("refused", dead))
    client = fleet.client()
    for index, (behaviour, bad) in enumerate(cases):
        name = f"fo-{index}"
        fleet.model(name, at(bad, priority=0), at(good, priority=1))
        raw = client.chat.completions.with_raw_response.create(model=name, messages=SAY)  # type: ignore[arg-type]
        answer = raw.parse()
        assert answer.choices[0].message.content == "Hello!", behaviour
        assert raw.headers["x-gateway-attempts"] == "2", behaviour
    for index, behaviour in enumerate(FAILING):
        assert fleet.asked(f"bad{index}") == 1, behaviour
    assert fleet.asked("good") == len(cases)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_client_errors_are_returned_as_they_are_and_never_retried(
    fleet: Fleet, status: int
) -> None:
    bad, good = fleet.provider("bad", f"status={status}"), fleet.provider("good")
    fleet.model("m", at(bad, priority=0), at(good, priority=1))
    response = fleet.post("m")
    assert response.status_code == status
    assert response.json()["error"]["code"] == f"mock_{status}"
    assert response.headers["x-gateway-attempts"] == "1"
    assert (fleet.asked("bad"), fleet.asked("good")) == (1, 0)


@pytest.mark.parametrize("behaviour", ["status=503", "close", "first_event_delay=3", "cut_after=0"])
def test_a_stream_failing_before_its_first_event_arrives_whole_from_the_next(
    fleet: Fleet, behaviour: str
) -> None:
    bad, good = fleet.provider("bad", behaviour), fleet.provider("good")
    fleet.model("s", at(bad, priority=0), at(good, priority=1))
    stream = fleet.client().chat.completions.create(model="s", messages=SAY, stream=True)  # type: ignore[arg-type]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == STREAMED_TEXT  # complete, and once
    assert (fleet.asked("bad"), fleet.asked("good")) == (1, 1)
    row = fleet.last_log()
    assert row["attempts"] == 2
    assert row["status_code"] == 200


def test_a_stream_cut_after_its_first_event_is_not_retried(fleet: Fleet) -> None:
    cut, good = fleet.provider("cut", "cut_after=2"), fleet.provider("good")
    fleet.model("cut", at(cut, priority=0), at(good, priority=1))
    response = fleet.post("cut", stream=True)
    assert response.status_code == 200
    assert response.headers["x-gateway-attempts"] == "1"
    events = [line for line in response.text.split("\n\n") if line]
    assert '"error"' in events[-1]  # the stream ends with an error event
    assert (fleet.asked("cut"), fleet.asked("good")) == (1, 0)


def test_attempts_never_exceed_the_budget(fleet: Fleet) -> None:
    failing = [fleet.provider(f"f{i}", "status=503") for i in range(5)]
    fleet.model("doomed", *(at(p) for p in failing))
    response = fleet.post("doomed")
    assert response.status_code == 503  # the upstream's own answer, passed through
    assert response.json()["error"]["code"] == "mock_503"
    assert response.headers["x-gateway-attempts"] == "3"
    assert sum(fleet.asked(f"f{i}") for i in range(5)) == 3
    row = fleet.last_log()
    assert row["attempts"] == 3
    assert [attempt["status"] for attempt in row["failed_attempts"]] == [503, 503, 503]
    assert {attempt["provider_name"] for attempt in row["failed_attempts"]} <= {
        p["name"] for p in failing
    }


@pytest.mark.parametrize("header", ["retry_after=1", "retry_after_ms=1000", "retry_after_date=2"])
def test_the_same_deployment_is_retried_after_its_retry_after(fleet: Fleet, header: str) -> None:
    only = fleet.provider("only", f"status=429,{header},fail_first=1")
    fleet.model("ra", at(only))
    started = time.monotonic()
    response = fleet.post("ra")
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["x-gateway-attempts"] == "2"
    assert waited >= 0.9  # it waited for the upstream's Retry-After
    assert fleet.asked("only") == 2


def test_a_retry_after_beyond_the_bound_ends_with_the_upstreams_answer(fleet: Fleet) -> None:
    only = fleet.provider("only", "status=429,retry_after=30")
    fleet.model("busy", at(only))
    started = time.monotonic()
    response = fleet.post("busy")
    assert time.monotonic() - started < 2
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert response.headers["x-gateway-attempts"] == "1"


def test_a_cooled_deployment_gets_no_traffic_until_its_cooldown_ends_then_one_probe(
    fleet: Fleet,
) -> None:
    flaky, good = fleet.provider("flaky", "status=503"), fleet.provider("good")
    model = fleet.model("cool", at(flaky, weight=1000), at(good, weight=1))
    client = fleet.client()
    for _ in range(3):  # three consecutive failures: cooldown (1 s in this gateway)
        client.chat.completions.create(model="cool", messages=SAY)  # type: ignore[arg-type]
    assert fleet.asked("flaky") == 3
    info = fleet.admin.ok("GET", "/admin/models")
    [deployment] = [
        d
        for m in info
        if m["id"] == model["id"]
        for d in m["deployments"]
        if d["provider_id"] == flaky["id"]
    ]
    assert deployment["status"] == "cooling"
    assert deployment["last_error"].startswith("HTTP 503")
    assert deployment["cooling_until"] is not None
    for _ in range(10):
        client.chat.completions.create(model="cool", messages=SAY)  # type: ignore[arg-type]
    assert fleet.asked("flaky") == 3  # no traffic while cooling
    wait_until(
        lambda: all(
            d["status"] == "healthy"
            for m in fleet.admin.ok("GET", "/admin/models")
            if m["id"] == model["id"]
            for d in m["deployments"]
        ),
        timeout=5,
    )
    for _ in range(5):
        client.chat.completions.create(model="cool", messages=SAY)  # type: ignore[arg-type]
    assert fleet.asked("flaky") == 4  # one probe, which failed: cooling again, for 2 s
    metrics = httpx.get(fleet.gateway.url + "/metrics").text
    assert f'deployment="{deployment["id"]}"' in metrics
    assert (
        'llm_gateway_failed_attempts_total{provider="' + flaky["name"] + '",reason="503"}'
        in metrics
    )


def test_all_cooling_still_asks_one_upstream(fleet: Fleet) -> None:
    revoked = fleet.provider("revoked", "status=401")
    fleet.model("lonely", at(revoked))
    first, second = fleet.post("lonely"), fleet.post("lonely")
    assert (first.status_code, second.status_code) == (401, 401)
    assert second.headers["x-gateway-attempts"] == "1"
    assert fleet.asked("revoked") == 2  # cooling after the first, yet asked again


def test_fallbacks_in_order_and_usage_charged_once_at_the_served_models_rate(
    fleet: Fleet,
) -> None:
    down, also_down, up = (
        fleet.provider("down", "status=500"),
        fleet.provider("down2", "status=502"),
        fleet.provider("up"),
    )
    fleet.model("third", at(up), output_token_coefficient=3.0)
    fleet.model("second", at(also_down))
    fleet.model("first", at(down), fallbacks=["second", "third"])
    answer = fleet.client().chat.completions.create(model="first", messages=SAY)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Hello!"
    assert (fleet.asked("down"), fleet.asked("down2"), fleet.asked("up")) == (1, 1, 1)
    # Each model's deployment is asked for that model, not for the one the client named.
    sent = [fleet.received(label)[0]["body"]["model"] for label in ("down", "down2", "up")]
    assert sent == ["first", "second", "third"]
    row = fleet.last_log()
    assert (row["model_requested"], row["model_served"]) == ("first", "third")
    assert row["provider_id"] == up["id"]
    assert row["attempts"] == 3
    assert [a["provider_name"] for a in row["failed_attempts"]] == [down["name"], also_down["name"]]
    assert [a["status"] for a in row["failed_attempts"]] == [500, 502]
    expected = 10 + 5 * 3  # the mock's usage, at the serving model's coefficients
    wait_until(lambda: fleet.admin.tokens_used(fleet.key["id"]) == expected)
    assert row["weighted_total_tokens"] == expected


def test_admin_contract_for_deployments_and_fallbacks(fleet: Fleet) -> None:
    a, b = fleet.provider("a"), fleet.provider("b")
    admin = fleet.admin
    both = {"name": "x", "provider_id": a["id"], "deployments": [at(b)]}
    assert admin.request("POST", "/admin/models", json=both).status_code == 400
    assert admin.request("POST", "/admin/models", json={"name": "x"}).status_code == 400
    too_many = {"name": "x", "deployments": [at(a, weight=1001)]}
    assert admin.request("POST", "/admin/models", json=too_many).status_code == 422 or (
        admin.request("POST", "/admin/models", json=too_many).status_code == 400
    )
    unknown = {"name": "x", "deployments": [at(a)], "fallbacks": ["nope"]}
    assert admin.request("POST", "/admin/models", json=unknown).status_code == 400
    itself = {"name": "x", "deployments": [at(a)], "fallbacks": ["x"]}
    assert admin.request("POST", "/admin/models", json=itself).status_code == 400
    target = fleet.model("target", at(a))
    model = fleet.model(
        "multi",
        at(a, provider_model_name="up-a", weight=3),
        at(b, priority=2),
        fallbacks=["target"],
    )
    assert [d["provider_model_name"] for d in model["deployments"]] == ["up-a", "multi"]
    assert model["fallbacks"] == ["target"]
    first_id = model["deployments"][0]["id"]
    # Replacing the list keeps the id of a deployment that stays (and so its health).
    updated = admin.ok(
        "PUT",
        f"/admin/models/{model['id']}",
        json={"deployments": [at(a, provider_model_name="up-a", weight=5)], "fallbacks": []},
    )
    assert [(d["id"], d["weight"]) for d in updated["deployments"]] == [(first_id, 5)]
    assert updated["fallbacks"] == []
    # The seed's form still works on update: one deployment on another provider.
    seed = admin.ok("PUT", f"/admin/models/{model['id']}", json={"provider_id": b["id"]})
    assert [d["provider_id"] for d in seed["deployments"]] == [b["id"]]
    assert seed["provider_model_name"] == "up-a"  # kept, as a partial update does
    admin.ok("PUT", f"/admin/models/{model['id']}", json={"fallbacks": ["target"]})
    assert admin.request("DELETE", f"/admin/models/{target['id']}").status_code == 409
    assert admin.request("DELETE", f"/admin/providers/{b['id']}").status_code == 409
    admin.ok("DELETE", f"/admin/models/{model['id']}", 204)
    admin.ok("DELETE", f"/admin/models/{target['id']}", 204)


def test_a_cooldown_found_by_one_process_is_honoured_by_every_process_within_a_second(
    postgres_server: Postgres, redis_server: Redis, upstream: Upstream, tmp_path: Path
) -> None:
    database = postgres_server.create_database()
    env = {
        "DATABASE_URL": postgres_server.dsn(database),
        "REDIS_URL": redis_server.url,
        "ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
    }
    first = GatewayProcess(env, tmp_path).start()
    second = GatewayProcess(env, tmp_path).start()
    late: GatewayProcess | None = None
    try:
        with Admin(first.url) as admin:
            fleet = Fleet(first, admin, upstream, admin.key())
            revoked, good = fleet.provider("revoked", "status=401"), fleet.provider("good")
            model = fleet.model("shared", at(revoked, priority=0), at(good, priority=1))
            key = fleet.key["key"]
            wait_until(lambda: "shared" in _model_names(second, key))  # the route reached it
            answer = _chat(first, key)  # the first process finds the deployment dead
            assert fleet.asked("revoked") == 1
            assert answer.headers["x-gateway-attempts"] == "2"
            started = time.monotonic()
            wait_until(
                lambda: _status_of(second, model["id"], revoked["id"]) == "cooling",
                timeout=5,
                interval=0.005,
            )
            assert time.monotonic() - started < 1.0
            for _ in range(5):
                assert _chat(second, key).headers["x-gateway-attempts"] == "1"
            assert fleet.asked("revoked") == 1  # the second process never asked it
            late = GatewayProcess(env, tmp_path).start()  # reads the shared cooldowns at start
            wait_until(lambda: _status_of(late, model["id"], revoked["id"]) == "cooling", timeout=5)
    finally:
        for process in (first, second, late):
            if process is not None:
                process.stop()
        postgres_server.drop_database(database)


def _chat(gateway: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "shared", "messages": SAY},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _status_of(gateway: GatewayProcess, model_id: str, provider_id: str) -> str:
    with Admin(gateway.url) as admin:
        for model in admin.ok("GET", "/admin/models"):
            if model["id"] == model_id:
                for deployment in model["deployments"]:
                    if deployment["provider_id"] == provider_id:
                        return str(deployment["status"])
    return "missing"


def _model_names(gateway: GatewayProcess, key: str) -> list[str]:
    listed = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    return [model["id"] for model in listed.json()["data"]]
