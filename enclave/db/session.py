"""Engines, transactions and the unit of work.

SQLite: WAL journal, foreign keys on, a busy timeout, and write transactions opened with
``BEGIN IMMEDIATE`` so that concurrent writers (threads or processes) queue for the write lock
instead of failing when a read transaction tries to upgrade. PostgreSQL: writers that must be
serialised (the audit head, later the budget ledger) lock their row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from enclave.db.repositories import (
    SqlAccessRepository,
    SqlAuditLog,
    SqlBudgetRepository,
    SqlCatalogRepository,
    SqlOptOutRepository,
    SqlOutputRepository,
    SqlReleaseRepository,
    SqlTokenRepository,
    SqlUserRepository,
    is_unique_violation,
)
from enclave.domain.errors import Conflict

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "enclave_write"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {})["check_same_thread"] = False
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class SqlUnitOfWork:
    """The repositories of one transaction (implements ``enclave.domain.ports.UnitOfWork``)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.audit = SqlAuditLog(session)
        self.users = SqlUserRepository(session, self.audit)
        self.tokens = SqlTokenRepository(session, self.audit)
        self.catalog = SqlCatalogRepository(session, self.audit)
        self.opt_outs = SqlOptOutRepository(session, self.audit)
        self.access = SqlAccessRepository(session, self.audit)
        self.budgets = SqlBudgetRepository(session, self.audit)
        self.releases = SqlReleaseRepository(session, self.audit)
        self.outputs = SqlOutputRepository(session, self.audit)


class Database:
    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        factory = self._write if write else self._read
        with factory() as session:
            try:
                yield session
                if write:
                    session.commit()
                else:
                    session.rollback()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[SqlUnitOfWork]:
        """A transaction for the domain: a unique rule broken at commit is a :class:`Conflict`, as it is
        when a repository's write breaks it."""
        try:
            with self.session(write=write) as session:
                yield SqlUnitOfWork(session)
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise Conflict("this change conflicts with one already recorded") from exc
            raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
