"""What each row is: its name for `--rows`, its label, what it loads, and the rows it is compared
with. The services behind the rows (`Lab`) start when a selected row first needs them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.servers import run_postgres, run_redis

from bench.admin import Features, configure_features, configure_gateway
from bench.bodies import chat_request, embeddings_request, responses_request
from bench.load import Row, Target, measure, paired_ratios
from bench.servers import (
    FLOOR_KEY,
    GATEWAY_CORE,
    LOAD_CORE,
    Harness,
    Proc,
    mock_block,
    nginx,
    pin,
    proxy_block,
    start_drip,
    start_floor,
    start_gateway,
)

CHAT, EMBEDDINGS, RESPONSES = "/v1/chat/completions", "/v1/embeddings", "/v1/responses"


@dataclass
class Gateway:
    proc: Proc
    url: str
    key: str
    features: Features | None = None


class Lab:
    """The running services: the nginx mock from the start, the rest on first use. The Python
    floor and the gateways share GATEWAY_CORE, so each is stopped before the next starts."""

    def __init__(self, h: Harness, floor_path: Path, stack: contextlib.ExitStack) -> None:
        self.h, self.floor_path, self.stack = h, floor_path, stack
        self.mock = nginx(h, "mock", LOAD_CORE, mock_block(h.workdir))
        self._proxy: int | None = None
        self._drip: int | None = None
        self._floor: tuple[Proc, str] | None = None
        self._gateway: Gateway | None = None
        self._production: Gateway | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.mock}{path}"

    def proxy(self) -> int:
        if self._proxy is None:
            self._proxy = nginx(self.h, "nginx-proxy", GATEWAY_CORE, proxy_block(self.mock))
        return self._proxy

    def drip(self) -> int:
        if self._drip is None:
            self._drip = start_drip(self.h)
        return self._drip

    def floor(self) -> tuple[Proc, str]:
        if self._floor is None:
            routes = {m: self.url(f"/{p}/v1") for m, p in FLOOR_ROUTES.items()}
            self._floor = start_floor(self.h, self.floor_path, routes)
        return self._floor

    def gateway(self) -> Gateway:
        if self._gateway is None:
            self.release()
            proc, url = start_gateway(self.h, "gateway", {})
            key = configure_gateway(url, self.mock, self.drip())
            self._gateway = Gateway(proc, url, key, configure_features(url, self.mock))
        return self._gateway

    def production(self) -> Gateway:
        if self._production is None:
            self.release()
            pg = self.stack.enter_context(run_postgres())
            redis = self.stack.enter_context(run_redis())
            # Off the gateway's core, as the mock is: in production they run elsewhere.
            for server in (pg, redis):
                assert server.process is not None
                pin(server.process.pid, LOAD_CORE)
            env = {"DATABASE_URL": pg.dsn(), "REDIS_URL": redis.url}
            proc, url = start_gateway(self.h, "gateway-prod", env)
            self._production = Gateway(proc, url, configure_gateway(url, self.mock, self.drip()))
        return self._production

    def release(self) -> None:
        """Stop whatever runs on GATEWAY_CORE (the floor, the gateways)."""
        procs = [self._floor[0]] if self._floor else []
        procs += [gw.proc for gw in (self._gateway, self._production) if gw]
        for proc in procs:
            proc.stop()


# The floor's model -> mock path (it calls <path>/v1/chat/completions; /embed answers embeddings).
FLOOR_ROUTES = {"bench-json": "json", "bench-sse": "sse", "bench-embed": "embed"}


def _chat(url: str, key: str, model: str = "bench") -> Target:
    return Target(
        url + CHAT, chat_request(f"{model}-json", False), key,
        url + CHAT, chat_request(f"{model}-sse", True),
    )  # fmt: skip


def _through(gw: Gateway, target: Target, ttfb: bool = False) -> Target:
    target.proc, target.metrics_url = gw.proc, gw.url
    if ttfb:
        target.ttfb = (gw.url + "/v1", "bench-drip")
    return target


def _mock_paths(base: str) -> Target:
    """The mock's chat answers at `base` (the mock itself, or nginx in front of it)."""
    return Target(
        base + "/json" + CHAT, chat_request("bench-json", False), "",
        base + "/sse" + CHAT, chat_request("bench-sse", True),
    )  # fmt: skip


def _direct(lab: Lab) -> Target:
    target = _mock_paths(lab.url(""))
    target.ttfb = (f"http://127.0.0.1:{lab.drip()}/v1", "m")
    return target


def _nginx(lab: Lab) -> Target:
    return _mock_paths(f"http://127.0.0.1:{lab.proxy()}")


def _floor(lab: Lab) -> Target:
    proc, url = lab.floor()
    target = _chat(url, FLOOR_KEY)
    target.proc = proc
    return target


def _floor_embeddings(lab: Lab) -> Target:
    proc, url = lab.floor()
    return Target(url + EMBEDDINGS, embeddings_request("bench-embed"), FLOOR_KEY, proc=proc)


def _gateway(lab: Lab) -> Target:
    gw = lab.gateway()
    return _through(gw, _chat(gw.url, gw.key), ttfb=True)


def _three_deployments(lab: Lab) -> Target:
    gw = lab.gateway()
    return _through(gw, _chat(gw.url, gw.key, "bench3"))


def _embeddings(lab: Lab) -> Target:
    gw = lab.gateway()
    return _through(gw, Target(gw.url + EMBEDDINGS, embeddings_request("bench-embed"), gw.key))


def _bridge(lab: Lab) -> Target:
    gw = lab.gateway()
    url = gw.url + RESPONSES
    json_body = responses_request("bench-bridge-json", False)
    sse_body = responses_request("bench-bridge-sse", True)
    return _through(gw, Target(url, json_body, gw.key, url, sse_body))


def _limited(lab: Lab) -> Target | str:
    gw = lab.gateway()
    assert gw.features is not None
    if gw.features.limited_key is None:
        return f"skipped: the admin API refused a limited key ({gw.features.limited_refusal})"
    return _through(gw, _chat(gw.url, gw.features.limited_key))


def _production(lab: Lab) -> Target:
    gw = lab.production()
    return _through(gw, _chat(gw.url, gw.key), ttfb=True)


@dataclass(frozen=True)
class Scenario:
    name: str  # as given to --rows
    label: str
    target: Callable[[Lab], Target | str]  # a string: why the row is skipped
    direct: str | None = "direct"  # the row its p50 overhead is measured against
    floor: str | None = "floor"  # the row its throughput is a ratio of
    gateway: str | None = None  # the plain gateway row, for the features' second ratio
    paired: bool = False  # on the plain gateway's process: its ratio from alternating windows

    def references(self) -> list[str]:
        return [r for r in (self.direct, self.floor, self.gateway) if r and r != self.name]


GW = "gateway"
SCENARIOS = [
    Scenario("direct", "direct to mock", _direct, direct=None, floor=None),
    Scenario(
        "direct-embeddings",
        "direct to mock, embeddings",
        lambda lab: Target(lab.url("/embed/v1/embeddings"), embeddings_request("m"), ""),
        direct=None,
        floor=None,
    ),
    Scenario("nginx", "nginx reverse proxy", _nginx),
    Scenario("floor", "Python floor (uvicorn + aiohttp)", _floor),
    Scenario(
        "floor-embeddings",
        "Python floor, embeddings answer",
        _floor_embeddings,
        direct="direct-embeddings",
        floor="floor-embeddings",
    ),
    Scenario(GW, "llm-gateway (SQLite, 1 worker)", _gateway, gateway=GW),
    Scenario(
        "three-deployments",
        "llm-gateway, 3 deployments (1/1/1)",
        _three_deployments,
        gateway=GW,
        paired=True,
    ),
    Scenario(
        "embeddings",
        "llm-gateway, embeddings",
        _embeddings,
        direct="direct-embeddings",
        floor="floor-embeddings",
        gateway=GW,
        paired=True,
    ),
    Scenario(
        "responses-bridge",
        "llm-gateway, /v1/responses bridged to chat",
        _bridge,
        gateway=GW,
        paired=True,
    ),
    Scenario(
        "limited-key",
        "llm-gateway, key with rpm/tpm limits + daily budget",
        _limited,
        gateway=GW,
        paired=True,
    ),
    Scenario("production", "llm-gateway (PostgreSQL + Redis, 1 worker)", _production, gateway=GW),
]
BY_NAME = {s.name: s for s in SCENARIOS}
DEFAULT = [s.name for s in SCENARIOS if s.name != "production"]


def select(names: list[str]) -> list[Scenario]:
    """The named rows and the rows they are compared with, in the table's order."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {', '.join(BY_NAME)}")
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += BY_NAME[name].references()
    return [s for s in SCENARIOS if s.name in wanted]


def run(
    scenarios: list[Scenario], lab: Lab, duration: float, ttfb_runs: int, raw: list[str]
) -> list[Row]:
    rows = []
    targets: dict[str, Target] = {}
    for scenario in scenarios:
        row = Row(scenario.name, scenario.label)
        print(f"{scenario.label} ...", flush=True)
        target = scenario.target(lab)
        if isinstance(target, str):
            row.note = target
        else:
            measure(row, target, duration, ttfb_runs, raw)
            targets[scenario.name] = target
            reference = targets.get(scenario.gateway or "")
            if scenario.paired and reference is not None and not row.note:
                seconds = max(1, round(duration / 4))
                row.paired = paired_ratios(target, reference, PAIRS, seconds, raw)
        rows.append(row)
    return rows


PAIRS = 4  # alternating window pairs behind a feature row's ratio to the plain gateway
