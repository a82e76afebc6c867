"""Open every resource in order at start and close them in reverse at stop.

Start: database (migrations, retried with a bounded wait), caches warmed, upstream client,
request-log writer, usage flusher, periodic jobs, then the Redis bus when configured.
Stop (after the server has stopped accepting and let open requests finish): background jobs
cancelled, usage and request logs flushed, pools closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.clock import Clock
from llm_gateway.db.engine import create_engine
from llm_gateway.db.migrate import run_migrations
from llm_gateway.limits.shared import SharedLimiter
from llm_gateway.metrics import Metrics
from llm_gateway.routing.health import Health
from llm_gateway.runtime import Runtime
from llm_gateway.security import SecretBox
from llm_gateway.services.partitions import ensure_partitions
from llm_gateway.services.retention import run_retention
from llm_gateway.services.secrets import encrypt_plaintext_keys
from llm_gateway.settings import Config
from llm_gateway.state.bus import ChangeBus
from llm_gateway.state.cache import Cache
from llm_gateway.state.log_writer import LogWriter
from llm_gateway.state.shared_budget import SharedBudget
from llm_gateway.state.store import Store
from llm_gateway.state.usage import UsageLedger
from llm_gateway.upstream.client import Timeouts, create_session

log = logging.getLogger("llm_gateway")


async def connect_and_migrate(config: Config, engine: AsyncEngine) -> None:
    """Run migrations, retrying while the database is unreachable, up to a bounded wait."""
    deadline = time.monotonic() + config.startup_timeout
    delay = 0.5
    while True:
        try:
            await run_migrations(engine, config.sqlite_path)
            return
        except (OSError, TimeoutError, ConnectionError) as exc:
            reason = type(exc).__name__
        except Exception as exc:
            if "connect" not in str(type(exc)).lower() and "Operational" not in type(exc).__name__:
                raise
            reason = type(exc).__name__
        if time.monotonic() + delay > deadline:
            raise RuntimeError(
                f"database unreachable after {config.startup_timeout:.0f}s ({reason})"
            )
        log.warning("database unreachable (%s); retrying in %.1fs", reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def read_state(runtime: Runtime) -> dict[str, float]:
    store, writer, bus = runtime.store, runtime.log_writer, runtime.bus
    state: dict[str, float] = {"event_loop_lag_seconds": runtime.loop_lag.take()}
    if runtime.metrics is not None:
        state["overhead_p99_seconds"] = runtime.metrics.overhead_p99()
    if store is not None:
        state["key_cache_hits"] = store.cache.hits
        state["key_cache_misses"] = store.cache.misses
        state["cached_keys"] = len(store.cache.keys)
        state["cached_routes"] = len(store.cache.routes)
        state["usage_pending_keys"] = len(store.ledger.pending)
    if writer is not None:
        state["log_queue_depth"] = writer.depth
        state["log_rows_dropped"] = writer.dropped
        state["log_rows_written"] = writer.written
        state["database_up"] = 1.0 if writer.healthy else 0.0
    if bus is not None:
        state["redis_up"] = 1.0 if bus.connected else 0.0
    shared = runtime.shared_budget
    if shared is not None:
        state["budget_shared_asked"] = shared.asked
        state["budget_shared_refused"] = shared.refused
        state["budget_shared_failed"] = shared.failed
    limits = runtime.shared_limits
    if limits is not None:
        state["rate_limit_local_share"] = limits.local_share
        state["rate_limit_processes"] = limits.processes
        state["rate_limit_redis_failed"] = limits.failed
    else:
        state["rate_limit_local_share"] = 1.0  # one process: every limit is kept here
    return state


def read_cooldowns(store: Store) -> list[tuple[str, str, str, float]]:
    now = store.health.clock()
    return [
        (
            route.model_name,
            deployment.provider_name,
            str(deployment.id),
            max(0.0, store.health.cooling_until(deployment.id) - now),
        )
        for route in store.cache.routes.values()
        for deployment in route.deployments()
    ]


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    config = runtime.config
    engine = create_engine(config.database_url)
    tasks: list[asyncio.Task[None]] = []

    def background(coro: Coroutine[Any, Any, None], name: str) -> None:
        tasks.append(asyncio.create_task(coro, name=name))

    try:
        await connect_and_migrate(config, engine)
        await ensure_partitions(engine)  # today's and the next days' request-log partitions
        box = SecretBox(config.secret_key)
        encrypted = await encrypt_plaintext_keys(engine, box)
        if encrypted:
            log.info("encrypted %d provider keys that were stored in plaintext", encrypted)
        clock = Clock()
        cache = Cache(box, clock)
        health = Health(config.cooldown_failures, config.cooldown_seconds)
        store = Store(
            engine=engine,
            cache=cache,
            ledger=UsageLedger(cache),
            box=box,
            health=health,
            clock=clock,
        )
        async with engine.connect() as conn:
            await cache.load_keys(conn, {})
            await cache.load_routes(conn)
        runtime.store = store
        runtime.session = create_session(Timeouts(config.connect_timeout, config.read_timeout))
        runtime.log_writer = LogWriter(engine)
        runtime.metrics = Metrics(lambda: read_state(runtime), lambda: read_cooldowns(store))
        if runtime.metrics.multiprocess:
            background(runtime.metrics.run_flusher(), "metrics-flusher")
        background(runtime.log_writer.run(), "request-log-writer")
        background(runtime.loop_lag.run(), "event-loop-lag")
        background(store.ledger.run_flusher(engine, config.usage_flush_seconds), "usage-flusher")
        # Also with a retention of 0 (keep for ever): the job makes the partitions ahead.
        background(run_retention(engine, config.log_retention_days), "log-retention")
        if config.redis_url:
            runtime.bus = ChangeBus(config.redis_url, store, config.resync_seconds)
            await runtime.bus.start()
            runtime.shared_budget = SharedBudget(
                runtime.bus, config.connect_timeout + config.read_timeout
            )
            runtime.shared_limits = SharedLimiter(runtime.bus)
            runtime.shared_limits.start()
        else:
            background(_periodic_resync(store, config.resync_seconds), "cache-resync")
        runtime.warm = True
        if config.settle_gc:
            _settle_garbage_collector()
        log.info("ready: %d keys, %d routes cached", len(cache.keys), len(cache.routes))
        yield
    finally:
        runtime.warm = False
        if runtime.shared_budget is not None:
            await runtime.shared_budget.drain()
        if runtime.shared_limits is not None:
            await runtime.shared_limits.stop()
        if runtime.bus is not None:
            await runtime.bus.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if runtime.store is not None:
            try:
                await runtime.store.ledger.flush(engine)
            except Exception as exc:
                log.error("usage could not be flushed at shutdown: %s", type(exc).__name__)
        if runtime.log_writer is not None:
            await runtime.log_writer.close()
        if runtime.metrics is not None:  # last: data first, and nothing after it to skip
            runtime.metrics.flush()
        if runtime.session is not None:
            await runtime.session.close()
        await engine.dispose()


def _settle_garbage_collector() -> None:
    """Keep the collector off the hot path: what start-up built lives as long as the process, so
    it is moved out of the collector's view (`gc.freeze`), and the youngest generation is
    collected every 20,000 allocations instead of 700. Measured: 25-30 µs less CPU per request
    (of about 200), most of it from full collections walking the start-up objects."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


async def _periodic_resync(store: Store, interval: float) -> None:
    """Reload keys and routes from the database, repairing anything a change notice missed."""
    while True:
        await asyncio.sleep(interval)
        try:
            await store.resync()
        except Exception as exc:
            log.warning("cache resync failed: %s", type(exc).__name__)
