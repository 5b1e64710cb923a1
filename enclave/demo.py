"""The demonstration enclave: demo accounts for every role, created once and remembered.

Passwords are generated on first run and kept in the key store (``keys/demo-credentials.json``,
mode 0600) so a second ``enclave demo`` prints the same logins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

from enclave.domain.access.requests import Project
from enclave.domain.catalog.reports import IngestReport
from enclave.domain.identity.accounts import Actor, Role, generate_password
from enclave.domain.queries.plans import Release
from enclave.wiring import Services


@dataclass(frozen=True)
class DemoLogin:
    username: str
    roles: list[str]
    password: str
    display_name: str
    organisation: str


DEMO_ACCOUNTS: list[tuple[str, list[Role], str, str]] = [
    ("admin", [Role.ADMIN], "Ada Admin", "Enclave operations"),
    ("custodian", [Role.CUSTODIAN], "Carl Custodian", "Regional Health Records Office"),
    ("researcher", [Role.RESEARCHER], "Rosa Researcher", "University of Example, Epidemiology"),
    ("reviewer1", [Role.REVIEWER], "Rhea Reviewer", "Output checking team"),
    ("reviewer2", [Role.REVIEWER], "Remi Reviewer", "Output checking team"),
]


def setup_demo(services: Services, actor: Actor) -> list[DemoLogin]:
    path = services.settings.key_store / "demo-credentials.json"
    known: dict[str, DemoLogin] = {}
    if path.exists():
        known = {d["username"]: DemoLogin(**d) for d in json.loads(path.read_text())}
    logins: list[DemoLogin] = []
    for username, roles, display_name, organisation in DEMO_ACCOUNTS:
        existing = _exists(services, username)
        if existing and username in known:
            logins.append(known[username])
            continue
        password = generate_password()
        if existing:
            # The account is there but its password was lost: set a new one.
            services.identity.set_password(actor, username, password)
        else:
            services.identity.create_user(
                actor,
                username=username,
                password=password,
                roles=frozenset(roles),
                display_name=display_name,
                organisation=organisation,
                accreditation_expires=date.today() + timedelta(days=365)
                if Role.RESEARCHER in roles
                else None,
            )
        logins.append(DemoLogin(username, [r.value for r in roles], password, display_name, organisation))
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump([asdict(login) for login in logins], handle, indent=2)
    tmp.replace(path)
    return logins


SPECS_DIR = Path(__file__).parent / "specs"
DEMO_SEED = 2026


@dataclass(frozen=True)
class DemoData:
    generated: bool
    ingested: dict[str, IngestReport]
    opt_outs: int


def setup_data(
    services: Services, actor: Actor, *, persons: int, progress: Callable[[str, int, int], None] | None = None
) -> DemoData:
    """Generate the synthetic population once, load its opt-out list, and ingest every source that
    has no version yet, as the demo custodian."""
    from enclave.ingest.spec import load_spec
    from enclave.synth import generate

    out = services.settings.home_dir / "synthetic"
    generated = False
    if not (out / "demographics.csv").exists():
        generate(persons, DEMO_SEED, out, fmt="csv", progress=progress)
        generated = True
    custodian = Actor.for_user(services.identity.get_user(actor, "custodian"))
    with services.db.unit_of_work(write=False) as uow:
        opt_outs = uow.opt_outs.count_opt_outs()
    if opt_outs == 0:
        opt_outs, _ = services.catalog.load_opt_outs(custodian, out / "opt_outs.csv")
    ingested: dict[str, IngestReport] = {}
    for spec_path in sorted(SPECS_DIR.glob("*.yaml")):
        spec = load_spec(spec_path)
        with services.db.unit_of_work(write=False) as uow:
            existing = uow.catalog.get_dataset(spec.dataset)
        if existing is not None and existing.current_version is not None:
            continue
        if progress:
            progress(f"ingest {spec.dataset}", 0, 1)
        ingested[spec.dataset] = services.catalog.ingest(custodian, spec, out / f"{spec.dataset}.csv")
        if progress:
            progress(f"ingest {spec.dataset}", 1, 1)
    # A demo home from before bounded views existed: give its versions theirs (idempotent, quick).
    services.catalog.build_views(actor)
    return DemoData(generated, ingested, opt_outs)


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "access_requests" / "examples"


@dataclass(frozen=True)
class DemoAccess:
    approved_project: Project | None
    pending_request: int | None
    first_release: Release | None = None
    pending_output: int | None = None


def setup_access(services: Services, actor: Actor) -> DemoAccess:
    """Load the example access requests as the demo researcher (dates moved to start today): the
    first is approved by the demo custodian, so a project exists; the second waits for review."""
    import yaml

    from enclave.domain.access.form import validate_form
    from enclave.domain.access.requests import Decision

    researcher = Actor.for_user(services.identity.get_user(actor, "researcher"))
    custodian = Actor.for_user(services.identity.get_user(actor, "custodian"))
    existing = services.access.list_requests(actor)
    if existing:
        projects = services.access.projects(actor)
        pending = next((r.id for r in existing if r.project_id is None), None)
        project = projects[0] if projects else None
        release = _first_release(services, researcher, project)
        return DemoAccess(project, pending, release, _waiting_output(services, researcher, project, release))
    examples = sorted(EXAMPLES_DIR.glob("*.yaml")) if EXAMPLES_DIR.is_dir() else []
    today = date.today()
    ids = []
    for path in examples:
        raw = yaml.safe_load(path.read_text())
        length = (raw["end_date"] - raw["start_date"]).days
        raw.update(start_date=today, end_date=today + timedelta(days=max(length, 30)))
        ids.append(services.access.create(researcher, validate_form(raw, source=path.name), submit=True).id)
    if not ids:
        return DemoAccess(None, None)
    request = services.access.get(actor, ids[0])
    for part in request.parts:
        request = services.access.decide(
            custodian, request.id, part.dataset, Decision.APPROVED, "demo: approved as asked"
        )
    project = services.access.project(actor, request.project_id) if request.project_id else None
    release = _first_release(services, researcher, project)
    return DemoAccess(
        project,
        ids[1] if len(ids) > 1 else None,
        release,
        _waiting_output(services, researcher, project, release),
    )


def _first_release(services: Services, researcher: Actor, project: Project | None) -> Release | None:
    """The researcher's first DP release in the demo project: people by region (recorded once, then
    returned again at no cost on every later start)."""
    if (
        project is None
        or "demographics" not in project.scope
        or "region" not in project.scope["demographics"]
    ):
        return None
    from enclave.domain.queries.plans import QueryPlan

    plan = QueryPlan.model_validate(
        {
            "dataset": "demographics",
            "aggregates": [{"kind": "count_rows"}],
            "group_by": ["region"],
            "epsilon": "0.1",
        }
    )
    release, _ = services.queries.run(researcher, project.id, plan)
    return release


def _waiting_output(
    services: Services, researcher: Actor, project: Project | None, release: Release | None
) -> int | None:
    """An output request waiting for review, so a newcomer can try the reviewers' workbench at once:
    the first release's table (which traces to it) and a hand-typed table of small counts (which the
    checks fail). Made once; later starts return it while it waits."""
    if project is None or release is None:
        return None
    from enclave.domain.outputs.states import REVIEWABLE_STATES

    existing = services.outputs.list_requests(researcher, project_id=project.id)
    if existing:
        return next((r.id for r in existing if r.state in REVIEWABLE_STATES), None)
    request = services.outputs.create(
        researcher,
        project.id,
        context="Table 1 of the paper: people by region, and a first look at the coastal areas.",
        controls="People by region are the DP release as it came; the coastal counts are not rounded yet.",
    )
    table = "region,count\n" + "".join(f"{row['region']},{row['count']}\n" for row in release.values)
    services.outputs.add_file(
        researcher, request.id, "people_by_region.csv", table.encode(), derived_from=[release.id]
    )
    services.outputs.add_file(
        researcher, request.id, "coastal_areas.csv", b"area,count\nNorth coast,4\nEstuary,12\n"
    )
    return services.outputs.submit(researcher, request.id).id


def _exists(services: Services, username: str) -> bool:
    with services.db.unit_of_work(write=False) as uow:
        return uow.users.get_by_username(username) is not None
