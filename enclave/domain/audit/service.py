"""Use cases of the audit log: verify the chain, export it."""

from __future__ import annotations

from collections.abc import Iterator

from enclave.domain.audit.chain import ChainedEvent, VerifyResult, verify_chain
from enclave.domain.errors import PermissionDenied
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.ports import UnitOfWorkFactory


def check_read_audit(actor: Actor) -> None:
    if not (actor.has_role(Role.ADMIN) and actor.project_scope is None):
        raise PermissionDenied("reading the audit log needs the admin role")


class AuditService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def verify(self, actor: Actor) -> VerifyResult:
        check_read_audit(actor)
        # One read transaction: the head and the events are one consistent snapshot.
        with self._uow(write=False) as uow:
            head_seq, head_hash = uow.audit.get_head()
            events = uow.audit.iter_events()
            try:
                return verify_chain(events, head_seq=head_seq, head_hash=head_hash)
            finally:
                events.close()

    def export(self, actor: Actor, *, after_seq: int = 0, limit: int | None = None) -> Iterator[ChainedEvent]:
        check_read_audit(actor)
        with self._uow(write=False) as uow:
            yield from uow.audit.iter_events(after_seq=after_seq, limit=limit)
