"""Admin sub-commands: thin clients of the admin HTTP API, printing tables (or JSON).

providers.py    llm-gateway providers list|create|update|delete
models.py       llm-gateway models list|create|update|delete
deployments.py  llm-gateway models deployments|add-deployment|remove-deployment|set-deployment
keys.py         llm-gateway keys list|create|update|rotate|delete
options.py      --url, --admin-key, --json at any level; usage checks shared by commands
client.py       the HTTP calls and their one-line errors
lookup.py       a name or an id wherever a command takes one
output.py       tables and JSON
"""

from __future__ import annotations

import click

from llm_gateway.cli_admin import deployments as _deployments  # noqa: F401 - adds its commands
from llm_gateway.cli_admin import prices as _prices  # noqa: F401 - adds its command
from llm_gateway.cli_admin.keys import keys
from llm_gateway.cli_admin.models import models
from llm_gateway.cli_admin.options import admin_options
from llm_gateway.cli_admin.providers import providers

__all__ = ["admin_options", "register"]


def register(main: click.Group) -> None:
    for group in (providers, models, keys):
        main.add_command(group)
