"""What a key may do before its call goes upstream, and what the call costs it afterwards.

Before (`police`, `admit`): the key's budget period, prices for a cost budget, its rate limits
(one request and a token estimate, every limit at once), and its budgets: a reservation of the
call's expected cost while it is in flight, shared with the other processes near the end of a
token budget. After (`charge`): usage and cost to the ledger, the rate limit's token estimate
settled to the real usage, the shared reservation settled.

A key without a policy skips `police` entirely; `admit` costs it two attribute checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from llm_gateway.errors import PermissionDenied, QuotaExceeded, ThrottledError
from llm_gateway.limits.local import Admission, Headers
from llm_gateway.limits.policy import KeyPolicy
from llm_gateway.proxy.endpoints.base import ProxyRequest
from llm_gateway.proxy.record import CallRecord, estimate_tokens
from llm_gateway.proxy.relay import Reply
from llm_gateway.routing.table import ModelRoute
from llm_gateway.runtime import Runtime
from llm_gateway.state.cache import KeyEntry

BUDGET_EXHAUSTED = "token budget exhausted for this key"  # locally or by the shared check
SPEND_EXHAUSTED = "cost budget (USD) exhausted for this key"


class Gate:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # Recent weighted cost of a call, per model: what a budgeted request reserves.
        self._expected_cost: dict[str, int] = {}
        # The same in nano-USD, for keys with a cost budget.
        self._expected_spend: dict[str, int] = {}

    def police(
        self,
        key: KeyEntry,
        policy: KeyPolicy,
        route: ModelRoute,
        request: ProxyRequest,
        call: CallRecord,
        reply: Reply,
        now: float,
    ) -> Coroutine[Any, Any, None] | None:
        """A key's policy beyond its allowed models: the budget period, prices, rate limits.

        Rate limits take one request and an estimate of the call's tokens (the prompt's size
        plus its `max_tokens`, or a default), all limits at once; the answer carries the key's
        `x-ratelimit-*` headers, and a refusal a `Retry-After` computed from the window.
        Decided here when the limits are in this process; with Redis, returns what to await.
        """
        if now >= key.period_ends:
            key.roll(now)
        if policy.cost_budget is not None and not route.priced:
            raise PermissionDenied(
                f"the model '{route.model_name}' has no prices, and this key's budget is in "
                "USD; an administrator must set the model's prices before this key can use it",
                param="model",
            )
        if key.exhausted():
            raise QuotaExceeded(_exhausted_message(key))
        if not policy.rate_limited:
            return None
        tokens = estimate_tokens(len(request.raw)) + self._output_estimate(request)
        if self.rt.shared_limits is not None:
            return self._police_shared(key, policy, route, tokens, now, call, reply)
        self._admitted(self.rt.local_limits.take(key.id, policy, tokens, now), call, reply)
        return None

    def admit(
        self, key: KeyEntry, route: ModelRoute, body_size: int, call: CallRecord
    ) -> Coroutine[Any, Any, None] | None:
        """Refuse an exhausted budget; otherwise hold the call's expected cost while it runs.

        The reservation keeps concurrent requests from all passing the check before any of
        them is charged; near the end of a budget it is shared with the other processes (the
        one case that returns something to await). The expected cost is the model's recent
        weighted cost per call, and at least the weighted size of this prompt (so a cold model,
        or an unusually long prompt, still holds some). A cost budget holds the model's recent
        cost per call the same way, in this process.
        """
        if key.exhausted():
            raise QuotaExceeded(_exhausted_message(key))
        policy = key.policy
        if policy is not None and policy.cost_budget is not None:
            prompt_cost = route.cost_nanousd(estimate_tokens(body_size), 0, 0)
            call.reserve_cost(key, max(self._expected_spend.get(route.model_name, 0), prompt_cost))
        if key.token_budget is None:
            return None
        cost = self._budget_cost(route, body_size)
        call.reserve(key, cost)
        shared = self.rt.shared_budget
        if shared is not None and not call.budget_asked and shared.near_end(key, cost):
            return self._reserve_shared(key, cost, call)
        return None

    def charge(self, call: CallRecord, route: ModelRoute | None) -> None:
        """Charge the finished call's usage and cost; settle what admission took."""
        rt = self.rt
        weighted = call.weigh(route)
        cost = call.price(route)
        if (weighted or cost) and rt.store is not None:
            rt.store.ledger.add(call.key_id, weighted, cost, call.entry)
            if call.usage_reported and route is not None:
                _remember(self._expected_cost, route.model_name, weighted)
                if cost:
                    _remember(self._expected_spend, route.model_name, cost)
        if call.admission is not None:  # the rate limit's estimate, to the real usage
            limits = rt.shared_limits or rt.local_limits
            limits.settle(call.admission, call.key_id, call.total_tokens)
            call.admission = None
        if call.shared_reservation is not None and rt.shared_budget is not None:
            rt.shared_budget.settle(call.key_id, call.shared_reservation)
            call.shared_reservation = None

    async def limits_now(self, key: KeyEntry, policy: KeyPolicy) -> Headers:
        """The key's `x-ratelimit-*` headers as its windows stand, taking nothing: for an
        answer refused before the rate limits were asked (an unknown model, a spent budget)."""
        rt = self.rt
        assert rt.store is not None
        now = rt.store.clock()
        if rt.shared_limits is not None:
            return await rt.shared_limits.peek(key.id, policy, now)
        return rt.local_limits.peek(key.id, policy, now)

    # helpers -------------------------------------------------------------------------------
    def _admitted(self, admission: Admission, call: CallRecord, reply: Reply) -> None:
        """Apply a rate-limit admission: its headers on the answer, a refusal raised."""
        reply.limits = admission.headers
        if admission.refused is not None:
            if self.rt.metrics is not None:
                self.rt.metrics.rate_limited.labels(admission.refused).inc()
            raise ThrottledError(
                f"rate limit reached for this key ({admission.refused} per minute); "
                f"retry after {max(1, math.ceil(admission.retry_after))} s"
            )
        call.admission = admission
        if admission.budget_room is False:
            raise QuotaExceeded(BUDGET_EXHAUSTED)

    async def _reserve_shared(self, key: KeyEntry, cost: int, call: CallRecord) -> None:
        """Near the end of a token budget: hold `cost` in the budget shared with the other
        processes too (refused: the local reservation is given back)."""
        shared = self.rt.shared_budget
        assert shared is not None
        member = await shared.reserve(key, cost)
        if member is None:
            assert self.rt.store is not None
            call.release(self.rt.store.cache)
            raise QuotaExceeded(BUDGET_EXHAUSTED)
        if member:
            call.shared_reservation = member

    async def _police_shared(
        self,
        key: KeyEntry,
        policy: KeyPolicy,
        route: ModelRoute,
        tokens: int,
        now: float,
        call: CallRecord,
        reply: Reply,
    ) -> None:
        """Rate limits in Redis; near the end of a token budget, the budget's shared
        reservation goes into the same script call, so the request makes one round trip."""
        rt = self.rt
        shared, budget = rt.shared_limits, rt.shared_budget
        assert shared is not None
        cost = None  # of the call, for a token budget whose shared reservation rides along
        if budget is not None and key.token_budget is not None and shared.usable:
            cost = self._budget_cost(route, len(call.request_body or b""))
        if budget is None or cost is None or not budget.near_end(key, cost):
            self._admitted(await shared.take(key.id, policy, tokens, now), call, reply)
            return
        keys, args, member = budget.request(key, cost)
        admission = await shared.take(key.id, policy, tokens, now, (keys, args))
        call.budget_asked = True  # admit() does not ask again
        if admission.budget_room is not None:
            budget.asked += 1
            if budget.answered(admission.budget_room, member) is not None:
                call.shared_reservation = member
        self._admitted(admission, call, reply)

    def _budget_cost(self, route: ModelRoute, body_size: int) -> int:
        """What a call to `route` reserves of a token budget while in flight."""
        prompt = route.weighted_tokens(estimate_tokens(body_size), 0)
        return max(self._expected_cost.get(route.model_name, 0), prompt)

    def _output_estimate(self, request: ProxyRequest) -> int:
        payload = request.payload
        for name in request.output_fields:
            value = payload.get(name)
            if isinstance(value, int) and value >= 0:
                return value
        return self.rt.config.output_tokens_estimate


def fallback_check(policy: KeyPolicy, routes: Mapping[str, ModelRoute]) -> Callable[[str], bool]:
    """Whether a key may be served by a fallback model: allowed, and priced for a cost budget."""
    needs_prices = policy.cost_budget is not None

    def allowed(name: str) -> bool:
        if not policy.allows(name):
            return False
        route = routes.get(name)
        return not needs_prices or (route is not None and route.priced)

    return allowed


def _exhausted_message(key: KeyEntry) -> str:
    if key.token_budget is not None and key.tokens_used + key.reserved >= key.token_budget:
        return BUDGET_EXHAUSTED
    return SPEND_EXHAUSTED


def _remember(expected: dict[str, int], model: str, value: int) -> None:
    previous = expected.get(model)
    expected[model] = value if previous is None else (previous * 3 + value) // 4
