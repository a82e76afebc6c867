"""`llm-gateway keys ...`: user keys; the plaintext is printed only by create and rotate.

A key's policies: the models it may call (names or `*` globs), an expiry, requests and tokens
per minute, and token and USD budgets that restart every day, week or month (or never).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from llm_gateway.cli_admin.lookup import Lookup
from llm_gateway.cli_admin.options import (
    NONE,
    USD_OR_NONE,
    Clear,
    Instant,
    OrNone,
    admin_client,
    admin_options,
    exclusive,
    given_values,
    require_change,
)
from llm_gateway.cli_admin.output import KEY_COLUMNS, done, emit, field

KEY_ARGUMENT_HELP = "KEY is a name or an id; a name shared by several keys picks the active one."
PERIODS = ("daily", "weekly", "monthly")
Limit = int | Clear | None


def _emit_plaintext(ctx: click.Context, created: dict[str, Any]) -> None:
    emit(
        ctx,
        created,
        [*KEY_COLUMNS, field("key")],
        note="[bold yellow]Store the key now: it is not shown again.[/]",
    )


def _model_patterns(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    patterns = tuple(value.strip() for value in values)
    if any(not pattern for pattern in patterns):
        raise click.BadParameter("a model name or glob cannot be empty", ctx, param)
    return tuple(dict.fromkeys(patterns))  # each once, in the order given


def _policy_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The policy options create and update share; `none` (or `never`) clears a value."""
    for decorator in reversed(
        [
            click.option(
                "--allowed-model",
                "allowed_models",
                multiple=True,
                metavar="NAME_OR_GLOB",
                callback=_model_patterns,
                help="A model the key may call, by name or glob (gpt-4o*); repeat for several. "
                "Replaces the list on update; a new key without it may call every model.",
            ),
            click.option(
                "--expires-at",
                type=OrNone(Instant(), ("never", "none")),
                metavar="ISO8601|never",
                help="When the key stops working: 2030-01-31T18:00:00Z, 2030-01-31T18:00+01:00 "
                "or 2030-01-31 (no zone: UTC); never: no expiry.",
            ),
            click.option(
                "--rpm",
                type=OrNone(click.IntRange(min=1)),
                metavar="N|none",
                help="Requests per rolling minute; none: no limit.",
            ),
            click.option(
                "--tpm",
                type=OrNone(click.IntRange(min=1)),
                metavar="N|none",
                help="Tokens per rolling minute; none: no limit.",
            ),
            click.option(
                "--budget-period",
                type=OrNone(click.Choice(PERIODS)),
                metavar="daily|weekly|monthly|none",
                help="Restart the token and cost budgets at each UTC day, week (from Monday) or "
                "month; none: they never restart.",
            ),
            click.option(
                "--cost-budget",
                type=USD_OR_NONE,
                metavar="USD|none",
                help="Spend limit in USD per budget period (or for ever); none: no limit.",
            ),
        ]
    ):
        function = decorator(function)
    return function


def _policy_body(
    allowed_models: tuple[str, ...],
    expires_at: str | Clear | None,
    rpm: Limit,
    tpm: Limit,
    budget_period: str | Clear | None,
    cost_budget: float | Clear | None,
) -> dict[str, Any]:
    body = given_values(
        expires_at=expires_at,
        rpm_limit=rpm,
        tpm_limit=tpm,
        budget_period=budget_period,
        cost_budget_usd=cost_budget,
    )
    if allowed_models:
        body["allowed_models"] = list(allowed_models)
    return body


@click.group()
@admin_options
def keys() -> None:
    """Manage user keys (issue, policies, budgets, rotate, revoke)."""


@keys.command("list")
@admin_options
@click.pass_context
def key_list(ctx: click.Context) -> None:
    """List keys with their limits, expiry and period spend (never the plaintext)."""
    emit(ctx, admin_client(ctx).get("/admin/keys"), KEY_COLUMNS)


@keys.command("create")
@admin_options
@click.option("--name", required=True, help="A label; names need not be unique.")
@click.option(
    "--budget", type=click.IntRange(min=0), help="Token budget (weighted tokens); none: unlimited."
)
@_policy_options
@click.pass_context
def key_create(
    ctx: click.Context,
    name: str,
    budget: int | None,
    allowed_models: tuple[str, ...],
    expires_at: str | Clear | None,
    rpm: Limit,
    tpm: Limit,
    budget_period: str | Clear | None,
    cost_budget: float | Clear | None,
) -> None:
    """Issue a key; its plaintext is printed once."""
    body = given_values(name=name, token_budget=budget)
    body.update(_policy_body(allowed_models, expires_at, rpm, tpm, budget_period, cost_budget))
    _emit_plaintext(ctx, admin_client(ctx).call("POST", "/admin/keys", body))


@keys.command("update", epilog=KEY_ARGUMENT_HELP)
@admin_options
@click.argument("ident", metavar="KEY")
@click.option("--name", help="Rename it.")
@click.option("--budget", type=click.IntRange(min=0), help="Set the token budget.")
@click.option("--unlimited", is_flag=True, help="Remove the token budget.")
@click.option("--reset-usage", is_flag=True, help="Start counting used tokens from zero.")
@_policy_options
@click.option("--all-models", is_flag=True, help="Allow every model again.")
@click.option("--no-rpm", is_flag=True, help="Remove the requests-per-minute limit.")
@click.option("--no-tpm", is_flag=True, help="Remove the tokens-per-minute limit.")
@click.pass_context
def key_update(
    ctx: click.Context,
    ident: str,
    name: str | None,
    budget: int | None,
    unlimited: bool,
    reset_usage: bool,
    allowed_models: tuple[str, ...],
    expires_at: str | Clear | None,
    rpm: Limit,
    tpm: Limit,
    budget_period: str | Clear | None,
    cost_budget: float | Clear | None,
    all_models: bool,
    no_rpm: bool,
    no_tpm: bool,
) -> None:
    """Change a key's name, budgets or policies, or reset its usage.

    --allowed-model replaces the list of allowed models.
    """
    exclusive(ctx, budget=budget is not None, unlimited=unlimited)
    exclusive(ctx, allowed_model=bool(allowed_models), all_models=all_models)
    exclusive(ctx, rpm=rpm is not None, no_rpm=no_rpm)
    exclusive(ctx, tpm=tpm is not None, no_tpm=no_tpm)
    body: dict[str, Any] = given_values(name=name, token_budget=budget)
    body.update(
        _policy_body(
            allowed_models,
            expires_at,
            NONE if no_rpm else rpm,
            NONE if no_tpm else tpm,
            budget_period,
            cost_budget,
        )
    )
    if unlimited:
        body["token_budget"] = None
    if all_models:
        body["allowed_models"] = None
    if reset_usage:
        body["reset_usage"] = True
    require_change(
        ctx,
        body,
        "--name, --budget, --unlimited, --reset-usage, --allowed-model, --all-models, "
        "--expires-at, --rpm, --no-rpm, --tpm, --no-tpm, --budget-period, --cost-budget",
    )
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
