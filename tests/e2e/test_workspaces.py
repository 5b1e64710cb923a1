"""Workspaces for real: the API (`enclave serve`) and the hub (`enclave hub`: JupyterHub, the npm
proxy, sandboxed single-user servers) as processes (tests.helpers.hub.running_enclave); a researcher
logs in through the hub's form, starts a project's workspace and runs code in its kernel over the
websocket."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from enclave.domain.access.requests import ProjectState
from enclave.domain.identity.accounts import Role
from enclave.hub.config import HIDDEN_LAB_PLUGINS
from enclave.hub.limits import find_tree
from enclave.hub.sandbox import sandbox_problems
from enclave.wiring import Services
from tests.conftest import OPERATOR, REQUIRE_SANDBOX, Account, DatabaseFactory, make_account
from tests.factories import make_project
from tests.helpers.hub import Enclave, HubSession, running_enclave
from tests.helpers.portal import form_token, sign_in_http

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(sandbox_problems()) and not REQUIRE_SANDBOX,
        reason="sandboxing needs root and bubblewrap (CI has both and sets ENCLAVE_REQUIRE_SANDBOX)",
    ),
]

PASSWORD = "correct horse battery staple"
#: Small bounds, so that the test fills each of them quickly.
MIB = 2**20
LIMITS = {
    "ENCLAVE_WORKSPACE_MEMORY_MB": "1024",
    "ENCLAVE_WORKSPACE_TMP_MB": "64",
    "ENCLAVE_WORKSPACE_SHM_MB": "32",
    "ENCLAVE_WORKSPACE_DISK_MB": "256",
    "ENCLAVE_WORKSPACE_PROCESSES": "256",
}


@pytest.fixture(scope="module")
def enclave(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    def prepare(services: Services) -> dict[str, int]:
        projects = {
            "first": make_project(services, "rosa", title="First project"),
            "second": make_project(services, "rosa", title="Second project"),
            "other": make_project(services, "omar", title="Someone else's project"),
        }
        for name in ("rosa", "omar"):
            services.identity.set_password(OPERATOR, name, PASSWORD)
        make_account(services, "nina", Role.RESEARCHER)
        services.identity.set_password(OPERATOR, "nina", PASSWORD)
        return projects

    with running_enclave(database_factory, tmp_path_factory.mktemp("workspaces"), prepare, LIMITS) as running:
        yield running


def test_login_with_enclave_credentials_only(enclave: Enclave) -> None:
    wrong = HubSession(enclave.hub_url, "rosa")
    assert wrong.login("not the password").status_code == 403
    right = enclave.session("rosa", PASSWORD)
    home = right.home()
    assert "First project" in home
    assert "Second project" in home
    assert "Someone else" not in home
    right.close()
    wrong.close()


def test_a_portal_session_signs_in_to_the_hub_without_a_second_password(enclave: Enclave) -> None:
    """A browser signed in to the portal is signed in to the hub as the same user (the cookie goes to
    the same host whatever the port); once it signs out of the portal, the hub asks for a password."""
    with httpx.Client(base_url=enclave.api_url, follow_redirects=False) as portal:
        assert sign_in_http(portal, Account("rosa", PASSWORD, "")).status_code == 303
        secret = portal.cookies["enclave-session"]
        with httpx.Client(base_url=enclave.hub_url, follow_redirects=False, timeout=30) as hub:
            hub.cookies.set("enclave-session", secret)
            entered = hub.get("/hub/login", params={"next": "/hub/home"})
            assert entered.status_code == 302, entered.text[:300]
            assert entered.headers["location"].endswith("/hub/home")
            assert "First project" in hub.get("/hub/home").text
        token = form_token(portal.get("/portal/account").text)
        assert portal.post("/portal/sign-out", data={"csrf_token": token}).status_code == 303
    for cookie in (secret, "a-made-up-session-secret"):
        with httpx.Client(base_url=enclave.hub_url, follow_redirects=False, timeout=30) as hub:
            hub.cookies.set("enclave-session", cookie)
            form = hub.get("/hub/login")
            assert form.status_code == 200
            assert 'name="password"' in form.text
            assert hub.get("/hub/home").status_code == 302  # not signed in


def test_user_without_a_project_gets_a_page_saying_so(enclave: Enclave) -> None:
    session = enclave.session("nina", PASSWORD)
    assert "You have no active project" in session.home()
    session.close()


def test_starting_a_workspace_of_another_project_is_refused_and_audited(enclave: Enclave) -> None:
    session = enclave.session("rosa", PASSWORD)
    other = enclave.projects["other"]
    response = session.start(f"p{other}")
    assert response.status_code == 403
    assert "not a member" in response.json()["message"]
    assert any(e["subject"] == str(other) for e in enclave.events("workspace.start_refused"))
    assert session.start("default").status_code == 400  # only project workspaces exist
    session.close()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_in_the_browser_jupyterlab_offers_no_download_or_export(enclave: Enclave) -> None:
    """A researcher logs in to the hub in headless Chromium, opens a project's workspace from the
    home page and gets JupyterLab, whose File menu has no Download and no export entries."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if REQUIRE_SANDBOX:
            pytest.fail("Chromium is not installed (Debian's chromium package; .ci/run installs it)")
        pytest.skip("Chromium is not installed")
    second = enclave.projects["second"]
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            page.goto(f"{enclave.hub_url}/hub/login")
            page.fill("#username_input", "rosa")
            page.fill("#password_input", PASSWORD)
            page.click("#login_submit")
            page.wait_for_url("**/hub/home")
            row = page.locator(f'tr[data-project="{second}"]')
            assert "Second project" in row.inner_text()
            row.get_by_role("link", name="Open workspace").click()
            page.wait_for_url(f"**/user/rosa/p{second}/lab**")
            page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
            menu = page.locator(".lm-Menu-content").first
            menu.wait_for()
            labels = [label.strip() for label in menu.locator(".lm-Menu-itemLabel").all_inner_texts()]
            assert any(label.startswith("Save") for label in labels), labels  # the menu is there
            assert "Download" not in labels, labels
            assert not [label for label in labels if "Export" in label], labels
        finally:
            browser.close()
    session = enclave.session("rosa", PASSWORD)
    session.stop(f"p{second}")
    session.close()


def test_a_sandboxed_workspace(enclave: Enclave) -> None:
    """The issue's end-to-end test: the client works; every way around it fails."""
    first, second = enclave.projects["first"], enclave.projects["second"]
    session = enclave.session("rosa", PASSWORD)
    started = time.monotonic()
    session.start(f"p{first}")
    spawn_seconds = time.monotonic() - started
    kernel = session.kernel(f"p{first}")

    ok = kernel.run(
        "import enclave.client, json\n"
        "ws = enclave.client.connect()\n"
        "print(json.dumps({'catalog': ws.catalog(), 'budget': ws.budget()}))"
    )
    assert ok.status == "ok", ok
    seen = json.loads(ok.stdout)
    assert [d["dataset"] for d in seen["catalog"]] == ["demographics"]
    assert seen["budget"]["project_id"] == first

    home = enclave.settings.home_dir
    listener = socket.create_server(("127.0.0.1", 0))
    test_port = listener.getsockname()[1]
    hub_port = enclave.settings.hub_port
    s = enclave.settings
    secrets = [
        str(p)
        for p in (s.master_key_file, home / "enclave.db", s.holding_store, s.release_store, s.derived_store)
    ]
    secrets += [str(p) for p in s.research_store.rglob("*.parquet")]
    assert len(secrets) > 4  # the research store has data to try
    probes = kernel.run(
        "import os, socket, json\n"
        "def connect(port):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=2).close(); return 'open'\n"
        "    except OSError as e: return type(e).__name__\n"
        "def read(path):\n"
        "    try:\n"
        "        open(path, 'rb').read(1); return 'read'\n"
        "    except OSError as e: return type(e).__name__\n"
        f"ports = {{p: connect(p) for p in ({hub_port}, {hub_port + 1}, {test_port},"
        f" {enclave.settings.api_port}, 5432)}}\n"
        f"files = {{p: read(p) for p in {secrets!r} + ['/etc/shadow']}}\n"
        "print(json.dumps({'ports': ports, 'files': files, 'uid': os.getuid(), 'pids': os.listdir('/proc')}))"
    )
    listener.close()
    assert probes.status == "ok", probes
    found = json.loads(probes.stdout)
    assert set(found["ports"].values()) == {"ConnectionRefusedError"}, found["ports"]
    # not unreadable: absent, since nothing of ENCLAVE_HOME but the workspace's own home is mounted
    assert set(found["files"].values()) == {"FileNotFoundError"}, found["files"]
    assert found["uid"] != 0

    stolen = kernel.run(
        "import httpx, os\n"
        "uds = httpx.HTTPTransport(uds=os.environ['ENCLAVE_API_SOCKET'])\n"
        "c = httpx.Client(base_url='http://enclave', transport=uds,"
        " headers={'Authorization': 'Bearer ' + os.environ['ENCLAVE_API_TOKEN']})\n"
        f"print(c.get('/projects/{enclave.projects['other']}/budget').status_code,"
        " c.get('/catalog/linkage').status_code, c.get('/users').status_code,"
        f" c.get('/projects/{first}/budget').status_code)"
    )
    # another project: refused; the linkage catalog and accounts: not served on the workspace socket
    assert stolen.stdout.split() == ["403", "404", "404", "200"], stolen

    # from inside, through its own server's socket with the server's token: the server's guard
    inside = kernel.run(
        "import httpx, os\n"
        "uds = httpx.HTTPTransport(uds='/run/workspace/jupyter.sock')\n"
        "auth = {'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}\n"
        "srv = httpx.Client(base_url='http://workspace', headers=auth, transport=uds)\n"
        "base = os.environ['JUPYTERHUB_SERVICE_PREFIX']\n"
        "open('notes.txt', 'w').write('x')\n"
        "print(srv.get(base + 'api/contents/notes.txt?type=file&format=text').status_code,"
        " srv.get(base + 'files/notes.txt').status_code,"
        " srv.get(base + 'nbconvert/html/notes.txt').status_code,"
        " srv.get(base + 'api/contents/notes.txt?type=file&format=base64').status_code)"
    )
    assert inside.stdout.split() == ["200", "403", "403", "403"], inside

    # no downloads: the proxy's guard, and the server's for binary reads
    put = session.server_request(
        "PUT",
        f"p{first}",
        "api/contents/results.csv",
        json={"type": "file", "format": "text", "content": "a,b\n"},
    )
    assert put.status_code == 201
    for path in ("files/results.csv", "view/results.csv", "nbconvert/html/results.csv",
                 "api/contents/results.csv?format=base64&type=file"):  # fmt: skip
        assert session.server_get(f"p{first}", path).status_code == 403, path
    assert session.server_request("POST", f"p{first}", "api/nbconvert/html", json={}).status_code == 403
    text = session.server_get(f"p{first}", "api/contents/results.csv?format=text&type=file")
    assert text.status_code == 200  # JupyterLab still opens text and notebooks
    # JupyterLab's download and export menu entries are disabled in the page the server renders
    lab = session.server_get(f"p{first}", "lab")
    assert lab.status_code == 200
    embedded = re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', lab.text, re.S)
    assert embedded is not None, lab.text[:500]
    config = json.loads(embedded.group(1))
    assert set(HIDDEN_LAB_PLUGINS) <= set(config["disabledExtensions"]), config["disabledExtensions"]
    refused = enclave.events("workspace.download_refused")
    assert {e["subject"] for e in refused} == {str(first)}
    assert len(refused) >= 5

    # the second project's workspace sees its own home only
    session.start(f"p{second}")
    other_kernel = session.kernel(f"p{second}")
    peek = other_kernel.run(
        "import os\n"
        "print(sorted(os.listdir(os.environ['HOME'])), os.path.exists("
        f"{str(enclave.settings.workspaces_dir / f'p{first}')!r}))"
    )
    assert "results.csv" not in peek.stdout, peek
    assert "'examples'" in peek.stdout, peek  # the example notebooks, copied into a new home
    assert peek.stdout.strip().endswith("False"), peek
    kernel.close()
    other_kernel.close()
    session.stop(f"p{second}")

    # suspension stops the running workspace, and it cannot start again
    enclave.services.access.set_project_state(OPERATOR, first, ProjectState.SUSPENDED, "audit finding")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and f"p{first}" in session.servers():
        time.sleep(0.5)
    assert f"p{first}" not in session.servers()
    again = session.start(f"p{first}")
    assert again.status_code == 403
    assert "suspended" in again.json()["message"]
    stops = enclave.events("workspace.stopped")
    assert any("suspended" in str(e["reason"]) for e in stops), stops
    session.close()
    assert spawn_seconds < 60, f"spawn took {spawn_seconds:.1f} s"


#: A CSV of two rows, as a cell would smuggle it out.
CSV_B64 = "YSxiCjEsMgo="
BLOB_CLICK = (
    "const a = document.createElement('a'); a.download = 'rows.csv'; a.textContent = 'save blob';"
    " a.href = URL.createObjectURL(new Blob(['a,b\\n1,2\\n'])); document.body.appendChild(a); a.click();"
)
DATA_LINK = f'<a class="attack" download="rows.csv" href="data:text/csv;base64,{CSV_B64}">save html</a>'
INLINE_SCRIPT = "<script>" + BLOB_CLICK + '</script><img src="nothing" onerror="' + BLOB_CLICK + '">inline'
SVG_LINK = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30">'
    f'<a href="data:text/csv;base64,{CSV_B64}" download="rows.csv">'
    '<text x="5" y="20">save svg</text></a></svg>'
)
WINDOW_OPEN = f"window.open('data:text/csv;base64,{CSV_B64}')"
ATTACKS = [
    "from IPython.display import HTML, Javascript, SVG, display",
    f"display(HTML({DATA_LINK!r}))",
    f"display(Javascript({BLOB_CLICK!r}))",
    f"display(HTML({INLINE_SCRIPT!r}))",
    f"display(Javascript({WINDOW_OPEN!r}))",
    f"display(SVG({SVG_LINK!r}))",
]
MARKDOWN_ATTACK = (
    f"[save markdown](data:text/csv;base64,{CSV_B64})\n\n"
    f'<a class="attack" download="rows.csv" href="data:text/csv;base64,{CSV_B64}">save markdown html</a>'
)


def _notebook(code: list[str], markdown: tuple[str, ...] = ()) -> dict[str, object]:
    cells: list[dict[str, object]] = [
        {"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown
    ]
    cells += [
        {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
        for source in code
    ]
    return {
        "type": "notebook",
        "content": {
            "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    }


def _inject_download(page: object) -> None:
    """What an output the guard missed would do: a data: link with download, and a Blob clicked."""
    page.evaluate(  # type: ignore[attr-defined]
        "() => { const a = document.createElement('a'); a.download = 'rows.csv';"
        f" a.href = 'data:text/csv;base64,{CSV_B64}'; document.body.appendChild(a); a.click(); }}"
    )
    page.evaluate("() => {" + BLOB_CLICK + "}")  # type: ignore[attr-defined]


def test_in_the_browser_no_output_saves_a_file(enclave: Enclave, tmp_path: Path) -> None:
    """Each way a notebook's output could make Chromium save a file (an HTML data: link with
    download, a JavaScript Blob click, an inline script and an event handler, window.open of a data
    URL, an SVG link, a Markdown cell's data link, the File menu's print) saves nothing; the
    attempts the server sees are audited once each, a normal page load records none; and even
    markup injected past the guard cannot download under the page's policy, while the same
    injection on a page without it does (so the check can fail)."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if REQUIRE_SANDBOX:
            pytest.fail("Chromium is not installed (Debian's chromium package; .ci/run installs it)")
        pytest.skip("Chromium is not installed")
    first = enclave.projects["second"]  # the sandbox test suspends the first project
    session = enclave.session("rosa", PASSWORD)
    session.start(f"p{first}")
    plain = session.server_request(
        "PUT", f"p{first}", "api/contents/plain.ipynb", json=_notebook(["print('hello')"])
    )
    assert plain.status_code == 201, plain.text
    downloads_dir = tmp_path / "downloads"
    downloads_dir.mkdir()
    before = len(enclave.events("workspace.download_refused"))
    lab = f"{enclave.hub_url}/user/rosa/p{first}/lab"
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], downloads_path=str(downloads_dir)
        )
        try:
            context = browser.new_context(accept_downloads=True)
            downloads: list[object] = []
            context.on("page", lambda popup: popup.on("download", lambda d: downloads.append(d)))
            page = context.new_page()  # a "page" of the context too: its downloads are counted
            page.set_default_timeout(120_000)
            page.goto(f"{enclave.hub_url}/hub/login")
            page.fill("#username_input", "rosa")
            page.fill("#password_input", PASSWORD)
            page.click("#login_submit")
            page.wait_for_url("**/hub/home")

            # the control: on a page without the workspace's policy the injection does download
            _inject_download(page)
            deadline = time.monotonic() + 60
            while len(downloads) < 2 and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert len(downloads) == 2, f"the control downloaded {downloads}: the check could not fail"
            for download in downloads:  # the event comes at the start: wait for each file to be written
                download.path()  # type: ignore[attr-defined]
            downloads.clear()
            control_files = set(downloads_dir.iterdir())
            assert len(control_files) == 2, control_files

            # a normal page load records nothing
            response = page.goto(f"{lab}/tree/plain.ipynb")
            assert response is not None
            policy = response.headers.get("content-security-policy", "")
            assert "sandbox allow-scripts" in policy, policy
            assert "allow-downloads" not in policy, policy
            page.get_by_text("print('hello')").first.wait_for()
            page.wait_for_timeout(3000)
            assert len(enclave.events("workspace.download_refused")) == before, enclave.events(
                "workspace.download_refused"
            )

            attack = session.server_request(
                "PUT",
                f"p{first}",
                "api/contents/attack.ipynb",
                json=_notebook([*ATTACKS, "print('all cells ran')"], (MARKDOWN_ATTACK,)),
            )
            assert attack.status_code == 201, attack.text
            # its kernel started ahead, so the page attaches to a running one (see the note on the
            # proxy's EPIPE in docs/workspaces.md)
            started = session.server_request(
                "POST",
                f"p{first}",
                "api/sessions",
                json={
                    "path": "attack.ipynb",
                    "name": "attack.ipynb",
                    "type": "notebook",
                    "kernel": {"name": "python3"},
                },
            )
            assert started.status_code == 201, started.text
            page.goto(f"{lab}/tree/attack.ipynb")
            page.get_by_text(re.compile(r"ipykernel\) \| Idle")).first.wait_for()
            page.get_by_text("all cells ran").first.wait_for()  # the source, once the notebook is open
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            page.locator(".jp-OutputArea-output", has_text="all cells ran").first.wait_for()
            page.wait_for_timeout(2000)
            removed = page.get_by_text("Enclave removed this output")
            assert removed.count() >= 2, "no notice in the cleaned HTML outputs"
            for link in page.locator("a", has_text="save").all():
                link.click(force=True)
            page.wait_for_timeout(1000)
            # past the guard: the policy alone
            _inject_download(page)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(tmp_path / "attack.png"))
            # opening it again is no new attempt (each is audited once)
            page.wait_for_timeout(3000)
            after_reload = len(enclave.events("workspace.download_refused"))
            page.reload()
            page.get_by_text("all cells ran").first.wait_for()
            page.wait_for_timeout(3000)
            # no print in the File menu
            page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
            menu = page.locator(".lm-Menu-content").first
            menu.wait_for()
            labels = [label.strip() for label in menu.locator(".lm-Menu-itemLabel").all_inner_texts()]
            assert not [label for label in labels if label.startswith("Print")], labels
        finally:
            with contextlib.suppress(Exception):  # for whoever debugs a failure: the page as it was
                page.screenshot(path=str(tmp_path / "last.png"))
            browser.close()
    assert downloads == [], downloads
    assert set(downloads_dir.iterdir()) == control_files  # nothing saved after the control
    refused = enclave.events("workspace.download_refused")[before:]
    reasons = [str(e["reason"]) for e in refused]
    for expected in (
        "output: removed a link with a download attribute",
        "output: removed an output of type application/javascript",
        "output: removed a <script> element",
        "output: removed an event handler (onerror)",
        "output: removed a link in an SVG image",
        "notebook saved: removed a data: link",
    ):
        assert any(reason.startswith(expected) for reason in reasons), (expected, reasons)
    assert after_reload == len(enclave.events("workspace.download_refused")), "a reload is no new attempt"
    assert {e["subject"] for e in refused} == {str(first)}
    session.stop(f"p{first}")
    session.close()


FILL = (
    "import os, json\n"
    "def fill(path):\n"
    "    n = 0\n"
    "    try:\n"
    "        with open(path, 'wb') as f:\n"
    "            while True: f.write(b'x' * (1 << 20)); f.flush(); n += 1 << 20\n"
    "    except OSError as exc: return n, exc.errno\n"
    "    finally: os.remove(path)\n"
    "print(json.dumps({p: fill(p) for p in ('/tmp/fill', '/dev/shm/fill', os.path.expanduser('~/fill'))}))"
)
FORK = (
    "import subprocess\n"
    "children = []\n"
    "try:\n"
    "    for _ in range(1000): children.append(subprocess.Popen(['sleep', '120']))\n"
    "except OSError as exc: print('refused', len(children), exc.errno)\n"
    "for child in children: child.kill(); child.wait()\n"
)
MEMORY = (
    "import subprocess, sys\n"
    "grab = 'import time; chunk = b\"x\" * (450 << 20); time.sleep(10)'\n"
    "children = [subprocess.Popen([sys.executable, '-c', grab]) for _ in range(3)]\n"
    "print([child.wait() for child in children])\n"
)


def _groups(project_id: int) -> list[Path]:
    tree = find_tree("auto")
    pattern = f"enclave-ews-p{project_id}-u*"
    return sorted({p for parent in tree.parents.values() for p in parent.glob(pattern)})


def test_a_workspace_cannot_starve_the_host(enclave: Enclave) -> None:
    """Each bound filled from a notebook: /tmp, /dev/shm and the home refuse more than their size,
    a fork bomb is refused at the process limit, memory beyond the limit ends the workspace's own
    process (and is audited); the hub and the API answer throughout; stopping the workspace removes
    its control group and unmounts its home."""
    project = enclave.projects["second"]
    session = enclave.session("rosa", PASSWORD)
    session.start(f"p{project}")
    home = enclave.settings.workspace_home(project, "rosa")
    assert os.path.ismount(home), "the home is not its own filesystem"
    groups = _groups(project)
    assert groups, "the workspace has no control group"
    host_free = shutil.disk_usage(enclave.settings.home_dir).free
    kernel = session.kernel(f"p{project}")

    filled = kernel.run(FILL, timeout=300)
    assert filled.status == "ok", filled
    sizes = json.loads(filled.stdout)
    for path, limit in (("/tmp/fill", 64), ("/dev/shm/fill", 32), ("/home/workspace/fill", 256)):
        written, errno = sizes[path]
        assert errno == 28, (path, sizes)  # ENOSPC
        assert written <= limit * MIB, (path, sizes)  # at its size
        assert written > limit * MIB // 2, (path, sizes)  # and not much before
    assert host_free - shutil.disk_usage(enclave.settings.home_dir).free < 256 * MIB

    forked = kernel.run(FORK, timeout=300)
    assert forked.stdout.startswith("refused"), forked
    assert int(forked.stdout.split()[1]) < 256

    grabbed = kernel.run(MEMORY, timeout=300)
    assert grabbed.status == "ok", grabbed  # the kernel lives: the largest process was ended
    assert "-9" in grabbed.stdout, grabbed
    killed = grabbed.stdout.count("-9")

    def audited() -> int:  # processes the hub audited as ended at the limit (it looks at each poll)
        return sum(int(str(e["detail"]).split()[0]) for e in enclave.events("workspace.limit_reached"))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and audited() < killed:
        time.sleep(0.5)
    time.sleep(5)  # two more polls: nothing is audited twice
    reached = enclave.events("workspace.limit_reached")
    assert audited() == killed, (reached, grabbed, enclave.output())
    assert {e["limit"] for e in reached} == {"memory"}, reached
    assert {e["subject"] for e in reached} == {str(project)}

    # the host answered throughout
    assert httpx.get(f"{enclave.api_url}/healthz", timeout=30).status_code == 200
    assert httpx.get(f"{enclave.hub_url}/hub/login", timeout=30).status_code == 200
    again = kernel.run("print('still here')")
    assert again.stdout.strip() == "still here", again
    kernel.close()

    session.stop(f"p{project}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (os.path.ismount(home) or any(g.exists() for g in groups)):
        time.sleep(0.5)
    assert not os.path.ismount(home), "the home stays mounted after the stop"
    assert not any(g.exists() for g in groups), "the control group outlives the workspace"
    session.close()
