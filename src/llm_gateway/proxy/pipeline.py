"""A proxied call, top to bottom, the same for every endpoint (proxy/endpoints/ says what differs).

1. authenticate: SHA-256 of the bearer key (or `x-api-key`), looked up in the in-process cache;
   refuse an expired key;
2. read and parse the body once (the endpoint adapter checks its fields);
3. resolve the model in the in-process routing table (a model the key may not use is as
   unknown as one that does not exist); apply the key's policy (cost budgets need priced
   models; rate limits take a request and a token estimate); refuse an exhausted budget and
   reserve the call's expected cost (proxy/gate.py);
4. attempt deployments as the routing plan says (routing/plan.py): a failure that happens
   before anything reached the client moves on to the next deployment or fallback model,
   invisibly; a stream commits at its first event;
5. relay the committed answer (streams chunk by chunk), or the last failure;
6. account usage with the serving model's coefficients and its cost at its prices, settle the
   token estimate of a rate limit to the real usage (proxy/gate.py), and enqueue one
   request-log row; none of it delays the response.

A key without a policy (limits/policy.py) pays one attribute check for all of step 3's policy.

A client that goes away cancels the upstream request; what was streamed is still counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import orjson

from llm_gateway import access_log
from llm_gateway.errors import BadRequest, GatewayError, ModelNotFound
from llm_gateway.json_depth import nests_deeper_than
from llm_gateway.limits.policy import KeyPolicy
from llm_gateway.logging_setup import request_context
from llm_gateway.proxy.asgi import (
    JSON_CONTENT_TYPE,
    Headers,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
)
from llm_gateway.proxy.attempt import Failed, Streaming, attempt
from llm_gateway.proxy.auth import (
    authenticate,
    client_address,
    expired,
    refusal,
)
from llm_gateway.proxy.disconnect import DisconnectWatch
from llm_gateway.proxy.endpoints.base import Endpoint, Exchange, ProxyRequest, cap_output
from llm_gateway.proxy.gate import Gate, fallback_check
from llm_gateway.proxy.record import CallRecord
from llm_gateway.proxy.relay import Reply, relay_answer, relay_stream
from llm_gateway.routing.plan import Plan
from llm_gateway.routing.table import ModelRoute
from llm_gateway.runtime import Runtime
from llm_gateway.upstream.kinds import KINDS

_CLIENT_HEADERS = frozenset(header for kind in KINDS.values() for header in kind.forwarded_headers)
_CLIENT_GONE_STATUS = 499
log = logging.getLogger("llm_gateway.proxy")


class Proxy:
    """One proxied endpoint: the pipeline around its adapter."""

    def __init__(self, runtime: Runtime, endpoint: Endpoint) -> None:
        self.rt = runtime
        self.endpoint = endpoint
        self.gate = Gate(runtime)  # key policies, rate limits and budgets
        self._access_log = runtime.config.access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        authorization = None
        gateway_id = None
        client_headers: Headers = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":  # Anthropic's clients
                authorization = authorization or b"Bearer " + value
            elif name == b"x-request-id":
                gateway_id = value[:128].decode("latin-1")
            elif name in _CLIENT_HEADERS:
                client_headers.append((name, value))
        if gateway_id is None:
            gateway_id = os.urandom(16).hex()
        endpoint = self.endpoint
        reply = Reply(send, gateway_id.encode("latin-1"), endpoint.error_body)

        if scope["method"] != "POST":
            error = BadRequest(f"use POST for {endpoint.path}", code="method_not_allowed")
            error.status = 405
            await reply.error(error)
            self._log_access(scope["method"], 405, started, gateway_id, None, None)
            return
        store = self.rt.store
        assert store is not None
        key = authenticate(store.cache, authorization)
        if key is None:
            throttled = self.rt.auth_throttle.failed(client_address(scope))
            refused = refusal(authorization, throttled)
            await reply.error(refused)
            self._log_access("POST", refused.status, started, gateway_id, None, None)
            return

        call = CallRecord(gateway_id, key, started, endpoint.name)
        request_context.set((gateway_id, str(key.id)))
        policy = key.policy
        try:
            now = store.clock() if policy is not None else 0.0
            if policy is not None and policy.expired(now):
                raise expired()
            body = await read_body(receive, self.rt.config.max_body_bytes)
            call.request_body = body
            request = self._parse(body, call)
            route = store.cache.routes.get(request.model)
            if route is None or (policy is not None and not policy.allows(route.model_name)):
                raise ModelNotFound(f"the model '{request.model}' does not exist", param="model")
            if route.max_output_tokens is not None:
                cap_output(request, route.max_output_tokens)
            if policy is not None:
                waiting = self.gate.police(key, policy, route, request, call, reply, now)
                if waiting is not None:  # rate limits in Redis
                    await waiting
            waiting = self.gate.admit(key, route, len(body), call)
            if waiting is not None:  # the end of a token budget shared with other processes
                await waiting
        except GatewayError as error:
            call.fail(error)
            if policy is not None and policy.rate_limited and reply.limits is None:
                reply.limits = await self.gate.limits_now(key, policy)  # refused before them
            await reply.error(error)
            self._finish(call, None)
            return
        except ConnectionResetError:
            call.status_code, call.is_error = _CLIENT_GONE_STATUS, True
            call.error_message = "client disconnected"
            self._finish(call, None)
            return

        task = asyncio.current_task()
        assert task is not None
        watch = DisconnectWatch(receive, task, call)
        served: ModelRoute | None = None
        try:
            served = await self._serve(request, route, policy, client_headers, reply, call)
        except asyncio.CancelledError:
            if not call.client_gone:
                raise
            task.uncancel()
            call.status_code, call.is_error = _CLIENT_GONE_STATUS, True
            call.error_message = call.error_message or "client disconnected"
            served = call.served_route
        except Exception:
            # A bug of ours: the call is still charged, logged and released; uvicorn answers
            # 500 (or drops the connection if the answer had begun) and logs the traceback.
            call.status_code, call.is_error = 500, True
            call.error_message = "internal error in the gateway"
            self._finish(call, call.served_route)
            raise
        finally:
            watch.stop()
            call.release(store.cache)  # whatever happened, the reservation ends with the call
        self._finish(call, served)

    # steps --------------------------------------------------------------------------------
    def _parse(self, body: bytes, call: CallRecord) -> ProxyRequest:
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
        if isinstance(model, str):
            call.model_requested = model
        request = self.endpoint.parse(body, payload)
        call.is_stream = request.stream
        return request

    async def _serve(
        self,
        request: ProxyRequest,
        route: ModelRoute,
        policy: KeyPolicy | None,
        client_headers: Headers,
        reply: Reply,
        call: CallRecord,
    ) -> ModelRoute | None:
        """Attempt deployments until one answers; relay that answer or the last failure."""
        rt = self.rt
        assert rt.store is not None
        assert rt.session is not None
        config = rt.config
        health = rt.store.health
        routes = rt.store.cache.routes
        endpoint = self.endpoint
        accepts = None if endpoint.serves_every_kind else endpoint.serves
        allowed = None
        if policy is not None and (policy.allowed is not None or policy.cost_budget is not None):
            allowed = fallback_check(policy, routes)
        plan = Plan(
            route,
            routes,
            health,
            config.max_attempts,
            config.max_retry_wait,
            allowed=allowed,
            accepts=accepts,
        )
        keep = config.log_response_body
        failed: tuple[Failed, Exchange] | None = None
        while (step := plan.next(time.time())) is not None:
            served, deployment, wait = step
            try:
                exchange = request.exchange(deployment, client_headers)
            except GatewayError as refusal:  # a bridge cannot honour the request
                call.fail(refusal)
                await reply.error(refusal)
                return None
            if exchange is None:  # the plan only picks deployments that serve the endpoint
                continue
            call.notes = getattr(request, "notes", None)
            if exchange.local_answer is not None:  # answered here, no upstream asked
                call.attempt(served, deployment)
                call.status_code = 200
                await send_bytes(
                    reply.send, 200, exchange.local_answer, [JSON_CONTENT_TYPE, *reply.headers()]
                )
                return served
            if wait:
                await asyncio.sleep(wait)
            reply.attempts += 1
            call.attempt(served, deployment)
            began = time.perf_counter()
            outcome = await attempt(
                rt.session,
                exchange.url,
                exchange.body,
                exchange.headers,
                request.stream,
                config.first_byte_timeout,
            )
            if isinstance(outcome, Failed):
                failure = outcome.failure
                health.failed(
                    deployment.id, _describe(outcome), failure.status, failure.retry_after
                )
                plan.failed(served, deployment, failure)
                call.attempt_failed(deployment, failure.reason, began)
                if rt.metrics is not None:
                    rt.metrics.observe_attempt(deployment.provider_name, failure.reason)
                failed = (outcome, exchange)
                continue
            call.first_byte()
            health.succeeded(deployment.id)
            if rt.metrics is not None:
                rt.metrics.observe_attempt(deployment.provider_name, None)
            if isinstance(outcome, Streaming):
                await relay_stream(outcome, reply, call, exchange.stream_relay(), keep)
            else:
                await relay_answer(outcome, reply, call, keep, exchange, request)
            return served
        if failed is None:  # no deployment of the model (or its fallbacks) serves this endpoint
            error = BadRequest(
                f"the model '{request.model}' has no deployment that serves {endpoint.path}",
                param="model",
                code="endpoint_not_supported",
            )
            call.fail(error)
            await reply.error(error)
        else:
            last, last_exchange = failed
            if last.answer is not None:
                await relay_answer(last.answer, reply, call, keep, last_exchange, request)
            else:
                assert last.error is not None
                call.fail(last.error)
                await reply.error(last.error)
        return None

    def _finish(self, call: CallRecord, route: ModelRoute | None) -> None:
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
        self.gate.charge(call, route)
        if rt.log_writer is not None:
            rt.log_writer.submit(
                call.to_row(rt.config.log_request_body, rt.config.log_response_body)
            )
        if rt.metrics is not None:
            rt.metrics.observe_call(call)
        self._log_access(
            "POST",
            call.status_code,
            call.started,
            call.gateway_id,
            call.key_name,
            call.model_requested,
        )

    def _log_access(
        self,
        method: str,
        status: int,
        started: float,
        request_id: str,
        key: str | None,
        model: str | None,
    ) -> None:
        if self._access_log and access_log.enabled():
            ms = (time.perf_counter() - started) * 1000
            access_log.write(method, self.endpoint.path, status, ms, request_id, key, model)


def _describe(outcome: Failed) -> str:
    """A short account of a failed attempt for `last_error`: never a secret or a URL."""
    if outcome.error is not None:
        return outcome.error.message
    assert outcome.answer is not None
    body = outcome.answer.body
    message = ""
    try:
        payload = orjson.loads(body)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"][:200]
    except orjson.JSONDecodeError:
        pass
    status = outcome.answer.response.status
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"
