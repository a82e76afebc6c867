"""Anthropic Messages <-> Chat Completions, both ways, checked against both official SDKs.

Streams are recorded SSE bodies in tests/data/anthropic. Every event a bridge writes is parsed
by the SDK of the API it imitates, and each SDK's own stream accumulation must arrive at the
same answer as the non-stream translation of the upstream's accumulated answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.message_create_params import MessageCreateParamsStreaming
from anthropic.types.shared import ErrorResponse
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from llm_gateway.errors import BadRequest
from llm_gateway.translate.anthropic_common import (
    TranslationError,
    anthropic_error_to_openai,
    anthropic_error_type,
    anthropic_usage_to_chat,
    chat_usage_to_anthropic,
    estimate_input_tokens,
    openai_error_to_anthropic,
)
from llm_gateway.translate.anthropic_in import (
    MessagesStream,
    chat_to_message,
    messages_to_chat,
    server_tool_names,
)
from llm_gateway.translate.anthropic_out import ChatStream, chat_to_messages, message_to_chat

DATA = Path(__file__).parent / "data" / "anthropic"
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
MESSAGES_REQUEST: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsStreaming)
CHAT_STREAMS = [
    "chat_text.sse",
    "deepseek_reasoner.sse",
    "qwen_text_then_parallel_tools.sse",
    "interleaved_parallel_tools.sse",
    "content_and_finish_in_one_chunk.sse",
    "ollama_tools_no_usage.sse",
]
ANTHROPIC_STREAMS = ["anthropic_thinking_tools.sse", "anthropic_stop_sequence.sse"]
WEATHER_TOOL = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


# helpers --------------------------------------------------------------------------------------
def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def sse(raw: bytes | str) -> list[tuple[str | None, str]]:
    """(event type, data) of each server-sent event."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    events = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines:
            continue
        kind = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        events.append((kind, data))
    return events


def chat_chunks(name: str) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in sse((DATA / name).read_text()) if data != "[DONE]"]


def anthropic_events(name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(str(kind), json.loads(data)) for kind, data in sse((DATA / name).read_text())]


def run_messages_stream(chunks: list[dict[str, Any]], **kwargs: Any) -> list[bytes]:
    stream = MessagesStream("claude-sonnet-4-5", "msg_gw1", **kwargs)
    out = [piece for chunk in chunks for piece in stream.feed(chunk)]
    return out + stream.finish()


def written_events(out: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for piece in out:
        assert piece.startswith(b"event: ") and piece.endswith(b"\n\n")
        [(kind, data)] = sse(piece)
        payload = json.loads(data)
        assert payload["type"] == kind
        events.append(payload)
    return events


def chat_completion_of(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What the openai SDK accumulates from a chat stream."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for n, chunk in enumerate(chunks):
        if n:  # the SDK concatenates a repeated role (Ollama repeats it)
            for choice in chunk["choices"]:
                choice["delta"].pop("role", None)
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.current_completion_snapshot.model_dump(mode="json")


def anthropic_message_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the anthropic SDK accumulates from a stream."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event["type"] == "ping":
            continue
        parsed = STREAM_EVENT.validate_python(event)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    return Message.model_validate(snapshot.model_dump(mode="json")).model_dump(mode="json")


def completion_view(completion: dict[str, Any]) -> dict[str, Any]:
    """What a chat completion says, leaving out the SDK's additions and JSON spacing."""
    [choice] = completion["choices"]
    message = choice["message"]
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or []
    ]
    said = {key: message.get(key) for key in ("role", "content", "reasoning_content")}
    envelope = {key: completion[key] for key in ("id", "object", "created", "model")}
    envelope["usage"] = CompletionUsage.model_validate(completion["usage"]).model_dump(
        exclude_none=True
    )
    return {**envelope, **said, "calls": calls, "finish_reason": choice["finish_reason"]}


def chat_lines(out: list[bytes]) -> list[str]:
    for piece in out:
        assert piece.startswith(b"data: ") and piece.endswith(b"\n\n")
    return [data for _, data in sse(b"".join(out))]


# Anthropic in: the request --------------------------------------------------------------------
def to_chat_messages(messages: list[Any], **fields: Any) -> list[dict[str, Any]]:
    body = {"model": "claude", "max_tokens": 100, "messages": messages, **fields}
    chat: list[dict[str, Any]] = messages_to_chat(body, "m")["messages"]
    return chat


def test_a_claude_code_request_becomes_a_chat_request() -> None:
    body = load("claude_code_request.json")
    assert messages_to_chat(body, "qwen3-coder-plus") == load("claude_code_request.chat.json")
    assert server_tool_names(body) == ["web_search"]


def tool_use(id_: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": "Bash", "input": {"command": id_}}


def tool_result(id_: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id_, "content": content, **extra}


def call(id_: str) -> dict[str, Any]:
    arguments = json.dumps({"command": id_}, separators=(",", ":"))
    return {"id": id_, "type": "function", "function": {"name": "Bash", "arguments": arguments}}


@pytest.mark.parametrize(
    ("messages", "fields", "expected"),
    [
        pytest.param(
            [{"role": "user", "content": "hi"}],
            {"system": "Be brief."},
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            id="system-string",
        ),
        pytest.param(
            [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}],
                }
            ],
            {"system": [{"type": "text", "text": ""}]},
            [{"role": "user", "content": "hi"}],
            id="empty-text-blocks-dropped",
        ),
        pytest.param(
            [
                {"role": "user", "content": [{"type": "text", "text": ""}]},
                {"role": "system", "content": [{"type": "text", "text": "Plan mode."}]},
                {"role": "user", "content": "go"},
            ],
            {},
            [{"role": "system", "content": "Plan mode."}, {"role": "user", "content": "go"}],
            id="system-entry-in-messages",
        ),
        pytest.param(
            [
                {"role": "assistant", "content": [tool_use("a"), tool_use("b"), tool_use("c")]},
                {
                    "role": "user",
                    "content": [
                        tool_result("a"),
                        {"type": "text", "text": "and then?"},
                        tool_result(
                            "b", [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
                        ),
                        tool_result("c", "boom", is_error=True),
                    ],
                },
            ],
            {},
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("a"), call("b"), call("c")],
                },
                {"role": "tool", "tool_call_id": "a", "content": "ok"},
                {"role": "tool", "tool_call_id": "b", "content": "one\n\ntwo"},
                {"role": "tool", "tool_call_id": "c", "content": "Error: boom"},
                {"role": "user", "content": "and then?"},
            ],
            id="several-tool-results-then-text",
        ),
        pytest.param(
            [
                {"role": "assistant", "content": [tool_use("a")]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a"}]},
            ],
            {},
            [
                {"role": "assistant", "content": None, "tool_calls": [call("a")]},
                {"role": "tool", "tool_call_id": "a", "content": ""},
            ],
            id="tool-result-without-content",
        ),
        pytest.param(
            [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "xyz"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "x", "signature": ""},
                        {"type": "text", "text": "Hello"},
                    ],
                },
                {"role": "assistant", "content": "again"},
            ],
            {},
            [{"role": "assistant", "content": "Hello"}, {"role": "assistant", "content": "again"}],
            id="thinking-dropped",
        ),
        pytest.param(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "title": "notes.txt",
                            "source": {
                                "type": "text",
                                "media_type": "text/plain",
                                "data": "buy milk",
                            },
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "content",
                                "content": [{"type": "text", "text": "page"}],
                            },
                        },
                        {"type": "text", "text": "Summarise."},
                    ],
                }
            ],
            {},
            [{"role": "user", "content": "notes.txt\n\nbuy milk\n\npage\n\nSummarise."}],
            id="plain-text-documents",
        ),
        pytest.param(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/webp",
                                "data": "UklGRg==",
                            },
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
            {},
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/webp;base64,UklGRg=="},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
            id="image",
        ),
    ],
)
def test_messages_become_chat_messages(
    messages: list[Any], fields: dict[str, Any], expected: list[Any]
) -> None:
    assert to_chat_messages(messages, **fields) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": {"type": "auto"}}, {"tool_choice": "auto"}),
        ({"tool_choice": {"type": "any"}}, {"tool_choice": "required"}),
        ({"tool_choice": {"type": "none"}}, {"tool_choice": "none"}),
        (
            {"tool_choice": {"type": "tool", "name": "get_weather"}},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice_maps_onto_chat(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    body = {"max_tokens": 5, "messages": [], "tools": [WEATHER_TOOL], **fields}
    chat = messages_to_chat(body, "m")
    function = {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}
    assert chat["tools"] == [{"type": "function", "function": function}]
    assert {key: chat[key] for key in expected} == expected


def test_parameters_chat_lacks_are_dropped_and_the_rest_carried() -> None:
    body = {
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "top_k": 5,
        "top_p": 0.5,
        "temperature": 0.2,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "service_tier": "auto",
        "stop_sequences": ["END"],
        "output_config": {
            "effort": "high",
            "format": {"type": "json_schema", "schema": {"type": "object"}},
        },
    }
    assert messages_to_chat(body, "deepseek-chat") == {
        "model": "deepseek-chat",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.5,
        "stop": ["END"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": {"type": "object"}},
        },
    }


def user_block(block: dict[str, Any]) -> dict[str, Any]:
    return {"max_tokens": 5, "messages": [{"role": "user", "content": [block]}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(
            user_block(
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                }
            ),
            "messages.0.content.0",
            id="pdf-document",
        ),
        pytest.param(
            user_block({"type": "image", "source": {"type": "file", "file_id": "file_01"}}),
            "messages.0.content.0",
            id="file-image",
        ),
        pytest.param(
            user_block({"type": "search_result", "source": "x", "title": "t", "content": []}),
            "messages.0.content.0",
            id="unknown-block",
        ),
        pytest.param(
            {
                "max_tokens": 5,
                "messages": [],
                "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
            },
            "mcp_servers",
            id="mcp-servers",
        ),
        pytest.param(
            {
                "max_tokens": 5,
                "messages": [],
                "tools": [WEATHER_TOOL, {"type": "web_search_20250305", "name": "web_search"}],
                "tool_choice": {"type": "tool", "name": "web_search"},
            },
            "tool_choice",
            id="forced-server-tool",
        ),
        pytest.param(
            {
                "max_tokens": 5,
                "messages": [],
                "tools": [{"type": "bash_20250124", "name": "bash"}],
                "tool_choice": {"type": "any"},
            },
            "tool_choice",
            id="any-tool-but-none-callable",
        ),
        pytest.param(
            {"max_tokens": 5, "messages": [{"role": "developer", "content": "x"}]},
            "messages.0.role",
            id="role",
        ),
        pytest.param({"max_tokens": 5, "messages": "hi"}, "messages", id="not-a-list"),
    ],
)
def test_what_chat_cannot_honour_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        messages_to_chat(body, "m")
    assert caught.value.param == param
    assert isinstance(caught.value, BadRequest)
    assert (caught.value.status, caught.value.type) == (400, "invalid_request_error")


def test_only_streams_ask_for_usage() -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert "stream" not in messages_to_chat(body, "m")
    streamed = messages_to_chat({**body, "stream": True}, "m")
    assert (streamed["stream"], streamed["stream_options"]) == (True, {"include_usage": True})


# Anthropic in: the answer ---------------------------------------------------------------------
def test_a_chat_completion_becomes_a_message() -> None:
    message = chat_to_message(load("chat_completion_reasoning_tools.json"), "claude-x", "msg_gw7")
    Message.model_validate(message)
    assert message == {
        "id": "msg_gw7",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "The user wants two forecasts.", "signature": ""},
            {"type": "text", "text": "Checking both cities."},
            {
                "type": "tool_use",
                "id": "call_00_Paris",
                "name": "get_weather",
                "input": {"location": "Paris"},
            },
            {
                "type": "tool_use",
                "id": "call_01_Tokyo",
                "name": "get_weather",
                "input": {"_raw_arguments": '{"location": "Tok'},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 176,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
            "output_tokens": 85,
        },
    }


@pytest.mark.parametrize(
    ("finish_reason", "tool_calls", "stop_reason"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("function_call", False, "tool_use"),
        ("content_filter", False, "refusal"),
        ("stop", True, "tool_use"),
        (None, False, "end_turn"),
        ("length", True, "max_tokens"),
    ],
)
def test_finish_reasons_become_stop_reasons(
    finish_reason: str | None, tool_calls: bool, stop_reason: str
) -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]
    reply = {"role": "assistant", "content": "x", "tool_calls": calls if tool_calls else None}
    chat = {"choices": [{"index": 0, "message": reply, "finish_reason": finish_reason}]}
    message = chat_to_message(chat, "m", "msg_1")
    assert message["stop_reason"] == stop_reason
    assert message["usage"] == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    Message.model_validate(message)


# Anthropic in: streams ------------------------------------------------------------------------
@pytest.mark.parametrize("name", CHAT_STREAMS)
def test_stream_events_follow_anthropics_sequence(name: str) -> None:
    events = written_events(run_messages_stream(chat_chunks(name)))
    for event in events:
        STREAM_EVENT.validate_python(event)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for event in events[1:-2]:
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index, next_index = event["index"], next_index + 1
        else:
            assert event["index"] == open_index
            if event["type"] == "content_block_stop":
                open_index = None
    assert open_index is None


@pytest.mark.parametrize("name", CHAT_STREAMS)
def test_streamed_message_matches_the_non_stream_translation(name: str) -> None:
    chunks = chat_chunks(name)
    completion = chat_completion_of(json.loads(json.dumps(chunks)))
    expected = Message.model_validate(chat_to_message(completion, "claude-sonnet-4-5", "msg_gw1"))
    streamed = anthropic_message_of(written_events(run_messages_stream(chunks)))
    assert streamed == expected.model_dump(mode="json")


def test_interleaved_parallel_calls_stay_sequential_blocks() -> None:
    events = written_events(run_messages_stream(chat_chunks("interleaved_parallel_tools.sse")))
    blocks = [
        (e["index"], e.get("delta", e.get("content_block")))
        for e in events[1:-2]
        if e["type"] != "content_block_stop"
    ]
    assert blocks == [
        (0, {"type": "tool_use", "id": "call_r", "name": "Read", "input": {}}),
        (0, {"type": "input_json_delta", "partial_json": '{"file_path": '}),
        (0, {"type": "input_json_delta", "partial_json": '"a.py"}'}),
        (1, {"type": "tool_use", "id": "call_b", "name": "Bash", "input": {}}),
        (1, {"type": "input_json_delta", "partial_json": '{"command":"ls -la"}'}),
        (2, {"type": "tool_use", "id": "call_g", "name": "Glob", "input": {}}),
        (2, {"type": "input_json_delta", "partial_json": '{"pattern":"*.md"}'}),
    ]


def delta_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def piece(arguments: str, **fields: Any) -> dict[str, Any]:
    function = {"arguments": arguments}
    if "name" in fields:
        function["name"] = fields.pop("name")
    return {"tool_calls": [{**fields, "function": function}]}


def block_view(out: list[bytes]) -> list[tuple[str, Any]]:
    """Each block event as (type, what it carries), message events left out."""
    view = []
    for event in written_events(out):
        carried = event.get("content_block") or event.get("delta")
        if event["type"].startswith("content_block"):
            view.append((event["type"][14:], carried))
    return view


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(
            [
                delta_chunk(piece('{"a": 1}', id="call_1", name="f")),
                delta_chunk(piece('{"b": 2}', id="call_2", name="g")),
            ],
            id="no-index-told-apart-by-id",
        ),
        pytest.param(
            [
                delta_chunk(piece('{"a":', index=0, id="call_1", name="f")),
                delta_chunk(piece(" 1}", index=0, id="")),
                delta_chunk(piece('{"b": 2}', index=0, id="call_2", name="g")),
            ],
            id="index-reused-with-a-new-id",
        ),
    ],
)
def test_tool_calls_are_told_apart_without_distinct_indexes(chunks: list[dict[str, Any]]) -> None:
    out = run_messages_stream([*chunks, delta_chunk({}, "tool_calls")])
    message = anthropic_message_of(written_events(out))
    calls = [(b["id"], b["name"], b["input"]) for b in message["content"]]
    assert calls == [("call_1", "f", {"a": 1}), ("call_2", "g", {"b": 2})]


def test_held_calls_are_sent_before_text_that_follows_them() -> None:
    chunks = [
        delta_chunk(piece('{"a":', index=0, id="call_1", name="f")),
        delta_chunk(piece('{"b": 2}', index=1, id="call_2", name="g")),
        delta_chunk(piece(" 1}", index=0)),
        delta_chunk({"content": "done"}, "stop"),
    ]
    assert block_view(run_messages_stream(chunks)) == [
        ("start", {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}),
        ("delta", {"type": "input_json_delta", "partial_json": '{"a":'}),
        ("delta", {"type": "input_json_delta", "partial_json": " 1}"}),
        ("stop", None),
        ("start", {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}),
        ("delta", {"type": "input_json_delta", "partial_json": '{"b":2}'}),
        ("stop", None),
        ("start", {"type": "text", "text": ""}),
        ("delta", {"type": "text_delta", "text": "done"}),
        ("stop", None),
    ]


def test_sequential_parallel_calls_stream_live() -> None:
    events = written_events(run_messages_stream(chat_chunks("qwen_text_then_parallel_tools.sse")))
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == [
        {"type": "text_delta", "text": "Checking both cities."},
        {"type": "input_json_delta", "partial_json": '{"location": "Pa'},
        {"type": "input_json_delta", "partial_json": 'ris"}'},
        {"type": "input_json_delta", "partial_json": '{"location": "Tokyo"}'},
    ]
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


def test_reasoning_streams_as_a_signed_thinking_block() -> None:
    events = written_events(run_messages_stream(chat_chunks("deepseek_reasoner.sse")))
    assert [e["type"] for e in events[:6]] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
    ]
    assert events[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[4]["delta"] == {"type": "signature_delta", "signature": ""}
    assert events[-2]["usage"] == {
        "input_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 16,
        "output_tokens": 30,
    }


def test_usage_arrives_on_message_delta_and_in_the_property() -> None:
    chunks = chat_chunks("chat_text.sse")
    stream = MessagesStream("claude-x", "msg_gw2", input_tokens=2000)
    events = written_events([piece for chunk in chunks for piece in stream.feed(chunk)])
    assert events[0]["message"]["usage"]["input_tokens"] == 2000
    assert events[-1]["type"] == "content_block_stop"  # message_delta waits for finish()
    assert stream.usage == chunks[-1]["usage"]
    final = written_events(stream.finish())
    assert final[0]["usage"] == {
        "input_tokens": 52,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 2048,
        "output_tokens": 12,
    }
    assert [e["type"] for e in final] == ["message_delta", "message_stop"]


def test_a_stream_without_usage_reports_the_estimate() -> None:
    out = run_messages_stream(chat_chunks("ollama_tools_no_usage.sse"), input_tokens=37)
    delta = written_events(out)[-2]
    assert delta["usage"] == {
        "input_tokens": 37,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    assert delta["delta"]["stop_reason"] == "tool_use"


def test_an_upstream_cut_mid_stream_ends_with_an_error_event() -> None:
    stream = MessagesStream("claude-x", "msg_gw3")
    for chunk in chat_chunks("chat_text.sse")[:2]:
        stream.feed(chunk)
    out = stream.fail("upstream closed the connection")
    [(kind, data)] = sse(out[-1])
    assert kind == "error"
    error = ErrorResponse.model_validate_json(data)
    assert (error.error.type, error.error.message) == (
        "api_error",
        "upstream closed the connection",
    )
    assert stream.finish() == [] and stream.feed(chat_chunks("chat_text.sse")[2]) == []


def test_an_empty_upstream_stream_still_makes_a_whole_message() -> None:
    events = written_events(MessagesStream("claude-x", "msg_gw4").finish())
    assert [e["type"] for e in events] == ["message_start", "message_delta", "message_stop"]


# Anthropic out: the request -------------------------------------------------------------------
def test_an_openai_request_becomes_a_messages_request() -> None:
    body = chat_to_messages(load("openai_request.json"), "claude-sonnet-4-5-20250929")
    assert body == load("openai_request.anthropic.json")
    MESSAGES_REQUEST.validate_python(body)


def to_messages(messages: list[Any], **fields: Any) -> dict[str, Any]:
    return chat_to_messages({"model": "gpt", "messages": messages, **fields}, "claude", 256)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {"type": "tool", "name": "get_weather"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({}, None),
    ],
)
def test_tool_choice_maps_onto_anthropic(fields: dict[str, Any], expected: Any) -> None:
    function = {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}
    body = to_messages([], tools=[{"type": "function", "function": function}], **fields)
    assert body["tools"] == [WEATHER_TOOL]
    assert body.get("tool_choice") == expected


def test_a_tool_choice_anthropic_lacks_is_left_to_the_default() -> None:
    function = {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    body = to_messages([], tools=[{"type": "function", "function": function}], tool_choice=choice)
    assert "tool_choice" not in body


def test_turns_of_one_role_merge_and_max_tokens_has_a_default() -> None:
    body = to_messages(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "  "},
            {"role": "system", "content": "late instructions"},
        ],
        stop=["x", "y"],
        max_tokens=None,
    )
    assert body == {
        "model": "claude",
        "system": "late instructions",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
        "max_tokens": 256,
        "stop_sequences": ["x", "y"],
    }
    MESSAGES_REQUEST.validate_python({**body, "stream": True})


def test_json_schema_output_and_pdf_files_carry_over() -> None:
    pdf = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
    }
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = to_messages(
        [{"role": "user", "content": [pdf]}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}
                        ],
                    }
                ]
            },
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}
                ]
            },
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}
                        ],
                    }
                ]
            },
            "messages.0.content.0",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_what_anthropic_cannot_honour_is_refused(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_to_messages({"model": "gpt", "messages": [], **fields}, "claude")
    assert caught.value.param == param


# Anthropic out: the answer --------------------------------------------------------------------
def test_a_message_becomes_a_chat_completion() -> None:
    completion = message_to_chat(
        load("anthropic_message_thinking_tools.json"), "gpt-ish", created=1
    )
    ChatCompletion.model_validate(completion)
    assert completion == {
        "id": "chatcmpl-01EcyWo6m4hyW8KHs2y2pei5",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-ish",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking both.",
                    "tool_calls": [
                        {
                            "id": "toolu_01Paris",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"Paris"}',
                            },
                        },
                        {
                            "id": "toolu_01Tokyo",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"Tokyo"}',
                            },
                        },
                    ],
                    "reasoning_content": "Two cities, two calls.",
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 3050,
            "completion_tokens": 120,
            "total_tokens": 3170,
            "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 1000},
        },
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_stop_reasons_become_finish_reasons(stop_reason: str | None, finish_reason: str) -> None:
    message = {
        "id": "msg_1",
        "content": [],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    completion = message_to_chat(message, "m")
    assert completion["choices"][0]["finish_reason"] == finish_reason
    assert completion["choices"][0]["message"]["content"] == ""
    ChatCompletion.model_validate(completion)


# Anthropic out: streams -----------------------------------------------------------------------
def run_chat_stream(name: str, include_usage: bool = True) -> tuple[ChatStream, list[bytes]]:
    stream = ChatStream("gpt-ish", include_usage, created=1)
    out = [piece for kind, data in anthropic_events(name) for piece in stream.feed(kind, data)]
    return stream, out + stream.finish()


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
def test_streamed_completion_matches_the_non_stream_translation(name: str) -> None:
    _, out = run_chat_stream(name)
    lines = chat_lines(out)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    message = anthropic_message_of([data for _, data in anthropic_events(name)])
    expected = message_to_chat(message, "gpt-ish", created=1)
    ChatCompletion.model_validate(expected)
    assert completion_view(chat_completion_of(chunks)) == completion_view(expected)


def test_tool_calls_stream_with_their_index_id_and_name_first() -> None:
    _, out = run_chat_stream("anthropic_thinking_tools.sse", include_usage=False)
    chunks = [json.loads(line) for line in chat_lines(out)[:-1]]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls == [
        {
            "index": 0,
            "id": "toolu_01Paris",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"location": "Pa'}},
        {"index": 0, "function": {"arguments": 'ris"}'}},
        {
            "index": 1,
            "id": "toolu_01Tokyo",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 1, "function": {"arguments": '{"location": "Tokyo"}'}},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["choices"] for c in chunks)  # no usage chunk unless asked for


def test_the_usage_chunk_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    stream, out = run_chat_stream("anthropic_thinking_tools.sse")
    usage_chunk = json.loads(chat_lines(out)[-2])
    expected = {
        "prompt_tokens": 3050,
        "completion_tokens": 120,
        "total_tokens": 3170,
        "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 1000},
    }
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == expected
    assert stream.usage == expected


def test_an_anthropic_error_event_becomes_an_error_line() -> None:
    stream, out = run_chat_stream("anthropic_overloaded.sse")
    lines = chat_lines(out)
    assert json.loads(lines[1])["choices"][0]["delta"] == {"content": "Once upon"}
    assert json.loads(lines[-1]) == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "code": None, "param": None}
    }
    assert stream.usage is None  # no final message_delta: the caller estimates


def test_fail_ends_a_chat_stream_with_an_error_line() -> None:
    stream = ChatStream("gpt-ish", include_usage=True)
    stream.feed("message_start", anthropic_events("anthropic_stop_sequence.sse")[0][1])
    [line] = chat_lines(stream.fail("upstream closed the connection"))
    assert json.loads(line)["error"]["message"] == "upstream closed the connection"
    assert stream.finish() == []


# shared ---------------------------------------------------------------------------------------
def test_usage_converts_both_ways_without_counting_cache_twice() -> None:
    anthropic = {
        "input_tokens": 50,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 2000,
        "output_tokens": 120,
    }
    chat = anthropic_usage_to_chat(anthropic)
    assert chat == {
        "prompt_tokens": 3050,
        "completion_tokens": 120,
        "total_tokens": 3170,
        "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 1000},
    }
    assert chat_usage_to_anthropic(chat) == anthropic
    openai_usage = {
        "prompt_tokens": 3050,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 2000},
    }
    assert chat_usage_to_anthropic(openai_usage) == {
        "input_tokens": 1050,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 2000,
        "output_tokens": 7,
    }


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_statuses_map_onto_anthropic_error_types(status: int, type_: str) -> None:
    assert anthropic_error_type(status) == type_


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            429,
            b'{"error": {"message": "Rate limit reached", "type": "requests", "code": "429"}}',
            "Rate limit reached",
        ),
        (400, {"error": {"message": "bad model", "type": "invalid_request_error"}}, "bad model"),
        (503, b'{"detail": "Service Unavailable"}', "Service Unavailable"),
        (500, b'{"error": "boom"}', "boom"),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (504, b"", "upstream answered HTTP 504"),
    ],
)
def test_chat_errors_pass_through_in_anthropics_shape(status: int, body: Any, message: str) -> None:
    error = ErrorResponse.model_validate_json(openai_error_to_anthropic(status, body))
    assert (error.error.message, error.error.type) == (message, anthropic_error_type(status))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            529,
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            ("Overloaded", "overloaded_error"),
        ),
        (
            401,
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            },
            ("invalid x-api-key", "authentication_error"),
        ),
        (500, b"oops", ("oops", "api_error")),
    ],
)
def test_anthropic_errors_pass_through_in_openais_shape(
    status: int, body: Any, expected: tuple[str, str]
) -> None:
    error = json.loads(anthropic_error_to_openai(status, body))["error"]
    assert (error["message"], error["type"]) == expected
    assert error.keys() == {"message", "type", "code", "param"}


def test_input_tokens_are_estimated_from_characters_and_images() -> None:
    text = {
        "max_tokens": 5,
        "system": "x" * 40,
        "messages": [{"role": "user", "content": "y" * 40}],
    }
    assert estimate_input_tokens(text) == 20
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "z" * 10_000},
    }
    with_image = {
        **text,
        "messages": [{"role": "user", "content": [image, {"type": "text", "text": "y" * 40}]}],
    }
    assert estimate_input_tokens(with_image) == 20 + 1600
    assert estimate_input_tokens({"messages": []}) == 1
    assert estimate_input_tokens(load("claude_code_request.json")) > estimate_input_tokens(text)
