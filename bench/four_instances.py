"""Four gateway instances behind nginx, on PostgreSQL and a Redis Cluster, under mixed traffic.

    python bench/four_instances.py [--seconds 20] [--connections 32]

Needs nginx and taskset; loopback only; the traffic stops after `--seconds`. It starts
PostgreSQL, a Redis Cluster of three masters, nginx as the mock upstream (static JSON and SSE
answers, and a deployment that always answers 503), four `llm-gateway serve` processes and nginx
balancing them round-robin, and stops them all at the end. Then it sends chat and streamed chat
through the balancer over several keys: free ones, rate-limited ones (a limit holds across the
four only if they share it), budgeted ones that run out, one that is revoked mid-run, and a model
whose first deployment always fails. Meanwhile it asks every instance directly how long each
change takes to reach it: a revoked key refused, an exhausted budget refused, a failing
deployment cooled. After the traffic every instance is stopped gracefully (the drain), and the
request-log rows are counted against the answers received (every authenticated request leaves
one row; a refused key leaves none). Prints a table; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import (
    GatewayProcess,
    Postgres,
    RedisClusterNodes,
    run_postgres,
    run_redis_cluster,
    wait_until,
)

from bench.admin import admin_client
from bench.bodies import UPSTREAM_MODEL, chat_request
from bench.servers import ADMIN_KEY, SECRET, Harness, harness, mock_block, nginx, tree_cpu

INSTANCES = 4
CHAT = "/v1/chat/completions"
REVOKE_AT = 1 / 3  # of the run
BOUND_SECONDS = 1.0  # every change on every instance within this
PROBE_SECONDS = 10.0  # a probe gives up after this (and the check fails)
# What each request of the mix is, and how often: (name, key group, model, stream, weight).
MIX = [
    ("chat", "free", "gpt", False, 40),
    ("stream", "free", "gpt", True, 20),
    ("limited", "limited", "gpt", False, 10),
    ("budget", "budget", "gpt", False, 15),
    ("revoked", "victim", "gpt", False, 5),
    ("failing", "free", "flaky", False, 10),
]
RPM_LIMIT = 300
BUDGETS = [2_000, 6_000, 20_000]  # weighted tokens: a JSON answer is 21, a stream 32


@dataclass
class Keys:
    groups: dict[str, list[str]]
    ids: dict[str, str]  # plaintext -> id
    budget: dict[str, int]  # plaintext -> budget


@dataclass
class Run:
    """What the traffic and the probes saw."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    answered: int = 0  # answers other than 401 (each one a request-log row)
    per_key_ok: Counter[str] = field(default_factory=Counter)
    budget_refused: dict[str, float] = field(default_factory=dict)  # key -> first refusal
    budget_lag: dict[str, float] = field(default_factory=dict)  # key -> until all 4 refused
    revoked_at: float = 0.0
    revoke_status: int = 0  # of the admin call that revokes
    revoke_lag: float = 0.0
    late_victims: int = 0  # answers to the revoked key sent more than the bound after
    cooled: list[float] = field(default_factory=list)  # when each instance showed the cooldown
    probes: set[asyncio.Task[None]] = field(default_factory=set)


# ---- the servers ---------------------------------------------------------------------------
def balancer_block(ports: list[int]) -> str:
    servers = "".join(f"    server 127.0.0.1:{port};\n" for port in ports)
    return f"""
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
  upstream gateways {{
{servers}    keepalive 64;
"""


def upstream_block(folder: Path) -> str:
    failing = '{"error":{"message":"down","type":"server_error","code":null,"param":null}}'
    return mock_block(folder) + (
        f"    location /fail/ {{ default_type application/json; return 503 '{failing}'; }}\n"
    )


@contextlib.contextmanager
def gateways(env: dict[str, str], folder: Path) -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    try:
        for _ in range(INSTANCES):  # one after another: migrations run once, under a lock
            started.append(GatewayProcess(env, folder).start())
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def configure(url: str, mock: str) -> Keys:
    with admin_client(url) as admin:

        def provider(name: str, base_url: str) -> str:
            body = {"name": name, "kind": "openai", "api_key": "sk-up", "base_url": base_url}
            created = admin.post("/admin/providers", json=body)
            created.raise_for_status()
            return str(created.json()["id"])

        def key(**fields: Any) -> dict[str, Any]:
            created = admin.post(
                "/admin/keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", **fields}
            )
            created.raise_for_status()
            return dict(created.json())

        good = provider("good", f"{mock}/json/v1")
        streaming = provider("good-sse", f"{mock}/sse/v1")
        dead = provider("dead", f"{mock}/fail/v1")
        fallback = [{"provider_id": dead, "priority": 0}, {"provider_id": good, "priority": 1}]
        models: dict[str, dict[str, Any]] = {
            "gpt": {"provider_id": good, "provider_model_name": UPSTREAM_MODEL},
            "gpt-sse": {"provider_id": streaming, "provider_model_name": UPSTREAM_MODEL},
            "flaky": {"deployments": fallback},
        }
        for name, body in models.items():
            admin.post("/admin/models", json={"name": name, **body}).raise_for_status()
        created: dict[str, list[dict[str, Any]]] = {
            "free": [key() for _ in range(4)],
            "limited": [key(rpm_limit=RPM_LIMIT) for _ in range(2)],
            "budget": [key(token_budget=budget) for budget in BUDGETS],
            "victim": [key()],
        }
    return Keys(
        {group: [k["key"] for k in keys] for group, keys in created.items()},
        {k["key"]: k["id"] for keys in created.values() for k in keys},
        {k["key"]: int(k["token_budget"]) for k in created["budget"]},
    )


# ---- the traffic ---------------------------------------------------------------------------
async def traffic(
    session: aiohttp.ClientSession,
    url: str,
    keys: Keys,
    deadline: float,
    index: int,
    run: Run,
    instances: list[str],
) -> None:
    rng = random.Random(index)
    kinds = [entry[:4] for entry in MIX]
    weights = [entry[4] for entry in MIX]
    while time.monotonic() < deadline:
        name, group, model, stream = rng.choices(kinds, weights)[0]
        key = rng.choice(keys.groups[group])
        sent = time.monotonic()
        body = chat_request("gpt-sse" if stream else model, stream)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with session.post(url + CHAT, data=body, headers=headers) as answer:
            payload = await answer.read()
            status = answer.status
        run.statuses[(name, status)] += 1
        if status != 401:
            run.answered += 1
        if status == 200:
            run.per_key_ok[key] += 1
            if name == "revoked" and run.revoked_at and sent > run.revoked_at + BOUND_SECONDS:
                run.late_victims += 1
        if status == 429 and b"insufficient_quota" in payload and key not in run.budget_refused:
            run.budget_refused[key] = time.monotonic()
            task = asyncio.create_task(budget_probe(session, instances, key, run))
            run.probes.add(task)


async def budget_probe(
    session: aiohttp.ClientSession, instances: list[str], key: str, run: Run
) -> None:
    """Ask every instance directly until each refuses the exhausted key."""
    body = chat_request("gpt", False)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    give_up = time.monotonic() + PROBE_SECONDS
    for instance in instances:
        while time.monotonic() < give_up:
            async with session.post(instance + CHAT, data=body, headers=headers) as answer:
                payload = await answer.read()
                status = answer.status
            run.statuses[("budget probe", status)] += 1
            run.answered += 1
            if status == 200:
                run.per_key_ok[key] += 1
            if status == 429 and b"insufficient_quota" in payload:
                break
            await asyncio.sleep(0.005)
    run.budget_lag[key] = time.monotonic() - run.budget_refused[key]


async def revoke(
    session: aiohttp.ClientSession, instances: list[str], keys: Keys, at: float, run: Run
) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    victim = keys.groups["victim"][0]
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    target = f"{instances[0]}/admin/keys/{keys.ids[victim]}"
    async with session.delete(target, headers=admin) as answer:
        run.revoke_status = answer.status
    run.revoked_at = time.monotonic()
    for instance in instances:
        while time.monotonic() < run.revoked_at + PROBE_SECONDS:
            listing = f"{instance}/v1/models"
            async with session.get(listing, headers={"Authorization": f"Bearer {victim}"}) as r:
                if r.status == 401:
                    break
            await asyncio.sleep(0.005)
    run.revoke_lag = time.monotonic() - run.revoked_at


async def watch_cooldown(
    session: aiohttp.ClientSession, instances: list[str], deadline: float, run: Run
) -> None:
    """Poll every instance's view of the failing deployment (all at once, every 20 ms) until
    all four have it cooling."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    seen: dict[str, float] = {}

    async def cooling(instance: str) -> None:
        async with session.get(f"{instance}/admin/models", headers=admin) as answer:
            models = await answer.json()
        flaky = next(m for m in models if m["name"] == "flaky")
        if any(d["status"] == "cooling" for d in flaky["deployments"]):
            seen.setdefault(instance, time.monotonic())

    while len(seen) < len(instances) and time.monotonic() < deadline:
        await asyncio.gather(*(cooling(i) for i in instances if i not in seen))
        await asyncio.sleep(0.02)
    run.cooled = sorted(seen.values())


async def drive(
    balancer: str, instances: list[str], keys: Keys, seconds: float, connections: int
) -> Run:
    run = Run()
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections + 16)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        watchers = [
            asyncio.create_task(
                revoke(session, instances, keys, time.monotonic() + seconds * REVOKE_AT, run)
            ),
            asyncio.create_task(watch_cooldown(session, instances, deadline, run)),
        ]
        await asyncio.gather(
            *(
                traffic(session, balancer, keys, deadline, i, run, instances)
                for i in range(connections)
            )
        )
        await asyncio.gather(*watchers, *run.probes)
    return run


# ---- the readings --------------------------------------------------------------------------
def redis_commands(cluster: RedisClusterNodes) -> Counter[str]:
    """Calls per command, summed over the cluster's nodes."""
    calls: Counter[str] = Counter()
    for node in cluster.nodes:
        for line in node.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, stats = line.removeprefix("cmdstat_").split(":", 1)
                calls[name] += int(stats.split(",")[0].removeprefix("calls="))
    return calls


async def database_counts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM request_logs")
        logged = await conn.fetch(
            "SELECT user_key_id::text AS id, sum(weighted_total_tokens) AS tokens"
            " FROM request_logs GROUP BY user_key_id"
        )
        used = await conn.fetch("SELECT id::text AS id, tokens_used FROM user_keys")
        stats = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted, tup_updated,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS wal_bytes,"
            " (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
            "  WHERE inhparent = 'request_logs'::regclass) AS log_bytes"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return {
        "rows": int(rows),
        "logged": {r["id"]: int(r["tokens"]) for r in logged},
        "used": {r["id"]: int(r["tokens_used"]) for r in used},
        "stats": dict(stats) if stats is not None else {},
    }


def attempts_failed(instances: list[str], provider: str) -> int:
    total = 0.0
    for instance in instances:
        for line in httpx.get(instance + "/metrics", timeout=10).text.splitlines():
            if (
                line.startswith("llm_gateway_upstream_attempts_total{")
                and f'provider="{provider}"' in line
                and 'outcome="failed"' in line
            ):
                total += float(line.split()[-1])
    return int(total)


def cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each group of processes (and their children)."""
    return {name: sum(tree_cpu(pid) for pid in pids) for name, pids in groups.items()}


def _knows(instance: str, key: str) -> bool:
    listing = httpx.get(instance + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    return listing.status_code == 200


# ---- the whole run -------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    figure: str
    bound: str
    ok: bool


@dataclass
class Readings:
    """Counters read before the traffic, and after it (CPU) or after the drain (the rest)."""

    cpu_before: dict[str, float]
    redis_before: Counter[str]
    database_before: dict[str, Any]
    elapsed: float = 0.0
    cpu_after: dict[str, float] = field(default_factory=dict)
    redis_after: Counter[str] = field(default_factory=Counter)
    database_after: dict[str, Any] = field(default_factory=dict)
    dead_asked: int = 0  # attempts on the failing deployment, all instances


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="traffic time (default 20)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients")
    args = parser.parse_args()
    with run_postgres() as postgres, run_redis_cluster() as cluster, harness() as h:
        return measure(h, postgres.dsn(), postgres, cluster, args.seconds, args.connections)


def measure(
    h: Harness,
    dsn: str,
    postgres: Postgres,
    cluster: RedisClusterNodes,
    seconds: float,
    connections: int,
) -> int:
    mock_folder = h.workdir / "answers"
    mock_folder.mkdir()
    mock = nginx(h, "mock", "0,1", upstream_block(mock_folder))
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": cluster.url,
        "ADMIN_KEY": ADMIN_KEY,
        "GATEWAY_SECRET_KEY": SECRET,
        "LOG_REQUEST_BODY": "false",
        "LOG_RESPONSE_BODY": "false",
        "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_AUTH_FAILURE_LIMIT": "0",  # every client is the balancer's address
        "GATEWAY_USAGE_FLUSH_SECONDS": "0.5",
    }
    with gateways(env, h.workdir) as processes:
        instances = [gateway.url for gateway in processes]
        balanced = nginx(h, "balancer", "0,1", balancer_block([g.port for g in processes]))
        balancer = f"http://127.0.0.1:{balanced}"
        keys = configure(instances[0], f"http://127.0.0.1:{mock}")
        # Every instance knows every key before the clock starts.
        for instance in instances:
            for key in keys.ids:
                wait_until(lambda i=instance, k=key: _knows(i, k), timeout=PROBE_SECONDS)
        pids = {
            "gateway": [g.process.pid for g in processes if g.process is not None],
            "redis": [n.process.pid for n in cluster.nodes if n.process is not None],
            "postgres": [postgres.process.pid] if postgres.process is not None else [],
            "nginx": [p.pid for p in h.procs if p.name == "balancer"],
        }
        readings = Readings(cpu(pids), redis_commands(cluster), asyncio.run(database_counts(dsn)))
        started = time.monotonic()
        run = asyncio.run(drive(balancer, instances, keys, seconds, connections))
        readings.elapsed = time.monotonic() - started
        readings.cpu_after = cpu(pids)
        readings.dead_asked = attempts_failed(instances, "dead")
    # The drain: every instance stopped gracefully, its last usage and log rows written.
    readings.redis_after = redis_commands(cluster)
    readings.database_after = asyncio.run(database_counts(dsn))
    checks = check(run, keys, readings, seconds, connections)
    print(report(run, checks, readings, connections))
    return 0 if all(c.ok for c in checks) else 1


def check(
    run: Run, keys: Keys, readings: Readings, seconds: float, connections: int
) -> list[Check]:
    database = readings.database_after
    rows = database["rows"] - readings.database_before["rows"]
    checks = [
        Check(
            "revoked key refused by all 4",
            f"{run.revoke_lag * 1000:.0f} ms; {run.late_victims} answered later"
            + (
                "" if run.revoke_status == 204 else f"; the revocation answered {run.revoke_status}"
            ),
            "≤ 1 s; 0",
            run.revoke_status == 204 and run.revoke_lag <= BOUND_SECONDS and run.late_victims == 0,
        )
    ]
    for key, budget in keys.budget.items():
        used = database["used"][keys.ids[key]]
        if key not in run.budget_refused:
            checks.append(Check(f"budget {budget:,} (not reached)", f"used {used:,}", "", True))
            continue
        lag = run.budget_lag.get(key, float("inf"))
        checks.append(
            Check(
                f"budget {budget:,} exhausted on all 4",
                f"{lag * 1000:.0f} ms; used {used:,} (+{used - budget})",
                f"≤ 1 s; ≤ +{connections * 32}",
                lag <= BOUND_SECONDS and used - budget <= connections * 32,
            )
        )
    spread = run.cooled[-1] - run.cooled[0] if len(run.cooled) == INSTANCES else float("inf")
    checks.append(
        Check(
            "failing deployment cooling on all 4",
            f"{spread * 1000:.0f} ms after the first; asked {readings.dead_asked} times",
            "≤ 1 s",
            spread <= BOUND_SECONDS,
        )
    )
    limit = RPM_LIMIT * (1 + seconds / 60)  # the sliding window, if the run spans two minutes
    for key in keys.groups["limited"]:
        admitted = run.per_key_ok[key]
        checks.append(
            Check(
                f"rpm {RPM_LIMIT} across all 4",
                f"{admitted} answered",
                f"≤ {limit:.0f}",
                admitted <= limit,
            )
        )
    used, logged = database["used"], database["logged"]
    exact = sum(used[k] == logged.get(k, 0) for k in used)
    checks += [
        Check(
            "answers = request-log rows",
            f"{run.answered:,} = {rows:,}",
            "equal",
            run.answered == rows,
        ),
        Check(
            "key usage = sum of its rows", f"{exact} of {len(used)} keys", "all", exact == len(used)
        ),
    ]
    return checks


def report(run: Run, checks: list[Check], readings: Readings, connections: int) -> str:
    requests = sum(run.statuses.values())
    per_request = {
        name: (readings.cpu_after[name] - readings.cpu_before[name]) * 1e6 / requests
        for name in readings.cpu_before
    }
    commands = readings.redis_after - readings.redis_before
    top = ", ".join(f"{name} {calls / requests:.2f}" for name, calls in commands.most_common(6))
    before, after = readings.database_before["stats"], readings.database_after["stats"]
    database = ", ".join(
        f"{name} {(int(after.get(name) or 0) - int(before.get(name) or 0)) / requests:.3f}"
        for name in ("xact_commit", "tup_inserted", "tup_updated", "wal_bytes", "log_bytes")
    )
    statuses = ", ".join(
        f"{name} {status}: {n}" for (name, status), n in sorted(run.statuses.items())
    )
    return "\n".join(
        [
            f"{requests:,} requests in {readings.elapsed:.1f} s through nginx"
            f" ({requests / readings.elapsed:,.0f}/s, {connections} connections),"
            " 4 instances, PostgreSQL, Redis Cluster of 3",
            "",
            "| check | measured | bound | ok |",
            "|---|---|---|---|",
            *(f"| {c.name} | {c.figure} | {c.bound} | {'yes' if c.ok else 'NO'} |" for c in checks),
            "",
            "CPU µs per request: " + ", ".join(f"{n} {v:.0f}" for n, v in per_request.items()),
            f"Redis commands per request: {sum(commands.values()) / requests:.2f} ({top})",
            f"PostgreSQL per request: {database}",
            f"Statuses: {statuses}",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
