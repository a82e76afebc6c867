"""`GET /v1/models`: the OpenAI-style list of models the calling key may use.

A key with an allowed-models list sees only those; a key with a cost budget sees only priced
models (it cannot use the others); an expired key is refused as on every endpoint.
"""

from __future__ import annotations

import orjson

from llm_gateway.errors import BadRequest
from llm_gateway.proxy.asgi import JSON_CONTENT_TYPE, Receive, Scope, Send, send_bytes, send_error
from llm_gateway.proxy.auth import (
    authenticate,
    authorization_header,
    client_address,
    expired,
    refusal,
)
from llm_gateway.runtime import Runtime


class ModelList:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            error = BadRequest(
                f"method not allowed: {scope['method']} {scope['path']}",
                code="method_not_allowed",
            )
            error.status = 405
            await send_error(send, error, [(b"allow", b"GET")])
            return
        store = self.rt.store
        assert store is not None
        authorization = authorization_header(scope["headers"])
        key = authenticate(store.cache, authorization)
        if key is None:
            throttled = self.rt.auth_throttle.failed(client_address(scope))
            await send_error(send, refusal(authorization, throttled), [])
            return
        policy = key.policy
        if policy is not None and policy.expired(store.clock()):
            await send_error(send, expired(), [])
            return
        data = [
            {"id": name, "object": "model", "created": route.created, "owned_by": owner}
            for name, route in sorted(store.cache.routes.items())
            if policy is None
            or (policy.allows(name) and (policy.cost_budget is None or route.priced))
            for owner in (route.tiers[0][0].provider_name,)
        ]
        body = orjson.dumps({"object": "list", "data": data})
        await send_bytes(send, 200, body, [JSON_CONTENT_TYPE])
