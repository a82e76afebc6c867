"""The processes a run starts: the nginx mock upstream, nginx as a proxy, the Python floor, the
drip upstream and the gateway, each pinned with taskset; all stopped when the harness closes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.servers import free_port, serve_command, wait_until

from bench.bodies import UPSTREAM_MODEL, chat_answer, chat_stream_answer, embeddings_answer

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_FLOOR = ROOT.parent / "shared" / "bench" / "python_floor.py"
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
FLOOR_KEY = "sk-bench-floor-key"
LOAD_CORE, GATEWAY_CORE = "0", "1"  # wrk, the mocks and the client on 0; the proxy under test on 1


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads)."""
        return cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return _status_kib(self.pid, "VmHWM:") / 1024

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Harness:
    workdir: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], core: str, **kwargs: Any) -> Proc:
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                ["taskset", "-c", core, *args], stdout=log, stderr=subprocess.STDOUT, **kwargs
            )
        proc = Proc(name, process)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


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


def up(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


# ---- nginx ---------------------------------------------------------------------------------
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
    wait_until(lambda: up(f"http://127.0.0.1:{port}/"), timeout=15)
    return port


def mock_block(folder: Path) -> str:
    """Static answers from files; a POST to a static file is turned into a 200 by error_page.

    /json/v1 and /sse/v1 answer chat completions (JSON, 20-chunk SSE), /embed/v1 embeddings.
    /d1/ ... /d9/ serve the same as without the prefix (distinct base URLs for deployments).
    The Python floor only ever calls `<base>/chat/completions`, so /embed/v1 answers the
    embeddings answer there too: the floor then relays the same bytes as the gateway.
    """
    answers = {
        "json/v1/chat/completions": chat_answer(),
        "sse/v1/chat/completions": chat_stream_answer(),
        "embed/v1/embeddings": embeddings_answer(),
        "embed/v1/chat/completions": embeddings_answer(),
    }
    for path, body in answers.items():
        target = folder / "static" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    return f"""
    root {folder / "static"};
    location ~ ^/d[0-9]/ {{ rewrite ^/d[0-9](/.*)$ $1 last; }}
    location /json/ {{ default_type application/json; error_page 405 =200 $uri; }}
    location /sse/ {{ default_type text/event-stream; error_page 405 =200 $uri; }}
    location /embed/ {{ default_type application/json; error_page 405 =200 $uri; }}
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


# ---- Python processes ----------------------------------------------------------------------
def start_drip(h: Harness) -> int:
    """The slow SSE upstream for time to first chunk (bench/drip_upstream.py)."""
    port = free_port()
    h.spawn("drip", [sys.executable, str(BENCH / "drip_upstream.py"), str(port)], LOAD_CORE)
    wait_until(lambda: up(f"http://127.0.0.1:{port}/"), timeout=15)
    return port


def start_floor(h: Harness, floor: Path, routes: dict[str, str]) -> tuple[Proc, str]:
    """The Python floor on uvicorn (uvloop, httptools, no access log), pinned like the gateway."""
    port = free_port()
    env = {
        **os.environ,
        "FLOOR_ROUTES": json.dumps(routes),
        "FLOOR_KEY": FLOOR_KEY,
        "FLOOR_UPSTREAM_MODEL": UPSTREAM_MODEL,
    }
    args = [sys.executable, "-m", "uvicorn", "--app-dir", str(floor.parent), f"{floor.stem}:app"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
    args += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    proc = h.spawn("floor", args, GATEWAY_CORE, env=env, cwd=h.workdir)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: up(url + "/health") or proc.process.poll() is not None, timeout=30)
    if proc.process.poll() is not None:
        log = (h.workdir / "floor.log").read_text(errors="replace")
        raise RuntimeError(f"the Python floor exited:\n{log[-3000:]}")
    return proc, url


def start_gateway(
    h: Harness, name: str, env: dict[str, str], workers: int = 1, cores: str | None = None
) -> tuple[Proc, str]:
    """`llm-gateway serve`, one worker pinned to GATEWAY_CORE (several: both cores), or on
    `cores`."""
    port = free_port()
    folder = h.workdir / name
    folder.mkdir(exist_ok=True)  # an existing folder: restart on the same database
    full_env = {**os.environ, "ADMIN_KEY": ADMIN_KEY, "GATEWAY_SECRET_KEY": SECRET, **env}
    full_env.pop("LISTEN_ADDR", None)
    core = cores or (GATEWAY_CORE if workers == 1 else "0,1")
    proc = h.spawn(
        name, serve_command(port, workers, log_level="warning"), core, env=full_env, cwd=folder
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: up(url + "/ready") or proc.process.poll() is not None, timeout=120)
    if proc.process.poll() is not None:
        log = (h.workdir / f"{name}.log").read_text(errors="replace")
        raise RuntimeError(f"the gateway exited:\n{log[-3000:]}")
    return proc, url


# ---- /proc readings ------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += _children(int(child))
    return found


def pin(pid: int, core: str) -> None:
    """Move a running process, its threads and its children to `core` (PostgreSQL's backends
    forked later inherit it)."""
    for p in _children(pid):
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            subprocess.run(["taskset", "-apc", core, str(p)], capture_output=True, check=True)


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants (a multi-worker gateway)."""
    total = 0.0
    for p in _children(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def tree_rss(pid: int) -> float:
    """Peak RSS of the largest worker, in MiB."""
    peaks = [_status_kib(p, "VmHWM:") / 1024 for p in _children(pid)[1:] or [pid]]
    return max(peaks, default=0.0)
