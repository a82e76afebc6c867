"""The routing rules on their own: Retry-After, backoff, cooldowns, probes and the pick."""

from __future__ import annotations

import uuid
from collections import Counter
from email.utils import formatdate

import pytest

from llm_gateway.routing.health import Health
from llm_gateway.routing.plan import Failure, Plan
from llm_gateway.routing.rules import backoff_seconds, retry_after_seconds
from llm_gateway.routing.table import Deployment, ModelRoute, group_by_priority
from llm_gateway.upstream.kinds import KINDS

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def deployment(name: str, weight: int = 1, priority: int = 0) -> Deployment:
    return Deployment(
        id=uuid.uuid4(),
        provider_id=uuid.uuid4(),
        provider_name=name,
        provider_kind="openai",
        kind=KINDS["openai"],
        base_url=f"http://{name}.invalid/v1",
        auth_headers=(("Authorization", "Bearer x"),),
        upstream_model="m",
        weight=weight,
        priority=priority,
    )


def route(name: str, *deployments: Deployment, fallbacks: tuple[str, ...] = ()) -> ModelRoute:
    return ModelRoute(
        model_id=uuid.uuid4(),
        model_name=name,
        tiers=group_by_priority(list(deployments)),
        fallbacks=fallbacks,
        input_coefficient=1.0,
        output_coefficient=1.0,
        created=0,
    )


def plan_for(
    model: ModelRoute, *others: ModelRoute, health: Health | None = None, attempts: int = 3
) -> Plan:
    routes = {r.model_name: r for r in (model, *others)}
    return Plan(model, routes, health or Health(clock=Clock()), attempts, 5.0)


# Retry-After ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": formatdate(NOW + 3, usegmt=True)}, 3.0),
        ({"retry-after": formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_in_all_three_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, NOW) == expected


def test_backoff_doubles_and_stays_within_the_bound() -> None:
    for retry in range(6):
        ceiling = min(5.0, 0.5 * 2**retry)
        waits = [backoff_seconds(retry, 5.0) for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1  # jittered


# cooldowns ---------------------------------------------------------------------------------------
def test_consecutive_failures_cool_a_deployment_down_with_doubling() -> None:
    clock = Clock()
    health = Health(failures_to_cool=3, cooldown_seconds=30, clock=clock)
    target = uuid.uuid4()
    assert health.failed(target, "HTTP 503", 503) is None
    assert health.failed(target, "HTTP 503", 503) is None
    assert health.usable(target, clock.now)
    assert health.failed(target, "HTTP 503", 503) == 30
    assert not health.usable(target, clock.now + 29)
    clock.now += 30
    assert health.usable(target, clock.now)  # the cooldown is over: one probe may go
    health.claim(target, clock.now)
    assert not health.usable(target, clock.now)  # ... and only one
    assert health.failed(target, "HTTP 503", 503) == 60  # the probe failed: twice as long
    clock.now += 60
    health.claim(target, clock.now)
    health.succeeded(target)
    assert health.usable(target, clock.now)
    assert health.states[target].level == 0  # success resets the doubling
    for _ in range(2):
        health.failed(target, "HTTP 500", 500)
    assert health.failed(target, "HTTP 500", 500) == 30


def test_the_failure_cooldown_is_capped_at_300_seconds() -> None:
    clock = Clock()
    health = Health(failures_to_cool=1, cooldown_seconds=100, clock=clock)
    target = uuid.uuid4()
    assert [health.failed(target, "x", 502) for _ in range(4)] == [100, 200, 300, 300]


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, 7.0, 7.0), (429, None, 5.0), (401, None, 60.0), (403, None, 60.0), (404, 9.0, 60.0)],
)
def test_one_rate_limit_or_misconfiguration_cools_at_once(
    status: int, retry_after: float | None, expected: float
) -> None:
    health = Health(clock=Clock())
    assert health.failed(uuid.uuid4(), "x", status, retry_after) == expected


def test_a_success_between_failures_resets_the_count() -> None:
    health = Health(failures_to_cool=3, clock=Clock())
    target = uuid.uuid4()
    for _ in range(5):
        assert health.failed(target, "x", 503) is None
        assert health.failed(target, "x", 503) is None
        health.succeeded(target)


def test_listeners_hear_cooldowns_and_publishers_only_local_ones() -> None:
    health = Health(failures_to_cool=1, clock=Clock())
    heard: list[float] = []
    published: list[float] = []
    health.listeners.append(lambda _, state: heard.append(state.cooling_until))
    health.publishers.append(lambda _, state: published.append(state.cooling_until))
    local, remote = uuid.uuid4(), uuid.uuid4()
    health.failed(local, "x", 503)
    health.apply(remote, NOW + 10, 1, "HTTP 401")
    health.apply(remote, NOW + 5, 1, "older news")  # an earlier end changes nothing
    assert heard == [NOW + 30, NOW + 10]
    assert published == [NOW + 30]
    assert health.states[remote].last_error == "HTTP 401"


# the pick ----------------------------------------------------------------------------------------
def test_weights_are_honoured() -> None:
    light, heavy = deployment("light", weight=1), deployment("heavy", weight=3)
    model = route("m", light, heavy)
    picks = Counter()
    for _ in range(4000):
        step = plan_for(model).next(NOW)
        assert step is not None
        picks[step[1].provider_name] += 1
    assert 0.70 < picks["heavy"] / 4000 < 0.80


def test_the_lowest_priority_number_wins_while_it_is_usable() -> None:
    main, backup = deployment("main", priority=0), deployment("backup", priority=5)
    health = Health(clock=Clock())
    model = route("m", backup, main)
    for _ in range(50):
        step = plan_for(model, health=health).next(NOW)
        assert step is not None
        assert step[1] is main
    health.failed(main.id, "HTTP 401", 401)
    step = plan_for(model, health=health).next(NOW)
    assert step is not None
    assert step[1] is backup


def test_failover_order_then_fallbacks_then_the_attempt_budget() -> None:
    a, b = deployment("a", priority=0), deployment("b", priority=1)
    c, d = deployment("c"), deployment("d")
    primary = route("primary", a, b, fallbacks=("second", "third"))
    plan = plan_for(primary, route("second", c), route("third", d), attempts=3)
    seen = []
    while (step := plan.next(NOW)) is not None:
        model, chosen, wait = step
        assert wait == 0
        seen.append((model.model_name, chosen.provider_name))
        plan.failed(model, chosen, Failure("503", 503))
    assert seen == [("primary", "a"), ("primary", "b"), ("second", "c")]


def test_a_fallback_the_key_may_not_use_is_skipped() -> None:
    a, c, d = deployment("a"), deployment("c"), deployment("d")
    primary = route("primary", a, fallbacks=("secret", "open"))
    routes = {r.model_name: r for r in (primary, route("secret", c), route("open", d))}
    plan = Plan(primary, routes, Health(clock=Clock()), 3, 5.0, allowed=lambda n: n != "secret")
    first = plan.next(NOW)
    assert first is not None
    plan.failed(first[0], first[1], Failure("500", 500))
    second = plan.next(NOW)
    assert second is not None
    assert second[1] is d


def test_when_every_deployment_cools_the_first_to_recover_is_asked_anyway() -> None:
    soon, later = deployment("soon"), deployment("later")
    health = Health(clock=Clock())
    health.failed(later.id, "HTTP 401", 401)  # 60 s
    health.failed(soon.id, "HTTP 429", 429, 3.0)  # 3 s
    step = plan_for(route("m", later, soon), health=health).next(NOW)
    assert step is not None
    assert step[1] is soon


def test_retrying_the_same_deployment_waits_for_retry_after() -> None:
    only = deployment("only")
    model = route("m", only)
    health = Health(clock=Clock())
    plan = plan_for(model, health=health)
    first = plan.next(NOW)
    assert first is not None
    health.failed(only.id, "HTTP 429", 429, 2.0)
    plan.failed(model, only, Failure("429", 429, 2.0))
    second = plan.next(NOW)
    assert second == (model, only, 2.0)


@pytest.mark.parametrize(
    "failure", [Failure("429", 429, 30.0), Failure("401", 401), Failure("404", 404)]
)
def test_no_retry_of_the_same_deployment_when_it_cannot_help(failure: Failure) -> None:
    only = deployment("only")
    model = route("m", only)
    plan = plan_for(model)
    assert plan.next(NOW) is not None
    plan.failed(model, only, failure)
    assert plan.next(NOW) is None


def test_backoff_before_retrying_after_a_server_error() -> None:
    only = deployment("only")
    model = route("m", only)
    plan = plan_for(model)
    assert plan.next(NOW) is not None
    plan.failed(model, only, Failure("502", 502))
    step = plan.next(NOW)
    assert step is not None
    assert 0.25 <= step[2] <= 0.5
