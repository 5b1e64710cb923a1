"""Test infrastructure: a fresh, migrated database per test, on SQLite or PostgreSQL.

Choose the backend with ``--db sqlite|postgresql`` or by setting ``ENCLAVE_DATABASE_URL`` to a
PostgreSQL URL before running pytest (the URL names the server; each test gets its own database,
cloned from a migrated template and dropped afterwards). The ``ENCLAVE_*`` variables are then
cleared, so no test reads the developer's own settings.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from enclave.client import Workspace
from enclave.config import Settings
from enclave.db.migrate import upgrade
from enclave.domain.identity.accounts import Actor, Role
from enclave.wiring import Services, build_services

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_ENV_URL = os.environ.get("ENCLAVE_DATABASE_URL", "")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgresql"],
        default="postgresql" if _ENV_URL.startswith("postgresql") else "sqlite",
        help="metadata database backend for the tests (default: sqlite, or ENCLAVE_DATABASE_URL's)",
    )
    parser.addoption(
        "--all",
        action="store_true",
        help="with --db postgresql, also the tests that use no database (by default they run on SQLite only)",
    )


#: Read before the ENCLAVE_ variables are cleared (pytest_configure): CI sets it, so that a test
#: needing the sandbox or Chromium fails on a machine without them instead of skipping.
REQUIRE_SANDBOX = bool(os.environ.get("ENCLAVE_REQUIRE_SANDBOX"))


def pytest_configure(config: pytest.Config) -> None:
    for key in list(os.environ):
        if key.startswith("ENCLAVE_"):
            del os.environ[key]


def pytest_report_header(config: pytest.Config) -> str:
    return f"enclave metadata database: {config.getoption('--db')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, only the tests that use a database: the others ran once already, on SQLite
    (`make test` runs both; ``--all`` keeps them when PostgreSQL is the only run)."""
    if config.getoption("--db") != "postgresql" or config.getoption("--all"):
        return
    kept, independent = [], []
    for item in items:
        uses_db = "database_factory" in getattr(item, "fixturenames", ())
        (kept if uses_db else independent).append(item)
    if independent:
        config.hook.pytest_deselected(items=independent)
        items[:] = kept


class DatabaseFactory:
    """Hands out fresh migrated databases, cloned from one template per test session."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.server_url = _ENV_URL if _ENV_URL.startswith("postgresql") else DEFAULT_PG
        if backend == "sqlite":
            self.template = workdir / "template.db"
            upgrade(f"sqlite:///{self.template}")
        else:
            self.template_name = f"enclave_tpl_{uuid.uuid4().hex[:10]}"
            self._admin(f'CREATE DATABASE "{self.template_name}"')
            upgrade(self._url(self.template_name))

    def _url(self, name: str) -> str:
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def new(self, directory: Path) -> str:
        if self.backend == "sqlite":
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / "enclave.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        name = f"enclave_t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}"')
        return self._url(name)

    def drop(self, url: str) -> None:
        if self.backend == "sqlite":
            return
        name = make_url(url).database
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.backend != "sqlite":
            self._admin(f'DROP DATABASE IF EXISTS "{self.template_name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(request.config.getoption("--db"), tmp_path_factory.mktemp("db-template"))
    yield factory
    factory.close()


@pytest.fixture
def database_url(database_factory: DatabaseFactory, tmp_path: Path) -> Iterator[str]:
    url = database_factory.new(tmp_path / "home")
    yield url
    database_factory.drop(url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url)


class FakeClock:
    """A clock tests can move; starts at the real now."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(settings: Settings, clock: FakeClock) -> Iterator[Services]:
    built = build_services(settings, clock=clock)
    yield built
    built.close()


OPERATOR = Actor.operator("tests")


@dataclass
class Account:
    username: str
    password: str
    token: str
    roles: frozenset[Role] = field(default_factory=frozenset)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_account(services: Services, username: str, *roles: Role, accredited: bool = True) -> Account:
    """Create a user through the real identity service and give them a personal token."""
    password = f"pw-{username}-long-enough"
    services.identity.create_user(
        OPERATOR,
        username=username,
        password=password,
        roles=frozenset(roles),
        accreditation_expires=(datetime.now(UTC) + timedelta(days=365)).date() if accredited else None,
    )
    issued = services.identity.issue_token(OPERATOR, username, name="tests")
    return Account(username, password, issued.secret, frozenset(roles))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_pair() -> int:
    """A port p with p + 1 free too (the hub's proxy: public and API ports)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no free pair of ports")


class LiveServer:
    """The real API over real HTTP, as `enclave serve` runs it: uvicorn in background threads, the
    network application on a TCP port and the workspace application on a Unix socket (the one bound
    into workspaces, which alone takes workspace tokens)."""

    def __init__(self, services: Services) -> None:
        from enclave.api.app import create_app, create_workspace_app, server_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="enclave-api-")
        self.socket = str(Path(self._dir.name) / "api.sock")
        self.servers = [
            uvicorn.Server(
                server_config(create_app(services), host="127.0.0.1", port=self.port, log_level="warning")
            ),
            uvicorn.Server(
                server_config(
                    create_workspace_app(services), uds=self.socket, log_level="warning", lifespan="off"
                )
            ),
        ]
        self.threads = [threading.Thread(target=server.run, daemon=True) for server in self.servers]

    def __enter__(self) -> LiveServer:
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 60
        while not all(server.started for server in self.servers):
            if time.monotonic() > deadline or not all(thread.is_alive() for thread in self.threads):
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.should_exit = True
        for thread in self.threads:
            thread.join(timeout=60)
        # uvicorn may leave an accepted keep-alive socket to the garbage collector when its loop
        # ends; collect it here, where it belongs, rather than in whichever test runs next
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        self._dir.cleanup()

    def client(self, account: Account | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=account.headers if account else None, timeout=30)

    def workspace_client(self, token: str) -> httpx.Client:
        """A client of the workspace socket, as code in a workspace has it."""
        return httpx.Client(
            base_url="http://enclave",
            headers={"Authorization": f"Bearer {token}"},
            transport=httpx.HTTPTransport(uds=self.socket),
            timeout=30,
        )

    def workspace(self, token: str, project: int) -> Workspace:
        """The notebook client as a workspace has it (through the workspace socket)."""
        return Workspace("http://enclave", token, project, socket=self.socket)


@pytest.fixture
def api(services: Services) -> Iterator[LiveServer]:
    with LiveServer(services) as server:
        yield server
