"""Everything a running gateway holds, opened by the lifespan and read by the handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llm_gateway.limits.local import LocalLimiter
from llm_gateway.loop_lag import LoopLag
from llm_gateway.proxy.auth import FailedAuthThrottle

if TYPE_CHECKING:
    import aiohttp

    from llm_gateway.limits.shared import SharedLimiter
    from llm_gateway.metrics import Metrics
    from llm_gateway.settings import Config
    from llm_gateway.state.bus import ChangeBus
    from llm_gateway.state.log_writer import LogWriter
    from llm_gateway.state.shared_budget import SharedBudget
    from llm_gateway.state.store import Store


@dataclass
class Runtime:
    config: Config
    store: Store | None = None
    session: aiohttp.ClientSession | None = None
    log_writer: LogWriter | None = None
    metrics: Metrics | None = None
    bus: ChangeBus | None = None
    shared_budget: SharedBudget | None = None
    # Rate limits: in Redis when configured (with this process's share as fallback), else here.
    shared_limits: SharedLimiter | None = None
    local_limits: LocalLimiter = field(default_factory=LocalLimiter)
    warm: bool = False
    loop_lag: LoopLag = field(default_factory=LoopLag)
    auth_throttle: FailedAuthThrottle = field(default_factory=lambda: FailedAuthThrottle(0))
