"""The attempts of one request: which deployment next, and how long to wait before it.

1. The lowest priority number with a usable deployment this request has not tried; inside it,
   weighted random. Then the fallback models, in order, the same way (each model once; a
   fallback the key may not use is skipped).
2. If nothing has been asked yet and every candidate is cooling, the one whose cooldown ends
   first: a request is never refused without an upstream being asked.
Deployments that cannot serve the request's endpoint (`accepts`) are never picked.
3. With no other candidate left, the deployment that failed last is asked again, after its
   Retry-After (when within `max_wait`) or a jittered backoff; never after a 401/403/404, a
   Retry-After beyond `max_wait`, or while it cools down for longer than the wait.
At most `max_attempts` attempts in all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from llm_gateway.routing.health import Health
from llm_gateway.routing.rules import MISCONFIGURED_STATUSES, backoff_seconds
from llm_gateway.routing.table import Deployment, ModelRoute


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed: an HTTP status or a transport error kind."""

    reason: str  # "503", "upstream_unreachable", "first_byte_timeout", ...
    status: int | None = None
    retry_after: float | None = None


class Plan:
    __slots__ = (
        "_accepts",
        "_allowed",
        "_routes",
        "attempts",
        "health",
        "last",
        "max_attempts",
        "max_wait",
        "retries",
        "route",
        "tried",
    )

    def __init__(
        self,
        route: ModelRoute,
        routes: Mapping[str, ModelRoute],
        health: Health,
        max_attempts: int,
        max_wait: float,
        allowed: Callable[[str], bool] | None = None,
        accepts: Callable[[Deployment], bool] | None = None,
    ) -> None:
        self.route = route
        self._routes = routes
        self.health = health
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._allowed = allowed
        self._accepts = accepts
        self.attempts = 0
        self.retries = 0
        self.tried: list[Deployment] = []
        self.last: tuple[ModelRoute, Deployment, Failure] | None = None

    def next(self, now: float) -> tuple[ModelRoute, Deployment, float] | None:
        """The next attempt as (model, deployment, seconds to wait first), or None to stop."""
        if self.attempts >= self.max_attempts:
            return None
        choice = self._fresh(now)
        wait = 0.0
        if choice is None:
            if self.last is None:
                choice = self._first_to_cool_down()
            else:
                route, deployment, failure = self.last
                retry_wait = self._retry_wait(deployment, failure, now)
                if retry_wait is None:
                    return None
                choice, wait = (route, deployment), retry_wait
                self.retries += 1
        if choice is None:  # a model without deployments (not in the routing table)
            return None
        self.attempts += 1
        route, deployment = choice
        self.tried.append(deployment)
        self.health.claim(deployment.id, now + wait)
        return route, deployment, wait

    def failed(self, route: ModelRoute, deployment: Deployment, failure: Failure) -> None:
        self.last = (route, deployment, failure)

    # the three rules -------------------------------------------------------------------------
    def _fresh(self, now: float) -> tuple[ModelRoute, Deployment] | None:
        route = self.route
        if not self.tried and self._accepts is None:
            first = route.tiers[0]
            states = self.health.states
            # The common case: a first pick in a group no failure has touched.
            if all(deployment.id not in states for deployment in first):
                if len(first) == 1:
                    return route, first[0]
                return route, random.choices(first, cum_weights=route.cumulative[0])[0]
        for route in self._models():
            for tier in route.tiers:
                deployment = self._weighted(tier, now)
                if deployment is not None:
                    return route, deployment
        return None

    def _first_to_cool_down(self) -> tuple[ModelRoute, Deployment] | None:
        best: tuple[ModelRoute, Deployment] | None = None
        best_until = 0.0
        for route in self._models():
            for tier in route.tiers:
                for deployment in tier:
                    if self._accepts is not None and not self._accepts(deployment):
                        continue
                    until = self.health.cooling_until(deployment.id)
                    if best is None or until < best_until:
                        best, best_until = (route, deployment), until
        return best

    def _retry_wait(self, deployment: Deployment, failure: Failure, now: float) -> float | None:
        if failure.status in MISCONFIGURED_STATUSES:
            return None
        if failure.retry_after is not None:
            if failure.retry_after > self.max_wait:
                return None
            wait = failure.retry_after
        else:
            wait = backoff_seconds(self.retries, self.max_wait)
        if self.health.cooling_until(deployment.id) > now + wait:
            return None
        return wait

    # helpers ---------------------------------------------------------------------------------
    def _models(self) -> Iterator[ModelRoute]:
        yield self.route
        seen = [self.route.model_name]
        for name in self.route.fallbacks:
            route = self._routes.get(name)
            if route is None or name in seen:
                continue
            if self._allowed is not None and not self._allowed(name):
                continue
            seen.append(name)
            yield route

    def _weighted(self, tier: tuple[Deployment, ...], now: float) -> Deployment | None:
        """Weighted random among the deployments of `tier` untried and usable: O(len(tier))."""
        health, tried, accepts = self.health, self.tried, self._accepts
        total = 0
        for deployment in tier:
            if accepts is not None and not accepts(deployment):
                continue
            if deployment not in tried and health.usable(deployment.id, now):
                total += deployment.weight
        if not total:
            return None
        point = random.random() * total
        chosen = None
        for deployment in tier:
            if accepts is not None and not accepts(deployment):
                continue
            if deployment not in tried and health.usable(deployment.id, now):
                chosen = deployment
                point -= deployment.weight
                if point < 0:
                    break
        return chosen
