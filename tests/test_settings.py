from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llm_gateway.settings import (
    ConfigError,
    Settings,
    decode_secret_key,
    normalise_database_url,
    parse_listen_addr,
)
from tests.servers import free_port, wait_until

CLEAN_ENV_KEYS = (
    "DATABASE_URL",
    "REDIS_URL",
    "ADMIN_KEY",
    "LISTEN_ADDR",
    "GATEWAY_SECRET_KEY",
    "CORS_ORIGIN",
)


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV_KEYS}
    env.update(values)
    return env


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_database_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_database_url(given)[0] == expected


@pytest.mark.parametrize("bad", ["mysql://h/db", "sqlite://", "sqlite:///:memory:", "nonsense"])
def test_unsupported_database_urls_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalise_database_url(bad)


@pytest.mark.parametrize("bad", ["8080", "host:", "host:99999", "host:http"])
def test_bad_listen_addr_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen_addr(bad)


def test_secret_key_accepts_both_base64_alphabets() -> None:
    raw = bytes([250, 251, 252, 253] * 8)
    assert decode_secret_key(base64.b64encode(raw).decode()) == raw
    assert decode_secret_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    with pytest.raises(ConfigError):
        decode_secret_key(base64.b64encode(b"short").decode())


def test_postgres_needs_an_admin_key_and_a_secret_key() -> None:
    with pytest.raises(ConfigError, match="ADMIN_KEY"):
        Settings.load(database_url="postgres://u@h/db", admin_key=None).resolve()
    with pytest.raises(ConfigError, match="GATEWAY_SECRET_KEY"):
        Settings.load(
            database_url="postgres://u@h/db",
            admin_key="a-long-enough-admin-key",
            gateway_secret_key=None,
        ).resolve()


@pytest.mark.parametrize(
    "env",
    [
        {"LISTEN_ADDR": "nonsense"},
        {"DATABASE_URL": "mysql://h/db"},
        {"DATABASE_URL": "postgres://u@127.0.0.1:1/db"},
        {"LOG_RETENTION_DAYS": "-1"},
        {"ADMIN_KEY": "admin"},
        {"GATEWAY_SECRET_KEY": "not-base64-32-bytes"},
    ],
)
def test_invalid_settings_exit_2_with_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llm_gateway", "serve"],
        env=_env(**env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llm-gateway: ")
    assert "Traceback" not in result.stderr


def test_embedded_default_starts_with_nothing_configured(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_gateway", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(url + "/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=30)
        key_file = tmp_path / "llm-gateway.db.admin-key"
        secret_file = tmp_path / "llm-gateway.db.secret-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        admin_key = key_file.read_text().strip()
        headers = {"Authorization": f"Bearer {admin_key}"}
        created = httpx.post(
            url + "/admin/providers",
            headers=headers,
            json={"name": "openai-main", "kind": "openai", "api_key": "sk-your-openai-key"},
        )
        assert created.status_code == 201
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0
        assert admin_key in out  # printed once at start, with a hint
        assert "ADMIN_KEY" in out
        assert "sk-your-openai-key" not in out + err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # A second start reuses the same key.
    assert (tmp_path / "llm-gateway.db.admin-key").read_text().strip() == admin_key
