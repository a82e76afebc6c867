"""The benchmark harness: `python bench/run.py` (needs nginx, wrk and taskset; loopback only).

Measures, in one run, a direct call to the mock upstream (the baseline), nginx as a reverse
proxy (the floor of any proxy hop), a bare raw-ASGI Python proxy (the Python floor) and the
gateway on the embedded default, one worker pinned to core 1 (load generator and mocks on
core 0). Optional: `--production` adds the gateway on PostgreSQL + Redis with request bodies
logged. Writes a Markdown table and the raw wrk outputs to bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.servers import (  # noqa: E402
    free_port,
    run_postgres,
    run_redis,
    serve_command,
    wait_until,
)

from bench.latency import measure_latency  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
LOAD_CORE, GATEWAY_CORE = "0", "1"

JSON_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-upstream",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)


def _sse_body() -> str:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench-upstream",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": f" word{i}"}) for i in range(20)]
    parts.append(chunk({}, "stop"))
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-upstream",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
    }
    parts.append(f"data: {json.dumps(usage)}\n\n")
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def request_body(model: str, stream: bool, size: int = 0) -> str:
    content = "Say hello." + ("x" * max(0, size - 120))
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return json.dumps(body)


# ---- processes -----------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads)."""
        return _cpu(self.pid)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


@dataclass
class Harness:
    workdir: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], core: str, **kwargs: Any) -> Proc:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            ["taskset", "-c", core, *args], stdout=log, stderr=subprocess.STDOUT, **kwargs
        )
        proc = Proc(name, process)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
                try:
                    proc.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.process.kill()
                    proc.process.wait()


def _up(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


def nginx(h: Harness, name: str, core: str, server_block: str) -> int:
    port = free_port()
    folder = h.workdir / name
    folder.mkdir()
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {folder};
  proxy_temp_path {folder};
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    {server_block}
  }}
}}
"""
    )
    h.spawn(name, ["nginx", "-c", str(conf), "-p", str(folder)], core)
    wait_until(lambda: _up(f"http://127.0.0.1:{port}/"), timeout=15)
    return port


def mock_block(folder: Path) -> str:
    """Static answers from files; POST to a static file is turned into a 200 by error_page."""
    for kind, body in (("json", JSON_BODY), ("sse", _sse_body())):
        target = folder / "static" / kind / "v1" / "chat" / "completions"
        target.parent.mkdir(parents=True)
        target.write_text(body)
    return f"""
    root {folder / "static"};
    location /json/ {{ default_type application/json; error_page 405 =200 $uri; }}
    location /sse/ {{ default_type text/event-stream; error_page 405 =200 $uri; }}
    location = / {{ return 200 'ok'; }}
"""


def proxy_block(upstream_port: int) -> str:
    return f"""
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
  upstream mock {{
    server 127.0.0.1:{upstream_port};
    keepalive 128;
"""


def start_gateway(h: Harness, name: str, env: dict[str, str], workers: int = 1) -> tuple[Proc, str]:
    port = free_port()
    folder = h.workdir / name
    folder.mkdir(exist_ok=True)  # an existing folder: restart on the same database
    full_env = {**os.environ, "ADMIN_KEY": ADMIN_KEY, "GATEWAY_SECRET_KEY": SECRET, **env}
    full_env.pop("LISTEN_ADDR", None)
    core = GATEWAY_CORE if workers == 1 else "0,1"
    proc = h.spawn(
        name, serve_command(port, workers, log_level="warning"), core, env=full_env, cwd=folder
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url + "/ready"), timeout=120)
    return proc, url


def configure_gateway(
    url: str, mock_port: int, drip_port: int, extra_models: int = 0, extra_keys: int = 0
) -> str:
    admin = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120
    )
    routes = {"json": "/json/v1", "sse": "/sse/v1"}
    for kind, path in routes.items():
        provider = admin.post(
            "/admin/providers",
            json={
                "name": f"mock-{kind}",
                "kind": "openai",
                "api_key": "sk-upstream-bench-key",
                "base_url": f"http://127.0.0.1:{mock_port}{path}",
            },
        ).json()
        admin.post(
            "/admin/models",
            json={
                "name": f"bench-{kind}",
                "provider_id": provider["id"],
                "provider_model_name": "bench-upstream",
            },
        ).raise_for_status()
        for i in range(extra_models // 2):
            admin.post(
                "/admin/models", json={"name": f"filler-{kind}-{i}", "provider_id": provider["id"]}
            ).raise_for_status()
    drip = admin.post(
        "/admin/providers",
        json={
            "name": "drip",
            "kind": "openai",
            "api_key": "sk-upstream-bench-key",
            "base_url": f"http://127.0.0.1:{drip_port}/v1",
        },
    ).json()
    admin.post("/admin/models", json={"name": "bench-drip", "provider_id": drip["id"]})
    for _ in range(extra_keys):
        admin.post("/admin/keys", json={"name": "filler"}).raise_for_status()
    key = admin.post("/admin/keys", json={"name": "bench"}).json()["key"]
    admin.close()
    return str(key)


# ---- measurements --------------------------------------------------------------------------
@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    raw: str


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str, body: str, key: str, connections: int, seconds: int, delay_ms: int = 0
) -> WrkResult:
    """One wrk run; `delay_ms` paces each connection (a fixed wait before every request)."""
    env = {**os.environ, "BENCH_BODY": "", "BENCH_KEY": key, "BENCH_DELAY_MS": str(delay_ms)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(body)
    env["BENCH_BODY_FILE"] = handle.name
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(BENCH / "post.lua"),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return WrkResult(rps, p50, p99, total, errors, out)


def ttfb_ms(base_url: str, key: str, model: str, runs: int) -> float:
    import openai

    client = openai.OpenAI(api_key=key or "none", base_url=base_url, max_retries=0)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        first: float | None = None
        for _chunk in stream:  # read to the end, so both hops keep their connections
            if first is None:
                first = (time.perf_counter() - started) * 1000
        assert first is not None
        samples.append(first)
    client.close()
    return statistics.median(samples)


@dataclass
class Row:
    name: str
    json_rps: float = 0
    json_p50: float = 0
    json_p99: float = 0
    sse_rps: float = 0
    sse_p50: float = 0
    cpu_us: float | None = None
    ttfb_ms: float | None = None
    rss_mib: float | None = None
    errors: int = 0


def measure(
    name: str,
    url: str,
    key: str,
    seconds: int,
    proc: Proc | None,
    raw: list[str],
    sse_url: str | None = None,
) -> Row:
    row = Row(name)
    json_body, sse_body = request_body("bench-json", False), request_body("bench-sse", True)
    cpu_before = proc.cpu_seconds() if proc else 0.0
    loaded = wrk(url, json_body, key, 64, seconds)
    if proc:
        row.cpu_us = (proc.cpu_seconds() - cpu_before) / max(1, loaded.requests) * 1e6
    single = measure_latency(url, json_body, key, max(3, seconds // 2))
    sse = wrk(sse_url or url, sse_body, key, 64, seconds)
    sse_single = measure_latency(sse_url or url, sse_body, key, max(3, seconds // 2))
    row.json_rps, row.json_p50, row.json_p99 = loaded.rps, single.p50_ms, single.p99_ms
    row.sse_rps, row.sse_p50 = sse.rps, sse_single.p50_ms
    row.errors = loaded.errors + single.errors + sse.errors + sse_single.errors
    if proc:
        row.rss_mib = proc.peak_rss_mib()
    for label, result in (("json c64", loaded), ("sse c64", sse)):
        raw.append(f"## {name} — {label}\n```\n{result.raw}```\n")
    for label, latency in (("json c1", single), ("sse c1", sse_single)):
        raw.append(f"## {name} — {label}\n{latency}\n")
    return row


def table(rows: list[Row], direct: Row, bare: Row) -> str:
    lines = [
        "| target | JSON req/s | JSON p50 / p99 (1 conn) | overhead p50 | SSE streams/s | "
        "SSE p50 (1 conn) | CPU µs/req | TTFB overhead | peak RSS | vs bare proxy (JSON / SSE) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        overhead = row.json_p50 - direct.json_p50
        ttfb = (
            ""
            if row.ttfb_ms is None or direct.ttfb_ms is None
            else (f"{row.ttfb_ms - direct.ttfb_ms:+.2f} ms")
        )
        ratio = (
            ""
            if row is direct
            else (f"{row.json_rps / bare.json_rps:.2f} / {row.sse_rps / bare.sse_rps:.2f}")
        )
        lines.append(
            f"| {row.name} | {row.json_rps:,.0f} | {row.json_p50:.2f} / {row.json_p99:.2f} ms | "
            f"{'' if row is direct else f'{overhead:+.2f} ms'} | {row.sse_rps:,.0f} | "
            f"{row.sse_p50:.2f} ms | {'' if row.cpu_us is None else f'{row.cpu_us:.0f}'} | "
            f"{ttfb} | {'' if row.rss_mib is None else f'{row.rss_mib:.0f} MiB'} | {ratio} |"
        )
    return "\n".join(lines)


def seed(database: Path, keys: int, models: int) -> None:
    """Add filler keys and models straight into the SQLite file, in SQLAlchemy's formats."""
    import sqlite3
    import uuid as uuidlib

    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    conn = sqlite3.connect(database)
    provider = conn.execute("SELECT id FROM providers LIMIT 1").fetchone()[0]
    conn.executemany(
        "INSERT INTO user_keys (id, name, key_hash, key_prefix, is_active, token_budget, "
        "tokens_used, created_at, updated_at) "
        "VALUES (?, 'filler', ?, 'sk-filler', 1, 1000000, 0, ?, ?)",
        ((uuidlib.uuid4().hex, os.urandom(32).hex(), now, now) for _ in range(keys)),
    )
    conn.executemany(
        "INSERT INTO models (id, name, provider_id, provider_model_name, is_active, "
        "input_token_coefficient, output_token_coefficient, created_at, updated_at) "
        "VALUES (?, ?, ?, NULL, 1, 1.0, 1.0, ?, ?)",
        ((uuidlib.uuid4().hex, f"filler-{i}", provider, now, now) for i in range(models)),
    )
    conn.commit()
    conn.close()


def scaling(h: Harness, mock: int, drip: int, seconds: int, raw: list[str]) -> str:
    """How cost grows: workers, keys, models, body size (JSON, 64 connections)."""
    rows = [
        "| case | JSON req/s | gateway CPU µs/req | peak RSS per worker | start-up |",
        "|---|---|---|---|---|",
    ]

    def run_case(name: str, url: str, key: str, proc: Proc, body: str, started: float) -> None:
        before = proc.cpu_seconds()
        result = wrk(url + "/v1/chat/completions", body, key, 64, seconds)
        cpu = (proc.cpu_seconds() - before) / max(1, result.requests) * 1e6
        raw.append(f"## scaling — {name}\n```\n{result.raw}```\n")
        rows.append(
            f"| {name} | {result.rps:,.0f} | {cpu:.0f} | {proc.peak_rss_mib():.0f} MiB | "
            f"{started:.1f} s |"
        )

    small = request_body("bench-json", False)
    for keys, models in ((1_000, 10), (100_000, 10), (1_000, 1_000)):
        proc, url = start_gateway(h, f"scale-{keys}-{models}", {})
        key = configure_gateway(url, mock, drip)
        proc.process.terminate()
        proc.process.wait(timeout=30)
        seed(h.workdir / f"scale-{keys}-{models}" / "llm-gateway.db", keys, models)
        t0 = time.monotonic()
        proc, url = start_gateway(h, f"scale-{keys}-{models}", {})
        start_s = time.monotonic() - t0
        run_case(f"{keys:,} keys, {models:,} models", url, key, proc, small, start_s)
        if keys == 1_000 and models == 10:
            run_case(
                "1 MB request body",
                url,
                key,
                proc,
                request_body("bench-json", False, size=1_000_000),
                start_s,
            )
            run_case(
                "1 KB request body",
                url,
                key,
                proc,
                request_body("bench-json", False, size=1_000),
                start_s,
            )
        proc.process.terminate()
        proc.process.wait(timeout=30)

    with run_redis() as redis:
        for workers in (1, 2):
            t0 = time.monotonic()
            proc, url = start_gateway(h, f"workers-{workers}", {"REDIS_URL": redis.url}, workers)
            start_s = time.monotonic() - t0
            key = configure_gateway(url, mock, drip)
            before = _tree_cpu(proc.pid)
            result = wrk(url + "/v1/chat/completions", small, key, 64, seconds)
            cpu = (_tree_cpu(proc.pid) - before) / max(1, result.requests) * 1e6
            raw.append(f"## scaling — {workers} workers\n```\n{result.raw}```\n")
            rows.append(
                f"| {workers} worker(s) + Redis (both cores, shared with wrk) | "
                f"{result.rps:,.0f} | {cpu:.0f} | {_tree_rss(proc.pid):.0f} MiB | "
                f"{start_s:.1f} s |"
            )
            proc.process.terminate()
            proc.process.wait(timeout=60)
    return "\n".join(rows)


def _children(pid: int) -> list[int]:
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += _children(int(child))
    return found


def _tree_cpu(pid: int) -> float:
    total = 0.0
    for p in _children(pid):
        with contextlib.suppress(OSError):
            total += _cpu(p)
    return total


def _cpu(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_rss(pid: int) -> float:
    """Peak RSS of the largest worker."""
    peaks = []
    for p in _children(pid)[1:] or [pid]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


@contextlib.contextmanager
def harness() -> Iterator[Harness]:
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-bench-"))
    workdir.chmod(0o755)  # nginx workers run unprivileged and read the static answers
    h = Harness(workdir)
    try:
        yield h
    finally:
        h.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="duration of each wrk run")
    parser.add_argument("--ttfb-runs", type=int, default=30)
    parser.add_argument(
        "--production",
        action="store_true",
        help="also measure the gateway on PostgreSQL + Redis, bodies logged",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also measure how cost grows (workers, keys, models, body size)",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # the one-connection client runs beside wrk
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs {tool} (apt-get install -y nginx wrk util-linux)")
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    raw: list[str] = []
    rows: list[Row] = []
    started = time.monotonic()
    with harness() as h:
        mock = nginx(h, "mock", LOAD_CORE, mock_block(h.workdir))
        floor = nginx(h, "nginx-proxy", GATEWAY_CORE, proxy_block(mock))
        drip_port = free_port()
        h.spawn(
            "drip", [sys.executable, str(BENCH / "drip_upstream.py"), str(drip_port)], LOAD_CORE
        )
        wait_until(lambda: _up(f"http://127.0.0.1:{drip_port}/"), timeout=15)

        direct = measure(
            "direct to mock",
            f"http://127.0.0.1:{mock}/json/v1/chat/completions",
            "",
            args.seconds,
            None,
            raw,
            sse_url=f"http://127.0.0.1:{mock}/sse/v1/chat/completions",
        )
        direct.ttfb_ms = ttfb_ms(f"http://127.0.0.1:{drip_port}/v1", "", "m", args.ttfb_runs)
        rows.append(direct)

        nginx_row = measure(
            "nginx reverse proxy",
            f"http://127.0.0.1:{floor}/json/v1/chat/completions",
            "",
            args.seconds,
            None,
            raw,
            sse_url=f"http://127.0.0.1:{floor}/sse/v1/chat/completions",
        )
        rows.append(nginx_row)

        bare_port = free_port()
        bare_key = "sk-bench-bare-key"
        bare_proc = h.spawn(
            "bare",
            [sys.executable, str(BENCH / "bare_proxy.py"), str(bare_port)],
            GATEWAY_CORE,
            env={**os.environ, "BARE_UPSTREAM": f"http://127.0.0.1:{mock}", "BARE_KEY": bare_key},
        )
        wait_until(lambda: _up(f"http://127.0.0.1:{bare_port}/"), timeout=15)
        bare = measure(
            "bare Python proxy (uvicorn + aiohttp)",
            f"http://127.0.0.1:{bare_port}/v1/chat/completions",
            bare_key,
            args.seconds,
            bare_proc,
            raw,
        )
        rows.append(bare)
        bare_proc.process.terminate()

        gw_proc, gw_url = start_gateway(h, "gateway", {})
        key = configure_gateway(gw_url, mock, drip_port)
        gateway = measure(
            "llm-gateway (SQLite, 1 worker)",
            gw_url + "/v1/chat/completions",
            key,
            args.seconds,
            gw_proc,
            raw,
        )
        gateway.ttfb_ms = ttfb_ms(gw_url + "/v1", key, "bench-drip", args.ttfb_runs)
        gateway.rss_mib = gw_proc.peak_rss_mib()
        rows.append(gateway)
        gw_proc.process.terminate()

        if args.production:
            with run_postgres() as pg, run_redis() as redis:
                proc, url = start_gateway(
                    h,
                    "gateway-prod",
                    {
                        "DATABASE_URL": pg.dsn(),
                        "REDIS_URL": redis.url,
                        "LOG_REQUEST_BODY": "true",
                        "LOG_RESPONSE_BODY": "true",
                    },
                )
                key = configure_gateway(url, mock, drip_port)
                prod = measure(
                    "llm-gateway (PostgreSQL + Redis, bodies logged)",
                    url + "/v1/chat/completions",
                    key,
                    args.seconds,
                    proc,
                    raw,
                )
                prod.ttfb_ms = ttfb_ms(url + "/v1", key, "bench-drip", args.ttfb_runs)
                rows.append(prod)
                proc.process.terminate()
                proc.process.wait(timeout=30)

        scaling_table = scaling(h, mock, drip_port, args.seconds, raw) if args.scaling else ""

    elapsed = time.monotonic() - started
    cpu = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    report = (
        f"# llm-gateway benchmark\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{model.group(1) if model else 'unknown CPU'}, {os.cpu_count()} cores; proxies pinned "
        f"to core {GATEWAY_CORE}, wrk and mocks to core {LOAD_CORE}; {args.seconds} s per wrk "
        f"run; run time {elapsed:.0f} s.\n\n{table(rows, direct, bare)}\n\n"
        f"Errors (non-2xx or socket) across all runs: "
        + ", ".join(f"{r.name}: {r.errors}" for r in rows)
        + "\n"
    )
    if scaling_table:
        report += f"\n## How cost grows\n\n{scaling_table}\n"
    (results / "latest.md").write_text(report)
    (results / "raw.md").write_text("\n".join(raw))
    print(report)


if __name__ == "__main__":
    main()
