"""Hub login with the enclave's own accounts: no separate accounts, no separate passwords."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.auth import Authenticator

from enclave.domain.errors import EnclaveError
from enclave.hub import runtime


class EnclaveAuthenticator(Authenticator):  # type: ignore[misc]
    """Checks the password with the enclave (argon2id, failures audited there). Anyone with an
    active account may log in; what they may open is decided per project by the spawner."""

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        username = (data.get("username") or "").strip()
        password = data.get("password") or ""
        if not username or not password:
            return None
        rt = runtime.get()
        try:
            user = await asyncio.to_thread(rt.services.workspaces.login, username, password)
        except EnclaveError:
            return None
        return user.username
