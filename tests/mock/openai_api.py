"""OpenAI's APIs: chat completions, legacy completions, embeddings and the Responses API.

Besides the modes, a line `call:<tool> <JSON object>` in the last user message (chat,
Responses, Messages) calls that tool with those arguments, as an agent's model would; and a
conversation that has a tool's result after its last user message is answered with text (no
tool call again), so an agent's loop ends after one round. On the Responses API, `mode:reasoning`
puts a `reasoning` item first (summary "Let me think.", `encrypted_content`; streamed with its
`response.reasoning_summary_*` events).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from tests.mock.core import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    CUT,
    PROMPT_TOKENS,
    BadRequest,
    Call,
    Cut,
    Endpoint,
    Json,
    Stream,
    data_event,
    from_list,
    modes_in,
    named_event,
    split_text,
    text_of,
    tool_calls_wanted,
    word_count,
)

WORDS = ["Hello", " from", " the", " mock", "!"]
REASONING = "Let me think."
ENCRYPTED_REASONING = "mock-encrypted-reasoning"
CALL_LINE = re.compile(r"(?:^|\s)call:([A-Za-z0-9_.-]+)[ \t]+(\{.*\})[ \t]*$", re.MULTILINE)


def directed_calls(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of every `call:<tool> <JSON object>` line of a user message's text."""
    calls = []
    for name, raw in CALL_LINE.findall(text):
        try:
            arguments = json.loads(raw)
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise BadRequest(f"call:{name} needs a JSON object of arguments")
        calls.append((name, arguments))
    return calls


def calls_wanted(text: str, tools: Any, answered: bool) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls to make: none once a tool answered, else `call:` lines, else the modes."""
    if answered:
        return []
    return directed_calls(text) or tool_calls_wanted(modes_in(text), tools)


def error_body(status: int, message: str, _: int) -> dict[str, Any]:
    error = {"message": message, "type": "mock_error", "code": f"mock_{status}", "param": None}
    return {"error": error}


def headers(number: int) -> dict[str, str]:
    return {
        "x-request-id": f"req-mock-{number}",
        "openai-processing-ms": "7",
        "x-ratelimit-remaining-requests": "99",
        "x-unrelated-header": "dropped",
    }


def usage(cached: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }
    if cached:
        body["prompt_tokens_details"] = {"cached_tokens": CACHED_TOKENS}
    return body


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _tool_answered(items: list[Any], field: str, values: set[str]) -> bool:
    """Whether an item whose `field` is in `values` (a tool's result) follows the last user one."""
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return False
        if isinstance(item, dict) and item.get(field) in values:
            return True
    return False


# ---- chat completions -------------------------------------------------------------------
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
    return data_event(body)


async def chat(call: Call) -> Json | Stream:
    payload = call.payload
    messages = payload.get("messages") or [{}]
    content = str(messages[0].get("content", "")) if isinstance(messages[0], dict) else ""
    mode, _, argument = (
        content.partition(":")[2].partition(":") if content.startswith("mode:") else ("", "", "")
    )
    last_text = _last_user_text(messages) if isinstance(messages, list) else ""
    modes = modes_in(last_text)
    request_id = f"req-mock-{call.number}"
    model = call.model
    if mode == "slow":
        await asyncio.sleep(float(argument))
    if mode == "status":
        code = int(argument)
        extra = LIMIT if code == 429 else {}
        return Json(error_body(code, f"mock error {code}", call.number), code, extra)
    answered = _tool_answered(messages, "role", {"tool"}) if isinstance(messages, list) else False
    wanted = calls_wanted(last_text, payload.get("tools"), answered)
    calls = [
        (f"call_mock_{call.number}_{index}", name, json.dumps(arguments))
        for index, (name, arguments) in enumerate(wanted)
    ]
    finish = "tool_calls" if calls else "length" if "length" in modes else "stop"
    reasoning = "reasoning" in modes
    the_usage = usage(cached="cached" in modes)
    if not call.stream or mode == "plain":
        message: dict[str, Any] = {"role": "assistant"}
        if reasoning:
            message["reasoning_content"] = REASONING
        message["content"] = None if calls else "Hello!"
        if calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a in calls
            ]
        answer = {
            "id": request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": the_usage,
        }
        return Json(answer)

    async def events() -> AsyncIterator[bytes | Cut]:
        flag = call.include_usage
        if calls:
            for index, (call_id, name, arguments) in enumerate(calls):
                head = {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                delta: dict[str, Any] = {"tool_calls": [head]}
                if index == 0:
                    delta = {"role": "assistant", "content": None, **delta}
                yield _chunk(request_id, model, delta, usage_field=flag)
                for piece in split_text(arguments):
                    part = {"index": index, "function": {"arguments": piece}}
                    yield _chunk(request_id, model, {"tool_calls": [part]}, usage_field=flag)
        else:
            yield _chunk(request_id, model, {"role": "assistant", "content": ""}, usage_field=flag)
            if reasoning:
                for piece in ("Let me", " think."):
                    yield _chunk(request_id, model, {"reasoning_content": piece}, usage_field=flag)
            words = ["tick "] * 600 if mode == "drip" else WORDS
            for index, word in enumerate(words):
                if mode == "cut" and index == 2:
                    yield CUT
                if mode == "drip":
                    await asyncio.sleep(0.05)
                yield _chunk(request_id, model, {"content": word}, usage_field=flag)
        yield _chunk(request_id, model, {}, finish, usage_field=flag)
        if flag:
            usage_chunk = {
                "id": request_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": the_usage,
            }
            yield data_event(usage_chunk)
        yield b"data: [DONE]\n\n"

    return Stream(events())


# ---- legacy completions -----------------------------------------------------------------
async def completions(call: Call) -> Json | Stream:
    prompt = call.payload.get("prompt", "")
    first = prompt[0] if isinstance(prompt, list) and prompt else prompt
    modes = modes_in(first if isinstance(first, str) else "")
    finish = "length" if "length" in modes else "stop"
    completion_id = f"cmpl-mock-{call.number}"

    def body(text: str, finish_reason: str | None) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [choice],
        }

    if not call.stream:
        return Json({**body("Hello!", finish), "usage": usage()})
    flag = call.include_usage
    chunks = [body(word, None) for word in WORDS] + [body("", finish)]
    if flag:
        chunks = [{**chunk, "usage": None} for chunk in chunks]
        chunks.append({**body("", None), "choices": [], "usage": usage()})
    return Stream(from_list([data_event(c) for c in chunks] + [b"data: [DONE]\n\n"]))


# ---- embeddings -------------------------------------------------------------------------
def vector(item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic vector; every value k/128 is exact in float32, so base64 round-trips."""
    seed = item if isinstance(item, str) else json.dumps(item)
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{seed}".encode()).digest()
        values.extend((byte - 128) / 128 for byte in digest)
        block += 1
    return values[:dimensions]


async def embeddings(call: Call) -> Json:
    raw = call.payload.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise BadRequest("input must be a string, a list of strings or token arrays")
    if not all(
        isinstance(i, str) or (isinstance(i, list) and all(isinstance(t, int) for t in i))
        for i in items
    ):
        raise BadRequest("input must be a string, a list of strings or token arrays")
    dimensions = call.payload.get("dimensions") or 8
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise BadRequest("dimensions must be 1..4096")
    encoding = call.payload.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("encoding_format must be float or base64")
    data = []
    for index, item in enumerate(items):
        values = vector(item, dimensions)
        embedding: Any = values
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(max(1, word_count(i) if isinstance(i, str) else len(i)) for i in items)
    answer = {
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Json(answer)


# ---- the Responses API ------------------------------------------------------------------
def _responses_user_text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    for item in reversed(raw if isinstance(raw, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            return text_of(item.get("content"))
    return ""


def _responses_usage(cached: bool, output_tokens: int = COMPLETION_TOKENS) -> dict[str, Any]:
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS if cached else 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + output_tokens,
    }


async def responses(call: Call) -> Json | Stream:
    payload = call.payload
    text = _responses_user_text(payload.get("input"))
    modes = modes_in(text)
    number = call.number
    tools = payload.get("tools")
    items = payload.get("input")
    outputs = {"function_call_output", "custom_tool_call_output"}
    answered = _tool_answered(items, "type", outputs) if isinstance(items, list) else False
    wanted = calls_wanted(text, tools, answered)
    status = "failed" if "failed" in modes else "incomplete" if "length" in modes else "completed"
    item_status = "incomplete" if status == "incomplete" else "completed"
    message_id = f"msg_mock_{number}"
    text = "".join(WORDS)
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    message = {
        "id": message_id,
        "type": "message",
        "status": item_status,
        "role": "assistant",
        "content": [part],
    }
    function_calls = [
        {
            "id": f"fc_mock_{number}_{index}",
            "type": "function_call",
            "status": "completed",
            "call_id": f"call_mock_{number}_{index}",
            "name": name,
            "arguments": json.dumps(arguments),
        }
        for index, (name, arguments) in enumerate(wanted)
    ]
    output: list[dict[str, Any]] = [] if status == "failed" else function_calls or [message]
    if "reasoning" in modes and output:
        summary = [{"type": "summary_text", "text": REASONING}]
        reasoning = {
            "id": f"rs_mock_{number}",
            "type": "reasoning",
            "summary": summary,
            "encrypted_content": ENCRYPTED_REASONING,
        }
        output = [reasoning, *output]
    final_usage = _responses_usage(
        "cached" in modes, 0 if status == "failed" else COMPLETION_TOKENS
    )
    created_at = int(time.time())

    def response(state: str, out: list[dict[str, Any]], use: Any) -> dict[str, Any]:
        return {
            "id": f"resp_mock_{number}",
            "object": "response",
            "created_at": created_at,
            "status": state,
            "background": False,
            "error": (
                {"code": "server_error", "message": "mock failure"} if state == "failed" else None
            ),
            "incomplete_details": (
                {"reason": "max_output_tokens"} if state == "incomplete" else None
            ),
            "instructions": payload.get("instructions"),
            "max_output_tokens": payload.get("max_output_tokens"),
            "model": call.model,
            "output": out,
            "parallel_tool_calls": True,
            "previous_response_id": payload.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": tools if isinstance(tools, list) else [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": use,
            "user": None,
            "metadata": {},
        }

    if not call.stream:
        return Json(response(status, output, final_usage))

    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": response("in_progress", [], None)}),
        ("response.in_progress", {"response": response("in_progress", [], None)}),
    ]
    for index, item in enumerate(output):
        if item["type"] == "reasoning":
            ids = {"item_id": item["id"], "output_index": index, "summary_index": 0}
            empty = {**item, "summary": []}
            text_part = {"type": "summary_text", "text": REASONING}
            events.append(("response.output_item.added", {"output_index": index, "item": empty}))
            events.append(
                (
                    "response.reasoning_summary_part.added",
                    {**ids, "part": {**text_part, "text": ""}},
                )
            )
            for piece in ("Let me", " think."):
                events.append(("response.reasoning_summary_text.delta", {**ids, "delta": piece}))
            events.append(("response.reasoning_summary_text.done", {**ids, "text": REASONING}))
            events.append(("response.reasoning_summary_part.done", {**ids, "part": text_part}))
        elif item["type"] == "function_call":
            ids = {"item_id": item["id"], "output_index": index}
            events.append(
                (
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "status": "in_progress", "arguments": ""},
                    },
                )
            )
            for piece in split_text(item["arguments"]):
                events.append(("response.function_call_arguments.delta", {**ids, "delta": piece}))
            events.append(
                (
                    "response.function_call_arguments.done",
                    {**ids, "name": item["name"], "arguments": item["arguments"]},
                )
            )
        else:
            ids = {"item_id": message_id, "output_index": index, "content_index": 0}
            empty = {**item, "status": "in_progress", "content": []}
            events.append(("response.output_item.added", {"output_index": index, "item": empty}))
            events.append(("response.content_part.added", {**ids, "part": {**part, "text": ""}}))
            for word in WORDS:
                events.append(
                    ("response.output_text.delta", {**ids, "delta": word, "logprobs": []})
                )
            events.append(("response.output_text.done", {**ids, "text": text, "logprobs": []}))
            events.append(("response.content_part.done", {**ids, "part": part}))
        events.append(("response.output_item.done", {"output_index": index, "item": item}))
    terminal = f"response.{status}"
    events.append((terminal, {"response": response(status, output, final_usage)}))
    return Stream(
        from_list(
            [
                named_event(name, {"type": name, "sequence_number": sequence, **body})
                for sequence, (name, body) in enumerate(events)
            ]
        )
    )


LIMIT = {"x-ratelimit-reset-requests": "1s"}
ENDPOINTS = {
    name: Endpoint(name, handler, error_body, headers, LIMIT)
    for name, handler in [
        ("chat/completions", chat),
        ("completions", completions),
        ("embeddings", embeddings),
        ("responses", responses),
    ]
}
