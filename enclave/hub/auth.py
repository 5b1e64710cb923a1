"""Hub login with the enclave's own accounts: no separate accounts, no separate passwords, and no
second sign-in for a user already signed in to the portal."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.handlers.login import LoginHandler

from enclave.domain.errors import EnclaveError
from enclave.hub import runtime
from enclave.portal.sessions import PLAIN_COOKIE, SECURE_COOKIE


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

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [("/login", PortalSessionLogin)]


class PortalSessionLogin(LoginHandler):  # type: ignore[misc]
    """The hub's login page, which first looks for a portal session: a browser signed in to the
    portal on the same host name (cookies are per host, whatever the port) is signed in to the hub
    as the same user, with no second password. The session is checked by the identity service as
    the portal checks it (expiry, idle time, revocation, an active account), so signing out of the
    portal ends the way in too; without a live session, the usual form is shown."""

    async def get(self) -> None:
        if self.current_user is None:
            user = await self._from_portal_session()
            if user is not None:
                self.redirect(self.get_next_url(user), permanent=False)
                return
        await super().get()

    async def _from_portal_session(self) -> Any:
        secret = self.get_cookie(SECURE_COOKIE) or self.get_cookie(PLAIN_COOKIE)
        if not secret:
            return None
        rt = runtime.get()
        try:
            actor = await asyncio.to_thread(rt.services.identity.authenticate, secret, web=True)
        except EnclaveError:
            return None
        if actor.user is None:
            return None
        user = await self.auth_to_user({"name": actor.user.username})
        self.set_login_cookie(user)
        self.log.info("User %s signed in from their portal session", user.name)
        return user
