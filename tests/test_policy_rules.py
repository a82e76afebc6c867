"""The pure rules behind key policies: allowed-model globs, budget periods, the rolling minute."""

from __future__ import annotations

import uuid

import pytest

from llm_gateway.limits import window
from llm_gateway.limits.local import LocalLimiter, decide
from llm_gateway.limits.periods import bounds, next_start, period_start
from llm_gateway.limits.policy import AllowedModels, KeyPolicy
from tests.policy_rig import at


@pytest.mark.parametrize(
    ("entries", "model", "allowed"),
    [
        (["gpt-4o"], "gpt-4o", True),
        (["gpt-4o"], "gpt-4o-mini", False),
        (["gpt-4o*"], "gpt-4o-mini", True),
        (["*-mini"], "gpt-4o-mini", True),
        (["openai/*"], "openai/gpt-4o", True),
        (["*"], "anything/at all", True),
        (["gpt-4o.mini"], "gpt-4oxmini", False),  # only `*` is special
        (["gpt-?"], "gpt-4", False),
        (["GPT-4o"], "gpt-4o", False),  # names are case-sensitive, as routes are
        ([], "gpt-4o", False),
    ],
)
def test_allowed_models_are_names_and_star_globs(
    entries: list[str], model: str, allowed: bool
) -> None:
    check = AllowedModels(entries)
    assert check(model) is allowed
    assert check(model) is allowed  # remembered


@pytest.mark.parametrize(
    ("period", "moment", "start", "end"),
    [
        ("daily", "2025-03-10 17:45:00", "2025-03-10 00:00:00", "2025-03-11 00:00:00"),
        ("daily", "2025-03-10 00:00:00", "2025-03-10 00:00:00", "2025-03-11 00:00:00"),
        # ISO weeks start on Monday: 2025-03-16 is a Sunday.
        ("weekly", "2025-03-16 23:59:59", "2025-03-10 00:00:00", "2025-03-17 00:00:00"),
        ("weekly", "2025-03-17 00:00:00", "2025-03-17 00:00:00", "2025-03-24 00:00:00"),
        ("monthly", "2025-02-28 12:00:00", "2025-02-01 00:00:00", "2025-03-01 00:00:00"),
        ("monthly", "2024-12-31 23:00:00", "2024-12-01 00:00:00", "2025-01-01 00:00:00"),
    ],
)
def test_budget_periods_follow_the_utc_calendar(
    period: str, moment: str, start: str, end: str
) -> None:
    assert bounds(period, at(moment)) == (at(start), at(end))
    assert next_start(period, at(start)) == at(end)


def test_an_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="yearly"):
        period_start("yearly", at("2025-01-01 00:00:00"))


def test_the_window_weighs_the_previous_minute_by_what_remains_of_it() -> None:
    assert window.used(20, 0, 0) == 20
    assert window.used(20, 0, 45) == 5
    assert window.used(20, 3, 30) == 13
    assert window.remaining(20, 3, 30, 20) == 7
    assert window.fits(20, 3, 30, 20, 7)
    assert not window.fits(20, 3, 30, 20, 8)


def test_waits_come_from_the_window() -> None:
    # Room now: no wait.
    assert window.wait_for_room(0, 5, 10, 20, 1) == 0
    # Full only because of the previous window: wait until enough of it has slid out.
    assert window.wait_for_room(20, 0, 0, 20, 1) == pytest.approx(3.0)
    assert window.wait_for_room(20, 10, 30, 20, 1) == pytest.approx(30 - 9 * 60 / 20)
    # Full in the current window: its requests slide out over the next one.
    assert window.wait_for_room(0, 3, 1, 3, 1) == pytest.approx(59 + 20)
    assert window.until_reset(0, 3, 1) == 119
    assert window.until_reset(3, 0, 1) == 59
    assert window.until_reset(0, 0, 1) == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (1.0, "1s"), (1.25, "1.3s"), (59.99, "60s"), (60, "1m0s"), (119, "1m59s")],
)
def test_reset_times_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert window.duration_text(seconds) == text


def test_a_refused_admission_takes_nothing() -> None:
    limiter = LocalLimiter()
    key = uuid.uuid4()
    policy = KeyPolicy(rpm_limit=10, tpm_limit=100)
    start = 1_000_020.0  # 0 s into a window (1_000_020 is a multiple of 60)
    admitted = limiter.take(key, policy, 60, start)
    assert admitted.refused is None and admitted.tokens == 60
    refused = limiter.take(key, policy, 60, start + 1)
    assert refused.refused == "tokens"
    assert dict(refused.headers)[b"x-ratelimit-remaining-requests"] == b"9"
    assert dict(refused.headers)[b"x-ratelimit-remaining-tokens"] == b"40"
    # Settling the first call to its real usage (20 tokens) makes room.
    limiter.settle(admitted, key, 20)
    assert limiter.take(key, policy, 60, start + 2).refused is None


def test_a_local_share_divides_each_limit() -> None:
    limiter = LocalLimiter()
    key = uuid.uuid4()
    policy = KeyPolicy(rpm_limit=10)
    answers = [limiter.take(key, policy, 0, 1_000_020.0, share=2) for _ in range(8)]
    assert [a.refused for a in answers] == [None] * 5 + ["requests"] * 3
    assert dict(answers[0].headers)[b"x-ratelimit-limit-requests"] == b"5"


@pytest.mark.parametrize(
    "policy",
    [KeyPolicy(rpm_limit=50, tpm_limit=4_000), KeyPolicy(rpm_limit=7), KeyPolicy(tpm_limit=900)],
)
def test_an_admission_describes_the_windows_as_the_general_rule_does(policy: KeyPolicy) -> None:
    """`take` builds an admitted call's headers on its own path: they must be `decide`'s."""
    limiter = LocalLimiter()
    key = uuid.uuid4()
    now = 1_000_020.0
    for step in range(300):
        now += 0.37 + (step % 5) * 0.9  # across several windows
        answer = limiter.take(key, policy, 40 + step % 90, now)
        if answer.refused is not None:
            continue
        index, elapsed = window.window_index(now)
        counts = limiter._counts[key.int]
        expected = decide(
            policy,
            elapsed,
            index,
            (
                counts.requests_previous,
                counts.requests_current,
                counts.tokens_previous,
                counts.tokens_current,
            ),
            40 + step % 90,
            True,
        )
        assert answer.headers == expected.headers
        assert answer.tokens == expected.tokens
