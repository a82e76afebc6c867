"""A clean stop (SIGTERM) finishes what is in flight and loses no request-log row."""

from __future__ import annotations

import concurrent.futures
import signal
from pathlib import Path

import httpx

from tests.conftest import Admin
from tests.servers import ADMIN_KEY, SECRET_KEY, GatewayProcess, Upstream, wait_until


def test_sigterm_loses_no_log_row_and_finishes_open_streams(
    database_url: str, upstream: Upstream, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "ADMIN_KEY": ADMIN_KEY, "GATEWAY_SECRET_KEY": SECRET_KEY}
    gateway = GatewayProcess(env, tmp_path).start()
    try:
        with Admin(gateway.url) as admin:
            provider = admin.provider(upstream.base_url())
            admin.model(provider["id"], "gpt-4o")
            key = admin.key()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(30):
            assert (
                httpx.post(
                    gateway.url + "/v1/chat/completions", json=body, headers=headers
                ).status_code
                == 200
            )

        def slow_stream() -> str:
            slow = {
                **body,
                "messages": [{"role": "user", "content": "mode:slow:1"}],
                "stream": True,
            }
            with httpx.stream(
                "POST", gateway.url + "/v1/chat/completions", json=slow, headers=headers, timeout=30
            ) as response:
                return "".join(response.iter_text())

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            streams = [pool.submit(slow_stream) for _ in range(20)]
            wait_until(lambda: len(upstream.requests(provider["base_url"])) >= 50, timeout=20)
            assert gateway.stop(signal.SIGTERM) == 0
            stopped_log = gateway.log()  # what the stop did, for the assertions below
            texts = [f.result(timeout=30) for f in streams]
        assert all(t.rstrip().endswith("data: [DONE]") for t in texts)
    finally:
        gateway.stop(signal.SIGKILL)
    restarted = GatewayProcess(env, tmp_path).start()
    try:
        with Admin(restarted.url) as admin:
            logs = admin.ok("GET", "/admin/logs", params={"per_page": 1})
            assert logs["total"] == 50, stopped_log[-6000:]
            used = admin.ok("GET", "/admin/keys")[0]["tokens_used"]
            assert used == 50 * 15
    finally:
        restarted.stop()
