"""The mock upstream speaks each API well enough for the official SDKs; each `/behave/` works."""

from __future__ import annotations

import base64
import email.utils
import json
import struct
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.servers import Upstream, run_upstream

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
RESPONSE_TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "input_schema": {"type": "object"}},
    {"name": "get_time", "input_schema": {"type": "object"}},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


def spec(extra: str = "") -> str:
    """A `/behave/` prefix unique to one test (its own id, so its own fail_first counter)."""
    label = f"id={uuid.uuid4().hex[:10]}"
    return f"/behave/{label}{',' + extra if extra else ''}"


def oai(upstream: Upstream, prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{upstream.url}{prefix}/v1", api_key="sk-mock", max_retries=0)


def claude(upstream: Upstream, prefix: str = "") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{upstream.url}{prefix}", api_key="sk-ant-mock", max_retries=0
    )


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def sse_events(lines: Iterator[str]) -> list[tuple[str | None, Any]]:
    """(event name, data) of every SSE event in a stream of lines."""
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append((name, data if data == "[DONE]" else json.loads(data)))
            name = None
    return events


def post_stream(url: str, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    with httpx.stream("POST", url, json=body, timeout=10) as response:
        assert response.status_code == 200
        return sse_events(response.iter_lines())


# ---- chat completions -------------------------------------------------------------------
def test_chat_plain_answer_headers_and_records(upstream: Upstream) -> None:
    prefix = spec()
    with oai(upstream, prefix) as client:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=user("hi"))
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello!"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (10, 5)
    assert raw.headers["x-request-id"].startswith("req-mock-")
    assert raw.headers["x-unrelated-header"] == "dropped"
    [record] = upstream.requests(upstream.url + prefix)
    assert record["path"] == f"{prefix}/v1/chat/completions"
    assert record["endpoint"] == "chat/completions"
    assert record["headers"]["authorization"] == "Bearer sk-mock"
    assert record["body"]["messages"] == user("hi")
    assert record["completed"] and not record["cancelled"]


def test_chat_stream_with_usage(upstream: Upstream) -> None:
    with oai(upstream) as client:
        chunks = list(
            client.chat.completions.create(
                model="m",
                messages=user("hi"),
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock!"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_calls(upstream: Upstream, stream: bool) -> None:
    messages = [*user("only the last user message counts: mode:reasoning"), *user("go mode:tool")]
    with oai(upstream) as client:
        if stream:
            with client.chat.completions.stream(
                model="m", messages=messages, tools=TOOLS
            ) as events:
                answer = events.get_final_completion()
        else:
            answer = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert "reasoning_content" not in (choice.message.model_extra or {})


def test_chat_stream_splits_tool_arguments(upstream: Upstream) -> None:
    body = {"model": "m", "messages": user("mode:tools2"), "tools": TOOLS, "stream": True}
    events = post_stream(f"{upstream.url}/v1/chat/completions", body)
    deltas = [d["choices"][0]["delta"] for _, d in events[:-1] if d["choices"]]
    parts = [t for d in deltas for t in d.get("tool_calls", [])]
    heads = [p for p in parts if "id" in p]
    assert [(h["index"], h["type"], h["function"]["name"]) for h in heads] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    for index, expected in enumerate([{"city": "Paris"}, {"city": "Tokyo"}]):
        pieces = [p["function"]["arguments"] for p in parts if p["index"] == index]
        assert len([p for p in pieces if p]) >= 2
        assert json.loads("".join(pieces)) == expected
    assert events[-2][1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1][1] == "[DONE]"


def test_chat_reasoning_length_and_cached(upstream: Upstream) -> None:
    with oai(upstream) as client:
        answer = client.chat.completions.create(
            model="m", messages=user("mode:reasoning mode:length mode:cached")
        )
        chunks = list(
            client.chat.completions.create(model="m", messages=user("mode:reasoning"), stream=True)
        )
    message = answer.choices[0].message
    assert (message.model_extra or {})["reasoning_content"] == "Let me think."
    assert message.content == "Hello!"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 4
    kinds = [
        "reasoning"
        if (c.choices[0].delta.model_extra or {}).get("reasoning_content")
        else "content"
        if c.choices[0].delta.content
        else None
        for c in chunks
    ]
    kinds = [k for k in kinds if k]
    assert kinds == ["reasoning"] * 2 + ["content"] * 5


def test_chat_first_message_modes_still_work(upstream: Upstream) -> None:
    url = f"{upstream.url}/v1/chat/completions"
    answer = httpx.post(url, json={"model": "m", "messages": user("mode:status:429")})
    assert answer.status_code == 429
    assert answer.headers["x-ratelimit-reset-requests"] == "1s"
    assert answer.json()["error"]["code"] == "mock_429"
    plain = httpx.post(url, json={"model": "m", "messages": user("mode:plain"), "stream": True})
    assert plain.json()["object"] == "chat.completion"
    with httpx.stream(
        "POST", url, json={"model": "m", "messages": user("mode:cut"), "stream": True}
    ) as response:
        lines = []
        with pytest.raises(httpx.RemoteProtocolError):
            lines.extend(response.iter_lines())
    assert len(sse_events(iter(lines))) == 3
    started = time.monotonic()
    httpx.post(url, json={"model": "m", "messages": user("mode:slow:0.3")})
    assert time.monotonic() - started >= 0.3


# ---- legacy completions and embeddings --------------------------------------------------
def test_legacy_completions(upstream: Upstream) -> None:
    with oai(upstream) as client:
        answer = client.completions.create(model="m", prompt="hi")
        chunks = list(
            client.completions.create(
                model="m", prompt="hi", stream=True, stream_options={"include_usage": True}
            )
        )
    assert answer.object == "text_completion"
    assert answer.choices[0].text == "Hello!" and answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 15
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the mock!"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 10


def test_embeddings_float_base64_and_tokens(upstream: Upstream) -> None:
    texts = ["one two three", "four"]
    with oai(upstream) as client:
        decoded = client.embeddings.create(model="e", input=texts)  # the SDK asks for base64
        floats = client.embeddings.create(model="e", input=texts, encoding_format="float")
        tokens = client.embeddings.create(model="e", input=[[1, 2, 3, 4, 5]], dimensions=40)
        again = client.embeddings.create(model="e", input="four", encoding_format="float")
    assert [len(d.embedding) for d in floats.data] == [8, 8]
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]
    assert floats.data[0].embedding != floats.data[1].embedding
    assert again.data[0].embedding == floats.data[1].embedding
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (4, 4)
    assert len(tokens.data[0].embedding) == 40 and tokens.usage.prompt_tokens == 5
    [record] = [r for r in upstream.requests(upstream.url) if r["body"].get("input") == texts][:1]
    assert record["body"]["encoding_format"] == "base64"
    raw = httpx.post(
        f"{upstream.url}/v1/embeddings", json={"input": "four", "encoding_format": "base64"}
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack("<8f", packed)) == floats.data[1].embedding


# ---- the Responses API ------------------------------------------------------------------
def test_responses_plain_and_tool(upstream: Upstream) -> None:
    with oai(upstream) as client:
        answer = client.responses.create(model="m", input="hi", instructions="be brief")
        tool = client.responses.create(
            model="m", input=user("call mode:tool"), tools=RESPONSE_TOOLS
        )
        cached = client.responses.create(model="m", input="mode:cached mode:length")
    assert answer.id.startswith("resp_") and answer.object == "response"
    assert answer.status == "completed" and answer.output_text == "Hello from the mock!"
    assert answer.output[0].type == "message"
    assert answer.usage is not None
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (10, 5)
    assert answer.usage.total_tokens == 15
    assert answer.usage.output_tokens_details.reasoning_tokens == 0
    [call] = tool.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.call_id.startswith("call_") and json.loads(call.arguments) == {"city": "Paris"}
    assert cached.usage is not None and cached.usage.input_tokens_details.cached_tokens == 4
    assert cached.status == "incomplete"
    assert cached.incomplete_details is not None
    assert cached.incomplete_details.reason == "max_output_tokens"


def test_responses_stream_event_sequence(upstream: Upstream) -> None:
    events = post_stream(
        f"{upstream.url}/v1/responses", {"model": "m", "input": "hi", "stream": True}
    )
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert all(d["type"] == name for name, d in events)
    assert events[-1][1]["response"]["usage"]["total_tokens"] == 15


@pytest.mark.parametrize("tools", [False, True])
def test_responses_stream_parses_in_the_sdk(upstream: Upstream, tools: bool) -> None:
    extra: dict[str, Any] = {"tools": RESPONSE_TOOLS} if tools else {}
    with oai(upstream) as client:
        with client.responses.stream(model="m", input="mode:tool", **extra) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
        raw = list(client.responses.create(model="m", input="mode:tool", stream=True, **extra))
    assert [e.type for e in raw] == kinds
    assert final.usage is not None and final.usage.output_tokens == 5
    if tools:
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
        [call] = final.output
        assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    else:
        assert final.output_text == "Hello from the mock!"


def test_responses_failed_stream(upstream: Upstream) -> None:
    with oai(upstream) as client:
        events = list(client.responses.create(model="m", input="mode:failed", stream=True))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]


# ---- the Anthropic Messages API ---------------------------------------------------------
def test_messages_plain_and_stream(upstream: Upstream) -> None:
    prefix = spec()
    with claude(upstream, prefix) as client:
        message = client.messages.create(model="c", max_tokens=10, messages=user("hi"))
        with client.messages.stream(model="c", max_tokens=10, messages=user("hi")) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text == "Hello!"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0
    assert final.content[0].type == "text" and final.content[0].text == "Hello!"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    assert "ping" not in kinds  # the SDK hides pings; the raw order is checked below
    records = upstream.requests(upstream.url + prefix)
    assert [r["path"] for r in records] == [f"{prefix}/v1/messages"] * 2
    assert all(r["headers"]["authorization"] == "Bearer sk-ant-mock" for r in records)


def test_messages_raw_stream_order(upstream: Upstream) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": user("hi"), "stream": True}
    prefix = spec()
    auth = {"x-api-key": "sk-ant-raw", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{upstream.url}{prefix}/v1/messages", json=body, headers=auth) as r:
        events = sse_events(r.iter_lines())
    [record] = upstream.requests(upstream.url + prefix)
    assert record["headers"]["x-api-key"] == "sk-ant-raw"
    assert record["headers"]["anthropic-version"] == "2023-06-01"
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(d["type"] == name for name, d in events)
    assert events[0][1]["message"]["stop_reason"] is None
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"] == {"output_tokens": 5}


@pytest.mark.parametrize("stream", [False, True])
def test_messages_tools_reasoning_and_cache(upstream: Upstream, stream: bool) -> None:
    messages = [
        *user("first"),
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "mode:tools2 mode:reasoning"}]},
    ]
    args: dict[str, Any] = {"model": "c", "max_tokens": 9, "messages": messages}
    with claude(upstream) as client:
        if stream:
            with client.messages.stream(**args, tools=ANTHROPIC_TOOLS) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**args, tools=ANTHROPIC_TOOLS)
        cached = client.messages.create(**{**args, "messages": user("mode:cached mode:length")})
    assert [b.type for b in message.content] == ["thinking", "tool_use", "tool_use"]
    thinking, first, second = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think."
    assert thinking.signature
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.name, first.input) == ("get_weather", {"city": "Paris"})
    assert (second.name, second.input) == ("get_time", {"city": "Tokyo"})
    assert first.id.startswith("toolu_") and first.id != second.id
    assert message.stop_reason == "tool_use"
    assert cached.stop_reason == "max_tokens"
    assert (cached.usage.input_tokens, cached.usage.cache_read_input_tokens) == (6, 4)


def test_count_tokens(upstream: Upstream) -> None:
    with claude(upstream) as client:
        counted = client.messages.count_tokens(
            model="c", system="be brief", messages=user("one two three")
        )
    assert counted.input_tokens == 5
    [record] = [r for r in upstream.requests(upstream.url) if r["path"].endswith("count_tokens")]
    assert record["endpoint"] == "messages/count_tokens"


# ---- /behave/ ---------------------------------------------------------------------------
ENDPOINT_BODIES = {
    "/v1/chat/completions": {"model": "m", "messages": user("hi")},
    "/v1/completions": {"model": "m", "prompt": "hi"},
    "/v1/embeddings": {"model": "e", "input": "hi"},
    "/v1/responses": {"model": "m", "input": "hi"},
    "/v1/messages": {"model": "c", "max_tokens": 5, "messages": user("hi")},
    "/v1/messages/count_tokens": {"model": "c", "messages": user("hi")},
}


@pytest.mark.parametrize("path", list(ENDPOINT_BODIES))
def test_status_on_every_endpoint(upstream: Upstream, path: str) -> None:
    answer = httpx.post(
        f"{upstream.url}{spec('status=503,retry_after=7')}{path}", json=ENDPOINT_BODIES[path]
    )
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"
    if "/messages" in path:
        assert answer.json()["type"] == "error"
        assert answer.json()["error"] == {"type": "overloaded_error", "message": "mock error 503"}
    else:
        assert answer.json() == {
            "error": {
                "message": "mock error 503",
                "type": "mock_error",
                "code": "mock_503",
                "param": None,
            }
        }
    normal = httpx.post(f"{upstream.url}{spec()}{path}", json=ENDPOINT_BODIES[path])
    assert normal.status_code == 200


def test_status_parses_in_the_sdks(upstream: Upstream) -> None:
    with (
        oai(upstream, spec("status=429")) as client,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        client.chat.completions.create(model="m", messages=user("hi"))
    assert caught.value.code == "mock_429"
    with (
        claude(upstream, spec("status=529")) as anthropic_client,
        pytest.raises(anthropic.InternalServerError) as failed,
    ):
        anthropic_client.messages.create(model="c", max_tokens=5, messages=user("hi"))
    assert failed.value.status_code == 529
    assert failed.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_retry_after_forms(upstream: Upstream) -> None:
    url = f"{upstream.url}{spec('status=429,retry_after_date=30,retry_after_ms=1500')}/v1/responses"
    answer = httpx.post(url, json={"model": "m", "input": "hi"})
    assert answer.status_code == 429
    assert answer.headers["retry-after-ms"] == "1500"
    when = email.utils.parsedate_to_datetime(answer.headers["retry-after"]).timestamp()
    assert 25 < when - time.time() <= 31
    assert answer.headers["retry-after"].endswith(" GMT")
    plain = httpx.post(f"{upstream.url}{spec('status=500')}/v1/responses", json={"input": "x"})
    assert "retry-after" not in plain.headers and "retry-after-ms" not in plain.headers


def test_fail_first_counts_per_spec_and_resets(upstream: Upstream) -> None:
    prefix = spec("status=500,fail_first=2")
    url = f"{upstream.url}{prefix}/v1/chat/completions"
    body = {"model": "m", "messages": user("hi")}
    assert [httpx.post(url, json=body).status_code for _ in range(4)] == [500, 500, 200, 200]
    other = f"{upstream.url}{spec('status=500,fail_first=1')}/v1/embeddings"
    assert httpx.post(other, json={"input": "x"}).status_code == 500
    assert len(upstream.requests(upstream.url + prefix)) == 4
    assert httpx.post(f"{upstream.url}/_reset").status_code == 200
    assert upstream.requests(upstream.url + prefix) == []
    assert [httpx.post(url, json=body).status_code for _ in range(3)] == [500, 500, 200]


def test_close_drops_the_connection(upstream: Upstream) -> None:
    prefix = spec("close,fail_first=1")
    url = f"{upstream.url}{prefix}/v1/messages"
    body = ENDPOINT_BODIES["/v1/messages"]
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(url, json=body)
    assert httpx.post(url, json=body).status_code == 200
    records = upstream.requests(upstream.url + prefix)
    assert len(records) == 2 and records[0]["body"] == body


def test_first_event_delay(upstream: Upstream) -> None:
    url = f"{upstream.url}{spec('first_event_delay=0.6')}/v1/chat/completions"
    body = {"model": "m", "messages": user("hi"), "stream": True}
    started = time.monotonic()
    with httpx.stream("POST", url, json=body, timeout=10) as response:
        headers_at = time.monotonic() - started
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        first_at = time.monotonic() - started
        rest = list(lines)
    assert response.status_code == 200 and headers_at < 0.4
    assert first_at >= 0.6 and first.startswith("data: ")
    assert [line for line in rest if line][-1] == "data: [DONE]"
    started = time.monotonic()
    plain = httpx.post(url, json={**body, "stream": False})
    assert plain.status_code == 200 and time.monotonic() - started >= 0.6


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "m", "messages": user("hi"), "stream": True}),
        ("/v1/responses", {"model": "m", "input": "hi", "stream": True}),
        ("/v1/messages", {**ENDPOINT_BODIES["/v1/messages"], "stream": True}),
    ],
)
def test_cut_after(upstream: Upstream, path: str, body: dict[str, Any]) -> None:
    prefix = spec("cut_after=2")
    lines: list[str] = []
    with httpx.stream("POST", f"{upstream.url}{prefix}{path}", json=body) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            lines.extend(response.iter_lines())
    assert len(sse_events(iter(lines))) == 2
    [record] = upstream.requests(upstream.url + prefix)
    assert record["completed"]


def test_cut_after_on_a_plain_answer_truncates_the_body(upstream: Upstream) -> None:
    url = f"{upstream.url}{spec('cut_after=1')}/v1/embeddings"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(url, json={"input": "x"})


def test_bad_specs_and_paths(upstream: Upstream) -> None:
    body = {"input": "x"}
    assert (
        httpx.post(f"{upstream.url}/behave/nonsense=1/v1/embeddings", json=body).status_code == 400
    )
    assert (
        httpx.post(f"{upstream.url}/behave/status=abc/v1/embeddings", json=body).status_code == 400
    )
    assert httpx.post(f"{upstream.url}/v1/unknown", json=body).status_code == 404
    bad = httpx.post(f"{upstream.url}/v1/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "mock_error"
