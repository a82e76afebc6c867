"""`POST /v1/responses`: passed through to providers with a native Responses API; for the
others translated to chat completions and back (translate/responses*.py), streams included."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from llm_gateway.errors import BadRequest, GatewayError
from llm_gateway.proxy.asgi import Headers
from llm_gateway.proxy.endpoints.base import (
    Exchange,
    Usage,
    json_usage,
    required_model,
    responses_usage,
    stream_flag,
    upstream_headers,
    with_model,
)
from llm_gateway.proxy.sse import EventUsageTap, TranslatedStream
from llm_gateway.routing.table import Deployment
from llm_gateway.translate.responses import (
    BridgeRefused,
    ChatRequest,
    ResponsesStream,
    chat_to_response,
    responses_to_chat,
)
from llm_gateway.upstream.kinds import CHAT, RESPONSES

_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


class ResponsesCall:
    __slots__ = ("_bridge", "model", "notes", "payload", "raw", "stream")
    output_fields = ("max_output_tokens",)

    def __init__(self, raw: bytes, payload: dict[str, Any]) -> None:
        self.raw = raw
        self.payload = payload
        self.model = required_model(payload)
        self.stream = stream_flag(payload)
        if payload.get("input") is None and payload.get("prompt") is None:
            raise BadRequest("'input' is required", param="input")
        self._bridge: ChatRequest | None = None
        self.notes: str | None = None

    def exchange(self, deployment: Deployment, client_headers: Headers) -> Exchange | None:
        endpoints = deployment.kind.endpoints
        if RESPONSES in endpoints:
            return self._native(deployment, client_headers)
        if CHAT in endpoints:
            return self._bridged(deployment, client_headers)
        return None

    def usage(self, body: bytes) -> Usage | None:
        return responses_usage(json_usage(body))

    def _native(self, deployment: Deployment, client_headers: Headers) -> Exchange:
        return Exchange(
            url=deployment.base_url + "/responses",
            body=with_model(self.raw, self.payload, deployment),
            headers=upstream_headers(deployment, client_headers, self.stream),
            stream_relay=lambda: EventUsageTap(_terminal_usage, _failed_event),
        )

    def _bridged(self, deployment: Deployment, client_headers: Headers) -> Exchange:
        if self._bridge is None:
            try:
                self._bridge = responses_to_chat(self.payload, self.model)
            except BridgeRefused as refused:
                raise BadRequest(
                    f"{refused.message} (this model is served through chat completions)",
                    param=refused.param,
                    code="unsupported_by_provider",
                ) from None
            self.notes = _notes(self._bridge)
        bridge = self._bridge
        body = {**bridge.body, "model": deployment.upstream_model}
        model, response_id, created = self.model, "resp_" + os.urandom(12).hex(), int(time.time())

        def translate(status: int, data: bytes) -> bytes:
            if status >= 400:
                return data  # an OpenAI-shaped error either way
            answer = chat_to_response(
                orjson.loads(data), bridge, model=model, response_id=response_id, created_at=created
            )
            return orjson.dumps(answer)

        return Exchange(
            url=deployment.base_url + "/chat/completions",
            body=orjson.dumps(body),
            headers=upstream_headers(deployment, client_headers, self.stream),
            stream_relay=lambda: TranslatedStream(
                ResponsesStream(bridge, model=model, response_id=response_id, created_at=created),
                typed=False,
                read_usage=responses_usage,
            ),
            translate=translate,
        )


class Responses:
    name = RESPONSES
    path = "/v1/responses"
    serves_every_kind = False

    def parse(self, raw: bytes, payload: dict[str, Any]) -> ResponsesCall:
        return ResponsesCall(raw, payload)

    def error_body(self, error: GatewayError) -> bytes:
        return error.body()

    def serves(self, deployment: Deployment) -> bool:
        return bool(deployment.kind.endpoints & {RESPONSES, CHAT})


def _terminal_usage(event: Any) -> Usage | None:
    if isinstance(event, dict) and event.get("type") in _TERMINAL:
        response = event.get("response")
        if isinstance(response, dict):
            return responses_usage(response.get("usage"))
    return None


def _failed_event(error: GatewayError) -> bytes:
    payload = {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "param": None,
        "sequence_number": 0,
    }
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


def _notes(bridge: ChatRequest) -> str | None:
    parts = []
    if bridge.dropped_tools:
        parts.append("built-in tools not offered: " + ", ".join(bridge.dropped_tools))
    if bridge.dropped_items:
        parts.append("input items dropped: " + ", ".join(bridge.dropped_items))
    return "; ".join(parts) or None
