"""OpenAI Chat Completions in, Anthropic Messages out: chat clients served by `anthropic` providers.

The request (`chat_to_messages`):
- system and developer messages, wherever they stand, are joined (by blank lines) into `system`.
- user, assistant and tool messages become turns: tool messages are `tool_result` blocks of a
  user turn, assistant `tool_calls` are `tool_use` blocks, and consecutive turns of one role
  are merged into one. Empty texts are left out, and a final assistant turn (a prefill) loses
  its trailing whitespace, which Anthropic refuses.
- Anthropic requires `max_tokens`: `max_completion_tokens`, else `max_tokens`, else the
  `default_max_tokens` argument. `temperature` is capped at 1 (Anthropic's range is 0 to 1).
- Dropped: `reasoning_content` of earlier turns (Anthropic wants back the signature it came
  with), `reasoning_effort`, penalties, `seed`, `logprobs`, `logit_bias`, and a `json_object`
  `response_format` (Anthropic has no such mode; a `json_schema` one becomes
  `output_config.format`).
- Refused with `TranslationError`: `n` above 1, audio, file ids and non-PDF files, and tools
  that are not functions.

The answer (`message_to_chat`, `ChatStream`): text blocks are joined into `content`, `tool_use`
blocks become `tool_calls` and thinking becomes `reasoning_content`; redacted thinking and
server-tool blocks are left out. `usage` counts cache reads and writes as prompt tokens.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from llm_gateway.errors import error_body
from llm_gateway.translate.anthropic_common import (
    JSON,
    TranslationError,
    anthropic_usage_to_chat,
    dumps,
    image_to_block,
    pdf_to_block,
    tool_input,
)

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}


# the request ----------------------------------------------------------------------------------
def chat_to_messages(body: JSON, model: str, default_max_tokens: int = 4096) -> JSON:
    """A Chat Completions request as an Anthropic Messages request for `model`."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise TranslationError("Anthropic models answer one choice per request", "n")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise TranslationError("messages must be a list", "messages")
    system: list[str] = []
    turns: list[JSON] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise TranslationError("each message must be an object", where)
        role = message.get("role")
        if role in ("system", "developer"):
            blocks = _blocks(message.get("content"), where)
            system.extend(block["text"] for block in blocks if block["type"] == "text")
            continue
        if role == "user":
            turn_role, blocks = "user", _blocks(message.get("content"), where)
        elif role == "assistant":
            turn_role, blocks = "assistant", _assistant_blocks(message, where)
        elif role == "tool":
            turn_role, blocks = "user", [_tool_result(message, where)]
        else:
            raise TranslationError(f"unknown role {role!r}", f"{where}.role")
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        elif blocks:
            turns.append({"role": turn_role, "content": blocks})
    _trim_prefill(turns)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        max_tokens = default_max_tokens
    out: JSON = {"model": model, "messages": turns, "max_tokens": max_tokens}
    if system:
        out["system"] = "\n\n".join(system)
    _add_tools(out, body)
    if isinstance(body.get("temperature"), int | float):
        out["temperature"] = min(body["temperature"], 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if body.get("stream"):
        out["stream"] = True
    return out


def _blocks(content: Any, where: str) -> list[JSON]:
    """Message content (a string or parts) as Anthropic blocks; empty texts left out."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of parts", f"{where}.content")
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        text = part.get("text") or part.get("refusal") if kind in ("text", "refusal") else None
        if text:
            blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(image_to_block(part.get("image_url"), f"{where}.content.{j}"))
        elif kind == "file":
            blocks.append(pdf_to_block(part.get("file"), f"{where}.content.{j}"))
        elif kind not in ("text", "refusal"):
            raise TranslationError(
                f"{kind!r} content parts cannot be sent to an Anthropic model",
                f"{where}.content.{j}",
            )
    return blocks


def _assistant_blocks(message: JSON, where: str) -> list[JSON]:
    blocks = _blocks(message.get("content"), where)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        use = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
        blocks.append({**use, "input": tool_input(function.get("arguments"))})
    return blocks


def _tool_result(message: JSON, where: str) -> JSON:
    result: JSON = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    content = _blocks(message.get("content"), where)
    if content:
        result["content"] = content
    return result


def _trim_prefill(turns: list[JSON]) -> None:
    """Strip the trailing whitespace Anthropic refuses at the end of a final assistant turn."""
    if not turns or turns[-1]["role"] != "assistant":
        return
    blocks = turns[-1]["content"]
    if blocks[-1]["type"] == "text":
        blocks[-1] = {**blocks[-1], "text": blocks[-1]["text"].rstrip()}
        if not blocks[-1]["text"]:
            blocks.pop()
    if not blocks:
        turns.pop()


def _add_tools(out: JSON, body: JSON) -> None:
    tools: list[JSON] = []
    for k, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise TranslationError(
                "only function tools can be offered to an Anthropic model", f"tools.{k}"
            )
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        converted: JSON = {"name": function.get("name")}
        if function.get("description"):
            converted["description"] = function["description"]
        tools.append({**converted, "input_schema": parameters})
    if not tools:
        return
    out["tools"] = tools
    choice: Any = body.get("tool_choice")
    tool_choice: JSON | None = None
    if isinstance(choice, dict) and choice.get("type") == "function":
        tool_choice = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif isinstance(choice, str) and choice in _TOOL_CHOICES:
        tool_choice = {"type": _TOOL_CHOICES[choice]}
    if body.get("parallel_tool_calls") is False and (tool_choice or {}).get("type") != "none":
        tool_choice = {**(tool_choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if tool_choice is not None:
        out["tool_choice"] = tool_choice


# the answer -----------------------------------------------------------------------------------
def message_to_chat(message: JSON, model: str, created: int | None = None) -> JSON:
    """An Anthropic `message` as a chat completion answering a request for `model`."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[JSON] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": dumps(block.get("input") or {})}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    reply: JSON = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    choice = {"index": 0, "message": reply, "logprobs": None}
    choice["finish_reason"] = _FINISH_REASONS.get(message.get("stop_reason") or "", "stop")
    return {
        "id": _chat_id(message.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [choice],
        "usage": anthropic_usage_to_chat(message.get("usage")),
    }


def _chat_id(message_id: Any) -> str:
    return "chatcmpl-" + (str(message_id).removeprefix("msg_") if message_id else "gateway")


class ChatStream:
    """Anthropic stream events in, `chat.completion.chunk` lines out.

    `feed` each event (its `event:` type and parsed `data`), then `finish` when the upstream
    ends (or `fail` if it broke). The finish chunk, the usage chunk (only when the client asked
    for usage) and `[DONE]` come from `finish`. `usage` is the stream's usage in OpenAI's
    shape, `None` until the final `message_delta` arrives.
    """

    def __init__(self, model: str, include_usage: bool, created: int | None = None) -> None:
        self._model = model
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._id = _chat_id(None)
        self._head = b""
        self._done = False
        self._tools: dict[Any, int] = {}  # block index -> tool call index
        self._stop_reason: str | None = None
        self._usage: JSON = {}  # Anthropic's shape, updated as events report it
        self._final = False

    @property
    def usage(self) -> JSON | None:
        return anthropic_usage_to_chat(self._usage) if self._final else None

    def feed(self, event_type: str, data: JSON) -> list[bytes]:
        if self._done:
            return []
        if event_type == "message_start":
            message = data.get("message") or {}
            self._id = _chat_id(message.get("id"))
            self._usage.update(message.get("usage") or {})
        elif event_type == "error":
            error = data.get("error") or {}
            return self._error(str(error.get("message") or "upstream error"), error.get("type"))
        out = self._start()
        if event_type == "content_block_start":
            out += self._block_start(data.get("index"), data.get("content_block") or {})
        elif event_type == "content_block_delta":
            out += self._block_delta(data.get("index"), data.get("delta") or {})
        elif event_type == "message_delta":
            self._stop_reason = (data.get("delta") or {}).get("stop_reason") or self._stop_reason
            usage = data.get("usage") or {}
            self._usage.update((k, v) for k, v in usage.items() if v is not None)
            self._final = True
        return out

    def finish(self) -> list[bytes]:
        if self._done:
            return []
        out = self._start()
        self._done = True
        out.append(self._chunk({}, _FINISH_REASONS.get(self._stop_reason or "", "stop")))
        if self._include_usage:
            usage = {"choices": [], "usage": anthropic_usage_to_chat(self._usage)}
            envelope = {"id": self._id, "object": "chat.completion.chunk", "created": self._created}
            out.append(
                b"data: " + orjson.dumps({**envelope, "model": self._model, **usage}) + b"\n\n"
            )
        out.append(b"data: [DONE]\n\n")
        return out

    def fail(self, message: str) -> list[bytes]:
        """The error line telling the client the upstream broke off; nothing follows it."""
        return self._error(message, "upstream_error", "bad_gateway")

    def _error(self, message: str, type_: Any, code: str | None = None) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        return [b"data: " + error_body(message, str(type_ or "upstream_error"), code) + b"\n\n"]

    def _start(self) -> list[bytes]:
        if self._head:
            return []
        self._head = (
            b'data: {"id":' + orjson.dumps(self._id) + b',"object":"chat.completion.chunk"'
            b',"created":'
            + str(self._created).encode()
            + b',"model":'
            + orjson.dumps(self._model)
            + b',"choices":[{"index":0,"delta":'
        )
        return [self._chunk({"role": "assistant", "content": ""})]

    def _chunk(self, delta: JSON, finish_reason: str | None = None) -> bytes:
        finish = orjson.dumps(finish_reason)  # null while the answer goes on
        return (
            self._head
            + orjson.dumps(delta)
            + b',"logprobs":null,"finish_reason":'
            + finish
            + b"}]}\n\n"
        )

    def _block_start(self, index: Any, block: JSON) -> list[bytes]:
        kind = block.get("type")
        if kind == "tool_use":
            n = self._tools[index] = len(self._tools)
            arguments = dumps(block["input"]) if block.get("input") else ""
            function = {"name": block.get("name"), "arguments": arguments}
            call = {"index": n, "id": block.get("id"), "type": "function", "function": function}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning_content": block["thinking"]})]
        return []

    def _block_delta(self, index: Any, delta: JSON) -> list[bytes]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tools:
            piece = {"index": self._tools[index], "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [piece]})]
        return []
