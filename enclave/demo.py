"""The demonstration enclave: demo accounts for every role, created once and remembered.

Passwords are generated on first run and kept in the key store (``keys/demo-credentials.json``,
mode 0600) so a second ``enclave demo`` prints the same logins.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from enclave.domain.identity import Actor, Role, generate_password
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


def _exists(services: Services, username: str) -> bool:
    with services.db.unit_of_work(write=False) as uow:
        return uow.users.get_by_username(username) is not None
