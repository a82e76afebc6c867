"""`POST /v1/chat/completions`, top to bottom.

1. authenticate: SHA-256 of the bearer key, looked up in the in-process key cache;
2. read and parse the body once; check `model` and `stream`;
3. resolve the route from the in-process route cache; refuse an exhausted budget and
   reserve the call's expected cost;
4. rewrite `model` and ask for stream usage only when needed, else forward the client's bytes;
5. forward with the pooled client and relay the answer (streams chunk by chunk);
6. account usage and enqueue one request-log row; neither delays the response.

A client that goes away cancels the upstream request; what was streamed is still counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from llm_gateway.errors import (
    BadRequest,
    GatewayError,
    ModelNotFound,
    QuotaExceeded,
)
from llm_gateway.json_depth import nests_deeper_than
from llm_gateway.logging_setup import request_context
from llm_gateway.proxy.asgi import (
    Headers,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_error,
)
from llm_gateway.proxy.auth import (
    INVALID_KEY,
    TOO_MANY_FAILURES,
    authenticate,
    client_address,
)
from llm_gateway.proxy.record import CallRecord, estimate_tokens
from llm_gateway.proxy.sse import UsageTap
from llm_gateway.runtime import Runtime
from llm_gateway.state.cache import KeyEntry, Route
from llm_gateway.upstream.client import classify
from llm_gateway.upstream.kinds import KINDS

_CLIENT_HEADERS = frozenset(header for kind in KINDS.values() for header in kind.forwarded_headers)
_RELAYED = (b"x-request-id", b"openai-processing-ms")
_SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_CLIENT_GONE_STATUS = 499
_BUDGET_EXHAUSTED = "token budget exhausted for this key"  # locally or by the shared check
log = logging.getLogger("llm_gateway.proxy")


@dataclass(frozen=True, slots=True)
class Forward:
    """What goes upstream for one call."""

    route: Route
    body: bytes
    headers: dict[str, str]
    stream: bool
    drop_usage: bool  # the client did not ask for the usage chunk we added


@dataclass(frozen=True, slots=True)
class Reply:
    """How to answer the client: its ASGI `send` and the headers every answer carries."""

    send: Send
    id_header: Headers


class ChatCompletions:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # Recent weighted cost of a call, per model: what a budgeted request reserves.
        self._expected_cost: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        authorization = None
        gateway_id = None
        client_headers: Headers = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                gateway_id = value[:128].decode("latin-1")
            elif name in _CLIENT_HEADERS:
                client_headers.append((name, value))
        if gateway_id is None:
            gateway_id = os.urandom(16).hex()
        reply = Reply(send, [(b"x-gateway-request-id", gateway_id.encode("latin-1"))])

        if scope["method"] != "POST":
            error = BadRequest("use POST for /v1/chat/completions", code="method_not_allowed")
            error.status = 405
            await send_error(send, error, reply.id_header)
            return
        store = self.rt.store
        assert store is not None
        key = authenticate(store.cache, authorization)
        if key is None:
            throttled = self.rt.auth_throttle.failed(client_address(scope))
            await send_error(send, TOO_MANY_FAILURES if throttled else INVALID_KEY, reply.id_header)
            return

        call = CallRecord(gateway_id, key.id, started)
        request_context.set((gateway_id, str(key.id)))
        try:
            body = await read_body(receive, self.rt.config.max_body_bytes)
            call.request_body = body
            forward = self._prepare(body, client_headers, call)
            await self._admit(key, forward, call)
        except GatewayError as error:
            call.fail(error)
            await send_error(send, error, reply.id_header)
            self._finish(call, None)
            return
        except ConnectionResetError:
            call.status_code, call.is_error = _CLIENT_GONE_STATUS, True
            call.error_message = "client disconnected"
            self._finish(call, None)
            return

        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, task, call))
        try:
            if forward.stream:
                await self._relay_stream(forward, reply, call)
            else:
                await self._relay_json(forward, reply, call)
        except asyncio.CancelledError:
            if not call.client_gone:
                raise
            task.uncancel()
            call.status_code, call.is_error = _CLIENT_GONE_STATUS, True
            call.error_message = call.error_message or "client disconnected"
        except Exception:
            # A bug of ours: the call is still charged, logged and released; uvicorn answers
            # 500 (or drops the connection if the answer had begun) and logs the traceback.
            call.status_code, call.is_error = 500, True
            call.error_message = "internal error in the gateway"
            self._finish(call, forward.route)
            raise
        finally:
            watcher.cancel()
            call.release(store.cache)  # whatever happened, the reservation ends with the call
        self._finish(call, forward.route)

    # steps --------------------------------------------------------------------------------
    def _prepare(self, body: bytes, client_headers: Headers, call: CallRecord) -> Forward:
        """Validate the request and build what goes upstream."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest("request body is not valid JSON", code="invalid_json") from None
        if not isinstance(payload, dict):
            raise BadRequest("request body must be a JSON object", code="invalid_json")
        limit = self.rt.config.max_json_depth
        if nests_deeper_than(body, payload, limit):
            raise BadRequest(
                f"request body nests arrays and objects deeper than {limit} levels",
                code="json_too_deep",
            )
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required and must be a string", param="model")
        call.model_requested = model
        stream = payload.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise BadRequest("'stream' must be a boolean", param="stream")
        call.is_stream = stream

        store = self.rt.store
        assert store is not None
        route = store.cache.routes.get(model)
        if route is None:
            raise ModelNotFound(f"the model '{model}' does not exist", param="model")
        call.set_route(route)

        rewrite = route.upstream_model is not None
        drop_usage = False
        if stream:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                drop_usage = True
                options = dict(options) if isinstance(options, dict) else {}
                options["include_usage"] = True
                payload["stream_options"] = options
        if rewrite:
            payload["model"] = route.upstream_model
        return Forward(
            route=route,
            body=orjson.dumps(payload) if rewrite or drop_usage else body,
            headers=_upstream_headers(route, client_headers, stream),
            stream=stream,
            drop_usage=drop_usage,
        )

    async def _admit(self, key: KeyEntry, forward: Forward, call: CallRecord) -> None:
        """Refuse an exhausted budget; otherwise hold the call's expected cost while it runs.

        The reservation keeps concurrent requests from all passing the check before any of
        them is charged; near the end of a budget it is shared with the other processes. The
        expected cost is the model's recent weighted cost per call, and at least the weighted
        size of this prompt (so a cold model, or an unusually long prompt, still holds some).
        """
        if key.exhausted():
            raise QuotaExceeded(_BUDGET_EXHAUSTED)
        if key.token_budget is None:
            return
        route = forward.route
        prompt = route.weighted_tokens(estimate_tokens(len(forward.body)), 0)
        cost = max(self._expected_cost.get(route.model_name, 0), prompt)
        call.reserve(key, cost)
        shared = self.rt.shared_budget
        if shared is not None and shared.near_end(key, cost):
            member = await shared.reserve(key, cost)
            if member is None:
                assert self.rt.store is not None
                call.release(self.rt.store.cache)
                raise QuotaExceeded(_BUDGET_EXHAUSTED)
            if member:
                call.shared_reservation = member

    async def _open_upstream(
        self, forward: Forward, reply: Reply, call: CallRecord
    ) -> aiohttp.ClientResponse | None:
        """Send the request upstream; on a transport failure answer 502/504 and return None."""
        session = self.rt.session
        assert session is not None
        try:
            upstream = await session.post(
                forward.route.url, data=forward.body, headers=forward.headers
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            await _fail(exc, reply, call)
            return None
        call.first_byte()
        call.status_code = upstream.status
        call.response_id = upstream.headers.get("x-request-id")
        return upstream

    async def _relay_json(self, forward: Forward, reply: Reply, call: CallRecord) -> None:
        upstream = await self._open_upstream(forward, reply, call)
        if upstream is not None:
            async with upstream:
                await self._relay_body(upstream, reply, call)

    async def _relay_stream(self, forward: Forward, reply: Reply, call: CallRecord) -> None:
        upstream = await self._open_upstream(forward, reply, call)
        if upstream is None:
            return
        async with upstream:
            content_type = upstream.headers.get("content-type", "")
            if upstream.status != 200 or "text/event-stream" not in content_type:
                # A plain answer to a stream request (usually an error): relay it as it is.
                await self._relay_body(upstream, reply, call)
                return
            send = reply.send
            headers = _SSE_HEADERS + _response_headers(upstream, reply.id_header)[1:]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            tap = UsageTap(forward.drop_usage)
            keep_chunks = self.rt.config.log_response_body
            try:
                async for chunk in upstream.content.iter_any():
                    out = tap.feed(chunk)
                    if out:
                        call.chunk_sent(out, keep_chunks)
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                tail = tap.finish()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = classify(exc)
                call.is_error = True
                call.error_message = f"stream interrupted: {error.message}"
                call.upstream_error_kind = error.code
                tail = b"data: " + error.body() + b"\n\n"
            finally:
                call.upstream_done()
                call.stream_usage(tap.usage)
            await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _relay_body(
        self, upstream: aiohttp.ClientResponse, reply: Reply, call: CallRecord
    ) -> None:
        """Read the whole upstream answer and return it unchanged, reading usage on the way."""
        try:
            data = await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            await _fail(exc, reply, call)
            return
        call.upstream_done()
        call.is_error = upstream.status >= 400
        if call.is_error:
            call.error_message = _excerpt(data)
        else:
            call.read_usage_from_json(data)
        if self.rt.config.log_response_body:
            call.response_body = data
        await send_bytes(
            reply.send, upstream.status, data, _response_headers(upstream, reply.id_header)
        )

    def _finish(self, call: CallRecord, route: Route | None) -> None:
        rt = self.rt
        if rt.store is not None:
            call.release(rt.store.cache)
        if call.upstream_error_kind is not None:
            log.warning(
                "upstream failure (%s) for model %s: %s",
                call.upstream_error_kind,
                call.model_requested,
                call.error_message,
            )
        weighted = call.weigh(route)
        if weighted and rt.store is not None:
            rt.store.ledger.add(call.key_id, weighted)
            if call.usage_reported and call.model_requested is not None:
                previous = self._expected_cost.get(call.model_requested)
                self._expected_cost[call.model_requested] = (
                    weighted if previous is None else (previous * 3 + weighted) // 4
                )
        if call.shared_reservation is not None and rt.shared_budget is not None:
            rt.shared_budget.settle(call.key_id, call.shared_reservation)
            call.shared_reservation = None
        if rt.log_writer is not None:
            rt.log_writer.submit(
                call.to_row(rt.config.log_request_body, rt.config.log_response_body)
            )
        if rt.metrics is not None:
            rt.metrics.observe_call(call)


async def _cancel_on_disconnect(
    receive: Receive, task: asyncio.Task[Any], call: CallRecord
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.client_gone = True
            task.cancel()
            return


def _upstream_headers(route: Route, client_headers: Headers, stream: bool) -> dict[str, str]:
    headers = {
        "Authorization": route.authorization,
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    kind = KINDS.get(route.provider_kind)
    allowed = kind.forwarded_headers if kind is not None else ()
    for name, value in client_headers:
        if name in allowed:
            headers[name.decode()] = value.decode("latin-1")
    return headers


def _response_headers(upstream: aiohttp.ClientResponse, id_header: Headers) -> Headers:
    content_type = upstream.headers.get("content-type", "application/json").encode("latin-1")
    headers: Headers = [(b"content-type", content_type), *id_header]
    for name, value in upstream.raw_headers:
        lower = name.lower()
        if lower in _RELAYED or lower.startswith(b"x-ratelimit-"):
            headers.append((lower, value))
    return headers


async def _fail(exc: BaseException, reply: Reply, call: CallRecord) -> None:
    error = classify(exc)
    call.fail(error)
    await send_error(reply.send, error, reply.id_header)


def _excerpt(data: bytes, limit: int = 500) -> str:
    return data[:limit].decode("utf-8", "replace")
