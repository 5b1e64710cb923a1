"""The workspace server's guard: what a Jupyter server inside a workspace adds to JupyterLab.

Files leave the enclave only through the airlock. Inside a workspace server this

- refuses, with 403, every way JupyterLab offers to save a file to the researcher's machine:
  ``/files/``, ``/view/``, ``/nbconvert/`` and ``/api/nbconvert`` (exports), and binary reads of
  the contents API (``format=base64``, which is also what any binary file comes back as). Text and
  notebooks still load through the contents API, as JupyterLab needs them to. JupyterLab's fetch
  of the exporter list (``GET /api/nbconvert``, at every page load) is answered with no exporters,
  and is no attempt;
- cleans every output before the browser renders it (:mod:`enclave.hub.outputs`), on the kernel's
  websocket and in notebooks read from disk: no script, no JavaScript output, no link that saves;
- records the code of every cell sent to a kernel before the kernel gets it: a cell whose record
  the enclave did not accept is not run (the execution record, ``POST /workspaces/executions``).

What the guard reports (refusals, removed outputs, the code that ran) it sends with the server's
own key (``Keys.workspace_server_key``), which the spawner hands to this process alone and which
:func:`take_server_key` removes from the environment before any kernel starts: a notebook holds
the workspace token, never the key, so it cannot forge these records. The extension is loaded from
a root-owned, read-only configuration directory and the server runs non-dumpable, so code in a
kernel (same account, same sandbox) can neither change its configuration nor read its memory;
killing the server ends the whole sandbox. The proxy also routes the path-based exports to a deny
handler outside the sandbox (see ``enclave.hub.proxy``), and the pages' Content-Security-Policy
forbids downloads whatever a page holds. None of it stops a researcher copying what is on the
screen by hand: it is friction and an audit trail, not a guarantee (see the threat model).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from collections import OrderedDict
from typing import Any

import httpx
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.utils import url_path_join
from jupyter_server_terminals.handlers import TermSocket
from tornado import web
from tornado.httputil import HTTPHeaders
from tornado.routing import PathMatches, Rule
from tornado.web import OutputTransform
from traitlets import Unicode

from enclave.hub.outputs import BUNDLE_MESSAGES, clean_message, clean_notebook

REFUSAL = "downloads and exports are disabled in workspaces: request outputs through the airlock"
DENIED_PREFIXES = ("files", "view", "nbconvert", "api/nbconvert")
SERVER_KEY_ENV = "ENCLAVE_SERVER_KEY"
SERVER_KEY_HEADER = "X-Enclave-Server-Key"

_server_key: str | None = None


def take_server_key() -> None:
    """Keep the server's key in this process and remove it from the environment, which every
    kernel and terminal inherits. Called first thing by ``enclave.hub.singleuser``."""
    global _server_key
    _server_key = os.environ.pop(SERVER_KEY_ENV, None) or _server_key


class Reporter:
    """The guard's line to the enclave API (its socket, the workspace token and the server key)."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            socket = os.environ.get("ENCLAVE_API_SOCKET")
            transport = httpx.AsyncHTTPTransport(uds=socket) if socket else None
            headers = {"Authorization": f"Bearer {os.environ.get('ENCLAVE_API_TOKEN', '')}"}
            if _server_key:
                headers[SERVER_KEY_HEADER] = _server_key
            self._client = httpx.AsyncClient(
                base_url=os.environ.get("ENCLAVE_API_URL", "http://enclave"),
                transport=transport,
                headers=headers,
                timeout=10,
            )
        return self._client

    def _first_time(self, *parts: str) -> bool:
        """Whether this attempt is new (one event per attempt, not per re-render of it)."""
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
        if digest in self._seen:
            return False
        self._seen[digest] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return True

    async def refusal(self, path: str, reason: str, *, once_key: str = "") -> None:
        """Audit a refusal; best effort, since the refusal itself does not depend on it."""
        if not os.environ.get("ENCLAVE_API_TOKEN") or not self._first_time(path, reason, once_key):
            return
        with contextlib.suppress(httpx.HTTPError):
            await self._http().post(
                "/workspaces/refusals", json={"path": path[:1000], "reason": reason[:200]}
            )

    async def execution(self, kernel_id: str, kind: str, code: str) -> str | None:
        """Record code about to run; returns why it could not be recorded, or None once it is."""
        try:
            answer = await self._http().post(
                "/workspaces/executions", json={"kernel_id": kernel_id, "kind": kind, "code": code}
            )
        except httpx.HTTPError as exc:
            return f"the enclave could not be reached ({type(exc).__name__})"
        if answer.status_code >= 300:
            try:
                return str(answer.json().get("detail") or answer.status_code)
            except ValueError:
                return f"the enclave answered {answer.status_code}"
        return None


reporter = Reporter()
_background: set[asyncio.Future[None]] = set()


class DenyHandler(JupyterHandler):
    """403 for every method on the export and raw-file routes; JupyterLab's list of exporters is
    answered as empty (it asks at every page load: that is not an attempt)."""

    async def _deny(self, *args: Any, **kwargs: Any) -> None:
        if self.request.method == "GET" and _EXPORTER_LIST.search(self.request.path):
            self.set_header("Content-Type", "application/json")
            self.finish("{}")
            return
        await reporter.refusal(self.request.path, f"{self.request.method} export route")
        self.set_status(403)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": REFUSAL, "reason": "forbidden"}))

    get = post = put = patch = delete = head = _deny


_EXPORTER_LIST = re.compile(r"/api/nbconvert/?$")


class GuardedContentsManager(AsyncLargeFileManager):
    """Refuses binary reads (a base64 body is a file on its way out of the browser) and cleans the
    outputs of every notebook it hands to the browser."""

    async def get(
        self,
        path: str,
        content: bool = True,
        type: str | None = None,
        format: str | None = None,
        require_hash: bool = False,
    ) -> dict[str, Any]:
        if content and format == "base64":
            await reporter.refusal(path, "binary read")
            raise web.HTTPError(403, REFUSAL)
        model: dict[str, Any] = await super().get(  # type: ignore[no-untyped-call]
            path, content=content, type=type, format=format, require_hash=require_hash
        )
        if content and model.get("format") == "base64":
            await reporter.refusal(path, "binary read")
            raise web.HTTPError(403, REFUSAL)
        if content and model.get("type") == "notebook" and isinstance(model.get("content"), dict):
            await _report_findings(path, clean_notebook(model["content"]), "notebook opened")
        return model

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
            await _report_findings(path, clean_notebook(model["content"]), "notebook saved")
        saved: dict[str, Any] = await super().save(model, path)  # type: ignore[no-untyped-call]
        return saved


async def _report_findings(where: str, findings: list[str], context: str, once_key: str = "") -> None:
    """One event per finding of one attempt: a notebook opened again, or an output shown again,
    is not a new attempt."""
    for finding in findings:
        await reporter.refusal(where, f"{context}: removed {finding}", once_key=once_key or where)


class GuardedKernelConnection(ZMQChannelsWebsocketConnection):
    """The kernel websocket of a workspace: every message from the browser is handled in order;
    an ``execute_request`` is forwarded only once its code is recorded, a ``debug_request`` (which
    evaluates code unrecorded) never; every message to the browser has its outputs cleaned.

    The legacy (JSON) websocket protocol is used, since the guard must read and rewrite each
    message (the v1 protocol forwards the kernel's frames as they are)."""

    kernel_ws_protocol = Unicode("", allow_none=True, config=True)

    _inbox: asyncio.Future[None] | None = None

    def handle_incoming_message(self, incoming_msg: str) -> None:
        previous = self._inbox
        self._inbox = asyncio.ensure_future(self._in_order(previous, incoming_msg))

    async def _in_order(self, previous: asyncio.Future[None] | None, incoming_msg: str) -> None:
        if previous is not None:
            try:
                await previous
            except Exception as exc:
                self.log.warning("enclave guard: an earlier message failed: %s", exc)
        if self.subprotocol is not None:  # the v1 protocol: frames the guard cannot read
            self.log.error("enclave guard: refusing the %s websocket protocol", self.subprotocol)
            self.websocket_handler.close()
            return
        try:
            msg = json.loads(incoming_msg) if isinstance(incoming_msg, str) else None
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("header"), dict):
            self.log.warning("enclave guard: dropping a message it cannot read")
            return
        msg_type = msg["header"].get("msg_type")
        if msg_type == "debug_request":
            self.log.warning(
                "enclave guard: the debugger is disabled in workspaces (code it runs is not recorded)"
            )
            return
        if msg_type == "execute_request":
            code = str((msg.get("content") or {}).get("code", ""))
            problem = await reporter.execution(self.kernel_id, "cell", code)
            if problem is not None:
                self._refuse_execution(
                    msg, f"this cell was not run: its code could not be recorded ({problem})"
                )
                return
        super().handle_incoming_message(incoming_msg)

    def _refuse_execution(self, request: dict[str, Any], reason: str) -> None:
        parent = request["header"]
        self.write_stderr(reason, parent)  # type: ignore[no-untyped-call]
        reply = self.session.msg(
            "execute_reply",
            content={
                "status": "error",
                "ename": "ExecutionNotRecorded",
                "evalue": reason,
                "traceback": [reason],
            },
            parent=parent,
        )
        reply["channel"] = "shell"
        self.write_message(json.dumps(reply, default=str))

    def _on_zmq_reply(self, stream: Any, msg_list: Any) -> None:
        if not isinstance(msg_list, dict):  # the v1 protocol: never forwarded unread
            return
        content = msg_list.get("content")
        msg_type = (msg_list.get("header") or {}).get("msg_type", "")
        if isinstance(content, dict) and (msg_type in BUNDLE_MESSAGES or msg_type == "execute_reply"):
            before = json.dumps(content, sort_keys=True, default=str)
            findings = clean_message(msg_type, content)
            if findings:
                attempt = hashlib.sha256(before.encode()).hexdigest()
                report = _report_findings(f"kernel {self.kernel_id}", findings, "output", attempt)
                task = asyncio.ensure_future(report)
                _background.add(task)
                task.add_done_callback(_background.discard)
        super()._on_zmq_reply(stream, msg_list)  # type: ignore[no-untyped-call]


class RecordedTermSocket(TermSocket):
    """A terminal's websocket whose command lines are recorded before they run: keystrokes go to
    the terminal as typed, but the Enter that ends a line waits for the line's record; a line the
    enclave did not record is cancelled (Ctrl-C) with a sentence on the terminal. What is recorded
    is the keystrokes of the line as typed (with editing keys), not the shell's final command."""

    _line = ""

    def initialize(  # type: ignore[override]
        self, name: str = "jupyter_server_terminals", term_manager: Any = None, **kwargs: Any
    ) -> None:
        # the terminals extension sets its manager up after this guard's rules are in place
        super().initialize(name, term_manager or self.settings["terminal_manager"], **kwargs)

    async def on_message(self, message: Any) -> None:  # type: ignore[override]
        try:
            command = json.loads(message)
        except (TypeError, ValueError):
            return
        if not (isinstance(command, list) and len(command) == 2 and command[0] == "stdin"):
            await super().on_message(message)
            return
        data = str(command[1])
        while data:
            match = _ENTER.search(data)
            if match is None:
                self._line += data
                await super().on_message(json.dumps(["stdin", data]))
                return
            typed, enter, data = data[: match.start()], match.group(), data[match.end() :]
            if typed:
                await super().on_message(json.dumps(["stdin", typed]))
            line, self._line = self._line + typed, ""
            problem = (
                await reporter.execution(f"terminal {self.term_name}", "terminal", line) if line else None
            )
            if problem is not None:
                self.write_message(json.dumps(["stdout", f"\r\n[Enclave: not run: {problem}]\r\n"]))
                await super().on_message(json.dumps(["stdin", "\x03"]))
                return
            await super().on_message(json.dumps(["stdin", enter]))


_ENTER = re.compile(r"\r\n?|\n")


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
    if serverapp.terminals_enabled:
        terminal = url_path_join(base, "terminals/websocket") + r"/(\w+)$"
        rules.append(Rule(PathMatches(terminal), RecordedTermSocket, {}))
    # ahead of the server's own handlers, which would otherwise match first
    serverapp.web_app.wildcard_router.rules[:0] = rules
    serverapp.log.info("enclave guard: downloads and exports refused under %s", base)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "enclave.hub.guard"}]
