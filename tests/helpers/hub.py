"""Drive a real JupyterHub as a researcher would, over HTTP and the kernel websocket."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import websocket  # websocket-client, a dependency of jupyter-server


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
