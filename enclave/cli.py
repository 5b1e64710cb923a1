"""The ``enclave`` command.

Run on the server by an operator who can read ENCLAVE_HOME; such an operator holds every right and
is recorded in the audit log as ``operator:<os user>``. Every error a user can cause ends with one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from enclave import __version__
from enclave.cli_outputs import outputs_app
from enclave.config import Settings, load_settings
from enclave.domain.errors import EnclaveError, InvalidInput
from enclave.domain.identity import Actor, generate_password, parse_role
from enclave.wiring import Services, build_services

app = typer.Typer(
    name="enclave",
    help="Enclave: a privacy-preserving analytics enclave for health data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="The metadata database: migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts, roles, accreditation and API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)
catalog_app = typer.Typer(help="Datasets, versions, linkage reports, DCAT-AP export.", no_args_is_help=True)
optout_app = typer.Typer(help="The national data opt-out list.", no_args_is_help=True)
keys_app = typer.Typer(help="The key store.", no_args_is_help=True)
request_app = typer.Typer(help="Access requests: submit, list, show, decide, withdraw.", no_args_is_help=True)
projects_app = typer.Typer(
    help="Projects: list, show, suspend, reinstate, revoke, close, expire.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(catalog_app, name="catalog")
app.add_typer(optout_app, name="optout")
app.add_typer(keys_app, name="keys")
app.add_typer(request_app, name="request")
app.add_typer(projects_app, name="projects")
app.add_typer(outputs_app, name="outputs")

# Piped output (scripts, CI logs) gets wide tables instead of ones cut at 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


class CliError(Exception):
    """A one-line reason to stop, printed without a traceback."""


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def operator() -> Actor:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return Actor.operator(name)


@contextmanager
def services(*, migrate: bool = True) -> Iterator[Services]:
    built = build_services(load_settings(), migrate=migrate)
    try:
        yield built
    finally:
        built.close()


def run(fn: Callable[[], T]) -> T:
    """Run a command body, turning user-caused errors into one line and exit code 1."""
    try:
        return fn()
    except EnclaveError as exc:
        raise fail(exc.detail) from None
    except CliError as exc:
        raise fail(str(exc)) from None


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '90m' -> a timedelta."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise InvalidInput(f"cannot read duration {text!r}: use a number and d, h or m (e.g. 30d)")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"cannot read date {text!r}: use YYYY-MM-DD") from None


def _print_version(value: bool) -> None:
    if value:
        out.print(f"enclave {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """Enclave: a privacy-preserving analytics enclave for health data."""


# --- db ----------------------------------------------------------------------------------------


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


# --- users -------------------------------------------------------------------------------------


RoleOption = Annotated[
    list[str] | None, typer.Option("--role", "-r", help="researcher, custodian, reviewer, admin; repeatable")
]


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="lower-case login name")],
    role: RoleOption = None,
    name: Annotated[str, typer.Option(help="display name")] = "",
    email: Annotated[str, typer.Option()] = "",
    organisation: Annotated[str, typer.Option("--org", help="organisation")] = "",
    accredited_until: Annotated[
        str | None, typer.Option(help="researcher accreditation expiry, YYYY-MM-DD")
    ] = None,
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
    no_password: Annotated[bool, typer.Option(help="token-only account, no password login")] = False,
) -> None:
    """Create an account. Without --password-stdin a random password is generated and printed once.

    Bootstrap the first admin this way on the server: `enclave users add alice --role admin`.
    """

    def body() -> None:
        roles = frozenset(parse_role(r) for r in role or [])
        expires = parse_date(accredited_until) if accredited_until else None
        password: str | None
        if no_password:
            password = None
        elif password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = generate_password()
        with services() as s:
            user = s.identity.create_user(
                operator(),
                username=username,
                password=password,
                roles=roles,
                display_name=name,
                email=email,
                organisation=organisation,
                accreditation_expires=expires,
            )
        out.print(f"created {user.username} (roles: {', '.join(sorted(user.roles)) or 'none'})")
        if password is not None and not password_stdin:
            out.print(f"password: {password}", highlight=False)

    run(body)


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List accounts with their roles and accreditation."""

    def body() -> None:
        with services() as s:
            users = s.identity.list_users(operator())
        if as_json:
            for u in users:
                sys.stdout.write(
                    json.dumps(
                        {
                            "username": u.username,
                            "roles": sorted(u.roles),
                            "active": u.active,
                            "accreditation_expires": u.accreditation_expires.isoformat()
                            if u.accreditation_expires
                            else None,
                        }
                    )
                    + "\n"
                )
            return
        table = Table("username", "name", "roles", "active", "accredited until", "organisation")
        for u in users:
            table.add_row(
                u.username,
                u.display_name,
                ", ".join(sorted(u.roles)),
                "yes" if u.active else "no",
                str(u.accreditation_expires or "-"),
                u.organisation,
            )
        out.print(table)

    run(body)


@users_app.command("grant")
def users_grant(username: str, role: Annotated[str, typer.Argument(help="the role to grant")]) -> None:
    """Grant a role."""

    def body() -> None:
        with services() as s:
            user = s.identity.grant_role(operator(), username, parse_role(role))
        out.print(f"{user.username} now holds: {', '.join(sorted(user.roles))}")

    run(body)


@users_app.command("revoke")
def users_revoke(username: str, role: Annotated[str, typer.Argument(help="the role to revoke")]) -> None:
    """Revoke a role."""

    def body() -> None:
        with services() as s:
            user = s.identity.revoke_role(operator(), username, parse_role(role))
        out.print(f"{user.username} now holds: {', '.join(sorted(user.roles)) or 'no role'}")

    run(body)


@users_app.command("accredit")
def users_accredit(
    username: str,
    until: Annotated[str | None, typer.Option(help="last valid day, YYYY-MM-DD")] = None,
    withdraw: Annotated[bool, typer.Option(help="withdraw the accreditation")] = False,
) -> None:
    """Set (or withdraw) a researcher's accreditation."""

    def body() -> None:
        if (until is None) == (not withdraw):
            raise CliError("give either --until YYYY-MM-DD or --withdraw")
        expires = None if withdraw else parse_date(until or "")
        with services() as s:
            user = s.identity.set_accreditation(operator(), username, expires)
        out.print(f"{user.username} accredited until {user.accreditation_expires or '- (withdrawn)'}")

    run(body)


@users_app.command("passwd")
def users_passwd(
    username: str,
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
) -> None:
    """Set a password (random and printed once, unless read from stdin)."""

    def body() -> None:
        password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
        with services() as s:
            s.identity.set_password(operator(), username, password)
        out.print(f"password of {username} changed")
        if not password_stdin:
            out.print(f"password: {password}", highlight=False)

    run(body)


@users_app.command("deactivate")
def users_deactivate(username: str) -> None:
    """Deactivate an account and revoke all its tokens at once."""

    def body() -> None:
        with services() as s:
            s.identity.set_active(operator(), username, False)
        out.print(f"{username} deactivated; all its tokens are revoked")

    run(body)


@users_app.command("activate")
def users_activate(username: str) -> None:
    """Re-activate an account (its old tokens stay revoked)."""

    def body() -> None:
        with services() as s:
            s.identity.set_active(operator(), username, True)
        out.print(f"{username} activated")

    run(body)


@users_app.command("token")
def users_token(
    username: str,
    name: Annotated[str, typer.Option(help="what the token is for")] = "",
    expires_in: Annotated[str, typer.Option(help="lifetime, e.g. 30d, 12h")] = "30d",
) -> None:
    """Create a personal API token for a user and print it once."""

    def body() -> None:
        ttl = parse_duration(expires_in)
        with services() as s:
            issued = s.identity.issue_token(operator(), username, name=name, ttl=ttl)
        out.print(
            f"token {issued.token.id} for {username}, expires {issued.token.expires_at:%Y-%m-%d %H:%M} UTC",
            highlight=False,
        )
        out.print(issued.secret, highlight=False, soft_wrap=True)

    run(body)


@users_app.command("tokens")
def users_tokens(username: str) -> None:
    """List a user's tokens (never their secrets)."""

    def body() -> None:
        with services() as s:
            tokens = s.identity.list_tokens(operator(), username)
        now = datetime.now(UTC)
        table = Table("id", "kind", "name", "prefix", "expires", "state")
        for t in tokens:
            table.add_row(
                str(t.id),
                t.kind,
                t.name,
                t.prefix,
                f"{t.expires_at:%Y-%m-%d %H:%M}",
                t.problem(now) or "valid",
            )
        out.print(table)

    run(body)


@users_app.command("revoke-token")
def users_revoke_token(
    token_id: Annotated[int, typer.Argument(help="the token's id (see `users tokens`)")],
) -> None:
    """Revoke a token, with effect on the next request."""

    def body() -> None:
        with services() as s:
            token = s.identity.revoke_token(operator(), token_id)
        out.print(f"token {token.id} ({token.prefix}...) revoked")

    run(body)


# --- audit -------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every link of the audit chain; exit 0 with the count, or 1 naming the first bad event."""

    def body() -> None:
        with services() as s:
            result = s.audit.verify(operator())
        if not result.ok:
            raise CliError(result.describe())
        out.print(result.describe(), highlight=False)

    run(body)


@audit_app.command("export")
def audit_export(
    output: Annotated[Path | None, typer.Option("--out", "-o", help="file to write; default stdout")] = None,
    after: Annotated[int, typer.Option(help="only events after this sequence number")] = 0,
) -> None:
    """Write the audit events as JSON lines (with their hashes, so the export verifies on its own)."""

    def body() -> None:
        with services() as s:
            events = s.audit.export(operator(), after_seq=after)
            if output is None:
                for ev in events:
                    sys.stdout.write(ev.to_json() + "\n")
                return
            tmp = output.with_name(output.name + ".partial")
            count = 0
            with tmp.open("w", encoding="utf-8") as handle:
                for ev in events:
                    handle.write(ev.to_json() + "\n")
                    count += 1
            tmp.replace(output)
            err.print(f"wrote {count} events to {output}")

    run(body)


# --- config ------------------------------------------------------------------------------------


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


# --- custodian pipeline ------------------------------------------------------------------------


@app.command("synth")
def synth(
    persons: Annotated[int, typer.Option(help="number of persons")] = 50_000,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same files")] = 1,
    out: Annotated[Path, typer.Option(help="directory to write the extracts into")] = Path("synthetic"),
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
) -> None:
    """Generate a synthetic population and its source extracts (with realistic faults)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from enclave.synth import generate

    def body() -> None:
        if fmt not in ("csv", "parquet"):
            raise CliError(f"unknown format {fmt!r}: use csv or parquet")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            summary = generate(
                persons, seed, out, fmt="parquet" if fmt == "parquet" else "csv", progress=report
            )
        for name, rows in summary.files.items():
            console_print(f"{name:<28} {rows:>12,} rows")
        console_print(f"{summary.persons:,} persons in {summary.seconds:.1f} s -> {out}")

    run(body)


def read_text(path: Path) -> str:
    """A UTF-8 text file the user named, or a one-line reason why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def console_print(text: str) -> None:
    out.print(text, highlight=False)


@app.command("ingest")
def ingest(
    spec: Annotated[Path, typer.Argument(help="the source spec (YAML)")],
    file: Annotated[Path, typer.Argument(help="the extract: CSV (UTF-8, with a header) or Parquet")],
    report_file: Annotated[
        Path | None, typer.Option("--report", help="also write the ingest report as JSON")
    ] = None,
) -> None:
    """Validate an extract against its spec and publish it as the dataset's next version."""
    from enclave.ingest.spec import load_spec

    def body() -> None:
        loaded = load_spec(spec)
        with services() as s:
            result = s.catalog.ingest(operator(), loaded, file)
        data = result.as_dict()
        console_print(
            f"{loaded.dataset} v{result.version}: {result.rows_read:,} rows read,"
            f" {result.rows_written:,} written"
            f" ({result.persons:,} persons), {result.rows_quarantined:,} quarantined,"
            f" {result.rows_opted_out:,} opted out, in {result.seconds:.1f} s"
        )
        for reason, count in result.reasons.items():
            console_print(f"  quarantined {count:>8,}  {reason}")
        for column, count in result.clamped.items():
            if count:
                console_print(f"  clamped     {count:>8,}  {column}")
        if result.quarantine_file:
            console_print(f"  quarantine file (custodian only): {result.quarantine_file}")
        if report_file is not None:
            report_file.write_text(json.dumps(data, indent=2))

    run(body)


@optout_app.command("load")
def optout_load(
    file: Annotated[Path, typer.Argument(help="CSV with a column nhs_number, or one number per line")],
) -> None:
    """Replace the national data opt-out list (stored as keyed pseudonyms only)."""

    def body() -> None:
        with services() as s:
            stored, rejected = s.catalog.load_opt_outs(operator(), file)
        console_print(
            f"opt-out list replaced: {stored:,} people"
            + (f", {rejected:,} malformed lines skipped" if rejected else "")
        )

    run(body)


@catalog_app.command("list")
def catalog_list() -> None:
    """List datasets with their custodian, current version and size."""

    def body() -> None:
        with services() as s:
            datasets = s.catalog.list_datasets(operator())
        table = Table("dataset", "title", "population", "custodian", "version", "rows", "persons", "bound")
        for d in datasets:
            table.add_row(
                d["name"],
                d["title"],
                d["population"],
                d["custodian"],
                str(d.get("current_version") or "-"),
                f"{d.get('rows', 0):,}",
                f"{d.get('persons', 0):,}",
                str(d["contribution_bound"]),
            )
        out.print(table)

    run(body)


@catalog_app.command("show")
def catalog_show(name: str) -> None:
    """Print one dataset's metadata and columns as JSON."""

    def body() -> None:
        with services() as s:
            console_print(json.dumps(s.catalog.get_dataset(operator(), name), indent=2, default=str))

    run(body)


@catalog_app.command("versions")
def catalog_versions(name: str) -> None:
    """Print a dataset's versions with their ingest reports as JSON."""

    def body() -> None:
        with services() as s:
            console_print(json.dumps(s.catalog.versions(operator(), name), indent=2, default=str))

    run(body)


@catalog_app.command("build-views")
def catalog_build_views() -> None:
    """Write the bounded view of every current version that lacks one (ingested before views existed),
    so DP queries on it are measured row-level instead of truncating persons per query."""

    def body() -> None:
        with services() as s:
            built = s.catalog.build_views(operator())
        console_print(
            f"bounded views written: {', '.join(built)}" if built else "every current version has its view"
        )

    run(body)


@catalog_app.command("linkage")
def catalog_linkage(
    population: Annotated[str | None, typer.Option(help="only this population")] = None,
) -> None:
    """For each pair of sources: persons in each, matched, only in one, match rates."""

    def body() -> None:
        with services() as s:
            result = s.catalog.linkage_report(operator(), population)
        if not result:
            console_print("no dataset with data that you are the custodian of")
        for pop, data in result.items():
            sizes = ", ".join(f"{name} {count:,}" for name, count in data["datasets"].items())
            console_print(f"population {pop}: persons per dataset: {sizes}")
            if not data["pairs"]:
                console_print("  only one dataset: no pair to link yet")
                continue
            table = Table(
                "a",
                "b",
                "persons a",
                "persons b",
                "matched",
                "only a",
                "only b",
                "rate a",
                "rate b",
            )
            for p in data["pairs"]:
                table.add_row(
                    p["a"],
                    p["b"],
                    f"{p['persons_a']:,}",
                    f"{p['persons_b']:,}",
                    f"{p['matched']:,}",
                    f"{p['only_in_a']:,}",
                    f"{p['only_in_b']:,}",
                    f"{p['match_rate_a']:.1%}",
                    f"{p['match_rate_b']:.1%}",
                )
            out.print(table)

    run(body)


@catalog_app.command("dcat")
def catalog_dcat(
    base_url: Annotated[str | None, typer.Option(help="public URL of the API")] = None,
) -> None:
    """Print the catalog as DCAT-AP JSON-LD, for national data portals."""

    def body() -> None:
        settings = load_settings()
        with services() as s:
            console_print(json.dumps(s.catalog.dcat(base_url or settings.api_url), indent=2))

    run(body)


@keys_app.command("init")
def keys_init() -> None:
    """Create the master key if there is none (required once before production start)."""

    def body() -> None:
        from enclave.keys import KeyStore

        settings = load_settings()
        settings.ensure_home()
        store = KeyStore(settings.master_key_file, create=True)
        created = store.init()
        console_print(
            f"{'created' if created else 'kept the existing'} master key {settings.master_key_file}"
            f" (fingerprint {store.fingerprint()})"
        )

    run(body)


# --- access requests and projects ----------------------------------------------------------------

AsUser = Annotated[str, typer.Option("--as", help="act as this user (their rights; audited with your name)")]


def as_user(s: Services, username: str) -> Actor:
    user = s.identity.get_user(operator(), username)
    os_user = operator().name.removeprefix("operator:")
    return Actor.on_behalf(user, os_user)


def _print_request(request: Any) -> None:
    from enclave.api.routes.access import request_view

    console_print(json.dumps(request_view(request), indent=2))


@request_app.command("submit")
def request_submit(
    file: Annotated[Path, typer.Argument(help="the access request, YAML (see access_requests/examples)")],
    username: AsUser,
    draft: Annotated[bool, typer.Option(help="save as a draft without submitting")] = False,
) -> None:
    """Create an access request from a file, and submit it unless --draft."""
    from enclave.domain.access_form import parse_form

    def body() -> None:
        text = read_text(file)
        form = parse_form(text, source=file.name)
        with services() as s:
            request = s.access.create(as_user(s, username), form, submit=not draft)
        console_print(f"request {request.id} {request.state}: {request.form.title}")
        for part in request.parts:
            console_print(f"  {part.dataset:<16} {part.decision:<18} custodian {part.custodian}")

    run(body)


@request_app.command("list")
def request_list(
    username: Annotated[str | None, typer.Option("--as", help="only what this user can see")] = None,
) -> None:
    """List access requests with their state and each dataset's decision."""

    def body() -> None:
        with services() as s:
            who = as_user(s, username) if username else operator()
            requests = s.access.list_requests(who)
        table = Table("id", "state", "applicant", "title", "decisions", "project")
        for r in requests:
            decisions = ", ".join(f"{p.dataset}: {p.decision}" for p in r.parts)
            table.add_row(str(r.id), r.state, r.applicant, r.form.title, decisions, str(r.project_id or "-"))
        out.print(table)

    run(body)


@request_app.command("show")
def request_show(request_id: int) -> None:
    """Print one request, its form and its decisions, as JSON."""

    def body() -> None:
        with services() as s:
            _print_request(s.access.get(operator(), request_id))

    run(body)


@request_app.command("decide")
def request_decide(
    request_id: int,
    username: AsUser,
    dataset: Annotated[str, typer.Option(help="the dataset whose part you decide")],
    decision: Annotated[str, typer.Option(help="approved, rejected or changes_requested")],
    reason: Annotated[str, typer.Option(help="a sentence the applicant can read")],
    columns: Annotated[str | None, typer.Option(help="approve only these columns, comma-separated")] = None,
    epsilon: Annotated[str | None, typer.Option(help="approve at most this epsilon")] = None,
    end_date: Annotated[str | None, typer.Option(help="approve until this date, YYYY-MM-DD")] = None,
    min_count: Annotated[
        int | None, typer.Option(help="a stricter small-count threshold for outputs")
    ] = None,
) -> None:
    """Decide on your dataset's part of a request (as its custodian)."""
    from decimal import Decimal, InvalidOperation

    from enclave.domain.access import Decision

    def body() -> None:
        try:
            chosen = Decision(decision)
        except ValueError:
            raise CliError(
                f"unknown decision {decision!r}: use approved, rejected or changes_requested"
            ) from None
        try:
            eps = Decimal(epsilon) if epsilon is not None else None
        except InvalidOperation:
            raise CliError(f"cannot read epsilon {epsilon!r}: use a number like 1.5") from None
        with services() as s:
            request = s.access.decide(
                as_user(s, username),
                request_id,
                dataset,
                chosen,
                reason,
                columns=[c.strip() for c in columns.split(",")] if columns else None,
                epsilon=eps,
                end_date=parse_date(end_date) if end_date else None,
                conditions={"min_count": min_count} if min_count is not None else None,
            )
            console_print(f"request {request.id} is {request.state}")
            if request.project_id is not None:
                project = s.access.project(operator(), request.project_id)
                console_print(
                    f"project {project.id} created: {project.title}; epsilon {project.epsilon};"
                    f" until {project.end_date}; scope {json.dumps(project.scope)}"
                )

    run(body)


@request_app.command("withdraw")
def request_withdraw(request_id: int, username: AsUser, reason: Annotated[str, typer.Option()] = "") -> None:
    """Withdraw your request."""

    def body() -> None:
        with services() as s:
            request = s.access.withdraw(as_user(s, username), request_id, reason)
        console_print(f"request {request.id} is {request.state}")

    run(body)


@projects_app.command("list")
def projects_list() -> None:
    """List projects with their state, dates, budget and members."""

    def body() -> None:
        from datetime import date as date_

        with services() as s:
            projects = s.access.projects(operator())
        table = Table("id", "state", "title", "until", "epsilon", "datasets", "members")
        for p in projects:
            table.add_row(
                str(p.id),
                p.effective_state(date_.today()),
                p.title,
                str(p.end_date),
                str(p.epsilon),
                ", ".join(sorted(p.scope)),
                ", ".join(f"{u} ({r})" for u, r in p.members.items()),
            )
        out.print(table)

    run(body)


def _project_command(target: str, help_text: str) -> None:
    from enclave.domain.access_states import ProjectState

    def command(
        project_id: int,
        reason: Annotated[str, typer.Option(help="why, for the audit log and the members")],
        username: Annotated[str | None, typer.Option("--as", help="act as this user")] = None,
    ) -> None:
        def body() -> None:
            with services() as s:
                who = as_user(s, username) if username else operator()
                project = s.access.set_project_state(who, project_id, ProjectState(target), reason)
            console_print(f"project {project.id} is {project.state}")

        run(body)

    command.__doc__ = help_text
    projects_app.command(
        {"active": "reinstate", "suspended": "suspend", "revoked": "revoke", "closed": "close"}[target]
    )(command)


_project_command("suspended", "Suspend a project: queries and workspaces stop at once.")
_project_command("active", "Reinstate a suspended project.")
_project_command("revoked", "Revoke a project for good.")
_project_command("closed", "Close a finished project (its lead, or an admin).")


@projects_app.command("amend")
def projects_amend(
    project_id: int,
    file: Annotated[Path, typer.Argument(help="the amended access request, YAML")],
    username: AsUser,
) -> None:
    """Ask to amend a project (its lead): the custodians decide as on a first request."""
    from enclave.domain.access_form import parse_form

    def body() -> None:
        text = read_text(file)
        with services() as s:
            request = s.access.amend(as_user(s, username), project_id, parse_form(text, source=file.name))
        console_print(f"amendment request {request.id} {request.state} for project {project_id}")

    run(body)


@projects_app.command("expire")
def projects_expire() -> None:
    """Record the expiry of projects whose end date has passed (run daily from cron)."""

    def body() -> None:
        with services() as s:
            expired = s.access.expire_due()
        console_print(
            f"{len(expired)} project(s) expired" + (f": {', '.join(map(str, expired))}" if expired else "")
        )

    run(body)


@catalog_app.command("policy")
def catalog_policy(
    name: str,
    max_epsilon: Annotated[str, typer.Option(help="the most epsilon one request may ask of this dataset")],
    username: Annotated[str | None, typer.Option("--as", help="act as this user")] = None,
) -> None:
    """Set a dataset's budget policy (its custodian)."""
    from decimal import Decimal, InvalidOperation

    def body() -> None:
        try:
            value = Decimal(max_epsilon)
        except InvalidOperation:
            raise CliError(f"cannot read {max_epsilon!r} as a number") from None
        with services() as s:
            who = as_user(s, username) if username else operator()
            s.access.set_dataset_policy(who, name, value)
        console_print(f"{name}: requests may ask for at most epsilon {value}")

    run(body)


# --- serve and demo ----------------------------------------------------------------------------


def _serve(settings: Settings, s: Services, host: str, port: int) -> None:
    """The API on TCP, and on the Unix socket that sandboxed workspaces reach it through."""
    import socket

    import uvicorn

    from enclave.api.app import create_app

    config = uvicorn.Config(create_app(s), log_level=settings.log_level, access_log=False)
    server = uvicorn.Server(config)
    try:
        tcp = socket.create_server((host, port))
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
    try:
        server.run(sockets=[tcp, unix])
    finally:
        path.unlink(missing_ok=True)


@app.command("serve")
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


@app.command("hub")
def hub() -> None:
    """Run the workspace hub (JupyterHub and its proxy, configured by Enclave) in the foreground.

    Each project's workspace runs sandboxed (bubblewrap, its own account; needs root). On a machine
    that cannot sandbox the hub refuses to start, unless ENCLAVE_WORKSPACE_MODE=unsafe is set for
    development. The API (`enclave serve`) must be running: workspaces reach it through its socket.
    """

    def body() -> None:
        from enclave.hub.config import check_mode, proxy_command, write_hub_config

        settings = load_settings()
        check_mode(settings)
        proxy_command(settings)
        config = write_hub_config(settings)
        err.print(f"workspace hub at {settings.hub_url} ({settings.workspace_mode} mode)", highlight=False)
        os.execv(sys.executable, [sys.executable, "-m", "jupyterhub", "-f", str(config)])  # noqa: S606

    run(body)


@app.command("demo")
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
                    f" (enclave request show {access.pending_request})",
                    highlight=False,
                )
            out.print(
                f"API            : {url}   (OpenAPI: {url}/openapi.json, docs: {url}/docs)", highlight=False
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


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
