"""Printing answers: a table for people, the API's JSON for scripts (`--json`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llm_gateway.cli_admin.options import wants_json

Row = dict[str, Any]
TIMES = "\u00d7"  # the multiplication sign, as in `openai-main` TIMES 3: a weight of 3
Column = tuple[str, Callable[[Row], Any]]


def field(name: str) -> Column:
    return name, lambda row: row.get(name)


PROVIDER_COLUMNS = [
    field(name) for name in ("id", "name", "kind", "base_url", "api_key_preview", "is_active")
]
KEY_COLUMNS = [
    field(name) for name in ("id", "name", "key_prefix", "is_active", "token_budget", "tokens_used")
]


def deployments_of(model: Row) -> list[Row]:
    """The model's deployments; a gateway without them describes its one provider at the top."""
    deployments = model.get("deployments")
    if isinstance(deployments, list):
        return deployments
    return [
        {
            "provider_id": model.get("provider_id"),
            "provider_name": model.get("provider_name"),
            "provider_model_name": model.get("provider_model_name"),
        }
    ]


def deployment_label(deployment: Row, model_name: str | None = None) -> str:
    """`provider[:upstream-name][xWEIGHT][(pN)]`; the upstream name only when it differs."""
    label = str(deployment.get("provider_name") or deployment.get("provider_id"))
    upstream = deployment.get("provider_model_name")
    if upstream and upstream != model_name:
        label += f":{upstream}"
    if deployment.get("weight", 1) != 1:
        label += f"{TIMES}{deployment['weight']}"
    if deployment.get("priority", 0):
        label += f"(p{deployment['priority']})"
    return label


def _deployments_summary(model: Row) -> str:
    return ", ".join(deployment_label(d, model.get("name")) for d in deployments_of(model))


def _health(model: Row) -> str:
    if not isinstance(model.get("deployments"), list):
        return ""
    cooling = [
        deployment_label(d, model.get("name"))
        for d in model["deployments"]
        if d.get("status") == "cooling"
    ]
    return f"cooling: {', '.join(cooling)}" if cooling else "healthy"


def _fallbacks(model: Row) -> str:
    return ", ".join(str(name) for name in model.get("fallbacks") or [])


MODEL_COLUMNS: list[Column] = [
    field("id"),
    field("name"),
    ("deployments", _deployments_summary),
    ("fallbacks", _fallbacks),
    ("health", _health),
    field("is_active"),
    ("in_coef", lambda row: row.get("input_token_coefficient")),
    ("out_coef", lambda row: row.get("output_token_coefficient")),
]


def _error_text(deployment: Row) -> str:
    error = " ".join(str(deployment.get("last_error") or "").split())
    return error if len(error) <= 80 else error[:79] + "…"


DEPLOYMENT_COLUMNS: list[Column] = [
    field("id"),
    ("provider", lambda row: row.get("provider_name") or row.get("provider_id")),
    field("provider_model_name"),
    field("weight"),
    field("priority"),
    field("status"),
    field("cooling_until"),
    ("last_error", _error_text),
]


def _cell(value: Any) -> Text:
    return Text("" if value is None else str(value))  # Text: names are never read as markup


def emit(
    ctx: click.Context, data: Row | Sequence[Row], columns: list[Column], note: str = ""
) -> None:
    """Print one row or a list of rows."""
    if wants_json(ctx):
        click.echo(json.dumps(data, indent=2))
        return
    rows = [data] if isinstance(data, dict) else list(data)
    table = Table()
    for header, _ in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*(_cell(get(row)) for _, get in columns))
    console = Console(width=max(160, Console().width))
    console.print(table)
    if note:
        console.print(note)


def done(ctx: click.Context, message: str) -> None:
    """Print the outcome of a call that answers with no body."""
    click.echo("null" if wants_json(ctx) else message)
