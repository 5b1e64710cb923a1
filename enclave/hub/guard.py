"""The workspace server's download guard: a Jupyter server extension and contents manager.

Files leave the enclave only through the airlock. Inside a workspace server this refuses, with 403
and an audit event, every way JupyterLab offers to save a file to the researcher's machine:
``/files/``, ``/view/``, ``/nbconvert/`` and ``/api/nbconvert`` (exports), and binary reads of
the contents API (``format=base64``, which is also what any binary file comes back as). Text and
notebooks still load through the contents API, as JupyterLab needs them to.

The extension is loaded from a root-owned, read-only configuration directory and the server runs
non-dumpable, so code in a kernel (same account, same sandbox) can neither change its
configuration nor attach to it; killing the server ends the whole sandbox. The proxy also routes
the path-based exports to a deny handler outside the sandbox (see ``enclave.hub.proxy``), so
those are refused even by a server without this extension. None of it stops a researcher copying
what is on the screen by hand: it is friction and an audit trail, not a guarantee (see the threat
model).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httputil import HTTPHeaders
from tornado.routing import PathMatches, Rule
from tornado.web import OutputTransform

REFUSAL = "downloads and exports are disabled in workspaces: request outputs through the airlock"
DENIED_PREFIXES = ("files", "view", "nbconvert", "api/nbconvert")


def report_refusal(path: str, reason: str) -> None:
    """Ask the enclave to audit a refusal, with the workspace's own token; best effort, since
    the refusal itself does not depend on it."""
    socket = os.environ.get("ENCLAVE_API_SOCKET")
    token = os.environ.get("ENCLAVE_API_TOKEN")
    if not token:
        return
    transport = httpx.HTTPTransport(uds=socket) if socket else None
    base = os.environ.get("ENCLAVE_API_URL", "http://enclave")
    try:
        with httpx.Client(base_url=base, transport=transport, timeout=5) as client:
            client.post(
                "/workspaces/refusals",
                json={"path": path, "reason": reason},
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError:
        pass


class DenyHandler(JupyterHandler):
    """403 for every method on the export and raw-file routes."""

    def _deny(self, *args: Any, **kwargs: Any) -> None:
        report_refusal(self.request.path, "export route")
        self.set_status(403)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": REFUSAL, "reason": "forbidden"}))

    get = post = put = patch = delete = head = _deny


class GuardedContentsManager(AsyncLargeFileManager):
    """Refuses binary reads: a base64 body is a file on its way out of the browser."""

    async def get(
        self,
        path: str,
        content: bool = True,
        type: str | None = None,
        format: str | None = None,
        require_hash: bool = False,
    ) -> dict[str, Any]:
        if content and format == "base64":
            report_refusal(path, "binary read")
            raise web.HTTPError(403, REFUSAL)
        model: dict[str, Any] = await super().get(  # type: ignore[no-untyped-call]
            path, content=content, type=type, format=format, require_hash=require_hash
        )
        if content and model.get("format") == "base64":
            report_refusal(path, "binary read")
            raise web.HTTPError(403, REFUSAL)
        return model


UNSAFE_BANNER = (
    b'<div id="enclave-unsafe" style="background:#b00020;color:#fff;padding:4px;text-align:center;'
    b'font:bold 13px sans-serif">UNSAFE DEVELOPMENT MODE: this workspace is not sandboxed.'
    b" Never use it with real data.</div>"
)
_BODY = re.compile(rb"(<body[^>]*>)", re.IGNORECASE)


class UnsafeBanner(OutputTransform):
    """Marks every HTML page of an unsandboxed workspace, so nobody mistakes it for a safe one."""

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        if headers.get("Content-Type", "").startswith("text/html"):
            chunk = _BODY.sub(lambda m: m.group(1) + UNSAFE_BANNER, chunk, count=1)
            if "Content-Length" in headers:
                headers["Content-Length"] = str(len(chunk))
        return status_code, headers, chunk


def _load_jupyter_server_extension(serverapp: Any) -> None:
    base = serverapp.base_url
    if os.environ.get("ENCLAVE_WORKSPACE_MODE") == "unsafe":
        serverapp.web_app.transforms.append(UnsafeBanner)
        serverapp.log.warning("UNSAFE DEVELOPMENT MODE: this workspace is not sandboxed")
    rules = [
        Rule(PathMatches(url_path_join(base, prefix) + "(/.*)?$"), DenyHandler, {})
        for prefix in DENIED_PREFIXES
    ]
    # ahead of the server's own handlers, which would otherwise match first
    serverapp.web_app.wildcard_router.rules[:0] = rules
    serverapp.log.info("enclave guard: downloads and exports refused under %s", base)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "enclave.hub.guard"}]
