"""Provider keys are encrypted at rest, plaintext rows get encrypted, the secret can rotate."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import Admin
from tests.servers import ADMIN_KEY, GatewayProcess, Upstream

PROVIDER_SECRET = "sk-provider-at-rest-0099"


def _stored_keys(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT api_key FROM providers")]


def _call(gateway: GatewayProcess, key: str) -> int:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    ).status_code


def test_keys_encrypted_plaintext_migrated_and_secret_rotated(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "llm-gateway.db"
    env = {"ADMIN_KEY": ADMIN_KEY}  # embedded default: the secret key is generated once
    for name in ("DATABASE_URL", "GATEWAY_SECRET_KEY", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    base_url = upstream.base_url()
    gateway = GatewayProcess(env, tmp_path).start()
    with Admin(gateway.url) as admin:
        provider = admin.provider(base_url, api_key=PROVIDER_SECRET)
        admin.model(provider["id"], "gpt-4o")
        key = admin.key()["key"]
    assert _call(gateway, key) == 200
    gateway.stop()
    [stored] = _stored_keys(database)
    assert stored.startswith("v1:") and PROVIDER_SECRET not in stored

    # A row written in plaintext (as before encryption at rest) is encrypted at the next start.
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE providers SET api_key = ?", (PROVIDER_SECRET,))
    gateway = GatewayProcess(env, tmp_path).start()
    assert _call(gateway, key) == 200
    gateway.stop()
    [stored] = _stored_keys(database)
    assert stored.startswith("v1:") and PROVIDER_SECRET not in stored

    # Re-encrypt under a new secret; the old ciphertext is gone, the provider still works.
    new_secret = base64.b64encode(os.urandom(32)).decode()
    result = subprocess.run(
        [sys.executable, "-m", "llm_gateway", "rotate-secret-key", "--new-key", new_secret],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Re-encrypted 1 provider key" in result.stdout
    assert (tmp_path / "llm-gateway.db.secret-key").read_text().strip() == new_secret
    [rotated] = _stored_keys(database)
    assert rotated != stored and rotated.startswith("v1:")
    gateway = GatewayProcess(env, tmp_path).start()
    assert _call(gateway, key) == 200
    gateway.stop()
    seen = upstream.requests(base_url)
    assert {r["headers"]["authorization"] for r in seen} == {f"Bearer {PROVIDER_SECRET}"}

    # With the wrong current secret nothing is changed and the error is one clear line.
    wrong = subprocess.run(
        [sys.executable, "-m", "llm_gateway", "rotate-secret-key", "--new-key", new_secret],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env, "GATEWAY_SECRET_KEY": base64.b64encode(os.urandom(32)).decode()},
    )
    assert wrong.returncode == 2
    assert "cannot be decrypted" in wrong.stderr and "Traceback" not in wrong.stderr
    assert _stored_keys(database) == [rotated]
