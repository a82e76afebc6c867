"""`POST /v1/chat/completions`: read the request and build what each deployment receives.

For streams the gateway asks the upstream for its usage chunk (`stream_options.include_usage`)
and, when the client did not ask for it, drops that chunk on the way back (see proxy/sse.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from llm_gateway.errors import BadRequest
from llm_gateway.routing.table import Deployment

PATH = "/chat/completions"


class ChatRequest:
    """The client's request, parsed once; upstream bodies built per deployment, at most once
    per provider-side model name."""

    __slots__ = ("_bodies", "drop_usage", "model", "payload", "raw", "stream")

    def __init__(self, raw: bytes, payload: dict[str, Any]) -> None:
        self.raw = raw
        self.payload = payload
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required and must be a string", param="model")
        self.model = model
        stream = payload.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise BadRequest("'stream' must be a boolean", param="stream")
        self.stream = stream
        _check_messages(payload.get("messages"))
        self.drop_usage = False
        if stream:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                self.drop_usage = True
                options = dict(options) if isinstance(options, dict) else {}
                options["include_usage"] = True
                payload["stream_options"] = options
        self._bodies: dict[str | None, bytes] = {}

    def body_for(self, deployment: Deployment) -> bytes:
        """The bytes sent to `deployment`: the client's own unless something must change."""
        upstream = deployment.upstream_model
        body = self._bodies.get(upstream)
        if body is None:
            if upstream is None and not self.drop_usage:
                body = self.raw
            else:
                payload = self.payload
                if upstream is not None:
                    payload = {**payload, "model": upstream}
                body = orjson.dumps(payload)
            self._bodies[upstream] = body
        return body


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
