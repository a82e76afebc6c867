"""`--url`, `--admin-key` and `--json`: accepted on `llm-gateway`, on each group and on each
command, wherever people put them; the most specific placement wins. Also the checks and value
types that several commands share: conflicting options, empty updates, `none` to clear a value,
USD amounts and instants.

Each placement records what it was given in the context's `meta` (shared by the whole command
line). Click parses the command line from the outside in, so a later, more specific placement
overwrites an earlier one. The environment and the key file apply only when no placement
gave a value.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import click

from llm_gateway.cli_admin.client import DEFAULT_URL, AdminClient, check_admin_key, check_url
from llm_gateway.settings import DEFAULT_SQLITE_FILE

F = TypeVar("F", bound=Callable[..., Any])
V = TypeVar("V")
KEY_FILE = f"{DEFAULT_SQLITE_FILE}.admin-key"
_GIVEN = "llm_gateway.admin_options"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value not in (None, False) and param.name is not None:
        ctx.meta.setdefault(_GIVEN, {})[param.name] = value
    return value


def admin_options(function: F) -> F:
    """Add the three connection options to a command or group."""
    for decorator in (
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Print JSON instead of a table (for scripts).",
        ),
        click.option(
            "--admin-key",
            metavar="KEY",
            expose_value=False,
            callback=_remember,
            help=f"Admin key. Default: $ADMIN_KEY, else the key file {KEY_FILE} in the "
            "working folder (written by `llm-gateway serve` on the embedded default).",
        ),
        click.option(
            "--url",
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help=f"Gateway base URL. Default: $LLM_GATEWAY_URL, else {DEFAULT_URL}.",
        ),
    ):
        function = decorator(function)
    return function


def _given(ctx: click.Context) -> dict[str, Any]:
    return dict(ctx.meta.get(_GIVEN, {}))


def wants_json(ctx: click.Context) -> bool:
    return bool(_given(ctx).get("as_json"))


def gateway_url(ctx: click.Context) -> str:
    given = _given(ctx).get("url")
    if given:
        return check_url(given, "--url")
    from_env = os.environ.get("LLM_GATEWAY_URL", "").strip()
    if from_env:
        return check_url(from_env, "LLM_GATEWAY_URL")
    return DEFAULT_URL


def admin_key() -> tuple[str, str] | None:
    """The admin key from the environment or the key file, with where it came from."""
    from_env = os.environ.get("ADMIN_KEY", "").strip()
    if from_env:
        return from_env, "ADMIN_KEY"
    key_file = Path.cwd() / KEY_FILE
    try:
        text = key_file.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return (text, str(key_file)) if text else None


def admin_client(ctx: click.Context) -> AdminClient:
    url = gateway_url(ctx)
    given = _given(ctx).get("admin_key")
    found = (given, "--admin-key") if given else admin_key()
    if found is None:
        raise click.ClickException(
            f"no admin key: pass --admin-key, set ADMIN_KEY, or run from the folder that "
            f"holds {KEY_FILE} (the embedded default writes it there)"
        )
    return AdminClient(url, check_admin_key(*found))


def exclusive(ctx: click.Context, **given: bool) -> None:
    """Refuse options that cannot go together; keyword names are option names without `--`."""
    used = [f"--{name.replace('_', '-')}" for name, present in given.items() if present]
    if len(used) > 1:
        raise click.UsageError(f"{' and '.join(used)} cannot be used together", ctx)


def require_change(ctx: click.Context, changes: object, options: str) -> None:
    """Refuse an update that changes nothing (`changes` is falsy)."""
    if not changes:
        raise click.UsageError(f"nothing to change: give at least one of {options}", ctx)


class Clear(enum.Enum):
    """`none` given to an option that takes it: the value is cleared (sent as null)."""

    NONE = "none"


NONE = Clear.NONE


def given_values(**values: Any) -> dict[str, Any]:
    """The options given (not None), with `none` (NONE) sent as null."""
    return {
        name: None if value is NONE else value
        for name, value in values.items()
        if value is not None
    }


class OrNone(click.ParamType["V | Clear"]):
    """Another type's value, or one of `words` (`none`): NONE, the value cleared."""

    def __init__(self, inner: click.ParamType[V], words: tuple[str, ...] = ("none",)) -> None:
        self.inner = inner
        self.words = words
        self.name = f"{inner.name} or {' or '.join(words)}"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> V | Clear:
        if value is NONE or (isinstance(value, str) and value.strip().lower() in self.words):
            return NONE
        try:
            return self.inner.convert(value, param, ctx)
        except click.BadParameter as exc:
            self.fail(f"{exc.message.rstrip('.')}, or {self.words[0]}", param, ctx)


class Usd(click.ParamType[float]):
    """An amount in US dollars (`12.50`, `$0.15`), sent to the API as a JSON number."""

    name = "usd"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip().removeprefix("$").replace("_", "")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount in USD, such as 12.50", param, ctx)
        if not amount.is_finite() or amount < 0:
            self.fail(f"{value!r} is not an amount in USD of 0 or more", param, ctx)
        return float(amount)


class Instant(click.ParamType[str]):
    """An ISO 8601 date or time; without a zone, UTC. Becomes `YYYY-MM-DDTHH:MM:SSZ`."""

    name = "instant"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 time, such as 2030-01-31T18:00:00Z, "
                "2030-01-31T18:00+01:00 or 2030-01-31 (a time without a zone is UTC)",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


USD_OR_NONE = OrNone(Usd())
