"""What the hub's Enclave components share inside the JupyterHub process: the settings, the
services (called in threads, since they are synchronous) and the paths the hub prepared."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from enclave.config import Settings
from enclave.hub.limits import CgroupTree
from enclave.hub.sandbox import Account
from enclave.wiring import Services

ROOT = Account("root", os.getuid(), os.getgid())


@dataclass
class Runtime:
    settings: Settings
    services: Services
    jupyter_config: Path
    hub_socket: Path
    guard_secret: str
    cgroups: CgroupTree | None = None  # None: workspaces get no control group (development only)
    home_quotas: bool = False  # False: homes on the host's disk (development only)


_current: Runtime | None = None


def install(rt: Runtime) -> None:
    global _current
    _current = rt


def get() -> Runtime:
    if _current is None:
        raise RuntimeError("the Enclave hub runtime is not configured (start the hub with `enclave hub`)")
    return _current
