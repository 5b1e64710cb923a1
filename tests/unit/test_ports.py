"""Every state-changing repository method takes an audit event (as airlock checks its DAL)."""

from __future__ import annotations

import inspect

import pytest

from enclave.db import repositories
from enclave.domain import ports
from enclave.domain.audit.chain import AuditEvent

READ_PREFIXES = ("get_", "list_", "find_", "count_", "iter_")
EXEMPT = {
    ("AuditLog", "append"),
    ("SqlAuditLog", "append"),
    # A web session's last use (its idle expiry counts from it) is bookkeeping: it changes no right.
    ("TokenRepository", "touch"),
    ("SqlTokenRepository", "touch"),
}


def _repository_classes() -> list[type]:
    protocols = [
        obj
        for name, obj in vars(ports).items()
        if inspect.isclass(obj) and name.endswith(("Repository", "Log")) and obj.__module__ == ports.__name__
    ]
    implementations = [
        obj
        for name, obj in vars(repositories).items()
        if inspect.isclass(obj) and name.startswith("Sql") and obj.__module__ == repositories.__name__
    ]
    return protocols + implementations


@pytest.mark.parametrize("cls", _repository_classes(), ids=lambda c: c.__name__)
def test_state_changing_methods_take_an_audit_event(cls: type) -> None:
    """A write method without an ``audit`` parameter could change state without a record."""
    checked = 0
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name.startswith(READ_PREFIXES) or (cls.__name__, name) in EXEMPT:
            continue
        params = inspect.signature(member).parameters
        assert "audit" in params, f"{cls.__name__}.{name} changes state but takes no audit event"
        assert params["audit"].kind is inspect.Parameter.KEYWORD_ONLY, (
            f"{cls.__name__}.{name}: audit keyword-only"
        )
        annotation = params["audit"].annotation
        assert annotation in (AuditEvent, "AuditEvent"), f"{cls.__name__}.{name}: audit must be an AuditEvent"
        checked += 1
    if cls.__name__ not in {"AuditLog", "SqlAuditLog"}:
        assert checked > 0, f"{cls.__name__} has no write methods: is the naming rule still applied?"


def test_implementations_cover_their_protocols() -> None:
    """Each SQL repository implements every method of its protocol, with the same parameters."""
    pairs = {
        ports.AuditLog: repositories.SqlAuditLog,
        ports.UserRepository: repositories.SqlUserRepository,
        ports.TokenRepository: repositories.SqlTokenRepository,
        ports.CatalogRepository: repositories.SqlCatalogRepository,
        ports.OptOutRepository: repositories.SqlOptOutRepository,
        ports.AccessRepository: repositories.SqlAccessRepository,
        ports.BudgetRepository: repositories.SqlBudgetRepository,
        ports.ReleaseRepository: repositories.SqlReleaseRepository,
        ports.OutputRepository: repositories.SqlOutputRepository,
    }
    for protocol, impl in pairs.items():
        for name, member in inspect.getmembers(protocol, inspect.isfunction):
            if name.startswith("_"):
                continue
            assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
            expected = list(inspect.signature(member).parameters)
            actual = list(inspect.signature(getattr(impl, name)).parameters)
            assert expected == actual, f"{impl.__name__}.{name}{actual} != protocol {expected}"
