"""The soak run: `python bench/soak.py [--minutes 10]` (nginx, wrk and taskset; loopback only).

Measures the embedded gateway's capacity (JSON and SSE, 64 connections), then drives it at about
half of it for `--minutes`: a quarter of the JSON capacity and a quarter of the SSE capacity at
once, paced by wrk. Samples the gateway's RSS every 10 s and reports its growth after the first
minute (warm-up: pools, caches, allocator arenas), the errors seen by the clients and, after a
clean stop, how many request-log rows reached the database. Writes bench/results/soak-*.md.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import httpx  # noqa: E402
from tests.servers import free_port  # noqa: E402

from bench.admin import configure_gateway  # noqa: E402
from bench.bodies import request_body  # noqa: E402
from bench.load import wrk  # noqa: E402
from bench.servers import ADMIN_KEY, harness, mock_block, nginx, start_gateway  # noqa: E402

CONNECTIONS = 16
SAMPLE_SECONDS = 10
WARM_UP_SECONDS = 60


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pacing_delay_ms(rate: float) -> int:
    """The per-connection wait that makes CONNECTIONS connections send about `rate` req/s."""
    return max(1, round(CONNECTIONS * 1000 / rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--capacity-seconds", type=int, default=8)
    args = parser.parse_args()
    seconds = int(args.minutes * 60)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    json_body, sse_body = request_body("bench-json", False), request_body("bench-sse", True)

    with harness() as h:
        mock = nginx(h, "mock", "0", mock_block(h.workdir))
        proc, url = start_gateway(h, "gateway", {})
        key = configure_gateway(url, mock, free_port())
        target = url + "/v1/chat/completions"

        json_capacity = wrk(target, json_body, key, 64, args.capacity_seconds).rps
        sse_capacity = wrk(target, sse_body, key, 64, args.capacity_seconds).rps
        # A key of its own, so the soak's request-log rows can be counted apart.
        created = httpx.post(
            url + "/admin/keys",
            json={"name": "soak"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ).json()
        key, key_id = created["key"], created["id"]
        json_delay = pacing_delay_ms(json_capacity / 4)
        sse_delay = pacing_delay_ms(sse_capacity / 4)

        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            json_run = pool.submit(wrk, target, json_body, key, CONNECTIONS, seconds, json_delay)
            sse_run = pool.submit(wrk, target, sse_body, key, CONNECTIONS, seconds, sse_delay)
            while not (json_run.done() and sse_run.done()):
                samples.append((time.monotonic() - started, rss_mib(proc.pid)))
                time.sleep(SAMPLE_SECONDS)
            json_result, sse_result = json_run.result(), sse_run.result()
        samples.append((time.monotonic() - started, rss_mib(proc.pid)))

        proc.process.terminate()  # SIGTERM: in-flight calls finish, request logs are flushed
        exit_code = proc.process.wait(timeout=60)
        database = h.workdir / "gateway" / "llm-gateway.db"
        with sqlite3.connect(database) as conn:
            soak_key = key_id.replace("-", "")
            rows = conn.execute(
                "SELECT COUNT(*) FROM request_logs WHERE user_key_id = ?", (soak_key,)
            ).fetchone()[0]
            failed = conn.execute(
                "SELECT COUNT(*) FROM request_logs WHERE user_key_id = ? AND is_error "
                "AND status_code != 499",
                (soak_key,),
            ).fetchone()[0]

    after_warm_up = next(rss for at, rss in samples if at >= WARM_UP_SECONDS)
    final = samples[-1][1]
    growth = (final - after_warm_up) / after_warm_up * 100
    requests = json_result.requests + sse_result.requests
    errors = json_result.errors + sse_result.errors
    report = f"""# llm-gateway soak

{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; embedded default, one worker on core 1,
wrk and the nginx mock on core 0; {args.minutes:g} minutes.

| | JSON | SSE |
|---|---|---|
| capacity (64 connections) | {json_capacity:,.0f} req/s | {sse_capacity:,.0f} streams/s |
| soak rate ({CONNECTIONS} paced connections) | {json_result.rps:,.0f} req/s | \
{sse_result.rps:,.0f} streams/s |
| requests | {json_result.requests:,} | {sse_result.requests:,} |
| client-side errors (non-2xx, socket) | {json_result.errors} | {sse_result.errors} |

- Load: {(json_result.rps / json_capacity + sse_result.rps / sse_capacity) * 100:.0f} % of \
capacity (sum of the two shares).
- RSS: {samples[0][1]:.1f} MiB at start, {after_warm_up:.1f} MiB after {WARM_UP_SECONDS} s, \
{final:.1f} MiB at the end: **{growth:+.1f} %** after warm-up.
- Requests sent {requests:,}, errors {errors}; request-log rows {rows:,} (calls cut by wrk at \
its deadline are logged too, as 499), rows marked failed other than 499: {failed}; \
exit code {exit_code}.

RSS samples (s, MiB): {", ".join(f"{at:.0f}:{rss:.1f}" for at, rss in samples)}
"""
    out = results / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(report)
    print(report)
    print(f"written to {out}")
    ok = errors == 0 and failed == 0 and growth < 5 and exit_code == 0 and rows >= requests
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
