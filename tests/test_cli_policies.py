"""Key policies and model prices through the CLI, against a running gateway (DESIGN section 8)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from click.testing import CliRunner

from llm_gateway.cli import main
from tests.conftest import Admin
from tests.servers import ADMIN_KEY, ThreadedGateway, Upstream, free_port
from tests.test_cli_admin import assert_one_line_error, cli, cli_json

PRICES = ("input_price_per_million", "cached_input_price_per_million", "output_price_per_million")


def _require(gateway: ThreadedGateway, schema: str, *names: str) -> None:
    """Skip until the admin API describes `names` in `schema`."""
    spec = httpx.get(gateway.url + "/openapi.json").json()
    fields = spec.get("components", {}).get("schemas", {}).get(schema, {}).get("properties", {})
    if any(name not in fields for name in names):
        pytest.skip("the admin API does not take key policies and prices yet (DESIGN section 8)")


@pytest.fixture
def policies(gateway: ThreadedGateway) -> ThreadedGateway:
    _require(gateway, "KeyCreate", "allowed_models", "expires_at", "rpm_limit", "cost_budget_usd")
    _require(gateway, "ModelCreate", *PRICES)
    return gateway


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _flush(gateway: ThreadedGateway) -> None:
    """Write the pending log rows and usage now instead of at the next tick."""
    gateway.run(gateway.runtime.log_writer.write_pending())
    gateway.run(gateway.runtime.store.ledger.flush(gateway.runtime.store.engine))


def test_key_with_every_policy_is_created_and_listed(policies: ThreadedGateway) -> None:
    key = cli_json(
        policies,
        "keys", "create", "--name", "limited-app", "--budget", "5000",
        "--allowed-model", "gpt-4o", "--allowed-model", " claude-* ", "--allowed-model", "gpt-4o",
        "--expires-at", "2030-06-01T09:30+05:30",
        "--rpm", "60", "--tpm", "100000",
        "--budget-period", "daily", "--cost-budget", "$2.50",
    )  # fmt: skip
    assert key["key"].startswith("sk-")
    assert key["allowed_models"] == ["gpt-4o", "claude-*"]  # trimmed, each once
    assert _instant(key["expires_at"]) == datetime(2030, 6, 1, 4, 0, tzinfo=UTC)
    assert (key["rpm_limit"], key["tpm_limit"], key["token_budget"]) == (60, 100000, 5000)
    assert key["budget_period"] == "daily"
    assert float(key["cost_budget_usd"]) == 2.5
    resets = _instant(key["budget_resets_at"])
    assert (resets.hour, resets.minute) == (0, 0)  # the next UTC midnight

    table = cli(policies, "keys", "list")
    assert table.exit_code == 0, table.stderr
    text = table.stdout
    for shown in (
        "limited-app",
        "gpt-4o,",  # the cell may wrap between the names
        "claude-*",
        "2030-06-01T04:00Z",
        "100000",
        "0/5000",
        "$0.00/$2.50",
        "daily",
        resets.strftime("%Y-%m-%dT%H:%MZ"),  # the next reset
    ):
        assert shown in text, (shown, text)
    assert key["key"] not in text


def test_a_key_without_policies_is_listed_as_unrestricted(policies: ThreadedGateway) -> None:
    cli_json(policies, "keys", "create", "--name", "open-app")
    row = cli_json(policies, "keys", "list")[0]
    assert row["allowed_models"] is None and row["expires_at"] is None
    assert row["rpm_limit"] is None and row["budget_period"] is None
    text = cli(policies, "keys", "list").stdout
    assert "all" in text and "never" in text and "0/unlimited" in text


def test_key_policies_are_changed_and_cleared(policies: ThreadedGateway) -> None:
    cli_json(
        policies,
        "keys", "create", "--name", "changing", "--allowed-model", "gpt-4o",
        "--rpm", "5", "--tpm", "500", "--expires-at", "2030-01-01",
        "--budget-period", "weekly", "--cost-budget", "3",
    )  # fmt: skip
    changed = cli_json(
        policies,
        "keys", "update", "changing", "--allowed-model", "gpt-*", "--allowed-model", "o1",
        "--rpm", "none", "--no-tpm", "--expires-at", "never",
        "--budget-period", "none", "--cost-budget", "none",
    )  # fmt: skip
    assert changed["allowed_models"] == ["gpt-*", "o1"]
    assert changed["rpm_limit"] is None and changed["tpm_limit"] is None
    assert changed["expires_at"] is None and changed["budget_period"] is None
    assert changed["cost_budget_usd"] is None and changed["budget_resets_at"] is None

    again = cli_json(
        policies,
        "keys", "update", "changing", "--all-models", "--rpm", "7", "--tpm", "70",
        "--budget-period", "monthly", "--cost-budget", "12.5",
        "--expires-at", "2031-02-03T04:05:06Z",
    )  # fmt: skip
    assert again["allowed_models"] is None
    assert (again["rpm_limit"], again["tpm_limit"]) == (7, 70)
    assert again["budget_period"] == "monthly" and float(again["cost_budget_usd"]) == 12.5
    assert _instant(again["expires_at"]) == datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert _instant(again["budget_resets_at"]).day == 1  # the first of next month

    # Only what is given changes.
    renamed = cli_json(policies, "keys", "update", "changing", "--no-rpm")
    assert renamed["rpm_limit"] is None and renamed["tpm_limit"] == 70
    assert renamed["budget_period"] == "monthly"


def test_an_expired_key_is_listed_as_expired(policies: ThreadedGateway) -> None:
    key = cli_json(policies, "keys", "create", "--name", "old-app")
    response = cli(policies, "keys", "update", "old-app", "--expires-at", "2001-02-03", "--json")
    if response.exit_code != 0:
        # The API may refuse an expiry in the past; then only the listing is checked.
        assert_one_line_error(response, 1)
        pytest.skip("the API refuses an expiry in the past")
    assert _instant(cli_json(policies, "keys", "list")[0]["expires_at"]).year == 2001
    text = cli(policies, "keys", "list").stdout
    assert "expired" in text and "2001-02-03T00:00Z" in text
    assert key["id"] in text


def test_model_prices_are_set_listed_and_cleared(
    policies: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    provider = admin.provider(upstream.base_url(), name="priced-provider")
    model = cli_json(
        policies,
        "models", "create", "--name", "priced", "--provider", "priced-provider",
        "--input-price", "2.50", "--cached-input-price", "1.25", "--output-price", "$10",
    )  # fmt: skip
    assert model["provider_id"] == provider["id"]
    assert [float(model[name]) for name in PRICES] == [2.5, 1.25, 10.0]
    table = cli(policies, "models", "list")
    assert table.exit_code == 0, table.stderr
    words = table.stdout.split()  # the cell may wrap between its words
    for price in ("$2.50,", "$1.25,", "$10.00"):
        assert price in words, table.stdout

    cleared = cli_json(policies, "models", "update", "priced", "--cached-input-price", "none")
    assert cleared["cached_input_price_per_million"] is None
    assert float(cleared["input_price_per_million"]) == 2.5
    cheaper = cli_json(policies, "models", "update", "priced", "--output-price", "0.000001")
    assert float(cheaper["output_price_per_million"]) == 0.000001
    unpriced = cli_json(
        policies, "models", "update", "priced", "--input-price", "none", "--output-price", "none"
    )
    assert all(unpriced[name] is None for name in PRICES)
    listed = cli(policies, "models", "list").stdout
    assert "$2.50," not in listed and "$10.00" not in listed


def test_period_spend_is_listed(
    policies: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    provider = admin.provider(upstream.base_url())
    cli_json(
        policies,
        "models", "create", "--name", "gpt-4o", "--provider", provider["id"],
        "--input-price", "1000", "--output-price", "2000",
    )  # fmt: skip
    key = cli_json(
        policies,
        "keys", "create", "--name", "spender", "--budget-period", "weekly",
        "--cost-budget", "1", "--allowed-model", "gpt-*",
    )  # fmt: skip
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key['key']}"}
    for _ in range(2):
        answer = httpx.post(
            policies.url + "/v1/chat/completions", json=body, headers=headers, timeout=10
        )
        assert answer.status_code == 200, answer.text
    _flush(policies)
    # 10 prompt and 5 completion tokens at $1,000 and $2,000 per million: $0.02 a request.
    listed = cli_json(policies, "keys", "list")[0]
    assert float(listed["cost_used_usd"]) == pytest.approx(0.04)
    text = cli(policies, "keys", "list").stdout
    assert "$0.04/$1.00" in text and "weekly" in text


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (["--allowed-model", "a", "--all-models"], ["--allowed-model", "--all-models"]),
        (["--rpm", "5", "--no-rpm"], ["--rpm", "--no-rpm"]),
        (["--tpm", "none", "--no-tpm"], ["--tpm", "--no-tpm"]),
        ([], ["--allowed-model", "--expires-at", "--rpm", "--budget-period", "--cost-budget"]),
    ],
)
def test_conflicting_key_options_change_nothing(
    policies: ThreadedGateway, args: list[str], options: list[str]
) -> None:
    before = cli_json(policies, "keys", "create", "--name", "fixed", "--rpm", "9")
    result = cli(policies, "keys", "update", "fixed", *args)
    assert_one_line_error(result, 2)
    for option in options:
        assert option in result.stderr
    after = cli_json(policies, "keys", "list")[0]
    assert after["rpm_limit"] == 9 and after["allowed_models"] is None
    assert after["updated_at"] == before["updated_at"]


def test_a_model_update_without_changes_names_the_price_options(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    admin.model(admin.provider(upstream.base_url())["id"], "unchanged")
    result = cli(gateway, "models", "update", "unchanged")
    assert_one_line_error(result, 2)
    for option in ("--input-price", "--cached-input-price", "--output-price"):
        assert option in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--name", "x", "--expires-at", "tomorrow"],
        ["keys", "create", "--name", "x", "--expires-at", "2030-13-01"],
        ["keys", "create", "--name", "x", "--budget-period", "yearly"],
        ["keys", "create", "--name", "x", "--cost-budget", "-1"],
        ["keys", "create", "--name", "x", "--cost-budget", "ten"],
        ["keys", "create", "--name", "x", "--cost-budget", "nan"],
        ["keys", "create", "--name", "x", "--rpm", "0"],
        ["keys", "create", "--name", "x", "--tpm", "many"],
        ["keys", "create", "--name", "x", "--allowed-model", " "],
        ["keys", "create", "--name", "x", "--all-models"],
        ["keys", "update", "x", "--no-rpm", "--rpm", "-3"],
        ["models", "create", "--name", "x", "--provider", "p", "--input-price", "-0.5"],
        ["models", "update", "x", "--output-price", "free"],
        ["models", "update", "x", "--cached-input-price", "inf"],
    ],
)
def test_bad_policy_and_price_values_are_one_line_usage_errors(args: list[str]) -> None:
    environment = {"LLM_GATEWAY_URL": f"http://127.0.0.1:{free_port()}", "ADMIN_KEY": ADMIN_KEY}
    result = CliRunner().invoke(main, args, env=environment, catch_exceptions=False)
    assert_one_line_error(result, 2)


def test_help_describes_the_policy_options() -> None:
    runner = CliRunner()
    keys_help = " ".join(runner.invoke(main, ["keys", "update", "--help"]).stdout.split())
    for text in ("--allowed-model", "--all-models", "--expires-at", "ISO8601|never", "--no-rpm",
                 "--no-tpm", "daily|weekly|monthly|none", "USD|none"):  # fmt: skip
        assert text in keys_help, text
    models_help = " ".join(runner.invoke(main, ["models", "create", "--help"]).stdout.split())
    for text in ("--input-price", "--cached-input-price", "--output-price", "per million"):
        assert text in models_help, text
