"""Real servers for the tests: the mock upstream, PostgreSQL, Redis and the gateway itself.

Every server binds a free ephemeral port on 127.0.0.1 and lives in its own temporary folder,
removed at the end, so two runs of the suite can share a machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import uvicorn
import uvloop

from llm_gateway.app import create_app
from llm_gateway.server import uvicorn_options
from llm_gateway.settings import Config, Settings
from tests.audit import AUDIT

T = TypeVar("T")
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
TESTS_DIR = Path(__file__).parent
SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # 32 bytes, base64; a test value
ADMIN_KEY = "test-admin-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


# ---- mock upstream -------------------------------------------------------------------------
@dataclass
class Upstream:
    url: str
    process: subprocess.Popen[str]

    def base_url(self, tag: str | None = None) -> str:
        """A base URL unique to one test, so its requests can be read back apart."""
        return f"{self.url}/t/{tag or uuid.uuid4().hex}/v1"

    def requests(self, base_url: str) -> list[dict[str, Any]]:
        prefix = base_url.removeprefix(self.url)
        return list(httpx.get(f"{self.url}/_requests", params={"prefix": prefix}).json())


@contextlib.contextmanager
def run_upstream() -> Iterator[Upstream]:
    process = subprocess.Popen(
        [sys.executable, str(TESTS_DIR / "mock_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        port = int(line.split()[1])
        yield Upstream(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# ---- PostgreSQL ----------------------------------------------------------------------------
def _as_postgres() -> dict[str, Any]:
    """Popen arguments that run a PostgreSQL binary as `postgres` when we are root."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"gw_{uuid.uuid4().hex[:12]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        return name

    def drop_database(self, name: str) -> None:
        AUDIT.dump_postgres(self.dsn(name), name)  # the secrets audit reads it at the end
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _admin(self, statement: str) -> None:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-h",
                self.host,
                "-k",
                str(self.data_dir),
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.data_dir,
            start_new_session=True,  # its own process group: a kill takes every backend
            **_as_postgres(),
        )
        wait_until(self._accepting, timeout=30)

    def stop(self, mode: signal.Signals = signal.SIGINT) -> None:
        if self.process is not None and self.process.poll() is None:
            if mode == signal.SIGKILL:  # a crash: postmaster and every backend at once
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.send_signal(mode)
            self.process.wait(timeout=30)
        self.process = None

    def _accepting(self) -> bool:
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", self.host, "-p", str(self.port)],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0


def postgres_available() -> bool:
    if not (PG_BIN / "postgres").exists():
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return True


@contextlib.contextmanager
def run_postgres() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="llmgw-pg-"))
    data_dir = root / "data"
    data_dir.mkdir()
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data_dir, "postgres")
    try:
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                user,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=root,
            **_as_postgres(),
        )
        server = Postgres("127.0.0.1", free_port(), user, data_dir)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- Redis ---------------------------------------------------------------------------------
@dataclass
class Redis:
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    options: tuple[str, ...] = ()  # more `redis-server` arguments (cluster mode, a replica)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._accepting, timeout=15)

    def command(self, *args: str) -> str:
        """One `redis-cli` command against this server; its output."""
        return redis_cli(self.port, *args)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def run_redis() -> Iterator[Redis]:
    root = Path(tempfile.mkdtemp(prefix="llmgw-redis-"))
    server = Redis(free_port(), root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def redis_cli(port: int, *args: str) -> str:
    result = subprocess.run(
        [shutil.which("redis-cli") or "redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


@dataclass
class RedisClusterNodes:
    """Three masters in cluster mode, no replicas, slots spread evenly."""

    nodes: list[Redis]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def healthy(self) -> bool:
        with contextlib.suppress(subprocess.CalledProcessError):
            return all(
                "cluster_state:ok" in node.command("CLUSTER", "INFO")
                and node.command("CLUSTER", "SLOTS").strip() != ""
                for node in self.nodes
            )
        return False


@contextlib.contextmanager
def run_redis_cluster(masters: int = 3) -> Iterator[RedisClusterNodes]:
    """A Redis Cluster of `masters` nodes on free loopback ports (each with its own bus port:
    the default, port + 10000, may not exist for an ephemeral port)."""
    root = Path(tempfile.mkdtemp(prefix="llmgw-redis-cluster-"))
    cluster = RedisClusterNodes([])
    try:
        for index in range(masters):
            folder = root / str(index)
            folder.mkdir()
            options: tuple[str, ...] = ("--cluster-enabled", "yes")
            options += ("--cluster-config-file", "nodes.conf")
            options += ("--cluster-port", str(free_port()), "--cluster-node-timeout", "2000")
            node = Redis(free_port(), folder, options=options)
            cluster.nodes.append(node)
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in cluster.nodes]
        cluster.nodes[0].command(
            "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"
        )
        wait_until(cluster.healthy, timeout=30, interval=0.1)
        yield cluster
    finally:
        for node in cluster.nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisSentinels:
    """A primary, its replica and sentinels watching them (service `SERVICE`)."""

    SERVICE = "gateway"
    primary: Redis
    replica: Redis
    sentinels: list[subprocess.Popen[bytes]]
    ports: list[int]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def master_port(self) -> int:
        """The primary's port, as the first sentinel reports it."""
        reply = redis_cli(self.ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)
        return int(reply.split()[1])

    def ready(self) -> bool:
        """Every sentinel knows the replica and every other sentinel, and the replica is in
        sync: a failover can happen."""
        try:
            return self._ready()
        except subprocess.CalledProcessError:
            return False

    def _ready(self) -> bool:
        for port in self.ports:
            state = redis_cli(port, "SENTINEL", "MASTER", self.SERVICE).split()
            fields = dict(zip(state[::2], state[1::2], strict=False))
            if fields.get("num-slaves") != "1":
                return False
            if fields.get("num-other-sentinels") != str(len(self.ports) - 1):
                return False
        return "master_link_status:up" in self.replica.command("INFO", "replication")


@contextlib.contextmanager
def run_redis_sentinel(sentinels: int = 3) -> Iterator[RedisSentinels]:
    """A primary and a replica watched by `sentinels` sentinels (a majority to fail over), quick
    to act: a primary silent for 1 s is down, and a failover may retry after 2 s."""
    root = Path(tempfile.mkdtemp(prefix="llmgw-redis-sentinel-"))
    started: list[subprocess.Popen[bytes]] = []
    primary = Redis(free_port(), root / "primary")
    replica = Redis(free_port(), root / "replica")
    replica.options = ("--replicaof", "127.0.0.1", str(primary.port))
    ports = [free_port() for _ in range(sentinels)]
    try:
        for server in (primary, replica):
            server.data_dir.mkdir()
            server.start()
        for port in ports:
            conf = root / f"sentinel-{port}.conf"
            service = RedisSentinels.SERVICE
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {root}\n"
                f"sentinel monitor {service} 127.0.0.1 {primary.port} {sentinels // 2 + 1}\n"
                f"sentinel down-after-milliseconds {service} 1000\n"
                f"sentinel failover-timeout {service} 2000\n"
            )
            binary = shutil.which("redis-sentinel")
            command = [binary, str(conf)] if binary else ["redis-server", str(conf), "--sentinel"]
            started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        setup = RedisSentinels(primary, replica, started, ports)
        wait_until(setup.ready, timeout=30, interval=0.1)
        yield setup
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=10)
        for server in (primary, replica):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


# ---- the gateway, in a thread of this process ----------------------------------------------
def gateway_config(database_url: str, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_key": ADMIN_KEY,
        "gateway_secret_key": SECRET_KEY,
        "listen_addr": "127.0.0.1:0",
        "redis_url": None,
        "gateway_usage_flush_seconds": 0.2,
        # Bodies are stored unless a test says otherwise, so the secrets audit sees them.
        "log_request_body": True,
        "log_response_body": True,
        **overrides,
    }
    return Settings.load(**values).resolve()


class ThreadedGateway:
    """A real uvicorn server on a free port, running in a background thread."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app = create_app(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                **uvicorn_options(config),
                host="127.0.0.1",
                port=self.port,
                timeout_graceful_shutdown=10,
            )
        )
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the gateway's own event loop (where its engine lives)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def runtime(self) -> Any:
        return self.app.runtime  # type: ignore[attr-defined]

    def start(self) -> ThreadedGateway:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), timeout=60)
        if not self.server.started:
            raise RuntimeError("gateway failed to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


# ---- the gateway as a real `llm-gateway serve` process -------------------------------------
def serve_command(port: int, workers: int = 1, log_level: str = "info") -> list[str]:
    """`llm-gateway serve` on 127.0.0.1:port, run from this interpreter."""
    return [
        sys.executable,
        "-m",
        "llm_gateway",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        log_level,
    ]


class GatewayProcess:
    """`llm-gateway serve` in its own process, for restarts, signals and multi-process tests."""

    def __init__(self, env: dict[str, str], cwd: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LOG_REQUEST_BODY": "true", "LOG_RESPONSE_BODY": "true", **env}
        for name in ("LISTEN_ADDR",):
            self.env.pop(name, None)
        self.cwd = cwd
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = cwd / f"gateway-{self.port}.log"

    def start(self, timeout: float = 60) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            serve_command(self.port, self.workers),
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(lambda: self.ready() or self.process.poll() is not None, timeout=timeout)
        if self.process.poll() is not None:
            raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return int(code)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
