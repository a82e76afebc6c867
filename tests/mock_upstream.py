"""A real local upstream that speaks OpenAI's and Anthropic's APIs, for the test suite.

Run: `python tests/mock_upstream.py --port 0`; it prints `PORT <n>` when listening.
The code lives in `tests/mock/` (core: records, `/behave/` and the answer driver; openai_api;
anthropic_api). A POST to any path answers by how the path ends, whatever comes before it
(`/v1/...`, `/t/<tag>/v1/...`, `/behave/<spec>/v1/...`):

    .../chat/completions        OpenAI chat completions (plain and streamed)
    .../completions             OpenAI legacy completions (`text_completion`, plain and streamed)
    .../embeddings              OpenAI embeddings: input a string, strings or token arrays;
                                8 deterministic dims (or `dimensions`), `encoding_format` float
                                or base64 (little-endian float32); usage = words (>= 1 per input)
    .../responses               OpenAI Responses API (`response` object; stream of named events
                                with `sequence_number` from 0, ending in response.completed)
    .../messages                Anthropic Messages API (`message`; stream message_start,
                                content_block_start, ping, content_block_delta, ...stop,
                                message_delta, message_stop)
    .../messages/count_tokens   Anthropic: `{"input_tokens": <words in system and messages>}`

Usage is 10 prompt / 5 completion tokens everywhere (Anthropic: input 10, or 6 + 4 cache read).
OpenAI answers carry x-request-id `req-mock-<n>`, openai-processing-ms,
x-ratelimit-remaining-requests and x-unrelated-header; Anthropic answers request-id
`req_mock_<n>`, anthropic-ratelimit-requests-remaining and x-unrelated-header.

Chat completions: the FIRST message's content, when it starts with `mode:`, picks one of:

    mode:slow:<s>        wait <s> seconds, then answer normally
    mode:status:<code>   answer <code> with an OpenAI error body (429 adds rate-limit headers)
    mode:cut             stream two chunks, then drop the connection
    mode:drip            stream a chunk every 50 ms for up to 30 s (for disconnect tests)
    mode:plain           answer a stream request with a plain JSON body

Streams send `usage: null` in every chunk and a last usage chunk with empty `choices` when
`stream_options.include_usage` is true, then `data: [DONE]`.

Every `mode:<word>` in the LAST user message's text (chat, Responses, Messages; legacy
completions: the prompt) adds:

    mode:tool       with `tools` in the request: call the first tool, arguments {"city": "Paris"}
                    (chat: `tool_calls`, finish "tool_calls", streamed arguments in several
                    deltas; Responses: a `function_call` item; Messages: a `tool_use` block,
                    stop_reason "tool_use")
    mode:tools2     the same with two parallel calls (the second tool, else the first again)
    mode:reasoning  chat: `reasoning_content` "Let me think." before the content (streams:
                    its deltas first); Messages: a `thinking` block first
    mode:length     chat/completions: finish "length"; Messages: stop_reason "max_tokens";
                    Responses: status "incomplete" (stream ends with response.incomplete)
    mode:cached     4 cached prompt tokens (chat: prompt_tokens_details.cached_tokens;
                    Responses: input_tokens_details.cached_tokens; Messages:
                    cache_read_input_tokens 4, input_tokens 6)
    mode:failed     Responses only: status "failed" (stream ends with response.failed)

A path segment `/behave/<spec>/` (comma-separated `name=value` or bare `name`) applies to
every endpoint; an unknown name is answered 400:

    id=<label>               nothing: tells deployments apart in the records
    status=<code>            answer <code> (400..599) with the endpoint's error body: OpenAI's
                             {"error":{"message":"mock error <code>","type":"mock_error",
                             "code":"mock_<code>","param":null}}, or on /messages Anthropic's
                             {"type":"error","error":{"type":"api_error"|...,"message":...}}
    retry_after=<s>          with status: header `Retry-After: <s>`
    retry_after_date=<s>     with status: `Retry-After` as an HTTP date <s> seconds from now
    retry_after_ms=<ms>      with status: header `retry-after-ms: <ms>`
    close                    read the request, then close the connection without an answer
    first_event_delay=<s>    streams: headers at once, the first SSE event <s> seconds later;
                             plain answers: wait <s> seconds before answering
    cut_after=<n>            streams: <n> SSE events, then drop the connection; plain answers:
                             the headers and half of the body, then drop the connection
    fail_first=<n>           the behaviours above apply only to the first <n> requests received
                             with this exact spec string; later ones are answered normally

A POST to any other path is answered 404. Every request is recorded (full path, endpoint,
lowercased headers, body, `received_at`, `cancelled`, `completed`) and can be read back with
`GET /_requests?prefix=<path prefix>`; `cancelled` (with `cancelled_at`) says the client went
away before the answer was complete. `POST /_reset` forgets the records and the `fail_first`
counters. `GET /health` answers `{"status": "ok"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from aiohttp import web

if __package__ in (None, ""):  # run as a script: make `tests.mock` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mock import anthropic_api, core, openai_api

ENDPOINTS = {**anthropic_api.ENDPOINTS, **openai_api.ENDPOINTS}
# Longest endings first, so `/chat/completions` is not taken for `/completions`.
ENDINGS = sorted(ENDPOINTS, key=len, reverse=True)


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path.rstrip("/")
    ending = next((e for e in ENDINGS if path.endswith("/" + e)), None)
    return await core.serve(request, ENDPOINTS[ending] if ending else None)


def build_app() -> web.Application:
    app = web.Application(handler_args={"handler_cancellation": True})
    app.router.add_get("/_requests", core.requests_seen)
    app.router.add_post("/_reset", core.reset)
    app.router.add_get("/health", core.health)
    app.router.add_post("/{path:.*}", dispatch)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = build_app()

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
