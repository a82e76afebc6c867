"""`llm-gateway models ...`: public model names, their deployments and fallbacks.

A deployment is written `provider=NAME_OR_ID[,model=UPSTREAM_NAME][,weight=N][,priority=N]`
(or just the provider's name). The deployment commands live in `deployments.py`. Prices are
USD per million tokens; a model without them is logged without a cost.
"""

from __future__ import annotations

from typing import Any

import click

from llm_gateway.cli_admin.lookup import Lookup, is_uuid
from llm_gateway.cli_admin.options import (
    USD_OR_NONE,
    Clear,
    admin_client,
    admin_options,
    exclusive,
    given_values,
    require_change,
)
from llm_gateway.cli_admin.output import MODEL_COLUMNS, done, emit

WEIGHT = click.IntRange(1, 1000)
PRIORITY = click.IntRange(0, 100)
_SPEC_KEYS = {"provider": "provider", "model": "provider_model_name"}
DEPLOYMENT_HELP = (
    "A deployment: provider=NAME_OR_ID[,model=UPSTREAM_NAME][,weight=1..1000][,priority=0..100] "
    "(a bare provider name works too). Repeat for several; a lower priority number is tried first, "
    "weights share the traffic within a priority."
)


class DeploymentSpec(click.ParamType[dict[str, Any]]):
    """`--deployment provider=openai-main,model=gpt-4o-2024,weight=3,priority=0`."""

    name = "deployment"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        spec: dict[str, Any] = {}
        for position, part in enumerate(str(value).split(",")):
            key, sep, text = part.partition("=")
            key, text = key.strip(), text.strip()
            if not sep and position == 0:
                key, text = "provider", key
            if key not in {*_SPEC_KEYS, "weight", "priority"}:
                self.fail(
                    f"unknown part {part.strip()!r} in {value!r} "
                    "(expected provider=, model=, weight=, priority=)",
                    param,
                    ctx,
                )
            if key in spec or _SPEC_KEYS.get(key) in spec:
                self.fail(f"{key}= appears twice in {value!r}", param, ctx)
            if not text:
                self.fail(f"{key}= is empty in {value!r}", param, ctx)
            if key in ("weight", "priority"):
                bounds = WEIGHT if key == "weight" else PRIORITY
                try:
                    spec[key] = bounds.convert(text, param, ctx)
                except click.BadParameter as exc:
                    self.fail(f"{key} in {value!r}: {exc.message}", param, ctx)
            else:
                spec[_SPEC_KEYS[key]] = text
        if "provider" not in spec:
            self.fail(f"{value!r} names no provider (provider=NAME_OR_ID)", param, ctx)
        return spec


DEPLOYMENT = DeploymentSpec()


def deployment_body(lookup: Lookup, spec: dict[str, Any]) -> dict[str, Any]:
    """A deployment as the API takes it, the provider named by id."""
    body: dict[str, Any] = {"provider_id": lookup.id_of("providers", spec["provider"])}
    for key in ("provider_model_name", "weight", "priority"):
        if key in spec:
            body[key] = spec[key]
    return body


def fallback_names(lookup: Lookup, idents: tuple[str, ...]) -> list[str]:
    """Fallbacks go to the API by name; an id is turned into its model's name."""
    return [
        str(lookup.find("models", ident)["name"]) if is_uuid(ident.strip()) else ident.strip()
        for ident in idents
    ]


@click.group()
@admin_options
def models() -> None:
    """Manage models, their deployments and fallbacks."""


@models.command("list")
@admin_options
@click.pass_context
def model_list(ctx: click.Context) -> None:
    """List models with deployments and health."""
    emit(ctx, admin_client(ctx).get("/admin/models"), MODEL_COLUMNS)


def _routing_options(function: Any) -> Any:
    for decorator in reversed(
        [
            click.option(
                "--provider",
                "--provider-id",
                "provider",
                metavar="PROVIDER",
                help="The provider (name or id) serving it: one deployment.",
            ),
            click.option(
                "--provider-model-name",
                metavar="NAME",
                help="The provider's name for the model, when it differs (with --provider).",
            ),
            click.option(
                "--deployment",
                "deployments",
                multiple=True,
                type=DEPLOYMENT,
                metavar="SPEC",
                help=DEPLOYMENT_HELP,
            ),
            click.option(
                "--fallback",
                "fallbacks",
                multiple=True,
                metavar="MODEL",
                help="A model tried when every deployment fails; repeat, in order.",
            ),
            click.option(
                "--input-coefficient", type=float, help="Weight of an input token in budgets."
            ),
            click.option(
                "--output-coefficient", type=float, help="Weight of an output token in budgets."
            ),
            *(
                click.option(
                    f"--{kind}-price",
                    type=USD_OR_NONE,
                    metavar="USD|none",
                    help=f"USD per million {kind.replace('-', ' ')} tokens; none: {unset}.",
                )
                for kind, unset in (
                    ("input", "not priced"),
                    ("cached-input", "the input price"),
                    ("output", "not priced"),
                )
            ),
        ]
    ):
        function = decorator(function)
    return function


Price = float | Clear | None


def _prices(input_price: Price, cached_input_price: Price, output_price: Price) -> dict[str, Any]:
    return given_values(
        input_price_per_million=input_price,
        cached_input_price_per_million=cached_input_price,
        output_price_per_million=output_price,
    )


@models.command("create")
@admin_options
@click.option("--name", required=True, help="The name clients ask for.")
@_routing_options
@click.pass_context
def model_create(
    ctx: click.Context,
    name: str,
    provider: str | None,
    provider_model_name: str | None,
    deployments: tuple[dict[str, Any], ...],
    fallbacks: tuple[str, ...],
    input_coefficient: float | None,
    output_coefficient: float | None,
    input_price: Price,
    cached_input_price: Price,
    output_price: Price,
) -> None:
    """Map a model name to one or more deployments."""
    exclusive(ctx, provider=provider is not None, deployment=bool(deployments))
    exclusive(
        ctx, deployment=bool(deployments), provider_model_name=provider_model_name is not None
    )
    if provider is None and not deployments:
        raise click.UsageError("give --provider or at least one --deployment", ctx)
    client = admin_client(ctx)
    lookup = Lookup(client)
    body = given_values(
        name=name,
        provider_model_name=provider_model_name,
        input_token_coefficient=input_coefficient,
        output_token_coefficient=output_coefficient,
    )
    body.update(_prices(input_price, cached_input_price, output_price))
    if provider is not None:
        body["provider_id"] = lookup.id_of("providers", provider)
    else:
        body["deployments"] = [deployment_body(lookup, spec) for spec in deployments]
    if fallbacks:
        body["fallbacks"] = fallback_names(lookup, fallbacks)
    emit(ctx, client.call("POST", "/admin/models", body), MODEL_COLUMNS)


@models.command("update")
@admin_options
@click.argument("ident", metavar="MODEL")
@click.option("--name", help="Rename it.")
@_routing_options
@click.option(
    "--reset-provider-model-name", is_flag=True, help="Send the model's own name upstream."
)
@click.option("--no-fallbacks", is_flag=True, help="Remove every fallback.")
@click.option("--active/--inactive", default=None, help="Enable or disable it.")
@click.pass_context
def model_update(
    ctx: click.Context,
    ident: str,
    name: str | None,
    provider: str | None,
    provider_model_name: str | None,
    deployments: tuple[dict[str, Any], ...],
    fallbacks: tuple[str, ...],
    input_coefficient: float | None,
    output_coefficient: float | None,
    input_price: Price,
    cached_input_price: Price,
    output_price: Price,
    reset_provider_model_name: bool,
    no_fallbacks: bool,
    active: bool | None,
) -> None:
    """Change a model, given by name or id.

    --deployment and --fallback replace the lists; --provider replaces them with one.
    """
    renamed = provider_model_name is not None
    exclusive(ctx, provider_model_name=renamed, reset_provider_model_name=reset_provider_model_name)
    exclusive(ctx, provider=provider is not None, deployment=bool(deployments))
    exclusive(ctx, deployment=bool(deployments), provider_model_name=renamed)
    exclusive(
        ctx, deployment=bool(deployments), reset_provider_model_name=reset_provider_model_name
    )
    exclusive(ctx, fallback=bool(fallbacks), no_fallbacks=no_fallbacks)
    body: dict[str, Any] = given_values(
        name=name,
        provider_model_name=provider_model_name,
        input_token_coefficient=input_coefficient,
        output_token_coefficient=output_coefficient,
        is_active=active,
    )
    body.update(_prices(input_price, cached_input_price, output_price))
    if reset_provider_model_name:
        body["provider_model_name"] = None
    if no_fallbacks:
        body["fallbacks"] = []
    require_change(
        ctx,
        body or provider is not None or deployments or fallbacks,
        "--name, --provider, --provider-model-name, --reset-provider-model-name, --deployment, "
        "--fallback, --no-fallbacks, --input-coefficient, --output-coefficient, "
        "--input-price, --cached-input-price, --output-price, --active/--inactive",
    )
    client = admin_client(ctx)
    lookup = Lookup(client)
    model_id = lookup.id_of("models", ident)
    if provider is not None:
        body["provider_id"] = lookup.id_of("providers", provider)
    if deployments:
        body["deployments"] = [deployment_body(lookup, spec) for spec in deployments]
    if fallbacks:
        body["fallbacks"] = fallback_names(lookup, fallbacks)
    emit(ctx, client.call("PUT", f"/admin/models/{model_id}", body), MODEL_COLUMNS)


@models.command("delete")
@admin_options
@click.argument("ident", metavar="MODEL")
@click.pass_context
def model_delete(ctx: click.Context, ident: str) -> None:
    """Delete a model, given by name or id."""
    client = admin_client(ctx)
    model_id = Lookup(client).id_of("models", ident)
    client.call("DELETE", f"/admin/models/{model_id}")
    done(ctx, f"deleted model {ident}")
