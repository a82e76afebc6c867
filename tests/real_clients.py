"""The real coding agents, Codex CLI and Claude Code, run non-interactively against a base URL.

Both are installed by npm into `tests/clients/node_modules` (exact versions in
`tests/clients/package.json`; `scripts/test` runs `npm ci` there). Each run gets a temporary
folder of its own, removed afterwards: the CLI's home (`HOME`, `CODEX_HOME`, `TMPDIR`) and the
working folder the agent works in. The environment is built from scratch (`PATH` and the
variables below only), so nothing of the developer's own setup (keys, proxies, `~/.codex`,
`~/.claude`) takes part, and each CLI is set up to call nothing but the given base URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLIENTS_DIR = Path(__file__).resolve().parent / "clients"
BIN_DIR = CLIENTS_DIR / "node_modules" / ".bin"
CODEX = BIN_DIR / "codex"
CLAUDE = BIN_DIR / "claude"
TIMEOUT = 90.0
# The variable Codex reads the gateway key from (`env_key` of its provider entry).
CODEX_KEY_VARIABLE = "LLM_GATEWAY_KEY"


@dataclass
class Run:
    """One finished run of a CLI: what it printed, and what its working folder held at the end."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    files: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """The whole run, for an assertion message."""
        return (
            f"$ {' '.join(self.command)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


def version(executable: Path) -> str | None:
    """`<cli> --version`, or None when the CLI is not installed or does not run."""
    if not executable.exists():
        return None
    with _workspace(None) as (root, work):
        env = {**_base_env(root), "CODEX_HOME": str(root)}
        try:
            run = _run([str(executable), "--version"], env, work, 30)
        except OSError:
            return None
    return run.stdout.strip() if run.returncode == 0 else None


def missing_message(executable: Path) -> str:
    return (
        f"{executable.name} is not installed in {BIN_DIR.parent}: run "
        "`npm ci --prefix tests/clients --no-audit --no-fund` (./scripts/test does)"
    )


# ---- Codex ----------------------------------------------------------------------------------
def codex_config(base_url: str, model: str) -> str:
    """`$CODEX_HOME/config.toml`: Codex's default configuration plus one provider entry.

    `base_url` ends in `/v1` (Codex appends `/responses`). Nothing else is changed: its calls
    home (analytics, plugin sync, update check) fail fast on a machine without internet and do
    not hold up the task.
    """
    return "\n".join(
        [
            f"model = {json.dumps(model)}",
            'model_provider = "gateway"',
            "",
            "[model_providers.gateway]",
            'name = "llm-gateway"',
            f"base_url = {json.dumps(base_url)}",
            f'env_key = "{CODEX_KEY_VARIABLE}"',
            'wire_api = "responses"',
            "",
        ]
    )


def run_codex(
    base_url: str,
    key: str,
    model: str,
    prompt: str,
    files: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Run:
    """`codex exec PROMPT` in a fresh working folder holding `files`, with a read-only sandbox.

    `codex exec` never asks for approval; `--ephemeral` keeps no session files; stdin is empty
    (else it waits to read more of the prompt from it).
    """
    with _workspace(files) as (root, work):
        codex_home = root / "codex-home"
        codex_home.mkdir()
        (codex_home / "config.toml").write_text(codex_config(base_url, model))
        env = {**_base_env(root), "CODEX_HOME": str(codex_home), CODEX_KEY_VARIABLE: key}
        daemon_dir = Path(f"/tmp/codex-daemon-{os.getuid()}")  # fixed: Codex ignores TMPDIR
        existed = daemon_dir.exists()
        command = [
            str(CODEX),
            "exec",
            "--skip-git-repo-check",
            "--sandbox",
            "read-only",
            "--ephemeral",
            "--color",
            "never",
            "--cd",
            str(work),
            prompt,
        ]
        try:
            return _run(command, env, work, timeout)
        finally:
            if not existed:  # made by this run (empty once the CLI is gone): leave /tmp as it was
                with contextlib.suppress(OSError):
                    daemon_dir.rmdir()


# ---- Claude Code ----------------------------------------------------------------------------
def claude_env(base_url: str, key: str) -> dict[str, str]:
    """The variables that point Claude Code at `base_url` and keep it from calling anything else.

    `ANTHROPIC_BASE_URL` is the root (Claude Code appends `/v1/messages`);
    `ANTHROPIC_AUTH_TOKEN` is sent as `Authorization: Bearer`. Without
    `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` it also looks up other hosts and sends a
    `HEAD <base>/api/hello` first.
    """
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


def run_claude(
    base_url: str,
    key: str,
    model: str,
    prompt: str,
    files: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> tuple[Run, dict[str, Any]]:
    """`claude -p PROMPT --output-format json` in a fresh working folder holding `files`.

    Returns the run and its JSON result (`result`, `is_error`, `num_turns`, `usage`, ...; an
    empty dict when stdout is not JSON). Without permission flags: read-only tools run, anything
    that would ask for permission is refused.
    """
    with _workspace(files) as (root, work):
        env = {**_base_env(root), **claude_env(base_url, key)}
        command = [
            str(CLAUDE),
            "-p",
            prompt,
            "--model",
            model,
            "--output-format",
            "json",
            "--no-session-persistence",
        ]
        run = _run(command, env, work, timeout)
    try:
        result = json.loads(run.stdout)
    except ValueError:
        result = {}
    return run, result if isinstance(result, dict) else {}


# ---- shared ---------------------------------------------------------------------------------
def _base_env(root: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(root),
        "TMPDIR": str(root / "tmp"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }


class _workspace:
    """A temporary root (the CLI's home) with `work/` holding `files`; removed on exit."""

    def __init__(self, files: dict[str, str] | None) -> None:
        self.files = files or {}
        self.root = Path(tempfile.mkdtemp(prefix="llmgw-cli-"))

    def __enter__(self) -> tuple[Path, Path]:
        work = self.root / "work"
        work.mkdir()
        (self.root / "tmp").mkdir()
        for name, text in self.files.items():
            (work / name).write_text(text)
        return self.root, work

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _run(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Run:
    """Run in a process group of its own, so a timeout ends the CLI and everything it started."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += f"\n[killed after {timeout:.0f} s]"
        returncode = -int(signal.SIGKILL)
    else:
        returncode = process.returncode
        _end_group(process.pid)
    files = {p.name: p.read_text(errors="replace") for p in cwd.iterdir() if p.is_file()}
    return Run(command, returncode, stdout, stderr, files)


def _end_group(pgid: int) -> None:
    """End what the CLI left running in its own process group (a helper it started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
