"""A real local upstream that speaks the OpenAI chat-completions API, for the test suite.

Run: `python tests/mock_upstream.py --port 0`; it prints `PORT <n>` when listening.
Any path ending in `/chat/completions` answers. The first message's content picks a behaviour:

    (anything else)      a normal answer; usage 10 prompt / 5 completion tokens
    mode:slow:<s>        wait <s> seconds, then answer normally
    mode:status:<code>   answer <code> with an OpenAI error body (429 adds rate-limit headers)
    mode:cut             stream two chunks, then drop the connection
    mode:drip            stream a chunk every 50 ms for up to 30 s (for disconnect tests)
    mode:plain           answer a stream request with a plain JSON body

Every request is recorded and can be read back with `GET /_requests?prefix=<path prefix>`;
each record says whether the client went away before the answer was complete (`cancelled`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from typing import Any

from aiohttp import web

RECORDS: list[dict[str, Any]] = []
COUNTER = itertools.count(1)
PROMPT_TOKENS, COMPLETION_TOKENS = 10, 5


def _chunk(
    request_id: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    usage_field: bool = False,
) -> bytes:
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage_field:
        body["usage"] = None
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


async def chat(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        payload = json.loads(raw)
        messages = payload.get("messages") or [{}]
        content = str(messages[0].get("content", "")) if isinstance(messages[0], dict) else ""
    except (ValueError, AttributeError, TypeError, KeyError, IndexError):
        error = {
            "error": {"message": "bad request", "type": "mock_error", "code": None, "param": None}
        }
        return web.json_response(error, status=400)
    number = next(COUNTER)
    record: dict[str, Any] = {
        "path": request.path,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": payload,
        "cancelled": False,
        "completed": False,
    }
    RECORDS.append(record)
    mode, _, argument = (
        content.partition(":")[2].partition(":") if content.startswith("mode:") else ("", "", "")
    )
    model = payload.get("model", "")
    request_id = f"req-mock-{number}"
    headers = {
        "x-request-id": request_id,
        "openai-processing-ms": "7",
        "x-ratelimit-remaining-requests": "99",
        "x-unrelated-header": "dropped",
    }
    try:
        if mode == "slow":
            await asyncio.sleep(float(argument))
        if mode == "status":
            code = int(argument)
            if code == 429:
                headers["x-ratelimit-reset-requests"] = "1s"
            error = {
                "error": {
                    "message": f"mock error {code}",
                    "type": "mock_error",
                    "code": f"mock_{code}",
                    "param": None,
                }
            }
            record["completed"] = True
            return web.json_response(error, status=code, headers=headers)
        if not payload.get("stream") or mode == "plain":
            answer = {
                "id": request_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello!"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(),
            }
            record["completed"] = True
            return web.json_response(answer, headers=headers)
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        response = web.StreamResponse(headers={**headers, "content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(
            _chunk(
                request_id, model, {"role": "assistant", "content": ""}, usage_field=include_usage
            )
        )
        words = ["Hello", " from", " the", " mock", "!"]
        if mode == "drip":
            words = ["tick "] * 600
        for index, word in enumerate(words):
            if mode == "cut" and index == 2:
                assert request.transport is not None
                request.transport.close()
                record["completed"] = True
                return response
            if mode == "drip":
                await asyncio.sleep(0.05)
            await response.write(
                _chunk(request_id, model, {"content": word}, usage_field=include_usage)
            )
        await response.write(_chunk(request_id, model, {}, "stop", usage_field=include_usage))
        if include_usage:
            usage_chunk = {
                "id": request_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": _usage(),
            }
            await response.write(b"data: " + json.dumps(usage_chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        record["completed"] = True
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        record["cancelled"] = True
        record["cancelled_at"] = time.time()
        raise


async def requests_seen(request: web.Request) -> web.Response:
    prefix = request.query.get("prefix", "")
    return web.json_response([r for r in RECORDS if r["path"].startswith(prefix)])


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = web.Application(handler_args={"handler_cancellation": True})
    app.router.add_post("/{tail:.*}/chat/completions", chat)
    app.router.add_get("/_requests", requests_seen)
    app.router.add_get("/health", health)

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
