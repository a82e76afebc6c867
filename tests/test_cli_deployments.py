"""Models with several deployments and fallbacks, through the CLI against a running gateway."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Admin
from tests.servers import ThreadedGateway, Upstream
from tests.test_cli_admin import assert_one_line_error, cli, cli_json


def _ids(deployments: list[dict[str, Any]]) -> list[str]:
    return [d["id"] for d in deployments]


def _by_label(deployments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployments by `provider[:provider-model-name]` (the name only when not the model's)."""
    return {
        d["provider_name"]
        + ("" if d["provider_model_name"] == "gpt-4o" else f":{d['provider_model_name']}"): d
        for d in deployments
    }


def _setup(admin: Admin, upstream: Upstream) -> tuple[dict[str, Any], dict[str, Any]]:
    main = admin.provider(upstream.base_url(), name="openai-main")
    backup = admin.provider(upstream.base_url(), name="backup")
    return main, backup


def test_create_with_deployments_and_fallbacks(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    main, backup = _setup(admin, upstream)
    model = cli_json(
        gateway,
        "models",
        "create",
        "--name",
        "gpt-4o",
        "--deployment",
        "provider=openai-main,model=gpt-4o-2024,weight=3",
        "--deployment",
        f"{backup['id']},priority=1",
    )
    assert [
        (d["provider_id"], d["provider_model_name"], d["weight"], d["priority"])
        for d in model["deployments"]
    ] == [(main["id"], "gpt-4o-2024", 3, 0), (backup["id"], "gpt-4o", 1, 1)]
    small = cli_json(
        gateway, "models", "create", "--name", "gpt-4o-mini", "--provider", "backup",
        "--fallback", "gpt-4o",
    )  # fmt: skip
    assert small["fallbacks"] == ["gpt-4o"]

    table = cli(gateway, "models", "list")
    assert table.exit_code == 0, table.stderr
    assert "openai-main:gpt-4o-2024\u00d73, backup(p1)" in table.stdout
    assert "healthy" in table.stdout and "cooling" not in table.stdout
    shown = cli(gateway, "models", "deployments", "gpt-4o")
    assert shown.exit_code == 0, shown.stderr
    for deployment in model["deployments"]:
        assert deployment["id"] in shown.stdout
    assert cli_json(gateway, "models", "deployments", model["id"]) == model["deployments"]

    cleared = cli_json(gateway, "models", "update", "gpt-4o-mini", "--no-fallbacks")
    assert cleared["fallbacks"] == []
    by_id = cli_json(gateway, "models", "update", "gpt-4o-mini", "--fallback", model["id"])
    assert by_id["fallbacks"] == ["gpt-4o"]
    replaced = cli_json(gateway, "models", "update", "gpt-4o", "--deployment", "backup,weight=2")
    assert [(d["provider_name"], d["weight"]) for d in replaced["deployments"]] == [("backup", 2)]

    unknown = cli(gateway, "models", "update", "gpt-4o", "--fallback", "no-such-model")
    assert_one_line_error(unknown, 1)
    assert "no-such-model" in unknown.stderr
    missing = cli(gateway, "models", "create", "--name", "x", "--deployment", "nowhere")
    assert_one_line_error(missing, 1)
    assert "provider 'nowhere' not found" in missing.stderr


def test_add_set_and_remove_one_deployment_keep_the_others(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    main, backup = _setup(admin, upstream)
    created = cli_json(gateway, "models", "create", "--name", "gpt-4o", "--provider", "openai-main")
    first = created["deployments"][0]["id"]

    added = cli_json(
        gateway, "models", "add-deployment", "gpt-4o", "--provider", "backup",
        "--provider-model-name", "gpt-4o-alt", "--weight", "2", "--priority", "1",
    )  # fmt: skip
    assert [(d["provider_name"], d["provider_model_name"], d["weight"], d["priority"])
            for d in added] == [
        ("openai-main", "gpt-4o", 1, 0),
        ("backup", "gpt-4o-alt", 2, 1),
    ]  # fmt: skip
    assert added[0]["id"] == first
    alt = added[1]["id"]
    again = _by_label(
        cli_json(gateway, "models", "add-deployment", "gpt-4o", "--provider", backup["id"])
    )
    assert again["openai-main"]["id"] == first and again["backup:gpt-4o-alt"]["id"] == alt
    plain = again["backup"]["id"]

    heavier = _by_label(
        cli_json(gateway, "models", "set-deployment", "gpt-4o", "openai-main", "--weight", "5")
    )
    assert {label: d["id"] for label, d in heavier.items()} == {
        label: d["id"] for label, d in again.items()
    }
    assert {label: d["weight"] for label, d in heavier.items()} == {
        "openai-main": 5,
        "backup:gpt-4o-alt": 2,
        "backup": 1,
    }
    now_first = cli_json(gateway, "models", "set-deployment", "gpt-4o", alt, "--priority", "0")
    assert {d["id"] for d in now_first} == {first, alt, plain}
    assert [d["priority"] for d in now_first] == [0, 0, 0]

    ambiguous = cli(gateway, "models", "remove-deployment", "gpt-4o", "backup")
    assert_one_line_error(ambiguous, 1)
    assert alt in ambiguous.stderr and plain in ambiguous.stderr
    fewer = cli_json(gateway, "models", "remove-deployment", "gpt-4o", "backup:gpt-4o-alt")
    assert sorted(_ids(fewer)) == sorted([first, plain])
    one = cli_json(gateway, "models", "remove-deployment", "gpt-4o", plain)
    assert _ids(one) == [first]
    last = cli(gateway, "models", "remove-deployment", "gpt-4o", "openai-main")
    assert_one_line_error(last, 1)
    assert "only deployment" in last.stderr
    absent = cli(gateway, "models", "set-deployment", "gpt-4o", "backup", "--weight", "2")
    assert_one_line_error(absent, 1)
    assert "no deployment 'backup'" in absent.stderr and first in absent.stderr
    assert main["id"] == one[0]["provider_id"]


def test_a_cooling_deployment_shows_in_the_tables(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    admin.provider(f"{upstream.url}/behave/status=401/v1", name="broken")
    admin.provider(upstream.base_url(), name="good")
    cli_json(
        gateway, "models", "create", "--name", "cools",
        "--deployment", "broken", "--deployment", "good,priority=1",
    )  # fmt: skip
    key = admin.key()
    answer = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key['key']}"},
        json={"model": "cools", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    deployments = cli_json(gateway, "models", "deployments", "cools")
    broken = deployments[0]
    assert broken["provider_name"] == "broken" and broken["status"] == "cooling"
    assert broken["cooling_until"] and broken["last_error"]
    assert deployments[1]["status"] == "healthy"
    table = cli(gateway, "models", "deployments", "cools").stdout
    assert "cooling" in table and "healthy" in table
    listing = cli(gateway, "models", "list").stdout
    assert "cooling: broken" in listing
