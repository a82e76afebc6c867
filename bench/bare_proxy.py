"""The Python floor: a raw-ASGI proxy on uvicorn + aiohttp with no features.

Key hash check, one JSON parse, model rewrite, forward, relay (streams chunk by chunk). The
benchmark reports the gateway as a ratio of this.
Run: BARE_UPSTREAM=http://127.0.0.1:PORT BARE_KEY=sk-... python bench/bare_proxy.py PORT
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import aiohttp
import orjson
import uvicorn

UPSTREAM = os.environ["BARE_UPSTREAM"]
KEY_HASH = hashlib.sha256(os.environ["BARE_KEY"].encode()).hexdigest()
PATHS = {"bench-json": "/json/v1", "bench-sse": "/sse/v1"}
session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                assert session is not None
                await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    auth = dict(scope["headers"]).get(b"authorization", b"")
    if hashlib.sha256(auth[7:]).hexdigest() != KEY_HASH:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = orjson.loads(body)
    prefix = PATHS[payload["model"]]
    payload["model"] = payload["model"] + "-upstream"
    assert session is not None
    async with session.post(
        f"{UPSTREAM}{prefix}/chat/completions",
        data=orjson.dumps(payload),
        headers={"Authorization": "Bearer upstream", "Content-Type": "application/json"},
    ) as response:
        headers = [(b"content-type", response.headers["content-type"].encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
