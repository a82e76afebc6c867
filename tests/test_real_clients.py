"""The real Codex CLI and Claude Code run a task end to end, non-interactively, over loopback.

Each test points a CLI at a `Target`: the mock upstream itself (`upstream`), or a gateway in
front of it whose deployments serve the CLI's API natively (`gateway-native`: an `openai`
provider for Codex's Responses calls, an `anthropic` one for Claude Code's Messages calls) or
through the bridge to chat completions (`gateway-bridged`: `openai_compatible` for Codex,
`openai` for Claude Code). A task is one round of an agent's loop: the model (the mock, told by
a `call:<tool> <JSON>` line of the prompt) reasons (`mode:reasoning`) and calls one of the
CLI's own tools, the CLI runs it in its working folder and sends the result back with the
reasoning, and the model's answer is what the CLI prints.

The CLIs are installed by `scripts/test` (`npm ci` in tests/clients); a missing CLI skips these
tests on a developer's machine and fails them in CI.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Admin, GatewayFactory
from tests.real_clients import CLAUDE, CLIENTS_DIR, CODEX, missing_message, run_claude, run_codex
from tests.real_clients import version as cli_version
from tests.servers import Upstream

# The gateway variants wait for its /v1/responses and /v1/messages endpoints; None runs them.
GATEWAY_PENDING: str | None = None
TARGETS = ["upstream", "gateway-native", "gateway-bridged"]

# Model names: one each CLI does not know (generic defaults) and some from its own catalogue
# (Codex adds the `apply_patch` custom tool and `tool_search` for gpt-5.5, and for gpt-6.x sends
# no `tools` but an `additional_tools` input item of namespaces with a JavaScript `exec` custom
# tool; Claude Code asks for extended thinking with a budget instead of adaptive thinking).
CODEX_MODELS = ["codex-test-model", "gpt-5.5", "gpt-6.2-sol"]
CLAUDE_MODELS = ["claude-test-model", "claude-sonnet-4-5"]
NOTE = "the secret word is plum-42\n"
SECRET = "plum-42"
# The mock answers "Hello from the mock!" on Responses and streamed chat, "Hello!" on Messages.
ANSWERS = {"Hello from the mock!", "Hello!"}


@dataclass
class Target:
    """Where the CLIs are pointed, and where the requests that reach the mock can be read."""

    name: str
    url: str  # Claude Code's ANTHROPIC_BASE_URL; Codex gets `<url>/v1`
    key: str
    upstream: Upstream
    upstream_base: str  # the mock base URL (`<mock>/t/<tag>/v1`) this test's requests reach

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def upstream_requests(self) -> list[dict[str, Any]]:
        return self.upstream.requests(self.upstream_base)

    def upstream_endpoint(self, api: str) -> str:
        """The mock endpoint a call on `api` ("responses" or "messages") reaches."""
        return "chat/completions" if self.name == "gateway-bridged" else api


@pytest.fixture(scope="module")
def codex_cli() -> str:
    return _require(CODEX)


@pytest.fixture(scope="module")
def claude_cli() -> str:
    return _require(CLAUDE)


def _require(executable: Path) -> str:
    found = cli_version(executable)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(missing_message(executable))
        pytest.skip(missing_message(executable))
    return found


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """These tests run their gateway on the embedded default (SQLite) only."""
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, upstream: Upstream) -> Iterator[Target]:
    tag = uuid.uuid4().hex
    upstream_base = upstream.base_url(tag)  # <mock>/t/<tag>/v1
    upstream_root = upstream_base.removesuffix("/v1")
    if request.param == "upstream":
        yield Target("upstream", upstream_root, "sk-cli-test-key", upstream, upstream_base)
        return
    if GATEWAY_PENDING:
        pytest.skip(GATEWAY_PENDING)
    make_gateway: GatewayFactory = request.getfixturevalue("make_gateway")
    gateway = make_gateway()
    native = request.param == "gateway-native"
    with Admin(gateway.url) as admin:
        for kind, base_url, models in (
            ("openai" if native else "openai_compatible", upstream_base, CODEX_MODELS),
            (
                "anthropic" if native else "openai",
                upstream_root if native else upstream_base,
                CLAUDE_MODELS,
            ),
        ):
            provider = admin.provider(base_url, kind=kind)
            for model in models:
                admin.model(provider["id"], model)
        key = admin.key()["key"]
    yield Target(request.param, gateway.url, key, upstream, upstream_base)


# ---- the mock's part of an agent's loop (no CLI needed) ---------------------------------------
CALL = 'look\ncall:read_file {"path": "note.txt"}'
Turn = list[dict[str, Any]]
MOCK_TURNS: dict[str, tuple[Turn, Turn]] = {
    "chat/completions": (
        [{"role": "user", "content": CALL}],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "note.txt"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": NOTE},
        ],
    ),
    "responses": (
        [{"role": "user", "content": [{"type": "input_text", "text": CALL}]}],
        [
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "read_file",
                "arguments": '{"path": "note.txt"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": NOTE},
        ],
    ),
    "messages": (
        [{"role": "user", "content": CALL}],
        [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "c1",
                        "name": "read_file",
                        "input": {"path": "note.txt"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "c1", "content": NOTE}],
            },
        ],
    ),
}


def _mock_calls(answer: dict[str, Any]) -> list[tuple[str, Any]]:
    """(tool name, arguments) of every tool call in a chat, Responses or Messages answer."""
    if "choices" in answer:
        calls = answer["choices"][0]["message"].get("tool_calls") or []
        return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]
    if "output" in answer:
        items = [i for i in answer["output"] if i["type"] == "function_call"]
        return [(i["name"], json.loads(i["arguments"])) for i in items]
    return [(b["name"], b["input"]) for b in answer["content"] if b["type"] == "tool_use"]


@pytest.mark.parametrize("endpoint", list(MOCK_TURNS))
def test_the_mock_calls_the_named_tool_then_answers_the_result(
    upstream: Upstream, endpoint: str
) -> None:
    """A `call:` line makes the mock call that tool; the tool's result gets a text answer."""
    url = f"{upstream.base_url()}/{endpoint}"
    field = "input" if endpoint == "responses" else "messages"
    tools = [{"type": "function", "name": "other", "parameters": {"type": "object"}}]
    body: dict[str, Any] = {"model": "m", "max_tokens": 100, "tools": tools}
    asked, answered = MOCK_TURNS[endpoint]
    first = httpx.post(url, json={**body, field: asked}, timeout=10)
    assert first.status_code == 200, first.text
    assert _mock_calls(first.json()) == [("read_file", {"path": "note.txt"})]
    second = httpx.post(url, json={**body, field: asked + answered}, timeout=10)
    assert second.status_code == 200, second.text
    assert _mock_calls(second.json()) == []
    assert "Hello" in json.dumps(second.json())


def test_the_pinned_versions_are_installed(codex_cli: str, claude_cli: str) -> None:
    pinned = json.loads((CLIENTS_DIR / "package.json").read_text())["dependencies"]
    assert pinned["@openai/codex"] in codex_cli
    assert pinned["@anthropic-ai/claude-code"] in claude_cli


# ---- Codex ----------------------------------------------------------------------------------
def test_codex_answers_a_prompt(codex_cli: str, target: Target) -> None:
    run = run_codex(target.openai_base_url, target.key, CODEX_MODELS[0], "Say hello.")
    assert run.returncode == 0, run.describe()
    assert run.stdout.strip() == "Hello from the mock!", run.describe()
    (seen,) = target.upstream_requests()
    assert seen["endpoint"] == target.upstream_endpoint("responses")
    assert seen["body"]["model"] == CODEX_MODELS[0]
    assert seen["body"]["stream"] is True
    assert seen["completed"] and not seen["cancelled"]
    if target.name == "upstream":
        assert seen["headers"]["authorization"] == f"Bearer {target.key}"
        assert seen["headers"]["accept"] == "text/event-stream"
        assert seen["headers"]["originator"] == "codex_exec"
        assert seen["body"]["store"] is False


@pytest.mark.parametrize("model", CODEX_MODELS)
def test_codex_runs_a_command_and_sends_back_its_output(
    codex_cli: str, target: Target, model: str
) -> None:
    prompt = 'The secret word? mode:reasoning\ncall:exec_command {"cmd": "cat note.txt"}'
    run = run_codex(target.openai_base_url, target.key, model, prompt, {"note.txt": NOTE})
    assert run.returncode == 0, run.describe()
    assert run.stdout.strip() == "Hello from the mock!", run.describe()
    assert "cat note.txt" in run.stderr  # Codex's log of the command it ran
    first, second = target.upstream_requests()
    assert first["endpoint"] == second["endpoint"] == target.upstream_endpoint("responses")
    assert SECRET not in json.dumps(first["body"])
    assert SECRET in json.dumps(second["body"]), "the command's output did not reach the model"
    if target.name != "gateway-bridged":
        assert _tool_names(first["body"]) & {"exec_command", "exec"}  # a way to run commands
        items = second["body"]["input"]
        (output,) = [i for i in items if i["type"] == "function_call_output"]
        assert SECRET in output["output"]
        (reasoning,) = [i for i in items if i["type"] == "reasoning"]  # sent back as received
        assert reasoning["encrypted_content"] == "mock-encrypted-reasoning"


def _tool_names(body: dict[str, Any]) -> set[str]:
    """The names of the tools in a Responses request: in `tools`, in `additional_tools` input
    items, and inside their namespaces."""
    tools = list(body.get("tools", []))
    for item in body["input"]:
        if item.get("type") == "additional_tools":
            tools += item["tools"]
    tools += [inner for tool in tools for inner in tool.get("tools", [])]
    return {tool["name"] for tool in tools if "name" in tool}


# ---- Claude Code ----------------------------------------------------------------------------
def test_claude_answers_a_prompt(claude_cli: str, target: Target) -> None:
    run, result = run_claude(target.url, target.key, CLAUDE_MODELS[0], "Say hello.")
    assert run.returncode == 0, run.describe()
    assert result.get("is_error") is False, run.describe()
    assert result["result"] in ANSWERS, run.describe()
    (seen,) = target.upstream_requests()
    assert seen["endpoint"] == target.upstream_endpoint("messages")
    assert seen["body"]["model"] == CLAUDE_MODELS[0]
    assert seen["body"]["stream"] is True
    assert seen["completed"] and not seen["cancelled"]
    if target.name == "upstream":
        headers = seen["headers"]
        assert headers["authorization"] == f"Bearer {target.key}"
        assert headers["anthropic-version"] == "2023-06-01"
        assert "claude-code-20250219" in headers["anthropic-beta"]
        assert headers["user-agent"].startswith("claude-cli/")


@pytest.mark.parametrize("model", CLAUDE_MODELS)
def test_claude_reads_a_file_and_sends_back_its_content(
    claude_cli: str, target: Target, model: str
) -> None:
    prompt = 'The secret word? mode:reasoning\ncall:Read {"file_path": "note.txt"}'
    run, result = run_claude(target.url, target.key, model, prompt, {"note.txt": NOTE})
    assert run.returncode == 0, run.describe()
    assert result.get("is_error") is False, run.describe()
    assert result["result"] in ANSWERS, run.describe()
    assert result["num_turns"] == 2
    first, second = target.upstream_requests()
    assert first["endpoint"] == second["endpoint"] == target.upstream_endpoint("messages")
    assert SECRET not in json.dumps(first["body"])
    assert SECRET in json.dumps(second["body"]), "the file's content did not reach the model"
    if target.name != "gateway-bridged":
        answer, last = second["body"]["messages"][-2:]
        (block,) = [b for b in last["content"] if b["type"] == "tool_result"]
        assert SECRET in json.dumps(block["content"])
        (thinking,) = [b for b in answer["content"] if b["type"] == "thinking"]
        assert thinking["signature"] == "mock-signature"  # sent back as received
