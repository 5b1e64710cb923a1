"""The execution record over real HTTP and the CLI, on SQLite and PostgreSQL: written only by a
workspace's server (its token and its key), read by the project's custodians and admins, a chain per
project that catches an edited record, a deleted last record, and concurrent appends that would fork."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from enclave.domain.audit.executions import ExecutionService
from enclave.domain.errors import InvalidState, PermissionDenied
from enclave.domain.identity.accounts import Role, TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.factories import make_project
from tests.helpers.portal import sign_in_http
from tests.integration.test_api import assert_error

SERVER_KEY = "X-Enclave-Server-Key"


def workspace(services: Services, project: int, member: str = "lead") -> tuple[str, str]:
    issued = services.identity.issue_token(OPERATOR, member, kind=TokenKind.WORKSPACE, project_id=project)
    return issued.secret, services.keys.workspace_server_key(issued.token.id)


def test_only_the_workspaces_server_writes_and_only_custodians_and_admins_read(services: Services) -> None:
    project = make_project(services, "lead")
    other = make_project(services, "omar")
    token, key = workspace(services, project)
    cell = {"kernel_id": "k-1", "kind": "cell", "code": "ws.run('demographics', count=True)"}
    custodian = services.identity.issue_token(OPERATOR, "factory-custodian", name="desk").secret
    admin = make_account(services, "ada", Role.ADMIN)
    member = services.identity.issue_token(OPERATOR, "lead", name="laptop").secret
    stranger = services.identity.issue_token(OPERATOR, "omar", name="laptop").secret
    with LiveServer(services) as api, api.workspace_client(token) as inside, api.client() as outside:
        assert_error(inside.post("/workspaces/executions", json=cell), 403, "permission_denied", "notebook")
        first = inside.post("/workspaces/executions", json=cell, headers={SERVER_KEY: key})
        assert first.status_code == 201, first.text
        assert first.json()["seq"] == 1
        second = inside.post(
            "/workspaces/executions",
            json={"kernel_id": "terminal 1", "kind": "terminal", "code": "ls -la"},
            headers={SERVER_KEY: key},
        )
        assert second.json()["seq"] == 2
        assert (
            inside.post(
                "/workspaces/executions", json={**cell, "kind": "shell"}, headers={SERVER_KEY: key}
            ).status_code
            == 422
        )
        # the reads are not on the workspace socket at all
        assert inside.get(f"/projects/{project}/executions").status_code == 404

        def read(secret: str, path: str = "") -> object:
            return outside.get(
                f"/projects/{project}/executions{path}", headers={"Authorization": f"Bearer {secret}"}
            )

        for reader in (custodian, admin.token):
            listed = read(reader)
            assert listed.status_code == 200, listed.text
            assert [(r["seq"], r["kind"], r["code"], r["username"]) for r in listed.json()] == [
                (1, "cell", cell["code"], "lead"),
                (2, "terminal", "ls -la", "lead"),
            ]
            assert read(reader, "/verify").json()["ok"] is True
        for refused in (member, stranger):
            assert_error(read(refused), 404, "not_found", "execution record")
        assert_error(read(token), 403, "permission_denied")
        assert (
            outside.get(
                f"/projects/{other}/executions", headers={"Authorization": f"Bearer {custodian}"}
            ).json()
            == []
        )
    recorded = [e for e in services.audit.export(OPERATOR) if e.action == "workspace.code_recorded"]
    assert [e.details["seq"] for e in recorded] == [1, 2]
    assert all("ls -la" not in e.details_json for e in recorded)  # the audit log pins, never copies


def _tamper(services: Services, statement: str) -> None:
    """What a database owner could do: switch the append-only trigger off and change a row."""
    with services.db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER execution_records_no_update"))
            conn.execute(text("DROP TRIGGER execution_records_no_delete"))
        else:
            conn.execute(text("ALTER TABLE execution_records DISABLE TRIGGER USER"))
        conn.execute(text(statement))


def test_the_chain_catches_an_edit_and_a_deleted_last_record(services: Services) -> None:
    project = make_project(services, "lead")
    ws = services.identity.authenticate(workspace(services, project)[0])
    for n in range(4):
        services.executions.record(ws, "k-1", "cell", f"x = {n}")
    assert services.executions.verify(OPERATOR, project).ok
    # the table refuses edits as it stands
    with services.db.engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE execution_records SET code = 'nothing to see' WHERE seq = 2"))
    _tamper(services, "UPDATE execution_records SET code = 'nothing to see' WHERE seq = 2")
    broken = services.executions.verify(OPERATOR, project)
    assert not broken.ok
    assert broken.failed_seq == 2
    assert "edited" in broken.describe()


def test_deleting_the_last_records_is_caught_by_the_audit_logs_pin(services: Services) -> None:
    project = make_project(services, "lead")
    ws = services.identity.authenticate(workspace(services, project)[0])
    for n in range(3):
        services.executions.record(ws, "k-1", "cell", f"x = {n}")
    _tamper(services, "DELETE FROM execution_records WHERE seq = 3")
    broken = services.executions.verify(OPERATOR, project)
    assert not broken.ok
    assert "deleted" in broken.describe()


def test_concurrent_cells_never_fork_the_chain(services: Services) -> None:
    project = make_project(services, "lead")
    ws = services.identity.authenticate(workspace(services, project)[0])
    errors: list[BaseException] = []

    def cell(n: int) -> None:
        try:
            services.executions.record(ws, f"k-{n % 3}", "cell", f"print({n})")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=cell, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = services.executions.page(OPERATOR, project, limit=1000)
    assert [r.seq for r in records] == list(range(1, 25))
    assert sorted(r.code for r in records) == sorted(f"print({n})" for n in range(24))
    assert services.executions.verify(OPERATOR, project).ok


def test_the_cli_lists_and_verifies(services: Services, cli: Any) -> None:
    project = make_project(services, "lead")
    ws = services.identity.authenticate(workspace(services, project)[0])
    services.executions.record(ws, "k-1", "cell", "print('[bold]not markup[/bold]')")
    listed = cli("executions", "list", str(project))
    assert "print('[bold]not markup[/bold]')" in listed.stdout
    assert "lead" in listed.stdout
    verified = cli("executions", "verify", str(project))
    assert "execution record intact: 1 records verified" in verified.stdout
    _tamper(services, "UPDATE execution_records SET code = 'x' WHERE seq = 1")
    broken = cli("executions", "verify", str(project), ok=False)
    assert broken.exit_code == 1
    assert "broken at record 1" in broken.output
    missing = cli("executions", "list", "999", ok=False)
    assert missing.exit_code == 1
    assert "no project 999" in missing.output


def _later(services: Services, days_after_end: int, project: int) -> ExecutionService:
    """The execution service as it will be ``days_after_end`` days after the project's end, with a
    retention of 30 days."""
    with services.db.unit_of_work(write=False) as uow:
        found = uow.access.get_project(project)
    assert found is not None
    then = datetime.combine(found.end_date + timedelta(days=days_after_end), time(12), tzinfo=UTC)
    return ExecutionService(services.db.unit_of_work, clock=lambda: then, retention_days=30)


def test_a_record_is_purged_only_after_its_retention_and_the_purge_is_kept(
    services: Services, cli: Any
) -> None:
    project = make_project(services, "lead")
    other = make_project(services, "omar")
    ws = services.identity.authenticate(workspace(services, project)[0])
    for n in range(3):
        services.executions.record(ws, "k-1", "cell", f"x = {n}")
    omar = services.identity.authenticate(workspace(services, other, "omar")[0])
    services.executions.record(omar, "k", "cell", "y")
    with pytest.raises(InvalidState, match="is active: its execution record is kept until"):
        services.executions.purge(OPERATOR, project)
    with pytest.raises(InvalidState, match="kept until"):
        _later(services, 30, project).purge(OPERATOR, project)  # the last day of its retention
    custodian = services.identity.authenticate(
        services.identity.issue_token(OPERATOR, "factory-custodian", name="desk").secret
    )
    later = _later(services, 31, project)
    with pytest.raises(PermissionDenied, match="admin or an operator"):
        later.purge(custodian, project)
    assert set(later.due(OPERATOR)) == {project, other}

    purge = later.purge(OPERATOR, project)
    assert (purge.records, purge.through_seq) == (3, 3)
    assert services.executions.page(OPERATOR, project) == []
    checked = services.executions.verify(OPERATOR, project)
    assert checked.ok, checked.describe()
    assert checked.verified == 0
    assert set(later.due(OPERATOR)) == {other}
    with pytest.raises(InvalidState, match="nothing to purge"):
        later.purge(OPERATOR, project)
    purged = [e for e in services.audit.export(OPERATOR) if e.action == "workspace.code_purged"]
    assert [(e.object_id, e.details["records"]) for e in purged] == [(str(project), 3)]
    # the database itself refuses to delete a record no purge reaches, or the purge
    for statement in (
        f"DELETE FROM execution_records WHERE project_id = {other}",
        "DELETE FROM execution_purges",
        "UPDATE execution_purges SET records = 0",
    ):
        with services.db.engine.begin() as conn, pytest.raises(Exception, match="append-only"):
            conn.execute(text(statement))
    # a record after the purge (the project reopened) carries on from the purged head
    after = services.executions.record(ws, "k-2", "cell", "z = 1")
    assert (after.seq, after.prev_hash) == (4, purge.head_hash)
    assert services.executions.verify(OPERATOR, project).verified == 1
    # the operator's sweep, from the command line (the CLI's services have today's clock: nothing due)
    assert "no execution record is due" in cli("executions", "purge", "--due").stdout
    refused = cli("executions", "purge", str(other), ok=False)
    assert refused.exit_code == 1
    assert "kept until" in refused.output
    assert "name one project" in cli("executions", "purge", ok=False).output


def test_the_custodians_portal_pages_the_record_and_shows_a_broken_chain(services: Services) -> None:
    project = make_project(services, "lead")
    ws = services.identity.authenticate(workspace(services, project)[0])
    for n in range(53):
        services.executions.record(ws, "k-1", "cell", f"x = {n}")
    custodian = Account("factory-custodian", "pw-factory-custodian-long-enough", "")
    make_account(services, "cleo", Role.CUSTODIAN)  # a custodian of no dataset of the project
    other = Account("cleo", "pw-cleo-long-enough", "")
    path = f"/portal/custodian/projects/{project}/executions"
    with LiveServer(services) as api, api.client() as web:
        assert sign_in_http(web, custodian).status_code == 303
        first = web.get(path)
        assert first.status_code == 200, first.text
        assert first.text.count('class="enclave-execution"') == 50
        assert 'data-check="intact"' in first.text
        assert "53 records checked" in first.text
        assert f"{path}?after=50" in first.text
        rest = web.get(f"{path}?after=50")
        assert [int(n) for n in re.findall(r'data-seq="(\d+)"', rest.text)] == [51, 52, 53]
        assert "?after=" not in rest.text  # no later page
        assert web.get(f"{path}?after=-1").status_code == 404  # a malformed address: no such page
        _tamper(services, "UPDATE execution_records SET code = 'x = 0 # nothing to see' WHERE seq = 7")
        broken = web.get(path)
        assert 'data-check="broken"' in broken.text
        assert "broken at record 7" in broken.text
        assert "content does not match its hash (edited)" in broken.text
    with LiveServer(services) as api, api.client() as web:
        assert sign_in_http(web, other).status_code == 303
        assert web.get(path).status_code == 404
        assert web.get(f"/portal/custodian/projects/{project}").status_code == 404
