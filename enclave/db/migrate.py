"""Alembic, driven from code: ``enclave db upgrade`` and the first run of ``demo``/``serve``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from enclave.domain.errors import ConfigurationError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read '%' in a password as a placeholder.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def ensure_schema(engine: Engine, url: str) -> str:
    """Apply migrations to an empty database; refuse to run on one that is behind.

    Returns what was done ("created", "current").
    """
    current = current_revision(engine)
    head = head_revision(url)
    if current == head:
        return "current"
    if current is None:
        upgrade(url)
        return "created"
    raise ConfigurationError(
        f"the metadata database is at revision {current}, this Enclave needs {head}: "
        "back it up, then run `enclave db upgrade`"
    )
