"""Admin sub-commands: thin clients of the admin HTTP API, printing tables (or JSON)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from llm_gateway.settings import DEFAULT_SQLITE_FILE

DEFAULT_URL = "http://127.0.0.1:8080"
COLUMNS = {
    "providers": ["id", "name", "kind", "base_url", "api_key_preview", "is_active"],
    "models": [
        "id",
        "name",
        "provider_name",
        "provider_model_name",
        "is_active",
        "input_token_coefficient",
        "output_token_coefficient",
    ],
    "keys": ["id", "name", "key_prefix", "is_active", "token_budget", "tokens_used"],
}


class AdminClient:
    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url.rstrip("/")
        self.admin_key = admin_key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own gateway
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise click.ClickException(f"{exc.code}: {_error_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise click.ClickException(f"cannot reach {self.url}: {reason}") from None
        return json.loads(payload) if payload else None


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace")[:200] or "request failed"


def _default_admin_key() -> str | None:
    if os.environ.get("ADMIN_KEY"):
        return os.environ["ADMIN_KEY"]
    key_file = Path.cwd() / f"{DEFAULT_SQLITE_FILE}.admin-key"
    return key_file.read_text().strip() if key_file.is_file() else None


def _client(ctx: click.Context) -> AdminClient:
    params = ctx.parent.params if ctx.parent else {}
    url = params.get("url") or DEFAULT_URL
    admin_key = params.get("admin_key") or _default_admin_key()
    if not admin_key:
        raise click.UsageError("no admin key: pass --admin-key or set ADMIN_KEY")
    return AdminClient(url, admin_key)


def _emit(ctx: click.Context, resource: str, data: Any) -> None:
    as_json = bool(ctx.parent and ctx.parent.params.get("as_json"))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if data is None:
        click.echo("done")
        return
    rows = data if isinstance(data, list) else [data]
    columns = list(COLUMNS[resource])
    if rows and "key" in rows[0]:
        columns.append("key")
    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console = Console(width=max(160, Console().width))
    console.print(table)
    if rows and "key" in rows[0]:
        console.print("[bold yellow]Store the key now: it is not shown again.[/]")


def _group(name: str, help_text: str) -> click.Group:
    @click.group(name=name, help=help_text)
    @click.option(
        "--url",
        envvar="LLM_GATEWAY_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="Gateway base URL.",
    )
    @click.option("--admin-key", envvar="ADMIN_KEY", help="Admin key (default: $ADMIN_KEY).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    def group(url: str, admin_key: str | None, as_json: bool) -> None:
        pass

    @group.command("list")
    @click.pass_context
    def list_(ctx: click.Context) -> None:
        _emit(ctx, name, _client(ctx).call("GET", f"/admin/{name}"))

    @group.command("delete")
    @click.argument("ident")
    @click.pass_context
    def delete(ctx: click.Context, ident: str) -> None:
        _emit(ctx, name, _client(ctx).call("DELETE", f"/admin/{name}/{ident}"))

    return group


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


providers = _group("providers", "Manage upstream providers.")
models = _group("models", "Manage model routes.")
keys = _group("keys", "Manage user keys.")


@providers.command("create")
@click.option("--name", required=True)
@click.option(
    "--kind", required=True, type=click.Choice(["openai", "openrouter", "dashscope", "ark"])
)
@click.option("--api-key", required=True, help="The provider's API key.")
@click.option("--base-url", help="Override the kind's default base URL.")
@click.pass_context
def provider_create(
    ctx: click.Context, name: str, kind: str, api_key: str, base_url: str | None
) -> None:
    body = _given(name=name, kind=kind, api_key=api_key, base_url=base_url)
    _emit(ctx, "providers", _client(ctx).call("POST", "/admin/providers", body))


@providers.command("update")
@click.argument("ident")
@click.option("--name")
@click.option("--kind", type=click.Choice(["openai", "openrouter", "dashscope", "ark"]))
@click.option("--api-key")
@click.option("--base-url")
@click.option("--active/--inactive", default=None)
@click.pass_context
def provider_update(
    ctx: click.Context,
    ident: str,
    name: str | None,
    kind: str | None,
    api_key: str | None,
    base_url: str | None,
    active: bool | None,
) -> None:
    body = _given(name=name, kind=kind, api_key=api_key, base_url=base_url, is_active=active)
    _emit(ctx, "providers", _client(ctx).call("PUT", f"/admin/providers/{ident}", body))


@models.command("create")
@click.option("--name", required=True, help="The name clients ask for.")
@click.option("--provider-id", required=True)
@click.option("--provider-model-name", help="The provider's name for it, when different.")
@click.option("--input-coefficient", type=float)
@click.option("--output-coefficient", type=float)
@click.pass_context
def model_create(
    ctx: click.Context,
    name: str,
    provider_id: str,
    provider_model_name: str | None,
    input_coefficient: float | None,
    output_coefficient: float | None,
) -> None:
    body = _given(
        name=name,
        provider_id=provider_id,
        provider_model_name=provider_model_name,
        input_token_coefficient=input_coefficient,
        output_token_coefficient=output_coefficient,
    )
    _emit(ctx, "models", _client(ctx).call("POST", "/admin/models", body))


@models.command("update")
@click.argument("ident")
@click.option("--name")
@click.option("--provider-id")
@click.option("--provider-model-name")
@click.option("--reset-provider-model-name", is_flag=True, help="Use the model's own name.")
@click.option("--input-coefficient", type=float)
@click.option("--output-coefficient", type=float)
@click.option("--active/--inactive", default=None)
@click.pass_context
def model_update(
    ctx: click.Context,
    ident: str,
    name: str | None,
    provider_id: str | None,
    provider_model_name: str | None,
    reset_provider_model_name: bool,
    input_coefficient: float | None,
    output_coefficient: float | None,
    active: bool | None,
) -> None:
    body = _given(
        name=name,
        provider_id=provider_id,
        provider_model_name=provider_model_name,
        input_token_coefficient=input_coefficient,
        output_token_coefficient=output_coefficient,
        is_active=active,
    )
    if reset_provider_model_name:
        body["provider_model_name"] = None
    _emit(ctx, "models", _client(ctx).call("PUT", f"/admin/models/{ident}", body))


@keys.command("create")
@click.option("--name", required=True)
@click.option("--budget", type=click.IntRange(min=0), help="Token budget (weighted tokens).")
@click.pass_context
def key_create(ctx: click.Context, name: str, budget: int | None) -> None:
    body = _given(name=name, token_budget=budget)
    _emit(ctx, "keys", _client(ctx).call("POST", "/admin/keys", body))


@keys.command("update")
@click.argument("ident")
@click.option("--name")
@click.option("--budget", type=click.IntRange(min=0))
@click.option("--unlimited", is_flag=True, help="Remove the budget.")
@click.option("--reset-usage", is_flag=True)
@click.pass_context
def key_update(
    ctx: click.Context,
    ident: str,
    name: str | None,
    budget: int | None,
    unlimited: bool,
    reset_usage: bool,
) -> None:
    body: dict[str, Any] = _given(name=name, token_budget=budget)
    if unlimited:
        body["token_budget"] = None
    if reset_usage:
        body["reset_usage"] = True
    _emit(ctx, "keys", _client(ctx).call("PUT", f"/admin/keys/{ident}", body))


@keys.command("rotate")
@click.argument("ident")
@click.pass_context
def key_rotate(ctx: click.Context, ident: str) -> None:
    _emit(ctx, "keys", _client(ctx).call("POST", f"/admin/keys/{ident}/rotate"))


def register(main: click.Group) -> None:
    for group in (providers, models, keys):
        main.add_command(group)
