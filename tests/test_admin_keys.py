from __future__ import annotations

import hashlib
import re
import uuid

import pytest
import sqlalchemy as sa

from llm_gateway.db.tables import user_keys
from tests.conftest import Admin, assert_openai_error
from tests.servers import ThreadedGateway

KEY_PATTERN = re.compile(
    r"^sk-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


def _stored_rows(gateway: ThreadedGateway) -> list[dict[str, object]]:
    async def read() -> list[dict[str, object]]:
        async with gateway.runtime.store.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(sa.select(user_keys))]

    return gateway.run(read())


def test_created_key_is_shown_once_and_stored_only_as_a_hash(
    admin: Admin, gateway: ThreadedGateway
) -> None:
    created = admin.key(name="my-app")
    key = created["key"]
    assert KEY_PATTERN.match(key)
    assert len(key) == 39
    assert created["key_prefix"] == key[:12]
    assert created["tokens_used"] == 0
    assert created["token_budget"] is None
    listed = admin.ok("GET", "/admin/keys")
    assert "key" not in listed[0]
    assert key not in str(listed)
    rows = _stored_rows(gateway)
    assert rows[0]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(rows)


def test_rotate_returns_a_new_key_and_revoke_soft_deletes(admin: Admin) -> None:
    created = admin.key()
    rotated = admin.ok("POST", f"/admin/keys/{created['id']}/rotate")
    assert rotated["id"] == created["id"]
    assert rotated["key"] != created["key"]
    assert KEY_PATTERN.match(rotated["key"])
    admin.ok("DELETE", f"/admin/keys/{created['id']}", 204)
    listed = admin.ok("GET", "/admin/keys")
    assert listed[0]["is_active"] is False
    assert_openai_error(admin.request("POST", f"/admin/keys/{created['id']}/rotate"), 404)
    assert_openai_error(admin.request("DELETE", f"/admin/keys/{created['id']}"), 404)


def test_budget_update_and_reset(admin: Admin) -> None:
    created = admin.key(token_budget=100)
    assert created["token_budget"] == 100
    updated = admin.ok("PUT", f"/admin/keys/{created['id']}", json={"token_budget": 500})
    assert updated["token_budget"] == 500
    unlimited = admin.ok("PUT", f"/admin/keys/{created['id']}", json={"token_budget": None})
    assert unlimited["token_budget"] is None
    reset = admin.ok("PUT", f"/admin/keys/{created['id']}", json={"reset_usage": True})
    assert reset["tokens_used"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {},
        {"name": "k", "token_budget": -1},
        {"name": "k", "token_budget": "10"},
        {"name": "k", "token_budget": 1.5},
        {"name": ["k"]},
    ],
)
def test_invalid_key_request_is_refused(admin: Admin, body: dict[str, object]) -> None:
    assert_openai_error(admin.request("POST", "/admin/keys", json=body), 400)
    assert admin.ok("GET", "/admin/keys") == []


@pytest.mark.parametrize("ident", [str(uuid.uuid4()), "zzz"])
def test_unknown_key_id_is_a_404(admin: Admin, ident: str) -> None:
    assert_openai_error(admin.request("PUT", f"/admin/keys/{ident}", json={}), 404)
    assert_openai_error(admin.request("POST", f"/admin/keys/{ident}/rotate"), 404)
    assert_openai_error(admin.request("DELETE", f"/admin/keys/{ident}"), 404)
