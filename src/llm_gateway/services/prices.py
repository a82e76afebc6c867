"""Model prices from a price file in LiteLLM's `model_prices_and_context_window.json` layout.

The file maps model names to entries with USD prices per token (`input_cost_per_token`,
`output_cost_per_token`, `cache_read_input_token_cost`) and the provider they are for
(`litellm_provider`). Names come bare (`gpt-4o`) or with the provider first
(`deepseek/deepseek-chat`, `openrouter/openai/gpt-4o`). A model matches by the name its
provider knows it by: each deployment's provider-side name, in the order the router tries them,
then the public name; each tried as it is, with the provider's LiteLLM prefix, and without the
prefix it carries. The file is read from what the caller sends: nothing is fetched.

`read_price_file` and `match` are pure; `import_prices` writes what matched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from llm_gateway.db.tables import model_deployments, models, providers, utcnow
from llm_gateway.errors import BadRequest
from llm_gateway.state.store import Store

# Our provider kinds -> the prefixes LiteLLM files their models under.
LITELLM_PREFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "openrouter": ("openrouter",),
    "deepseek": ("deepseek",),
    "gemini": ("gemini",),
    "anthropic": ("anthropic",),
    "azure": ("azure",),
    "dashscope": ("dashscope",),
    "ark": ("volcengine",),
    "openai_compatible": (),
}
_NO_OUTPUT_MODES = frozenset({"embedding", "moderation", "rerank"})


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens."""

    input: float | None
    cached_input: float | None
    output: float | None


def read_price_file(document: Any) -> dict[str, Prices]:
    """The priced entries of a price file, by name (entries without prices are left out)."""
    if not isinstance(document, dict):
        raise ValueError("a price file is a JSON object mapping model names to their entries")
    found: dict[str, Prices] = {}
    for name, entry in document.items():
        if not isinstance(name, str) or not isinstance(entry, dict) or name == "sample_spec":
            continue
        input_price = _per_million(entry.get("input_cost_per_token"))
        output_price = _per_million(entry.get("output_cost_per_token"))
        if input_price is None:
            continue
        if output_price is None:
            if entry.get("mode") not in _NO_OUTPUT_MODES:
                continue
            output_price = 0.0
        cached = _per_million(entry.get("cache_read_input_token_cost"))
        found[name] = Prices(input_price, cached, output_price)
    return found


def candidates(name: str, kind: str) -> list[str]:
    """The names a model called `name` by a provider of `kind` may have in a price file."""
    names = [name, *(f"{prefix}/{name}" for prefix in LITELLM_PREFIXES.get(kind, ()))]
    if "/" in name:
        names += [name.split("/", 1)[1], name.rsplit("/", 1)[1]]
    return list(dict.fromkeys(names))


def match(
    names: Iterable[tuple[str, str]], prices: Mapping[str, Prices]
) -> tuple[str, Prices] | None:
    """The first entry matching one of (name, provider kind), tried in order."""
    for name, kind in names:
        for candidate in candidates(name, kind):
            found = prices.get(candidate)
            if found is not None:
                return candidate, found
    return None


def _per_million(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(f"{value * 1_000_000:.12g}")  # 2.5e-06 per token -> 2.5, not 2.5000000000000004


# writing them ------------------------------------------------------------------------------------
async def import_prices(store: Store, document: Any, dry_run: bool = False) -> dict[str, Any]:
    """Set the prices of every model the file has an entry for; report what matched."""
    try:
        prices = read_price_file(document)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    names: dict[uuid.UUID, str] = {}
    tried: dict[uuid.UUID, list[tuple[str, str]]] = {}
    query = (
        sa.select(
            models.c.id,
            models.c.name,
            model_deployments.c.provider_model_name,
            providers.c.kind,
        )
        .join(model_deployments, model_deployments.c.model_id == models.c.id)
        .join(providers, model_deployments.c.provider_id == providers.c.id)
        .order_by(models.c.name, model_deployments.c.priority, model_deployments.c.position)
    )
    updated: list[dict[str, Any]] = []
    unmatched: list[str] = []
    async with store.engine.begin() as conn:
        for row in await conn.execute(query):
            names[row.id] = row.name
            tried.setdefault(row.id, []).append((row.provider_model_name or row.name, row.kind))
        for model_id, name in names.items():
            kinds = tried[model_id]
            found = match([*kinds, (name, kinds[0][1])], prices)
            if found is None:
                unmatched.append(name)
                continue
            entry, price = found
            values = {
                "input_price_per_million": price.input,
                "cached_input_price_per_million": price.cached_input,
                "output_price_per_million": price.output,
            }
            updated.append({"model": name, "matched": entry, **values})
            if not dry_run:
                await conn.execute(
                    sa.update(models)
                    .where(models.c.id == model_id)
                    .values(**values, updated_at=utcnow())
                )
    if updated and not dry_run:
        await store.reload_routes()
        await store.changed("routes", "prices")
    return {"updated": updated, "unmatched": unmatched, "dry_run": dry_run}
