"""Endpoints in OpenAI's shape passed through to providers that serve them natively.

Only `model` is rewritten (and, for streams, usage asked for: see proxy/sse.py); the client's
bytes go upstream unchanged when nothing needs rewriting.
"""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.errors import BadRequest, GatewayError
from llm_gateway.proxy.asgi import Headers
from llm_gateway.proxy.endpoints.base import (
    Exchange,
    Usage,
    json_usage,
    openai_usage,
    required_model,
    stream_flag,
    upstream_headers,
)
from llm_gateway.proxy.sse import ChatTap
from llm_gateway.routing.table import Deployment


class OpenAICall:
    """A parsed request to an OpenAI-shaped endpoint; bodies built per provider-side name."""

    __slots__ = ("_bodies", "drop_usage", "model", "path", "payload", "raw", "stream")
    output_fields = ("max_tokens", "max_completion_tokens")

    def __init__(self, raw: bytes, payload: dict[str, Any], path: str, streams: bool) -> None:
        self.raw = raw
        self.payload = payload
        self.path = path  # the upstream path under the base URL
        self.model = required_model(payload)
        self.stream = stream_flag(payload) if streams else False
        self.drop_usage = False
        if self.stream:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                self.drop_usage = True
                options = dict(options) if isinstance(options, dict) else {}
                options["include_usage"] = True
                payload["stream_options"] = options
        self._bodies: dict[str, bytes] = {}

    def body_for(self, deployment: Deployment) -> bytes:
        """The bytes sent to `deployment`: the client's own unless something must change."""
        upstream = deployment.upstream_model
        body = self._bodies.get(upstream)
        if body is None:
            if upstream == self.model and not self.drop_usage:
                body = self.raw
            else:
                payload = self.payload
                if upstream != self.model:
                    payload = {**payload, "model": upstream}
                body = orjson.dumps(payload)
            self._bodies[upstream] = body
        return body

    def passthrough(self, deployment: Deployment, client_headers: Headers) -> Exchange:
        drop_usage = self.drop_usage
        return Exchange(
            url=deployment.base_url + self.path,
            body=self.body_for(deployment),
            headers=upstream_headers(deployment, client_headers, self.stream),
            stream_relay=lambda: ChatTap(drop_usage),
        )

    def exchange(self, deployment: Deployment, client_headers: Headers) -> Exchange | None:
        return self.passthrough(deployment, client_headers)

    def usage(self, body: bytes) -> Usage | None:
        return openai_usage(json_usage(body))


class OpenAIEndpoint:
    """Legacy completions and embeddings: pass-through only (no bridge exists for them)."""

    serves_every_kind = False

    def __init__(self, name: str, path: str, required: str, streams: bool) -> None:
        self.name = name
        self.path = "/v1" + path
        self._upstream_path = path
        self._required = required
        self._streams = streams

    def parse(self, raw: bytes, payload: dict[str, Any]) -> OpenAICall:
        call = OpenAICall(raw, payload, self._upstream_path, self._streams)
        if payload.get(self._required) in (None, "", []):
            raise BadRequest(f"'{self._required}' is required", param=self._required)
        return call

    def error_body(self, error: GatewayError) -> bytes:
        return error.body()

    def serves(self, deployment: Deployment) -> bool:
        return self.name in deployment.kind.endpoints
