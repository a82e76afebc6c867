"""The `llm-gateway` command: `serve`, plus admin sub-commands that call the admin HTTP API.

Every failure ends here as one line on stderr, `llm-gateway: ...`: exit 2 for a usage or
configuration error, 1 for anything else; never a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import click

from llm_gateway import __version__
from llm_gateway.cli_admin import admin_options
from llm_gateway.cli_admin import register as register_admin_commands
from llm_gateway.settings import Config, ConfigError, Settings

PROG = "llm-gateway"


class ConfigFailure(click.ClickException):
    """The configuration is unusable: exit 2, like a usage error."""

    exit_code = 2


def _say(message: str) -> None:
    first_line = " ".join(message.strip().splitlines()[:1]) or "failed"
    click.echo(f"{PROG}: {first_line}", err=True)


class Gateway(click.Group):
    """The root group; its `main` is the one place failures are printed."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        prog_name = prog_name or PROG
        options = {**extra, "windows_expand_args": windows_expand_args}
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **options)
        try:
            result = super().main(args, prog_name, complete_var, False, **options)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message())  # a group alone: its help, as asked
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            _say(exc.format_message().rstrip(".") + hint)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _say(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            _say("interrupted")
            sys.exit(130)
        except Exception as exc:  # the last guard: one line, never a traceback
            _say(f"unexpected error: {type(exc).__name__}: {exc}")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _version() -> str:
    """The installed distribution's version; the package's own when run from a checkout."""
    try:
        return importlib.metadata.version("llm-gateway")
    except importlib.metadata.PackageNotFoundError:
        return __version__


@click.group(name=PROG, cls=Gateway)
@click.version_option(version=_version(), prog_name=PROG)
@admin_options
def main() -> None:
    """llm-gateway: one OpenAI-compatible endpoint in front of many LLM providers.

    --url, --admin-key and --json (for the admin commands) go here, after the group
    (`llm-gateway keys --json list`) or after the command (`llm-gateway keys list --json`).
    """


def _announce_admin_key(config: Config) -> None:
    if config.admin_key_file is None:  # ADMIN_KEY is set: the operator chose it
        return
    if config.admin_key_generated:
        click.echo(
            f"Admin key: {config.admin_key}  (generated now and kept in {config.admin_key_file}; "
            "set ADMIN_KEY to choose your own)"
        )
    else:
        click.echo(
            f"Admin key: kept in {config.admin_key_file}  (set ADMIN_KEY to choose your own)"
        )


@main.command()
@click.option("--host", help="Interface to bind (overrides LISTEN_ADDR).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (overrides LISTEN_ADDR).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Processes serving the port (more than one needs REDIS_URL).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(host: str | None, port: int | None, workers: int, log_level: str) -> None:
    """Run the gateway.

    Configuration comes from the environment and ./.env (see the README).
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from llm_gateway.logging_setup import configure_logging
    from llm_gateway.server import ListenError, bind_socket, uvicorn_options

    try:
        config = Settings.load().resolve()
    except ConfigError as exc:
        raise ConfigFailure(str(exc)) from None
    if workers > 1 and not config.redis_url:
        raise ConfigFailure(
            "--workers > 1 needs REDIS_URL: the processes share key changes and usage "
            "counters through Redis (without it, run one worker)"
        )
    configure_logging(log_level, os.environ.get("GATEWAY_LOG_FORMAT", "text"))
    bind_host = host or config.host
    try:
        sock = bind_socket(bind_host, config.port if port is None else port)
    except ListenError as exc:
        raise click.ClickException(str(exc)) from None
    _announce_admin_key(config)
    shown_host = f"[{bind_host}]" if ":" in bind_host else bind_host
    click.echo(
        f"llm-gateway listening on http://{shown_host}:{sock.getsockname()[1]}  "
        "(admin docs at /docs)"
    )
    common = {**uvicorn_options(config), "timeout_graceful_shutdown": 30}
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal; a clean stop
    # after a graceful shutdown is a success, so exit 0 instead of dying by the signal.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    if workers == 1:
        from llm_gateway.app import create_app

        app = create_app(dataclasses.replace(config, settle_gc=True))
        server = uvicorn.Server(uvicorn.Config(app, **common))
        server.run(sockets=[sock])
        if not server.started:
            sys.exit(3)  # uvicorn's startup failure; the reason is in the log
        return
    with tempfile.TemporaryDirectory(prefix="llm-gateway-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        settings = uvicorn.Config(
            "llm_gateway.app:create_app_from_environment",
            factory=True,
            workers=workers,
            **common,
        )
        Multiprocess(settings, sockets=[sock]).run()


@main.command("rotate-secret-key")
@click.option(
    "--new-key",
    envvar="NEW_GATEWAY_SECRET_KEY",
    required=True,
    help="The new GATEWAY_SECRET_KEY (base64 of 32 random bytes).",
)
def rotate_secret_key(new_key: str) -> None:
    """Re-encrypt provider keys under a new secret key.

    Every provider key is re-encrypted under the new GATEWAY_SECRET_KEY.

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
        raise ConfigFailure(str(exc)) from None

    async def run() -> int:
        engine = create_engine(config.database_url)
        try:
            return await reencrypt_keys(engine, SecretBox(config.secret_key), SecretBox(new_secret))
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(run())
    except ValueError as exc:
        raise ConfigFailure(str(exc)) from None
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
