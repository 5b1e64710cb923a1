"""Whole processes, as a newcomer and an operator start them: `enclave demo`, two `enclave serve`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from enclave.config import Settings
from enclave.domain.identity.accounts import Role
from enclave.wiring import build_services
from tests.conftest import free_port, free_port_pair, make_account
from tests.helpers.hub import HubSession

pytestmark = pytest.mark.slow

ENCLAVE = [sys.executable, "-m", "enclave.cli"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update(ENCLAVE_HOME=str(settings.home), ENCLAVE_DATABASE_URL=settings.database, **extra)
    return env


def _wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become healthy")


class Output:
    stdout = ""
    stderr = ""


def stop(proc: subprocess.Popen[str], output: Output | None = None) -> None:
    """Interrupt as Ctrl-C would, collect what it printed, close its pipes."""
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if output is not None:
        output.stdout, output.stderr = out or "", err or ""


@contextmanager
def running(args: list[str], env: dict[str, str], url: str) -> Iterator[Output]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = Output()
    try:
        _wait_healthy(url, proc)
        yield output
    finally:
        stop(proc, output)


def test_demo_prints_logins_that_work(settings: Settings, tmp_path: Path) -> None:
    """`enclave demo` on an empty ENCLAVE_HOME creates the schema and demo users, prints the URL and
    passwords, serves the API; the printed researcher password logs in; a second run prints the same."""
    if settings.is_sqlite:
        # Let the demo create its own database, as on a fresh machine.
        Path(settings.database.removeprefix("sqlite:///")).unlink()
    port, hub_port = free_port(), free_port_pair()
    env = _env(settings, ENCLAVE_API_PORT=str(port), ENCLAVE_HUB_PORT=str(hub_port))
    url = f"http://127.0.0.1:{port}"
    with (
        running([*ENCLAVE, "demo", "--persons", "3000"], env, url) as output,
        httpx.Client(base_url=url) as c,
    ):
        creds = json.loads((settings.key_store / "demo-credentials.json").read_text())
        researcher = next(cred for cred in creds if cred["username"] == "researcher")
        r = c.post("/auth/login", json={"username": "researcher", "password": researcher["password"]})
        assert r.status_code == 200, r.text
        me = c.get("/me", headers={"Authorization": f"Bearer {r.json()['token']}"}).json()
        assert me["roles"] == ["researcher"]
        assert me["accreditation_expires"] is not None
        # the workspace hub started beside the API takes the same login
        hub = HubSession(f"http://127.0.0.1:{hub_port}", "researcher")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if hub.http.get("/hub/login").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert hub.login(researcher["password"]).status_code == 302
        assert "Regional variation in type 2 diabetes control" in hub.home()
        hub.close()
        register = c.get("/portal/register")  # the portal, served by the same process
        assert register.status_code == 200
        assert "Regional variation in type 2 diabetes control" in register.text
    assert url in output.stdout
    assert f"portal         : {url}/portal/" in output.stdout
    assert f"workspaces     : http://127.0.0.1:{hub_port}" in output.stdout
    assert researcher["password"] in output.stdout
    assert "5 datasets" in output.stdout
    assert "Regional variation in type 2 diabetes control" in output.stdout
    assert "awaiting review: access request 2" in output.stdout
    assert "first release  : 1, people by region" in output.stdout
    # An output request waits for the reviewers, with one file the checks fail.
    assert "output check   : output request 1 waits for two reviewers" in output.stdout
    assert f"{url}/portal/reviewer/outputs/1" in output.stdout
    again = subprocess.run(
        [*ENCLAVE, "demo", "--no-serve"], env=env, capture_output=True, text=True, check=True
    )
    assert researcher["password"] in again.stdout
    assert "output check   : output request 1 waits" in again.stdout  # the same one, not a second


def test_demo_stopped_by_sigterm_stops_its_hub_and_removes_its_socket(settings: Settings) -> None:
    """A service manager stops the demo with SIGTERM, not Ctrl-C: the API shuts down, the workspace
    hub and its proxy go with it, and the API's socket file is removed, with the status 143."""
    port, hub_port = free_port(), free_port_pair()
    env = _env(settings, ENCLAVE_API_PORT=str(port), ENCLAVE_HUB_PORT=str(hub_port))
    url, hub_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{hub_port}"
    proc = subprocess.Popen(
        [*ENCLAVE, "demo", "--persons", "3000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(url, proc, timeout=300)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{hub_url}/hub/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(
                f"the hub did not come up: {(settings.hub_dir / 'hub.log').read_text()[-2000:]}"
            )
        socket_file = settings.api_socket
        assert socket_file.exists()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{hub_url}/hub/login", timeout=1)
        except httpx.TransportError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the hub still answers after the demo stopped: {err[-2000:]}")
    assert not socket_file.exists()


def test_two_api_processes_write_one_audit_chain(settings: Settings) -> None:
    """Two `enclave serve` processes on one database, 8 client threads hitting both with actions
    that each write audit events; afterwards `enclave audit verify` finds one intact chain."""
    services = build_services(settings)
    admin = make_account(services, "admin", Role.ADMIN)
    services.close()
    ports = [free_port(), free_port()]
    procs = []
    try:
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [*ENCLAVE, "serve", "--port", str(port)],
                    env=_env(settings),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for port, proc in zip(ports, procs, strict=True):
            _wait_healthy(f"http://127.0.0.1:{port}", proc)
        errors: list[str] = []
        per_thread = 12

        def work(t: int) -> None:
            url = f"http://127.0.0.1:{ports[t % 2]}"
            with httpx.Client(base_url=url, headers=admin.headers, timeout=60) as c:
                for i in range(per_thread):
                    r = c.post("/users/admin/tokens", json={"name": f"t{t}-{i}"})
                    if r.status_code != 201:
                        errors.append(r.text)
                    r = c.get("/me", headers={"Authorization": "Bearer enc_wrong"})
                    if r.status_code != 401:
                        errors.append(r.text)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        for proc in procs:
            stop(proc)
    result = subprocess.run([*ENCLAVE, "audit", "verify"], env=_env(settings), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    expected = 2 + 8 * per_thread * 2  # the admin's creation and token, then two events per iteration
    assert f"{expected} events verified" in result.stdout


def test_enclave_command_is_installed() -> None:
    """The console script the README uses exists and answers --version."""
    exe = shutil.which("enclave", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("enclave ")
