"""The suite-wide secrets audit: every secret the tests use, and where their artefacts are.

Secrets are registered as they appear (the admin and secret keys, provider keys sent to the
admin API, user keys in create and rotate answers). PostgreSQL databases are dumped here before
they are dropped, and in-process gateways log to one file here, so the last test of the
session can search every log, database and file the suite left for every secret.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

# Files that hold a secret by design: the embedded default's generated admin and secret keys
# (mode 0600 beside the database).
BY_DESIGN_SUFFIXES = (".admin-key", ".secret-key")


class SecretAudit:
    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.folder: Path | None = None

    def register(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and len(value) >= 12:
                self.secrets.add(value)

    def register_admin_exchange(self, request_json: Any, response_json: Any) -> None:
        """Pick the secrets out of one admin call: provider keys sent, user keys received."""
        if isinstance(request_json, dict):
            self.register(request_json.get("api_key"))
        if isinstance(response_json, dict) and str(response_json.get("key", "")).startswith("sk-"):
            self.register(response_json["key"])

    def dump_postgres(self, dsn: str, name: str) -> None:
        if self.folder is not None:
            asyncio.run(_dump(dsn, self.folder / f"postgres-{name}"))

    def hits(self, roots: list[Path]) -> tuple[dict[str, list[str]], int]:
        """Where each secret occurs under `roots`, and how many files were read."""
        found: dict[str, list[str]] = {}
        files = 0
        needles = {secret: secret.encode() for secret in self.secrets}
        for root in roots:
            for path in root.rglob("*"):
                if not path.is_file() or path.name.endswith(BY_DESIGN_SUFFIXES):
                    continue
                data = path.read_bytes()
                files += 1
                for secret, needle in needles.items():
                    if needle in data:
                        found.setdefault(secret[:8] + "…", []).append(str(path))
        return found, files


async def _dump(dsn: str, folder: Path) -> None:
    """Every row of every table, in COPY's text format, one file per table."""
    folder.mkdir(parents=True, exist_ok=True)
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            # Ordinary tables only: a partitioned parent cannot be copied; its partitions are.
            "SELECT relname AS tablename FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind = 'r' ORDER BY relname"
        )
        for row in tables:
            table = row["tablename"]
            await conn.copy_from_table(table, output=str(folder / f"{table}.txt"))
    finally:
        await conn.close()


AUDIT = SecretAudit()
