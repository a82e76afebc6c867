"""The secrets audit over everything the suite left: runs last (see `conftest.py`).

Every in-process gateway of the session logged to one file, every gateway process to its own,
all of them with request and response bodies stored; every PostgreSQL database was dumped before
it was dropped and every SQLite file is still in the session's temporary folder. No secret the
suite used may appear in any of them (hashes and ciphertext do not contain the plaintext).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.audit import AUDIT
from tests.conftest import SUITE_LOG, Admin, GatewayFactory
from tests.servers import Upstream

TESTS = Path(__file__).resolve().parent
# Secret-looking literals in the tests themselves (keys typed into the CLI or the admin page).
LITERAL = re.compile(r"[\"'](sk-[A-Za-z0-9-]{12,})[\"']")


def _session(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    """A small session of its own, so the audit has secrets to look for even when run alone."""
    gateway = make_gateway()
    with Admin(gateway.url) as admin:
        provider = admin.provider(upstream.base_url(), api_key="sk-audit-provider-key-0077")
        admin.model(provider["id"], "gpt-4o")
        created = admin.key()
        for body in ({}, {"stream": True}, {"messages": [{"role": "user", "content": "x"}]}):
            httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {created['key']}"},
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **body},
            )
        admin.ok("POST", f"/admin/keys/{created['id']}/rotate")


@pytest.mark.last
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_secret_in_any_log_row_or_file_the_suite_left(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _session(make_gateway, upstream)
    for source in TESTS.glob("*.py"):
        AUDIT.register(*LITERAL.findall(source.read_text()))
    user_keys = [s for s in AUDIT.secrets if re.fullmatch(r"sk-[0-9a-f-]{36}", s)]
    assert len(user_keys) >= 2 and "sk-audit-provider-key-0077" in AUDIT.secrets
    assert AUDIT.folder is not None and (AUDIT.folder / SUITE_LOG).stat().st_size > 0

    root = tmp_path_factory.getbasetemp()
    canary = AUDIT.folder / "canary.log"  # the search itself must find a planted secret
    canary.write_text(f"planted {user_keys[0]}\n")
    found, _ = AUDIT.hits([root])
    assert any(str(canary) in paths for paths in found.values())
    canary.unlink()

    found, files = AUDIT.hits([root])
    assert files >= 3
    assert found == {}, found
