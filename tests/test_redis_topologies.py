"""Redis Cluster and Redis Sentinel: two gateway processes sharing state through each, and a
primary killed under traffic."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.settings import ConfigError, Settings
from llm_gateway.state.bus import CHANNEL
from llm_gateway.state.redis_link import parse_redis_url
from tests.conftest import Admin
from tests.servers import (
    ADMIN_KEY,
    SECRET_KEY,
    GatewayProcess,
    Postgres,
    RedisClusterNodes,
    Upstream,
    redis_cli,
    run_redis_cluster,
    run_redis_sentinel,
    wait_until,
)

SAY = [{"role": "user", "content": "hi"}]
Pair = tuple[GatewayProcess, GatewayProcess]


# ---- REDIS_URL -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "topology", "hosts", "service", "db", "password"),
    [
        ("redis://h:6379/2", "server", (), "", 0, None),
        ("unix:///run/redis.sock", "server", (), "", 0, None),
        (
            "redis+sentinel://:s%40cret@a:26380,b,[::1]:26381/gateway/3",
            "sentinel",
            (("a", 26380), ("b", 26379), ("::1", 26381)),
            "gateway",
            3,
            "s@cret",
        ),
        ("rediss+sentinel://a/mymaster", "sentinel", (("a", 26379),), "mymaster", 0, None),
        ("redis+cluster://a:7000,b:7001", "cluster", (("a", 7000), ("b", 7001)), "", 0, None),
        ("rediss+cluster://u:pw@a/0", "cluster", (("a", 6379),), "", 0, "pw"),
    ],
)
def test_redis_urls_of_every_topology_are_read(
    url: str,
    topology: str,
    hosts: tuple[tuple[str, int], ...],
    service: str,
    db: int,
    password: str | None,
) -> None:
    target = parse_redis_url(url)
    assert (target.topology, target.hosts, target.service, target.db) == (
        topology,
        hosts,
        service,
        db,
    )
    assert target.password == password
    assert target.tls == url.startswith("rediss")
    assert "cret" not in repr(target)


@pytest.mark.parametrize(
    "url",
    [
        "memcached://h:1",
        "h:6379",
        "redis+sentinel://a:26379",  # no service
        "redis+sentinel://a:26379/gateway/x",
        "redis+sentinel://a:26379/gateway?timeout=1",
        "redis+cluster://a:7000/1",
        "redis+cluster://a:port",
        "redis+cluster://:pw@",
    ],
)
def test_an_invalid_redis_url_stops_the_start(url: str) -> None:
    settings = Settings.load(
        database_url="postgresql://u@db/gw",
        admin_key=ADMIN_KEY,
        gateway_secret_key=SECRET_KEY,
        redis_url=url,
    )
    with pytest.raises(ConfigError, match="invalid REDIS_URL") as refused:
        settings.resolve()
    assert "pw" not in str(refused.value)


# ---- helpers ---------------------------------------------------------------------------------
def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_USAGE_FLUSH_SECONDS": "0.2",
        "GATEWAY_AUTH_FAILURE_LIMIT": "0",  # these tests poll for 401s
    }


@contextlib.contextmanager
def _two_gateways(postgres: Postgres, redis_url: str, folder: Path) -> Iterator[Pair]:
    database = postgres.create_database()
    env = _env(postgres.dsn(database), redis_url)
    started: list[GatewayProcess] = []
    try:
        started.append(GatewayProcess(env, folder).start())
        started.append(GatewayProcess(env, folder).start())
        yield started[0], started[1]
    finally:
        for gateway in started:
            gateway.stop()
        postgres.drop_database(database)


def _call(gateway: GatewayProcess, key: str, model: str = "gpt-4o") -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": SAY},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _status(gateway: GatewayProcess, key: str) -> int:
    return _call(gateway, key).status_code


def _propagation(check: Any) -> float:
    started = time.monotonic()
    wait_until(check, timeout=5, interval=0.005)
    return time.monotonic() - started


def _route(admin: Admin, upstream: Upstream) -> None:
    admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")


def _revocation_reaches(other: GatewayProcess, admin: Admin) -> float:
    """Seconds until a key revoked through `admin` is refused by the `other` process."""
    created = admin.key()
    _propagation(lambda: _status(other, created["key"]) == 200)
    admin.ok("DELETE", f"/admin/keys/{created['id']}", 204)
    return _propagation(lambda: _status(other, created["key"]) == 401)


def _alternate(pair: Pair, key: str, calls: int) -> list[int]:
    return [_status(pair[turn % 2], key) for turn in range(calls)]


# ---- Redis Cluster ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with run_redis_cluster() as nodes:
        yield nodes


@pytest.fixture(scope="module")
def cluster_pair(
    postgres_server: Postgres, cluster: RedisClusterNodes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    with _two_gateways(postgres_server, cluster.url, tmp_path_factory.mktemp("cluster")) as pair:
        yield pair


@pytest.fixture(scope="module")
def routed(cluster_pair: Pair, upstream: Upstream) -> Pair:
    """The pair, with `gpt-4o` served by the mock upstream."""
    with Admin(cluster_pair[0].url) as admin:
        _route(admin, upstream)
    return cluster_pair


def test_on_a_cluster_a_revoked_key_is_refused_everywhere_within_a_second(
    routed: Pair, cluster: RedisClusterNodes
) -> None:
    first, second = routed
    with Admin(first.url) as admin:
        assert _revocation_reaches(second, admin) < 1.0
    # The notices travel by sharded pub/sub: both processes listen on the channel's shard.
    listeners = [
        int(node.command("PUBSUB", "SHARDNUMSUB", CHANNEL).split()[1]) for node in cluster.nodes
    ]
    assert sorted(listeners) == [0, 0, 2], listeners


def test_on_a_cluster_usage_from_both_processes_counts_against_one_budget(
    routed: Pair,
) -> None:
    first, second = routed
    with Admin(first.url) as admin:
        created = admin.key(token_budget=100)  # 15 per call: 7 calls reach it
        _propagation(lambda: _status(second, created["key"]) == 200)
        # Near its end the budget goes through the reservation script, on the key's shard.
        statuses = _alternate(routed, created["key"], 9)
        assert statuses == [200] * 6 + [429] * 3, statuses
        wait_until(lambda: admin.tokens_used(created["id"]) == 105)


def test_on_a_cluster_a_rate_limit_holds_across_both_processes(
    routed: Pair,
) -> None:
    first, second = routed
    with Admin(first.url) as admin:
        created = admin.key(rpm_limit=5)
        _propagation(lambda: _status(second, created["key"]) == 200)
        statuses = _alternate(routed, created["key"], 8)
    assert statuses == [200] * 4 + [429] * 4, statuses
    refused = _call(first, created["key"])
    assert refused.headers["x-ratelimit-limit-requests"] == "5"


def test_on_a_cluster_a_cooldown_found_by_one_process_is_honoured_by_the_other(
    cluster_pair: Pair, upstream: Upstream
) -> None:
    first, second = cluster_pair
    run = uuid.uuid4().hex[:8]
    with Admin(first.url) as admin:
        dead = admin.provider(f"{upstream.url}/behave/id={run}-dead,status=401/v1")
        good = admin.provider(f"{upstream.url}/behave/id={run}-good/v1")
        deployments = [
            {"provider_id": dead["id"], "priority": 0},
            {"provider_id": good["id"], "priority": 1},
        ]
        admin.ok("POST", "/admin/models", 201, json={"name": "cooled", "deployments": deployments})
        key = admin.key()["key"]
        _propagation(lambda: "cooled" in _model_names(second, key))
        assert _call(first, key, "cooled").headers["x-gateway-attempts"] == "2"
        found = time.monotonic()
        wait_until(
            lambda: _deployment_status(second, dead["id"]) == "cooling", timeout=5, interval=0.005
        )
        assert time.monotonic() - found < 1.0
        for _ in range(3):
            assert _call(second, key, "cooled").headers["x-gateway-attempts"] == "1"
        # The other process never asked the dead deployment.
        assert len(upstream.requests(f"{upstream.url}/behave/id={run}-dead")) == 1


def _failures(pair: Pair) -> str:
    """What the gateways logged beyond their successful calls (for a failed assertion)."""
    lines = (line for gateway in pair for line in gateway.log().splitlines())
    return "\n".join(line for line in lines if " 200 " not in line)[-6000:]


def _model_names(gateway: GatewayProcess, key: str) -> list[str]:
    listed = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    return [model["id"] for model in listed.json()["data"]] if listed.status_code == 200 else []


def _deployment_status(gateway: GatewayProcess, provider_id: str) -> str:
    with Admin(gateway.url) as admin:
        for model in admin.ok("GET", "/admin/models"):
            for deployment in model["deployments"]:
                if deployment["provider_id"] == provider_id:
                    return str(deployment["status"])
    return "missing"


# ---- Redis Sentinel --------------------------------------------------------------------------
def test_with_sentinel_killing_the_primary_under_traffic_loses_no_request(
    postgres_server: Postgres, upstream: Upstream, tmp_path: Path
) -> None:
    with (
        run_redis_sentinel() as sentinels,
        _two_gateways(postgres_server, sentinels.url, tmp_path) as pair,
        Admin(pair[0].url) as admin,
    ):
        second = pair[1]
        _route(admin, upstream)
        busy = admin.key(rpm_limit=1_000_000)  # every call asks Redis (the limit script)
        _propagation(lambda: _status(second, busy["key"]) == 200)
        statuses: list[int] = []
        stop = threading.Event()

        def traffic(gateway: GatewayProcess) -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    answer = client.post(
                        gateway.url + "/v1/chat/completions",
                        json={"model": "gpt-4o", "messages": SAY},
                        headers={"Authorization": f"Bearer {busy['key']}"},
                    )
                    statuses.append(answer.status_code)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(traffic, gateway) for gateway in pair]
            time.sleep(0.5)
            sentinels.primary.stop()  # SIGKILL
            killed = time.monotonic()
            wait_until(lambda: sentinels.master_port() == sentinels.replica.port, timeout=20)
            promoted = time.monotonic()
            for gateway in pair:
                wait_until(lambda g=gateway: _ready_with_redis(g), timeout=10)
            rejoined = time.monotonic()
            # Shared state works on the new primary: a revocation reaches the other process.
            revoked = _revocation_reaches(second, admin)
            time.sleep(0.5)
            stop.set()
            for run in runs:
                run.result(timeout=30)
        rate = len(statuses) / (time.monotonic() - started)
        assert set(statuses) == {200}, (sorted(set(statuses)), _failures(pair))
        assert revoked < 1.0, revoked
        assert rejoined - promoted < 5.0, (promoted - killed, rejoined - promoted)
        # The database has every answered call, once.
        calls = len(statuses) + 1
        wait_until(lambda: admin.tokens_used(busy["id"]) == 15 * calls)
        # Rate limits are shared through Redis again, on both processes.
        for gateway in pair:
            assert _call(gateway, busy["key"]).status_code == 200
            assert _metric(gateway, "llm_gateway_rate_limit_local_share") == 0
        # Budgets and their reservations work on the new primary.
        budgeted = admin.key(token_budget=100)
        _propagation(lambda: _status(second, budgeted["key"]) == 200)
        assert _alternate(pair, budgeted["key"], 9) == [200] * 6 + [429] * 3
        # The key's shared usage counter carries on on the new primary, off the database by at
        # most the batches in flight at the kill (one 50 ms sync per process, lost or re-sent).
        port = sentinels.replica.port
        found = redis_cli(port, "--scan", "--pattern", f"llm-gateway:usage:{{{busy['id']}}}:*")
        shared = int(redis_cli(port, "GET", found.split()[0]))
        assert abs(shared - 15 * (calls + 2)) <= 2 * 15 * rate * 0.05, (shared, calls, rate)


def _metric(gateway: GatewayProcess, name: str) -> float:
    for line in httpx.get(gateway.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _ready_with_redis(gateway: GatewayProcess) -> bool:
    return bool(httpx.get(gateway.url + "/ready", timeout=2).json()["checks"]["redis"])
