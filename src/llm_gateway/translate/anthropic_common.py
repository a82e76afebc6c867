"""What both Anthropic bridges share: the refusal, content pieces, usage and error bodies.

Usage is where the two APIs disagree most quietly. Anthropic's `input_tokens` leaves out the
tokens read from or written to the prompt cache (they are `cache_read_input_tokens` and
`cache_creation_input_tokens`); OpenAI's `prompt_tokens` includes both and names them in
`prompt_tokens_details` (`cached_tokens`, `cache_write_tokens`). The converters below move
between the two so that no token is counted twice or lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_gateway.errors import BadRequest

JSON = dict[str, Any]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_IMAGE_TOKENS = 1600  # about what Anthropic charges for an image of the largest unscaled size
_TEXT_KEYS = ("text", "thinking", "content", "source", "data")  # what an estimate counts


class TranslationError(BadRequest):
    """A request the other API cannot honour; answered 400 `invalid_request_error`."""

    code = "unsupported_by_provider"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param=param)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def tool_input(arguments: Any) -> JSON:
    """A tool call's `arguments` (JSON text) as the object Anthropic's `input` must be.

    Empty arguments are `{}`. Text that is not a JSON object is kept, unparsed, under
    `_raw_arguments`, so that nothing crashes and the model can see what it sent.
    """
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": str(arguments)}


# content: text, images and documents on either side -------------------------------------------
def plain_text(content: Any, param: str) -> str:
    """Anthropic text content (a string or text blocks) as one string; blank lines between."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n\n".join(text for text in texts if isinstance(text, str) and text)
    raise TranslationError("expected a string or a list of text blocks", param)


def image_to_part(block: JSON, where: str) -> JSON:
    """An Anthropic image block as a chat `image_url` part (base64 data becomes a data URL)."""
    source: Any = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and source.get("data") and source.get("media_type"):
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif kind == "url" and source.get("url"):
        url = source["url"]
    else:
        raise TranslationError(f"images with a {kind!r} source need an Anthropic deployment", where)
    return {"type": "image_url", "image_url": {"url": url}}


def document_text(block: JSON, where: str) -> str:
    """A plain-text Anthropic document as text under its title; other documents are refused."""
    source: Any = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "text":
        text = str(source.get("data") or "")
    elif kind == "content":
        text = plain_text(source.get("content"), f"{where}.source.content")
    else:
        raise TranslationError(
            "only plain-text documents can be sent to this model; PDF, URL and file documents"
            " need an Anthropic deployment",
            where,
        )
    title = block.get("title")
    return f"{title}\n\n{text}" if isinstance(title, str) and title else text


def _data_url(url: str, where: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` split into its media type and data."""
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64":
        raise TranslationError("data URLs must be base64-encoded", where)
    return media_type, data


def image_to_block(image_url: Any, where: str) -> JSON:
    """A chat `image_url` as an Anthropic image block (a data URL becomes a base64 source)."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise TranslationError("an image part needs a url", where)
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url, where)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def pdf_to_block(file: Any, where: str) -> JSON:
    """A chat `file` part holding an inline PDF as an Anthropic document block."""
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data.startswith("data:application/pdf;"):
        raise TranslationError("only PDF files sent inline can reach an Anthropic model", where)
    media_type, data = _data_url(data, where)
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "document", "source": source}


# usage ----------------------------------------------------------------------------------------
def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def chat_usage_to_anthropic(usage: Mapping[str, Any] | None) -> JSON:
    """OpenAI `usage` as Anthropic's: `input_tokens` without the cache reads."""
    usage = usage or {}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = _count(details.get("cached_tokens")) or _count(usage.get("prompt_cache_hit_tokens"))
    read = min(read, prompt)  # `prompt_cache_hit_tokens`: DeepSeek's name for cached tokens
    written = min(_count(details.get("cache_write_tokens")), prompt - read)
    return {
        "input_tokens": prompt - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": _count(usage.get("completion_tokens")),
    }


def anthropic_usage_to_chat(usage: Mapping[str, Any] | None) -> JSON:
    """Anthropic `usage` as OpenAI's: cache reads and writes are prompt tokens too."""
    usage = usage or {}
    cached = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    prompt = _count(usage.get("input_tokens")) + cached + written
    completion = _count(usage.get("output_tokens"))
    details = {"cached_tokens": cached, "cache_write_tokens": written}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """An estimate of a Messages request's input tokens, for `count_tokens` on other providers.

    A quarter of the characters of the system prompt, the messages' text (tool inputs and tool
    results included) and the tool definitions, plus a flat 1,600 tokens per image or binary
    document; at least 1.
    """
    turns = body.get("messages")
    pending: list[Any] = [body.get("system")]
    pending += (
        [t.get("content") for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []
    )
    chars = flat = 0
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            kind, source = item.get("type"), item.get("source")
            if kind in ("image", "document") and not (
                isinstance(source, dict) and source.get("type") in ("text", "content")
            ):
                flat += _IMAGE_TOKENS
            elif kind == "tool_use":
                chars += len(dumps(item.get("input") or {}))
            elif kind != "redacted_thinking":
                pending.extend(item.get(key) for key in _TEXT_KEYS)
    tools = body.get("tools")
    chars += sum(len(dumps(tool)) for tool in tools) if isinstance(tools, list) else 0
    return max(1, (chars + 3) // 4 + flat)


# error bodies ---------------------------------------------------------------------------------
def anthropic_error_type(status: int) -> str:
    """The Anthropic error `type` for an HTTP status."""
    known = _ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_error_body(message: str, type_: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


def openai_error_to_anthropic(status: int, body: bytes | Mapping[str, Any]) -> bytes:
    """An upstream chat provider's error body in Anthropic's shape, typed by its status."""
    message, _ = _read_error(status, body)
    return anthropic_error_body(message, anthropic_error_type(status))


def anthropic_error_to_openai(status: int, body: bytes | Mapping[str, Any]) -> bytes:
    """An upstream Anthropic error body in OpenAI's `{"error": {...}}` shape."""
    message, type_ = _read_error(status, body)
    error = {"message": message, "type": type_ or anthropic_error_type(status)}
    return orjson.dumps({"error": {**error, "code": None, "param": None}})


def _read_error(status: int, body: bytes | Mapping[str, Any]) -> tuple[str, str | None]:
    """The message and type an error body carries, in whichever shape it came."""
    payload: Any = body
    if isinstance(body, bytes):
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace").strip()
            return (text[:1000] or f"upstream answered HTTP {status}"), None
    if isinstance(payload, Mapping):
        error = payload.get("error")
        if isinstance(error, Mapping):
            message, type_ = error.get("message"), error.get("type")
            if isinstance(message, str) and message:
                return message, type_ if isinstance(type_, str) else None
        for value in (error, payload.get("message"), payload.get("detail")):
            if isinstance(value, str) and value:
                return value, None
    return f"upstream answered HTTP {status}", None
