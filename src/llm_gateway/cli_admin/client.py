"""The admin API over HTTP, with every failure turned into a one-line `click` error."""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 30.0
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")


class ApiError(click.ClickException):
    """The gateway answered with an error status; the message is the API's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def check_url(url: str, source: str) -> str:
    """The gateway's base URL, or a usage error naming where the bad value came from."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as exc:  # an unbalanced IPv6 bracket, for one
        raise click.UsageError(f"invalid {source} {url!r}: {exc}") from None
    problem = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem = f"expected an http:// or https:// URL with a host, such as {DEFAULT_URL}"
    elif not _valid_port(parts):
        problem = "the port is not a number from 0 to 65535"
    elif _UNSAFE.search(url.strip()):
        problem = "it contains spaces or control characters"
    elif parts.username or parts.password:
        problem = "it must not carry a user name or password; use --admin-key"
    elif parts.query or parts.fragment:
        problem = "it must not have a query string or fragment"
    if problem:
        raise click.UsageError(f"invalid {source} {url!r}: {problem}")
    return url.strip().rstrip("/")


def _valid_port(parts: urllib.parse.SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - reading it raises ValueError for a bad port
    except ValueError:
        return False
    return True


def check_admin_key(admin_key: str, source: str) -> str:
    if not admin_key.isascii() or _UNSAFE.search(admin_key):
        raise click.UsageError(
            f"invalid admin key from {source}: it must be printable ASCII without spaces"
        )
    return admin_key


class AdminClient:
    """Calls `/admin/...` with the admin key; returns the decoded JSON body (None when empty)."""

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.admin_key = admin_key

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - check_url allows http(s) only
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, _error_message(exc)) from None
        except urllib.error.URLError as exc:
            raise click.ClickException(self._unreachable(exc.reason)) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise click.ClickException(self._unreachable(exc)) from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise click.ClickException(
                f"{self.url} answered {method} {path} with something that is not JSON; "
                "is --url the gateway's address?"
            ) from None

    def _unreachable(self, reason: object) -> str:
        if isinstance(reason, TimeoutError):
            text = f"no answer within {TIMEOUT_SECONDS:g} s"
        elif isinstance(reason, OSError) and reason.strerror:
            text = reason.strerror
        else:
            text = str(reason) or type(reason).__name__
        return (
            f"cannot reach {self.url}: {text} (start the gateway with `llm-gateway serve`, "
            "or point --url / LLM_GATEWAY_URL at a running one)"
        )


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        exc.close()
    try:
        message = str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace").strip()[:200] or exc.reason or "request failed"
    if exc.code == 401:
        message += " (check --admin-key / ADMIN_KEY)"
    return " ".join(str(message).split())
