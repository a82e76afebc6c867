"""`POST /v1/chat/completions`: passed through to providers that speak chat; translated to the
Messages API and back for `anthropic` providers (translate/anthropic_out.py)."""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.errors import BadRequest, GatewayError
from llm_gateway.proxy.asgi import Headers
from llm_gateway.proxy.endpoints.base import Exchange, openai_usage, upstream_headers
from llm_gateway.proxy.endpoints.openai_shape import OpenAICall
from llm_gateway.proxy.sse import TranslatedStream
from llm_gateway.routing.table import Deployment
from llm_gateway.translate.anthropic_common import anthropic_error_to_openai
from llm_gateway.translate.anthropic_out import ChatStream, chat_to_messages, message_to_chat
from llm_gateway.upstream.kinds import CHAT, MESSAGES

PATH = "/chat/completions"
DEFAULT_MAX_TOKENS = 4096  # what an Anthropic deployment is asked for when the client sets none


class ChatCall(OpenAICall):
    __slots__ = ()

    def __init__(self, raw: bytes, payload: dict[str, Any]) -> None:
        super().__init__(raw, payload, PATH, streams=True)
        _check_messages(payload.get("messages"))

    def exchange(self, deployment: Deployment, client_headers: Headers) -> Exchange | None:
        endpoints = deployment.kind.endpoints
        if CHAT in endpoints:
            return self.passthrough(deployment, client_headers)
        if MESSAGES in endpoints:
            return self._to_anthropic(deployment, client_headers)
        return None

    def _to_anthropic(self, deployment: Deployment, client_headers: Headers) -> Exchange:
        model = self.model
        upstream = deployment.upstream_model
        body = chat_to_messages(self.payload, upstream, DEFAULT_MAX_TOKENS)
        include_usage = not self.drop_usage

        def translate(status: int, data: bytes) -> bytes:
            if status >= 400:
                return anthropic_error_to_openai(status, data)
            return orjson.dumps(message_to_chat(orjson.loads(data), model))

        return Exchange(
            url=deployment.base_url + "/messages",
            body=orjson.dumps(body),
            headers=upstream_headers(deployment, client_headers, self.stream),
            stream_relay=lambda: TranslatedStream(
                ChatStream(model, include_usage), typed=True, read_usage=openai_usage
            ),
            translate=translate,
        )


class Chat:
    name = CHAT
    path = "/v1" + PATH
    serves_every_kind = True

    def parse(self, raw: bytes, payload: dict[str, Any]) -> ChatCall:
        return ChatCall(raw, payload)

    def error_body(self, error: GatewayError) -> bytes:
        return error.body()

    def serves(self, deployment: Deployment) -> bool:
        return bool(deployment.kind.endpoints & {CHAT, MESSAGES})


def _check_messages(messages: Any) -> None:
    """What every provider requires: a non-empty list of objects, each with a string role."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(
                f"'messages[{index}]' must be an object with a string 'role'",
                param=f"messages[{index}]",
            )
