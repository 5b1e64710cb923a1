"""What one workspace may take of the host: memory, processes and CPU through a control group of its
own, and sized ``/tmp`` and ``/dev/shm`` (in the sandbox's command line, :mod:`enclave.hub.sandbox`).
The home's disk quota is :mod:`enclave.hub.homes`.

A workspace's control group is created by the spawner inside the tree the host delegates to the hub,
before the sandbox starts, and the sandbox's first process joins it before it runs anything else
(:meth:`Cgroup.join`), so every process of the workspace is in it and none can leave (leaving needs
write access to a group the workspace account does not own). The memory limit counts a process's
pages and the tmpfs pages it writes (the kernel charges shared memory to the group that first
touches it), with no swap: when a workspace reaches it the kernel's OOM killer ends a process of
that workspace and no other.

Two kinds of tree are supported: cgroup v2 (a delegated directory, such as a systemd unit with
``Delegate=yes`` or the root of a container's cgroup namespace) and the v1 hierarchies of a hybrid
host (one directory per controller: ``memory``, ``pids`` and ``cpu``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from enclave.config import Settings

#: The controllers a workspace's group needs.
CONTROLLERS = ("memory", "pids", "cpu")
#: cgroup v2: a group with processes cannot hand controllers to its children, so the processes of
#: the delegated directory (the hub's own unit) move into this leaf first.
HUB_LEAF = "enclave-hub"
CPU_PERIOD_US = 100_000
#: The first process of a sandbox: it writes its own pid into each group, then becomes the sandbox.
#: Writing fails only if the group is gone, and then nothing starts (exit 125).
JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class CgroupUnavailable(Exception):
    """This host delegates no usable control-group tree to the hub; the message says why."""


@dataclass(frozen=True)
class Limits:
    """What one workspace may use."""

    memory_bytes: int  # its processes and its tmpfs pages together
    processes: int  # tasks (processes and threads)
    cpus: float  # CPU time, in cores; 0: no quota
    tmp_bytes: int  # /tmp
    shm_bytes: int  # /dev/shm
    disk_bytes: int  # its home's filesystem; 0: no quota

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        mib = 2**20
        return cls(
            memory_bytes=settings.workspace_memory_mb * mib,
            processes=settings.workspace_processes,
            cpus=settings.workspace_cpus,
            tmp_bytes=settings.workspace_tmp_mb * mib,
            shm_bytes=settings.workspace_shm_mb * mib,
            disk_bytes=settings.workspace_disk_mb * mib,
        )


@dataclass(frozen=True)
class Cgroup:
    """One workspace's control group: one directory on v2, one per controller on v1."""

    version: Literal[1, 2]
    directories: tuple[Path, ...]

    def join(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started inside this group: its first process joins before it runs ``argv``."""
        files = [str(d / "cgroup.procs") for d in self.directories]
        return ["/bin/sh", "-c", JOIN_SCRIPT, "enclave-join", *files, "--", *argv]

    def exists(self) -> bool:
        return all(d.is_dir() for d in self.directories)

    def processes(self) -> set[int]:
        found: set[int] = set()
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        return found

    def stat(self, name: str) -> dict[str, int]:
        """A ``key value`` file of the group, such as ``memory.events`` or ``cpu.stat``."""
        for directory in self.directories:
            path = directory / name
            if path.exists():
                pairs = (line.split() for line in path.read_text().splitlines())
                return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].lstrip("-").isdigit()}
        return {}

    def oom_kills(self) -> int:
        """How many of the workspace's processes the kernel ended for its memory limit."""
        return self.stat("memory.events" if self.version == 2 else "memory.oom_control").get("oom_kill", 0)

    def kill(self, timeout: float = 10) -> None:
        """End every process of the group (a sandbox's processes end with it anyway; this is for
        whatever a crash left behind)."""
        kill_file = self.directories[0] / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            kill_file.write_text("1")
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def remove(self) -> None:
        """Remove the group once its processes are gone (the kernel refuses before)."""
        self.kill()
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                directory.rmdir()


@dataclass(frozen=True)
class CgroupTree:
    """Where workspace groups are made: ``parents`` maps each controller to its parent directory
    (on v2 all three are the same delegated directory)."""

    version: Literal[1, 2]
    parents: dict[str, Path]

    def group(self, name: str) -> Cgroup:
        """The group of workspace ``name`` (whether or not it exists)."""
        directories = dict.fromkeys(self.parents[c] / f"enclave-{name}" for c in CONTROLLERS)
        return Cgroup(self.version, tuple(directories))

    def create(self, name: str, limits: Limits) -> Cgroup:
        """A fresh group with ``limits`` (one a crash left behind is emptied and removed first)."""
        group = self.group(name)
        if group.exists():
            group.remove()
        if self.version == 2:
            self._delegate(self.parents["memory"])
        for directory in group.directories:
            directory.mkdir()
        try:
            self._limit(group, limits)
        except OSError:
            group.remove()
            raise
        return group

    def _limit(self, group: Cgroup, limits: Limits) -> None:
        quota = round(limits.cpus * CPU_PERIOD_US) if limits.cpus > 0 else 0
        if self.version == 2:
            (directory,) = group.directories
            _write(directory / "memory.max", limits.memory_bytes)
            _write(directory / "memory.swap.max", 0, optional=True)
            _write(directory / "pids.max", limits.processes)
            _write(directory / "cpu.max", f"{quota or 'max'} {CPU_PERIOD_US}")
            return
        memory, pids, cpu = (self.group_dir(group, c) for c in CONTROLLERS)
        _write(memory / "memory.limit_in_bytes", limits.memory_bytes)
        # memory and swap together: no swap beyond the memory limit (the file exists with swap accounting)
        _write(memory / "memory.memsw.limit_in_bytes", limits.memory_bytes, optional=True)
        _write(pids / "pids.max", limits.processes)
        _write(cpu / "cpu.cfs_period_us", CPU_PERIOD_US)
        _write(cpu / "cpu.cfs_quota_us", quota or -1)

    def group_dir(self, group: Cgroup, controller: str) -> Path:
        return next(d for d in group.directories if d.parent == self.parents[controller])

    def _delegate(self, parent: Path) -> None:
        """cgroup v2: hand the controllers to the parent's children. A non-root group with processes
        cannot, so they move into a leaf of their own first (as systemd asks of a delegated unit)."""
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        if set(CONTROLLERS) <= enabled:
            return
        if (parent / "cgroup.type").exists() and _own_procs(parent):  # not the root group
            leaf = parent / HUB_LEAF
            leaf.mkdir(exist_ok=True)
            for pid in _own_procs(parent):
                with contextlib.suppress(ProcessLookupError, OSError):
                    (leaf / "cgroup.procs").write_text(str(pid))
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))


def _own_procs(directory: Path) -> list[int]:
    return [int(p) for p in (directory / "cgroup.procs").read_text().split()]


def _write(path: Path, value: object, *, optional: bool = False) -> None:
    if optional and not path.exists():
        return
    path.write_text(str(value))


# --- finding the tree --------------------------------------------------------------------------


def find_tree(
    setting: str,
    *,
    mountinfo: Path = Path("/proc/self/mountinfo"),
    own: Path = Path("/proc/self/cgroup"),
) -> CgroupTree:
    """The tree workspace groups go in: ``auto`` finds the hub's own group (v2 where the unified
    hierarchy has the controllers, else the v1 hierarchies); a path names a delegated v2 directory.
    Raises :class:`CgroupUnavailable` with the reason when there is none the hub can write."""
    if setting != "auto":
        path = Path(setting)
        if not (path / "cgroup.controllers").exists():
            raise CgroupUnavailable(f"{path} is not a cgroup v2 directory")
        return _checked(CgroupTree(2, dict.fromkeys(CONTROLLERS, path)))
    mounts = _cgroup_mounts(mountinfo)
    memberships = _memberships(own)
    unified = mounts.get("")
    if unified is not None and "" in memberships:
        directory = unified / memberships[""].lstrip("/")
        controllers = directory / "cgroup.controllers"
        available = set(controllers.read_text().split()) if controllers.exists() else set()
        if set(CONTROLLERS) <= available:
            return _checked(CgroupTree(2, dict.fromkeys(CONTROLLERS, directory)))
    parents: dict[str, Path] = {}
    missing = []
    for controller in CONTROLLERS:
        if controller in mounts and controller in memberships:
            parents[controller] = mounts[controller] / memberships[controller].lstrip("/")
        else:
            missing.append(controller)
    if missing:
        raise CgroupUnavailable(
            "no control-group tree with the memory, pids and cpu controllers is delegated to the hub"
            f" (missing: {', '.join(missing)}); run the hub as root in a systemd unit with Delegate=yes,"
            " or name a delegated cgroup v2 directory in ENCLAVE_WORKSPACE_CGROUP"
        )
    return _checked(CgroupTree(1, parents))


def _checked(tree: CgroupTree) -> CgroupTree:
    for controller, parent in tree.parents.items():
        if not os.access(parent, os.W_OK):
            raise CgroupUnavailable(
                f"the hub cannot create control groups in {parent} ({controller}): it must run as root"
                " and the host must delegate that directory to it"
            )
    return tree


def _cgroup_mounts(mountinfo: Path) -> dict[str, Path]:
    """Mount points by controller ("" for the unified v2 hierarchy)."""
    found: dict[str, Path] = {}
    for line in mountinfo.read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        kind, options = tail[0], tail[2].split(",")
        if kind == "cgroup2":
            found.setdefault("", Path(fields[4]))
        elif kind == "cgroup":
            for controller in CONTROLLERS:
                if controller in options:
                    found.setdefault(controller, Path(fields[4]))
    return found


def _memberships(own: Path) -> dict[str, str]:
    """The calling process's group in each hierarchy ("" for v2), from ``/proc/self/cgroup``."""
    found: dict[str, str] = {}
    for line in own.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            found[""] = path
        for controller in controllers.split(","):
            if controller in CONTROLLERS:
                found[controller] = path
    return found
