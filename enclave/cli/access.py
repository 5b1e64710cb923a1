"""``enclave request`` and ``enclave projects``: access requests, custodians' decisions, and the
projects they approve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from enclave.cli.common import (
    AsUser,
    CliError,
    as_user,
    console_print,
    operator,
    out,
    parse_date,
    read_text,
    run,
    services,
)

request_app = typer.Typer(help="Access requests: submit, list, show, decide, withdraw.", no_args_is_help=True)
projects_app = typer.Typer(
    help="Projects: list, show, suspend, reinstate, revoke, close, expire.", no_args_is_help=True
)


def _print_request(request: Any) -> None:
    from enclave.api.routes.access import request_view

    console_print(json.dumps(request_view(request), indent=2))


@request_app.command("submit")
def request_submit(
    file: Annotated[Path, typer.Argument(help="the access request, YAML (see access_requests/examples)")],
    username: AsUser,
    draft: Annotated[bool, typer.Option(help="save as a draft without submitting")] = False,
) -> None:
    """Create an access request from a file, and submit it unless --draft."""
    from enclave.domain.access.form import parse_form

    def body() -> None:
        text = read_text(file)
        form = parse_form(text, source=file.name)
        with services() as s:
            request = s.access.create(as_user(s, username), form, submit=not draft)
        console_print(f"request {request.id} {request.state}: {request.form.title}")
        for part in request.parts:
            console_print(f"  {part.dataset:<16} {part.decision:<18} custodian {part.custodian}")

    run(body)


@request_app.command("list")
def request_list(
    username: Annotated[str | None, typer.Option("--as", help="only what this user can see")] = None,
) -> None:
    """List access requests with their state and each dataset's decision."""

    def body() -> None:
        with services() as s:
            who = as_user(s, username) if username else operator()
            requests = s.access.list_requests(who)
        table = Table("id", "state", "applicant", "title", "decisions", "project")
        for r in requests:
            decisions = ", ".join(f"{p.dataset}: {p.decision}" for p in r.parts)
            table.add_row(str(r.id), r.state, r.applicant, r.form.title, decisions, str(r.project_id or "-"))
        out.print(table)

    run(body)


@request_app.command("show")
def request_show(request_id: int) -> None:
    """Print one request, its form and its decisions, as JSON."""

    def body() -> None:
        with services() as s:
            _print_request(s.access.get(operator(), request_id))

    run(body)


@request_app.command("decide")
def request_decide(
    request_id: int,
    username: AsUser,
    dataset: Annotated[str, typer.Option(help="the dataset whose part you decide")],
    decision: Annotated[str, typer.Option(help="approved, rejected or changes_requested")],
    reason: Annotated[str, typer.Option(help="a sentence the applicant can read")],
    columns: Annotated[str | None, typer.Option(help="approve only these columns, comma-separated")] = None,
    epsilon: Annotated[str | None, typer.Option(help="approve at most this epsilon")] = None,
    end_date: Annotated[str | None, typer.Option(help="approve until this date, YYYY-MM-DD")] = None,
    min_count: Annotated[
        int | None, typer.Option(help="a stricter small-count threshold for outputs")
    ] = None,
) -> None:
    """Decide on your dataset's part of a request (as its custodian)."""
    from decimal import Decimal, InvalidOperation

    from enclave.domain.access.requests import Decision

    def body() -> None:
        try:
            chosen = Decision(decision)
        except ValueError:
            raise CliError(
                f"unknown decision {decision!r}: use approved, rejected or changes_requested"
            ) from None
        try:
            eps = Decimal(epsilon) if epsilon is not None else None
        except InvalidOperation:
            raise CliError(f"cannot read epsilon {epsilon!r}: use a number like 1.5") from None
        with services() as s:
            request = s.access.decide(
                as_user(s, username),
                request_id,
                dataset,
                chosen,
                reason,
                columns=[c.strip() for c in columns.split(",")] if columns else None,
                epsilon=eps,
                end_date=parse_date(end_date) if end_date else None,
                conditions={"min_count": min_count} if min_count is not None else None,
            )
            console_print(f"request {request.id} is {request.state}")
            if request.project_id is not None:
                project = s.access.project(operator(), request.project_id)
                console_print(
                    f"project {project.id} created: {project.title}; epsilon {project.epsilon};"
                    f" until {project.end_date}; scope {json.dumps(project.scope)}"
                )

    run(body)


@request_app.command("withdraw")
def request_withdraw(request_id: int, username: AsUser, reason: Annotated[str, typer.Option()] = "") -> None:
    """Withdraw your request."""

    def body() -> None:
        with services() as s:
            request = s.access.withdraw(as_user(s, username), request_id, reason)
        console_print(f"request {request.id} is {request.state}")

    run(body)


@projects_app.command("list")
def projects_list() -> None:
    """List projects with their state, dates, budget and members."""

    def body() -> None:
        from datetime import date as date_

        with services() as s:
            projects = s.access.projects(operator())
        table = Table("id", "state", "title", "until", "epsilon", "datasets", "members")
        for p in projects:
            table.add_row(
                str(p.id),
                p.effective_state(date_.today()),
                p.title,
                str(p.end_date),
                str(p.epsilon),
                ", ".join(sorted(p.scope)),
                ", ".join(f"{u} ({r})" for u, r in p.members.items()),
            )
        out.print(table)

    run(body)


def _project_command(target: str, help_text: str) -> None:
    from enclave.domain.access.states import ProjectState

    def command(
        project_id: int,
        reason: Annotated[str, typer.Option(help="why, for the audit log and the members")],
        username: Annotated[str | None, typer.Option("--as", help="act as this user")] = None,
    ) -> None:
        def body() -> None:
            with services() as s:
                who = as_user(s, username) if username else operator()
                project = s.access.set_project_state(who, project_id, ProjectState(target), reason)
            console_print(f"project {project.id} is {project.state}")

        run(body)

    command.__doc__ = help_text
    projects_app.command(
        {"active": "reinstate", "suspended": "suspend", "revoked": "revoke", "closed": "close"}[target]
    )(command)


_project_command("suspended", "Suspend a project: queries and workspaces stop at once.")
_project_command("active", "Reinstate a suspended project.")
_project_command("revoked", "Revoke a project for good.")
_project_command("closed", "Close a finished project (its lead, or an admin).")


@projects_app.command("amend")
def projects_amend(
    project_id: int,
    file: Annotated[Path, typer.Argument(help="the amended access request, YAML")],
    username: AsUser,
) -> None:
    """Ask to amend a project (its lead): the custodians decide as on a first request."""
    from enclave.domain.access.form import parse_form

    def body() -> None:
        text = read_text(file)
        with services() as s:
            request = s.access.amend(as_user(s, username), project_id, parse_form(text, source=file.name))
        console_print(f"amendment request {request.id} {request.state} for project {project_id}")

    run(body)


@projects_app.command("expire")
def projects_expire() -> None:
    """Record the expiry of projects whose end date has passed (run daily from cron)."""

    def body() -> None:
        with services() as s:
            expired = s.access.expire_due()
        console_print(
            f"{len(expired)} project(s) expired" + (f": {', '.join(map(str, expired))}" if expired else "")
        )

    run(body)
