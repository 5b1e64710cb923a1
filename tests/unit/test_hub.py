"""The hub's pure parts: the sandbox's command line, the refusal to run unsandboxed, names, the banner."""

from __future__ import annotations

from pathlib import Path

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from enclave.config import Settings
from enclave.domain.errors import ConfigurationError
from enclave.hub import config as hub_config
from enclave.hub import sandbox
from enclave.hub.guard import UnsafeBanner
from enclave.hub.limits import Limits
from enclave.hub.sandbox import Account, SandboxSpec, account_name
from enclave.hub.spawner import EXAMPLES, project_of, seed_examples


def spec(tmp_path: Path) -> SandboxSpec:
    return SandboxSpec(
        account=Account("ews-p3-u7", 2001, 2001),
        home=tmp_path / "home" / "workspaces" / "p3" / "rosa",
        socket_dir=tmp_path / "run" / "ws",
        api_socket=tmp_path / "run" / "api.sock",
        hub_socket=tmp_path / "run" / "hub.sock",
        jupyter_config=tmp_path / "home" / "hub" / "jupyter-config",
        limits=Limits(
            memory_bytes=2**30, processes=64, cpus=1, tmp_bytes=64 * 2**20, shm_bytes=32 * 2**20, disk_bytes=0
        ),
        extra_env={"ENCLAVE_API_TOKEN": "t0ken", "JPY_PARENT_PID": "1"},
    )


def test_the_sandbox_mounts_only_what_a_workspace_needs(tmp_path: Path) -> None:
    cmd = spec(tmp_path).command(["python", "-m", "enclave.hub.singleuser"])
    assert cmd[0] == "bwrap"
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--clearenv"):
        assert flag in cmd
    sources = {cmd[i + 1] for i, a in enumerate(cmd) if a in ("--bind", "--ro-bind")}
    home = str(tmp_path / "home")
    # of ENCLAVE_HOME, only this workspace's home and the read-only Jupyter configuration
    assert {s for s in sources if s.startswith(home)} == {
        f"{home}/workspaces/p3/rosa",
        f"{home}/hub/jupyter-config",
    }
    writable = {cmd[i + 1] for i, a in enumerate(cmd) if a == "--bind"}
    assert writable == {f"{home}/workspaces/p3/rosa", str(tmp_path / "run" / "ws")}
    assert "/etc" not in sources  # only chosen files of /etc
    assert "/etc/passwd" in sources
    # the drop to the account comes before the server, with no way back to privileges
    drop = cmd.index("setpriv")
    assert cmd.index("--") < drop < cmd.index("python")
    assert {"--reuid=2001", "--regid=2001", "--no-new-privs", "--bounding-set=-all"} <= set(cmd[drop:])
    assert "--nproc=64" in cmd
    # sized tmpfs: /tmp and /dev/shm each have their size just before them
    for size, target in ((64 * 2**20, "/tmp"), (32 * 2**20, "/dev/shm")):
        at = cmd.index(target)
        assert cmd[at - 3 : at] == ["--size", str(size), "--tmpfs"], cmd[at - 4 : at + 1]
    env = {cmd[i + 1]: cmd[i + 2] for i, a in enumerate(cmd) if a == "--setenv"}
    assert env["ENCLAVE_API_TOKEN"] == "t0ken"
    assert env["HOME"] == "/home/workspace"
    assert env["PYTHONNOUSERSITE"] == "1"


def test_every_mount_target_is_reachable_by_the_account(tmp_path: Path) -> None:
    """bubblewrap creates missing parents 0700 root: each one must be made 0755 first."""
    cmd = spec(tmp_path).command(["true"])
    made = {cmd[i + 3] for i, a in enumerate(cmd) if a == "--perms" and cmd[i + 2] == "--dir"}
    targets = [cmd[i + 2] for i, a in enumerate(cmd) if a in ("--bind", "--ro-bind")]
    for target in targets:
        for parent in Path(target).parents:
            if str(parent) not in ("/", "/usr", "/tmp", "/proc", "/dev") and str(parent) not in targets:
                assert str(parent) in made, f"{parent} (parent of {target}) would be 0700"


def test_the_hub_refuses_to_run_unsandboxed_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: None)
    with pytest.raises(ConfigurationError, match=r"cannot sandbox workspaces: .*bwrap is not installed"):
        hub_config.check_mode(Settings(home=tmp_path))
    hub_config.check_mode(Settings(home=tmp_path, workspace_mode="unsafe"))
    production = Settings(
        home=tmp_path,
        workspace_mode="unsafe",
        mode="production",
        secret_key="x" * 40,
        database_url="sqlite://",
    )
    with pytest.raises(ConfigurationError, match="refused in production"):
        hub_config.check_mode(production)


def test_names() -> None:
    assert account_name(12, 345) == "ews-p12-u345"
    assert len(account_name(9_999_999_999, 9_999_999_999)) <= 32  # useradd's limit
    assert project_of("p7") == 7
    for bad in ("", "default", "p0", "p07", "x1", "p1/../p2"):
        with pytest.raises(Exception, match="not a workspace"):
            project_of(bad)


def test_unsafe_pages_carry_a_banner() -> None:
    banner = UnsafeBanner(
        HTTPServerRequest(
            start_line=RequestStartLine("GET", "/lab", "HTTP/1.1"), headers=HTTPHeaders({"Host": "hub"})
        )
    )
    page = b"<html><body class='x'><div>lab</div></body></html>"
    headers = HTTPHeaders({"Content-Type": "text/html; charset=UTF-8", "Content-Length": str(len(page))})
    _, out_headers, out = banner.transform_first_chunk(200, headers, page, True)
    assert b"UNSAFE DEVELOPMENT MODE" in out
    assert out.index(b"UNSAFE") > out.index(b"<body")
    assert out_headers["Content-Length"] == str(len(out))
    json_headers = HTTPHeaders({"Content-Type": "application/json"})
    assert banner.transform_first_chunk(200, json_headers, b"{}", True)[2] == b"{}"


def test_the_jupyter_configuration_hides_exports(tmp_path: Path) -> None:
    written = hub_config.write_jupyter_config(tmp_path / "cfg")
    assert '"enclave.hub.guard": true' in (written / "jupyter_server_config.json").read_text()
    page = (written / "labconfig" / "page_config.json").read_text()
    assert "@jupyterlab/docmanager-extension:download" in page
    assert (written / "migrated").exists()


def test_example_notebooks_are_copied_into_a_new_home_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert seed_examples(home)
    copied = sorted(p.name for p in (home / "examples").iterdir())
    assert copied == sorted(p.name for p in EXAMPLES.glob("*.ipynb"))
    assert len(copied) >= 3
    (home / "examples" / copied[0]).unlink()  # the researcher's choice is kept
    assert not seed_examples(home)
    assert not (home / "examples" / copied[0]).exists()
