"""Drive a real JupyterHub as a researcher would, over HTTP and the kernel websocket; and start the
API (`enclave serve`, which serves the portal) and the hub (`enclave hub`: JupyterHub, the npm proxy,
sandboxed single-user servers) as real processes on a fresh database (:func:`running_enclave`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websocket  # websocket-client, a dependency of jupyter-server

from enclave.config import Settings
from enclave.wiring import Services, build_services
from tests.conftest import OPERATOR, DatabaseFactory, free_port, free_port_pair

# How long a process may take to answer, or a workspace to spawn, on a busy machine.
PROCESS_DEADLINE = 180.0


class HubError(AssertionError):
    pass


@dataclass
class CellResult:
    status: str
    stdout: str
    error: str

    def __str__(self) -> str:
        return f"{self.status}: {self.stdout}{self.error}"


class HubSession:
    """A logged-in browser-like session: cookies from the login form, then the hub's REST API."""

    def __init__(self, url: str, username: str) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.http = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        # requests to the workspace server carry the token only (no cookies, so no XSRF dance)
        self.bare = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()
        self.bare.close()

    def sign_in_from_portal(self, portal_session: str) -> httpx.Response:
        """Sign in to the hub with a portal session's cookie, as a browser signed in to the portal is
        (single sign-on, no password); then get a hub API token as :meth:`login` does."""
        self.http.cookies.set("enclave-session", portal_session)
        response = self.http.get("/hub/login", params={"next": "/hub/home"})
        if response.status_code == 302:
            self.token = self._api_token()
        return response

    def login(self, password: str) -> httpx.Response:
        page = self.http.get("/hub/login")
        xsrf = self.http.cookies.get("_xsrf") or ""
        response = self.http.post(
            "/hub/login",
            data={"username": self.username, "password": password, "_xsrf": xsrf},
        )
        if response.status_code == 302:
            self.token = self._api_token()
        del page
        return response

    def _xsrf_headers(self) -> dict[str, str]:
        return {"X-XSRFToken": self.http.cookies.get("_xsrf") or ""}

    def _api_token(self) -> str:
        r = self.http.post(
            f"/hub/api/users/{self.username}/tokens",
            json={"note": "test", "expires_in": 3600},
            headers=self._xsrf_headers(),
        )
        if r.status_code != 201:
            raise HubError(f"token: {r.status_code} {r.text}")
        token: str = r.json()["token"]
        return token

    @property
    def auth(self) -> dict[str, str]:
        assert self.token is not None, "log in first"
        return {"Authorization": f"token {self.token}"}

    def home(self) -> str:
        return self.http.get("/hub/home").text

    def start(self, server: str, timeout: float = 90) -> httpx.Response:
        """Start a named server and wait until it answers; returns the start response (4xx when
        refused) or the final status."""
        r = self.http.post(f"/hub/api/users/{self.username}/servers/{server}", headers=self.auth)
        if r.status_code not in (201, 202):
            return r
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.http.get(f"/hub/api/users/{self.username}", headers=self.auth).json()
            state = model["servers"].get(server)
            if state and state.get("ready"):
                return r
            if state is None or not (state.get("pending") or state.get("ready")):
                progress = self.http.get(
                    f"/hub/api/users/{self.username}/servers/{server}/progress", headers=self.auth
                )
                raise HubError(f"server {server} did not start: {progress.text[-800:]}")
            time.sleep(0.25)
        raise HubError(f"server {server} not ready after {timeout}s")

    def servers(self) -> dict[str, Any]:
        servers: dict[str, Any] = self.http.get(f"/hub/api/users/{self.username}", headers=self.auth).json()[
            "servers"
        ]
        return servers

    def stop(self, server: str) -> None:
        r = self.http.delete(f"/hub/api/users/{self.username}/servers/{server}", headers=self.auth)
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            model = self.http.get(f"/hub/api/users/{self.username}", headers=self.auth).json()
            if server not in model["servers"]:
                return
            time.sleep(0.25)
        raise HubError(f"server {server} did not stop")

    def server_get(self, server: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.bare.get(f"/user/{self.username}/{server}/{path}", headers=self.auth, **kwargs)

    def server_request(self, method: str, server: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.bare.request(
            method, f"/user/{self.username}/{server}/{path}", headers=self.auth, **kwargs
        )

    def kernel(self, server: str) -> Kernel:
        r = self.server_request("POST", server, "api/kernels", json={"name": "python3"})
        if r.status_code != 201:
            raise HubError(f"kernel: {r.status_code} {r.text}")
        ws_url = self.url.replace("http", "ws", 1) + (
            f"/user/{self.username}/{server}/api/kernels/{r.json()['id']}/channels"
        )
        return Kernel(websocket.create_connection(ws_url, header=[f"Authorization: token {self.token}"]))


class Kernel:
    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.session = uuid.uuid4().hex

    def run(self, code: str, timeout: float = 60) -> CellResult:
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False},
                    "channel": "shell",
                }
            )
        )
        stdout, error, status, idle = [], "", "?", False
        self.ws.settimeout(timeout)
        # the reply (shell channel) and the idle status (iopub) arrive in either order
        while status == "?" or not idle:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            content = msg["content"]
            if kind == "stream":
                stdout.append(content["text"])
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return CellResult(status, "".join(stdout), error)

    def close(self) -> None:
        self.ws.close()


@dataclass
class Enclave:
    """The API (with the portal) and the hub as processes, on one fresh database and home; the test
    process's own services on the same database and home; the processes' output in ``log``."""

    settings: Settings
    services: Services
    api_url: str
    hub_url: str
    api: subprocess.Popen[bytes]
    hub: subprocess.Popen[bytes]
    log: Path
    projects: dict[str, int] = field(default_factory=dict)

    def session(self, username: str, password: str) -> HubSession:
        """A hub session logged in through the hub's own form."""
        session = HubSession(self.hub_url, username)
        response = session.login(password)
        assert response.status_code == 302, response.text[:300]
        return session

    def events(self, action: str) -> list[dict[str, object]]:
        return [
            {"actor": e.actor, "subject": e.object_id, **json.loads(e.details_json)}
            for e in self.services.audit.export(OPERATOR)
            if e.action == action
        ]

    def output(self, last: int = 6000) -> str:
        """The end of what the API and the hub (and the workspaces they started) have written."""
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no output yet)"
        exited = [
            f"{name} exited with {proc.returncode}"
            for name, proc in (("the API", self.api), ("the hub", self.hub))
            if proc.poll() is not None
        ]
        return "\n".join([*exited, f"--- the processes' output (last {last} characters) ---", text[-last:]])


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = PROCESS_DEADLINE) -> None:
    """Poll ``url`` until it answers 200; fail with the process's output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_enclave(
    database_factory: DatabaseFactory,
    root: Path,
    prepare: Callable[[Services], dict[str, int]] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Enclave]:
    """A fresh database and home under ``root``; ``prepare`` fills them through the real services
    (accounts, datasets, projects: the names of the projects it returns are kept in
    ``Enclave.projects``); then ``enclave serve`` and ``enclave hub`` run, with ``env`` added to
    their environment, until the block ends. The hub sandboxes workspaces (it refuses to start
    where it cannot); its poll is 2 s."""
    root.mkdir(parents=True, exist_ok=True)
    url = database_factory.new(root / "home")
    api_port, hub_port = free_port(), free_port_pair()
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update(
        **extra,
        ENCLAVE_HOME=str(root / "home"),
        ENCLAVE_DATABASE_URL=url,
        ENCLAVE_API_PORT=str(api_port),
        ENCLAVE_HUB_PORT=str(hub_port),
        ENCLAVE_WORKSPACE_POLL_SECONDS="2",
    )
    settings = Settings(home=root / "home", database_url=url, api_port=api_port, hub_port=hub_port)
    services = build_services(settings)
    try:
        projects = prepare(services) if prepare is not None else {}
        log = root / "processes.log"
        with log.open("ab") as out:
            api = subprocess.Popen(
                [sys.executable, "-m", "enclave.cli", "serve"], env=env, stdout=out, stderr=out
            )
            hub = subprocess.Popen(
                [sys.executable, "-m", "enclave.cli", "hub"], env=env, stdout=out, stderr=out
            )
            try:
                wait_for(f"http://127.0.0.1:{api_port}/healthz", api, log)
                wait_for(f"http://127.0.0.1:{hub_port}/hub/login", hub, log)
                yield Enclave(
                    settings,
                    services,
                    f"http://127.0.0.1:{api_port}",
                    f"http://127.0.0.1:{hub_port}",
                    api,
                    hub,
                    log,
                    projects,
                )
            finally:
                stop(hub)
                stop(api)
    finally:
        services.close()
        database_factory.drop(url)
