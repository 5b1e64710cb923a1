"""Alembic environment: online migrations against the configured URL."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from enclave.db.models import Base
from enclave.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _pragma(connection: Connection, statement: str) -> list[Any]:
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a table (copy, drop, rename), which SQLite's foreign keys
            # would refuse while other tables point at it; they are checked as a whole afterwards.
            # Straight on the driver's connection: outside a transaction, where SQLite honours it.
            _pragma(connection, "PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = _pragma(connection, "PRAGMA foreign_key_check")
            _pragma(connection, "PRAGMA foreign_keys=ON")
            if broken:
                raise SystemExit(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `enclave db upgrade` against a database")
run_migrations_online()
