"""The admin CLI against a running gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.servers import ADMIN_KEY, ThreadedGateway, Upstream


def cli(
    gateway: ThreadedGateway, *args: str, admin_key: str = ADMIN_KEY
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLM_GATEWAY_URL": gateway.url, "ADMIN_KEY": admin_key}
    return subprocess.run(
        [sys.executable, "-m", "llm_gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(gateway: ThreadedGateway, group: str, *args: str) -> Any:
    result = cli(gateway, group, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_quick_start_through_the_cli(gateway: ThreadedGateway, upstream: Upstream) -> None:
    provider = cli_json(
        gateway,
        "providers",
        "create",
        "--name",
        "openai-main",
        "--kind",
        "openai",
        "--api-key",
        "sk-provider-cli-secret",
        "--base-url",
        upstream.base_url(),
    )
    assert provider["api_key_preview"] == "sk-p...cret"
    model = cli_json(
        gateway,
        "models",
        "create",
        "--name",
        "qwen-max",
        "--provider-id",
        provider["id"],
        "--provider-model-name",
        "qwen-max-latest",
        "--output-coefficient",
        "3",
    )
    assert model["provider_model_name"] == "qwen-max-latest"
    assert model["output_token_coefficient"] == 3
    key = cli_json(gateway, "keys", "create", "--name", "my-app", "--budget", "1000")
    assert key["key"].startswith("sk-") and key["token_budget"] == 1000
    rotated = cli_json(gateway, "keys", "rotate", key["id"])
    assert rotated["key"] != key["key"]
    updated = cli_json(gateway, "keys", "update", key["id"], "--unlimited", "--reset-usage")
    assert updated["token_budget"] is None
    reset = cli_json(
        gateway, "models", "update", model["id"], "--reset-provider-model-name", "--inactive"
    )
    assert reset["provider_model_name"] == "qwen-max" and reset["is_active"] is False

    table = cli(gateway, "keys", "list")
    assert table.returncode == 0
    assert "my-app" in table.stdout and rotated["key_prefix"] in table.stdout
    assert rotated["key"] not in table.stdout
    created_table = cli(gateway, "keys", "create", "--name", "shown-once")
    assert "sk-" in created_table.stdout and "not shown again" in created_table.stdout

    assert cli(gateway, "models", "delete", model["id"]).returncode == 0
    assert cli(gateway, "providers", "delete", provider["id"]).returncode == 0
    assert cli_json(gateway, "providers", "list") == []


def test_cli_errors_are_clear_and_non_zero(gateway: ThreadedGateway) -> None:
    missing = cli(gateway, "keys", "delete", "not-an-id")
    assert missing.returncode == 1
    assert "404" in missing.stderr and "not found" in missing.stderr
    denied = cli(gateway, "keys", "list", admin_key="wrong-admin-key-000000")
    assert denied.returncode == 1 and "401" in denied.stderr
    bad = cli(
        gateway,
        "providers",
        "create",
        "--name",
        "x",
        "--kind",
        "openai",
        "--api-key",
        "k",
        "--base-url",
        "ftp://nope",
    )
    assert bad.returncode == 1 and "base_url" in bad.stderr
    assert "Traceback" not in missing.stderr + denied.stderr + bad.stderr


def test_cli_reports_an_unreachable_gateway() -> None:
    from tests.servers import free_port

    env = {
        **os.environ,
        "LLM_GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
        "ADMIN_KEY": ADMIN_KEY,
    }
    result = subprocess.run(
        [sys.executable, "-m", "llm_gateway", "keys", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "cannot reach" in result.stderr
