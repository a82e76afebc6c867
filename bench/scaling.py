"""`--scaling`: how the gateway's cost grows with keys, models, body size and workers."""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from tests.servers import run_redis

from bench.admin import configure_gateway
from bench.bodies import chat_request
from bench.load import wrk
from bench.servers import Harness, Proc, start_gateway, tree_cpu, tree_rss

CHAT = "/v1/chat/completions"


def _insert(conn: sqlite3.Connection, table: str, rows: Iterable[dict[str, object]]) -> None:
    """Insert rows, with 0 in every NOT NULL column they leave out that has no default (the
    schema grows: counters and flags added later start at zero)."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    zeros = {c[1]: 0 for c in info if c[3] and c[4] is None and not c[5] and c[1] not in first}
    columns = [*first, *zeros]
    marks = ", ".join("?" * len(columns))
    # The names are this file's and the schema's own, never input.
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
    values = ([*row.values(), *zeros.values()] for row in itertools.chain([first], rows))
    conn.executemany(sql, values)


def seed(database: Path, keys: int, models: int) -> None:
    """Add filler keys and models (one deployment each) straight into the SQLite file, in
    SQLAlchemy's formats: the admin API would take minutes for 100,000 keys."""
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    conn = sqlite3.connect(database)
    provider = conn.execute("SELECT id FROM providers LIMIT 1").fetchone()[0]
    key_rows = (
        {"id": uuid.uuid4().hex, "name": "filler", "key_hash": os.urandom(32).hex()}
        | {"key_prefix": "sk-filler", "is_active": 1, "token_budget": 1_000_000}
        | {"tokens_used": 0, "created_at": now, "updated_at": now}
        for _ in range(keys)
    )
    _insert(conn, "user_keys", key_rows)
    model_ids = [uuid.uuid4().hex for _ in range(models)]
    model_rows = (
        {"id": model_id, "name": f"filler-{i}", "is_active": 1}
        | {"input_token_coefficient": 1.0, "output_token_coefficient": 1.0}
        | {"created_at": now, "updated_at": now}
        for i, model_id in enumerate(model_ids)
    )
    _insert(conn, "models", model_rows)
    deployment_rows = (
        {"id": uuid.uuid4().hex, "model_id": model_id, "provider_id": provider}
        | {"weight": 1, "priority": 0, "position": 0, "created_at": now}
        for model_id in model_ids
    )
    _insert(conn, "model_deployments", deployment_rows)
    conn.commit()
    conn.close()


def scaling(h: Harness, mock: int, drip: int, seconds: int, raw: list[str]) -> str:
    """JSON at 64 connections: keys, models and body size on one worker, then 1 and 2 workers."""
    rows = [
        "| case | JSON req/s | gateway CPU µs/req | peak RSS per worker | start-up |",
        "|---|---|---|---|---|",
    ]

    def run_case(name: str, url: str, key: str, proc: Proc, body: str, started: float) -> None:
        before = proc.cpu_seconds()
        result = wrk(url + CHAT, body, key, 64, seconds)
        cpu = (proc.cpu_seconds() - before) / max(1, result.requests) * 1e6
        raw.append(f"## scaling — {name}\n```\n{result.raw}```\n")
        rows.append(
            f"| {name} | {result.rps:,.0f} | {cpu:.0f} | {proc.peak_rss_mib():.0f} MiB | "
            f"{started:.1f} s |"
        )

    small = chat_request("bench-json", False)
    for keys, models in ((1_000, 10), (100_000, 10), (1_000, 1_000)):
        name = f"scale-{keys}-{models}"
        proc, url = start_gateway(h, name, {})
        key = configure_gateway(url, mock, drip)
        proc.stop()
        seed(h.workdir / name / "llm-gateway.db", keys, models)
        t0 = time.monotonic()
        proc, url = start_gateway(h, name, {})
        start_s = time.monotonic() - t0
        run_case(f"{keys:,} keys, {models:,} models", url, key, proc, small, start_s)
        if keys == 1_000 and models == 10:
            for label, size in (("1 MB request body", 1_000_000), ("1 KB request body", 1_000)):
                body = chat_request("bench-json", False, size=size)
                run_case(label, url, key, proc, body, start_s)
        proc.stop()

    # Like for like: one worker and two, each free to run on both cores, which wrk and the
    # mock share with them (the CPU per request says whether the gateway itself scales).
    with run_redis() as redis:
        for workers in (1, 2):
            t0 = time.monotonic()
            env = {"REDIS_URL": redis.url}
            proc, url = start_gateway(h, f"workers-{workers}", env, workers, cores="0,1")
            start_s = time.monotonic() - t0
            key = configure_gateway(url, mock, drip)
            before = tree_cpu(proc.pid)
            result = wrk(url + CHAT, small, key, 64, seconds)
            cpu = (tree_cpu(proc.pid) - before) / max(1, result.requests) * 1e6
            raw.append(f"## scaling — {workers} workers\n```\n{result.raw}```\n")
            rows.append(
                f"| {workers} worker(s) + Redis (both cores, shared with wrk and the mock) | "
                f"{result.rps:,.0f} | {cpu:.0f} | {tree_rss(proc.pid):.0f} MiB | "
                f"{start_s:.1f} s |"
            )
            proc.stop(timeout=60)
    return "\n".join(rows)
