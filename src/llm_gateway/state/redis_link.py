"""Where Redis is and how to reach it: one server, a primary watched by Sentinel, or a Cluster.

`REDIS_URL` takes:

    redis://[[user]:password@]host[:port][/db]     one server (rediss:// over TLS; unix://path)
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]

(`rediss+sentinel://` and `rediss+cluster://`: the same over TLS.) For Sentinel the hosts are the
sentinels (port 26379 unless given) and the password is the primary's; sentinels that have one of
their own take `?sentinel_password=...`. For Cluster the hosts are any of its nodes (port 6379
unless given); the others are discovered.

A link has a command client and publishes and subscribes on one channel, whatever the topology:

- One server: `redis.asyncio.Redis`; PUBLISH and SUBSCRIBE.
- Sentinel: clients from `Sentinel.master_for(service)`. Every new connection asks the sentinels
  for the current primary, and a connection still on a demoted one is dropped (READONLY), so after
  a failover commands reach the new primary on their next connection. The subscriber's connection
  breaks with the old primary; the bus then subscribes again (on the new one) and resyncs.
- Cluster: `redis.asyncio.cluster.RedisCluster`, which routes each command by its key's slot;
  every script and multi-key command of the gateway keeps its keys under one hash tag, and
  pipelines that span keys are split by node by the client. Notices use sharded pub/sub
  (SPUBLISH/SSUBSCRIBE, Redis 7 and later): a notice goes to the one shard that owns the channel's
  slot (and its replicas), not over the cluster bus to every node as PUBLISH does. Before Redis 7,
  PUBLISH and a SUBSCRIBE on the node owning the channel's slot.

Commands fail fast: a broken connection is tried again at once, twice (enough to replace a stale
connection or reach a new primary), not with the client library's default of ten retries with
backoff, so a dead Redis costs a request milliseconds. A broken subscription is never retried
here: the bus sees it, subscribes again and resyncs, so no notice lost meanwhile goes unrepaired.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPubSub, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError

Topology = Literal["server", "sentinel", "cluster"]
Client = redis.Redis | RedisCluster

_SCHEMES: dict[str, tuple[Topology, bool]] = {
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_DEFAULT_PORT: dict[Topology, int] = {"server": 6379, "sentinel": 26379, "cluster": 6379}
_EXPECTED = "expected redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
# What a failed Redis call raises: a Redis error, a cluster client's own (a slot no node serves),
# or a socket's.
UNAVAILABLE = (RedisError, RedisClusterException, OSError)
POLL_SECONDS = 1.0  # a sharded subscription is read in turns this long


def _commands() -> dict[str, Any]:
    """Options of a command client (a fresh `Retry` each: clients keep their own)."""
    retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 2)
    return {"socket_connect_timeout": 1, "socket_timeout": 2, "retry": retry}


def _subscriber() -> dict[str, Any]:
    """Options of a subscriber: no read timeout (it blocks on reads; health checks find dead
    links) and no retries (the bus must see a break, to resync after it)."""
    return {"socket_connect_timeout": 1, "health_check_interval": 5, "retry": Retry(NoBackoff(), 0)}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed `REDIS_URL`."""

    topology: Topology
    url: str = field(repr=False)  # the whole URL, used as is for one server
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False

    def auth(self) -> dict[str, Any]:
        """Credentials and TLS of the data nodes (primary, replicas, cluster nodes)."""
        options: dict[str, Any] = {"username": self.username, "password": self.password}
        return {**options, "ssl": True} if self.tls else options


def parse_redis_url(url: str) -> RedisTarget:
    """Read a `REDIS_URL`; a ValueError says what is wrong with it (never echoing a password)."""
    scheme, found, _ = url.partition("://")
    scheme = scheme.lower()
    if not found:
        raise ValueError(_EXPECTED)
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget("server", url)
    if scheme not in _SCHEMES:
        raise ValueError(_EXPECTED)
    topology, tls = _SCHEMES[scheme]
    parts = urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if at else ("", "", "")
    hosts = tuple(_host_port(item, _DEFAULT_PORT[topology]) for item in hostlist.split(","))
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    allowed = {"sentinel_password"} if topology == "sentinel" else set()
    if unknown := sorted(set(options) - allowed):
        raise ValueError(f"unknown option {unknown[0]!r} in a {scheme}:// URL")
    service, db = "", 0
    if topology == "sentinel":
        if not 1 <= len(segments) <= 2:
            raise ValueError("expected redis+sentinel://host:port[,host:port...]/service[/db]")
        service, db = segments[0], _db(segments[1] if len(segments) == 2 else "0")
    elif segments not in ([], ["0"]):
        raise ValueError("a cluster has no databases: expected redis+cluster://host:port[,...]")
    return RedisTarget(
        topology,
        url,
        hosts,
        service,
        db,
        unquote(username) or None,
        unquote(password) or None,
        options.get("sentinel_password"),
        tls,
    )


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # an IPv6 address: [::1]:26379
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ValueError("a host is missing")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid port {port!r}")
    return host, int(port)


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid database number {text!r}")
    return int(text)


class RedisLink:
    """The command client, publishing and subscribing for one `REDIS_URL`.

    Nothing connects until the first command or subscription.
    """

    def __init__(self, url: str) -> None:
        self.target = target = parse_redis_url(url)
        self._sentinel: Sentinel | None = None
        self._sharded: bool | None = None  # on a cluster: whether it has sharded pub/sub
        self.client: Client
        self._subscriber: Client
        if target.topology == "server":
            self.client = redis.from_url(url, **_commands())
            self._subscriber = redis.from_url(url, **_subscriber())
        elif target.topology == "sentinel":
            sentinel_options = {**_commands(), "password": target.sentinel_password}
            if target.tls:
                sentinel_options["ssl"] = True
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.hosts), sentinel_kwargs=sentinel_options
            )
            self.client = self._master(_commands())
            self._subscriber = self._master(_subscriber())
        else:
            nodes = [ClusterNode(host, port) for host, port in target.hosts]
            self.client = RedisCluster(startup_nodes=nodes, **_commands(), **target.auth())
            self._subscriber = RedisCluster(startup_nodes=nodes, **_subscriber(), **target.auth())

    def _master(self, options: dict[str, Any]) -> redis.Redis:
        assert self._sentinel is not None
        client: redis.Redis = self._sentinel.master_for(
            self.target.service, db=self.target.db, **options, **self.target.auth()
        )
        return client

    async def publish(self, channel: str, message: bytes) -> None:
        if isinstance(self.client, RedisCluster) and await self._sharded_pubsub(channel):
            await self.client.spublish(channel, message)
        else:
            await self.client.publish(channel, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """Subscribe to `channel`; the body reads the messages' payloads. Any break in the
        subscription raises (a RedisError or OSError) out of the reading."""
        if isinstance(self._subscriber, RedisCluster):
            # The cluster's layout read afresh: the channel's slot may have moved since.
            await self._subscriber.aclose()
            await self._subscriber.initialize()
            sharded = await self._sharded_pubsub(channel)
        else:
            sharded = False
        pubsub = self._subscriber.pubsub()
        messages: AsyncGenerator[bytes, None]
        try:
            if isinstance(pubsub, ClusterPubSub) and sharded:
                await pubsub.ssubscribe(channel)
                messages = _sharded_messages(pubsub)
            else:
                await pubsub.subscribe(channel)
                messages = _messages(pubsub)
            try:
                yield messages
            finally:
                await messages.aclose()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _sharded_pubsub(self, channel: str) -> bool:
        """Whether the cluster node owning `channel` has sharded pub/sub (Redis 7 and later);
        asked once."""
        if self._sharded is None:
            assert isinstance(self.client, RedisCluster)
            await self.client.initialize()
            node = self.client.get_node_from_key(channel)
            try:
                info = await self.client.execute_command("INFO", "server", target_nodes=node)
                major = str(info["redis_version"]).split(".")[0]
            except (ResponseError, KeyError, TypeError):  # INFO refused or unlike Redis's
                self._sharded = False
            else:
                self._sharded = major.isdigit() and int(major) >= 7
        return self._sharded

    async def aclose(self) -> None:
        await self.client.aclose()
        await self._subscriber.aclose()
        if self._sentinel is not None:
            await self._sentinel.aclose()


async def _messages(pubsub: PubSub) -> AsyncGenerator[bytes, None]:
    async for message in pubsub.listen():
        if message.get("type") == "message":
            yield message["data"]


async def _sharded_messages(pubsub: ClusterPubSub) -> AsyncGenerator[bytes, None]:
    while True:
        message = await pubsub.get_sharded_message(timeout=POLL_SECONDS)
        if message is None:
            continue
        if message["type"] == "smessage":
            yield message["data"]
        elif message["type"] == "sunsubscribe":  # the channel's slot moved to another node
            raise RedisConnectionError("sharded subscription ended by the server")
