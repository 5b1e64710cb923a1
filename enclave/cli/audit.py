"""``enclave audit``: verify and export the tamper-evident audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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
