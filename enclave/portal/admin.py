"""The administrator's pages: users and their tokens, the audit viewer, the status page.

Every page calls the same use cases as the API and the CLI (``services.identity``,
``services.audit``); no rule of theirs is repeated here. A refused change re-renders its form with
the service's own sentence.

**The audit chain's verification.** Checking the chain means reading and hashing every event, which
takes seconds on a large log, so the audit viewer does not do it on each page load. An admin
presses "Verify now": the whole chain is checked and the result is written into the chain itself
(an ``audit.verified`` event: who, when, how many events, the head reached, where it broke). The
viewer shows that last recorded result, says how many events were written after it (and are not
covered by it), and gives the command that checks the chain on the server, independently of any
page. Loading the viewer costs three indexed reads: the head, the last ``audit.verified`` event,
and one page of events (a keyset on ``seq``, so every page costs what the first does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import RedirectResponse, Response

from enclave.api.deps import ServicesDep
from enclave.db.migrate import current_revision, head_revision
from enclave.domain.audit.chain import ChainedEvent
from enclave.domain.errors import EnclaveError, NotFound
from enclave.domain.identity.accounts import Actor, ApiToken, Role, generate_password
from enclave.portal.forms import DateFields, FormErrors, text_field
from enclave.portal.sessions import CheckedForm, signed_in
from enclave.portal.web import PREFIX, capitalize_first, long_date, pages_of
from enclave.wiring import Services

router = APIRouter(prefix=PREFIX, include_in_schema=False)

AdminPage = Annotated[Actor, Depends(signed_in(Role.ADMIN))]
#: The shape of a username (the service checks it on creation; this only keeps odd paths out).
Username = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]
TokenId = Annotated[int, PathParam(ge=1, le=2**62)]

#: The messages a page shows after a change (a fixed sentence, never the request's own text).
DONE = {
    "granted": "The role was granted.",
    "revoked": "The role was revoked.",
    "accreditation": "The accreditation was saved.",
    "deactivated": "The account was deactivated and every token it held was revoked.",
    "reactivated": "The account was reactivated.",
    "unlocked": "The account was unlocked.",
    "token": "The token was revoked.",
    "verified": "The whole audit chain was verified: it is intact.",
}
#: The same, for a check that found a problem (an "important" banner, not a success).
PROBLEMS = {"broken": "The audit chain is broken: the first bad event is named below."}

#: Longest values the metadata database stores for a user's fields.
FIELD_LIMITS = {"display_name": 200, "email": 320, "organisation": 200}

#: How many audit events a page shows.
AUDIT_PAGE = 50
#: The CLI command that verifies the chain on the server (``enclave/cli/audit.py``).
VERIFY_COMMAND = "enclave audit verify"


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _problem(request: Request) -> str | None:
    return PROBLEMS.get(request.query_params.get("done", ""))


# --- users -------------------------------------------------------------------------------------


@router.get("/admin/users", response_class=HTMLResponse, name="admin_users")
def users(request: Request, services: ServicesDep, actor: AdminPage) -> HTMLResponse:
    return pages_of(request).render(
        request,
        "admin/users.html",
        title="Users",
        users=services.identity.list_users(actor),
        now=services.identity.now(),
        done=_done(request),
    )


@dataclass
class NewUser:
    """What the admin typed into the "Create a user" form, to show it again on an error."""

    username: str = ""
    display_name: str = ""
    email: str = ""
    organisation: str = ""
    roles: tuple[str, ...] = ()
    accreditation: DateFields = field(default_factory=DateFields)


def _new_user_page(
    request: Request, typed: NewUser, errors: FormErrors | None = None, status: int = 200
) -> HTMLResponse:
    return pages_of(request).render(
        request,
        "admin/new_user.html",
        title="Create a user",
        typed=typed,
        roles=list(Role),
        errors=errors or FormErrors(),
        status=status,
    )


@router.get("/admin/users/new", response_class=HTMLResponse, name="admin_user_new")
def new_user(request: Request, actor: AdminPage) -> HTMLResponse:
    return _new_user_page(request, NewUser())


def _field_of(detail: str) -> str:
    """Which field of the "Create a user" form a refusal of the service is about."""
    lowered = detail.lower()
    if "password" in lowered:
        return "password"
    if "role" in lowered:
        return "roles"
    return "username"


@router.post("/admin/users/new", response_class=HTMLResponse)
def create_user(request: Request, services: ServicesDep, actor: AdminPage, form: CheckedForm) -> Response:
    typed = NewUser(
        username=text_field(form, "username", 100),
        display_name=text_field(form, "display_name", 400),
        email=text_field(form, "email", 400),
        organisation=text_field(form, "organisation", 400),
        roles=tuple(str(r) for r in form.getlist("roles") if isinstance(r, str)),
        accreditation=DateFields.read(form, "accreditation"),
    )
    password_value = form.get("password")
    typed_password = password_value if isinstance(password_value, str) else ""
    errors = FormErrors()
    roles: set[Role] = set()
    for value in typed.roles:
        try:
            roles.add(Role(value))
        except ValueError:
            errors.add("roles", "Choose roles from the list")
    for name, limit in FIELD_LIMITS.items():
        if len(getattr(typed, name)) > limit:
            errors.add(name, f"Enter at most {limit} characters")
    expires: date | None = None
    try:
        expires = typed.accreditation.value()
    except ValueError:
        errors.add("accreditation", "Enter a real date, like 31 12 2027, or leave the date empty")
    if errors:
        return _new_user_page(request, typed, errors, status=400)
    generated = not typed_password
    password = typed_password or generate_password()
    try:
        user = services.identity.create_user(
            actor,
            username=typed.username,
            password=password,
            roles=frozenset(roles),
            display_name=typed.display_name,
            email=typed.email,
            organisation=typed.organisation,
            accreditation_expires=expires,
        )
    except EnclaveError as exc:
        errors.add(_field_of(exc.detail), capitalize_first(exc.detail))
        return _new_user_page(request, typed, errors, status=400)
    # The confirmation is the answer to the POST itself: a generated password is shown here once
    # and is in no address, no log and no later page.
    return pages_of(request).render(
        request,
        "admin/created.html",
        title="User created",
        user=user,
        password=password if generated else None,
    )


def _user_page(
    request: Request,
    services: Services,
    actor: Actor,
    username: str,
    *,
    errors: FormErrors | None = None,
    typed: DateFields | None = None,
    status: int = 200,
) -> HTMLResponse:
    user = services.identity.get_user(actor, username)
    tokens = services.identity.list_tokens(actor, username)
    now = services.identity.now()
    return pages_of(request).render(
        request,
        "admin/user.html",
        title=user.display_name or user.username,
        user=user,
        tokens=sorted(tokens, key=lambda t: t.created_at, reverse=True),
        token_status={t.id: _token_status(t, now) for t in tokens},
        roles=list(Role),
        now=now,
        locked=user.is_locked(now),
        errors=errors or FormErrors(),
        typed=typed or DateFields.of(user.accreditation_expires),
        done=_done(request),
        status=status,
    )


def _token_status(token: ApiToken, now: datetime) -> tuple[str, str]:
    """A token's state as a tag: its text and colour."""
    if token.revoked_at is not None:
        return ("Revoked " + long_date(token.revoked_at), "grey")
    if now >= token.expires_at:
        return ("Expired", "yellow")
    return ("Active", "green")


@router.get("/admin/users/{username}", response_class=HTMLResponse, name="admin_user")
def user_page(request: Request, username: Username, services: ServicesDep, actor: AdminPage) -> HTMLResponse:
    return _user_page(request, services, actor, username)


def _changed(username: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/admin/users/{username}?done={done}", status_code=303)


def _refused(
    request: Request, services: Services, actor: Actor, username: str, field: str, exc: EnclaveError
) -> HTMLResponse:
    if isinstance(exc, NotFound):
        raise exc
    errors = FormErrors()
    errors.add(field, capitalize_first(exc.detail))
    return _user_page(request, services, actor, username, errors=errors, status=400)


@router.post("/admin/users/{username}/roles", response_class=HTMLResponse)
def change_role(
    request: Request, username: Username, services: ServicesDep, actor: AdminPage, form: CheckedForm
) -> Response:
    change = text_field(form, "change", 10)
    try:
        role = Role(text_field(form, "role", 20))
    except ValueError:
        raise NotFound("no such role") from None
    try:
        if change == "grant":
            services.identity.grant_role(actor, username, role)
        elif change == "revoke":
            services.identity.revoke_role(actor, username, role)
        else:
            raise NotFound("no such change")
    except EnclaveError as exc:
        return _refused(request, services, actor, username, f"role-{role.value}", exc)
    return _changed(username, "granted" if change == "grant" else "revoked")


@router.post("/admin/users/{username}/accreditation", response_class=HTMLResponse)
def set_accreditation(
    request: Request, username: Username, services: ServicesDep, actor: AdminPage, form: CheckedForm
) -> Response:
    typed = DateFields.read(form, "accreditation")
    try:
        expires = typed.value()
    except ValueError:
        errors = FormErrors()
        errors.add("accreditation", "Enter a real date, like 31 12 2027, or leave the date empty")
        return _user_page(request, services, actor, username, errors=errors, typed=typed, status=400)
    try:
        services.identity.set_accreditation(actor, username, expires)
    except EnclaveError as exc:
        if isinstance(exc, NotFound):
            raise
        errors = FormErrors()
        errors.add("accreditation", capitalize_first(exc.detail))
        return _user_page(request, services, actor, username, errors=errors, typed=typed, status=400)
    return _changed(username, "accreditation")


@router.post("/admin/users/{username}/active", response_class=HTMLResponse)
def set_active(
    request: Request, username: Username, services: ServicesDep, actor: AdminPage, form: CheckedForm
) -> Response:
    active = text_field(form, "active", 5) == "yes"
    try:
        services.identity.set_active(actor, username, active)
    except EnclaveError as exc:
        return _refused(request, services, actor, username, "active", exc)
    return _changed(username, "reactivated" if active else "deactivated")


@router.post("/admin/users/{username}/unlock", response_class=HTMLResponse)
def unlock(
    request: Request, username: Username, services: ServicesDep, actor: AdminPage, form: CheckedForm
) -> Response:
    try:
        services.identity.unlock(actor, username)
    except EnclaveError as exc:
        return _refused(request, services, actor, username, "unlock", exc)
    return _changed(username, "unlocked")


@router.post("/admin/users/{username}/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(
    request: Request,
    username: Username,
    token_id: TokenId,
    services: ServicesDep,
    actor: AdminPage,
    form: CheckedForm,
) -> Response:
    try:
        services.identity.revoke_token(actor, token_id)
    except EnclaveError as exc:
        return _refused(request, services, actor, username, f"token-{token_id}", exc)
    return _changed(username, "token")


# --- the audit log -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    by: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    date_from: str = ""
    date_to: str = ""

    def query(self) -> dict[str, str]:
        """The filters as query parameters (the empty ones left out), for the pagination links."""
        names = {"date_from": "from", "date_to": "to"}
        return {names.get(k, k): v for k, v in vars(self).items() if v}


def _day(value: str, field: str, label: str, errors: FormErrors) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.add(field, f"Enter the {label} date as a real date, like 2026-12-07")
        return None


def _seq(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


@dataclass(frozen=True)
class Verification:
    """The last recorded verification of the chain, as the page shows it."""

    ok: bool
    at: datetime
    by: str
    verified: int
    covered_seq: int  # the last event the check covered
    failed_seq: int | None
    reason: str | None
    written_since: int

    @classmethod
    def of(cls, event: ChainedEvent, head_seq: int) -> Verification:
        details = event.details
        failed = details.get("failed_seq")
        return cls(
            ok=bool(details.get("ok")),
            at=event.at,
            by=event.actor,
            verified=int(details.get("verified") or 0),
            covered_seq=event.seq - 1,
            failed_seq=int(failed) if failed is not None else None,
            reason=str(details["reason"]) if details.get("reason") else None,
            written_since=max(head_seq - event.seq, 0),
        )


@router.get("/admin/audit", response_class=HTMLResponse, name="admin_audit")
def audit(request: Request, services: ServicesDep, actor: AdminPage) -> HTMLResponse:
    params = request.query_params
    filters = AuditFilters(
        by=params.get("by", "").strip()[:200],
        action=params.get("action", "").strip()[:100],
        object_type=params.get("object_type", "").strip()[:50],
        object_id=params.get("object_id", "").strip()[:200],
        date_from=params.get("from", "").strip()[:10],
        date_to=params.get("to", "").strip()[:10],
    )
    errors = FormErrors()
    since = _day(filters.date_from, "from", "from", errors)
    until = _day(filters.date_to, "to", "to", errors)
    if since and until and until < since:
        errors.add("to", "The to date must be the same as or after the from date")
    before, after = _seq(params.get("before")), _seq(params.get("after"))
    if before is not None:
        after = None
    criteria: dict[str, Any] = {
        "by": filters.by,
        "action": filters.action,
        "object_type": filters.object_type,
        "object_id": filters.object_id,
        "since": datetime.combine(since, time(), UTC) if since else None,
        "until": datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
    }
    events: list[ChainedEvent] = []
    newer = older = False
    if not errors:
        found = services.audit.search(
            actor, **criteria, before_seq=before, after_seq=after, limit=AUDIT_PAGE + 1
        )
        if after is not None:
            # The oldest events newer than ``after``, newest first: one too many means newer ones.
            newer, events = len(found) > AUDIT_PAGE, found[-AUDIT_PAGE:]
            older = bool(events) and bool(
                services.audit.search(actor, **criteria, before_seq=events[-1].seq, limit=1)
            )
        else:
            older, events = len(found) > AUDIT_PAGE, found[:AUDIT_PAGE]
            newer = (
                before is not None
                and bool(events)
                and bool(services.audit.search(actor, **criteria, after_seq=events[0].seq, limit=1))
            )
    head_seq, head_hash = services.audit.head(actor)
    last = services.audit.last_verification(actor)
    base = f"{PREFIX}/admin/audit"
    query = filters.query()
    return pages_of(request).render(
        request,
        "admin/audit.html",
        title="Audit log",
        filters=filters,
        filtered=bool(query),
        errors=errors,
        events=events,
        newer_href=f"{base}?{urlencode({**query, 'after': events[0].seq})}" if newer and events else None,
        older_href=f"{base}?{urlencode({**query, 'before': events[-1].seq})}" if older and events else None,
        head_seq=head_seq,
        head_hash=head_hash,
        verification=Verification.of(last, head_seq) if last is not None else None,
        verify_command=VERIFY_COMMAND,
        done=_done(request),
        problem=_problem(request),
        status=400 if errors else 200,
    )


@router.post("/admin/audit/verify", response_class=HTMLResponse)
def verify_audit(request: Request, services: ServicesDep, actor: AdminPage, form: CheckedForm) -> Response:
    result = services.audit.verify_and_record(actor)
    done = "verified" if result.ok else "broken"
    return RedirectResponse(f"{PREFIX}/admin/audit?done={done}", status_code=303)


# --- status --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreStatus:
    name: str
    path: Path
    exists: bool
    writable: bool


def _store(name: str, path: Path) -> StoreStatus:
    exists = path.exists()
    return StoreStatus(name, path, exists, exists and os.access(path, os.W_OK | os.X_OK))


@router.get("/admin/status", response_class=HTMLResponse, name="admin_status")
def status(request: Request, services: ServicesDep, actor: AdminPage) -> HTMLResponse:
    settings = services.settings
    reachable = True
    try:
        services.db.ping()  # what /healthz checks
        current: str | None = current_revision(services.db.engine)
    except SQLAlchemyError:  # an unreachable database is what this page is for
        reachable, current = False, None
    head = head_revision(settings.database)
    stores = [
        _store("Data directory (home)", settings.home_dir),
        _store("Research store", settings.research_store),
        _store("Derived frames", settings.derived_store),
        _store("Holding store (airlock)", settings.holding_store),
        _store("Release store", settings.release_store),
        _store("Quarantine", settings.quarantine_store),
        _store("Key store", settings.key_store),
        _store("Workspaces", settings.workspaces_dir),
        _store("Hub", settings.hub_dir),
    ]
    return pages_of(request).render(
        request,
        "admin/status.html",
        title="Status",
        settings=settings,
        dialect=services.db.dialect,
        reachable=reachable,
        current=current,
        head=head,
        stores=stores,
        master_key=settings.master_key_file.is_file(),
        problems=settings.problems(),
    )
