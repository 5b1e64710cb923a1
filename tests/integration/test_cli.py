"""The `enclave` command against a real database: users, tokens, audit verify/export, errors."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from enclave.cli import app
from enclave.db.models import AuditEventRow
from enclave.domain.audit.chain import AuditEvent, chain_event
from enclave.wiring import Services


def test_users_lifecycle_through_the_cli(cli) -> None:
    """add, list, grant, revoke, accredit, token, tokens, revoke-token, deactivate all work and say so."""
    out = cli("users", "add", "alice", "--role", "admin", "--name", "Alice A").stdout
    assert "created alice (roles: admin)" in out
    assert "password: " in out
    cli("users", "add", "bob", "--role", "researcher", "--password-stdin", input="a very long password\n")
    assert "bob now holds: custodian, researcher" in cli("users", "grant", "bob", "custodian").stdout
    assert "bob now holds: researcher" in cli("users", "revoke", "bob", "custodian").stdout
    assert "until 2030-01-31" in cli("users", "accredit", "bob", "--until", "2030-01-31").stdout
    listing = [json.loads(line) for line in cli("users", "list", "--json").stdout.splitlines()]
    assert {u["username"]: u["roles"] for u in listing} == {"alice": ["admin"], "bob": ["researcher"]}
    token_out = cli("users", "token", "bob", "--name", "laptop", "--expires-in", "7d").stdout
    secret = token_out.strip().splitlines()[-1]
    assert secret.startswith("enc_")
    tokens = cli("users", "tokens", "bob").stdout
    assert "laptop" in tokens
    assert "valid" in tokens
    assert secret not in tokens
    assert "revoked" in cli("users", "revoke-token", "1").stdout
    assert "deactivated" in cli("users", "deactivate", "bob").stdout
    assert "events verified" in cli("audit", "verify").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "grant", "ghost", "admin"], "no user named 'ghost'"),
        (["users", "add", "Bad Name"], "invalid username"),
        (["users", "add", "x1", "--role", "root"], "unknown role 'root'"),
        (["users", "token", "ghost", "--expires-in", "soon"], "cannot read duration"),
        (["users", "accredit", "ghost"], "give either --until"),
        (["users", "accredit", "ghost", "--until", "31/01/2030"], "use YYYY-MM-DD"),
        (["users", "revoke-token", "42"], "no token with id 42"),
        (["ingest", "missing.yaml", "x.csv"], "spec file missing.yaml does not exist"),
        (["catalog", "show", "nothing"], "no dataset named 'nothing'"),
        (["optout", "load", "nowhere.csv"], "nowhere.csv does not exist"),
        (["synth", "--persons", "0", "--out", "out"], "persons"),
        (["synth", "--format", "xlsx"], "unknown format 'xlsx'"),
    ],
)
def test_user_errors_are_one_line_and_non_zero(cli, args: list[str], message: str) -> None:
    """Every mistake ends with exit 1 and a single line saying what is wrong."""
    result = cli(*args, ok=False)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_every_command_has_help(cli) -> None:
    """--help works on every command and group."""
    import typer.main

    group = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    for name, sub in group.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for child in getattr(sub, "commands", {}):
            paths.append([name, child])
    for path in paths:
        result = cli(*path, "--help")
        assert "Usage" in result.stdout, path
    assert len(paths) > 15


def _tamperable(services: Services) -> None:
    """What an attacker who owns the database can do: remove the append-only triggers."""
    with services.db.session() as session:
        if services.db.dialect == "sqlite":
            session.execute(text("DROP TRIGGER audit_events_no_update"))
            session.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            session.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))


def _seed(services: Services, n: int = 6) -> None:
    from tests.conftest import OPERATOR

    for i in range(n):
        services.identity.create_user(OPERATOR, username=f"user{i}", password=None)


def _edit(services: Services) -> None:
    with services.db.session() as s:
        s.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))


def _delete(services: Services) -> None:
    with services.db.session() as s:
        s.execute(text("DELETE FROM audit_events WHERE seq = 3"))


def _insert(services: Services) -> None:
    """Renumber the events from 3 on and slip a well-formed forged event in at 3."""
    with services.db.session() as s:
        s.execute(text("UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3"))
        s.execute(text("UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000"))
        prev_hash = s.execute(text("SELECT hash FROM audit_events WHERE seq = 2")).scalar_one()
        forged = chain_event(
            AuditEvent("user.created", "mallory", "user", "ghost"),
            seq=3,
            at=datetime.now(UTC),
            prev_hash=prev_hash,
        )
        s.add(AuditEventRow(**{f.name: getattr(forged, f.name) for f in dataclasses.fields(forged)}))


def _swap(services: Services) -> None:
    with services.db.session() as s:
        s.execute(text("UPDATE audit_events SET seq = 1002 WHERE seq = 2"))
        s.execute(text("UPDATE audit_events SET seq = 2 WHERE seq = 3"))
        s.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = 1002"))


@pytest.mark.parametrize(
    ("tamper", "failed_event", "reason"),
    [
        (_edit, 3, "edited"),
        (_delete, 3, "deleted"),
        (_insert, 4, "inserted"),
        (_swap, 2, "reordered"),
    ],
    ids=["edited", "deleted", "inserted", "swapped"],
)
def test_audit_verify_names_the_first_tampered_event(
    cli, services: Services, tamper, failed_event: int, reason: str
) -> None:
    """`enclave audit verify` exits 0 on an intact chain and 1 naming the first broken event."""
    _seed(services)
    assert "6 events verified" in cli("audit", "verify").stdout
    _tamperable(services)
    tamper(services)
    result = cli("audit", "verify", ok=False)
    assert result.exit_code == 1
    assert f"broken at event {failed_event}:" in result.stderr
    assert reason in result.stderr


def test_audit_export_writes_json_lines_that_verify_alone(cli, services: Services, tmp_path: Path) -> None:
    """The export has one JSON object per event with its hashes; re-verifying it needs no database."""
    from enclave.domain.audit.chain import ChainedEvent, verify_chain

    _seed(services, 4)
    out = tmp_path / "audit.jsonl"
    cli("audit", "export", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4]
    assert lines[0]["action"] == "user.created"
    events = [
        ChainedEvent(
            seq=e["seq"],
            at=datetime.fromisoformat(e["at"].replace("Z", "+00:00")),
            actor=e["actor"],
            action=e["action"],
            object_type=e["object_type"],
            object_id=e["object_id"],
            details_json=json.dumps(e["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            prev_hash=e["prev_hash"],
            hash=e["hash"],
        )
        for e in lines
    ]
    assert verify_chain(events).ok
    assert cli("audit", "export").stdout.count("\n") == 4


def test_custodian_pipeline_through_the_cli(cli, services: Services, tmp_path: Path) -> None:
    """keys init, optout load, ingest (with its report), catalog list/show/versions/linkage/dcat."""
    from enclave.domain.identity.accounts import Role
    from tests.conftest import make_account
    from tests.integration.test_ingest import HEADER, P1, ROWS_BAD, ROWS_OK, SPECS

    make_account(services, "custodian", Role.CUSTODIAN)
    assert "master key" in cli("keys", "init").stdout
    optouts = tmp_path / "optouts.txt"
    optouts.write_text(f"{P1}\n")
    assert "1 people" in cli("optout", "load", str(optouts)).stdout
    extract = tmp_path / "admissions.csv"
    extract.write_text("\n".join([HEADER, *ROWS_OK, *ROWS_BAD]) + "\n")
    report_path = tmp_path / "report.json"
    out = cli("ingest", str(SPECS / "admissions.yaml"), str(extract), "--report", str(report_path)).stdout
    assert "admissions v1:" in out
    assert "quarantined" in out
    assert "duplicate row" in out
    report = json.loads(report_path.read_text())
    assert report["rows_opted_out"] == 2
    assert report["rows_quarantined"] == len(ROWS_BAD)
    assert "admissions" in cli("catalog", "list").stdout
    shown = json.loads(cli("catalog", "show", "admissions").stdout)
    assert shown["rows"] == len(ROWS_OK) - 2
    versions = json.loads(cli("catalog", "versions", "admissions").stdout)
    assert versions[0]["source_sha256"] == report["source_sha256"]
    assert "admissions" in cli("catalog", "linkage").stdout
    assert "every current version has its view" in cli("catalog", "build-views").stdout
    assert (
        json.loads(cli("catalog", "dcat", "--base-url", "https://x.example").stdout)["@type"]
        == "dcat:Catalog"
    )


def test_access_requests_through_the_cli(cli, services: Services, tmp_path: Path) -> None:
    """request submit/list/show/decide/withdraw and projects list/suspend/reinstate/close/expire, acting
    --as users; every step shows the new state."""
    import yaml

    from enclave.domain.identity.accounts import Role
    from enclave.ingest.spec import parse_spec
    from enclave.synth import generate
    from tests.conftest import make_account
    from tests.integration.test_access import EXAMPLE, SPECS, actor

    make_account(services, "custodian", Role.CUSTODIAN)
    make_account(services, "researcher", Role.RESEARCHER)
    generate(200, 5, tmp_path / "pop")
    for dataset in ("demographics", "lab_results", "prescriptions"):
        spec = parse_spec((SPECS / f"{dataset}.yaml").read_text(), base=SPECS)
        services.catalog.ingest(actor(services, "custodian"), spec, tmp_path / "pop" / f"{dataset}.csv")
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["end_date"] = raw["end_date"].replace(year=2030)
    request_file = tmp_path / "request.yaml"
    request_file.write_text(yaml.safe_dump(raw))
    assert "request 1 submitted" in cli("request", "submit", str(request_file), "--as", "researcher").stdout
    assert "pending" in cli("request", "list").stdout
    assert json.loads(cli("request", "show", "1").stdout)["state"] == "submitted"
    for dataset in ("demographics", "lab_results"):
        out = cli(
            "request",
            "decide",
            "1",
            "--as",
            "custodian",
            "--dataset",
            dataset,
            "--decision",
            "approved",
            "--reason",
            "fine",
        ).stdout
        assert "under_review" in out
    out = cli(
        "request",
        "decide",
        "1",
        "--as",
        "custodian",
        "--dataset",
        "prescriptions",
        "--decision",
        "approved",
        "--reason",
        "fine",
        "--epsilon",
        "1.5",
        "--min-count",
        "20",
    ).stdout
    assert "project 1 created" in out
    assert "epsilon 1.5" in out
    assert "active" in cli("projects", "list").stdout
    assert "suspended" in cli("projects", "suspend", "1", "--reason", "check").stdout
    assert "active" in cli("projects", "reinstate", "1", "--reason", "checked").stdout
    assert "closed" in cli("projects", "close", "1", "--reason", "done", "--as", "researcher").stdout
    assert "0 project(s) expired" in cli("projects", "expire").stdout
    bad = cli(
        "request",
        "decide",
        "1",
        "--as",
        "custodian",
        "--dataset",
        "demographics",
        "--decision",
        "maybe",
        "--reason",
        "x",
        ok=False,
    )
    assert "unknown decision 'maybe'" in bad.stderr
    again = cli("request", "withdraw", "1", "--as", "researcher", ok=False)
    assert "cannot change access request from approved to withdrawn" in again.stderr
