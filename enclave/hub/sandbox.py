"""The workspace sandbox: one Unix account per (project, user), one bubblewrap container per server.

What a workspace's processes can reach is decided here, by construction: a fresh root with
read-only system libraries and the Python environment, the workspace's own home (read-write),
its socket directory, and two sockets (the enclave API and the hub). Nothing of ``ENCLAVE_HOME``
but those is mounted, so the research store, the keys, the metadata database and the holding and
release stores are not even visible. The network namespace is new, so the only loopback is the
sandbox's own: the hub, the proxy, PostgreSQL and every other port of the host are unreachable.

bubblewrap runs as root (so it can mount what the workspace account cannot read, such as a
Python under ``/root``); ``setpriv`` then drops to the workspace account with no capabilities,
no way to gain any (``no_new_privs``) and a process limit, before any workspace code runs.
What the whole workspace may use of the host (its control group, its sized tmpfs, its home's
quota) is :mod:`enclave.hub.limits` and :mod:`enclave.hub.homes`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import enclave
from enclave.hub.limits import Limits

#: Paths inside every sandbox.
HOME = Path("/home/workspace")
RUN = Path("/run/enclave")
SERVER_SOCKET = Path("/run/workspace/jupyter.sock")
JUPYTER_CONFIG = Path("/opt/enclave/jupyter-config")

#: What of /etc a Python process needs; the rest of /etc (service configuration, perhaps
#: secrets an operator left readable) is not mounted.
ETC_FILES = (
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "localtime",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "alternatives",
    "mime.types",
    "fonts",
)


class SandboxUnavailable(Exception):
    """This machine cannot sandbox workspaces; the message says what is missing."""


def sandbox_problems() -> list[str]:
    """What stops this machine from sandboxing workspaces (empty when it can)."""
    found = []
    if os.geteuid() != 0:
        found.append("the hub must run as root to create workspace accounts and sandboxes")
    for tool, package in (("bwrap", "bubblewrap"), ("setpriv", "util-linux"), ("useradd", "passwd")):
        if shutil.which(tool) is None:
            found.append(f"{tool} is not installed (Debian package {package})")
    return found


def account_name(project_id: int, user_id: int) -> str:
    """The workspace account of a user in a project: short, valid for useradd, never a person."""
    return f"ews-p{project_id}-u{user_id}"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def ensure_account(name: str) -> Account:
    """Create the workspace's system account on first use (no login shell, no home of its own:
    its home is the bind-mounted workspace directory)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(  # noqa: S603 - fixed arguments, the name is built by account_name
            [  # noqa: S607 - useradd from the system PATH, as root
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                str(HOME),
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid)


def python_roots() -> list[Path]:
    """The directories the workspace's Python needs: the interpreter's installation, the
    environment, and the enclave package itself when installed in development mode."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    package = Path(enclave.__file__).resolve().parent
    if not any(package.is_relative_to(r) for r in roots):
        roots.add(package)
    # a venv's python is a symlink to the base interpreter: both must resolve inside
    roots.add(Path(sys.executable).resolve().parent.parent)
    return sorted(roots)


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a workspace's container is made of."""

    account: Account
    home: Path  # host directory, owned by the account
    socket_dir: Path  # host directory for the server's socket, owned by the account
    api_socket: Path
    hub_socket: Path
    jupyter_config: Path  # root-owned, read-only inside
    limits: Limits
    python_roots: Sequence[Path] = field(default_factory=python_roots)
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self, argv: Sequence[str]) -> list[str]:
        """The full command line: bwrap, then resource limits and the drop to the account, then
        ``argv`` (the server), with an environment made from scratch (``--clearenv``): nothing of
        the hub's own environment (its proxy token, its database URL) reaches the workspace."""
        cmd = [
            "bwrap",
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup",
            "--die-with-parent", "--new-session", "--hostname", "workspace",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            # sized: a full /tmp or /dev/shm is the workspace's own problem ("No space left")
            "--perms", "1777", "--size", str(self.limits.tmp_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(self.limits.shm_bytes), "--tmpfs", "/dev/shm",
        ]  # fmt: skip
        made = {Path("/"), Path("/usr"), Path("/tmp"), Path("/proc"), Path("/dev"), Path("/dev/shm")}

        def parents(target: Path) -> None:
            # bwrap makes missing parents 0700 root; the account must be able to traverse them
            for parent in reversed(target.parents):
                if parent not in made:
                    cmd.extend(["--perms", "0755", "--dir", str(parent)])
                    made.add(parent)

        def bind(kind: str, source: Path, target: Path) -> None:
            parents(target)
            cmd.extend([kind, str(source), str(target)])
            made.add(target)

        for name in ETC_FILES:
            path = Path("/etc") / name
            if path.exists():
                bind("--ro-bind", path, path)
        for root in self.python_roots:
            if not root.is_relative_to("/usr"):
                bind("--ro-bind", root, root)
        bind("--ro-bind", self.jupyter_config, JUPYTER_CONFIG)
        bind("--bind", self.home, HOME)
        bind("--bind", self.socket_dir, SERVER_SOCKET.parent)
        bind("--ro-bind", self.api_socket, RUN / "api.sock")
        bind("--ro-bind", self.hub_socket, RUN / "hub.sock")
        cmd += ["--chdir", str(HOME), "--clearenv"]
        for key, value in sorted(self.env().items()):
            cmd += ["--setenv", key, value]
        cmd += [
            "--",
            "prlimit", f"--nproc={self.limits.processes}", f"--data={self.limits.memory_bytes}", "--",
            "setpriv", f"--reuid={self.account.uid}", f"--regid={self.account.gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]  # fmt: skip
        return cmd + list(argv)

    def env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.prefix) / "bin")
        base = {
            "HOME": str(HOME),
            "USER": self.account.name,
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            "PYTHONNOUSERSITE": "1",
            "JUPYTER_CONFIG_DIR": str(JUPYTER_CONFIG),
            "JUPYTER_CONFIG_PATH": str(JUPYTER_CONFIG),
            "JUPYTER_DATA_DIR": str(HOME / ".local/share/jupyter"),
            "JUPYTERLAB_SETTINGS_DIR": str(HOME / ".jupyter/lab/user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(HOME / ".jupyter/lab/workspaces"),
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
            "IPYTHONDIR": str(HOME / ".ipython"),
            "MPLCONFIGDIR": str(HOME / ".config/matplotlib"),
        }
        return {**self.extra_env, **base}


def prepare_directory(path: Path, account: Account) -> None:
    """A directory owned by the workspace account, reachable by nobody else."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, account.uid, account.gid)
    path.chmod(0o700)
