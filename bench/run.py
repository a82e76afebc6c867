"""The benchmark: `python bench/run.py [--production] [--scaling] [--duration S] [--rows ...]`.

Needs nginx, wrk and taskset; loopback only; every load run is bounded in time. In one run it
measures a static nginx mock upstream called directly (the baseline), nginx as a reverse proxy,
the Python floor (the shared `python_floor.py`: raw ASGI on uvicorn + aiohttp, no features) and
the gateway on the embedded default, one worker, plus the gateway's feature rows (three
deployments, embeddings, the /v1/responses bridge, a limited key); the proxies are pinned to
core 1, wrk, the mocks and the one-connection client to core 0. `--production` adds the gateway
on PostgreSQL + Redis (the same settings), `--scaling` the table of how cost grows. Writes the
Markdown table to bench/results/latest.md and the raw outputs to bench/results/raw.md.

The parts: bodies.py (what goes over the wire), servers.py (the processes), admin.py (the
gateway's setup), load.py (wrk, timing, one row), scenarios.py (what each row is), report.py
(the table), scaling.py (--scaling).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scenarios
from bench.report import report
from bench.scaling import scaling
from bench.servers import BENCH, DEFAULT_FLOOR, LOAD_CORE, harness


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration",
        "--seconds",
        type=float,
        default=8,
        metavar="S",
        help="seconds of each wrk run (64 connections); one-connection runs last half (default 8)",
    )
    parser.add_argument(
        "--rows",
        default=",".join(scenarios.DEFAULT),
        help="comma-separated rows to run (the rows they are compared with are added): "
        + ", ".join(scenarios.BY_NAME),
    )
    parser.add_argument(
        "--floor", type=Path, default=DEFAULT_FLOOR, metavar="PATH", help="the Python floor app"
    )
    parser.add_argument(
        "--ttfb-runs",
        type=int,
        default=None,
        help="streams timed to the first chunk per row (default: 4 per second of --duration)",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="also measure the gateway on PostgreSQL + Redis (same settings as the embedded row)",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also measure how cost grows (workers, keys, models, body size)",
    )
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    names = [name.strip() for name in args.rows.split(",") if name.strip()]
    if args.production and "production" not in names:
        names.append("production")
    selected = scenarios.select(names)
    if any(s.name.startswith("floor") for s in selected) and not args.floor.is_file():
        sys.exit(f"the Python floor is not at {args.floor} (give --floor PATH)")
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs {tool} (apt-get install -y nginx wrk util-linux)")
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # the one-connection client runs beside wrk
    ttfb_runs = args.ttfb_runs or max(5, round(args.duration * 4))
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    raw: list[str] = []
    started = time.monotonic()
    with contextlib.ExitStack() as stack, harness() as h:  # gateways stop before their databases
        lab = scenarios.Lab(h, args.floor.resolve(), stack)
        rows = scenarios.run(selected, lab, args.duration, ttfb_runs, raw)
        scaling_table = ""
        if args.scaling:
            lab.release()
            seconds = max(1, round(args.duration))
            scaling_table = scaling(h, lab.mock, lab.drip(), seconds, raw)
    text = report(rows, args.duration, time.monotonic() - started, args.floor, scaling_table)
    (results / "latest.md").write_text(text)
    (results / "raw.md").write_text("\n".join(raw))
    print(text)


if __name__ == "__main__":
    main()
