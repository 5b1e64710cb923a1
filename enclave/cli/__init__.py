"""The ``enclave`` command.

Run on the server by an operator who can read ENCLAVE_HOME; such an operator holds every right and
is recorded in the audit log as ``operator:<os user>``. Every error a user can cause ends with one
line on stderr and a non-zero exit.

This module builds the root app and registers the commands of its sub-modules, which import their
helpers from :mod:`enclave.cli.common` and never from here:

- ``common``: consoles, one-line errors (:func:`run`, :func:`fail`), the operator, ``--as``, parsers
- ``users``, ``audit``: accounts and tokens; the audit log
- ``catalog``: ``synth``, ``ingest``, ``catalog``, ``optout``, ``keys``
- ``access``: access ``request`` and ``projects``
- ``outputs``: the airlock
- ``server``: ``serve``, ``hub``, ``demo``, ``db``, ``config``
"""

from __future__ import annotations

from typing import Annotated

import typer

from enclave import __version__
from enclave.cli.access import projects_app, request_app
from enclave.cli.audit import audit_app, executions_app
from enclave.cli.catalog import catalog_app, ingest, keys_app, optout_app, synth
from enclave.cli.common import (
    AsUser,
    CliError,
    as_user,
    console_print,
    err,
    fail,
    operator,
    out,
    parse_date,
    parse_duration,
    read_text,
    run,
    services,
)
from enclave.cli.outputs import outputs_app
from enclave.cli.server import config_app, db_app, demo, hub, serve
from enclave.cli.users import users_app

__all__ = [
    "AsUser",
    "CliError",
    "app",
    "as_user",
    "audit_app",
    "catalog_app",
    "config_app",
    "console_print",
    "db_app",
    "err",
    "executions_app",
    "fail",
    "keys_app",
    "main",
    "operator",
    "optout_app",
    "out",
    "outputs_app",
    "parse_date",
    "parse_duration",
    "projects_app",
    "read_text",
    "request_app",
    "run",
    "services",
    "users_app",
]

app = typer.Typer(
    name="enclave",
    help="Enclave: a privacy-preserving analytics enclave for health data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# In the order `enclave --help` lists them: commands first, then groups.
app.command("synth")(synth)
app.command("ingest")(ingest)
app.command("serve")(serve)
app.command("hub")(hub)
app.command("demo")(demo)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(executions_app, name="executions")
app.add_typer(config_app, name="config")
app.add_typer(catalog_app, name="catalog")
app.add_typer(optout_app, name="optout")
app.add_typer(keys_app, name="keys")
app.add_typer(request_app, name="request")
app.add_typer(projects_app, name="projects")
app.add_typer(outputs_app, name="outputs")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"enclave {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """Enclave: a privacy-preserving analytics enclave for health data."""


def main() -> None:
    app()
