"""Load and timing: wrk at 64 connections, one keep-alive connection timed with a monotonic clock
(bench/latency.py), time to the first chunk through the OpenAI SDK, and wrk's output parsed."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

import httpx

from bench.latency import measure_latency
from bench.servers import BENCH, LOAD_CORE, Proc


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    raw: str


def _ms(text: str) -> float:
    found = re.match(r"([\d.]+)(\w+)", text)
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def _find(pattern: str, out: str) -> str:
    found = re.search(pattern, out)
    if found is None:
        raise ValueError(f"wrk output without {pattern!r}:\n{out}")
    return found.group(1)


def wrk(
    url: str, body: str, key: str, connections: int, seconds: int, delay_ms: int = 0
) -> WrkResult:
    """One wrk run on LOAD_CORE (bounded: `seconds`, then a minute's grace before it is killed);
    `delay_ms` paces each connection (a fixed wait before every request)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(body)
    env = {**os.environ, "BENCH_BODY": "", "BENCH_BODY_FILE": handle.name, "BENCH_KEY": key}
    env["BENCH_DELAY_MS"] = str(delay_ms)
    command = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += ["--latency", "-s", str(BENCH / "post.lua"), url]
    try:
        out = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True
        ).stdout
    finally:
        os.unlink(handle.name)
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sockets:
        errors += sum(int(x) for x in sockets.groups())
    return WrkResult(
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=_ms(_find(r"\s50%\s+(\S+)", out)),
        p99_ms=_ms(_find(r"\s99%\s+(\S+)", out)),
        requests=int(_find(r"(\d+) requests in", out)),
        errors=errors,
        raw=out,
    )


def probe(url: str, body: str, key: str) -> str | None:
    """One request before the load: None if it answers 200, else what went wrong."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {' '.join(response.text.split())[:300]}"
    return None


def ttfb_ms(base_url: str, model: str, key: str, runs: int) -> float:
    """Median time to the first streamed chunk, read to the end (both hops keep their sockets)."""
    import openai

    client = openai.OpenAI(api_key=key or "none", base_url=base_url, max_retries=0)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        first: float | None = None
        for _chunk in stream:
            if first is None:
                first = (time.perf_counter() - started) * 1000
        assert first is not None
        samples.append(first)
    client.close()
    return statistics.median(samples)


# ---- event-loop lag, if the gateway's /metrics has it -----------------------------------------
LAG_METRIC = "llm_gateway_event_loop_lag_seconds"
_SAMPLE = re.compile(rf"^{LAG_METRIC}(_bucket|_sum|_count)?(?:\{{([^}}]*)\}})?\s+(\S+)", re.M)


@dataclass
class LagSample:
    buckets: dict[float, float]  # histogram: upper bound -> cumulative count (all labels)
    values: list[float]  # gauge or summary values


def scrape_lag(base_url: str) -> LagSample | None:
    """The lag metric's samples, or None if /metrics does not expose it."""
    try:
        return parse_lag(httpx.get(base_url + "/metrics", timeout=10).text)
    except httpx.HTTPError:
        return None


def parse_lag(text: str) -> LagSample | None:
    sample = LagSample({}, [])
    for suffix, labels, value in _SAMPLE.findall(text):
        if suffix == "_bucket":
            bound = re.search(r'le="([^"]+)"', labels)
            if bound:
                upper = float(bound.group(1))
                sample.buckets[upper] = sample.buckets.get(upper, 0.0) + float(value)
        elif not suffix:
            quantile = re.search(r'quantile="([^"]+)"', labels)
            if quantile is None or quantile.group(1) == "0.99":  # a gauge, or a summary's p99
                sample.values.append(float(value))
    return sample if sample.buckets or sample.values else None


def lag_during(before: LagSample | None, after: LagSample | None) -> str | None:
    """The loop lag over a row: the p99 bucket bound of a histogram, else the largest value."""
    if after is None:
        return None
    if after.buckets:
        old = before.buckets if before else {}
        counts = sorted((bound, n - old.get(bound, 0.0)) for bound, n in after.buckets.items())
        total = counts[-1][1]
        if total <= 0:
            return None
        bound = next(b for b, n in counts if n >= 0.99 * total)
        return "p99 > max bucket" if bound == float("inf") else f"p99 ≤ {bound * 1000:g} ms"
    return f"{max(after.values) * 1000:.1f} ms" if after.values else None


# ---- one row -------------------------------------------------------------------------------
@dataclass
class Target:
    """What a row loads: a JSON request (and a streamed one, if the endpoint streams)."""

    json_url: str
    json_body: str
    key: str
    sse_url: str | None = None
    sse_body: str | None = None
    proc: Proc | None = None  # the process under test: its CPU time and peak RSS are read
    metrics_url: str | None = None  # a gateway: its /metrics may report the loop lag
    ttfb: tuple[str, str] | None = None  # (base URL, model) for time to the first chunk


@dataclass
class Row:
    name: str
    label: str
    json_rps: float = 0
    json_p50: float = 0
    json_p99: float = 0
    json_p99_c64: float = 0  # wrk's p99 at 64 connections
    sse_rps: float | None = None
    sse_p50: float | None = None
    cpu_us: float | None = None
    ttfb_ms: float | None = None
    rss_mib: float | None = None
    lag: str | None = None
    errors: int = 0
    note: str | None = None  # why the row has no figures (skipped, or its first request failed)
    # Throughput against the plain gateway from alternating windows (JSON, SSE), if measured.
    paired: tuple[float, float | None] | None = None


def measure(row: Row, target: Target, duration: float, ttfb_runs: int, raw: list[str]) -> Row:
    """wrk at 64 connections and one timed connection, JSON then SSE; CPU over the JSON run."""
    checks = [(target.json_url, target.json_body)]
    if target.sse_url and target.sse_body:
        checks.append((target.sse_url, target.sse_body))
    for url, body in checks:
        problem = probe(url, body, target.key)
        if problem:
            row.note = f"first request failed: {problem}"
            return row
    seconds, single_seconds = max(1, round(duration)), max(1.0, duration / 2)
    proc = target.proc
    lag_before = scrape_lag(target.metrics_url) if target.metrics_url else None
    cpu_before = proc.cpu_seconds() if proc else 0.0
    loaded = wrk(target.json_url, target.json_body, target.key, 64, seconds)
    if proc:
        row.cpu_us = (proc.cpu_seconds() - cpu_before) / max(1, loaded.requests) * 1e6
    single = measure_latency(target.json_url, target.json_body, target.key, single_seconds)
    row.json_rps, row.json_p50, row.json_p99 = loaded.rps, single.p50_ms, single.p99_ms
    row.json_p99_c64 = loaded.p99_ms
    row.errors = loaded.errors + single.errors
    raw.append(f"## {row.label} — json c64\n```\n{loaded.raw}```\n")
    raw.append(f"## {row.label} — json c1\n{single}\n")
    if target.sse_url and target.sse_body:
        sse = wrk(target.sse_url, target.sse_body, target.key, 64, seconds)
        sse_single = measure_latency(target.sse_url, target.sse_body, target.key, single_seconds)
        row.sse_rps, row.sse_p50 = sse.rps, sse_single.p50_ms
        row.errors += sse.errors + sse_single.errors
        raw.append(f"## {row.label} — sse c64\n```\n{sse.raw}```\n")
        raw.append(f"## {row.label} — sse c1\n{sse_single}\n")
    if target.metrics_url:
        row.lag = lag_during(lag_before, scrape_lag(target.metrics_url))
    if target.ttfb:
        row.ttfb_ms = ttfb_ms(*target.ttfb, key=target.key, runs=ttfb_runs)
    if proc:
        row.rss_mib = proc.peak_rss_mib()
    return row


def paired_ratios(
    target: Target, reference: Target, rounds: int, seconds: int, raw: list[str]
) -> tuple[float, float | None]:
    """Throughput of `target` as a ratio of `reference`'s (JSON, SSE), from `rounds` pairs of
    wrk windows taken back to back, each pair in the other order from the last: the median
    of the pairs' ratios. A machine whose speed drifts during a run moves both sides of a
    pair alike, where two rows measured minutes apart can differ by 10-20 % on their own."""

    def ratio(url: str, body: str, reference_url: str, reference_body: str) -> float:
        values = []
        for round_ in range(rounds):
            own_first = round_ % 2 == 0
            first = wrk(url, body, target.key, 64, seconds).rps if own_first else None
            theirs = wrk(reference_url, reference_body, reference.key, 64, seconds).rps
            own = first if first is not None else wrk(url, body, target.key, 64, seconds).rps
            values.append(own / theirs if theirs else 0.0)
        raw.append(f"paired with the plain gateway, {url}: {[round(v, 3) for v in values]}\n")
        return statistics.median(values)

    json_ratio = ratio(target.json_url, target.json_body, reference.json_url, reference.json_body)
    sse_ratio = None
    if target.sse_url and target.sse_body and reference.sse_url and reference.sse_body:
        sse_ratio = ratio(target.sse_url, target.sse_body, reference.sse_url, reference.sse_body)
    return json_ratio, sse_ratio
