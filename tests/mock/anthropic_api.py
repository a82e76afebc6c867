"""Anthropic's Messages API: `/messages` (plain and streamed) and `/messages/count_tokens`.

A `call:<tool> <JSON object>` line of the last user message calls that tool (a `tool_use`
block); a last user message that carries a `tool_result` is answered with text (see openai_api).
"""

from __future__ import annotations

import json
from typing import Any

from tests.mock.core import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    BadRequest,
    Call,
    Endpoint,
    Json,
    Stream,
    from_list,
    modes_in,
    named_event,
    split_text,
    text_of,
    word_count,
)
from tests.mock.openai_api import calls_wanted

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
TEXT = ["Hello", "!"]
THINKING = ["Let me", " think."]
SIGNATURE = "mock-signature"


def error_body(status: int, message: str, number: int) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": f"req_mock_{number}",
    }


def headers(number: int) -> dict[str, str]:
    return {
        "request-id": f"req_mock_{number}",
        "anthropic-ratelimit-requests-remaining": "99",
        "x-unrelated-header": "dropped",
    }


def _messages(payload: dict[str, Any]) -> list[Any]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: a non-empty list is required")
    return messages


def _last_user_message(messages: list[Any]) -> dict[str, Any]:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message
    return {}


def _has_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    return any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)


def _usage(cached: bool, output_tokens: int) -> dict[str, Any]:
    cache_read = CACHED_TOKENS if cached else 0
    return {
        "input_tokens": PROMPT_TOKENS - cache_read,  # Anthropic counts cached input apart
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


async def messages(call: Call) -> Json | Stream:
    payload = call.payload
    last = _last_user_message(_messages(payload))
    text = text_of(last.get("content"))
    modes = modes_in(text)
    number = call.number
    blocks: list[dict[str, Any]] = []
    if "reasoning" in modes:
        blocks.append({"type": "thinking", "thinking": "".join(THINKING), "signature": SIGNATURE})
    wanted = calls_wanted(text, payload.get("tools"), _has_tool_result(last))
    for index, (name, arguments) in enumerate(wanted):
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_mock_{number}_{index}",
                "name": name,
                "input": arguments,
            }
        )
    if not wanted:
        blocks.append({"type": "text", "text": "".join(TEXT)})
    stop_reason = "tool_use" if wanted else "max_tokens" if "length" in modes else "end_turn"
    cached = "cached" in modes
    message = {
        "id": f"msg_mock_{number}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(cached, COMPLETION_TOKENS),
    }
    if not call.stream:
        return Json(message)

    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "usage": _usage(cached, 1),
                }
            },
        )
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in TEXT]
        elif block["type"] == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in THINKING]
            deltas.append({"type": "signature_delta", "signature": SIGNATURE})
        else:
            start = {**block, "input": {}}
            pieces = ["", *split_text(json.dumps(block["input"]))]
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
        events.append(("content_block_start", {"index": index, "content_block": start}))
        if index == 0:
            events.append(("ping", {}))
        events.extend(("content_block_delta", {"index": index, "delta": d}) for d in deltas)
        events.append(("content_block_stop", {"index": index}))
    events.append(
        (
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
        )
    )
    events.append(("message_stop", {}))
    return Stream(from_list([named_event(name, {"type": name, **body}) for name, body in events]))


async def count_tokens(call: Call) -> Json:
    payload = call.payload
    texts = [text_of(payload.get("system"))]
    texts += [text_of(m.get("content")) for m in _messages(payload) if isinstance(m, dict)]
    return Json({"input_tokens": max(1, sum(word_count(t) for t in texts))})


ENDPOINTS = {
    "messages/count_tokens": Endpoint("messages/count_tokens", count_tokens, error_body, headers),
    "messages": Endpoint("messages", messages, error_body, headers),
}
