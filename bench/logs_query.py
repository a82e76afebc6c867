"""How fast `/admin/logs` and `/admin/stats` answer over a million request-log rows on PostgreSQL.

Run: python bench/logs_query.py [--rows 1000000]. Starts its own PostgreSQL (temporary folder,
free port) and a gateway on it, fills the table with generate_series and the stats rollups from
it (the statements of migration 0007), and times each query shape.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import ADMIN_KEY, SECRET_KEY, GatewayProcess, run_postgres

from llm_gateway.db.engine import create_engine
from llm_gateway.settings import normalise_database_url

# How migration 0007 sums the rows already logged into the stats rollups.
ROLLUP = importlib.import_module("llm_gateway.db.migrations.versions.0007_stats_rollup")

FILL = """
INSERT INTO request_logs (gateway_request_id, request_id, user_key_id, model_requested,
    model_sent, provider_id, provider_kind, status_code, is_error, prompt_tokens,
    completion_tokens, total_tokens, weighted_total_tokens, latency_ms, ttfb_ms, is_stream,
    error_message, request_body, response_body, created_at)
SELECT md5(i::text), 'req-' || i,
    ('00000000-0000-4000-8000-' || lpad((i % 1000)::text, 12, '0'))::uuid,
    'model-' || (i % 20), 'model-' || (i % 20), NULL, 'openai',
    CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, i % 50 = 0, 10, 5, 15, 15, 100 + i % 400, 50,
    i % 3 = 0, NULL, NULL, NULL, now() - (i || ' seconds')::interval * 0.6
FROM generate_series(1, $1) AS i
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with run_postgres() as pg, tempfile.TemporaryDirectory() as folder:
        env = {"DATABASE_URL": pg.dsn(), "ADMIN_KEY": ADMIN_KEY, "GATEWAY_SECRET_KEY": SECRET_KEY}
        gateway = GatewayProcess(env, Path(folder)).start()
        try:

            async def fill() -> None:
                conn = await asyncpg.connect(pg.dsn())
                await conn.execute(FILL, args.rows)
                await conn.close()
                engine = create_engine(normalise_database_url(pg.dsn())[0])
                async with engine.begin() as sa_conn:
                    await sa_conn.run_sync(ROLLUP.backfill)
                    for table in ("request_logs", "request_stats_hourly", "request_stats_daily"):
                        await sa_conn.exec_driver_sql(f"ANALYZE {table}")
                await engine.dispose()

            started = time.monotonic()
            asyncio.run(fill())
            print(f"filled {args.rows:,} rows in {time.monotonic() - started:.0f} s")
            client = httpx.Client(
                base_url=gateway.url, timeout=120, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            )
            key = "00000000-0000-4000-8000-000000000007"
            shapes: dict[str, dict[str, str | int]] = {
                "newest page (per_page=50)": {"per_page": 50},
                "page 100": {"per_page": 50, "page": 100},
                "by key": {"key_id": key},
                "by model": {"model": "model-3"},
                "errors only": {"is_error": "true"},
                "last hour": {
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
                },
            }
            print("| query | median ms |\n|---|---|")
            for name, params in shapes.items():
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    client.get("/admin/logs", params=params).raise_for_status()
                    times.append((time.perf_counter() - t0) * 1000)
                print(f"| /admin/logs {name} | {statistics.median(times):.0f} |")
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                client.get("/admin/stats").raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
            print(f"| /admin/stats | {statistics.median(times):.0f} |")
            client.close()
        finally:
            gateway.stop()


if __name__ == "__main__":
    main()
