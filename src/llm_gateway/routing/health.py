"""Deployment health: consecutive failures, cooldowns and the probe after a cooldown.

A deployment cools down after `failures_to_cool` consecutive failing attempts (for
`cooldown_seconds`, doubling with each consecutive cooldown up to `max_cooldown_seconds`), after
one 429 (for its Retry-After, else 5 s) or after one 401/403/404 (60 s). A cooling deployment is
skipped. When the cooldown ends, one request at a time may probe it: success makes it healthy
and resets the doubling; failure cools it again, longer.

Times are unix seconds, so that cooldowns can be shared between processes (see state/bus.py).
Every change of cooling state is reported to the listeners (the metrics); the changes found in
this process also to the publishers (the Redis bus, which tells the other processes).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from llm_gateway.routing.rules import MISCONFIGURED_STATUSES

RATE_LIMITED_COOLDOWN = 5.0
MISCONFIGURED_COOLDOWN = 60.0


@dataclass(slots=True)
class DeploymentHealth:
    failures: int = 0  # consecutive failing attempts since the last success or cooldown
    level: int = 0  # consecutive cooldowns: the failure cooldown doubles with each
    cooling_until: float = 0.0  # unix time; 0 when not cooling
    probing: bool = False  # the cooldown ended and one request is trying the deployment
    last_error: str | None = None


HealthListener = Callable[[uuid.UUID, DeploymentHealth], None]


class Health:
    def __init__(
        self,
        failures_to_cool: int = 3,
        cooldown_seconds: float = 30.0,
        max_cooldown_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.failures_to_cool = failures_to_cool
        self.cooldown_seconds = cooldown_seconds
        self.max_cooldown_seconds = max_cooldown_seconds
        self.clock = clock
        self.states: dict[uuid.UUID, DeploymentHealth] = {}
        self.listeners: list[HealthListener] = []
        self.publishers: list[HealthListener] = []

    # read on every pick -----------------------------------------------------------------------
    def usable(self, deployment_id: uuid.UUID, now: float) -> bool:
        state = self.states.get(deployment_id)
        if state is None or not state.cooling_until:
            return True
        return state.cooling_until <= now and not state.probing

    def cooling_until(self, deployment_id: uuid.UUID) -> float:
        state = self.states.get(deployment_id)
        return 0.0 if state is None else state.cooling_until

    def claim(self, deployment_id: uuid.UUID, now: float) -> None:
        """A request is about to ask this deployment: if its cooldown is over, it is the probe."""
        state = self.states.get(deployment_id)
        if state is not None and state.cooling_until and state.cooling_until <= now:
            state.probing = True

    # results of attempts -----------------------------------------------------------------------
    def succeeded(self, deployment_id: uuid.UUID) -> None:
        state = self.states.get(deployment_id)
        if state is None or (not state.failures and not state.cooling_until and not state.level):
            return
        was_cooling = bool(state.cooling_until)
        state.failures = state.level = 0
        state.cooling_until = 0.0
        state.probing = False
        if was_cooling:
            self._notify(deployment_id, state)

    def failed(
        self,
        deployment_id: uuid.UUID,
        description: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> float | None:
        """Count a failing attempt; return the cooldown it started (seconds), if any."""
        state = self.states.get(deployment_id)
        if state is None:
            state = self.states[deployment_id] = DeploymentHealth()
        state.failures += 1
        state.last_error = description
        was_probe, state.probing = state.probing, False
        seconds: float | None = None
        if status == 429:
            seconds = RATE_LIMITED_COOLDOWN if retry_after is None else retry_after
        elif status in MISCONFIGURED_STATUSES:
            seconds = MISCONFIGURED_COOLDOWN
        elif was_probe or state.failures >= self.failures_to_cool:
            seconds = min(self.max_cooldown_seconds, self.cooldown_seconds * 2**state.level)
        if seconds is None:
            return None
        state.cooling_until = max(state.cooling_until, self.clock() + seconds)
        state.level += 1
        state.failures = 0
        self._notify(deployment_id, state)
        return seconds

    # shared state ----------------------------------------------------------------------------
    def apply(
        self,
        deployment_id: uuid.UUID,
        cooling_until: float,
        level: int,
        last_error: str | None,
    ) -> None:
        """A cooldown (or, with `cooling_until` 0, a recovery) another process reported."""
        state = self.states.get(deployment_id)
        if state is None:
            if not cooling_until:
                return
            state = self.states[deployment_id] = DeploymentHealth()
        if cooling_until:
            if cooling_until <= state.cooling_until:
                return
            state.cooling_until = cooling_until
            state.level = max(state.level, level)
            state.last_error = last_error or state.last_error
            state.failures = 0
        else:
            state.cooling_until = 0.0
            state.failures = state.level = 0
        state.probing = False
        for listener in self.listeners:
            listener(deployment_id, state)

    def _notify(self, deployment_id: uuid.UUID, state: DeploymentHealth) -> None:
        for listener in (*self.listeners, *self.publishers):
            listener(deployment_id, state)
