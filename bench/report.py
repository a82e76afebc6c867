"""The Markdown report: one table of every row, with overheads against the direct call and
throughput as ratios of the Python floor and of the plain gateway, all from the same run."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from bench.load import Row
from bench.scenarios import BY_NAME
from bench.servers import GATEWAY_CORE, LOAD_CORE


def _ratio(row: Row, reference: Row | None) -> str:
    if reference is None or not reference.json_rps or row.note:
        return ""
    json_part = f"{row.json_rps / reference.json_rps:.2f}"
    if row.sse_rps is None or not reference.sse_rps:
        return f"{json_part} / —"
    return f"{json_part} / {row.sse_rps / reference.sse_rps:.2f}"


def _times(value: float, reference: float | None) -> str:
    return f" ({value / reference:.1f}x)" if reference else ""


def _cells(row: Row, rows: dict[str, Row], with_lag: bool) -> list[str]:
    scenario = BY_NAME[row.name]
    direct = rows.get(scenario.direct or "")
    floor = rows.get(scenario.floor or "")
    gateway = rows.get(scenario.gateway or "")
    chat_direct = rows.get("direct")
    ttfb = ""
    if row.ttfb_ms is not None and chat_direct is not None and chat_direct.ttfb_ms is not None:
        ttfb = f"{row.ttfb_ms - chat_direct.ttfb_ms:+.2f} ms"
    cells = [
        row.label,
        f"{row.json_rps:,.0f}",
        f"{row.json_p50:.2f} / {row.json_p99:.2f} ms",
        f"{row.json_p99_c64:.1f} ms"
        + _times(row.json_p99_c64, floor.json_p99_c64 if floor else None),
        f"{row.json_p50 - direct.json_p50:+.2f} ms" if direct and not direct.note else "",
        "—" if row.sse_rps is None else f"{row.sse_rps:,.0f}",
        "—" if row.sse_p50 is None else f"{row.sse_p50:.2f} ms",
        "" if row.cpu_us is None else f"{row.cpu_us:.0f}",
        ttfb,
        "" if row.rss_mib is None else f"{row.rss_mib:.0f} MiB",
    ]
    if with_lag:
        cells.append(row.lag or "")
    versus_gateway = _ratio(row, gateway)
    if row.paired is not None:
        json_ratio, sse_ratio = row.paired
        versus_gateway = f"{json_ratio:.2f} / " + ("—" if sse_ratio is None else f"{sse_ratio:.2f}")
    return [*cells, _ratio(row, floor), versus_gateway]


def table(rows: list[Row]) -> str:
    measured = [row for row in rows if not row.note]
    by_name = {row.name: row for row in measured}
    with_lag = any(row.lag for row in measured)
    head = [
        "row",
        "JSON req/s",
        "JSON p50 / p99 (1 conn)",
        "JSON p99 @c64 (vs floor)",
        "overhead p50",
        "SSE streams/s",
        "SSE p50 (1 conn)",
        "CPU µs/req",
        "TTFB overhead",
        "peak RSS",
        *(["event-loop lag"] if with_lag else []),
        "vs floor (JSON / SSE)",
        "vs gateway (JSON / SSE)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(row, by_name, with_lag)) + " |" for row in measured]
    return "\n".join(lines)


def report(
    rows: list[Row], duration: float, elapsed: float, floor: Path, scaling_table: str = ""
) -> str:
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    seconds = max(1, round(duration))
    lines = [
        "# llm-gateway benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{cpu.group(1) if cpu else 'unknown CPU'}, {os.cpu_count()} cores; proxies pinned to "
        f"core {GATEWAY_CORE}, wrk and mocks to core {LOAD_CORE}; {seconds} s per wrk run "
        f"(64 connections), {max(1.0, duration / 2):g} s per one-connection run; "
        f"run time {elapsed:.0f} s.",
        "",
        table(rows),
        "",
        "Errors (non-2xx or socket) across all runs: "
        + ", ".join(f"{row.label}: {row.errors}" for row in rows if not row.note),
        "",
        f"- **vs floor**: throughput as a ratio of the Python floor (`{floor.name}`: raw ASGI on "
        "uvicorn + aiohttp, no features) measured in the same run on the same core; the "
        "embeddings rows are compared with the floor relaying the same embeddings answer. "
        "**vs gateway**: a ratio of the plain gateway; for the rows served by the plain "
        "gateway's own process, the median of 4 pairs of back-to-back windows (feature, plain; "
        "then plain, feature; ...), which a machine drifting during the run cannot skew.",
        "- **overhead p50**: over the direct call to the mock (the embeddings rows: over the "
        "direct embeddings call). **JSON p99 @c64**: wrk's 99th percentile at 64 connections, "
        "and its ratio to the floor's. The gateway's feature rows run on the same process after "
        "the plain row, so their peak RSS is its high-water mark so far.",
    ]
    lines += [f"- {row.label}: {row.note}" for row in rows if row.note]
    if scaling_table:
        lines += ["", "## How cost grows", "", scaling_table]
    return "\n".join(lines) + "\n"
