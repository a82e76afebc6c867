"""Safe defaults: private files, nothing secret for git to pick up, bounded metric labels,
and the OpenAI error shape on every path the gateway does not serve."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from llm_gateway.services.stats import UNKNOWN_MODEL
from tests.conftest import Admin, assert_openai_error
from tests.servers import ADMIN_KEY, ThreadedGateway, Upstream, gateway_config, wait_until

REPO = Path(__file__).resolve().parent.parent


# ---- files of the embedded default ---------------------------------------------------------
@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[ThreadedGateway]:
    """The embedded default as a first start makes it: SQLite, keys generated beside it."""
    database = tmp_path / "llm-gateway.db"
    config = gateway_config(f"sqlite:///{database}", admin_key=None, gateway_secret_key=None)
    gateway = ThreadedGateway(config).start()
    yield gateway
    gateway.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_database_and_its_journals_are_private(
    embedded: ThreadedGateway, tmp_path: Path
) -> None:
    with Admin(embedded.url, embedded.config.admin_key) as admin:
        admin.key()  # a write, so the write-ahead log is in use
    database = tmp_path / "llm-gateway.db"
    files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]
    files += [database.with_name(database.name + s) for s in (".admin-key", ".secret-key")]
    for path in files:
        assert path.exists(), path
        assert _mode(path) == 0o600, f"{path.name} is {_mode(path):o}"


def test_an_existing_readable_database_is_made_private(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    database.touch()
    database.chmod(0o644)  # as an earlier version left it
    gateway = ThreadedGateway(gateway_config(f"sqlite:///{database}")).start()
    try:
        assert _mode(database) == 0o600
    finally:
        gateway.stop()


def _ignored(names: list[str]) -> set[str]:
    """The names git would ignore in this repository (whether or not the files exist)."""
    result = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", "--stdin"],
        input="\n".join(names),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: none of them is ignored
    return set(result.stdout.splitlines())


@pytest.fixture
def git_repo() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")


@pytest.mark.usefixtures("git_repo")
def test_generated_secrets_and_databases_are_git_ignored() -> None:
    names = [
        "llm-gateway.db",
        "llm-gateway.db-wal",
        "llm-gateway.db-shm",
        "llm-gateway.db.admin-key",
        "llm-gateway.db.secret-key",
        "llm-gateway.migrate-lock",
        "data/gateway.db.admin-key",
        "data/gateway.db.secret-key",
        "data/gateway.migrate-lock",
    ]
    assert _ignored(names) == set(names)
    assert _ignored(["src/llm_gateway/app.py", "README.md"]) == set()


@pytest.mark.usefixtures("git_repo")
def test_every_file_a_first_start_leaves_is_git_ignored(
    embedded: ThreadedGateway, tmp_path: Path
) -> None:
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(name.endswith(".admin-key") for name in left)
    assert any(name.endswith(".secret-key") for name in left)
    assert _ignored(left) == set(left)


# ---- metric labels and stats rows ----------------------------------------------------------
def _label_values(gateway: ThreadedGateway, label: str) -> set[str]:
    text = httpx.get(gateway.url + "/metrics").text
    return set(re.findall(rf'{label}="([^"]*)"', text))


def _sample(gateway: ThreadedGateway, name: str, **labels: str) -> float:
    for line in httpx.get(gateway.url + "/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _flush(gateway: ThreadedGateway) -> None:
    gateway.run(gateway.runtime.log_writer.write_pending())


def test_invented_model_names_create_no_label_values_and_no_stats_rows(
    gateway: ThreadedGateway, admin: Admin, upstream: Upstream
) -> None:
    provider = admin.provider(upstream.base_url())
    admin.model(provider["id"], "gpt-4o")
    retired = admin.model(provider["id"], "retired-model")
    key = admin.key()
    client = OpenAI(api_key=key["key"], base_url=gateway.url + "/v1", max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-4o", messages=messages)
    client.chat.completions.create(model="retired-model", messages=messages)
    admin.ok("DELETE", f"/admin/models/{retired['id']}", 204)
    before = _label_values(gateway, "model")
    invented = [f"invented-{i}-{uuid.uuid4().hex[:6]}" for i in range(50)]
    for name in invented:
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=name, messages=messages)
    client.close()

    after = _label_values(gateway, "model")
    assert after - before <= {UNKNOWN_MODEL}
    assert after.isdisjoint(invented)
    requests = "llm_gateway_requests_total"
    assert _sample(gateway, requests, model=UNKNOWN_MODEL, status="404") == 50
    assert _sample(gateway, requests, model="gpt-4o", status="200") == 1

    _flush(gateway)
    wait_until(lambda: admin.ok("GET", "/admin/logs")["total"] == 52)
    usage = {row["model"]: row for row in admin.ok("GET", "/admin/stats")["model_usage"]}
    assert set(usage) == {"gpt-4o", "retired-model", UNKNOWN_MODEL}
    assert usage[UNKNOWN_MODEL]["requests"] == 50
    assert usage["retired-model"]["requests"] == 1  # a deleted model keeps its history
    # The request log keeps the name as it was requested.
    assert admin.ok("GET", "/admin/logs", params={"model": invented[7]})["total"] == 1


# ---- the paths the gateway does not serve --------------------------------------------------
def test_root_leads_to_the_admin_page_which_has_an_icon(gateway: ThreadedGateway) -> None:
    root = httpx.get(gateway.url + "/")
    assert root.status_code in (302, 307) and root.headers["location"] == "/ui/"
    page = httpx.get(gateway.url + "/", follow_redirects=True)
    assert page.status_code == 200 and page.url.path == "/ui/"
    assert page.headers["content-type"].startswith("text/html")
    for path in ("/favicon.ico", "/ui/favicon.svg"):
        icon = httpx.get(gateway.url + path)
        assert icon.status_code == 200, path
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.text.lstrip().startswith("<svg")


UNSERVED = [
    ("GET", "/v1/foo", 404, "not_found"),
    ("POST", "/v1/foo", 404, "not_found"),
    ("GET", "/admin/foo", 404, "not_found"),
    ("GET", "/ui/missing.js", 404, "not_found"),
    ("GET", "/nothing/here", 404, "not_found"),
    ("PATCH", "/admin/keys", 405, "method_not_allowed"),
    ("DELETE", "/admin/providers", 405, "method_not_allowed"),
    ("GET", f"/admin/keys/{uuid.uuid4()}/rotate", 405, "method_not_allowed"),
    ("PUT", "/admin/stats", 405, "method_not_allowed"),
    ("POST", "/health", 405, "method_not_allowed"),
    ("POST", "/v1/models", 405, "method_not_allowed"),
    ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
]


def test_unserved_paths_and_methods_answer_in_the_openai_error_shape(
    gateway: ThreadedGateway,
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for method, path, status, code in UNSERVED:
        response = httpx.request(method, gateway.url + path, headers=headers)
        assert response.headers["content-type"].startswith("application/json"), path
        assert "detail" not in response.json(), path
        assert_openai_error(response, status, code)
        if status == 405 and path != "/v1/chat/completions":
            assert response.headers.get("allow"), path
    anonymous = httpx.get(gateway.url + "/admin/foo")
    assert anonymous.status_code in (401, 404) and set(anonymous.json()) == {"error"}
