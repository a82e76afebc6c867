"""A mock upstream for time-to-first-byte: 20 SSE chunks, 20 ms before each.

Run: python bench/drip_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}\n\n'
)
USAGE = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}\n\n'
)


async def chat(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for _ in range(20):
        await asyncio.sleep(0.02)
        await response.write(CHUNK)
    await response.write(USAGE + b"data: [DONE]\n\n")
    await response.write_eof()
    return response


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/{tail:.*}/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
