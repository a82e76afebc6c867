"""The in-process caches the hot path reads: user keys by hash, routes by model name.

Warmed from the database at start and kept current by the admin services (in this process
before the admin call returns; in other processes through change notices). The proxy never
queries the database in steady state.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.db.tables import model_deployments, model_fallbacks, models, providers, user_keys
from llm_gateway.limits.periods import bounds, next_start
from llm_gateway.limits.policy import KeyPolicy, policy_from_row
from llm_gateway.routing.table import Deployment, ModelRoute, group_by_priority
from llm_gateway.security import SecretBox
from llm_gateway.upstream.kinds import KINDS

if TYPE_CHECKING:
    from llm_gateway.state.usage import Pending


@dataclass(slots=True)
class KeyEntry:
    id: uuid.UUID
    name: str
    key_hash: str
    token_budget: int | None
    tokens_used: int  # database value plus usage this process has counted since
    reserved: int = 0  # estimated cost of this process's requests in flight for the key
    usage_generation: int = 0  # the last usage reset, ms since 1970 (0: never reset)
    policy: KeyPolicy | None = None  # None: no policy at all (the common, fastest case)
    cost_used: int = 0  # nano-USD, counted like tokens_used
    cost_reserved: int = 0  # expected cost of this process's calls in flight (cost budgets)
    period: datetime | None = None  # the budget period the counts belong to (its start)
    period_ends: float = math.inf  # unix seconds: the counts start again from zero
    current: bool = True  # False once the cache has replaced or dropped this entry

    def exhausted(self) -> bool:
        if self.token_budget is not None and self.tokens_used + self.reserved >= self.token_budget:
            return True
        policy = self.policy
        return (
            policy is not None
            and policy.cost_budget is not None
            and self.cost_used + self.cost_reserved >= policy.cost_budget
        )

    def roll(self, now: float) -> None:
        """Move to the budget period `now` falls in, its counts from zero.

        Calls in flight keep their reservations and are charged to the period they end in.
        """
        policy = self.policy
        if policy is None or policy.budget_period is None:
            return
        start, end = bounds(policy.budget_period, datetime.fromtimestamp(now, UTC))
        if self.period is None or start > self.period:
            self.tokens_used = self.cost_used = 0
            self.period = start
        self.period_ends = end.timestamp()


def _entry(row: Any, pending: Pending | None, previous: KeyEntry | None, now: datetime) -> KeyEntry:
    """A cache entry from a database row; reservations of calls in flight carry over.

    With a budget period, the row's counts hold only if they belong to the current period;
    counts of an older period are over (a new period starts from zero).
    """
    reset_at = row.usage_reset_at
    policy = policy_from_row(row)
    tokens, cost = row.tokens_used, row.cost_used_nanousd
    period: datetime | None = None
    ends = math.inf
    if policy is not None and policy.budget_period is not None:
        period, end = bounds(policy.budget_period, now)
        stored = row.period_started_at
        if stored is None or stored < period:
            tokens = cost = 0
        elif stored > period:  # this clock lags the process that charged it
            period, end = stored, next_start(policy.budget_period, stored)
        ends = end.timestamp()
    if pending is not None and pending.period == period:
        tokens += pending.tokens
        cost += pending.cost
    return KeyEntry(
        id=row.id,
        name=row.name,
        key_hash=row.key_hash,
        token_budget=row.token_budget,
        tokens_used=tokens,
        reserved=previous.reserved if previous is not None else 0,
        usage_generation=0 if reset_at is None else int(reset_at.timestamp() * 1000),
        policy=policy,
        cost_used=cost,
        cost_reserved=previous.cost_reserved if previous is not None else 0,
        period=period,
        period_ends=ends,
    )


class Cache:
    def __init__(self, box: SecretBox, clock: Callable[[], float]) -> None:
        self._box = box
        self.clock = clock
        self.keys: dict[str, KeyEntry] = {}
        self._hash_by_id: dict[uuid.UUID, str] = {}
        self.routes: dict[str, ModelRoute] = {}
        self.hits = 0
        self.misses = 0

    # keys -------------------------------------------------------------------------------
    def lookup_key(self, key_hash: str) -> KeyEntry | None:
        entry = self.keys.get(key_hash)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def key_by_id(self, key_id: uuid.UUID) -> KeyEntry | None:
        key_hash = self._hash_by_id.get(key_id)
        return None if key_hash is None else self.keys.get(key_hash)

    def current(self, entry: KeyEntry) -> KeyEntry | None:
        """The entry that now stands for `entry`'s key (itself, unless replaced or dropped):
        a call ends on the entry it began with, without a lookup, in the usual case."""
        return entry if entry.current else self.key_by_id(entry.id)

    def put_key(self, row: Any, pending: Pending | None = None) -> None:
        """Insert or replace a key from its database row (dropping it when inactive)."""
        old = self.key_by_id(row.id)
        self.drop_key(row.id)
        if not row.is_active:
            return
        self.keys[row.key_hash] = _entry(row, pending, old, self._now())
        self._hash_by_id[row.id] = row.key_hash

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def drop_key(self, key_id: uuid.UUID) -> None:
        old_hash = self._hash_by_id.pop(key_id, None)
        if old_hash is not None:
            old = self.keys.pop(old_hash, None)
            if old is not None:
                old.current = False

    async def load_keys(self, conn: AsyncConnection, pending: Mapping[uuid.UUID, Pending]) -> None:
        result = await conn.execute(sa.select(user_keys).where(user_keys.c.is_active))
        keys: dict[str, KeyEntry] = {}
        by_id: dict[uuid.UUID, str] = {}
        now = self._now()
        for row in result:
            keys[row.key_hash] = _entry(row, pending.get(row.id), self.key_by_id(row.id), now)
            by_id[row.id] = row.key_hash
        previous, self.keys, self._hash_by_id = self.keys, keys, by_id
        for old in previous.values():
            old.current = False

    async def reload_key(
        self, conn: AsyncConnection, key_id: uuid.UUID, pending: Pending | None = None
    ) -> None:
        row = (await conn.execute(sa.select(user_keys).where(user_keys.c.id == key_id))).first()
        if row is None:
            self.drop_key(key_id)
        else:
            self.put_key(row, pending)

    # routes -----------------------------------------------------------------------------
    async def load_routes(self, conn: AsyncConnection) -> None:
        """Rebuild the routing table: active models with their active providers' deployments."""
        query = (
            sa.select(
                model_deployments.c.id,
                model_deployments.c.model_id,
                model_deployments.c.provider_model_name,
                model_deployments.c.weight,
                model_deployments.c.priority,
                providers.c.id.label("provider_id"),
                providers.c.name.label("provider_name"),
                providers.c.kind,
                providers.c.base_url,
                providers.c.api_key,
            )
            .join(providers, model_deployments.c.provider_id == providers.c.id)
            .where(providers.c.is_active)
            .order_by(model_deployments.c.model_id, model_deployments.c.position)
        )
        names = {
            row.id: row for row in await conn.execute(sa.select(models).where(models.c.is_active))
        }
        served: dict[uuid.UUID, list[Deployment]] = {}
        for row in await conn.execute(query):
            model = names.get(row.model_id)
            if model is None:
                continue
            upstream = row.provider_model_name
            kind = KINDS.get(row.kind) or KINDS["openai_compatible"]
            served.setdefault(row.model_id, []).append(
                Deployment(
                    id=row.id,
                    provider_id=row.provider_id,
                    provider_name=row.provider_name,
                    provider_kind=row.kind,
                    kind=kind,
                    base_url=row.base_url.rstrip("/") + kind.path_prefix,
                    auth_headers=kind.auth_headers(self._box.decrypt(row.api_key)),
                    upstream_model=upstream or model.name,
                    weight=row.weight,
                    priority=row.priority,
                )
            )
        fallbacks: dict[uuid.UUID, list[str]] = {}
        query_fallbacks = sa.select(model_fallbacks).order_by(
            model_fallbacks.c.model_id, model_fallbacks.c.position
        )
        for row in await conn.execute(query_fallbacks):
            fallback = names.get(row.fallback_id)
            if fallback is not None:
                fallbacks.setdefault(row.model_id, []).append(fallback.name)
        routes: dict[str, ModelRoute] = {}
        for model_id, deployments in served.items():
            model = names[model_id]
            routes[model.name] = ModelRoute(
                model_id=model_id,
                model_name=model.name,
                tiers=group_by_priority(deployments),
                fallbacks=tuple(fallbacks.get(model_id, ())),
                input_coefficient=model.input_token_coefficient,
                output_coefficient=model.output_token_coefficient,
                created=int(model.created_at.timestamp()),
                max_output_tokens=model.max_output_tokens,
                input_price=model.input_price_per_million,
                cached_input_price=model.cached_input_price_per_million,
                output_price=model.output_price_per_million,
            )
        self.routes = routes
