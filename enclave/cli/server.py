"""Running and setting up an enclave: ``enclave serve``, ``hub`` and ``demo``, and the ``db`` and
``config`` commands.

``serve``, ``hub`` and ``demo`` are plain functions here: :mod:`enclave.cli` registers them on the root
app.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from enclave.cli.common import CliError, err, operator, out, run, services
from enclave.config import Settings, load_settings
from enclave.wiring import Services

db_app = typer.Typer(help="The metadata database: migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the metadata database."""
    from enclave.db.migrate import current_revision, head_revision, upgrade
    from enclave.db.session import Database

    def body() -> None:
        settings = load_settings()
        settings.check_safe_to_start()
        settings.ensure_home()
        db = Database(settings.database)
        try:
            before = current_revision(db.engine)
            upgrade(settings.database)
            after = current_revision(db.engine)
        finally:
            db.dispose()
        if before == after:
            out.print(f"database already at {after} (head {head_revision(settings.database)})")
        else:
            out.print(f"database upgraded from {before or 'empty'} to {after}")

    run(body)


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision and the newest one this Enclave knows."""
    from enclave.db.migrate import current_revision, head_revision
    from enclave.db.session import Database

    def body() -> None:
        settings = load_settings()
        db = Database(settings.database)
        try:
            current = current_revision(db.engine)
        finally:
            db.dispose()
        out.print(f"current: {current or 'empty'}  head: {head_revision(settings.database)}")

    run(body)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets hidden) and what production mode would refuse."""

    def body() -> None:
        settings = load_settings()
        for key, value in settings.model_dump().items():
            shown = "***" if key == "secret_key" and value else value
            out.print(f"{key} = {shown}", highlight=False)
        out.print(f"database = {settings.database}", highlight=False)
        for problem in settings.problems():
            out.print(f"production would refuse: {problem}", highlight=False)

    run(body)


def _serve(settings: Settings, s: Services, host: str, port: int) -> None:
    """The API on TCP, and on the Unix socket that sandboxed workspaces reach it through: two
    listeners, two applications. The socket's serves only a workspace's routes and only workspace
    tokens; the TCP one refuses workspace tokens (``enclave.domain.policy.check_place``), so a
    workspace token copied off the screen is worthless outside its workspace."""
    import asyncio
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    from enclave.api.app import create_app, create_workspace_app, server_config

    class SocketServer(uvicorn.Server):
        # the TCP server handles the signals and stops this one when it stops
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    network = uvicorn.Server(server_config(create_app(s), log_level=settings.log_level))
    workspaces = SocketServer(
        server_config(create_workspace_app(s), log_level=settings.log_level, lifespan="off")
    )
    try:
        tcp = listen_tcp(host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    path = settings.ensure_sockets_dir() / settings.api_socket.name
    path.unlink(missing_ok=True)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    # The sockets directory is private (0700): this mode matters only inside the sandboxes it is
    # bind-mounted into, whose accounts must be able to connect.
    path.chmod(0o666)
    unix.listen(128)

    async def both() -> None:
        companion = asyncio.create_task(workspaces.serve(sockets=[unix]))
        try:
            await network.serve(sockets=[tcp])
        finally:
            workspaces.should_exit = True
            await companion

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again once its own handlers are
    # restored: with the default action the process would die there, before any `finally` (the demo's
    # hub and proxy would be left running). Exiting with the conventional status runs them.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        asyncio.run(both())
    finally:
        signal.signal(signal.SIGTERM, previous)
        path.unlink(missing_ok=True)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (ENCLAVE_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (ENCLAVE_API_PORT)")] = None,
) -> None:
    """Run the API with uvicorn. Creates the schema on first run; refuses an outdated one."""

    def body() -> None:
        settings = load_settings()
        with services() as s:
            _serve(settings, s, host or settings.api_host, port or settings.api_port)

    run(body)


def listen_tcp(host: str, port: int) -> socket.socket:
    """The API's listening socket, made with ``IPPROTO_TCP`` as its protocol: asyncio sets
    TCP_NODELAY on accepted connections only when their protocol says TCP, and ``create_server``
    leaves it 0. Without it Nagle's algorithm holds each small response on a kept-alive connection
    until the client's delayed ACK, about 40 ms a request."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def hub() -> None:
    """Run the workspace hub (JupyterHub and its proxy, configured by Enclave) in the foreground.

    Each project's workspace runs sandboxed (bubblewrap, its own account; needs root). On a machine
    that cannot sandbox the hub refuses to start, unless ENCLAVE_WORKSPACE_MODE=unsafe is set for
    development. The API (`enclave serve`) must be running: workspaces reach it through its socket.
    """

    def body() -> None:
        from enclave.hub.config import check_limits, check_mode, proxy_command, write_hub_config

        settings = load_settings()
        check_mode(settings)
        limits = check_limits(settings)  # production: refused here, in one line, when unbounded
        proxy_command(settings)
        config = write_hub_config(settings)
        err.print(f"workspace hub at {settings.hub_url} ({settings.workspace_mode} mode)", highlight=False)
        if limits.cgroups is not None:
            where = ", ".join(sorted({str(p) for p in limits.cgroups.parents.values()}))
            err.print(
                f"workspace control groups: cgroup v{limits.cgroups.version} under {where}", highlight=False
            )
        for missing in limits.missing:
            err.print(f"[yellow]warning[/yellow]: workspaces are not bounded: {escape(missing)}")
        os.execv(sys.executable, [sys.executable, "-m", "jupyterhub", "-f", str(config)])  # noqa: S606

    run(body)


def demo(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    no_serve: Annotated[bool, typer.Option(help="set everything up, print the logins, and exit")] = False,
    no_hub: Annotated[bool, typer.Option(help="serve the API only, without the workspace hub")] = False,
    persons: Annotated[int, typer.Option(help="size of the synthetic population (first run only)")] = 50_000,
) -> None:
    """Set up a demonstration enclave in ENCLAVE_HOME (accounts, a synthetic population ingested from
    every source), print its URLs and logins, and serve it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from enclave.demo import setup_access, setup_data, setup_demo

    def body() -> None:
        settings = load_settings()
        with services() as s:
            credentials = setup_demo(s, operator())
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                tasks: dict[str, Any] = {}

                def progress(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bar.add_task(stage, total=total)
                    bar.update(tasks[stage], completed=done, total=total)

                data = setup_data(s, operator(), persons=persons, progress=progress)
            access = setup_access(s, operator())
            datasets = s.catalog.list_datasets(operator())
            url = f"http://{host or settings.api_host}:{port or settings.api_port}"
            out.rule("Enclave demo")
            out.print(f"data directory : {settings.home_dir}", highlight=False)
            out.print(f"database       : {settings.database}", highlight=False)
            out.print(
                f"research store : {settings.research_store} ({len(datasets)} datasets,"
                f" {data.opt_outs:,} people opted out"
                + (", just generated and ingested" if data.ingested else "")
                + ")",
                highlight=False,
            )
            for d in datasets:
                out.print(
                    f"  {d['name']:<14} v{d.get('current_version')}  {d.get('rows', 0):>10,} rows"
                    f"  {d.get('persons', 0):>8,} persons",
                    highlight=False,
                )
            if access.approved_project is not None:
                p = access.approved_project
                out.print(
                    f'project        : {p.id} "{p.title}" ({p.state}, epsilon {p.epsilon},'
                    f" until {p.end_date}, members {', '.join(p.members)},"
                    f" datasets {', '.join(sorted(p.scope))})",
                    highlight=False,
                )
            if access.first_release is not None:
                r = access.first_release
                out.print(
                    f"first release  : {r.id}, people by region at epsilon {r.epsilon}"
                    f" (DP counts, 95% half-width {r.accuracy.get('count', 0):.0f}): "
                    + ", ".join(f"{row['region']} {row['count']}" for row in r.values[:4])
                    + ", ...",
                    highlight=False,
                )
            if access.pending_request is not None:
                out.print(
                    f"awaiting review: access request {access.pending_request}"
                    f" (sign in to the portal as custodian: {url}/portal/custodian/requests/"
                    f"{access.pending_request})",
                    highlight=False,
                )
            if access.pending_output is not None:
                out.print(
                    f"output check   : output request {access.pending_output} waits for two reviewers"
                    f" (sign in to the portal as reviewer1 or reviewer2: {url}/portal/reviewer/outputs/"
                    f"{access.pending_output})",
                    highlight=False,
                )
            out.print(
                f"API            : {url}   (OpenAPI: {url}/openapi.json, docs: {url}/docs)", highlight=False
            )
            out.print(
                f"portal         : {url}/portal/   (sign in with a login below: {url}/portal/sign-in)",
                highlight=False,
            )
            out.print(
                "logins (also in " + str(settings.key_store / "demo-credentials.json") + "):", highlight=False
            )
            table = Table("username", "roles", "password")
            for cred in credentials:
                table.add_row(cred.username, ", ".join(cred.roles), cred.password)
            out.print(table)
            out.print(
                f"try: curl -s -X POST {url}/auth/login -H 'content-type: application/json' "
                f'-d \'{{"username": "researcher", "password": "..."}}\'',
                highlight=False,
                soft_wrap=True,
            )
            if no_serve:
                return
            hub_process = None if no_hub else _start_demo_hub(settings)
            try:
                _serve(settings, s, host or settings.api_host, port or settings.api_port)
            finally:
                if hub_process is not None:
                    hub_process.terminate()
                    hub_process.wait(timeout=30)

    run(body)


def _start_demo_hub(settings: Settings) -> subprocess.Popen[bytes]:
    """The workspace hub beside the demo's API, sandboxed where the machine allows; its log goes to
    a file so the demo's console stays readable."""
    from enclave.hub.sandbox import sandbox_problems

    env = dict(os.environ, ENCLAVE_HOME=str(settings.home_dir))
    mode = "sandboxed"
    problems = sandbox_problems() if settings.workspace_mode == "sandbox" else []
    if settings.workspace_mode == "unsafe" or problems:
        env["ENCLAVE_WORKSPACE_MODE"] = "unsafe"
        mode = "UNSAFE DEVELOPMENT MODE, not sandboxed" + (f" ({'; '.join(problems)})" if problems else "")
    settings.hub_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (settings.hub_dir / "hub.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "enclave.cli", "hub"], env=env, stdout=log, stderr=log
        )
    out.print(
        f"workspaces     : {settings.hub_url}  ({mode}; log in as researcher to open project 1's"
        f" workspace; log: {settings.hub_dir / 'hub.log'})",
        highlight=False,
    )
    return process
