"""Settings: the embedded default, the settings file, and production's refusal of weak secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.config import Settings, load_settings
from enclave.domain.errors import ConfigurationError


def test_embedded_default_keeps_everything_under_home(tmp_path: Path) -> None:
    """With nothing set, the database and every store live in ENCLAVE_HOME."""
    s = Settings(home=tmp_path / "h")
    assert s.database == f"sqlite:///{tmp_path / 'h' / 'enclave.db'}"
    for store in (s.research_store, s.key_store, s.holding_store, s.release_store, s.quarantine_store):
        assert store.parent == tmp_path / "h"
    s.ensure_home()
    assert (s.key_store.stat().st_mode & 0o777) == 0o700


def test_environment_overrides_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings file under ENCLAVE_HOME is read, and environment variables win over it."""
    home = tmp_path / "h"
    home.mkdir()
    (home / "enclave.toml").write_text('api_port = 9100\nlog_level = "debug"\n')
    monkeypatch.setenv("ENCLAVE_HOME", str(home))
    monkeypatch.setenv("ENCLAVE_API_PORT", "9200")
    s = load_settings()
    assert s.api_port == 9200
    assert s.log_level == "debug"


def test_explicit_settings_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A settings file that is named but missing is an error, not silently ignored."""
    monkeypatch.setenv("ENCLAVE_SETTINGS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="not a file"):
        load_settings()


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value is reported with the environment variable to fix."""
    monkeypatch.setenv("ENCLAVE_API_PORT", "seventy")
    with pytest.raises(ConfigurationError, match="ENCLAVE_API_PORT"):
        load_settings()


def test_production_refuses_missing_and_weak_secrets(tmp_path: Path) -> None:
    """Production mode names every secret to set; development generates one into the key store."""
    prod = Settings(home=tmp_path, mode="production")
    with pytest.raises(ConfigurationError, match=r"ENCLAVE_SECRET_KEY.*ENCLAVE_DATABASE_URL"):
        prod.check_safe_to_start()
    weak = Settings(home=tmp_path, mode="production", secret_key="changeme", database_url="postgresql://x/y")
    with pytest.raises(ConfigurationError, match="too weak"):
        weak.check_safe_to_start()
    Settings(
        home=tmp_path,
        mode="production",
        secret_key="k" * 10 + "9f8e7d6c5b4a39281706" + "z" * 10,
        database_url="postgresql://x/y",
    ).check_safe_to_start()
    dev = Settings(home=tmp_path / "dev")
    key = dev.resolved_secret_key()
    assert len(key) >= 32
    assert dev.resolved_secret_key() == key
    assert ((dev.key_store / "secret_key").stat().st_mode & 0o777) == 0o600
