"""The npm configurable-http-proxy, with what Enclave's workspaces need of it.

- Workspace servers listen on Unix sockets. JupyterHub stores a server as proto/ip/port, so a
  socket comes back as ``http+unix://...sock:80``, which the proxy would read as a file named
  ``sock:80``: strip the port on the way in, restore it on the way out (so the hub's route check
  sees its own targets).
- Each workspace's export routes (``files``, ``view``, ``nbconvert``, ``api/nbconvert``) are
  routed to the enclave API's guard, which refuses and audits them. The proxy runs outside every
  sandbox, so nothing in a workspace can undo this. These routes are not marked as the hub's, so
  its periodic route check leaves them alone.
"""

from __future__ import annotations

import re
from typing import Any

from jupyterhub.proxy import ConfigurableHTTPProxy

from enclave.hub import runtime
from enclave.hub.guard import DENIED_PREFIXES

_HAS_PORT = re.compile(r":\d+$")


def guard_target(api_url: str, secret: str) -> str:
    return f"{api_url.rstrip('/')}/workspaces/guard/{secret}"


class EnclaveProxy(ConfigurableHTTPProxy):  # type: ignore[misc]
    async def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        if target.startswith("http+unix://") and target.endswith(":80"):
            target = target[: -len(":80")]
        await super().add_route(routespec, target, data)

    async def get_all_routes(self) -> dict[str, Any]:
        routes: dict[str, Any] = await super().get_all_routes()
        for route in routes.values():
            target = route["target"]
            if target.startswith("http+unix://") and not _HAS_PORT.search(target):
                route["target"] = target + ":80"
        return routes

    def _guard_paths(self, user: Any, server_name: str) -> list[str]:
        prefix = user.spawners[server_name].server.base_url
        return [self._routespec_to_chp_path(prefix + p + "/") for p in DENIED_PREFIXES]

    async def add_user(self, user: Any, server_name: str = "") -> None:
        rt = runtime.get()
        target = guard_target(rt.settings.api_url, rt.guard_secret)
        for path in self._guard_paths(user, server_name):
            await self.api_request(path, method="POST", body={"target": target})
        await super().add_user(user, server_name)

    async def delete_user(self, user: Any, server_name: str = "") -> None:
        await super().delete_user(user, server_name)
        for path in self._guard_paths(user, server_name):
            try:
                await self.api_request(path, method="DELETE")
            except Exception as exc:
                self.log.debug("guard route %s: %s", path, exc)
