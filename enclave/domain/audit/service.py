"""Use cases of the audit log: verify the chain, export it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from enclave.domain.audit.chain import AuditEvent, ChainedEvent, VerifyResult, verify_chain
from enclave.domain.errors import InvalidInput, PermissionDenied
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

    def head(self, actor: Actor) -> tuple[int, str]:
        """The last event written: its sequence number and hash (the chain's head digest)."""
        check_read_audit(actor)
        with self._uow(write=False) as uow:
            return uow.audit.get_head()

    def search(
        self,
        actor: Actor,
        *,
        by: str | None = None,
        action: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
    ) -> list[ChainedEvent]:
        """One page of the events matching the filters (``by`` is the event's actor), newest first,
        from a keyset on ``seq`` (see :meth:`AuditLog.list_events`) (admin)."""
        check_read_audit(actor)
        if not 1 <= limit <= 1000:
            raise InvalidInput("a page of audit events holds 1 to 1000 events")
        if before_seq is not None and after_seq is not None:
            raise InvalidInput("ask for the events before or after an event, not both")
        with self._uow(write=False) as uow:
            return uow.audit.list_events(
                actor=by or None,
                action=action or None,
                object_type=object_type or None,
                object_id=object_id or None,
                since=since,
                until=until,
                before_seq=before_seq,
                after_seq=after_seq,
                limit=limit,
            )

    def verify_and_record(self, actor: Actor) -> VerifyResult:
        """Verify the whole chain, then record the result in the chain itself (``audit.verified``:
        who checked, how many events, the head it reached, where it broke), so the audit viewer can
        show the last verification without walking every event on each page (admin)."""
        result = self.verify(actor)
        details: dict[str, object] = {
            "ok": result.ok,
            "verified": result.verified,
            "head_hash": result.head_hash,
        }
        if not result.ok:
            details.update(failed_seq=result.failed_seq, reason=result.reason)
        with self._uow() as uow:
            uow.audit.append(AuditEvent("audit.verified", actor.name, "audit", "chain", details))
        return result

    def last_verification(self, actor: Actor) -> ChainedEvent | None:
        """The last ``audit.verified`` event, if the chain was ever verified that way (admin)."""
        found = self.search(actor, action="audit.verified", limit=1)
        return found[0] if found else None
