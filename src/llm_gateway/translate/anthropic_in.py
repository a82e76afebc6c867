"""Anthropic Messages in, OpenAI Chat Completions out: `/v1/messages` served by chat providers.

The request (`messages_to_chat`):
- `system` (a string or text blocks) becomes the leading system message; `role: "system"`
  entries inside `messages` become system messages where they stand, except that tool
  messages are never parted from the assistant message whose calls they answer.
- A user turn's `tool_result` blocks become consecutive `tool` messages; the turn's other
  blocks (text, images, plain-text documents, and images returned inside tool results) follow
  them in one user message. Empty text blocks are never sent, and text-only content is sent as
  one string (joined by blank lines), which every chat provider accepts.
- Dropped by design: `cache_control`; `top_k` (chat has no such parameter); thinking blocks of
  earlier turns (their signatures mean nothing to another model); `thinking` and
  `output_config.effort` (whether a chat model reasons is a property of the model or of
  provider-specific switches; reasoning it returns still comes back as thinking blocks);
  `service_tier`; server tools (`web_search_*`, `bash_*`, `text_editor_*`, ...), which only
  Anthropic runs: `server_tool_names` lists them for the log row.
- Refused with `TranslationError`: PDF, URL and file documents, file images, `mcp_servers`,
  forcing a tool that is not offered, and unknown user content blocks.

The answer (`chat_to_message`, `MessagesStream`): reasoning text becomes a `thinking` block
with an empty signature, then comes a `text` block, then one `tool_use` block per call. A chat
`stop` is `end_turn`: chat does not say whether a stop sequence ended the text, so
`stop_sequence` is never reported. An answer with tool calls stops with `tool_use` even when
the provider says `stop`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from llm_gateway.translate.anthropic_common import (
    JSON,
    TranslationError,
    chat_usage_to_anthropic,
    document_text,
    dumps,
    image_to_part,
    plain_text,
    tool_input,
)

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


# the request ----------------------------------------------------------------------------------
def messages_to_chat(body: JSON, model: str) -> JSON:
    """An Anthropic Messages request as a Chat Completions request for `model`."""
    if body.get("mcp_servers"):
        raise TranslationError("MCP servers need an Anthropic deployment", "mcp_servers")
    messages: list[JSON] = []
    system = plain_text(body.get("system"), "system")
    if system:
        messages.append({"role": "system", "content": system})
    turns = body.get("messages")
    if not isinstance(turns, list):
        raise TranslationError("messages must be a list", "messages")
    for i, turn in enumerate(turns):
        _add_turn(messages, turn, f"messages.{i}")
    chat: JSON = {"model": model, "messages": messages}
    _add_tools(chat, body)
    for name in ("max_tokens", "temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        chat["user"] = metadata["user_id"]
    output_format = (body.get("output_config") or {}).get("format")
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        schema = {"name": "output", "schema": output_format.get("schema") or {}}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def server_tool_names(body: JSON) -> list[str]:
    """The tools of `body` only Anthropic can run, which `messages_to_chat` leaves out."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        str(tool.get("name") or tool.get("type"))
        for tool in tools
        if isinstance(tool, dict) and tool.get("type") not in (None, "custom")
    ]


def _add_turn(out: list[JSON], turn: Any, param: str) -> None:
    if not isinstance(turn, dict):
        raise TranslationError("each message must be an object", param)
    role, content = turn.get("role"), turn.get("content")
    if role == "user":
        _add_user(out, content, param)
    elif role == "assistant":
        _add_assistant(out, content, param)
    elif role == "system":
        text = plain_text(content, f"{param}.content")
        if text:
            out.append({"role": "system", "content": text})
    else:
        raise TranslationError(f"unknown role {role!r}", f"{param}.role")


def _add_user(out: list[JSON], content: Any, param: str) -> None:
    if isinstance(content, str):
        if content:
            out.append({"role": "user", "content": content})
        return
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of blocks", f"{param}.content")
    parts: list[JSON] = []  # everything but tool results, sent after them
    for j, block in enumerate(content):
        where = f"{param}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if block.get("text"):
                parts.append({"type": "text", "text": block["text"]})
        elif kind == "tool_result":
            _add_tool_message(out, _tool_message(block, parts, where))
        elif kind == "image":
            parts.append(image_to_part(block, where))
        elif kind == "document":
            parts.append({"type": "text", "text": document_text(block, where)})
        else:
            raise TranslationError(f"{kind!r} content blocks cannot be sent to this model", where)
    if parts:
        out.append({"role": "user", "content": _user_content(parts)})


def _user_content(parts: list[JSON]) -> str | list[JSON]:
    if any(part["type"] != "text" for part in parts):
        return parts
    return "\n\n".join(part["text"] for part in parts)


def _add_tool_message(out: list[JSON], message: JSON) -> None:
    """Append a tool message, but ahead of system messages that would part it from its call."""
    at = len(out)
    while at and out[at - 1]["role"] == "system":
        at -= 1
    if at < len(out) and at and (out[at - 1]["role"] == "tool" or "tool_calls" in out[at - 1]):
        out.insert(at, message)
    else:
        out.append(message)


def _tool_message(block: JSON, images: list[JSON], where: str) -> JSON:
    """A `tool_result` block as a tool message; the images it returned go to `images`."""
    content = block.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(content):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text" and item.get("text"):
                texts.append(item["text"])
            elif kind == "image":
                images.append(image_to_part(item, f"{where}.content.{k}"))
            elif kind == "document":
                texts.append(document_text(item, f"{where}.content.{k}"))
    text = "\n\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _add_assistant(out: list[JSON], content: Any, param: str) -> None:
    if isinstance(content, str):
        if content:
            out.append({"role": "assistant", "content": content})
        return
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of blocks", f"{param}.content")
    texts: list[str] = []
    calls: list[JSON] = []
    for block in content:  # thinking and server-tool blocks are left out
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and block.get("text"):
            texts.append(block["text"])
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": dumps(block.get("input") or {})}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    if not texts and not calls:
        return
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    out.append(message)


def _add_tools(chat: JSON, body: JSON) -> None:
    tools = body.get("tools")
    functions: list[JSON] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            continue  # a server tool: see server_tool_names
        function: JSON = {"name": tool.get("name")}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        functions.append({"type": "function", "function": function})
    choice: Any = body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not functions:
        if kind in ("any", "tool"):
            raise TranslationError(
                "tool_choice asks for a tool this model cannot call", "tool_choice"
            )
        return
    chat["tools"] = functions
    if kind == "tool":
        name = choice.get("name")
        if all(f["function"]["name"] != name for f in functions):
            raise TranslationError(f"tool_choice names a tool not offered: {name!r}", "tool_choice")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif kind in _TOOL_CHOICES:
        chat["tool_choice"] = _TOOL_CHOICES[kind]
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
        chat["parallel_tool_calls"] = False


# the answer -----------------------------------------------------------------------------------
def chat_to_message(chat: JSON, model: str, message_id: str) -> JSON:
    """A chat completion as an Anthropic `message` answering a request for `model`."""
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") or {}
    content: list[JSON] = []
    reasoning = _reasoning(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # a few providers answer with parts
        text = "".join(p.get("text") or "" for p in text if isinstance(p, dict))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for n, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _call_id(message_id, n),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    stop_reason = _stop_reason(choice.get("finish_reason"), bool(message.get("tool_calls")))
    return _message(
        message_id, model, content, stop_reason, chat_usage_to_anthropic(chat.get("usage"))
    )


def _message(
    id_: str, model: str, content: list[JSON], stop_reason: str | None, usage: JSON
) -> JSON:
    return {
        "id": id_,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _reasoning(message: JSON) -> str:
    """Reasoning text: `reasoning_content` (DeepSeek, DashScope, vLLM) or `reasoning`."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def _stop_reason(finish_reason: Any, has_tool_calls: bool) -> str:
    if has_tool_calls and finish_reason in (None, "stop"):
        return "tool_use"  # some providers say `stop` after calling tools
    return _STOP_REASONS.get(finish_reason, "end_turn") if finish_reason else "end_turn"


def _call_id(message_id: str, n: int) -> str:
    return f"toolu_{message_id.removeprefix('msg_')}_{n}"


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    pieces: list[str] = field(default_factory=list)

    def complete(self) -> bool:
        try:
            orjson.loads("".join(self.pieces))
        except orjson.JSONDecodeError:
            return False
        return True


class MessagesStream:
    """Chat completion chunks in, Anthropic stream events out, one block open at a time.

    `feed` each parsed chunk, then `finish` when the upstream ends (or `fail` if it broke).
    The first `tool_use` block streams its arguments as they come. A call that starts while
    the open one's arguments are not yet complete JSON (parallel calls interleaved) is held and
    sent whole after it; pieces for a call already closed cannot be sent any more. The final
    usage rides on `message_delta`; `message_start` carries `input_tokens` (an estimate, or 0).
    `usage` is the upstream's usage (OpenAI shape), `None` until it arrives.
    """

    def __init__(self, model: str, message_id: str, input_tokens: int = 0) -> None:
        self._model = model
        self._message_id = message_id
        self._input_tokens = input_tokens
        self._out: list[bytes] = []
        self._started = self._done = False
        self._index = -1  # of the last block started
        self._open: str | None = None  # the open block's type
        self._calls: dict[int | str, _Call] = {}  # the latest call of each index (or id)
        self._count = 0  # tool calls so far
        self._last_key: int | str = 0
        self._live: _Call | None = None  # the tool call whose block is open
        self._held: list[_Call] = []
        self._finish_reason: str | None = None
        self._usage: JSON | None = None

    @property
    def usage(self) -> JSON | None:
        return self._usage

    def feed(self, chunk: JSON) -> list[bytes]:
        if self._done:
            return []
        self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = _reasoning(delta)
            if reasoning:
                self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                self._delta({"type": "thinking_delta", "thinking": reasoning})
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._block("text", {"type": "text", "text": ""})
                self._delta({"type": "text_delta", "text": text})
            for piece in delta.get("tool_calls") or []:
                self._tool_piece(piece)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                self._close()
        return self._take()

    def finish(self) -> list[bytes]:
        if self._done:
            return []
        self._start()
        self._close()
        self._done = True
        usage = chat_usage_to_anthropic(self._usage)
        if self._usage is None:
            usage["input_tokens"] = self._input_tokens
        delta = {"stop_reason": _stop_reason(self._finish_reason, self._count > 0)}
        self._emit("message_delta", delta={**delta, "stop_sequence": None}, usage=usage)
        self._emit("message_stop")
        return self._take()

    def fail(self, message: str) -> list[bytes]:
        """The event telling the client the upstream broke off; nothing follows it."""
        if self._done:
            return []
        self._done = True
        self._emit("error", error={"type": "api_error", "message": message})
        return self._take()

    def _emit(self, type_: str, **fields: Any) -> None:
        data = orjson.dumps({"type": type_, **fields})
        self._out.append(b"event: " + type_.encode() + b"\ndata: " + data + b"\n\n")

    def _take(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def _start(self) -> None:
        if not self._started:
            self._started = True
            usage = chat_usage_to_anthropic(None) | {"input_tokens": self._input_tokens}
            message = _message(self._message_id, self._model, [], None, usage)
            self._emit("message_start", message=message)

    def _block(self, kind: str, content_block: JSON) -> None:
        """Make sure a block of `kind` is the open one (tool calls always start a new one)."""
        if self._open == kind and kind != "tool_use":
            return
        self._close()
        self._index += 1
        self._open = kind
        self._emit("content_block_start", index=self._index, content_block=content_block)

    def _delta(self, delta: JSON) -> None:
        self._emit("content_block_delta", index=self._index, delta=delta)

    def _close(self) -> None:
        """Close the open block, then send the held tool calls, each as a whole block."""
        if self._open == "thinking":
            self._delta({"type": "signature_delta", "signature": ""})
        if self._open is not None:
            self._emit("content_block_stop", index=self._index)
        self._open = self._live = None
        held, self._held = self._held, []
        for call in held:
            self._start_call(call)
            if call.pieces:
                arguments = dumps(tool_input("".join(call.pieces)))
                self._delta({"type": "input_json_delta", "partial_json": arguments})
            self._close()

    def _start_call(self, call: _Call) -> None:
        self._block("tool_use", {"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        self._live = call

    def _tool_piece(self, piece: JSON) -> None:
        """Take a piece of a tool call: calls are told apart by `index`, else by `id`."""
        key = piece.get("index")
        if not isinstance(key, int):
            key = piece.get("id") or self._last_key
        function = piece.get("function") or {}
        arguments = function.get("arguments")
        call = self._calls.get(key)
        if call is None or (piece.get("id") and piece["id"] != call.id):  # a new id: a new call
            call_id = piece.get("id") or _call_id(self._message_id, self._count)
            call = self._calls[key] = _Call(call_id, function.get("name") or "")
            self._last_key, self._count = key, self._count + 1
            if call.name and not self._held and (self._live is None or self._live.complete()):
                self._start_call(call)
            else:
                self._held.append(call)
        elif not call.name and function.get("name"):
            call.name = function["name"]
        if isinstance(arguments, str) and arguments:
            call.pieces.append(arguments)
            if call is self._live:
                self._delta({"type": "input_json_delta", "partial_json": arguments})
