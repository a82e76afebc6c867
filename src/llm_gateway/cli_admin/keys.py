"""`llm-gateway keys ...`: user keys; the plaintext is printed only by create and rotate."""

from __future__ import annotations

from typing import Any

import click

from llm_gateway.cli_admin.lookup import Lookup
from llm_gateway.cli_admin.options import (
    admin_client,
    admin_options,
    exclusive,
    given_values,
    require_change,
)
from llm_gateway.cli_admin.output import KEY_COLUMNS, done, emit, field

KEY_ARGUMENT_HELP = "KEY is a name or an id; a name shared by several keys picks the active one."


def _emit_plaintext(ctx: click.Context, created: dict[str, Any]) -> None:
    emit(
        ctx,
        created,
        [*KEY_COLUMNS, field("key")],
        note="[bold yellow]Store the key now: it is not shown again.[/]",
    )


@click.group()
@admin_options
def keys() -> None:
    """Manage user keys (issue, budget, rotate, revoke)."""


@keys.command("list")
@admin_options
@click.pass_context
def key_list(ctx: click.Context) -> None:
    """List keys with their budgets and usage (never the plaintext)."""
    emit(ctx, admin_client(ctx).get("/admin/keys"), KEY_COLUMNS)


@keys.command("create")
@admin_options
@click.option("--name", required=True, help="A label; names need not be unique.")
@click.option(
    "--budget", type=click.IntRange(min=0), help="Token budget (weighted tokens); none: unlimited."
)
@click.pass_context
def key_create(ctx: click.Context, name: str, budget: int | None) -> None:
    """Issue a key; its plaintext is printed once."""
    body = given_values(name=name, token_budget=budget)
    _emit_plaintext(ctx, admin_client(ctx).call("POST", "/admin/keys", body))


@keys.command("update", epilog=KEY_ARGUMENT_HELP)
@admin_options
@click.argument("ident", metavar="KEY")
@click.option("--name", help="Rename it.")
@click.option("--budget", type=click.IntRange(min=0), help="Set the token budget.")
@click.option("--unlimited", is_flag=True, help="Remove the budget.")
@click.option("--reset-usage", is_flag=True, help="Start counting used tokens from zero.")
@click.pass_context
def key_update(
    ctx: click.Context,
    ident: str,
    name: str | None,
    budget: int | None,
    unlimited: bool,
    reset_usage: bool,
) -> None:
    """Change a key's name or budget, or reset its usage."""
    exclusive(ctx, budget=budget is not None, unlimited=unlimited)
    body: dict[str, Any] = given_values(name=name, token_budget=budget)
    if unlimited:
        body["token_budget"] = None
    if reset_usage:
        body["reset_usage"] = True
    require_change(ctx, body, "--name, --budget, --unlimited, --reset-usage")
    client = admin_client(ctx)
    key_id = Lookup(client).id_of("keys", ident)
    emit(ctx, client.call("PUT", f"/admin/keys/{key_id}", body), KEY_COLUMNS)


@keys.command("rotate", epilog=KEY_ARGUMENT_HELP)
@admin_options
@click.argument("ident", metavar="KEY")
@click.pass_context
def key_rotate(ctx: click.Context, ident: str) -> None:
    """Replace a key's secret; the old one stops working at once."""
    client = admin_client(ctx)
    key_id = Lookup(client).id_of("keys", ident)
    _emit_plaintext(ctx, client.call("POST", f"/admin/keys/{key_id}/rotate"))


@keys.command("delete", epilog=KEY_ARGUMENT_HELP)
@admin_options
@click.argument("ident", metavar="KEY")
@click.pass_context
def key_delete(ctx: click.Context, ident: str) -> None:
    """Revoke a key (it stays listed, inactive)."""
    client = admin_client(ctx)
    key_id = Lookup(client).id_of("keys", ident)
    client.call("DELETE", f"/admin/keys/{key_id}")
    done(ctx, f"revoked key {ident}")
