"""`llm-gateway models deployments|add-deployment|remove-deployment|set-deployment`.

The API replaces a model's deployment list as a whole, so these commands read the model,
change one entry and send the whole list back, every other entry as it was. An entry whose
provider and provider-side name stay the same keeps its id, and with it its health.
"""

from __future__ import annotations

import uuid
from typing import Any

import click

from llm_gateway.cli_admin.client import AdminClient
from llm_gateway.cli_admin.lookup import Lookup, is_uuid
from llm_gateway.cli_admin.models import PRIORITY, WEIGHT, models
from llm_gateway.cli_admin.options import admin_client, admin_options, exclusive, require_change
from llm_gateway.cli_admin.output import DEPLOYMENT_COLUMNS, deployment_label, deployments_of, emit

Row = dict[str, Any]
DEPLOYMENT_ARGUMENT_HELP = (
    "DEPLOYMENT is a deployment id (see `llm-gateway models deployments MODEL`), or its "
    "provider's name or id, or PROVIDER:PROVIDER_MODEL_NAME when a provider serves it twice."
)


def _model(lookup: Lookup, ident: str) -> Row:
    model = lookup.find("models", ident)
    if not isinstance(model.get("deployments"), list):
        raise click.ClickException(
            "this gateway reports no deployments for its models (it predates several "
            "deployments per model); upgrade it, or use `models update --provider`"
        )
    return model


def _as_input(deployment: Row, model_name: str) -> Row:
    """A deployment as the API takes it; an upstream name equal to the model's is left unset."""
    upstream = deployment.get("provider_model_name")
    return {
        "provider_id": str(deployment["provider_id"]),
        "provider_model_name": None if upstream == model_name else upstream,
        "weight": deployment.get("weight", 1),
        "priority": deployment.get("priority", 0),
    }


def _index_of(model: Row, ident: str) -> int:
    """The position of the deployment named by id, provider, or provider:upstream-name."""
    ident = ident.strip()
    deployments: list[Row] = model["deployments"]

    def matching(test: Any) -> list[int]:
        return [i for i, deployment in enumerate(deployments) if test(deployment)]

    found: list[int] = []
    if is_uuid(ident):
        wanted = str(uuid.UUID(ident))
        found = matching(lambda d: str(d.get("id")) == wanted)
        found = found or matching(lambda d: str(d.get("provider_id")) == wanted)
    found = found or matching(lambda d: d.get("provider_name") == ident)
    if not found and ":" in ident:
        provider, _, upstream = ident.partition(":")
        found = matching(
            lambda d: (
                provider in (d.get("provider_name"), str(d.get("provider_id")))
                and d.get("provider_model_name") == upstream
            )
        )
    described = "; ".join(
        f"{deployments[i].get('id')} ({deployment_label(deployments[i])})"
        for i in (found if len(found) > 1 else range(len(deployments)))
    )
    if len(found) > 1:
        raise click.ClickException(
            f"{ident!r} matches {len(found)} deployments of {model['name']!r}; "
            f"give one of their ids: {described}"
        )
    if not found:
        raise click.ClickException(
            f"model {model['name']!r} has no deployment {ident!r}; it has: {described}"
        )
    return found[0]


def _replace(ctx: click.Context, client: AdminClient, model: Row, deployments: list[Row]) -> None:
    updated = client.call("PUT", f"/admin/models/{model['id']}", {"deployments": deployments})
    emit(ctx, deployments_of(updated), DEPLOYMENT_COLUMNS)


@models.command("deployments")
@admin_options
@click.argument("ident", metavar="MODEL")
@click.pass_context
def model_deployments(ctx: click.Context, ident: str) -> None:
    """Show a model's deployments and their health."""
    model = Lookup(admin_client(ctx)).find("models", ident)
    emit(ctx, deployments_of(model), DEPLOYMENT_COLUMNS)


@models.command("add-deployment")
@admin_options
@click.argument("ident", metavar="MODEL")
@click.option(
    "--provider",
    "--provider-id",
    "provider",
    required=True,
    metavar="PROVIDER",
    help="The provider (name or id) serving it.",
)
@click.option("--provider-model-name", metavar="NAME", help="The provider's name for the model.")
@click.option("--weight", type=WEIGHT, default=1, show_default=True, help="Share of traffic.")
@click.option(
    "--priority", type=PRIORITY, default=0, show_default=True, help="Lower is tried first."
)
@click.pass_context
def add_deployment(
    ctx: click.Context,
    ident: str,
    provider: str,
    provider_model_name: str | None,
    weight: int,
    priority: int,
) -> None:
    """Add a deployment to a model, keeping the others."""
    client = admin_client(ctx)
    lookup = Lookup(client)
    model = _model(lookup, ident)
    deployments = [_as_input(d, model["name"]) for d in model["deployments"]]
    deployments.append(
        {
            "provider_id": lookup.id_of("providers", provider),
            "provider_model_name": provider_model_name,
            "weight": weight,
            "priority": priority,
        }
    )
    _replace(ctx, client, model, deployments)


@models.command("remove-deployment", epilog=DEPLOYMENT_ARGUMENT_HELP)
@admin_options
@click.argument("ident", metavar="MODEL")
@click.argument("deployment", metavar="DEPLOYMENT")
@click.pass_context
def remove_deployment(ctx: click.Context, ident: str, deployment: str) -> None:
    """Remove one deployment from a model, keeping the others."""
    client = admin_client(ctx)
    model = _model(Lookup(client), ident)
    index = _index_of(model, deployment)
    if len(model["deployments"]) == 1:
        raise click.ClickException(
            f"{deployment!r} is the only deployment of {model['name']!r}; add another first, "
            "or delete the model"
        )
    deployments = [
        _as_input(d, model["name"]) for i, d in enumerate(model["deployments"]) if i != index
    ]
    _replace(ctx, client, model, deployments)


@models.command("set-deployment", epilog=DEPLOYMENT_ARGUMENT_HELP)
@admin_options
@click.argument("ident", metavar="MODEL")
@click.argument("deployment", metavar="DEPLOYMENT")
@click.option("--weight", type=WEIGHT, help="Share of traffic within its priority (1-1000).")
@click.option("--priority", type=PRIORITY, help="Lower is tried first (0-100).")
@click.option("--provider-model-name", metavar="NAME", help="The provider's name for the model.")
@click.option(
    "--reset-provider-model-name", is_flag=True, help="Send the model's own name upstream."
)
@click.pass_context
def set_deployment(
    ctx: click.Context,
    ident: str,
    deployment: str,
    weight: int | None,
    priority: int | None,
    provider_model_name: str | None,
    reset_provider_model_name: bool,
) -> None:
    """Change one deployment's weight or priority."""
    exclusive(
        ctx,
        provider_model_name=provider_model_name is not None,
        reset_provider_model_name=reset_provider_model_name,
    )
    changes: Row = {
        name: value
        for name, value in (
            ("weight", weight),
            ("priority", priority),
            ("provider_model_name", provider_model_name),
        )
        if value is not None
    }
    if reset_provider_model_name:
        changes["provider_model_name"] = None
    require_change(
        ctx, changes, "--weight, --priority, --provider-model-name, --reset-provider-model-name"
    )
    client = admin_client(ctx)
    model = _model(Lookup(client), ident)
    index = _index_of(model, deployment)
    deployments = [_as_input(d, model["name"]) for d in model["deployments"]]
    deployments[index].update(changes)
    _replace(ctx, client, model, deployments)
