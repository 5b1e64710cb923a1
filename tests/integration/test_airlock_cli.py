"""The reviewers' command line (`enclave outputs list|show|decide`) and the generated state page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.outputs.states import diagrams_markdown
from enclave.wiring import Services
from tests.conftest import OPERATOR, make_account
from tests.factories import make_project
from tests.integration.conftest import Invoke

DOC = Path(__file__).resolve().parents[2] / "docs" / "airlock-states.md"


def _submitted(services: Services) -> int:
    project = make_project(services, "lead")
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "lead"))
    request = services.outputs.create(lead, project, context="Figures for the annual report.")
    services.outputs.add_file(lead, request.id, "note.md", b"# Note\n\nNo numbers here.\n")
    services.outputs.add_file(lead, request.id, "summary.txt", b"A summary without numbers.\n")
    services.outputs.submit(lead, request.id)
    return request.id


def test_reviewers_list_show_and_decide_from_the_shell(cli: Invoke, services: Services) -> None:
    """list shows what waits; show prints the checks as JSON; two decide calls release the files;
    mistakes are one line and a non-zero exit."""
    request_id = _submitted(services)
    for name in ("rev1", "rev2"):
        make_account(services, name, Role.REVIEWER)
    listing = cli("outputs", "list").stdout
    assert f"{request_id}" in listing
    assert "in_review" in listing
    shown: dict[str, Any] = json.loads(cli("outputs", "show", str(request_id)).stdout)
    assert [f["check_status"] for f in shown["files"]] == ["warn", "warn"]

    bad = cli("outputs", "decide", str(request_id), "--as", "rev1", "--decision", "maybe", ok=False)
    assert bad.exit_code == 1
    assert "use approve, request_changes or reject" in bad.stderr
    bad = cli("outputs", "decide", str(request_id), "--as", "lead", "--decision", "approve", ok=False)
    assert bad.exit_code == 1
    assert "reviewer role" in bad.stderr

    out = cli("outputs", "decide", str(request_id), "--as", "rev1", "--decision", "approve").stdout
    assert "is in_review" in out
    twice = cli("outputs", "decide", str(request_id), "--as", "rev1", "--decision", "approve", ok=False)
    assert "already decided" in twice.stderr
    out = cli(
        "outputs",
        "decide",
        str(request_id),
        "--as",
        "rev2",
        "--decision",
        "approve",
        "--file",
        "note.md=approve",
    ).stdout
    assert "is released" in out
    assert "released note.md sha256" in out
    assert str(request_id) not in cli("outputs", "list").stdout  # nothing waits any more
    assert "released" in cli("outputs", "list", "--all").stdout


def test_generated_state_page_in_the_docs_is_current() -> None:
    """docs/airlock-states.md is exactly what the tables generate (run `make docs` after a change)."""
    assert DOC.read_text() == diagrams_markdown()
