"""`llm-gateway providers ...`."""

from __future__ import annotations

import click

from llm_gateway.cli_admin.lookup import Lookup
from llm_gateway.cli_admin.options import (
    admin_client,
    admin_options,
    given_values,
    require_change,
)
from llm_gateway.cli_admin.output import PROVIDER_COLUMNS, done, emit

KIND_HELP = (
    "Provider kind: openai, openrouter, dashscope, ark, or another kind the gateway knows "
    "(the gateway checks it)."
)


@click.group()
@admin_options
def providers() -> None:
    """Manage upstream providers (their URLs and API keys)."""


@providers.command("list")
@admin_options
@click.pass_context
def provider_list(ctx: click.Context) -> None:
    """List providers (API keys shown masked)."""
    emit(ctx, admin_client(ctx).get("/admin/providers"), PROVIDER_COLUMNS)


@providers.command("create")
@admin_options
@click.option("--name", required=True, help="A unique name, used in place of the id.")
@click.option("--kind", required=True, metavar="KIND", help=KIND_HELP)
@click.option("--api-key", required=True, help="The provider's API key.")
@click.option("--base-url", help="Override the kind's default base URL.")
@click.pass_context
def provider_create(
    ctx: click.Context, name: str, kind: str, api_key: str, base_url: str | None
) -> None:
    """Register a provider."""
    body = given_values(name=name, kind=kind, api_key=api_key, base_url=base_url)
    emit(ctx, admin_client(ctx).call("POST", "/admin/providers", body), PROVIDER_COLUMNS)


@providers.command("update")
@admin_options
@click.argument("ident", metavar="PROVIDER")
@click.option("--name", help="Rename it.")
@click.option("--kind", metavar="KIND", help=KIND_HELP)
@click.option("--api-key", help="Replace the provider's API key.")
@click.option("--base-url", help="Replace the base URL.")
@click.option("--active/--inactive", default=None, help="Enable or disable it.")
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
    """Change a provider, given by name or id."""
    body = given_values(name=name, kind=kind, api_key=api_key, base_url=base_url, is_active=active)
    require_change(ctx, body, "--name, --kind, --api-key, --base-url, --active/--inactive")
    client = admin_client(ctx)
    provider_id = Lookup(client).id_of("providers", ident)
    emit(ctx, client.call("PUT", f"/admin/providers/{provider_id}", body), PROVIDER_COLUMNS)


@providers.command("delete")
@admin_options
@click.argument("ident", metavar="PROVIDER")
@click.pass_context
def provider_delete(ctx: click.Context, ident: str) -> None:
    """Delete a provider, given by name or id (refused while models use it)."""
    client = admin_client(ctx)
    provider_id = Lookup(client).id_of("providers", ident)
    client.call("DELETE", f"/admin/providers/{provider_id}")
    done(ctx, f"deleted provider {ident}")
