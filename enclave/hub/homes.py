"""A workspace home with a quota: each (project, researcher) home is an ext4 filesystem image of its
own, loop-mounted on the home directory while the workspace runs. A full home is the workspace's
problem alone (its writes fail with "No space left on device"); the host's disk and every other
home are untouched.

The image is sparse: it takes the host's disk only as the home fills, up to its size. A home made
before quotas were on is copied into its new image when the workspace next starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from enclave.hub.sandbox import Account

#: The system tools a quota needs (all from Debian's util-linux and e2fsprogs).
TOOLS = (
    ("mkfs.ext4", "e2fsprogs"),
    ("e2fsck", "e2fsprogs"),
    ("resize2fs", "e2fsprogs"),
    ("mount", "mount"),
    ("umount", "mount"),
)
MOUNT_OPTIONS = "loop,nosuid,nodev"


class QuotaUnavailable(Exception):
    """A home's filesystem could not be made or mounted; the message says why."""


def quota_problems() -> list[str]:
    """What stops this machine from giving homes a quota (empty when it can)."""
    found = [
        f"{tool} is not installed (Debian package {package})"
        for tool, package in TOOLS
        if shutil.which(tool) is None
    ]
    if not Path("/dev/loop-control").exists():
        found.append("the kernel offers no loop devices (/dev/loop-control is missing)")
    if os.geteuid() != 0:
        found.append("mounting a home's filesystem needs root")
    return found


def mount_home(home: Path, image: Path, size_bytes: int, account: Account) -> None:
    """Mount ``image`` (made on first use, grown when the size setting grew) on ``home``, owned by
    the workspace account and private to it. Idempotent: a home already mounted stays as it is."""
    if os.path.ismount(home):
        return
    image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not image.exists():
        _make(home, image, size_bytes, account)
    elif image.stat().st_size < size_bytes:
        _grow(image, size_bytes)
    home.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-o", MOUNT_OPTIONS, str(image), str(home)], f"cannot mount {home}'s filesystem")
    os.chown(home, account.uid, account.gid)
    home.chmod(0o700)
    lost = home / "lost+found"  # mkfs's, root's: of no use to a researcher, and in the way
    if lost.is_dir() and not any(lost.iterdir()):
        lost.rmdir()


def unmount_home(home: Path) -> None:
    """Unmount a home (lazily if a process of a killed workspace still holds it)."""
    if not os.path.ismount(home):
        return
    done = subprocess.run(["umount", str(home)], capture_output=True, check=False)  # noqa: S603, S607
    if done.returncode != 0 and os.path.ismount(home):
        _run(["umount", "--lazy", str(home)], f"cannot unmount {home}")


def _make(home: Path, image: Path, size_bytes: int, account: Account) -> None:
    free = shutil.disk_usage(image.parent).free
    if free < size_bytes:
        raise QuotaUnavailable(
            f"the host has {free // 2**20} MiB free, less than a workspace home's size"
            f" ({size_bytes // 2**20} MiB, ENCLAVE_WORKSPACE_DISK_MB)"
        )
    partial = image.with_name(image.name + ".partial")
    with partial.open("wb") as file:
        file.truncate(size_bytes)
    partial.chmod(0o600)
    command = ["mkfs.ext4", "-q", "-F", "-m", "0", "-E", f"root_owner={account.uid}:{account.gid}"]
    existing = home.is_dir() and any(home.iterdir())
    if existing:
        command += ["-d", str(home)]  # the home as it was, owners and modes kept
    try:
        _run([*command, str(partial), f"{size_bytes // 1024}k"], f"cannot make {home}'s filesystem")
    except QuotaUnavailable:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(image)
    if existing:  # its files are in the image now; the directory becomes the mount point
        for entry in home.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _grow(image: Path, size_bytes: int) -> None:
    with image.open("r+b") as file:
        file.truncate(size_bytes)
    # e2fsck: 0 is clean, 1 is "errors corrected" (both let resize2fs go on)
    _run(["e2fsck", "-f", "-p", str(image)], f"cannot check {image} before growing it", ok=(0, 1))
    _run(["resize2fs", str(image)], f"cannot grow {image}")


def _run(command: list[str], failure: str, ok: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode not in ok:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise QuotaUnavailable(f"{failure}: {reason[-1] if reason else f'exit code {done.returncode}'}")
