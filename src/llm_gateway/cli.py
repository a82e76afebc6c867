"""The `llm-gateway` command: `serve`, plus admin sub-commands that call the admin HTTP API."""

from __future__ import annotations

import os
import signal
import sys
import tempfile

import click

from llm_gateway.cli_admin import register as register_admin_commands
from llm_gateway.settings import ConfigError, Settings


def _fail(message: str) -> None:
    click.echo(f"llm-gateway: {message}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(package_name="llm-gateway")
def main() -> None:
    """llm-gateway: one OpenAI-compatible endpoint in front of many LLM providers."""


@main.command()
@click.option("--host", help="Interface to bind (overrides LISTEN_ADDR).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (overrides LISTEN_ADDR).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(host: str | None, port: int | None, workers: int, log_level: str) -> None:
    """Run the gateway (configuration from the environment and ./.env)."""
    import uvicorn

    from llm_gateway.logging_setup import configure_logging
    from llm_gateway.server import uvicorn_options

    try:
        config = Settings.load().resolve()
    except ConfigError as exc:
        _fail(str(exc))
        return
    if workers > 1 and not config.redis_url:
        _fail(
            "--workers > 1 needs REDIS_URL: the processes share key changes and usage "
            "counters through Redis (without it, run one worker)"
        )
    configure_logging(log_level, os.environ.get("GATEWAY_LOG_FORMAT", "text"))
    if config.admin_key_file is not None:
        click.echo(
            f"Admin key: {config.admin_key}  (generated once, kept in {config.admin_key_file}; "
            "set ADMIN_KEY to choose your own)"
        )
    bind_host = host or config.host
    bind_port = config.port if port is None else port
    click.echo(f"llm-gateway listening on http://{bind_host}:{bind_port}  (admin docs at /docs)")
    common = {
        **uvicorn_options(config),
        "host": bind_host,
        "port": bind_port,
        "timeout_graceful_shutdown": 30,
    }
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal; a clean stop
    # after a graceful shutdown is a success, so exit 0 instead of dying by the signal.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    if workers == 1:
        from llm_gateway.app import create_app

        uvicorn.run(create_app(config), **common)
        return
    with tempfile.TemporaryDirectory(prefix="llm-gateway-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run(
            "llm_gateway.app:create_app_from_environment",
            factory=True,
            workers=workers,
            **common,
        )


@main.command("rotate-secret-key")
@click.option(
    "--new-key",
    envvar="NEW_GATEWAY_SECRET_KEY",
    required=True,
    help="The new GATEWAY_SECRET_KEY (base64 of 32 random bytes).",
)
def rotate_secret_key(new_key: str) -> None:
    """Re-encrypt every provider key under a new GATEWAY_SECRET_KEY.

    Stop the gateway instances first; afterwards start them all with the new key.
    """
    import asyncio

    from llm_gateway.db.engine import create_engine
    from llm_gateway.security import SecretBox
    from llm_gateway.services.secrets import reencrypt_keys
    from llm_gateway.settings import decode_secret_key, sidecar

    try:
        config = Settings.load().resolve()
        new_secret = decode_secret_key(new_key)
    except ConfigError as exc:
        _fail(str(exc))
        return

    async def run() -> int:
        engine = create_engine(config.database_url)
        try:
            return await reencrypt_keys(engine, SecretBox(config.secret_key), SecretBox(new_secret))
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(run())
    except ValueError as exc:
        _fail(str(exc))
        return
    if config.sqlite_path is not None and not os.environ.get("GATEWAY_SECRET_KEY"):
        key_file = sidecar(config.sqlite_path, "secret-key")
        key_file.write_text(new_key.strip() + "\n")
        click.echo(f"Re-encrypted {count} provider key(s); the new key is saved in {key_file}.")
    else:
        click.echo(
            f"Re-encrypted {count} provider key(s). Set GATEWAY_SECRET_KEY to the new key on "
            "every instance before starting them."
        )


register_admin_commands(main)
