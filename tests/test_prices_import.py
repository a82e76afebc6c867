"""Prices from a file in LiteLLM's `model_prices_and_context_window.json` layout: the parser,
the matching by provider model name, the admin endpoint and `llm-gateway models import-prices`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llm_gateway.cli import main
from llm_gateway.services.prices import Prices, candidates, match, read_price_file
from tests.conftest import Admin, assert_openai_error
from tests.servers import ADMIN_KEY, ThreadedGateway, Upstream

PRICE_FILE = Path(__file__).parent / "data" / "prices" / "model_prices_and_context_window.json"


def _document() -> dict[str, Any]:
    return dict(json.loads(PRICE_FILE.read_text()))


# ---- the file -------------------------------------------------------------------------------
def test_the_price_file_is_read_per_million_tokens() -> None:
    prices = read_price_file(_document())
    assert prices["gpt-4o"] == Prices(input=2.5, cached_input=1.25, output=10.0)
    assert prices["deepseek/deepseek-chat"] == Prices(0.27, 0.07, 1.1)
    assert prices["gpt-4o-mini"] == Prices(0.15, 0.075, 0.6)
    # Embeddings have no output price in effect: 0, and no cached price.
    assert prices["text-embedding-3-small"] == Prices(0.02, None, 0.0)
    # The layout's sample entry, and entries priced per pixel, are left out.
    assert "sample_spec" not in prices and "dall-e-3" not in prices


@pytest.mark.parametrize("document", [[], "prices", {"x": 1}, {"m": {"input_cost_per_token": -1}}])
def test_anything_else_yields_no_prices(document: Any) -> None:
    if isinstance(document, dict):
        assert read_price_file(document) == {}
    else:
        with pytest.raises(ValueError, match="JSON object"):
            read_price_file(document)


def test_names_are_tried_bare_and_with_the_providers_prefix() -> None:
    assert candidates("deepseek-chat", "deepseek") == ["deepseek-chat", "deepseek/deepseek-chat"]
    assert candidates("openai/gpt-4o", "openrouter") == [
        "openai/gpt-4o",
        "openrouter/openai/gpt-4o",
        "gpt-4o",
    ]
    assert candidates("llama3", "openai_compatible") == ["llama3"]
    prices = read_price_file(_document())
    assert match([("unknown", "openai"), ("openai/gpt-4o-mini", "openai_compatible")], prices) == (
        "gpt-4o-mini",
        prices["gpt-4o-mini"],
    )
    assert match([("llama3", "openai_compatible")], prices) is None


# ---- the endpoint and the command -----------------------------------------------------------
@pytest.fixture
def models(admin: Admin, upstream: Upstream) -> dict[str, dict[str, Any]]:
    """Models served by providers of several kinds, under the names those providers use."""

    def provider(kind: str) -> str:
        return str(admin.provider(upstream.base_url(), kind=kind)["id"])

    openai_id, compatible_id = provider("openai"), provider("openai_compatible")
    made = [
        admin.model(openai_id, "gpt-4o"),
        admin.model(provider("deepseek"), "chat", provider_model_name="deepseek-chat"),
        admin.model(provider("openrouter"), "router-4o", provider_model_name="openai/gpt-4o"),
        admin.model(
            provider("anthropic"), "claude", provider_model_name="claude-3-5-sonnet-20241022"
        ),
        admin.model(compatible_id, "local", provider_model_name="llama3"),
        admin.ok(
            "POST",
            "/admin/models",
            201,
            json={
                "name": "mixed",
                "deployments": [
                    {"provider_id": compatible_id, "provider_model_name": "house-model"},
                    {"provider_id": openai_id, "provider_model_name": "gpt-4o-mini", "priority": 1},
                ],
            },
        ),
    ]
    return {model["name"]: model for model in made}


def _prices(admin: Admin) -> dict[str, tuple[Any, Any, Any]]:
    return {
        model["name"]: (
            model["input_price_per_million"],
            model["cached_input_price_per_million"],
            model["output_price_per_million"],
        )
        for model in admin.ok("GET", "/admin/models")
    }


EXPECTED = {
    "gpt-4o": ("gpt-4o", (2.5, 1.25, 10.0)),
    "chat": ("deepseek/deepseek-chat", (0.27, 0.07, 1.1)),
    "router-4o": ("openrouter/openai/gpt-4o", (2.5, None, 10.0)),
    "claude": ("claude-3-5-sonnet-20241022", (3.0, 0.3, 15.0)),
    "mixed": ("gpt-4o-mini", (0.15, 0.075, 0.6)),
}


def test_import_sets_the_prices_of_matching_models(
    admin: Admin, models: dict[str, dict[str, Any]]
) -> None:
    dry = admin.ok("POST", "/admin/models/import-prices?dry_run=true", json=_document())
    assert dry["dry_run"] is True
    assert set(_prices(admin).values()) == {(None, None, None)}  # nothing changed

    result = admin.ok("POST", "/admin/models/import-prices", json=_document())
    found = {row["model"]: row["matched"] for row in result["updated"]}
    assert found == {name: entry for name, (entry, _) in EXPECTED.items()}
    assert result["unmatched"] == ["local"]
    prices = _prices(admin)
    for name, (_, expected) in EXPECTED.items():
        assert prices[name] == expected
    assert prices["local"] == (None, None, None)


def test_a_price_file_must_be_an_object(admin: Admin) -> None:
    response = admin.request("POST", "/admin/models/import-prices", json=["gpt-4o"])
    assert_openai_error(response, 400)


def test_the_command_imports_a_file(
    gateway: ThreadedGateway, admin: Admin, models: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    env = {"LLM_GATEWAY_URL": gateway.url, "ADMIN_KEY": ADMIN_KEY}
    runner = CliRunner()
    shown = runner.invoke(main, ["models", "import-prices", str(PRICE_FILE), "--dry-run"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "deepseek/deepseek-chat" in shown.output
    assert "5 models would be priced; no entry for: local" in shown.output
    assert _prices(admin)["chat"] == (None, None, None)

    done = runner.invoke(main, ["models", "import-prices", str(PRICE_FILE), "--json"], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["unmatched"] == ["local"]
    assert _prices(admin)["chat"] == (0.27, 0.07, 1.1)

    broken = tmp_path / "prices.json"
    broken.write_text("{not json")
    failed = runner.invoke(main, ["models", "import-prices", str(broken)], env=env)
    assert failed.exit_code == 1
    assert "cannot read" in failed.output
