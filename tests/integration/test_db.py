"""The metadata store on SQLite and PostgreSQL: migrations, pragmas, audit in the same transaction."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from enclave.config import Settings
from enclave.db.migrate import alembic_config, current_revision, ensure_schema, head_revision
from enclave.db.session import SqlUnitOfWork
from enclave.domain.access.requests import relations
from enclave.domain.audit.chain import AuditEvent
from enclave.domain.errors import ConfigurationError, Conflict
from enclave.domain.identity.accounts import Actor, Role, TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR
from tests.factories import make_project


def test_migrations_match_the_models(settings: Settings) -> None:
    """Alembic finds nothing to generate: the migrations create exactly what the models declare."""
    command.check(alembic_config(settings.database))


def test_schema_is_at_head_and_first_run_creates_it(services: Services) -> None:
    """A migrated database reports head; ensure_schema leaves it alone."""
    assert current_revision(services.db.engine) == head_revision(services.settings.database)
    assert ensure_schema(services.db.engine, services.settings.database) == "current"


def test_outdated_schema_is_refused_with_the_command_to_run(services: Services) -> None:
    """A database behind head is never migrated silently: the message says to run db upgrade."""
    with services.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(ConfigurationError, match="enclave db upgrade"):
        ensure_schema(services.db.engine, services.settings.database)


def test_connections_are_configured_for_concurrent_writers(services: Services) -> None:
    """SQLite runs in WAL with foreign keys and a busy timeout; PostgreSQL in read committed,
    which the row locks of the audit head rely on."""
    with services.db.engine.connect() as conn:
        if services.db.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        else:
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"


def test_foreign_keys_are_enforced(services: Services) -> None:
    """A token for a user that does not exist is refused by the database itself."""
    with pytest.raises(DBAPIError), services.db.session() as session:
        session.execute(
            text(
                "INSERT INTO api_tokens (user_id, kind, name, token_hash, prefix, created_at, expires_at)"
                " VALUES (999, 'personal', '', :h, 'enc_', :t, :t)"
            ),
            {"h": "0" * 64, "t": "2026-01-01 00:00:00"},
        )


def test_a_broken_unique_rule_reaches_the_domain_as_a_conflict(services: Services) -> None:
    """A repository write that breaks a unique rule raises the domain's Conflict (never SQLAlchemy's
    error), and the unit of work rolls back everything of that transaction, its audit event too."""
    from datetime import UTC, datetime

    def add(uow: SqlUnitOfWork, *usernames: str) -> None:
        for username in usernames:
            uow.users.add_user(
                username=username,
                display_name="",
                email="",
                organisation="",
                password_hash=None,
                roles=frozenset({Role.RESEARCHER}),
                accreditation_expires=None,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                audit=AuditEvent("user.created", "operator:tests", "user", username, {}),
            )

    with services.db.unit_of_work() as uow:
        add(uow, "alice")
    with (
        pytest.raises(Conflict, match="conflicts with one already recorded"),
        services.db.unit_of_work() as uow,
    ):
        add(uow, "bob", "alice")
    with services.db.unit_of_work(write=False) as uow:
        assert [u.username for u in uow.users.list_users()] == ["alice"]
        assert [e.object_id for e in uow.audit.iter_events()] == ["alice"]


def test_audit_events_are_append_only_in_the_database(services: Services) -> None:
    """UPDATE and DELETE on audit events are refused by a trigger, whatever the code does."""
    services.identity.create_user(OPERATOR, username="alice", password=None)
    for sql in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), services.db.session() as session:
            session.execute(text(sql))
    with services.db.unit_of_work(write=False) as uow:
        assert [e.actor for e in uow.audit.iter_events()] == ["operator:tests"]


def test_change_and_its_audit_event_commit_or_roll_back_together(services: Services) -> None:
    """If the transaction fails after the change, neither the change nor its audit event remain."""
    event = AuditEvent("user.created", "operator:tests", "user", "bob")
    from datetime import UTC, datetime

    with pytest.raises(RuntimeError, match="crash"), services.db.unit_of_work() as uow:  # noqa: PT012
        uow.users.add_user(
            username="bob",
            display_name="Bob",
            email="",
            organisation="",
            password_hash=None,
            roles=frozenset({Role.RESEARCHER}),
            accreditation_expires=None,
            created_at=datetime.now(UTC),
            audit=event,
        )
        raise RuntimeError("crash after the write")
    with services.db.unit_of_work(write=False) as uow:
        assert uow.users.get_by_username("bob") is None
        assert list(uow.audit.iter_events()) == []
        assert uow.audit.get_head()[0] == 0


def test_every_identity_change_is_audited(services: Services) -> None:
    """Each use case leaves exactly one event naming what changed, and the chain verifies."""
    identity = services.identity
    identity.create_user(OPERATOR, username="carol", password="a long enough password", roles=frozenset())
    identity.grant_role(OPERATOR, "carol", Role.CUSTODIAN)
    identity.revoke_role(OPERATOR, "carol", Role.CUSTODIAN)
    from datetime import date

    identity.set_accreditation(OPERATOR, "carol", date(2030, 1, 1))
    identity.set_password(OPERATOR, "carol", "another long password")
    issued = identity.issue_token(OPERATOR, "carol", kind=TokenKind.PERSONAL)
    identity.revoke_token(OPERATOR, issued.token.id)
    identity.set_active(OPERATOR, "carol", False)
    with services.db.unit_of_work(write=False) as uow:
        actions = [e.action for e in uow.audit.iter_events()]
    assert actions == [
        "user.created",
        "user.role_granted",
        "user.role_revoked",
        "user.accreditation_set",
        "user.password_set",
        "token.issued",
        "token.revoked",
        "token.revoked_all",
        "user.deactivated",
    ]
    assert services.audit.verify(OPERATOR).verified == len(actions)


def test_upgrading_to_0008_records_who_stands_to_each_existing_request(services: Services) -> None:
    """A database with requests from before 0008 gets the same parties the repository writes."""
    make_project(services, "lead0", title="A project before the upgrade")
    researcher = Actor.for_user(services.identity.get_user(OPERATOR, "lead0"))
    mine = services.access.list_requests(researcher)
    assert mine, "the factory made a request"

    def recorded() -> set[tuple[int, str, str]]:
        with services.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT request_id, username, relation FROM access_request_parties"))
            return {(r, u, rel) for r, u, rel in rows}

    written = recorded()
    assert written == {(r.id, u, rel.value) for r in mine for u, rel in relations(r)}
    config = alembic_config(services.settings.database)
    services.db.engine.dispose()
    command.downgrade(config, "0007")
    command.upgrade(config, "head")
    assert recorded() == written
