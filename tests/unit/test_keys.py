"""The key store: derived keys per purpose, the fast HMAC agrees with the library, 0600 files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.domain.errors import ConfigurationError
from enclave.keys import KeyStore, Pseudonymiser, project_pseudonym, reference_hmac


def test_master_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    """Development creates the key on first use, private to the service account, and keeps it."""
    store = KeyStore(tmp_path / "keys" / "master.key", create=True)
    first = store.linkage_key()
    assert (tmp_path / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    assert KeyStore(tmp_path / "keys" / "master.key", create=True).linkage_key() == first
    assert store.init() is False


def test_production_never_invents_a_key(tmp_path: Path) -> None:
    """Without create, a missing key is an error naming the command to run."""
    with pytest.raises(ConfigurationError, match="enclave keys init"):
        KeyStore(tmp_path / "missing.key", create=False).linkage_key()


def test_readable_key_file_is_refused(tmp_path: Path) -> None:
    """A master key others can read is refused with the fix."""
    path = tmp_path / "master.key"
    KeyStore(path, create=True).init()
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        KeyStore(path, create=False).linkage_key()


def test_purposes_and_projects_get_distinct_keys(tmp_path: Path) -> None:
    """HKDF with a distinct info per purpose: linkage, each project and the fingerprint all differ."""
    store = KeyStore(tmp_path / "m.key", create=True)
    keys = {store.linkage_key(), store.project_key(1), store.project_key(2), store.derive("fingerprint/v1")}
    assert len(keys) == 4
    assert all(len(k) == 32 for k in keys)
    assert len(store.fingerprint()) == 16
    assert project_pseudonym(store, 1, "abc") != project_pseudonym(store, 2, "abc")


@given(key=st.binary(min_size=1, max_size=100), values=st.lists(st.text(max_size=30), max_size=20))
def test_fast_hmac_matches_the_standard_library(key: bytes, values: list[str]) -> None:
    """The precomputed-state HMAC gives exactly hmac.new(...).hexdigest() truncated to 128 bits."""
    fast = Pseudonymiser(key)
    expected = [reference_hmac(key, v) for v in values]
    assert fast.many(values) == expected
    assert [fast.one(v) for v in values] == expected
    assert all(len(p) == 32 for p in expected)
