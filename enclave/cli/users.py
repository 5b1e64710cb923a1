"""``enclave users``: accounts, roles, accreditation and API tokens."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from enclave.cli.common import CliError, operator, out, parse_date, parse_duration, run, services
from enclave.domain.identity.accounts import generate_password, parse_role

users_app = typer.Typer(help="Accounts, roles, accreditation and API tokens.", no_args_is_help=True)


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
