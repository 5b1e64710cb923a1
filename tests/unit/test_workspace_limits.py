"""Finding the host's control-group tree and what a workspace's group is given, over a directory laid
out as the kernel's would be (the real kernel is tests/integration/test_workspace_limits.py), and
the hub's refusal to start in production without bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.config import Settings
from enclave.domain.errors import ConfigurationError
from enclave.hub import config as hub_config
from enclave.hub.limits import HUB_LEAF, Cgroup, CgroupTree, CgroupUnavailable, Limits, find_tree

LIMITS = Limits(
    memory_bytes=512 * 2**20, processes=100, cpus=1.5, tmp_bytes=2**26, shm_bytes=2**25, disk_bytes=2**27
)

V1_MOUNTINFO = """\
25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
30 25 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
31 25 0:28 / {root}/memory rw,nosuid - cgroup cgroup rw,memory
32 25 0:29 / {root}/pids rw,nosuid - cgroup cgroup rw,pids
33 25 0:30 / {root}/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 25 0:31 / {root}/cpuset rw,nosuid - cgroup cgroup rw,cpuset
"""
V1_OWN = "9:cpuset:/\n4:memory:/service/hub\n3:pids:/\n2:cpu,cpuacct:/service\n0::/\n"
V2_MOUNTINFO = "30 25 0:27 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def _v2(tmp_path: Path, processes: str = "") -> tuple[Path, Path, Path]:
    root = tmp_path / "cg"
    unit = root / "system.slice" / "enclave.service"
    unit.mkdir(parents=True)
    (unit / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (unit / "cgroup.subtree_control").write_text("")
    (unit / "cgroup.type").write_text("domain\n")
    (unit / "cgroup.procs").write_text(processes)
    mountinfo, own = tmp_path / "mountinfo", tmp_path / "own"
    mountinfo.write_text(V2_MOUNTINFO.format(root=root))
    own.write_text("0::/system.slice/enclave.service\n")
    return unit, mountinfo, own


def test_auto_finds_the_hubs_own_v2_group_and_a_workspace_group_gets_its_limits(tmp_path: Path) -> None:
    unit, mountinfo, own = _v2(tmp_path)
    tree = find_tree("auto", mountinfo=mountinfo, own=own)
    assert tree.version == 2
    assert set(tree.parents.values()) == {unit}

    group = _create_fake(tree, "ews-p3-u7")
    (directory,) = group.directories
    assert directory == unit / "enclave-ews-p3-u7"
    assert (directory / "memory.max").read_text() == str(512 * 2**20)
    assert (directory / "pids.max").read_text() == "100"
    assert (directory / "cpu.max").read_text() == "150000 100000"
    assert set((unit / "cgroup.subtree_control").read_text().split()) == {"+memory", "+pids", "+cpu"}
    join = group.join(["bwrap", "--", "python"])
    assert join[:2] == ["/bin/sh", "-c"]
    assert join[join.index("--") - 1] == str(directory / "cgroup.procs")
    assert join[-3:] == ["bwrap", "--", "python"]  # the sandbox's own "--" is left alone


def test_v2_processes_of_the_delegated_group_move_to_a_leaf_before_controllers_are_handed_down(
    tmp_path: Path,
) -> None:
    unit, mountinfo, own = _v2(tmp_path, processes="4242\n")
    tree = find_tree("auto", mountinfo=mountinfo, own=own)
    _create_fake(tree, "ews-p1-u1")
    assert (unit / HUB_LEAF / "cgroup.procs").read_text() == "4242"


def test_no_cpu_quota_is_max(tmp_path: Path) -> None:
    unit, _mountinfo, _own = _v2(tmp_path)
    tree = find_tree(str(unit))  # a path names the delegated directory
    group = _create_fake(tree, "w", Limits(2**30, 64, 0, 2**26, 2**25, 0))
    assert (group.directories[0] / "cpu.max").read_text() == "max 100000"


def test_a_hybrid_host_uses_its_v1_hierarchies(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    mountinfo, own = tmp_path / "mountinfo", tmp_path / "own"
    mountinfo.write_text(V1_MOUNTINFO.format(root=root))
    own.write_text(V1_OWN)
    for directory in ("memory/service/hub", "pids", "cpu,cpuacct/service"):
        (root / directory).mkdir(parents=True)
    tree = find_tree("auto", mountinfo=mountinfo, own=own)  # v2 is mounted, but with no controllers
    assert tree.version == 1
    assert tree.parents == {
        "memory": root / "memory/service/hub",
        "pids": root / "pids",
        "cpu": root / "cpu,cpuacct/service",
    }
    group = _create_fake(tree, "ews-p3-u7")
    memory, pids, cpu = (tree.group_dir(group, c) for c in ("memory", "pids", "cpu"))
    assert (memory / "memory.limit_in_bytes").read_text() == str(512 * 2**20)
    assert (pids / "pids.max").read_text() == "100"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "150000"
    assert len(group.join(["x"])) == 4 + 3 + 2  # sh -c script name, three groups, --, x


def test_a_host_without_the_controllers_says_which_are_missing(tmp_path: Path) -> None:
    mountinfo, own = tmp_path / "mountinfo", tmp_path / "own"
    mountinfo.write_text("31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    own.write_text("4:memory:/\n0::/\n")
    with pytest.raises(CgroupUnavailable, match="missing: pids, cpu"):
        find_tree("auto", mountinfo=mountinfo, own=own)
    with pytest.raises(CgroupUnavailable, match="not a cgroup v2 directory"):
        find_tree(str(tmp_path))


def _create_fake(tree: CgroupTree, name: str, limits: Limits = LIMITS) -> Cgroup:
    """``CgroupTree.create`` on plain directories (where the kernel would make the interface files,
    writing creates them)."""
    return tree.create(name, limits)


def test_production_refuses_to_start_without_bounds(tmp_path: Path) -> None:
    def none(setting: str) -> CgroupTree:
        raise CgroupUnavailable("no tree here")

    production = Settings(home=tmp_path, mode="production", workspace_cgroup="auto")
    with pytest.raises(ConfigurationError, match="no tree here"):
        hub_config.check_limits(production, find=none)
    off = Settings(home=tmp_path, mode="production", workspace_cgroup="off", workspace_disk_mb=0)
    with pytest.raises(ConfigurationError) as refused:
        hub_config.check_limits(off, find=none)
    assert "ENCLAVE_WORKSPACE_CGROUP=off" in str(refused.value)
    assert "ENCLAVE_WORKSPACE_DISK_MB=0" in str(refused.value)
    # development runs without them, and says what is missing
    development = hub_config.check_limits(Settings(home=tmp_path, workspace_disk_mb=0), find=none)
    assert development.cgroups is None
    assert not development.home_quotas
    assert "no tree here" in development.missing
    # unsafe development mode has none to check
    assert hub_config.check_limits(Settings(home=tmp_path, workspace_mode="unsafe")).missing == ()
