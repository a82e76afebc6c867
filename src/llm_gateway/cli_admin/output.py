"""Printing answers: a table for people, the API's JSON for scripts (`--json`).

A column whose field no row has (a gateway older than the field) is left out of the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llm_gateway.cli_admin.options import wants_json

Row = dict[str, Any]
TIMES = "\u00d7"  # the multiplication sign, as in `openai-main` TIMES 3: a weight of 3
Column = tuple[str, Callable[[Row], Any]]
ABSENT = object()  # a cell whose field the row does not have
MAX_WORD = 40  # a longer word in a cell may be folded over lines
MIN_WIDTH = 160  # tables are laid out for at least this many columns of text


def field(name: str) -> Column:
    return name, lambda row: row.get(name)


def optional(header: str, name: str, show: Callable[[Any], Any] = lambda value: value) -> Column:
    """A column of one field, shown through `show`; ABSENT where the row lacks the field."""
    return header, lambda row: show(row[name]) if name in row else ABSENT


def usd(value: Any) -> str:
    """`$12.50`, `$0.000123`: cents at least, and every digit the amount has (up to 8)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    exponent = amount.normalize().as_tuple().exponent
    places = min(max(2, -exponent if isinstance(exponent, int) else 2), 8)
    return f"${amount:,.{places}f}"


def instant(value: Any) -> str:
    """An API time as `2030-01-31T18:00Z` (UTC, to the minute)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _expired(row: Row) -> bool:
    try:
        moment = datetime.fromisoformat(str(row.get("expires_at")))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= datetime.now(UTC)


def _key_status(row: Row) -> str:
    if not row.get("is_active", True):
        return "revoked"
    return "expired" if row.get("expires_at") and _expired(row) else "active"


def _expiry(value: Any) -> str:
    return instant(value) if value else "never"


def _rates(row: Row) -> Any:
    if "rpm_limit" not in row and "tpm_limit" not in row:
        return ABSENT
    limits = [
        f"{row[name]} {unit}"
        for name, unit in (("rpm_limit", "rpm"), ("tpm_limit", "tpm"))
        if row.get(name) is not None
    ]
    return ", ".join(limits) or "none"


def _used(used: Any, limit: Any, show: Callable[[Any], str]) -> str:
    return f"{show(used or 0)}/{'unlimited' if limit is None else show(limit)}"


def _spend(row: Row) -> Any:
    if "cost_used_usd" not in row and "cost_budget_usd" not in row:
        return ABSENT
    return _used(row.get("cost_used_usd"), row.get("cost_budget_usd"), usd)


def _resets(row: Row) -> Any:
    if "budget_period" not in row:
        return ABSENT
    period = row["budget_period"]
    if not period:
        return "never"
    resets = row.get("budget_resets_at")
    return f"{period}\n{instant(resets)}" if resets else str(period)  # the period, its next start


PROVIDER_COLUMNS = [
    field(name) for name in ("id", "name", "kind", "base_url", "api_key_preview", "is_active")
]
KEY_COLUMNS: list[Column] = [
    field("id"),
    field("name"),
    field("key_prefix"),
    ("status", _key_status),
    optional("models", "allowed_models", lambda names: ", ".join(names) if names else "all"),
    optional("expires", "expires_at", _expiry),
    ("rate_limits", _rates),
    ("tokens", lambda row: _used(row.get("tokens_used"), row.get("token_budget"), str)),
    ("spend", _spend),
    ("resets", _resets),
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


PRICES = {
    "input_price_per_million": "in",
    "cached_input_price_per_million": "cached in",
    "output_price_per_million": "out",
}


def _prices(model: Row) -> Any:
    if not any(name in model for name in PRICES):
        return ABSENT
    shown = [f"{label} {usd(model[n])}" for n, label in PRICES.items() if model.get(n) is not None]
    return ", ".join(shown) or "-"  # not priced


MODEL_COLUMNS: list[Column] = [
    field("id"),
    field("name"),
    ("deployments", _deployments_summary),
    ("fallbacks", _fallbacks),
    ("health", _health),
    field("is_active"),
    ("in_coef", lambda row: row.get("input_token_coefficient")),
    ("out_coef", lambda row: row.get("output_token_coefficient")),
    ("per_1m", _prices),  # USD per million tokens
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
    # Text: names are never read as markup
    return Text("" if value is None or value is ABSENT else str(value))


def _widths(headers: list[str], cells: list[list[Text]], room: int) -> list[int]:
    """Column widths (without padding): each column's longest line where they fit in `room`,
    else the widest columns narrowed, wrapping between words only (an id or a time is never
    cut), down to their longest word (at most MAX_WORD)."""
    columns = [
        [text for row in cells for text in row[i].plain.splitlines()] for i in range(len(headers))
    ]
    natural = [
        max([len(header), *map(len, lines)]) for header, lines in zip(headers, columns, strict=True)
    ]
    least = [
        min(width, max([len(header), *(min(len(w), MAX_WORD) for t in lines for w in t.split())]))
        for header, lines, width in zip(headers, columns, natural, strict=True)
    ]
    widths = list(natural)
    while sum(widths) > room:
        shrinkable = [i for i, width in enumerate(widths) if width > least[i]]
        if not shrinkable:
            break
        widths[max(shrinkable, key=lambda i: widths[i])] -= 1
    return widths


def emit(
    ctx: click.Context, data: Row | Sequence[Row], columns: list[Column], note: str = ""
) -> None:
    """Print one row or a list of rows."""
    if wants_json(ctx):
        click.echo(json.dumps(data, indent=2))
        return
    rows = [data] if isinstance(data, dict) else list(data)
    if rows:
        columns = [(h, get) for h, get in columns if any(get(row) is not ABSENT for row in rows)]
    headers = [header for header, _ in columns]
    cells = [[_cell(get(row)) for _, get in columns] for row in rows]
    console = Console(width=max(MIN_WIDTH, Console().width))
    widths = _widths(headers, cells, console.width - 3 * len(headers) - 1)
    console.width = max(console.width, sum(widths) + 3 * len(headers) + 1)
    table = Table()
    for header, width in zip(headers, widths, strict=True):
        table.add_column(header, width=width, overflow="fold")
    for line in cells:
        table.add_row(*line)
    console.print(table)
    if note:
        console.print(note)


def done(ctx: click.Context, message: str) -> None:
    """Print the outcome of a call that answers with no body."""
    click.echo("null" if wants_json(ctx) else message)
