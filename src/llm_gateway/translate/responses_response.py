"""A Chat Completions answer turned into a Responses API `response` object.

Output items, in this order: a `reasoning` item when the provider returned reasoning text
(`reasoning_content`, or `reasoning` as some name it; given as `reasoning_text` content), a
`message` item for the text (and a refusal), then one item per tool call: `function_call`, or
`custom_tool_call` for a free-form tool (its `input` read back from the `{"input": ...}` arguments).

Status: `completed`; `incomplete` when the provider stopped for `length` (reason
`max_output_tokens`) or `content_filter`, the last item then marked incomplete too. Usage maps
`prompt_tokens`/`completion_tokens` with cached and reasoning token details. Item ids derive from
the response id and the item's position, so a stream and a whole answer give the same ids.

The stream translator (`responses_stream`) builds its items with the same functions.
"""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.translate.responses_request import ChatRequest, Json

_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
_ID_PREFIXES = {
    "message": "msg",
    "reasoning": "rs",
    "function_call": "fc",
    "custom": "ctc",
    "call": "call",  # a tool call the provider gave no id
}


def chat_to_response(
    chat: Json, request: ChatRequest, *, model: str, response_id: str, created_at: int
) -> Json:
    """Translate a whole chat completion into the Response object the client expects.

    `model` is the name the client asked for; `response_id` ("resp_...") is the gateway's.
    """
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") or {}
    reason = incomplete_reason(choice.get("finish_reason"))
    status = "completed" if reason is None else "incomplete"

    output: list[Json] = []
    reasoning = reasoning_text(message)
    if reasoning:
        output.append(reasoning_item(item_id("reasoning", response_id, len(output)), reasoning))
    text = _content_text(message.get("content"))
    refusal = message.get("refusal")
    refusal = refusal if isinstance(refusal, str) else ""
    if text or refusal:
        item = message_item(item_id("message", response_id, len(output)), text)
        if refusal:
            item["content"].append({"type": "refusal", "refusal": refusal})
        output.append(item)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            tool_call_item(
                request,
                response_id,
                len(output),
                call_id=call.get("id") or item_id("call", response_id, len(output)),
                chat_name=function.get("name") or "",
                arguments=function.get("arguments") or "",
            )
        )
    if status == "incomplete" and output:
        mark_incomplete(output[-1])
    return response_object(
        request,
        model=model,
        response_id=response_id,
        created_at=created_at,
        status=status,
        output=output,
        usage=usage_from_chat(chat.get("usage")),
        incomplete_reason=reason,
    )


def response_object(
    request: ChatRequest,
    *,
    model: str,
    response_id: str,
    created_at: int,
    status: str,
    output: list[Json],
    usage: Json | None,
    incomplete_reason: str | None = None,
    error: Json | None = None,
) -> Json:
    """A Response object: what happened, plus the request fields a Response repeats."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "model": model,
        "output": output,
        "previous_response_id": None,
        "usage": usage,
        **request.echo,
    }


def usage_from_chat(usage: Any) -> Json | None:
    """Chat usage in the Responses shape; None when the provider reported none."""
    if not isinstance(usage, dict):
        return None
    input_tokens = _count(usage.get("prompt_tokens"))
    output_tokens = _count(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    # DeepSeek reports cache hits as `prompt_cache_hit_tokens`.
    cached = _count(prompt_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens"))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": cached,
            "cache_write_tokens": _count(prompt_details.get("cache_write_tokens")),
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {
            "reasoning_tokens": _count(completion_details.get("reasoning_tokens"))
        },
        "total_tokens": _count(usage.get("total_tokens")) or input_tokens + output_tokens,
    }


def incomplete_reason(finish_reason: Any) -> str | None:
    """Why a response is incomplete, from the chat `finish_reason`; None when it is complete."""
    return _INCOMPLETE_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None


# output items ----------------------------------------------------------------------------------


def item_id(kind: str, response_id: str, output_index: int) -> str:
    """An item id ("msg_...", "fc_...") unique within the response, the same in a stream."""
    return f"{_ID_PREFIXES[kind]}_{response_id.removeprefix('resp_')}_{output_index}"


def reasoning_text(message: Json) -> str:
    """The reasoning text a provider put beside the answer, under either name in use."""
    text = message.get("reasoning_content") or message.get("reasoning")
    return text if isinstance(text, str) else ""


def reasoning_item(item: str, text: str, status: str = "completed") -> Json:
    content = [reasoning_text_part(text)] if text else []
    return {"id": item, "type": "reasoning", "summary": [], "content": content, "status": status}


def message_item(item: str, text: str, status: str = "completed") -> Json:
    content = [output_text_part(text)] if text else []
    return {
        "id": item,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def reasoning_text_part(text: str) -> Json:
    return {"type": "reasoning_text", "text": text}


def output_text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def tool_call_item(
    request: ChatRequest,
    response_id: str,
    output_index: int,
    *,
    call_id: str,
    chat_name: str,
    arguments: str,
    status: str = "completed",
) -> Json:
    """A `function_call` item, or a `custom_tool_call` item when the name is a free-form tool."""
    tool = request.tools.get(chat_name)
    if tool is not None and tool.kind == "custom":
        item: Json = {
            "id": item_id("custom", response_id, output_index),
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": tool.name,
            "input": custom_input(arguments),
        }
    else:
        item = {
            "id": item_id("function_call", response_id, output_index),
            "type": "function_call",
            "status": status,
            "call_id": call_id,
            "name": tool.name if tool is not None else chat_name,
            "arguments": arguments,
        }
    if tool is not None and tool.namespace is not None:
        item["namespace"] = tool.namespace
    return item


def custom_input(arguments: str) -> str:
    """A free-form tool's input from the `{"input": ...}` arguments; raw text if not that shape."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    text = value.get("input") if isinstance(value, dict) else None
    return text if isinstance(text, str) else arguments


def mark_incomplete(item: Json) -> None:
    """Mark an item cut short (custom tool calls have no status)."""
    if "status" in item:
        item["status"] = "incomplete"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a few providers answer with text parts
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0
