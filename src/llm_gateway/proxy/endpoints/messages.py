"""`POST /v1/messages` (Anthropic's Messages API) and `/v1/messages/count_tokens`.

Passed through to `anthropic` providers (only `model` rewritten; the client's `anthropic-version`
and `anthropic-beta` forwarded); for every other provider translated to chat completions and
back (translate/anthropic_in.py), streams included. Errors take Anthropic's shape.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from llm_gateway.errors import BadRequest, GatewayError
from llm_gateway.proxy.asgi import Headers
from llm_gateway.proxy.endpoints.base import (
    Exchange,
    Usage,
    anthropic_usage,
    json_usage,
    openai_usage,
    required_model,
    stream_flag,
    upstream_headers,
    with_model,
)
from llm_gateway.proxy.sse import ChatTap, EventUsageTap, TranslatedStream
from llm_gateway.routing.table import Deployment
from llm_gateway.translate.anthropic_common import (
    anthropic_error_body,
    anthropic_error_type,
    estimate_input_tokens,
    openai_error_to_anthropic,
)
from llm_gateway.translate.anthropic_in import (
    MessagesStream,
    chat_to_message,
    messages_to_chat,
    server_tool_names,
)
from llm_gateway.upstream.kinds import CHAT, MESSAGES


class MessagesCall:
    __slots__ = ("model", "notes", "payload", "raw", "stream")
    output_fields = ("max_tokens",)

    def __init__(self, raw: bytes, payload: dict[str, Any]) -> None:
        self.raw = raw
        self.payload = payload
        self.model = required_model(payload)
        self.stream = stream_flag(payload)
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty array", param="messages")
        if not isinstance(payload.get("max_tokens"), int):
            raise BadRequest("'max_tokens' is required and must be an integer", param="max_tokens")
        self.notes: str | None = None

    def exchange(self, deployment: Deployment, client_headers: Headers) -> Exchange | None:
        endpoints = deployment.kind.endpoints
        if MESSAGES in endpoints:
            return Exchange(
                url=deployment.base_url + "/messages",
                body=with_model(self.raw, self.payload, deployment),
                headers=upstream_headers(deployment, client_headers, self.stream),
                stream_relay=lambda: EventUsageTap(_event_usage, _error_event),
            )
        if CHAT in endpoints:
            return self._bridged(deployment, client_headers)
        return None

    def usage(self, body: bytes) -> Usage | None:
        return anthropic_usage(json_usage(body))

    def _bridged(self, deployment: Deployment, client_headers: Headers) -> Exchange:
        chat = messages_to_chat(self.payload, deployment.upstream_model)
        dropped = server_tool_names(self.payload)
        if dropped:
            self.notes = "server tools not offered: " + ", ".join(dropped)
        model, message_id = self.model, "msg_" + os.urandom(12).hex()
        estimate = estimate_input_tokens(self.payload)

        def translate(status: int, data: bytes) -> bytes:
            if status >= 400:
                return openai_error_to_anthropic(status, data)
            return orjson.dumps(chat_to_message(orjson.loads(data), model, message_id))

        return Exchange(
            url=deployment.base_url + "/chat/completions",
            body=orjson.dumps(chat),
            headers=upstream_headers(deployment, client_headers, self.stream),
            stream_relay=lambda: TranslatedStream(
                MessagesStream(model, message_id, estimate), typed=False, read_usage=openai_usage
            ),
            translate=translate,
        )


class CountTokensCall:
    """Forwarded to `anthropic` providers; elsewhere answered here with an estimate."""

    __slots__ = ("model", "payload", "raw", "stream")
    output_fields = ()

    def __init__(self, raw: bytes, payload: dict[str, Any]) -> None:
        self.raw = raw
        self.payload = payload
        self.model = required_model(payload)
        self.stream = False

    def exchange(self, deployment: Deployment, client_headers: Headers) -> Exchange | None:
        if MESSAGES in deployment.kind.endpoints:
            return Exchange(
                url=deployment.base_url + "/messages/count_tokens",
                body=with_model(self.raw, self.payload, deployment),
                headers=upstream_headers(deployment, client_headers, False),
                stream_relay=lambda: ChatTap(False),
            )
        estimate = {"input_tokens": estimate_input_tokens(self.payload)}
        return Exchange(
            url="",
            body=b"",
            headers={},
            stream_relay=lambda: ChatTap(False),
            local_answer=orjson.dumps(estimate),
        )

    def usage(self, body: bytes) -> Usage | None:
        return None  # counting tokens costs nothing


class Messages:
    serves_every_kind = False

    def __init__(self, count_tokens: bool = False) -> None:
        self._count_tokens = count_tokens
        self.name = "count_tokens" if count_tokens else MESSAGES
        self.path = "/v1/messages/count_tokens" if count_tokens else "/v1/messages"

    def parse(self, raw: bytes, payload: dict[str, Any]) -> MessagesCall | CountTokensCall:
        if self._count_tokens:
            return CountTokensCall(raw, payload)
        return MessagesCall(raw, payload)

    def error_body(self, error: GatewayError) -> bytes:
        return anthropic_error_body(error.message, anthropic_error_type(error.status))

    def serves(self, deployment: Deployment) -> bool:
        return bool(deployment.kind.endpoints & {MESSAGES, CHAT})


def _event_usage(event: Any) -> Usage | None:
    if not isinstance(event, dict):
        return None
    if event.get("type") == "message_start":
        message = event.get("message")
        return anthropic_usage(message.get("usage")) if isinstance(message, dict) else None
    if event.get("type") == "message_delta":
        return anthropic_usage(event.get("usage"))
    return None


def _error_event(error: GatewayError) -> bytes:
    body = anthropic_error_body(error.message, anthropic_error_type(error.status))
    return b"event: error\ndata: " + body + b"\n\n"
