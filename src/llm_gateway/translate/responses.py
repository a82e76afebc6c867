"""The Responses API bridge: a Responses request served by a provider that speaks only chat.

    responses_to_chat(body, model)        Responses request body -> ChatRequest (chat body + notes)
    chat_to_response(chat, request, ...)  chat completion -> Response object
    ResponsesStream(request, ...)         chat chunks -> Responses SSE events, incrementally
    BridgeRefused                         what cannot be bridged at all (the gateway answers 400)

Pure: no I/O, no clock, no randomness; the gateway passes in the response id and creation time.
What is mapped, ignored, dropped and refused is listed in `responses_request`; the shape of the
answer in `responses_response`; the event sequence in `responses_stream`.
"""

from __future__ import annotations

from llm_gateway.translate.responses_request import (
    BridgeRefused,
    ChatRequest,
    ToolRef,
    responses_to_chat,
)
from llm_gateway.translate.responses_response import chat_to_response
from llm_gateway.translate.responses_stream import ResponsesStream

__all__ = [
    "BridgeRefused",
    "ChatRequest",
    "ResponsesStream",
    "ToolRef",
    "chat_to_response",
    "responses_to_chat",
]
