"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from enclave.cli import app
from enclave.config import Settings

Invoke = Callable[..., Result]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``enclave ...`` in-process against the test's home and database; asserts exit 0 unless
    ``ok=False``."""
    monkeypatch.setenv("ENCLAVE_HOME", str(settings.home))
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", settings.database)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, ok: bool = True) -> Result:
        result = runner.invoke(app, list(args), input=input)
        if ok:
            assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    return invoke
