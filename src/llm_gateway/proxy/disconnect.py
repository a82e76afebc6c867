"""Cancelling a call whose client has gone, so its upstream request stops too.

A watcher task waits for the ASGI `http.disconnect` and cancels the call's task. Creating,
scheduling and cancelling that task costs about 3 µs, which most calls do not need: a call
answered within `WATCH_AFTER` seconds has nothing worth stopping. So each call arms a timer
(about 0.5 µs), and only a call still running when it fires gets its watcher; a client that left
earlier is found at once then (`receive` returns the disconnect it already saw).
"""

from __future__ import annotations

import asyncio
from typing import Any

from llm_gateway.proxy.asgi import Receive
from llm_gateway.proxy.record import CallRecord

WATCH_AFTER = 0.05  # seconds


class DisconnectWatch:
    __slots__ = ("_call", "_receive", "_task", "_timer", "_watcher")

    def __init__(self, receive: Receive, task: asyncio.Task[Any], call: CallRecord) -> None:
        self._receive, self._task, self._call = receive, task, call
        self._watcher: asyncio.Task[None] | None = None
        self._timer = task.get_loop().call_later(WATCH_AFTER, self._start)

    def _start(self) -> None:
        self._watcher = self._task.get_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._call.client_gone = True
                self._task.cancel()
                return

    def stop(self) -> None:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
