"""The Responses <-> Chat Completions bridge, on recorded request bodies, answers and streams.

Fixtures live in tests/data/responses/: `requests.json` (Responses request -> expected chat body),
`refusals.json`, `answers.json` (chat completion -> expected output and usage) and `streams.json`
(chat chunks -> expected event types, plus the same answer whole). Every Response and event is
checked against the openai SDK's own types, and streams are read by the SDK's stream accumulator.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2  # the openai SDK's HTTP client library
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel

from llm_gateway.translate.responses import (
    BridgeRefused,
    ChatRequest,
    ResponsesStream,
    chat_to_response,
    responses_to_chat,
)

DATA = Path(__file__).parent / "data" / "responses"
UPSTREAM_MODEL = "deepseek-chat"
RESPONSE_ID = "resp_0a1b"
CREATED_AT = 1736000000
PLAIN_REQUEST: dict[str, Any] = {"model": "gpt-4.1", "input": "Hi"}

Json = dict[str, Any]
MakeClient = Callable[[bytes, str], openai.OpenAI]


def _cases(name: str) -> list[Any]:
    cases = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return [pytest.param(case, id=case_id) for case_id, case in cases.items()]


def _event_classes() -> dict[str, type[BaseModel]]:
    """Event type -> the SDK's model for it, to validate each event against one class."""
    union = typing.get_args(ResponseStreamEvent)[0]
    return {
        typing.get_args(cls.model_fields["type"].annotation)[0]: cls
        for cls in typing.get_args(union)
    }


EVENT_CLASSES = _event_classes()


def _translate(chat: Json, request: ChatRequest, body: Json) -> Json:
    return chat_to_response(
        chat, request, model=body["model"], response_id=RESPONSE_ID, created_at=CREATED_AT
    )


def _stream(body: Json, chunks: list[Json]) -> tuple[ResponsesStream, list[bytes]]:
    translator = ResponsesStream(
        responses_to_chat(body, UPSTREAM_MODEL),
        model=body["model"],
        response_id=RESPONSE_ID,
        created_at=CREATED_AT,
    )
    frames = [frame for chunk in chunks for frame in translator.feed(chunk)]
    return translator, frames


def _decode(frames: list[bytes]) -> list[Json]:
    """SSE frames -> event payloads, checking the framing and that `event:` names the type."""
    events = []
    for frame in frames:
        head, _, data = frame.partition(b"\n")
        assert frame.endswith(b"\n\n")
        event = json.loads(data.removeprefix(b"data: "))
        assert head == b"event: " + event["type"].encode()
        events.append(event)
    return events


def _check_events(events: list[Json]) -> None:
    """Each event valid for the SDK; sequence numbers count from 0; indexes point at their item."""
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    items: dict[int, Json] = {}
    for event in events:
        EVENT_CLASSES[event["type"]].model_validate(event)
        if event["type"] == "response.output_item.added":
            assert event["output_index"] == len(items)
            items[event["output_index"]] = event["item"]
        elif "output_index" in event:
            item = items[event["output_index"]]
            assert event.get("item_id", item["id"]) == item["id"]
            if event["type"] == "response.output_item.done":
                assert event["item"]["id"] == item["id"]
                assert event["item"]["type"] == item["type"]
        if "content_index" in event:
            assert event["content_index"] == 0


@pytest.fixture
def sdk() -> Iterator[MakeClient]:
    """An openai client whose every request is answered with the given body, in memory."""
    clients: list[openai.OpenAI] = []

    def make(body: bytes, content_type: str) -> openai.OpenAI:
        def reply(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, content=body, headers={"content-type": content_type})

        client = openai.OpenAI(
            api_key="test-key",
            base_url="http://gateway.test/v1",
            http_client=openai.DefaultHttpxClient(transport=httpx2.MockTransport(reply)),
            max_retries=0,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("requests"))
def test_request_becomes_the_chat_body(case: Json) -> None:
    before = copy.deepcopy(case["request"])
    request = responses_to_chat(case["request"], UPSTREAM_MODEL)
    assert request.body == case["chat"]
    assert request.dropped_tools == case.get("dropped_tools", [])
    assert request.dropped_items == case.get("dropped_items", [])
    assert case["request"] == before, "the client's body is read, never changed"


@pytest.mark.parametrize("case", _cases("refusals"))
def test_what_cannot_be_bridged_is_refused(case: Json) -> None:
    with pytest.raises(BridgeRefused) as refused:
        responses_to_chat(case["request"], UPSTREAM_MODEL)
    assert refused.value.param == case["param"]
    assert refused.value.message


def test_stream_asks_the_provider_for_usage() -> None:
    request = responses_to_chat({**PLAIN_REQUEST, "stream": True}, UPSTREAM_MODEL)
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


# answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("answers"))
def test_answer_becomes_a_response(case: Json) -> None:
    body = case.get("request", PLAIN_REQUEST)
    response = _translate(case["chat"], responses_to_chat(body, UPSTREAM_MODEL), body)

    assert response["output"] == case["output"]
    assert response["status"] == case["status"]
    assert response["incomplete_details"] == case.get("incomplete_details")
    assert response["usage"] == case["usage"]
    assert response["model"] == body["model"]
    parsed = Response.model_validate(response)
    message = case["chat"]["choices"][0]["message"]
    assert parsed.output_text == (message.get("content") or "")


def test_response_repeats_the_request() -> None:
    body = {
        "model": "gpt-4.1",
        "instructions": "Be brief.",
        "input": "Hi",
        "tools": [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 0.3,
        "top_p": 0.8,
        "max_output_tokens": 100,
        "metadata": {"k": "v"},
        "text": {"format": {"type": "json_object"}},
        "reasoning": {"effort": "low"},
        "truncation": "auto",
        "store": False,
        "user": "u1",
    }
    answer = {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}]}
    response = _translate(answer, responses_to_chat(body, UPSTREAM_MODEL), body)

    for name in ("instructions", "tools", "tool_choice", "parallel_tool_calls", "temperature"):
        assert response[name] == body[name]
    for name in ("top_p", "max_output_tokens", "metadata", "text", "reasoning", "truncation"):
        assert response[name] == body[name]
    assert (response["store"], response["user"]) == (False, "u1")
    assert response["id"] == RESPONSE_ID
    assert response["created_at"] == CREATED_AT
    assert response["previous_response_id"] is None
    assert response["error"] is None
    Response.model_validate(response)


def test_response_defaults_when_the_request_is_bare() -> None:
    answer = {"choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}]}
    response = _translate(answer, responses_to_chat(PLAIN_REQUEST, UPSTREAM_MODEL), PLAIN_REQUEST)
    assert response["tools"] == []
    assert response["tool_choice"] == "auto"
    assert response["parallel_tool_calls"] is True
    assert response["text"] == {"format": {"type": "text"}}
    assert Response.model_validate(response).output_text == "Hello"


# streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("streams"))
def test_stream_becomes_responses_events(case: Json) -> None:
    body = case.get("request", PLAIN_REQUEST)
    translator, frames = _stream(body, case["chunks"])
    events = _decode(frames + translator.finish())

    assert [event["type"] for event in events] == case["events"]
    _check_events(events)
    created, final = events[0]["response"], events[-1]["response"]
    assert (created["status"], created["output"], created["usage"]) == ("in_progress", [], None)
    expected = _translate(case["answer"], responses_to_chat(body, UPSTREAM_MODEL), body)
    assert final == expected, "a stream ends on the Response its whole answer would give"
    assert translator.usage == expected["usage"]
    for event in events:
        if event["type"] == "response.output_item.done":
            assert event["item"] == final["output"][event["output_index"]]


@pytest.mark.parametrize("case", _cases("streams"))
def test_sdk_accumulates_the_stream(case: Json, sdk: MakeClient) -> None:
    body = case.get("request", PLAIN_REQUEST)
    translator, frames = _stream(body, case["chunks"])
    frames += translator.finish()
    final = _decode(frames)[-1]["response"]

    client = sdk(b"".join(frames), "text/event-stream")
    with client.responses.stream(model=body["model"], input="x", tools=body.get("tools", [])) as s:
        seen = [event.type for event in s]
        if final["status"] == "completed":
            response = s.get_final_response()
            assert response.output_text == Response.model_validate(final).output_text
            assert [item.type for item in response.output] == [i["type"] for i in final["output"]]
    assert seen == case["events"]


def test_sdk_reads_a_whole_response(sdk: MakeClient) -> None:
    answer = {
        "choices": [{"message": {"content": "Hello", "reasoning_content": "hm"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    response = _translate(answer, responses_to_chat(PLAIN_REQUEST, UPSTREAM_MODEL), PLAIN_REQUEST)
    client = sdk(json.dumps(response).encode(), "application/json")
    parsed = client.responses.create(model="gpt-4.1", input="Hi")
    assert parsed.output_text == "Hello"
    assert parsed.usage is not None
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (3, 2)


def test_upstream_cut_ends_in_response_failed(sdk: MakeClient) -> None:
    body = {"model": "gpt-4.1", "input": "Hi", "tools": [{"type": "function", "name": "f"}]}
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Looking"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1"}]}}]},
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}]}}
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]},
                }
            ]
        },
    ]
    translator, frames = _stream(body, chunks)
    frames += translator.fail("The upstream connection was lost.")
    events = _decode(frames)

    _check_events(events)
    failed = events[-1]
    assert failed["type"] == "response.failed"
    response = failed["response"]
    assert response["status"] == "failed"
    assert response["error"] == {
        "code": "server_error",
        "message": "The upstream connection was lost.",
    }
    assert [(item["type"], item["status"]) for item in response["output"]] == [
        ("message", "completed"),
        ("function_call", "incomplete"),
    ]
    assert response["output"][1]["arguments"] == "{"
    assert translator.finish() == []
    assert translator.feed(chunks[0]) == []

    client = sdk(b"".join(frames), "text/event-stream")
    with client.responses.stream(model="gpt-4.1", input="Hi") as stream:
        assert [event.type for event in stream][-1] == "response.failed"


def test_empty_stream_completes_with_no_output() -> None:
    translator, frames = _stream(PLAIN_REQUEST, [])
    events = _decode(frames + translator.finish())
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    assert events[-1]["response"]["output"] == []
    assert translator.usage is None
    assert translator.finish() == []


def test_tool_call_deltas_without_index_or_id_still_make_one_call() -> None:
    chunks: list[Json] = [
        {
            "choices": [
                {"delta": {"tool_calls": [{"function": {"name": "f", "arguments": '{"a"'}}]}}
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    ]
    translator, frames = _stream(PLAIN_REQUEST, chunks)
    events = _decode(frames + translator.finish())
    _check_events(events)
    [call] = events[-1]["response"]["output"]
    assert (call["name"], call["arguments"]) == ("f", '{"a": 1}')
    assert call["call_id"].startswith("call_")


def test_tool_call_whose_name_never_comes_is_left_out() -> None:
    chunks = [{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1"}]}}]}]
    translator, frames = _stream(PLAIN_REQUEST, chunks)
    events = _decode(frames + translator.finish())
    assert events[-1]["response"]["output"] == []


def test_error_chunk_from_the_provider_fails_the_response() -> None:
    chunks: list[Json] = [
        {"choices": [{"index": 0, "delta": {"content": "Hal"}}]},
        {"error": {"message": "Provider overloaded", "code": 502}},
    ]
    translator, frames = _stream(PLAIN_REQUEST, chunks)
    events = _decode(frames)
    _check_events(events)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "Provider overloaded"
    [message] = events[-1]["response"]["output"]
    assert (message["status"], message["content"][0]["text"]) == ("incomplete", "Hal")
    assert translator.finish() == []
