"""`llm-gateway models import-prices FILE`: model prices from a LiteLLM price file.

The file is read here and sent to the gateway, which matches its entries to the models by
the names their providers know them by (see services/prices.py). Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from llm_gateway.cli_admin.models import models
from llm_gateway.cli_admin.options import admin_client, admin_options, wants_json
from llm_gateway.cli_admin.output import Column, emit, field

PRICE_COLUMNS: list[Column] = [
    field("model"),
    field("matched"),
    ("input $/M", lambda row: row.get("input_price_per_million")),
    ("cached input $/M", lambda row: row.get("cached_input_price_per_million")),
    ("output $/M", lambda row: row.get("output_price_per_million")),
]


@models.command("import-prices")
@admin_options
@click.argument(
    "path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--dry-run", is_flag=True, help="Show what would be set; change nothing.")
@click.pass_context
def import_prices(ctx: click.Context, path: Path, dry_run: bool) -> None:
    """Set model prices from FILE, in LiteLLM's model_prices_and_context_window.json layout.

    Each model is matched by its provider-side name (then its own name), as it is, with the
    provider's prefix (`deepseek/...`) and without the one it carries.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict):
        raise click.ClickException(
            f"{path} is not a price file: expected a JSON object of model names"
        )
    query = "?dry_run=true" if dry_run else ""
    result = admin_client(ctx).call("POST", f"/admin/models/import-prices{query}", document)
    unmatched = result.get("unmatched") or []
    verb = "would be priced" if dry_run else "priced"
    note = f"{len(result.get('updated') or [])} models {verb}"
    if unmatched:
        note += f"; no entry for: {', '.join(unmatched)}"
    if wants_json(ctx):
        click.echo(json.dumps(result, indent=2))
        return
    emit(ctx, result.get("updated") or [], PRICE_COLUMNS, note=note)
