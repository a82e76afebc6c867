"""The handle services work through: database engine, caches, usage ledger, secret box."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.clock import Clock
from llm_gateway.routing.health import Health
from llm_gateway.security import SecretBox
from llm_gateway.state.cache import Cache
from llm_gateway.state.usage import UsageLedger

ChangeListener = Callable[[str, str], Awaitable[None]]


@dataclass
class Store:
    engine: AsyncEngine
    cache: Cache
    ledger: UsageLedger
    box: SecretBox
    health: Health = field(default_factory=Health)  # deployment cooldowns, read on every pick
    # Expiry, budget periods and rate windows read this clock (tests move it forward).
    clock: Clock = field(default_factory=Clock)
    # Called after every committed admin change with (kind, id); the Redis bus fans it out.
    listeners: list[ChangeListener] = field(default_factory=list)

    async def changed(self, kind: str, ident: str) -> None:
        for listener in self.listeners:
            await listener(kind, ident)

    async def resync(self) -> None:
        """Reload every key and route from the database (the source of truth)."""
        async with self.ledger.lock, self.engine.connect() as conn:
            await self.cache.load_keys(conn, self.ledger.pending)
            await self.cache.load_routes(conn)

    async def reload_routes(self) -> None:
        async with self.engine.connect() as conn:
            await self.cache.load_routes(conn)
