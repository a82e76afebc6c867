"""What every endpoint of the mock upstream shares: records, `/behave/` specs and the answer driver.

An endpoint handler reads the parsed request (`Call`) and returns a `Json` or a `Stream`;
`serve` records the request, applies the `/behave/` spec of its path and writes the answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

RECORDS: list[dict[str, Any]] = []
COUNTER = itertools.count(1)
SPEC_COUNTS: dict[str, int] = {}
PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS = 10, 5, 4
MODE_WORD = re.compile(r"mode:([a-z0-9_]+)")


class BadRequest(Exception):
    """The request cannot be answered: a 400 in the endpoint's error shape."""


class Cut:
    """Yielded by a stream in place of an event: drop the connection there."""


CUT = Cut()


# ---- /behave/<spec>/ --------------------------------------------------------------------
@dataclass
class Behaviour:
    spec: str = ""
    label: str | None = None
    status: int | None = None
    retry_after: str | None = None
    retry_after_date: float | None = None
    retry_after_ms: str | None = None
    fail_first: int | None = None
    close: bool = False
    first_event_delay: float = 0.0
    cut_after: int | None = None

    def error_headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        if self.retry_after_date is not None:
            moment = time.time() + self.retry_after_date
            headers["Retry-After"] = email.utils.formatdate(moment, usegmt=True)
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = self.retry_after_ms
        return headers


def _number(name: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise BadRequest(f"behave: {name} needs a number, not {value!r}") from None
    if number < 0:
        raise BadRequest(f"behave: {name} cannot be negative")
    return number


def parse_behaviour(path: str) -> Behaviour:
    """The spec of the first `/behave/<spec>/` segment of `path` (empty when there is none)."""
    segments = path.split("/")
    if "behave" not in segments[:-1]:
        return Behaviour()
    spec = segments[segments.index("behave") + 1]
    behaviour = Behaviour(spec=spec)
    for item in filter(None, spec.split(",")):
        name, equals, value = item.partition("=")
        if name == "close" and not equals:
            behaviour.close = True
        elif not equals:
            raise BadRequest(f"behave: {name!r} needs a value")
        elif name == "id":
            behaviour.label = value
        elif name == "status":
            behaviour.status = _number(name, value, int)
            if not 400 <= behaviour.status <= 599:
                raise BadRequest("behave: status must be 400..599")
        elif name == "retry_after":
            behaviour.retry_after = str(_number(name, value, float)).removesuffix(".0")
        elif name == "retry_after_date":
            behaviour.retry_after_date = _number(name, value, float)
        elif name == "retry_after_ms":
            behaviour.retry_after_ms = str(_number(name, value, int))
        elif name == "fail_first":
            behaviour.fail_first = _number(name, value, int)
        elif name == "first_event_delay":
            behaviour.first_event_delay = _number(name, value, float)
        elif name == "cut_after":
            behaviour.cut_after = _number(name, value, int)
        else:
            raise BadRequest(f"behave: unknown name {name!r}")
    return behaviour


# ---- what handlers see and return -------------------------------------------------------
@dataclass
class Call:
    request: web.Request
    payload: dict[str, Any]
    number: int
    record: dict[str, Any]

    @property
    def model(self) -> Any:
        return self.payload.get("model", "")

    @property
    def stream(self) -> bool:
        return bool(self.payload.get("stream"))

    @property
    def include_usage(self) -> bool:
        options = self.payload.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))


@dataclass
class Json:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    events: AsyncIterator[bytes | Cut]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Endpoint:
    name: str
    handler: Callable[[Call], Awaitable[Json | Stream]]
    error_body: Callable[[int, str, int], dict[str, Any]]  # (status, message, request number)
    headers: Callable[[int], dict[str, str]]
    limit_headers: dict[str, str] = field(default_factory=dict)  # added to a 429


def data_event(body: Any) -> bytes:
    """An unnamed SSE event, as OpenAI's chat and legacy completions streams send them."""
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def named_event(name: str, body: Any) -> bytes:
    """A named SSE event, as the Responses and Anthropic Messages streams send them."""
    return f"event: {name}\ndata: ".encode() + json.dumps(body).encode() + b"\n\n"


async def from_list(events: list[bytes]) -> AsyncIterator[bytes | Cut]:
    for event in events:
        yield event


def modes_in(text: str) -> set[str]:
    """Every `mode:<word>` in a text (the modes picked by the last user message)."""
    return set(MODE_WORD.findall(text))


def text_of(content: Any) -> str:
    """The text of a message content: a string, or a list of text parts of any API."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def word_count(text: str) -> int:
    return len(text.split())


def split_text(text: str, pieces: int = 3) -> list[str]:
    """`text` in `pieces` consecutive non-empty parts (fewer when it is shorter)."""
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def first_tool_names(tools: Any, count: int) -> list[str]:
    """The names of the first `count` tools (repeating the first when fewer are given)."""
    names = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
    if not names:
        return []
    return [names[i] if i < len(names) else names[0] for i in range(count)]


TOOL_ARGUMENTS = [{"city": "Paris"}, {"city": "Tokyo"}]


def tool_calls_wanted(modes: set[str], tools: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of the calls that `mode:tool` / `mode:tools2` ask for, given the tools."""
    count = 2 if "tools2" in modes else 1 if "tool" in modes else 0
    return list(zip(first_tool_names(tools, count), TOOL_ARGUMENTS, strict=False))


# ---- the driver ---------------------------------------------------------------------------
def _spec_applies(behaviour: Behaviour) -> bool:
    """Count one request for this spec; whether its failure behaviours apply to it."""
    if not behaviour.spec:
        return False
    SPEC_COUNTS[behaviour.spec] = SPEC_COUNTS.get(behaviour.spec, 0) + 1
    return behaviour.fail_first is None or SPEC_COUNTS[behaviour.spec] <= behaviour.fail_first


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


async def serve(request: web.Request, endpoint: Endpoint | None) -> web.StreamResponse:
    raw = await request.read()
    number = next(COUNTER)
    record: dict[str, Any] = {
        "path": request.path,
        "endpoint": endpoint.name if endpoint else None,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": None,
        "cancelled": False,
        "completed": False,
        "received_at": time.time(),
    }
    RECORDS.append(record)
    if endpoint is None:
        error = {"message": f"no endpoint at {request.path}", "type": "mock_error", "code": None}
        return web.json_response({"error": {**error, "param": None}}, status=404)

    def fail(status: int, message: str, headers: dict[str, str]) -> web.Response:
        record["completed"] = True
        body = endpoint.error_body(status, message, number)
        return web.json_response(body, status=status, headers=headers)

    headers = endpoint.headers(number)
    try:
        payload = json.loads(raw)
        record["body"] = payload
        if not isinstance(payload, dict):
            raise BadRequest("the body must be a JSON object")
        behaviour = parse_behaviour(request.path)
    except ValueError:
        record["body"] = raw.decode(errors="replace")
        return fail(400, "bad request", headers)
    except BadRequest as exc:
        return fail(400, str(exc), headers)
    active = _spec_applies(behaviour)
    try:
        if active and behaviour.close:
            _close(request)
            record["completed"] = True
            return web.Response()
        if active and behaviour.status is not None:
            if behaviour.status == 429:
                headers.update(endpoint.limit_headers)
            error_headers = {**headers, **behaviour.error_headers()}
            return fail(behaviour.status, f"mock error {behaviour.status}", error_headers)
        try:
            answer = await endpoint.handler(Call(request, payload, number, record))
        except (BadRequest, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            return fail(400, f"bad request: {exc}", headers)
        delay = behaviour.first_event_delay if active else 0.0
        cut_after = behaviour.cut_after if active else None
        if isinstance(answer, Json):
            return await _write_json(request, record, answer, headers, delay, cut_after)
        return await _write_stream(request, record, answer, headers, delay, cut_after)
    except (asyncio.CancelledError, ConnectionResetError):
        record["cancelled"] = True
        record["cancelled_at"] = time.time()
        raise


async def _write_json(
    request: web.Request,
    record: dict[str, Any],
    answer: Json,
    headers: dict[str, str],
    delay: float,
    cut_after: int | None,
) -> web.StreamResponse:
    if delay:
        await asyncio.sleep(delay)
    all_headers = {**headers, **answer.headers}
    if cut_after is None:
        record["completed"] = True
        return web.json_response(answer.body, status=answer.status, headers=all_headers)
    body = json.dumps(answer.body).encode()
    response = web.StreamResponse(status=answer.status, headers=all_headers)
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    _close(request)
    record["completed"] = True
    return response


async def _write_stream(
    request: web.Request,
    record: dict[str, Any],
    answer: Stream,
    headers: dict[str, str],
    delay: float,
    cut_after: int | None,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={**headers, **answer.headers, "content-type": "text/event-stream"}
    )
    await response.prepare(request)  # a StreamResponse sends its headers at once
    sent = 0
    async for event in answer.events:
        if sent == 0 and delay:
            await asyncio.sleep(delay)
        if isinstance(event, Cut) or (cut_after is not None and sent >= cut_after):
            _close(request)
            record["completed"] = True
            return response
        await response.write(event)
        sent += 1
    await response.write_eof()
    record["completed"] = True
    return response


# ---- the bookkeeping endpoints ----------------------------------------------------------
async def requests_seen(request: web.Request) -> web.Response:
    prefix = request.query.get("prefix", "")
    return web.json_response([r for r in RECORDS if r["path"].startswith(prefix)])


async def reset(_: web.Request) -> web.Response:
    RECORDS.clear()
    SPEC_COUNTS.clear()
    return web.json_response({"status": "reset"})


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
