"""The airlock's two file stores: the holding store and the release store.

- **Holding store** (0600 files under 0700 folders, outside every workspace): each accepted payload
  of an output request, once per content, named by its SHA-256 under ``outputs/<request>/``.
- **Release store** (0400 files): each released file at ``<project>/<request>/v<version>/<name>``,
  written once and never overwritten.

Every read checks the content against the SHA-256 the metadata database recorded: a file that is
missing or changed is an :class:`~enclave.domain.errors.InternalError`, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from enclave.domain.errors import InternalError


def _verified(path: Path, sha256: str, what: str, store: str) -> bytes:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise InternalError(f"{what} is missing from the {store}") from exc
    if hashlib.sha256(content).hexdigest() != sha256:
        raise InternalError(f"{what} does not match its recorded SHA-256")
    return content


class DiskHoldingStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def hold(self, request_id: int, sha256: str, content: bytes) -> str:
        """Write an accepted payload (0600), once per content; returns its path as recorded."""
        held = self.root / "outputs" / str(request_id) / sha256
        held.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not held.exists():
            tmp = held.with_name(f".{sha256}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(tmp, held)
        return held.relative_to(self.root).as_posix()

    def read(self, holding_path: str, sha256: str, *, file_id: int) -> bytes:
        return _verified(self.root / holding_path, sha256, f"held file {file_id}", "holding store")


class DiskReleaseStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relative: str, sha256: str, content: bytes, *, file_id: int) -> str:
        """Write a released file at ``relative``, read-only, never overwriting: a file left by an
        attempt that did not commit is reused only if its SHA-256 is the recorded one."""
        target = (self.root / relative).resolve()
        base = self.root.resolve()
        if not target.is_relative_to(base):
            raise InternalError(f"release path of file {file_id} escapes the release store")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists():
            if hashlib.sha256(target.read_bytes()).hexdigest() != sha256:
                raise InternalError(f"{relative} exists in the release store with other content")
            return relative
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o400)
            os.link(tmp, target)  # fails if the target exists: never overwrites
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return relative

    def read(self, relative: str, sha256: str, *, released_id: int) -> bytes:
        return _verified(self.root / relative, sha256, f"released file {released_id}", "release store")
