"""The admin CLI against a running gateway: names for ids, options anywhere, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import llm_gateway
from llm_gateway.cli import main
from tests.conftest import Admin
from tests.servers import ADMIN_KEY, ThreadedGateway, Upstream, free_port

WRONG_KEY = "wrong-admin-key-000000"
SOURCE = str(Path(llm_gateway.__file__).resolve().parents[1])  # the code under test


# ---- running the CLI: in this process (fast) or as `python -m llm_gateway` -----------------
def cli(
    gateway: ThreadedGateway,
    *args: str,
    admin_key: str = ADMIN_KEY,
    env: dict[str, str | None] | None = None,
) -> Result:
    """`llm-gateway ARGS` through click's runner, against `gateway`."""
    environment = {"LLM_GATEWAY_URL": gateway.url, "ADMIN_KEY": admin_key, **(env or {})}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def cli_json(gateway: ThreadedGateway, *args: str) -> Any:
    result = cli(gateway, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def cli_process(
    *args: str,
    url: str | None = None,
    admin_key: str | None = ADMIN_KEY,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m llm_gateway ARGS` in a process of its own: what a shell sees."""
    env = {k: v for k, v in os.environ.items() if k not in ("ADMIN_KEY", "LLM_GATEWAY_URL")}
    env["PYTHONPATH"] = os.pathsep.join([SOURCE, *filter(None, [env.get("PYTHONPATH")])])
    if url is not None:
        env["LLM_GATEWAY_URL"] = url
    if admin_key is not None:
        env["ADMIN_KEY"] = admin_key
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "llm_gateway", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: Result | subprocess.CompletedProcess[str], code: int) -> None:
    exit_code = result.exit_code if isinstance(result, Result) else result.returncode
    assert exit_code == code, (exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llm-gateway: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_quick_start_through_the_cli_by_name(gateway: ThreadedGateway, upstream: Upstream) -> None:
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
        "openai-main",
        "--provider-model-name",
        "qwen-max-latest",
        "--output-coefficient",
        "3",
    )
    assert model["provider_id"] == provider["id"]
    assert model["provider_model_name"] == "qwen-max-latest"
    assert model["output_token_coefficient"] == 3
    key = cli_json(gateway, "keys", "create", "--name", "my-app", "--budget", "1000")
    assert key["key"].startswith("sk-") and key["token_budget"] == 1000
    rotated = cli_json(gateway, "keys", "rotate", "my-app")
    assert rotated["id"] == key["id"] and rotated["key"] != key["key"]
    updated = cli_json(gateway, "keys", "update", "my-app", "--unlimited", "--reset-usage")
    assert updated["token_budget"] is None
    reset = cli_json(
        gateway, "models", "update", "qwen-max", "--reset-provider-model-name", "--inactive"
    )
    assert reset["provider_model_name"] == "qwen-max" and reset["is_active"] is False
    renamed = cli_json(gateway, "providers", "update", "openai-main", "--name", "openai-2")
    assert renamed["id"] == provider["id"]

    table = cli(gateway, "keys", "list")
    assert table.exit_code == 0
    assert "my-app" in table.stdout and rotated["key_prefix"] in table.stdout
    assert rotated["key"] not in table.stdout
    created_table = cli(gateway, "keys", "create", "--name", "shown-once")
    assert "sk-" in created_table.stdout and "not shown again" in created_table.stdout

    assert cli(gateway, "models", "delete", "qwen-max").exit_code == 0
    assert cli(gateway, "providers", "delete", "openai-2").exit_code == 0
    assert cli_json(gateway, "providers", "list") == []
    assert cli(gateway, "keys", "delete", "my-app").exit_code == 0
    revoked = [k for k in cli_json(gateway, "keys", "list") if k["id"] == key["id"]]
    assert revoked[0]["is_active"] is False


def test_ids_still_work(gateway: ThreadedGateway, admin: Admin, upstream: Upstream) -> None:
    provider = admin.provider(upstream.base_url())
    model = admin.model(provider["id"], "by-id")
    key = admin.key()
    assert cli_json(gateway, "models", "update", model["id"], "--inactive")["is_active"] is False
    assert cli_json(gateway, "keys", "update", key["id"], "--budget", "7")["token_budget"] == 7
    upper = cli_json(gateway, "keys", "update", key["id"].upper(), "--budget", "8")
    assert upper["token_budget"] == 8
    moved = cli_json(gateway, "models", "update", "by-id", "--provider", provider["id"])
    assert moved["provider_id"] == provider["id"]


def test_an_ambiguous_key_name_lists_the_candidates(gateway: ThreadedGateway, admin: Admin) -> None:
    first = admin.key(name="shared")
    second = admin.key(name="shared")
    result = cli(gateway, "keys", "update", "shared", "--budget", "5")
    assert_one_line_error(result, 1)
    for key in (first, second):
        assert key["id"] in result.stderr and key["key_prefix"] in result.stderr
    assert admin.ok("GET", "/admin/keys")[0]["token_budget"] is None  # nothing changed

    admin.ok("DELETE", f"/admin/keys/{first['id']}", 204)
    picked = cli_json(gateway, "keys", "update", "shared", "--budget", "5")
    assert picked["id"] == second["id"] and picked["token_budget"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "update", "nobody", "--budget", "1"], "key 'nobody' not found"),
        (["models", "update", "no-such-model", "--inactive"], "model 'no-such-model' not found"),
        (["providers", "delete", "no-such-provider"], "provider 'no-such-provider' not found"),
        (
            ["models", "create", "--name", "m", "--provider-id", "no-such-provider"],
            "provider 'no-such-provider' not found",
        ),
        (["keys", "rotate", "00000000-0000-4000-8000-000000000000"], "404"),
    ],
)
def test_an_unknown_name_or_id_is_a_clear_error(
    gateway: ThreadedGateway, args: list[str], message: str
) -> None:
    result = cli(gateway, *args)
    assert_one_line_error(result, 1)
    assert message in result.stderr


@pytest.mark.parametrize("position", [0, 1, 2])
def test_json_is_accepted_at_every_level(
    gateway: ThreadedGateway, admin: Admin, position: int
) -> None:
    key = admin.key(name="json-anywhere")
    args = ["keys", "list"]
    args.insert(position, "--json")
    result = cli(gateway, *args)
    assert result.exit_code == 0, result.stderr
    assert [k["id"] for k in json.loads(result.stdout)] == [key["id"]]


@pytest.mark.parametrize(
    ("args", "reaches"),
    [
        (["--url", "{good}", "keys", "list"], True),  # the flag beats LLM_GATEWAY_URL
        (["keys", "--url", "{good}", "list"], True),
        (["keys", "list", "--url", "{good}"], True),
        (["--url", "{dead}", "keys", "--url", "{good}", "list"], True),  # most specific wins
        (["--url", "{good}", "keys", "list", "--url", "{dead}"], False),
        (["keys", "--url", "{dead}", "list", "--url", "{good}"], True),
        (["keys", "--url", "{good}", "list", "--url", "{dead}"], False),
    ],
)
def test_url_is_accepted_at_every_level_and_the_most_specific_wins(
    gateway: ThreadedGateway, args: list[str], reaches: bool
) -> None:
    dead = dead_url()
    filled = [arg.format(good=gateway.url, dead=dead) for arg in args]
    result = cli(gateway, *filled, env={"LLM_GATEWAY_URL": dead_url()})
    if reaches:
        assert result.exit_code == 0, result.stderr
    else:
        assert_one_line_error(result, 1)
        assert f"cannot reach {dead}" in result.stderr


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        (["--admin-key", ADMIN_KEY, "providers", "list"], True),
        (["providers", "--admin-key", ADMIN_KEY, "list"], True),
        (["providers", "list", "--admin-key", ADMIN_KEY], True),
        (["--admin-key", WRONG_KEY, "providers", "list", "--admin-key", ADMIN_KEY], True),
        (["--admin-key", ADMIN_KEY, "providers", "--admin-key", WRONG_KEY, "list"], False),
    ],
)
def test_admin_key_is_accepted_at_every_level(
    gateway: ThreadedGateway, args: list[str], accepted: bool
) -> None:
    result = cli(gateway, *args, admin_key=WRONG_KEY)
    if accepted:
        assert result.exit_code == 0, result.stderr
    else:
        assert_one_line_error(result, 1)
        assert "401" in result.stderr and "ADMIN_KEY" in result.stderr


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (["keys", "update", "{key}", "--budget", "5", "--unlimited"], ["--budget", "--unlimited"]),
        (["keys", "update", "{key}"], ["--budget", "--unlimited", "--reset-usage"]),
        (["providers", "update", "{provider}"], ["--name", "--api-key"]),
        (["models", "update", "{model}"], ["--provider", "--deployment", "--fallback"]),
        (
            [
                "models",
                "update",
                "{model}",
                "--provider-model-name",
                "x",
                "--reset-provider-model-name",
            ],
            ["--provider-model-name", "--reset-provider-model-name"],
        ),
        (
            ["models", "update", "{model}", "--fallback", "{model}", "--no-fallbacks"],
            ["--fallback", "--no-fallbacks"],
        ),
        (
            ["models", "update", "{model}", "--provider", "{provider}", "--deployment", "x"],
            ["--provider", "--deployment"],
        ),
        (
            ["models", "create", "--name", "n", "--provider", "{provider}", "--deployment", "x"],
            ["--provider", "--deployment"],
        ),
        (["models", "create", "--name", "n"], ["--provider", "--deployment"]),
        (["models", "set-deployment", "{model}", "{provider}"], ["--weight", "--priority"]),
    ],
)
def test_conflicting_or_empty_changes_are_usage_errors(
    gateway: ThreadedGateway,
    admin: Admin,
    upstream: Upstream,
    args: list[str],
    options: list[str],
) -> None:
    provider = admin.provider(upstream.base_url(), name="conflicts")
    model = admin.model(provider["id"], "conflicted")
    key = admin.key(name="conflicted", token_budget=10)
    filled = [
        arg.format(key="conflicted", model="conflicted", provider="conflicts") for arg in args
    ]
    result = cli(gateway, *filled)
    assert_one_line_error(result, 2)
    for option in options:
        assert option in result.stderr
    assert [k["token_budget"] for k in admin.ok("GET", "/admin/keys")] == [key["token_budget"]]
    assert admin.ok("GET", "/admin/models") == [model]


def _commands(group: click.Group) -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", cmd) for sub, cmd in _commands(command)]
    return found


def test_help_describes_every_command_and_where_the_options_come_from() -> None:
    for name, command in _commands(main):
        assert command.get_short_help_str().strip(), f"{name} has no help"
    for args in (["--help"], ["keys", "--help"], ["keys", "list", "--help"]):
        result = cli_process(*args)
        assert result.returncode == 0
        text = " ".join(result.stdout.split()).replace("- ", "-")
        assert "LLM_GATEWAY_URL" in text and "ADMIN_KEY" in text
        assert "llm-gateway.db.admin-key in the working folder" in text
    version = cli_process("--version")
    assert version.returncode == 0 and llm_gateway.__version__ in version.stdout
    listing = cli_process("keys", "--help").stdout.split("Commands:")[1].strip().splitlines()
    assert {line.split()[0] for line in listing} == {"list", "create", "update", "rotate", "delete"}
    assert all(len(line.split()) > 2 for line in listing)  # name and a description


def test_errors_are_one_line_and_exit_1(gateway: ThreadedGateway) -> None:
    missing = cli_process("keys", "delete", "not-a-key", url=gateway.url)
    assert_one_line_error(missing, 1)
    assert "not found" in missing.stderr
    denied = cli_process("keys", "list", url=gateway.url, admin_key=WRONG_KEY)
    assert_one_line_error(denied, 1)
    assert "401" in denied.stderr
    bad = cli_process(
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
        url=gateway.url,
    )
    assert_one_line_error(bad, 1)
    assert "base_url" in bad.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "--url", "notaurl", "list"],
        ["--url", "ftp://gateway", "keys", "list"],
        ["keys", "list", "--url", "http://"],
        ["keys", "list", "--url", "http://127.0.0.1:99999"],
        ["keys", "list", "--url", "http://[::1"],
        ["keys", "list", "--url", "http://exa mple"],
        ["keys", "list", "--url", "http://user:pw@127.0.0.1"],
        ["keys", "list", "--admin-key", "ключ-администратора"],
        ["keys", "lst"],
        ["keys", "update"],
        ["keys", "create", "--name", "x", "--budget", "-1"],
        ["models", "create", "--name", "x", "--deployment", "p,weight=0"],
        ["models", "create", "--name", "x", "--deployment", "weight=2"],
        ["models", "create", "--name", "x", "--deployment", "p,colour=red"],
    ],
)
def test_bad_input_is_a_one_line_usage_error(args: list[str]) -> None:
    assert_one_line_error(cli_process(*args, url=dead_url()), 2)


def test_a_bad_url_in_the_environment_is_named() -> None:
    result = cli_process("keys", "list", url="notaurl")
    assert_one_line_error(result, 2)
    assert "LLM_GATEWAY_URL" in result.stderr


def test_something_that_is_not_the_gateway_is_one_line(upstream: Upstream) -> None:
    for url in (upstream.url, upstream.url + "/behave/status=500"):
        assert_one_line_error(cli_process("keys", "list", url=url), 1)


def test_an_unreachable_gateway_says_how_to_start_one() -> None:
    url = dead_url()
    result = cli_process("keys", "list", url=url)
    assert_one_line_error(result, 1)
    assert f"cannot reach {url}" in result.stderr
    assert "llm-gateway serve" in result.stderr and "--url" in result.stderr


def test_no_admin_key_exits_1_and_names_the_key_file(tmp_path: Path) -> None:
    result = cli_process("keys", "list", url=dead_url(), admin_key=None, cwd=tmp_path)
    assert_one_line_error(result, 1)
    assert "no admin key" in result.stderr
    assert "ADMIN_KEY" in result.stderr and "llm-gateway.db.admin-key" in result.stderr


def test_the_key_file_in_the_working_folder_is_the_fallback(
    gateway: ThreadedGateway, tmp_path: Path
) -> None:
    (tmp_path / "llm-gateway.db.admin-key").write_text(ADMIN_KEY + "\n")
    result = cli_process("--json", "keys", "list", url=gateway.url, admin_key=None, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
