"""Names or ids, wherever a command takes an IDENT: names are resolved with the list endpoint.

Provider and model names are unique. Key names are not: a name shared by several keys picks
the only active one among them, and is otherwise an error that lists the candidates.
"""

from __future__ import annotations

import uuid
from typing import Any

import click

from llm_gateway.cli_admin.client import AdminClient

NOUNS = {"providers": "provider", "models": "model", "keys": "key"}


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class Lookup:
    """Resolves names for one command line, reading each list at most once."""

    def __init__(self, client: AdminClient) -> None:
        self.client = client
        self._lists: dict[str, list[dict[str, Any]]] = {}

    def rows(self, resource: str) -> list[dict[str, Any]]:
        if resource not in self._lists:
            rows = self.client.get(f"/admin/{resource}")
            if not isinstance(rows, list):
                raise click.ClickException(f"unexpected answer from GET /admin/{resource}")
            self._lists[resource] = rows
        return self._lists[resource]

    def id_of(self, resource: str, ident: str) -> str:
        """The id for a name or id; an id is used as it is, without a round trip."""
        ident = ident.strip()
        if is_uuid(ident):
            return str(uuid.UUID(ident))
        return str(self.find(resource, ident)["id"])

    def find(self, resource: str, ident: str) -> dict[str, Any]:
        """The row whose id or name is `ident`."""
        ident = ident.strip()
        rows = self.rows(resource)
        noun = NOUNS[resource]
        if is_uuid(ident):
            wanted = str(uuid.UUID(ident))
            by_id = [row for row in rows if str(row.get("id")) == wanted]
            if by_id:
                return by_id[0]
        matches = [row for row in rows if row.get("name") == ident]
        if len(matches) > 1:
            active = [row for row in matches if row.get("is_active", True)]
            if len(active) == 1:
                return active[0]
            raise click.ClickException(_ambiguous(noun, ident, matches))
        if not matches:
            raise click.ClickException(f"{noun} {ident!r} not found: no {noun} has that name or id")
        return matches[0]


def _ambiguous(noun: str, ident: str, matches: list[dict[str, Any]]) -> str:
    described = []
    for row in matches:
        details = [str(row[field]) for field in ("key_prefix",) if row.get(field)]
        details.append("active" if row.get("is_active", True) else "inactive")
        described.append(f"{row['id']} ({', '.join(details)})")
    return f"{len(matches)} {noun}s are named {ident!r}; give one of their ids: " + "; ".join(
        described
    )
