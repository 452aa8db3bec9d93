"""The ``nexus`` command: the app's models, nodes and workflows as commands.

``nexus --app module:attr`` (or ``NEXUS_APP``) names the user's Nexus (or DataFlow) object. Commands
run in-process through the same service as REST and MCP, or, with ``--url``, against a running
server over HTTP; either way the credentials given (``--api-key``, ``--token``, ``--tenant``)
are checked by the same rules.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from pydantic_core import to_jsonable_python

from kailash.servers.gateway.auth import Credentials
from kailash.servers.gateway.errors import GatewayConfigurationError, GatewayError
from kailash.servers.gateway.protocol import DataSource, ModelInfo
from kailash.servers.gateway.schemas import split_names, validate
from nexus.app import Nexus
from nexus.channels.remote import RemoteClient
from nexus.channels.render import render

APP_ENV = "NEXUS_APP"
_STATE = "nexus.state"


def load_app(path: str) -> Nexus:
    """The Nexus at ``module:attribute`` (default attribute ``nexus``); a DataFlow is wrapped."""
    module_name, _, attribute = path.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like ``python -m``: modules next to the caller
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import '{module_name}' (from --app {path}): {exc}") from exc
    attribute = attribute or "nexus"
    found = getattr(module, attribute, None)
    if isinstance(found, Nexus):
        return found
    if isinstance(found, DataSource):
        return Nexus(module_name, dataflow_integration=found)
    raise click.UsageError(
        f"--app {path}: '{module_name}.{attribute}' is "
        f"{'missing' if found is None else type(found).__name__}; name a Nexus or DataFlow object"
    )


class LocalClient:
    """Runs commands in this process, through the app's service."""

    def __init__(self, nexus: Nexus, credentials: Credentials) -> None:
        self.service = nexus.service
        self.credentials = credentials

    def call(self, model: ModelInfo, op: str, raw: dict[str, Any]) -> Any:
        caller = self.service.auth.resolve(self.credentials)
        args = validate(self.service.schemas(model).args[op], raw)
        return self.service.call(caller, model, op, args)

    def execute(self, name: str, raw: dict[str, Any]) -> Any:
        caller = self.service.auth.resolve(self.credentials)
        args = validate(self.service.executable(name).schema, raw)
        return self.service.execute(caller, name, args)


@dataclass(slots=True)
class _State:
    app: str | None
    url: str | None
    credentials: Credentials
    loaded: Nexus | None = field(default=None)

    def nexus(self) -> Nexus:
        if self.loaded is None:
            if not self.app:
                raise click.UsageError(
                    f"name your app with --app module:attribute or the {APP_ENV} variable"
                )
            nexus = load_app(self.app)
            if not nexus.enable_cli:
                raise click.UsageError(f"{nexus.title} has enable_cli=False")
            self.loaded = nexus
        return self.loaded

    def client(self) -> LocalClient | RemoteClient:
        if self.url:
            auth = self.nexus().service.auth
            return RemoteClient(self.url, self.credentials, auth.api_key_header, auth.tenant_header)
        return LocalClient(self.nexus(), self.credentials)


def _state(ctx: click.Context) -> _State:
    root = ctx.find_root()
    state = root.meta.get(_STATE)
    if state is None:
        params = root.params
        credentials = Credentials(params.get("api_key"), params.get("token"), params.get("tenant"))
        # ``--help`` may be handled before the environment fills ``--app``: read it directly.
        app = params.get("app") or os.environ.get(APP_ENV)
        state = root.meta[_STATE] = _State(app, params.get("url"), credentials)
    return state


def _run(
    ctx: click.Context, action: Callable[[LocalClient | RemoteClient], Any], as_json: bool
) -> None:
    try:
        output = action(_state(ctx).client())
    except GatewayError as error:
        where = f" (field {error.field})" if error.field else ""
        raise click.ClickException(f"{error.status} {error.code}: {error.message}{where}") from None
    click.echo(render(to_jsonable_python(output), as_json))


# -- options generated from a request schema -----------------------------------------------


class JSONValue(click.ParamType):
    """An option value written as JSON (filters, rows, lists)."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            self.fail(f"not valid JSON: {exc}", param, ctx)


class TextList(click.ParamType):
    """``--fields name,price`` and ``--sort -price,name`` (or a JSON sort)."""

    name = "list"

    def __init__(self, json_too: bool = False) -> None:
        self.json_too = json_too

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if self.json_too and value.lstrip()[:1] in ("[", "{"):
            return JSONValue().convert(value, param, ctx)
        return split_names(value)


_CLICK_TYPES: dict[str, click.ParamType] = {
    "integer": click.INT,
    "number": click.FLOAT,
    "string": click.STRING,
    "json": JSONValue(),
}


def _kind(prop: dict[str, Any]) -> str:
    """The JSON-schema type of a property: integer, number, boolean, string or json."""
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    kinds = {p.get("type") for p in options}
    if len(kinds) == 1:
        kind = kinds.pop()
        return kind if kind in ("integer", "number", "boolean", "string") else "json"
    return "string" if kinds == {"number", "string"} else "json"  # Decimal: its text form


def schema_options(schema: Any) -> list[click.Parameter]:
    """An option per property of a request schema: ``--customer-id``, ``--active/--no-active``."""
    spec = schema.model_json_schema()
    required = set(spec.get("required", []))
    options: list[click.Parameter] = []
    for name, prop in spec.get("properties", {}).items():
        flag = "--" + name.replace("_", "-")
        kind = _kind(prop)
        note = "required" if name in required else "optional"
        help_text = f"{name}: {prop.get('format', kind)}, {note}"
        if "default" in prop:
            help_text += f" (default {json.dumps(prop['default'])})"
        if kind == "boolean":
            decls = [f"{flag}/--no-{flag[2:]}", name]
            options.append(click.Option(decls, default=None, help=help_text))
        else:
            options.append(click.Option([flag, name], type=_CLICK_TYPES[kind], help=help_text))
    return options


_JSON_FLAG = click.Option(["--json", "as_json"], is_flag=True, help="Print JSON, not a table.")

Action = Callable[[LocalClient | RemoteClient, dict[str, Any]], Any]


def _command(
    name: str, help_text: str, params: list[click.Parameter], action: Action
) -> click.Command:
    """A command whose given values become one client call."""
    if any(p.name in ("json", "as_json") for p in params):
        raise click.UsageError(f"{name}: a field named 'json' clashes with the --json flag")

    @click.pass_context
    def callback(ctx: click.Context, as_json: bool, **values: Any) -> None:
        given = {k: v for k, v in values.items() if v is not None}
        _run(ctx, lambda client: action(client, given), as_json)

    return click.Command(name, callback=callback, params=[*params, _JSON_FLAG], help=help_text)


# -- resource groups: nexus products create|list|get|update|delete ---------------------------


def _flag(name: str, help_text: str) -> click.Option:
    """``--count-total``: True when given, else left to the operation's default."""
    flag = "--" + name.replace("_", "-")
    return click.Option([flag, name], is_flag=True, default=None, help=help_text)


def _deleted() -> click.Option:
    return _flag("include_deleted", "Include soft-deleted records.")


def _list_options() -> list[click.Parameter]:
    return [
        click.Option(["--filter", "filter"], type=JSONValue(), help='A filter: {"price": 10}.'),
        click.Option(["--sort"], type=TextList(json_too=True), help="Names, '-' for descending."),
        click.Option(["--limit"], type=click.IntRange(min=0)),
        click.Option(["--offset"], type=click.IntRange(min=0)),
        click.Option(["--fields"], type=TextList(), help="Comma-separated field names."),
        _flag("count_total", "Also count every matching record."),
        click.Option(["--after"], help="Resume after a page: its next_cursor."),
        _deleted(),
    ]


def _audit_options() -> list[click.Parameter]:
    when = "A date (the whole day, for --end) or an ISO-8601 datetime."
    return [
        click.Option(
            ["--action-type", "action_type"], type=TextList(), help="Actions, e.g. update."
        ),
        click.Option(["--start"], help=when),
        click.Option(["--end"], help=when),
        click.Option(["--limit"], type=click.IntRange(min=0)),
        click.Option(["--offset"], type=click.IntRange(min=0)),
        _flag("count_total", "Also count every matching entry."),
    ]


def _trail(values: dict[str, Any]) -> dict[str, Any]:
    """The audit operation's arguments from the command's: --start/--end are its date_range."""
    window = {k: values.pop(k) for k in ("start", "end") if k in values}
    return {**values, "date_range": window} if window else values


def resource_group(nexus: Nexus, model: ModelInfo) -> click.Group:
    """``nexus <plural> create|list|get|update|delete|restore|audit``, for the operations served."""
    schemas = nexus.service.schemas(model)
    ops = nexus.service.operations(model)
    fields = ", ".join(f.name for f in model.fields)
    group = click.Group(model.plural, help=f"{model.name} records: {fields}.")
    key_type = click.INT if model.pk.type is int else click.STRING
    pk = click.Argument(["id"], type=key_type)

    def offered(op: str, options: list[click.Parameter]) -> list[click.Parameter]:
        """The options the operation takes (a data source's list may lack some)."""
        taken = schemas.args[op].model_fields if op in schemas.args else {}
        return [o for o in options if o.name in taken]

    def calling(op: str, convert: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> Action:
        return lambda client, values: client.call(model, op, convert(values))

    name, plural = model.name, model.plural
    commands: list[tuple[str, str, str, list[click.Parameter]]] = [
        ("create", "create", f"Create a {name}.", schema_options(schemas.create)),
        ("list", "list", f"List {plural}.", offered("list", _list_options())),
        ("get", "read", f"Show one {name}.", [pk, *offered("read", [_deleted()])]),
        ("update", "update", f"Change fields of a {name}.", [pk, *schema_options(schemas.patch)]),
        ("delete", "delete", f"Delete a {name}.", [pk]),
        ("restore", "restore", f"Bring back a soft-deleted {name}.", [pk]),
    ]
    for command, op, help_text, params in commands:
        if op in ops:
            group.add_command(_command(command, help_text, params, calling(op)))
    if "audit" in ops:
        record = click.Argument(["record_id"], type=key_type, required=False)
        help_text = f"The audit trail of {plural}, or of the one with the given id."
        params = [record, *_audit_options()]
        group.add_command(_command("audit", help_text, params, calling("audit", _trail)))
    return group


class ExecuteGroup(click.Group):
    """``nexus execute <NodeType or workflow> --param value ...``"""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_state(ctx).nexus().service.executables())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = _state(ctx).nexus().service.executables().get(name)
        if target is None:
            return None
        return _command(
            name,
            target.description,
            schema_options(target.schema),
            lambda client, values: client.execute(name, values),
        )


class NexusGroup(click.Group):
    """The root command: built-in commands, then one group per model of the app."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        state = _state(ctx)
        if state.app:
            nexus = state.nexus()
            if nexus.auto_generate_cli_commands:
                names += [m.plural for m in nexus.service.models()]
        return names

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is not None:
            return found
        nexus = _state(ctx).nexus()
        if not nexus.auto_generate_cli_commands:
            return None
        model = next((m for m in nexus.service.models() if m.plural == name), None)
        return resource_group(nexus, model) if model is not None else None


@click.group(cls=NexusGroup)
@click.option("--app", envvar=APP_ENV, is_eager=True, help="The app: module:attribute.")
@click.option("--url", envvar="NEXUS_URL", help="Call a running server instead (http://host:port).")
@click.option("--api-key", envvar="NEXUS_API_KEY", help="An API key.")
@click.option("--token", envvar="NEXUS_TOKEN", help="A JWT bearer token.")
@click.option("--tenant", envvar="NEXUS_TENANT", help="The tenant to act for.")
def main(**_: Any) -> None:
    """Nexus: your DataFlow models, nodes and workflows from the command line."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the REST API (and MCP at /mcp) with uvicorn."""
    nexus = _state(ctx).nexus()
    if not (nexus.enable_api or nexus.enable_mcp):
        raise click.UsageError(f"{nexus.title} has neither the API nor MCP enabled")
    try:
        nexus.run(host=host, port=port)
    except GatewayConfigurationError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.pass_context
def mcp(ctx: click.Context) -> None:
    """Serve MCP over stdin/stdout, acting with --api-key / --token / --tenant."""
    import anyio

    state = _state(ctx)
    if state.url:
        raise click.UsageError(
            f"nexus mcp serves the app itself; a running server has MCP at {state.url}/mcp"
        )
    try:
        anyio.run(state.nexus().serve_mcp_stdio, state.credentials)
    except GatewayError as error:
        raise click.ClickException(f"{error.status} {error.code}: {error.message}") from None


main.add_command(ExecuteGroup("execute", help="Execute a node type or a registered workflow."))
