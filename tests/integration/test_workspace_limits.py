"""A workspace's bounds on the real kernel: a control group made in the host's tree (memory with
tmpfs pages, processes, CPU), and a home on a loop-mounted filesystem image. The whole sandboxed
workspace under them is tests/e2e/test_workspaces.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.hub.homes import mount_home, quota_problems, unmount_home
from enclave.hub.limits import Cgroup, CgroupTree, CgroupUnavailable, Limits, find_tree
from enclave.hub.sandbox import Account, sandbox_problems
from tests.conftest import REQUIRE_SANDBOX

MIB = 2**20


@pytest.fixture
def tree() -> CgroupTree:
    try:
        return find_tree("auto")
    except CgroupUnavailable as exc:
        if REQUIRE_SANDBOX:
            pytest.fail(f"this machine must delegate control groups to root: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def make_group(tree: CgroupTree) -> Iterator[object]:
    made: list[Cgroup] = []

    def make(limits: Limits) -> Cgroup:
        group = tree.create(f"test-{os.getpid()}-{len(made)}", limits)
        made.append(group)
        return group

    yield make
    for group in made:
        group.remove()
        assert not any(d.exists() for d in group.directories), "a removed group stays"


def limits(**changes: float) -> Limits:
    base: dict[str, float] = {
        "memory_bytes": 96 * MIB,
        "processes": 64,
        "cpus": 0,
        "tmp_bytes": 0,
        "shm_bytes": 0,
        "disk_bytes": 0,
    }
    base.update(changes)
    return Limits(**{k: int(v) if k != "cpus" else v for k, v in base.items()})  # type: ignore[arg-type]


def run(group: Cgroup, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        group.join([sys.executable, "-c", code]), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_memory_limit_ends_the_workspaces_process_not_the_host(make_group: object) -> None:
    group = make_group(limits())  # type: ignore[operator]
    done = run(group, "chunks = []\nwhile True: chunks.append(bytearray(8 << 20))")
    assert done.returncode == -9, (done.returncode, done.stderr[-500:])
    assert group.oom_kills() >= 1


def test_tmpfs_pages_count_against_the_memory_limit(make_group: object, tmp_path: Path) -> None:
    """A tmpfs with room to spare, in a group whose memory is smaller: the writer is ended at the
    group's limit, so a workspace cannot hold the host's memory in /tmp or /dev/shm."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    group = make_group(limits(memory_bytes=64 * MIB))  # type: ignore[operator]
    writer = (
        "import os\n"
        "import sys\n"
        "with open(sys.argv[1] + '/fill', 'wb') as f:\n"
        "    for _ in range(192): f.write(os.urandom(1 << 20)); f.flush()\n"
        "print('wrote all')"
    )
    mount = tmp_path / "tmpfs"  # not /tmp: the interpreter may live under it (a checkout in /tmp)
    mount.mkdir()
    command = ["bwrap", "--dev-bind", "/", "/", "--size", str(512 * MIB), "--tmpfs", str(mount), "--"]
    done = subprocess.run(
        group.join([*command, sys.executable, "-c", writer, str(mount)]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "wrote all" not in done.stdout, done
    assert done.returncode == 128 + 9, (done.returncode, done.stderr[-500:])  # bwrap: its child was killed
    assert group.oom_kills() >= 1


def test_the_process_limit_refuses_a_fork_bomb(make_group: object) -> None:
    group = make_group(limits(processes=24))  # type: ignore[operator]
    bomb = (
        "import subprocess\n"
        "children = []\n"
        "try:\n"
        "    for _ in range(200): children.append(subprocess.Popen(['sleep', '60']))\n"
        "except OSError as exc: print('refused', len(children), type(exc).__name__)\n"
        "for child in children: child.kill()\n"
    )
    done = run(group, bomb)
    assert done.stdout.startswith("refused"), (done.stdout, done.stderr[-500:])
    assert int(done.stdout.split()[1]) < 24
    assert group.stat("pids.events").get("max", 0) >= 1  # the group refused it, not a per-user limit


def test_the_cpu_quota_throttles_a_busy_workspace(make_group: object) -> None:
    group = make_group(limits(cpus=0.2))  # type: ignore[operator]
    busy = (
        "import multiprocessing, time\n"
        "def spin():\n"
        "    end = time.monotonic() + 1.5\n"
        "    while time.monotonic() < end: pass\n"
        "ps = [multiprocessing.Process(target=spin) for _ in range(2)]\n"
        "[p.start() for p in ps]; [p.join() for p in ps]\n"
        "print(time.process_time())"
    )
    done = run(group, busy)
    assert done.returncode == 0, done.stderr[-500:]
    assert group.stat("cpu.stat").get("nr_throttled", 0) >= 1, group.stat("cpu.stat")


def test_removing_a_group_ends_what_was_left_in_it(tree: CgroupTree) -> None:
    group = tree.create(f"test-{os.getpid()}-left", limits())
    child = subprocess.Popen(group.join(["sleep", "300"]))
    try:
        for _ in range(100):
            if group.processes():
                break
            subprocess.run(["sleep", "0.05"], check=False)
        assert child.pid in group.processes()
        group.remove()
        assert child.wait(timeout=30) == -9
        assert not any(d.exists() for d in group.directories)
    finally:
        child.kill()
        child.wait()


# --- the home's quota --------------------------------------------------------------------------


@pytest.fixture
def quotas() -> None:
    problems = quota_problems()
    if problems:
        if REQUIRE_SANDBOX:
            pytest.fail("; ".join(problems))
        pytest.skip("; ".join(problems))


OWNER = Account("nobody", 65534, 65534)


def _fill(home: Path) -> int:
    """Write until the disk refuses (as root, who has no reserved blocks either: the image is made
    with none); return the bytes written."""
    code = (
        "import os, sys\n"
        "n = 0\n"
        "try:\n"
        "    with open(sys.argv[1], 'wb') as f:\n"
        "        while True: f.write(b'x' * (1 << 20)); f.flush(); n += 1 << 20\n"
        "except OSError as exc: print(n, exc.errno)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(home / "fill")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    written, errno = done.stdout.split()
    assert errno == "28", done  # ENOSPC
    return int(written)


def test_a_home_is_its_own_filesystem_of_the_set_size(quotas: None, tmp_path: Path) -> None:
    home, image = tmp_path / "workspaces" / "p1" / "rosa", tmp_path / "disks" / "p1" / "rosa.ext4"
    home.mkdir(parents=True)
    (home / "analysis.ipynb").write_text("{}")  # made before quotas: copied into the image
    os.chown(home / "analysis.ipynb", OWNER.uid, OWNER.gid)
    host_free = shutil.disk_usage(tmp_path).free
    mount_home(home, image, 32 * MIB, OWNER)
    try:
        assert os.path.ismount(home)
        assert (home / "analysis.ipynb").read_text() == "{}"
        assert (home / "analysis.ipynb").stat().st_uid == OWNER.uid
        assert home.stat().st_uid == OWNER.uid
        assert home.stat().st_mode & 0o777 == 0o700
        assert sorted(p.name for p in home.iterdir()) == ["analysis.ipynb"]  # no lost+found
        written = _fill(home)
        assert 16 * MIB < written <= 32 * MIB, written
        # the host lost no more than the image can hold
        assert host_free - shutil.disk_usage(tmp_path).free < 48 * MIB
        mount_home(home, image, 32 * MIB, OWNER)  # again: already mounted, left as it is
        (home / "fill").unlink()
    finally:
        unmount_home(home)
    assert not os.path.ismount(home)
    assert list(home.iterdir()) == []  # the old files live in the image only
    # a larger size grows the image, files kept
    mount_home(home, image, 64 * MIB, OWNER)
    try:
        assert (home / "analysis.ipynb").exists()
        assert _fill(home) > 40 * MIB
    finally:
        unmount_home(home)


def test_the_hub_refuses_to_run_unbounded_workspaces_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from enclave.cli import app

    if sandbox_problems() and not REQUIRE_SANDBOX:
        pytest.skip("sandboxing needs root and bubblewrap")
    for key, value in {
        "ENCLAVE_HOME": str(tmp_path),
        "ENCLAVE_MODE": "production",
        "ENCLAVE_WORKSPACE_CGROUP": "off",
        "ENCLAVE_WORKSPACE_DISK_MB": "0",
    }.items():
        monkeypatch.setenv(key, value)
    refused = CliRunner().invoke(app, ["hub"])
    assert refused.exit_code == 1, refused.output
    assert "refusing to start in production mode" in refused.output
    assert "ENCLAVE_WORKSPACE_CGROUP=off" in refused.output
    assert "ENCLAVE_WORKSPACE_DISK_MB=0" in refused.output
    assert "Traceback" not in refused.output
