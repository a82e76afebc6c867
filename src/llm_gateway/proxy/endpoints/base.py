"""What each proxied endpoint tells the pipeline.

An `Endpoint` reads its request (`parse`) and renders gateway errors in its API's shape. The
request it returns says, for one deployment, what one attempt sends (`Exchange`) and how the
answer comes back: a whole body turned into the client's body (unchanged when passed through,
translated by a bridge), or a stream fed through a `StreamRelay` that also reads the usage.
Usage is reported in one shape for accounting: `prompt_tokens`, `completion_tokens`,
`total_tokens` (cached prompt tokens included in `prompt_tokens`), and `cached_tokens` (those of
the prompt read from the provider's cache, priced at the cached price; OpenAI-shaped usage
says it in `prompt_tokens_details.cached_tokens`, which the accounting reads as well).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from llm_gateway.errors import BadRequest, GatewayError
from llm_gateway.proxy.asgi import Headers
from llm_gateway.routing.table import Deployment

Usage = dict[str, Any]


class StreamRelay(Protocol):
    """Bytes of a committed upstream stream in, bytes for the client out."""

    @property
    def usage(self) -> Usage | None: ...

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, error: GatewayError) -> bytes:
        """The end of a stream the upstream broke off: an error event in the client's API."""
        ...


@dataclass(slots=True)
class Exchange:
    """One attempt on one deployment: what to send, and how to read the answer back."""

    url: str
    body: bytes
    headers: dict[str, str]
    stream_relay: Callable[[], StreamRelay]
    # A bridge's translation of a whole answer (status, body) -> body; None passes it through.
    translate: Callable[[int, bytes], bytes] | None = None
    # An answer made here without asking the upstream (an estimate), or None.
    local_answer: bytes | None = None


class ProxyRequest(Protocol):
    model: str
    stream: bool
    raw: bytes
    payload: dict[str, Any]

    @property
    def output_fields(self) -> tuple[str, ...]:
        """The fields that bound the answer's length."""
        ...

    def exchange(self, deployment: Deployment, client_headers: Headers) -> Exchange | None:
        """What to send `deployment`, or None when it cannot serve this endpoint."""
        ...

    def usage(self, body: bytes) -> Usage | None:
        """The usage in a whole (client-facing) answer."""
        ...


class Endpoint(Protocol):
    name: str  # the request log's `endpoint`
    path: str  # the client's path
    serves_every_kind: bool  # True: no deployment is ever skipped for this endpoint

    def parse(self, raw: bytes, payload: dict[str, Any]) -> ProxyRequest: ...

    def error_body(self, error: GatewayError) -> bytes: ...

    def serves(self, deployment: Deployment) -> bool:
        """Whether `deployment` can serve this endpoint, natively or through a bridge."""
        ...


# shared by the endpoints -------------------------------------------------------------------------
def cap_output(request: ProxyRequest, limit: int) -> None:
    """Lower a requested output length above the model's cap to the cap (instead of letting
    the upstream refuse it)."""
    payload = request.payload
    changed = False
    for name in request.output_fields:
        value = payload.get(name)
        if isinstance(value, int) and value > limit:
            payload[name] = limit
            changed = True
    if changed:
        request.raw = orjson.dumps(payload)


def required_model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string", param="model")
    return model


def stream_flag(payload: dict[str, Any]) -> bool:
    stream = payload.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    return stream


def upstream_headers(
    deployment: Deployment, client_headers: Headers, stream: bool
) -> dict[str, str]:
    """The provider's credentials, the content headers, and the client headers its kind takes."""
    headers = dict(deployment.auth_headers)
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "text/event-stream" if stream else "application/json"
    allowed = deployment.kind.forwarded_headers
    for name, value in client_headers:
        if name in allowed:
            headers[name.decode()] = value.decode("latin-1")
    return headers


def with_model(raw: bytes, payload: dict[str, Any], deployment: Deployment) -> bytes:
    """The client's bytes, unless the deployment calls the model by another name."""
    upstream = deployment.upstream_model
    return raw if upstream == payload["model"] else orjson.dumps({**payload, "model": upstream})


def json_usage(body: bytes) -> Any:
    """The `usage` object of a JSON body, read only when the body mentions one."""
    if b'"usage"' not in body:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload.get("usage") if isinstance(payload, dict) else None


def openai_usage(usage: Any) -> Usage | None:
    return usage if isinstance(usage, dict) else None


def responses_usage(usage: Any) -> Usage | None:
    """Responses API usage (`input_tokens`, `output_tokens`) in the accounting shape."""
    if not isinstance(usage, dict):
        return None
    prompt = _count(usage.get("input_tokens"))
    completion = _count(usage.get("output_tokens"))
    details = usage.get("input_tokens_details")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _count(usage.get("total_tokens")) or prompt + completion,
        "cached_tokens": _count(details.get("cached_tokens")) if isinstance(details, dict) else 0,
    }


def anthropic_usage(usage: Any) -> Usage | None:
    """Anthropic usage: `input_tokens` excludes cache reads and writes; the prompt is all three."""
    if not isinstance(usage, dict):
        return None
    prompt = (
        _count(usage.get("input_tokens"))
        + _count(usage.get("cache_read_input_tokens"))
        + _count(usage.get("cache_creation_input_tokens"))
    )
    completion = _count(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": _count(usage.get("cache_read_input_tokens")),
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0
