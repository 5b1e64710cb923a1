"""The key store and keyed pseudonyms.

One master key (32 random bytes) lives in ``$ENCLAVE_HOME/keys/master.key`` (mode 0600) or at
``ENCLAVE_KEY_FILE`` (a file mounted from an external secret store). Every key Enclave uses is derived
from it with HKDF-SHA256 (RFC 5869, ``cryptography.hazmat.primitives.kdf.hkdf.HKDF``) and a distinct
``info`` per purpose, so no two purposes share key material:

- ``linkage/v1``: the person pseudonym at ingest, ``HMAC-SHA256(linkage key, normalised id)``;
- ``project-pseudonym/v1/<project>``: per-project pseudonyms, ``HMAC-SHA256(project key, person pseudonym)``,
  so anything a project could see (dummy data, output checks) never joins across projects;
- ``opt-out/v1`` is *not* separate: opt-outs are stored as linkage pseudonyms, so they match at ingest.

Pseudonyms are the first 128 bits of the HMAC, as 32 lower-case hex characters.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclave.domain.errors import ConfigurationError

MASTER_KEY_BYTES = 32
PSEUDONYM_HEX = 32  # 128 bits
_SALT = b"enclave key derivation v1"


class KeyStore:
    def __init__(self, path: Path, *, create: bool) -> None:
        """``path`` is the master key file. With ``create`` (development), a missing key is generated;
        otherwise (production) a missing key is an error, so a mistyped path never silently starts
        a new key and breaks linkage with everything already ingested."""
        self.path = path
        self._create = create
        self._master: bytes | None = None
        self._derived: dict[str, bytes] = {}

    def _load(self) -> bytes:
        if self._master is not None:
            return self._master
        if not self.path.exists():
            if not self._create:
                raise ConfigurationError(
                    f"no master key at {self.path}: create one with `enclave keys init`,"
                    " or point ENCLAVE_KEY_FILE at it"
                )
            self.init()
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigurationError(
                f"the master key {self.path} is readable by others (mode {mode:o}); chmod 600 it"
            )
        raw = bytes.fromhex(self.path.read_text().strip())
        if len(raw) != MASTER_KEY_BYTES:
            raise ConfigurationError(f"the master key {self.path} is not {MASTER_KEY_BYTES} bytes of hex")
        self._master = raw
        return raw

    def init(self) -> bool:
        """Create the master key if there is none. Returns whether one was created."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_bytes(MASTER_KEY_BYTES).hex())
        return True

    def derive(self, purpose: str) -> bytes:
        if purpose not in self._derived:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose.encode("utf-8"))
            self._derived[purpose] = hkdf.derive(self._load())
        return self._derived[purpose]

    def linkage_key(self) -> bytes:
        return self.derive("linkage/v1")

    def project_key(self, project_id: int) -> bytes:
        return self.derive(f"project-pseudonym/v1/{project_id}")

    def workspace_guard_secret(self) -> str:
        """The path secret of the proxy's routes to the API's workspace guard: only the hub knows
        it, so nobody else can make the API write refusal events."""
        return self.derive("workspace-guard/v1").hex()[:32]

    def workspace_server_key(self, token_id: int) -> str:
        """The credential of one workspace's Jupyter server (bound to its workspace token): the
        spawner hands it to the server alone, which drops it from its environment before any kernel
        starts, so what the server reports (refusals, the code that ran) cannot be forged from a
        notebook, which holds only the workspace token."""
        key = self.derive("workspace-server/v1")
        return hmac.new(key, f"token:{token_id}".encode(), hashlib.sha256).hexdigest()

    def fingerprint(self) -> str:
        """A public identifier of the linkage key (recorded with each dataset version), from which
        nothing about the key can be learned: a hash of a separately derived value."""
        return hashlib.sha256(self.derive("fingerprint/v1")).hexdigest()[:16]


class Pseudonymiser:
    """Keyed HMAC-SHA256 with the inner and outer hash states computed once (RFC 2104), which is
    about twice as fast as ``hmac.new`` per call for short identifiers."""

    def __init__(self, key: bytes) -> None:
        block = 64
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def one(self, value: str) -> str:
        inner = self._inner.copy()
        inner.update(value.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:PSEUDONYM_HEX]

    def many(self, values: Iterable[str]) -> list[str]:
        return self.many_encoded([value.encode("utf-8") for value in values])

    def many_encoded(self, values: Iterable[bytes]) -> list[str]:
        """The pseudonyms of UTF-8 encoded values: encoding each one in the loop was a fifth of its time
        (Polars hands out a column's values as ``bytes`` from a ``Binary`` cast)."""
        inner_base, outer_base = self._inner, self._outer
        out: list[str] = []
        append = out.append
        for value in values:
            inner = inner_base.copy()
            inner.update(value)
            outer = outer_base.copy()
            outer.update(inner.digest())
            append(outer.hexdigest()[:PSEUDONYM_HEX])
        return out


def reference_hmac(key: bytes, value: str) -> str:
    """The plain-library HMAC the fast path must agree with (used by tests)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def project_pseudonym(keys: KeyStore, project_id: int, person_pseudonym: str) -> str:
    """The pseudonym of a person as one project may ever see it."""
    return Pseudonymiser(keys.project_key(project_id)).one(person_pseudonym)
