"""JupyterHub configured by Enclave: ``enclave hub`` writes a one-line ``jupyterhub_config.py``
that calls :func:`configure`, so every setting comes from Enclave's own settings."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from enclave.config import Settings, load_settings
from enclave.domain.errors import ConfigurationError
from enclave.hub import runtime
from enclave.hub.homes import quota_problems
from enclave.hub.limits import CgroupTree, CgroupUnavailable, find_tree
from enclave.hub.sandbox import sandbox_problems
from enclave.wiring import build_services

TEMPLATES = Path(__file__).parent / "templates"

#: JupyterLab's plugins a workspace goes without: the menu entries that save a file to the
#: researcher's machine (download, export, print); the renderers of outputs that run code or are
#: files themselves (JavaScript, PDF) and the HTML viewer (whose "trust" button runs a file's
#: scripts); the debugger (it evaluates code the execution record would not see); and what would
#: reach the internet from an offline enclave (news and update checks, the extension manager).
HIDDEN_LAB_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
    "@jupyterlab/notebook-extension:export",
    "@jupyterlab/apputils-extension:print",
    "@jupyterlab/javascript-extension",
    "@jupyterlab/pdf-extension",
    "@jupyterlab/htmlviewer-extension",
    "@jupyterlab/debugger-extension",
    "@jupyterlab/apputils-extension:announcements",
    "@jupyterlab/extensionmanager-extension",
)

#: The Content-Security-Policy of every page a workspace server sends. The guard cleans outputs
#: (``enclave.hub.outputs``); this is what holds whatever it misses:
#:
#: - ``sandbox`` without ``allow-downloads``: the browser saves no file this page (or a frame or
#:   popup of it, which inherit the sandbox) asks it to, whether a link with ``download``, a
#:   ``data:`` or ``blob:`` URL or a script's click; without ``allow-modals``, no ``print()`` and
#:   no dialogs; ``allow-same-origin`` and ``allow-scripts`` keep JupyterLab itself working,
#:   ``allow-forms`` its login and ``allow-popups`` the hub's control panel (popups stay sandboxed);
#: - ``script-src 'self'``: no inline script and no event-handler attribute runs, so an output's
#:   ``<script>`` or ``onerror`` is inert (``'unsafe-eval'`` stays: JupyterLab's settings
#:   validation compiles JSON schemas);
#: - ``object-src 'none'``, ``frame-src 'self'``: no plugin and no foreign document (a PDF viewer
#:   has its own download button); ``connect-src 'self'``: the server and its websockets only;
#:   ``img-src 'self' data: blob:``: image outputs are ``data:`` URLs and cannot save themselves;
#: - ``base-uri``, ``form-action`` and ``frame-ancestors`` ``'self'``: nothing re-points the page's
#:   links or forms, and no other site frames it.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
        "sandbox allow-scripts allow-same-origin allow-forms allow-popups",
    )
)


def proxy_command(settings: Settings) -> str:
    """The npm configurable-http-proxy: configured, installed by `make setup`, or on PATH."""
    candidates = [
        settings.proxy_command,
        str(Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"),
        shutil.which("configurable-http-proxy"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    raise ConfigurationError(
        "configurable-http-proxy is not installed: run `make setup` (npm install into the environment)"
        " or set ENCLAVE_PROXY_COMMAND"
    )


def write_jupyter_config(path: Path, *, terminals: bool = False) -> Path:
    """The workspace servers' configuration: root-owned and read-only inside every sandbox.

    JupyterLab loads extensions only from the Python environment (read-only), never from the
    workspace's home, where a notebook could write one that undoes all of this."""
    (path / "labconfig").mkdir(parents=True, exist_ok=True)
    server = {
        "ServerApp": {
            "jpserver_extensions": {"enclave.hub.guard": True},
            "contents_manager_class": "enclave.hub.guard.GuardedContentsManager",
            "kernel_websocket_connection_class": "enclave.hub.guard.GuardedKernelConnection",
            "terminals_enabled": terminals,
            "tornado_settings": {"headers": {"Content-Security-Policy": CONTENT_SECURITY_POLICY}},
        },
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            "extension_manager": "readonly",
            "labextensions_path": [str(Path(sys.prefix) / "share" / "jupyter" / "labextensions")],
        },
        "NotebookNotary": {"db_file": ":memory:"},
    }
    (path / "jupyter_server_config.json").write_text(json.dumps(server, indent=2))
    page = {"disabledExtensions": dict.fromkeys(HIDDEN_LAB_PLUGINS, True)}
    (path / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=2))
    # jupyter-core would otherwise try to write this marker into the read-only directory
    (path / "migrated").write_text("enclave\n")
    for directory in (path, path / "labconfig"):
        directory.chmod(0o755)
    for file in (
        path / "jupyter_server_config.json",
        path / "labconfig" / "page_config.json",
        path / "migrated",
    ):
        file.chmod(0o644)
    return path


def check_mode(settings: Settings) -> None:
    """Sandboxing is the default; a machine that cannot sandbox refuses to start unless the unsafe
    development mode was chosen explicitly."""
    if settings.workspace_mode == "sandbox":
        problems = sandbox_problems()
        if problems:
            raise ConfigurationError(
                "cannot sandbox workspaces: "
                + "; ".join(problems)
                + " (for development only: ENCLAVE_WORKSPACE_MODE=unsafe)"
            )
    elif settings.mode == "production":
        raise ConfigurationError("ENCLAVE_WORKSPACE_MODE=unsafe is refused in production mode")


@dataclass(frozen=True)
class HostLimits:
    """What the host lets the hub bound a workspace with, and what it lacks."""

    cgroups: CgroupTree | None
    home_quotas: bool
    missing: tuple[str, ...]


def check_limits(settings: Settings, *, find: Callable[[str], CgroupTree] = find_tree) -> HostLimits:
    """The control-group tree and home quotas sandboxed workspaces get. In production a workspace
    that could starve the host is refused: the hub does not start without both. In development
    each missing one is a warning (`enclave hub` prints them), and workspaces run without it."""
    if settings.workspace_mode != "sandbox":
        return HostLimits(None, False, ())
    missing: list[str] = []
    cgroups: CgroupTree | None = None
    if settings.workspace_cgroup == "off":
        missing.append("control groups are off (ENCLAVE_WORKSPACE_CGROUP=off)")
    else:
        try:
            cgroups = find(settings.workspace_cgroup)
        except CgroupUnavailable as exc:
            missing.append(str(exc))
    if settings.workspace_disk_mb == 0:
        missing.append("homes have no quota (ENCLAVE_WORKSPACE_DISK_MB=0)")
        quotas = False
    else:
        problems = quota_problems()
        missing += [f"homes have no quota: {problem}" for problem in problems]
        quotas = not problems
    if missing and settings.mode == "production":
        raise ConfigurationError(
            "refusing to start in production mode: a workspace could exhaust the host's memory, processes"
            " or disk: " + "; ".join(missing)
        )
    return HostLimits(cgroups, quotas, tuple(missing))


def configure(c: Any, settings: Settings | None = None) -> None:
    from enclave.hub.auth import EnclaveAuthenticator
    from enclave.hub.proxy import EnclaveProxy
    from enclave.hub.spawner import EnclaveSpawner

    settings = settings or load_settings()
    check_mode(settings)
    limits = check_limits(settings)  # `enclave hub` has said what is missing
    services = build_services(settings)
    hub_dir = settings.hub_dir
    hub_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sockets = settings.ensure_sockets_dir()
    (sockets / "workspaces").mkdir(exist_ok=True, mode=0o700)
    hub_socket = sockets / "hub.sock"
    hub_socket.unlink(missing_ok=True)
    jupyter_config = write_jupyter_config(
        hub_dir / "jupyter-config", terminals=settings.workspace_terminals == "recorded"
    )
    unsafe = settings.workspace_mode == "unsafe"
    runtime.install(
        runtime.Runtime(
            settings=settings,
            services=services,
            jupyter_config=jupyter_config,
            hub_socket=hub_socket,
            guard_secret=services.keys.workspace_guard_secret(),
            cgroups=limits.cgroups,
            home_quotas=limits.home_quotas,
        )
    )

    def projects(user: Any) -> list[Any]:
        if user is None:
            return []
        return services.workspaces.projects_for(user.name)

    c.JupyterHub.authenticator_class = EnclaveAuthenticator
    c.Authenticator.allow_all = True
    c.JupyterHub.spawner_class = EnclaveSpawner
    c.JupyterHub.proxy_class = EnclaveProxy
    c.ConfigurableHTTPProxy.command = [proxy_command(settings)]
    c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "proxy.pid")
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.hub_port + 1}"
    c.JupyterHub.bind_url = settings.hub_url
    # Workspaces reach the hub only through this socket, bind-mounted into their sandbox. The
    # sockets directory is private (0700), so the socket's own mode matters only inside sandboxes,
    # whose accounts must be able to connect.
    c.JupyterHub.hub_bind_url = f"http+unix://{quote(str(hub_socket), safe='')}"
    c.JupyterHub.hub_socket_mode = 0o666
    c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub_dir / "cookie_secret")
    c.JupyterHub.pid_file = str(hub_dir / "hub.pid")
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0
    c.JupyterHub.redirect_to_server = False
    c.JupyterHub.default_url = "/hub/home"
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    c.JupyterHub.template_vars = {"enclave_projects": projects, "enclave_unsafe": unsafe}
    c.JupyterHub.log_level = settings.log_level.upper()
    c.Spawner.default_url = "/lab"
    c.Spawner.poll_interval = settings.workspace_poll_seconds
    c.Spawner.start_timeout = 90
    c.Spawner.http_timeout = 90
    c.Spawner.env_keep = []


def write_hub_config(settings: Settings) -> Path:
    """The file JupyterHub is started with: everything else comes from :func:`configure`."""
    settings.hub_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = settings.hub_dir / "jupyterhub_config.py"
    path.write_text(
        "# Written by `enclave hub`: the configuration is Enclave's (see enclave/hub/config.py).\n"
        "from enclave.hub.config import configure\n\nconfigure(c)  # noqa: F821\n"
    )
    return path
