"""``enclave audit``: verify and export the tamper-evident audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from enclave.cli.common import CliError, err, operator, out, run, services

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every link of the audit chain; exit 0 with the count, or 1 naming the first bad event."""

    def body() -> None:
        with services() as s:
            result = s.audit.verify(operator())
        if not result.ok:
            raise CliError(result.describe())
        out.print(result.describe(), highlight=False)

    run(body)


@audit_app.command("export")
def audit_export(
    output: Annotated[Path | None, typer.Option("--out", "-o", help="file to write; default stdout")] = None,
    after: Annotated[int, typer.Option(help="only events after this sequence number")] = 0,
) -> None:
    """Write the audit events as JSON lines (with their hashes, so the export verifies on its own)."""

    def body() -> None:
        with services() as s:
            events = s.audit.export(operator(), after_seq=after)
            if output is None:
                for ev in events:
                    sys.stdout.write(ev.to_json() + "\n")
                return
            tmp = output.with_name(output.name + ".partial")
            count = 0
            with tmp.open("w", encoding="utf-8") as handle:
                for ev in events:
                    handle.write(ev.to_json() + "\n")
                    count += 1
            tmp.replace(output)
            err.print(f"wrote {count} events to {output}")

    run(body)


executions_app = typer.Typer(
    help="The execution record: the code run in each project's workspaces.", no_args_is_help=True
)


@executions_app.command("list")
def executions_list(
    project: Annotated[int, typer.Argument(help="the project's number")],
    after: Annotated[int, typer.Option(help="only records after this sequence number")] = 0,
    limit: Annotated[int, typer.Option(help="at most this many records (1-1000)")] = 100,
) -> None:
    """Print a project's records, oldest first: number, time, user, kernel and the code."""

    def body() -> None:
        with services() as s:
            records = s.executions.page(operator(), project, after_seq=after, limit=limit)
        if not records:
            err.print(f"no records in project {project} after {after}")
        for r in records:
            heading = f"#{r.seq} {r.at:%Y-%m-%d %H:%M:%S} UTC  {r.username}  {r.kind} {r.kernel_id}"
            out.rule(escape(heading))  # the kernel's name is the server's to choose: never markup
            out.print(r.code + ("\n[truncated]" if r.truncated else ""), markup=False, highlight=False)

    run(body)


@executions_app.command("verify")
def executions_verify(project: Annotated[int, typer.Argument(help="the project's number")]) -> None:
    """Check a project's record link by link against the head the audit log pins; exit 1 if broken."""

    def body() -> None:
        with services() as s:
            result = s.executions.verify(operator(), project)
        if not result.ok:
            raise CliError(f"project {project}: {result.describe()}")
        out.print(f"project {project}: {result.describe()}", highlight=False)

    run(body)


@executions_app.command("purge")
def executions_purge(
    project: Annotated[int | None, typer.Argument(help="the project's number")] = None,
    due: Annotated[bool, typer.Option("--due", help="every project whose retention is over")] = False,
) -> None:
    """Delete a project's record once its retention is over (the project ended, and its end date
    plus ENCLAVE_EXECUTION_RETENTION_DAYS past); the purge itself is kept and audited."""

    def body() -> None:
        if (project is None) == (not due):
            raise CliError("name one project, or --due for every project whose retention is over")
        with services() as s:
            projects = s.executions.due(operator()) if due else [project]
            if due and not projects:
                out.print("no execution record is due for purging", highlight=False)
            for number in projects:
                assert number is not None
                purge = s.executions.purge(operator(), number)
                out.print(
                    f"project {number}: purged {purge.records} record(s), through #{purge.through_seq}",
                    highlight=False,
                )

    run(body)
