"""The loop-lag monitor sees a stall of the event loop, and only since the last reading."""

from __future__ import annotations

import asyncio
import time

import httpx

from llm_gateway.loop_lag import LoopLag
from tests.conftest import Admin
from tests.servers import ThreadedGateway, Upstream


def test_a_blocked_loop_shows_as_lag_once() -> None:
    async def scenario() -> tuple[float, float]:
        monitor = LoopLag(interval=0.01)
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.03)  # let it tick while the loop is free
        monitor.take()
        time.sleep(0.2)  # hold the loop, as a blocking call would
        await asyncio.sleep(0.03)  # the monitor wakes late, then ticks again
        stalled = monitor.take()
        after = monitor.take()
        task.cancel()
        return stalled, after

    stalled, after = asyncio.run(scenario())
    assert stalled >= 0.15
    assert after < 0.15  # the reading starts again after each take()


def test_metrics_show_the_loop_lag_and_the_overhead_p99(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    admin.model(admin.provider(upstream.base_url())["id"], "gpt-4o")
    key = admin.key()["key"]
    for _ in range(5):
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200
    gateway.run(_block_the_loop())
    values = {
        line.split()[0]: float(line.split()[1])
        for line in httpx.get(gateway.url + "/metrics").text.splitlines()
        if line.startswith("llm_gateway_") and " " in line
    }
    assert values["llm_gateway_event_loop_lag_seconds"] >= 0.1  # the stall we caused
    assert 0 < values["llm_gateway_overhead_p99_seconds"] < 1


async def _block_the_loop() -> None:
    time.sleep(0.15)  # a blocking call on the gateway's own loop
    await asyncio.sleep(0.1)  # let the monitor wake and see it
