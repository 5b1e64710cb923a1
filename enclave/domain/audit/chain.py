"""The tamper-evident audit chain, as plain Python.

An audit event records who did what to which object, when, with details as canonical JSON. Each
stored event carries the hash of the previous one, so the events form a chain: editing, deleting,
inserting or reordering any past event breaks a link that :func:`verify_chain` finds and names.

The chain protects against anyone who can change rows in the metadata database but does not also
recompute every later hash. Anchoring the head hash outside the database (``enclave audit verify``
prints it; copy it somewhere else now and then) detects even a full rewrite. See docs/threat-model.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, TypeVar

GENESIS_HASH = "0" * 64


def _default(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetimes are not allowed in audit details; use UTC")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot put a {type(value).__name__} into an audit event")


def canonical_json(value: object) -> str:
    """Serialise ``value`` deterministically: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    )


def format_timestamp(at: datetime) -> str:
    """The one textual form of an event time that goes into its hash (UTC, microseconds)."""
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def digest(fields: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of ``fields`` as canonical JSON: the hash of one link of a chain."""
    return hashlib.sha256(canonical_json(dict(fields)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    """What a state change records. Built by domain code and handed to the repository method
    that performs the change, which writes it in the same transaction."""

    action: str
    actor: str
    object_type: str
    object_id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.action or "." not in self.action:
            raise ValueError(f"audit action must look like 'area.verb', got {self.action!r}")
        if not self.actor:
            raise ValueError("an audit event needs an actor")
        canonical_json(dict(self.details))  # fail early on values that cannot be recorded


@dataclass(frozen=True)
class ChainedEvent:
    """An event as stored in the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    details_json: str
    prev_hash: str
    hash: str

    @property
    def details(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.details_json)
        return result

    def to_json(self) -> str:
        return canonical_json(
            {
                "seq": self.seq,
                "at": format_timestamp(self.at),
                "actor": self.actor,
                "action": self.action,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "details": self.details,
                "prev_hash": self.prev_hash,
                "hash": self.hash,
            }
        )


def event_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details_json: str,
    prev_hash: str,
) -> str:
    return digest(
        {
            "seq": seq,
            "at": format_timestamp(at),
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "details": details_json,
            "prev_hash": prev_hash,
        }
    )


def chain_event(event: AuditEvent, *, seq: int, at: datetime, prev_hash: str) -> ChainedEvent:
    """Give ``event`` its place in the chain after the event whose hash is ``prev_hash``."""
    details_json = canonical_json(dict(event.details))
    digest = event_hash(
        seq=seq,
        at=at,
        actor=event.actor,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        details_json=details_json,
        prev_hash=prev_hash,
    )
    return ChainedEvent(
        seq=seq,
        at=at,
        actor=event.actor,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        details_json=details_json,
        prev_hash=prev_hash,
        hash=digest,
    )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    verified: int
    head_hash: str
    failed_seq: int | None = None
    reason: str | None = None
    #: What was verified, for :meth:`describe`: "audit chain" and its "events", or another chain
    #: built the same way (a project's execution record and its "records").
    subject: str = "audit chain"
    noun: str = "event"

    def describe(self) -> str:
        if self.ok:
            return f"{self.subject} intact: {self.verified} {self.noun}s verified, head {self.head_hash}"
        return f"{self.subject} broken at {self.noun} {self.failed_seq}: {self.reason}"


class Link(Protocol):
    """One link of a hash chain: its place, the hash of the link before it, its own hash."""

    @property
    def seq(self) -> int: ...

    @property
    def prev_hash(self) -> str: ...

    @property
    def hash(self) -> str: ...


L = TypeVar("L", bound=Link)


def verify_links(
    links: Iterable[L],
    content_hash: Callable[[L], str],
    *,
    head_seq: int | None = None,
    head_hash: str | None = None,
    start_seq: int = 0,
    start_hash: str = GENESIS_HASH,
    subject: str = "audit chain",
    noun: str = "event",
) -> VerifyResult:
    """Check every link of a chain, in ``seq`` order; ``content_hash`` recomputes a link's hash from
    its content (and its ``prev_hash``).

    The chain starts after ``start_seq``, whose hash was ``start_hash`` (the genesis, unless the
    links up to it were purged). ``head_seq``/``head_hash`` are what the store recorded as the last
    link; passing them lets the check detect links deleted from, or appended past, the end.
    """

    def broken(count: int, prev: str, at: int | None, reason: str) -> VerifyResult:
        return VerifyResult(False, count, prev, at, reason, subject=subject, noun=noun)

    expected_seq = start_seq + 1
    prev = start_hash
    count = 0
    for link in links:
        if link.seq < expected_seq:
            return broken(count, prev, link.seq, "sequence number repeats or goes back (reordered)")
        if link.seq > expected_seq:
            missing = f"{expected_seq}" if link.seq == expected_seq + 1 else f"{expected_seq}-{link.seq - 1}"
            return broken(count, prev, expected_seq, f"{noun}(s) {missing} missing (deleted)")
        if link.prev_hash != prev:
            reason = f"does not link to the {noun} before it (inserted, deleted or reordered)"
            return broken(count, prev, link.seq, reason)
        if content_hash(link) != link.hash:
            return broken(count, prev, link.seq, "content does not match its hash (edited)")
        prev = link.hash
        count += 1
        expected_seq += 1
    last = expected_seq - 1
    if head_seq is not None and head_seq != last:
        if head_seq > last:
            return broken(
                count, prev, last + 1, f"the chain ends at {last} but {head_seq} were written (deleted)"
            )
        return broken(count, prev, head_seq + 1, f"{noun}s past the recorded head {head_seq} (inserted)")
    if head_hash is not None and head_hash != prev:
        return broken(count, prev, last, f"last {noun} does not match the recorded head hash")
    return VerifyResult(True, count, prev, subject=subject, noun=noun)


def _event_content_hash(ev: ChainedEvent) -> str:
    return event_hash(
        seq=ev.seq,
        at=ev.at,
        actor=ev.actor,
        action=ev.action,
        object_type=ev.object_type,
        object_id=ev.object_id,
        details_json=ev.details_json,
        prev_hash=ev.prev_hash,
    )


def verify_chain(
    events: Iterable[ChainedEvent], *, head_seq: int | None = None, head_hash: str | None = None
) -> VerifyResult:
    """Check every link of the audit chain, in ``seq`` order.

    ``head_seq``/``head_hash`` are what the store recorded as the last event; passing them lets the
    check detect events deleted from, or appended past, the end of the chain.
    """
    return verify_links(events, _event_content_hash, head_seq=head_seq, head_hash=head_hash)
