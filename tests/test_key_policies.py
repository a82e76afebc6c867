"""Key policies end to end: allowed models, expiry and budget periods, through the openai SDK.

The gateway's clock is moved instead of waiting: a key expires, a budget period ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Admin, assert_openai_error
from tests.policy_rig import SAY, Rig, at
from tests.servers import ThreadedGateway, Upstream, wait_until


@pytest.fixture
def rig(gateway: ThreadedGateway, admin: Admin, upstream: Upstream) -> Iterator[Rig]:
    prepared = Rig.build(gateway, admin, upstream)
    prepared.model("gpt-4o")
    yield prepared
    prepared.close()


# ---- the admin contract ---------------------------------------------------------------------
def test_key_info_shows_every_policy_field(rig: Rig) -> None:
    rig.clock.set(at("2025-03-12 10:00:00"))  # a Wednesday
    key = rig.key(
        allowed_models=["gpt-4o", "claude-*", "gpt-4o"],
        expires_at="2025-04-01T00:00:00Z",
        rpm_limit=60,
        tpm_limit=100_000,
        budget_period="weekly",
        cost_budget_usd=12.5,
        token_budget=1000,
    )
    assert key["allowed_models"] == ["gpt-4o", "claude-*"]  # a repeated entry once
    assert key["expires_at"].startswith("2025-04-01T00:00:00")
    assert (key["rpm_limit"], key["tpm_limit"]) == (60, 100_000)
    assert key["budget_period"] == "weekly"
    assert key["budget_resets_at"].startswith("2025-03-17T00:00:00")  # the next Monday
    assert (key["cost_budget_usd"], key["cost_used_usd"]) == (12.5, 0)
    assert rig.info(key["id"]) == {name: key[name] for name in rig.info(key["id"])}

    cleared = rig.update(
        key["id"],
        allowed_models=None,
        expires_at=None,
        rpm_limit=None,
        tpm_limit=None,
        budget_period=None,
        cost_budget_usd=None,
    )
    for name in ("allowed_models", "expires_at", "rpm_limit", "tpm_limit", "budget_period"):
        assert cleared[name] is None
    assert cleared["budget_resets_at"] is None and cleared["cost_budget_usd"] is None
    # Naive times are UTC.
    assert rig.update(key["id"], expires_at="2030-01-01T08:00:00")["expires_at"].startswith(
        "2030-01-01T08:00:00"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"rpm_limit": 0},
        {"tpm_limit": -5},
        {"rpm_limit": 1.5},
        {"budget_period": "yearly"},
        {"cost_budget_usd": -1},
        {"allowed_models": [""]},
        {"allowed_models": "gpt-4o"},
        {"expires_at": "tomorrow"},
    ],
)
def test_invalid_policy_fields_are_refused(rig: Rig, fields: dict[str, Any]) -> None:
    response = rig.admin.request("POST", "/admin/keys", json={"name": "bad", **fields})
    assert_openai_error(response, 400)
    key = rig.key()
    response = rig.admin.request("PUT", f"/admin/keys/{key['id']}", json=fields)
    assert_openai_error(response, 400)


# ---- allowed models ---------------------------------------------------------------------------
def test_a_model_the_key_may_not_use_is_as_unknown_as_a_missing_one(rig: Rig) -> None:
    rig.model("gpt-4o-mini")
    rig.model("claude-sonnet")
    key = rig.key(allowed_models=["gpt-4o*"])
    assert rig.chat(key).choices[0].message.content == "Hello!"
    assert rig.chat(key, "gpt-4o-mini").choices[0].message.content == "Hello!"

    with pytest.raises(openai.NotFoundError) as refused:
        rig.chat(key, "claude-sonnet")
    with pytest.raises(openai.NotFoundError) as missing:
        rig.chat(key, "no-such-model")
    assert refused.value.code == missing.value.code == "model_not_found"
    assert refused.value.body == {**missing.value.body, "message": refused.value.body["message"]}
    assert refused.value.body["message"] == missing.value.body["message"].replace(
        "no-such-model", "claude-sonnet"
    )
    assert [m.id for m in rig.client(key).models.list()] == ["gpt-4o", "gpt-4o-mini"]
    # Other keys see every model; an emptied list allows nothing.
    assert len(rig.client(rig.key()).models.list().data) == 3
    rig.update(key["id"], allowed_models=[])
    assert rig.client(key).models.list().data == []
    with pytest.raises(openai.NotFoundError):
        rig.chat(key)


def test_fallbacks_outside_the_allowed_list_are_skipped(rig: Rig) -> None:
    failing = rig.admin.provider(f"{rig.upstream.url}/behave/status=503/v1")
    rig.model("backup")
    rig.admin.model(failing["id"], "primary", fallbacks=["backup"])
    limited = rig.key(allowed_models=["primary"])
    with pytest.raises(openai.InternalServerError) as failed:
        rig.chat(limited, "primary")
    assert failed.value.status_code == 503

    def backup_asked() -> int:  # the backup model is the only one served by rig.provider
        return len(rig.upstream.requests(rig.provider["base_url"]))

    assert backup_asked() == 0
    both = rig.key(allowed_models=["primary", "backup"])
    assert rig.chat(both, "primary").choices[0].message.content == "Hello!"
    assert backup_asked() == 1


# ---- expiry ---------------------------------------------------------------------------------
def test_a_key_stops_working_at_its_expiry_instant(rig: Rig) -> None:
    rig.clock.set(at("2025-06-01 11:59:00"))
    key = rig.key(expires_at="2025-06-01T12:00:00Z")
    assert rig.chat(key).choices[0].message.content == "Hello!"
    rig.clock.set(at("2025-06-01 11:59:59"))
    assert rig.post(key, {"model": "gpt-4o", "messages": SAY}).status_code == 200

    rig.clock.set(at("2025-06-01 12:00:00"))
    with pytest.raises(openai.AuthenticationError) as expired:
        rig.chat(key)
    assert expired.value.code == "key_expired"
    assert expired.value.type == "authentication_error"
    with pytest.raises(openai.AuthenticationError) as listing:
        rig.client(key).models.list()
    assert listing.value.code == "key_expired"
    # Anthropic's clients get Anthropic's shape.
    response = httpx.post(
        rig.gateway.url + "/v1/messages",
        json={"model": "gpt-4o", "max_tokens": 10, "messages": SAY},
        headers={"x-api-key": key["key"]},
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"

    rig.update(key["id"], expires_at="2025-07-01T00:00:00Z")  # extended: works again
    assert rig.chat(key).choices[0].message.content == "Hello!"


# ---- budget periods -------------------------------------------------------------------------
def test_a_period_budget_restarts_at_the_boundary_without_a_job(rig: Rig) -> None:
    rig.clock.set(at("2025-01-31 23:58:00"))
    key = rig.key(token_budget=30, budget_period="daily")
    assert key["budget_resets_at"].startswith("2025-02-01T00:00:00")
    rig.chat(key)
    rig.chat(key)  # 15 tokens each: the budget is spent
    with pytest.raises(openai.RateLimitError) as spent:
        rig.chat(key)
    assert spent.value.code == "insufficient_quota"
    rig.flush()
    assert rig.info(key["id"])["tokens_used"] == 30

    rig.clock.set(at("2025-02-01 00:00:01"))
    info = rig.info(key["id"])  # read before any call of the new day: already zero
    assert info["tokens_used"] == 0
    assert info["budget_resets_at"].startswith("2025-02-02T00:00:00")
    rig.chat(key)
    rig.flush()
    assert rig.info(key["id"])["tokens_used"] == 15


def test_a_monthly_cost_budget_restarts_with_the_month(rig: Rig) -> None:
    rig.model("priced", input_price_per_million=1000, output_price_per_million=2000)
    rig.clock.set(at("2025-03-31 23:00:00"))
    key = rig.key(cost_budget_usd=0.02, budget_period="monthly")
    rig.chat(key, "priced")  # 10 x 0.001 + 5 x 0.002 = 0.02 USD
    with pytest.raises(openai.RateLimitError) as spent:
        rig.chat(key, "priced")
    assert spent.value.code == "insufficient_quota"
    rig.clock.set(at("2025-04-01 00:00:00"))
    rig.chat(key, "priced")
    rig.flush()
    info = rig.info(key["id"])
    assert info["cost_used_usd"] == pytest.approx(0.02)
    assert info["budget_resets_at"].startswith("2025-05-01T00:00:00")


def test_a_call_in_flight_across_the_boundary_counts_in_the_new_period(rig: Rig) -> None:
    slow = rig.admin.provider(f"{rig.upstream.url}/behave/first_event_delay=1.5/v1")
    rig.admin.model(slow["id"], "slow")
    rig.clock.set(at("2025-05-04 23:59:00"))
    key = rig.key(token_budget=1000, budget_period="daily")
    rig.chat(key)
    rig.flush()
    assert rig.info(key["id"])["tokens_used"] == 15

    done: list[str] = []

    def stream() -> None:
        chunks = rig.chat(key, "slow", stream=True, stream_options={"include_usage": True})
        done.extend(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    caller = threading.Thread(target=stream)
    caller.start()
    wait_until(lambda: any(r["path"].startswith("/behave/first_event") for r in _seen(rig)))
    rig.clock.advance(timedelta(minutes=2).total_seconds())  # the call is in flight: a new day
    caller.join(timeout=30)
    assert "".join(done) == "Hello from the mock!"
    rig.flush()
    info = rig.info(key["id"])
    assert info["tokens_used"] == 15  # the streamed call, in the day it ended in
    assert info["budget_resets_at"].startswith("2025-05-06T00:00:00")


def _seen(rig: Rig) -> list[dict[str, Any]]:
    return list(httpx.get(f"{rig.upstream.url}/_requests", params={"prefix": "/behave"}).json())
