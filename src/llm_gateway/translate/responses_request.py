"""A Responses API request body turned into a Chat Completions request body.

Mapped:
    instructions            a leading `system` message
    input (string)          one `user` message
    input items             `message` (roles user/assistant/system; `developer` becomes `system`),
                            `function_call` and `custom_tool_call` (assistant `tool_calls`;
                            consecutive calls merged into one assistant message),
                            `function_call_output` and `custom_tool_call_output` (`tool` messages);
                            parts `input_text`, `input_image` (by URL), `input_file` (inline
                            `file_data`), `output_text`, `refusal`
    tools                   `function`; `custom` (a function taking `{"input": string}`);
                            `namespace` (its tools flattened to `<namespace>__<name>`)
    tool_choice             modes as they are; a named function or custom tool; `allowed_tools`
                            becomes its mode
    max_output_tokens       `max_tokens` (the name every chat provider knows)
    temperature, top_p      as they are, and `user`; `parallel_tool_calls` when tools are offered
    reasoning.effort        `reasoning_effort`
    text.format             `response_format` (`json_schema`, `json_object`; `text` is the default)
    stream                  `stream`, with `stream_options.include_usage` so usage is counted

Accepted and ignored: `store`, `metadata`, `include`, `truncation`, `prompt_cache_key`,
`prompt_cache_retention`, `safety_identifier`, `service_tier`, `stream_options`, `top_logprobs`,
`max_tool_calls`, `reasoning.summary`, `text.verbosity`, and every field not named here: clients
send new fields all the time. The echo fields reappear unchanged in the Response object.

Left out of the offer (listed in `ChatRequest.dropped_tools`): built-in tools (`web_search`,
`web_search_preview`, `file_search`, `code_interpreter`, `computer_use_preview`,
`image_generation`, `local_shell`, `shell`, `apply_patch`, `mcp`, ...), that is every tool that is
not `function`, `custom` or `namespace`.

Left out of the conversation (listed in `ChatRequest.dropped_items`): `reasoning` items (their
text belongs to the provider that wrote them), the calls and outputs of built-in tools, and any
item type not named above; image or file parts of a tool output (chat tool messages carry text).

Refused (`BridgeRefused`, a 400): `previous_response_id`, `conversation`, `prompt` (stored on
OpenAI), `background: true`, a `tool_choice` forcing a built-in tool, `item_reference` items,
images or files given by `file_id` (or files by `file_url`), and input that is not the documented
shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Json = dict[str, Any]

NAMESPACE_SEPARATOR = "__"

_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})
_IMAGE_DETAILS = frozenset({"auto", "low", "high"})


class BridgeRefused(Exception):
    """A request the Responses bridge cannot honour at all; the gateway answers 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ToolRef:
    """The Responses tool a chat function name stands for."""

    kind: Literal["function", "custom"]
    name: str
    namespace: str | None = None


@dataclass(slots=True)
class ChatRequest:
    """A translated request, and what the way back needs to know about it."""

    body: Json
    """The Chat Completions request body to send upstream."""
    dropped_tools: list[str] = field(default_factory=list)
    """Types of built-in tools left out of the offer, for the log row."""
    dropped_items: list[str] = field(default_factory=list)
    """Types of input items (or parts) left out of the conversation, for the log row."""
    tools: dict[str, ToolRef] = field(default_factory=dict)
    """Chat function name -> the Responses tool, to map tool calls back."""
    echo: Json = field(default_factory=dict)
    """The request fields a Response object repeats (`tools`, `temperature`, ...)."""


def responses_to_chat(body: Json, model: str) -> ChatRequest:
    """Translate a Responses request body for a provider that serves only chat completions.

    `body` is read, never modified; large values (tool schemas, image URLs) are shared, not copied.
    Raises `BridgeRefused` for what cannot be honoured.
    """
    _refuse_unbridgeable(body)
    request = ChatRequest(body={}, echo=_echo(body))
    chat_tools = _tools(body.get("tools"), request)

    messages: list[Json] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif isinstance(instructions, list):
        _items(instructions, messages, request, "instructions")
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        messages.append({"role": "user", "content": raw_input})
    elif isinstance(raw_input, list):
        _items(raw_input, messages, request, "input")
    elif raw_input is not None:
        raise BridgeRefused("input must be a string or a list of items", "input")

    tool_choice = _tool_choice(body.get("tool_choice"))
    chat: Json = {"model": model, "messages": messages}
    if chat_tools:  # chat providers refuse tool_choice and parallel_tool_calls without tools
        chat["tools"] = chat_tools
        if tool_choice is not None:
            chat["tool_choice"] = tool_choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    text = body.get("text")
    if isinstance(text, dict):
        response_format = _response_format(text.get("format"))
        if response_format is not None:
            chat["response_format"] = response_format
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    request.body = chat
    return request


def chat_tool_name(name: str, namespace: str | None) -> str:
    """The chat function name of a Responses tool, flattening its namespace."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


# request-level checks and echo ---------------------------------------------------------------


_STORED_STATE = {
    "previous_response_id": "send the whole conversation in input instead",
    "conversation": "send the whole conversation in input instead",
    "prompt": "send the prompt's text as instructions instead",
}


def _refuse_unbridgeable(body: Json) -> None:
    for name, instead in _STORED_STATE.items():
        if body.get(name) is not None:
            raise BridgeRefused(
                f"{name} refers to state stored by OpenAI, which this model (served through chat "
                f"completions) cannot read; {instead}",
                name,
            )
    if body.get("background") is True:
        raise BridgeRefused("background responses are not available for this model", "background")


def _echo(body: Json) -> Json:
    """The request fields a Response object repeats, with the API's defaults."""
    text = body.get("text")
    return {
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "metadata": body.get("metadata") or {},
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "reasoning": body.get("reasoning"),
        "truncation": body.get("truncation") or "disabled",
        "store": body.get("store") is not False,
        "background": False,
        "user": body.get("user"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier"),
        "top_logprobs": body.get("top_logprobs"),
    }


# tools -----------------------------------------------------------------------------------------


def _tools(tools: Any, request: ChatRequest) -> list[Json]:
    if not isinstance(tools, list):
        return []
    chat_tools: list[Json] = []
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "namespace":
            for inner in tool.get("tools") or []:
                inner_kind = inner.get("type") if isinstance(inner, dict) else None
                if inner_kind in ("function", "custom"):
                    chat_tools.append(_tool(inner, tool.get("name"), request))
                else:
                    _note(request.dropped_tools, str(inner_kind))
        elif kind in ("function", "custom"):
            chat_tools.append(_tool(tool, None, request))
        else:
            _note(request.dropped_tools, str(kind))
    return chat_tools


def _tool(tool: Json, namespace: str | None, request: ChatRequest) -> Json:
    kind = tool["type"]
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise BridgeRefused("every function and custom tool needs a name", "tools")
    chat_name = chat_tool_name(name, namespace)
    if chat_name in request.tools:
        raise BridgeRefused(f"more than one tool is called {chat_name!r}", "tools")
    request.tools[chat_name] = ToolRef(kind, name, namespace)

    function: Json = {"name": chat_name}
    description = tool.get("description")
    if kind == "function":
        if description:
            function["description"] = description
        function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
    else:
        description = _custom_description(description, tool.get("format"))
        if description:
            function["description"] = description
        function["parameters"] = {
            "type": "object",
            "properties": {"input": {"type": "string"}},
            "required": ["input"],
        }
    return {"type": "function", "function": function}


def _custom_description(description: Any, input_format: Any) -> str:
    """A free-form tool's description; a grammar the chat model cannot be held to is spelled out."""
    text = description if isinstance(description, str) else ""
    if isinstance(input_format, dict) and input_format.get("type") == "grammar":
        syntax = input_format.get("syntax", "")
        grammar = f"The input must follow this {syntax} grammar:\n{input_format.get('definition')}"
        text = f"{text}\n\n{grammar}" if text else grammar
    return text


def _tool_choice(choice: Any) -> str | Json | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            raise BridgeRefused(
                f"tool_choice {choice!r} is not auto, none or required", "tool_choice"
            )
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom"):
        return {"type": "function", "function": {"name": choice.get("name")}}
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    raise BridgeRefused(
        f"tool_choice cannot force the built-in tool {kind!r} on this model", "tool_choice"
    )


def _response_format(text_format: Any) -> Json | None:
    kind = text_format.get("type") if isinstance(text_format, dict) else None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {
            key: text_format[key]
            for key in ("name", "description", "schema", "strict")
            if text_format.get(key) is not None
        }
        return {"type": "json_schema", "json_schema": schema}
    return None


# input items -----------------------------------------------------------------------------------


def _items(items: list[Any], messages: list[Json], request: ChatRequest, where: str) -> None:
    for position, item in enumerate(items):
        param = f"{where}[{position}]"
        if not isinstance(item, dict):
            raise BridgeRefused(f"{param} must be an object", param)
        kind = item.get("type")
        if kind is None or kind == "message":
            _message(item, messages, request, param)
        elif kind == "function_call":
            name = chat_tool_name(item.get("name", ""), item.get("namespace"))
            _add_tool_call(messages, item.get("call_id"), name, item.get("arguments", ""))
        elif kind == "custom_tool_call":
            name = chat_tool_name(item.get("name", ""), item.get("namespace"))
            arguments = orjson.dumps({"input": item.get("input", "")}).decode()
            _add_tool_call(messages, item.get("call_id"), name, arguments)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            content = _tool_output(item.get("output"), request)
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": content}
            )
        elif kind == "item_reference":
            raise BridgeRefused(
                "item_reference points at items stored by OpenAI; send the items themselves", param
            )
        else:
            _note(request.dropped_items, str(kind))


def _message(item: Json, messages: list[Json], request: ChatRequest, param: str) -> None:
    role = item.get("role")
    content = item.get("content")
    if role == "assistant":
        _add_assistant_text(messages, _text(content, request))
    elif role in ("system", "developer"):
        messages.append({"role": "system", "content": _text(content, request)})
    elif role == "user":
        messages.append({"role": "user", "content": _user_content(content, request, param)})
    else:
        raise BridgeRefused(f"{param}.role {role!r} is not a message role", f"{param}.role")


def _add_assistant_text(messages: list[Json], text: str) -> None:
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
        # Text after tool calls, with no result in between: one assistant turn for chat.
        last["content"] = f"{last['content']}{text}" if last["content"] else text
    else:
        messages.append({"role": "assistant", "content": text})


def _add_tool_call(messages: list[Json], call_id: Any, name: str, arguments: Any) -> None:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _user_content(content: Any, request: ChatRequest, param: str) -> str | list[Json]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BridgeRefused(f"{param}.content must be a string or a list of parts", param)
    parts: list[Json] = []
    for position, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{param}.content[{position}]"
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image":
            parts.append(_image(part, where))
        elif kind == "input_file":
            parts.append(_file(part, where))
        else:
            _note(request.dropped_items, f"{kind} part")
    if all(part["type"] == "text" for part in parts):
        # Text alone goes as a string: several chat providers take no content lists.
        return "\n".join(part["text"] for part in parts)
    return parts


def _image(part: Json, where: str) -> Json:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise BridgeRefused(
            "images must be given by image_url (a URL or a data URL); file_id refers to a file "
            "stored by OpenAI",
            where,
        )
    image: Json = {"url": url}
    if part.get("detail") in _IMAGE_DETAILS:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file(part: Json, where: str) -> Json:
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        raise BridgeRefused("files must be given inline as file_data for this model", where)
    file: Json = {"file_data": data}
    if part.get("filename"):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _text(content: Any, request: ChatRequest) -> str:
    """The text of a message's content (a string or a list of parts); other parts are dropped."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            texts.append(part.get("text", ""))
        elif kind == "refusal":
            texts.append(part.get("refusal", ""))
        else:
            _note(request.dropped_items, f"{kind} part")
    return "\n".join(texts)


def _tool_output(output: Any, request: ChatRequest) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _text(output, request)
    return "" if output is None else orjson.dumps(output).decode()


def _note(dropped: list[str], what: str) -> None:
    if what not in dropped:
        dropped.append(what)
