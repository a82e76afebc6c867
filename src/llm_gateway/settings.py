"""Configuration, parsed and validated once.

`Settings` reads the environment (and an optional `.env` file) with the reference gateway's
variable names. `Settings.resolve()` turns it into the `Config` the rest of the program uses:
database URL normalised for the async drivers, admin key and secret key present (generated once
and saved beside the SQLite file in the embedded default), listen address split.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llm_gateway.state.redis_link import parse_redis_url

DEFAULT_SQLITE_FILE = "llm-gateway.db"
MIN_ADMIN_KEY_LENGTH = 16
PLACEHOLDER_SECRETS = {"changeme", "change-me", "my-secret-admin-key", "admin", "secret"}
PRIVATE_FILE_MODE = 0o600  # the generated key files and the SQLite database (and its journals)


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str | None = None
    redis_url: str | None = None
    admin_key: SecretStr | None = None
    listen_addr: str = "0.0.0.0:8080"
    cors_origin: str | None = None
    log_retention_days: int = Field(default=7, ge=0)
    log_request_body: bool = False
    log_response_body: bool = False
    gateway_secret_key: SecretStr | None = None
    gateway_connect_timeout: float = Field(default=10.0, gt=0)
    gateway_read_timeout: float = Field(default=600.0, gt=0)
    gateway_max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    gateway_max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    gateway_max_json_depth: int = Field(default=64, ge=2, le=1000)
    gateway_usage_flush_seconds: float = Field(default=1.0, gt=0)
    gateway_resync_seconds: float = Field(default=30.0, gt=0)
    gateway_startup_timeout: float = Field(default=60.0, ge=0)
    gateway_auth_failure_limit: int = Field(default=60, ge=0)
    gateway_max_attempts: int = Field(default=3, ge=1, le=10)
    gateway_first_byte_timeout: float = Field(default=60.0, gt=0)
    gateway_max_retry_wait: float = Field(default=5.0, ge=0, le=60)
    gateway_cooldown_failures: int = Field(default=3, ge=1)
    gateway_cooldown_seconds: float = Field(default=30.0, gt=0, le=300)
    gateway_access_log: bool = True
    gateway_output_tokens_estimate: int = Field(default=256, ge=0, le=10_000_000)

    @field_validator("database_url", "redis_url", "cors_origin", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def load(cls, **overrides: object) -> Settings:
        """Read the environment; turn any validation failure into a one-line `ConfigError`."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]).upper() if first["loc"] else "settings"
            raise ConfigError(f"invalid {name}: {first['msg']}") from None

    def resolve(self) -> Config:
        database_url, sqlite_path = normalise_database_url(self.database_url)
        host, port = parse_listen_addr(self.listen_addr)
        key_file = sidecar(sqlite_path, "admin-key") if sqlite_path and not self.admin_key else None
        admin_key_generated = key_file is not None and not key_file.exists()
        admin_key = self._resolve_admin_key(sqlite_path)
        secret_key = self._resolve_secret_key(sqlite_path)
        if self.redis_url:
            try:
                parse_redis_url(self.redis_url)
            except ValueError as exc:
                raise ConfigError(f"invalid REDIS_URL: {exc}") from None
        origins = tuple(o.strip() for o in (self.cors_origin or "").split(",") if o.strip())
        return Config(
            database_url=database_url,
            sqlite_path=sqlite_path,
            redis_url=self.redis_url,
            admin_key=admin_key,
            admin_key_file=None
            if self.admin_key
            else sidecar(sqlite_path, "admin-key")
            if sqlite_path
            else None,
            admin_key_generated=admin_key_generated,
            secret_key=secret_key,
            host=host,
            port=port,
            cors_origins=origins,
            log_retention_days=self.log_retention_days,
            log_request_body=self.log_request_body,
            log_response_body=self.log_response_body,
            connect_timeout=self.gateway_connect_timeout,
            read_timeout=self.gateway_read_timeout,
            max_body_bytes=self.gateway_max_body_bytes,
            max_header_bytes=self.gateway_max_header_bytes,
            max_json_depth=self.gateway_max_json_depth,
            usage_flush_seconds=self.gateway_usage_flush_seconds,
            resync_seconds=self.gateway_resync_seconds,
            startup_timeout=self.gateway_startup_timeout,
            auth_failure_limit=self.gateway_auth_failure_limit,
            max_attempts=self.gateway_max_attempts,
            first_byte_timeout=self.gateway_first_byte_timeout,
            max_retry_wait=self.gateway_max_retry_wait,
            cooldown_failures=self.gateway_cooldown_failures,
            cooldown_seconds=self.gateway_cooldown_seconds,
            access_log=self.gateway_access_log,
            output_tokens_estimate=self.gateway_output_tokens_estimate,
        )

    def _resolve_admin_key(self, sqlite_path: Path | None) -> str:
        if self.admin_key is not None:
            value = self.admin_key.get_secret_value()
            if len(value) < MIN_ADMIN_KEY_LENGTH or value.lower() in PLACEHOLDER_SECRETS:
                raise ConfigError(
                    f"invalid ADMIN_KEY: use at least {MIN_ADMIN_KEY_LENGTH} random characters"
                )
            return value
        if sqlite_path is None:
            raise ConfigError("ADMIN_KEY is required with PostgreSQL (e.g. `openssl rand -hex 32`)")
        return read_or_create_secret(
            sidecar(sqlite_path, "admin-key"), lambda: secrets.token_urlsafe(32)
        )

    def _resolve_secret_key(self, sqlite_path: Path | None) -> bytes:
        if self.gateway_secret_key is not None:
            return decode_secret_key(self.gateway_secret_key.get_secret_value())
        if sqlite_path is None:
            raise ConfigError(
                "GATEWAY_SECRET_KEY is required with PostgreSQL "
                "(make one with `openssl rand -base64 32`; use the same on every instance)"
            )
        text = read_or_create_secret(
            sidecar(sqlite_path, "secret-key"),
            lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        )
        return decode_secret_key(text)


@dataclass(frozen=True)
class Config:
    """Resolved, validated configuration handed down to every component."""

    database_url: str
    sqlite_path: Path | None
    redis_url: str | None
    admin_key: str
    admin_key_file: Path | None
    secret_key: bytes
    host: str
    port: int
    cors_origins: tuple[str, ...] = ()
    log_retention_days: int = 7
    log_request_body: bool = False
    log_response_body: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_body_bytes: int = 32 * 1024 * 1024
    max_header_bytes: int = 32 * 1024
    max_json_depth: int = 64
    usage_flush_seconds: float = 1.0
    resync_seconds: float = 30.0
    startup_timeout: float = 60.0
    auth_failure_limit: int = 60
    admin_key_generated: bool = False  # the admin key file was created by this resolve()
    max_attempts: int = 3  # upstream attempts per request, across deployments and fallbacks
    first_byte_timeout: float = 60.0  # a stream's first event, else the next deployment
    max_retry_wait: float = 5.0  # longest wait before asking the same deployment again
    cooldown_failures: int = 3  # consecutive failures that cool a deployment down
    cooldown_seconds: float = 30.0  # the first failure cooldown; doubles up to 300 s
    access_log: bool = True
    # Tune the garbage collector for serving (lifespan.py); set by `serve`, not by embedders
    # and tests that share the interpreter.
    settle_gc: bool = False
    # The answer's size a token-rate limit reserves when the request sets no max_tokens.
    output_tokens_estimate: int = 256

    def __repr__(self) -> str:  # never print secrets, even by accident
        return (
            f"Config(database={self.database_url.split('@')[-1]!r}, redis={bool(self.redis_url)})"
        )


def normalise_database_url(url: str | None) -> tuple[str, Path | None]:
    """Map the reference's URL forms onto SQLAlchemy async driver URLs."""
    if url is None:
        path = Path.cwd() / DEFAULT_SQLITE_FILE
        return f"sqlite+aiosqlite:///{path}", path
    for prefix in ("postgres://", "postgresql://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :], None
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            raw = url[len(prefix) :]
            if not raw or raw == ":memory:":
                raise ConfigError("invalid DATABASE_URL: SQLite needs a file path (sqlite:///path)")
            path = Path(raw).expanduser().resolve()
            return f"sqlite+aiosqlite:///{path}", path
    raise ConfigError("invalid DATABASE_URL: expected postgres://, postgresql:// or sqlite:///path")


def parse_listen_addr(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"invalid LISTEN_ADDR {value!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port_text)


def decode_secret_key(text: str) -> bytes:
    text = text.strip()
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            return raw
    raise ConfigError(
        "invalid GATEWAY_SECRET_KEY: expected 32 random bytes, base64 (`openssl rand -base64 32`)"
    )


def sidecar(sqlite_path: Path, suffix: str) -> Path:
    return sqlite_path.with_name(f"{sqlite_path.name}.{suffix}")


def read_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:  # another process won the race; use its value
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
