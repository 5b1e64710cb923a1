"""The workspace spawner: one named server per project, asked of the enclave, started in a sandbox.

A server is named after its project (``p3``). Starting it asks the enclave whether the user may
open that project's workspace now (active project, member, accredited): a refusal reaches the
user as the spawn error, and is audited by the enclave. The enclave issues a token scoped to
(user, project), which is injected with the API's socket; stopping revokes it. While the server
runs, every poll asks again, so a workspace of a project that is suspended, revoked or expired,
or whose user lost membership or accreditation, is stopped within ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from tornado import web
from traitlets import Integer, Unicode

from enclave.domain.errors import EnclaveError
from enclave.hub import runtime
from enclave.hub.guard import SERVER_KEY_ENV
from enclave.hub.homes import QuotaUnavailable, mount_home, unmount_home
from enclave.hub.limits import Limits
from enclave.hub.sandbox import (
    HOME,
    RUN,
    SERVER_SOCKET,
    SandboxSpec,
    account_name,
    ensure_account,
    prepare_directory,
)

SERVER_NAME = re.compile(r"^p([1-9][0-9]{0,9})$")
#: The example notebooks of the repository (a source checkout), copied into each new workspace home.
EXAMPLES = Path(__file__).resolve().parents[2] / "notebooks"
EXAMPLES_MARKER = ".enclave-examples"


def seed_examples(home: Path, owner: tuple[int, int] | None = None, source: Path = EXAMPLES) -> bool:
    """Copy the example notebooks into ``home/examples`` once per home (a marker remembers it, so
    notebooks the researcher deleted or edited stay as they left them). Returns whether it copied."""
    marker = home / EXAMPLES_MARKER
    if marker.exists() or not source.is_dir():
        return False
    target = home / "examples"
    target.mkdir(exist_ok=True)
    created = [target]
    for notebook in sorted(source.glob("*.ipynb")):
        destination = target / notebook.name
        if not destination.exists():
            destination.write_bytes(notebook.read_bytes())
            created.append(destination)
    marker.write_text("example notebooks copied; delete this file to copy them again\n")
    created.append(marker)
    if owner is not None:
        for path in created:
            os.chown(path, *owner)
    return True


def project_of(server_name: str) -> int:
    match = SERVER_NAME.match(server_name)
    if match is None:
        raise web.HTTPError(
            400,
            f"{server_name or 'the default server'} is not a workspace: open a project's workspace"
            " from the home page",
        )
    return int(match.group(1))


class EnclaveSpawner(Spawner):  # type: ignore[misc]
    pid = Integer(0)
    token_id = Integer(0)
    account = Unicode("")  # the workspace account, which names its control group
    oom_kills = Integer(0)  # the group's count when the hub last looked

    _proc: subprocess.Popen[bytes] | None = None

    # --- state kept by the hub across restarts ----------------------------------------------

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.pid = state.get("pid", 0)
        self.token_id = state.get("token_id", 0)
        self.account = state.get("account", "")
        self.oom_kills = state.get("oom_kills", 0)  # a restarted hub audits no kill twice

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.pid:
            state["pid"] = self.pid
        if self.token_id:
            state["token_id"] = self.token_id
        if self.account:
            state["account"] = self.account
        if self.oom_kills:
            state["oom_kills"] = self.oom_kills
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = 0
        self.token_id = 0
        self.account = ""
        self.oom_kills = 0

    # --- start --------------------------------------------------------------------------------

    @property
    def project_id(self) -> int:
        return project_of(self.name)

    async def start(self) -> str | tuple[str, int]:
        rt = runtime.get()
        project_id = self.project_id
        try:
            grant = await asyncio.to_thread(rt.services.workspaces.open, self.user.name, project_id)
        except EnclaveError as exc:
            raise web.HTTPError(403, exc.detail) from None
        self.token_id = grant.token.token.id
        if rt.settings.workspace_mode == "sandbox":
            # jupyter-server refuses --port with --sock, and the hub extension takes the port
            # from the service URL: keep jupyter's default, which means "unset" (each sandbox has
            # its own loopback anyway)
            self.port = 8888
        env = self.get_env()
        env.pop("JPY_PARENT_PID", None)
        env.update(
            {
                "ENCLAVE_API_TOKEN": grant.token.secret,
                # the server's own credential: its guard removes it before any kernel starts
                SERVER_KEY_ENV: rt.services.keys.workspace_server_key(grant.token.token.id),
                "ENCLAVE_PROJECT_ID": str(project_id),
                "ENCLAVE_WORKSPACE_MODE": rt.settings.workspace_mode,
            }
        )
        argv = [str(Path(sys.prefix) / "bin" / "python"), "-I", "-m", "enclave.hub.singleuser"]
        if rt.settings.workspace_mode == "sandbox":
            try:
                cmd, url = await asyncio.to_thread(self._sandbox, rt, grant.user.id, project_id, env, argv)
            except (QuotaUnavailable, OSError) as exc:
                await self._closed("failed to start")
                raise RuntimeError(f"cannot bound the workspace's resources: {exc}") from None
            # launched from the hub's own thread: bwrap's --die-with-parent follows the thread
            # that started it, and a worker thread may go away while the workspace runs
            self._launch(cmd, env=None)
            server_socket = Path(unquote(url.removeprefix("http+unix://")))
            await self._until_listening(server_socket.exists)
            return url
        address = self._start_unsafe(rt, project_id, env, argv)
        await self._until_listening(lambda: _accepts(*address))
        return address

    async def _until_listening(self, listening: Callable[[], bool]) -> None:
        """Return once the server listens; fail with its exit code if it dies first, so the hub
        reports a failed spawn instead of waiting for a server that is gone."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if listening():
                return
            if not self._alive():
                code = self._proc.returncode if self._proc is not None else "?"
                await self._closed("failed to start")
                raise RuntimeError(
                    f"the workspace server exited while starting (code {code}); the hub's log says why"
                )
            await asyncio.sleep(0.1)
        await self._kill(grace=0)
        await self._closed("failed to start")
        raise RuntimeError(f"the workspace server did not start within {self.start_timeout} s")

    def _sandbox(
        self, rt: runtime.Runtime, user_id: int, project_id: int, env: dict[str, str], argv: list[str]
    ) -> tuple[list[str], str]:
        """Prepare the account and directories (blocking work, run in a thread) and build the
        sandbox's command line and the server's URL."""
        account = ensure_account(account_name(project_id, user_id))
        self.account = account.name
        limits = Limits.from_settings(rt.settings)
        home = rt.settings.workspace_home(project_id, self.user.name)
        sockets = rt.settings.sockets_dir / "workspaces" / account.name
        prepare_directory(home.parent, runtime.ROOT)  # bound into the sandbox by root: stays 0700
        if rt.home_quotas:
            disk = rt.settings.workspace_disk(project_id, self.user.name)
            mount_home(home, disk, limits.disk_bytes, account)
        prepare_directory(home, account)
        seed_examples(home, (account.uid, account.gid))
        prepare_directory(sockets, account)
        (sockets / SERVER_SOCKET.name).unlink(missing_ok=True)  # left by a killed sandbox
        # the hub's socket has another path inside the sandbox (its API and activity URLs)
        outside, inside = quote(str(rt.hub_socket), safe=""), quote(str(RUN / "hub.sock"), safe="")
        for key, value in env.items():
            env[key] = value.replace(outside, inside)
        env.update({"ENCLAVE_API_SOCKET": str(RUN / "api.sock"), "ENCLAVE_API_URL": "http://enclave"})
        spec = SandboxSpec(
            account=account,
            home=home,
            socket_dir=sockets,
            api_socket=rt.settings.api_socket,
            hub_socket=rt.hub_socket,
            jupyter_config=rt.jupyter_config,
            limits=limits,
            extra_env=env,
        )
        args = [*argv, f"--ServerApp.sock={SERVER_SOCKET}", "--ServerApp.sock_mode=0600", *self.get_args()]
        command = spec.command(args)
        if rt.cgroups is not None:  # last: nothing can fail after the group exists but the launch
            command = rt.cgroups.create(account.name, limits).join(command)
        return command, f"http+unix://{quote(str(sockets / SERVER_SOCKET.name), safe='')}"

    def _start_unsafe(
        self, rt: runtime.Runtime, project_id: int, env: dict[str, str], argv: list[str]
    ) -> tuple[str, int]:
        home = rt.settings.workspace_home(project_id, self.user.name)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        seed_examples(home)
        self.port = self.port or random_port()
        env.update(
            {
                # the API's socket, as in a sandbox: its TCP port refuses workspace tokens
                "ENCLAVE_API_SOCKET": str(rt.settings.api_socket),
                "ENCLAVE_API_URL": "http://enclave",
                "HOME": str(home),
                "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                "JUPYTER_CONFIG_DIR": str(rt.jupyter_config),
                "JUPYTER_CONFIG_PATH": str(rt.jupyter_config),
            }
        )
        self.log.warning(
            "UNSAFE DEVELOPMENT MODE: workspace %s/%s runs unsandboxed as the hub's own account",
            self.user.name,
            self.name,
        )
        args = [*argv, f"--port={self.port}", "--ip=127.0.0.1", *self.get_args()]
        if os.geteuid() == 0:
            args.append("--allow-root")  # unsandboxed is unsafe anyway, and says so
        self._launch(args, env=env, cwd=home)
        return ("127.0.0.1", self.port)

    def get_args(self) -> list[str]:
        # the sandbox decides the address; JupyterHub's own --port would clash with --sock
        return [a for a in super().get_args() if not a.startswith(("--port", "--ip"))]

    def _launch(self, cmd: list[str], *, env: dict[str, str] | None, cwd: Path = HOME) -> None:
        self.log.info("starting workspace %s/%s", self.user.name, self.name)
        self._proc = subprocess.Popen(  # noqa: S603 - built from fixed parts, no shell
            cmd,
            env=env if env is not None else {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            cwd=str(cwd) if env is not None else "/",
            start_new_session=True,
        )
        self.pid = self._proc.pid

    # --- poll and stop -----------------------------------------------------------------------

    def _alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    async def poll(self) -> int | None:
        if not self._alive():
            await self._closed("server exited")
            return 0
        rt = runtime.get()
        await self._check_memory(rt)
        problem = await asyncio.to_thread(rt.services.workspaces.problem, self.user.name, self.project_id)
        if problem is not None:
            self.log.warning("stopping workspace %s/%s: %s", self.user.name, self.name, problem)
            await self._kill()
            await self._closed(f"stopped: {problem}")
            return 1
        return None

    async def _check_memory(self, rt: runtime.Runtime) -> None:
        """Audit each time the kernel ended a process of the workspace for its memory limit (the
        server stays; JupyterLab tells the researcher their kernel died)."""
        if rt.cgroups is None or not self.account:
            return
        # read and noted with no await between, so that two polls at once audit the kills once
        kills = rt.cgroups.group(self.account).oom_kills()  # one small file of the kernel's
        ended, self.oom_kills = kills - self.oom_kills, kills
        if ended > 0:
            detail = f"{ended} process(es) ended at the memory limit of {rt.settings.workspace_memory_mb} MiB"
            self.log.warning("workspace %s/%s: %s", self.user.name, self.name, detail)
            await asyncio.to_thread(
                rt.services.workspaces.record_limit, self.user.name, self.project_id, "memory", detail
            )

    async def stop(self, now: bool = False) -> None:
        await self._kill(grace=0 if now else 5)
        await self._closed("stopped")

    async def _kill(self, grace: float = 5) -> None:
        if not self._alive():
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            for _ in range(int(wait * 10)):
                if not self._alive():
                    return
                await asyncio.sleep(0.1)

    async def _closed(self, reason: str) -> None:
        """Revoke the workspace's token and audit the stop, once per start."""
        if not self.token_id:
            return
        token_id, self.token_id = self.token_id, 0
        rt = runtime.get()
        await self._check_memory(rt)
        await asyncio.to_thread(self._release, rt)
        await asyncio.to_thread(
            rt.services.workspaces.close, self.user.name, self.project_id, token_id, reason
        )
        if self._proc is not None and self._proc.poll() is not None:
            self._proc.wait()  # reap it
        self._proc = None
        self.pid = 0

    def _release(self, rt: runtime.Runtime) -> None:
        """What the workspace held of the host: its control group (and any process left in it), and
        its home's mount."""
        if rt.cgroups is not None and self.account:
            rt.cgroups.group(self.account).remove()
        if rt.home_quotas:
            try:
                unmount_home(rt.settings.workspace_home(self.project_id, self.user.name))
            except QuotaUnavailable as exc:
                self.log.error("workspace %s/%s: %s", self.user.name, self.name, exc)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
