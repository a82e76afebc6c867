"""uvicorn against granian, serving the same gateway: `python bench/compare_servers.py`.

Needs granian installed (`pip install granian`; not a dependency of the gateway). Each server
runs the gateway on the embedded default, one worker pinned to core 1, twice, alternating, against
the nginx mock of `bench/servers.py`; wrk (core 0) measures JSON and SSE at 64 connections and JSON
p50 at one connection.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import free_port, serve_command, wait_until

from bench import admin, bodies, load, servers


def command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return serve_command(port, log_level="warning")
    return [
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--no-ws",
        "--log-level",
        "warning",
        "llm_gateway.app:create_app_from_environment",
    ]


def main() -> None:
    if shutil.which("granian") is None:
        sys.exit("pip install granian first")
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-servers-"))
    workdir.chmod(0o755)
    harness = servers.Harness(workdir)
    try:
        mock = servers.nginx(harness, "mock", servers.LOAD_CORE, servers.mock_block(workdir))
        json_body = bodies.request_body("bench-json", False)
        sse_body = bodies.request_body("bench-sse", True)
        print("| server | JSON req/s | SSE streams/s | JSON p50 (1 conn) |\n|---|---|---|---|")
        for index, server in enumerate(("uvicorn", "granian", "uvicorn", "granian")):
            folder = workdir / f"{server}-{index}"
            folder.mkdir()
            port = free_port()
            env = {
                **os.environ,
                "ADMIN_KEY": servers.ADMIN_KEY,
                "GATEWAY_SECRET_KEY": servers.SECRET,
            }
            proc = harness.spawn(
                folder.name, command(server, port), servers.GATEWAY_CORE, env=env, cwd=folder
            )
            url = f"http://127.0.0.1:{port}"
            ready = url + "/ready"
            wait_until(lambda: servers.up(ready), timeout=60)  # noqa: B023
            key = admin.configure_gateway(url, mock, free_port())
            target = url + "/v1/chat/completions"
            loaded = load.wrk(target, json_body, key, 64, 8)
            streams = load.wrk(target, sse_body, key, 64, 8)
            single = load.wrk(target, json_body, key, 1, 4)
            print(
                f"| {server} | {loaded.rps:,.0f} | {streams.rps:,.0f} | {single.p50_ms:.2f} ms |",
                flush=True,
            )
            proc.process.terminate()
            proc.process.wait(timeout=30)
    finally:
        harness.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
