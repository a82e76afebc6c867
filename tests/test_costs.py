"""Model prices and what calls cost: log rows, stats, metrics, and budgets in USD."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Admin
from tests.policy_rig import SAY, Rig
from tests.servers import ThreadedGateway, Upstream

# USD per million tokens. The mock answers 10 prompt tokens (4 of them cached when asked for
# with `mode:cached`) and 5 completion tokens.
PRICES = {
    "input_price_per_million": 2.0,
    "cached_input_price_per_million": 0.5,
    "output_price_per_million": 8.0,
}
PLAIN_COST = (10 * 2.0 + 5 * 8.0) / 1e6
CACHED_COST = (6 * 2.0 + 4 * 0.5 + 5 * 8.0) / 1e6
CACHED = [{"role": "user", "content": "mode:cached please"}]


@pytest.fixture
def rig(gateway: ThreadedGateway, admin: Admin, upstream: Upstream) -> Iterator[Rig]:
    prepared = Rig.build(gateway, admin, upstream)
    prepared.model("priced", **PRICES)
    prepared.model("free")  # no prices at all
    yield prepared
    prepared.close()


def _logs(rig: Rig, key: dict[str, Any]) -> list[dict[str, Any]]:
    rig.flush()
    page = rig.admin.ok("GET", "/admin/logs", params={"key_id": key["id"]})
    return list(reversed(page["data"]))  # oldest first


def test_each_log_row_records_its_cost_with_cached_tokens_at_the_cached_price(rig: Rig) -> None:
    key = rig.key()
    client = rig.client(key)
    client.chat.completions.create(model="priced", messages=SAY)
    client.chat.completions.create(model="priced", messages=CACHED)
    list(
        client.chat.completions.create(
            model="priced", messages=CACHED, stream=True, stream_options={"include_usage": True}
        )
    )
    client.responses.create(model="priced", input="mode:cached please")
    client.chat.completions.create(model="free", messages=SAY)
    rows = _logs(rig, key)
    assert [row["cached_tokens"] for row in rows] == [0, 4, 4, 4, 0]
    costs = [row["cost_usd"] for row in rows]
    assert costs[:4] == pytest.approx([PLAIN_COST, CACHED_COST, CACHED_COST, CACHED_COST])
    assert costs[4] is None  # unpriced: no cost, not a cost of zero


def test_without_a_cached_price_cached_tokens_cost_the_input_price(rig: Rig) -> None:
    rig.model("no-cache-price", input_price_per_million=2.0, output_price_per_million=8.0)
    key = rig.key()
    rig.client(key).chat.completions.create(model="no-cache-price", messages=CACHED)
    [row] = _logs(rig, key)
    assert row["cost_usd"] == pytest.approx(PLAIN_COST)


def test_stats_report_cost_per_model_provider_key_and_hour(rig: Rig) -> None:
    key = rig.key()
    other = rig.key()
    rig.chat(key, "priced")
    rig.chat(key, "priced")
    rig.chat(other, "priced")
    rig.chat(other, "free")
    rig.flush()
    stats = rig.admin.ok("GET", "/admin/stats")
    assert stats["total_cost_usd_24h"] == pytest.approx(3 * PLAIN_COST)
    assert sum(hour["cost_usd"] for hour in stats["requests_per_hour"]) == pytest.approx(
        3 * PLAIN_COST
    )
    models = {row["model"]: row for row in stats["model_usage"]}
    assert models["priced"]["cost_usd"] == pytest.approx(3 * PLAIN_COST)
    assert models["free"]["cost_usd"] == 0
    [provider] = stats["provider_usage"]
    assert provider["provider"] == rig.provider["name"]
    assert provider["cost_usd"] == pytest.approx(3 * PLAIN_COST)
    keys = {row["key_id"]: row for row in stats["key_usage"]}
    assert keys[key["id"]]["cost_usd"] == pytest.approx(2 * PLAIN_COST)
    assert keys[key["id"]]["key_name"] == key["name"]
    assert keys[other["id"]] == {
        "key_id": other["id"],
        "key_name": other["name"],
        "requests": 2,
        "tokens": 30,
        "cost_usd": pytest.approx(PLAIN_COST),
    }
    metrics = httpx.get(rig.gateway.url + "/metrics").text
    [line] = [x for x in metrics.splitlines() if x.startswith("llm_gateway_cost_usd_total{")]
    assert line.startswith('llm_gateway_cost_usd_total{model="priced"} ')
    assert float(line.split()[-1]) == pytest.approx(3 * PLAIN_COST)


def test_key_info_shows_spend(rig: Rig) -> None:
    key = rig.key(cost_budget_usd=1)
    rig.chat(key, "priced")
    rig.chat(key, "priced")
    rig.flush()
    info = rig.info(key["id"])
    assert info["cost_used_usd"] == pytest.approx(2 * PLAIN_COST)
    assert info["cost_budget_usd"] == 1
    reset = rig.update(key["id"], reset_usage=True)
    assert reset["cost_used_usd"] == 0 and reset["tokens_used"] == 0


def test_a_cost_budget_refuses_unpriced_models_instead_of_counting_them_free(rig: Rig) -> None:
    key = rig.key(cost_budget_usd=1)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        rig.chat(key, "free")
    assert refused.value.status_code == 403
    assert refused.value.code == "model_not_priced"
    assert "'free' has no prices" in refused.value.message
    assert [m.id for m in rig.client(key).models.list()] == ["priced"]
    # A key without a cost budget may use it.
    assert rig.chat(rig.key(), "free").choices


def test_a_cost_budget_is_spent_at_the_models_prices(rig: Rig) -> None:
    key = rig.key(cost_budget_usd=2.5 * PLAIN_COST)
    rig.chat(key, "priced")
    rig.chat(key, "priced")
    rig.chat(key, "priced")  # admitted with 2 calls spent; now 3 spent, over the budget
    with pytest.raises(openai.RateLimitError) as spent:
        rig.chat(key, "priced")
    assert spent.value.code == "insufficient_quota"
    assert "USD" in spent.value.message
    raised = rig.update(key["id"], cost_budget_usd=1)
    assert raised["cost_used_usd"] == pytest.approx(3 * PLAIN_COST)
    assert rig.chat(key, "priced").choices


def test_a_cost_budget_skips_unpriced_fallbacks(rig: Rig) -> None:
    failing = rig.admin.provider(f"{rig.upstream.url}/behave/status=503/v1")
    rig.admin.model(failing["id"], "flaky", fallbacks=["free", "priced"], **PRICES)
    key = rig.key(cost_budget_usd=1)
    response = rig.post(key, {"model": "flaky", "messages": SAY})
    assert response.status_code == 200
    [row] = _logs(rig, key)
    assert row["model_served"] == "priced"
    assert row["cost_usd"] == pytest.approx(PLAIN_COST)
