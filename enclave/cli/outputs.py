"""``enclave outputs``: the airlock for output reviewers at the server's shell.

    enclave outputs list                     # requests waiting for a decision
    enclave outputs show 7                   # files, checks, visible reviews, outcome (JSON)
    enclave outputs decide 7 --as rev1 --decision approve
    enclave outputs decide 7 --as rev1 --decision approve --file figure.png=request_changes \\
        --comment "label the axes" --override "table.csv:provenance:percentages of released counts"
    enclave outputs import-acro 3 ./acro_outputs --as lead --context "Tables of the paper" --submit
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from enclave.cli.common import as_user, console_print, operator, out, run, services
from enclave.domain.errors import InvalidInput
from enclave.domain.outputs.review import CheckOverride, Decision, FileDecision
from enclave.domain.outputs.states import OutputState

outputs_app = typer.Typer(
    help="The airlock at the server's shell: list, show, decide; import-acro for a project member.",
    no_args_is_help=True,
)

WAITING = [OutputState.IN_REVIEW, OutputState.NEEDS_CONSOLIDATION]


def _decision(text: str) -> Decision:
    try:
        return Decision(text.strip())
    except ValueError:
        raise InvalidInput(f"unknown decision {text!r}: use approve, request_changes or reject") from None


@outputs_app.command("list")
def outputs_list(
    username: Annotated[str | None, typer.Option("--as", help="only what this user can see")] = None,
    all_states: Annotated[bool, typer.Option("--all", help="every state, not only those waiting")] = False,
) -> None:
    """List output requests waiting for a decision (or all of them with --all)."""

    def body() -> None:
        with services() as s:
            who = as_user(s, username) if username else operator()
            found = s.outputs.list_requests(who, states=None if all_states else WAITING)
        table = Table("id", "project", "state", "version", "author", "submitted", "context")
        for r in found:
            submitted = r.submitted_at.strftime("%Y-%m-%d %H:%M") if r.submitted_at else "-"
            table.add_row(
                str(r.id), str(r.project_id), r.state, str(r.version), r.author, submitted, r.context[:60]
            )
        out.print(table)

    run(body)


@outputs_app.command("show")
def outputs_show(
    output_id: int,
    username: Annotated[str | None, typer.Option("--as", help="see it as this user")] = None,
) -> None:
    """Print one request: files with their checks, visible reviews, outcome, releases (JSON)."""
    from enclave.api.routes.outputs import output_view

    def body() -> None:
        with services() as s:
            who = as_user(s, username) if username else operator()
            console_print(json.dumps(output_view(s.outputs.show(who, output_id)), indent=2))

    run(body)


@outputs_app.command("decide")
def outputs_decide(
    output_id: int,
    username: Annotated[str, typer.Option("--as", help="the reviewer deciding (audited with your name)")],
    decision: Annotated[
        str | None,
        typer.Option(help="approve, request_changes or reject, for every file not given by --file"),
    ] = None,
    file: Annotated[
        list[str] | None, typer.Option("--file", help="NAME=DECISION for one file (repeatable)")
    ] = None,
    comment: Annotated[
        str, typer.Option(help="a comment the researcher reads (needed unless approving)")
    ] = "",
    override: Annotated[
        list[str] | None,
        typer.Option(help="FILE:RULE:REASON - approve a file although a check failed (repeatable)"),
    ] = None,
) -> None:
    """Record your decision on every file of the current version of an output request."""

    def body() -> None:
        per_file: dict[str, Decision] = {}
        for item in file or []:
            name, sep, value = item.rpartition("=")
            if not sep or not name:
                raise InvalidInput(f"--file takes NAME=DECISION, not {item!r}")
            per_file[name] = _decision(value)
        overrides = []
        for item in override or []:
            parts = item.split(":", 2)
            if len(parts) != 3 or not all(p.strip() for p in parts):
                raise InvalidInput(f"--override takes FILE:RULE:REASON, not {item!r}")
            overrides.append(CheckOverride(parts[0].strip(), parts[1].strip(), parts[2].strip()))
        default = _decision(decision) if decision is not None else None
        with services() as s:
            who = as_user(s, username)
            view = s.outputs.show(who, output_id)
            names = [f.name for f in view.current_files]
            unknown = sorted(set(per_file) - set(names))
            if unknown:
                raise InvalidInput(f"{', '.join(unknown)} is not a file of output request {output_id}")
            missing = [n for n in names if n not in per_file and default is None]
            if missing:
                raise InvalidInput(
                    f"no decision for {', '.join(missing)}: give --decision or --file NAME=..."
                )
            decisions = [
                FileDecision(n, per_file.get(n) or default or Decision.APPROVE, comment) for n in names
            ]
            after = s.outputs.review(who, output_id, decisions, overrides)
        console_print(f"output request {output_id} is {after.request.state}")
        if after.outcome is not None:
            console_print(f"  {after.outcome.reason}")
        for released in after.released:
            console_print(f"  released {released.name} sha256 {released.sha256}")

    run(body)


@outputs_app.command("import-acro")
def outputs_import_acro(
    project_id: int,
    folder: Annotated[
        Path, typer.Argument(help="the folder acro.finalise(path, 'json') wrote (results.json)")
    ],
    username: Annotated[
        str, typer.Option("--as", help="the project member importing (audited with your name)")
    ],
    context: Annotated[str, typer.Option(help="why these outputs are needed (needed to submit)")] = "",
    controls: Annotated[
        str, typer.Option(help="the disclosure controls applied (default: the mitigations ACRO applied)")
    ] = "",
    submit: Annotated[
        bool, typer.Option("--submit", help="submit at once: Enclave's checks run beside ACRO's verdict")
    ] = False,
) -> None:
    """Open a draft output request from an ACRO results folder: its outputs with ACRO's verdicts."""

    def body() -> None:
        with services() as s:
            who = as_user(s, username)
            imported = s.outputs.import_acro(who, project_id, folder, context=context, controls=controls)
            request = imported.request
            if submit:
                request = s.outputs.submit(who, request.id)
            files = s.outputs.show(who, request.id).current_files
        console_print(
            f"output request {request.id} is {request.state}: {len(files)} file(s) imported from"
            f" ACRO {imported.version}"
        )
        for f in files:
            acro = f.spec.get("acro", {})
            line = f"  {f.name}  ACRO {acro.get('status', '-')}"
            if f.check_status is not None:
                line += f"; checks {f.check_status}"
                if f.failed_rules:
                    line += f" (failed: {', '.join(sorted(f.failed_rules))})"
            console_print(line)
        for reason in imported.skipped:
            console_print(f"  not imported: {reason}")
        if not submit:
            console_print(f"  submit it to send it to review (POST /outputs/{request.id}/submit)")

    run(body)
