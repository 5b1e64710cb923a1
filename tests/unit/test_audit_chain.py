"""The audit chain, in memory: every kind of tampering is found and the first bad event named."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.domain.audit.chain import (
    GENESIS_HASH,
    AuditEvent,
    ChainedEvent,
    canonical_json,
    chain_event,
    verify_chain,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(n: int) -> list[ChainedEvent]:
    events: list[ChainedEvent] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        ev = chain_event(
            AuditEvent("test.happened", f"user{i % 3}", "thing", str(i), {"i": i, "note": "é"}),
            seq=i,
            at=T0 + timedelta(seconds=i),
            prev_hash=prev,
        )
        events.append(ev)
        prev = ev.hash
    return events


def verify(events: list[ChainedEvent], head: list[ChainedEvent] | None = None):
    reference = head if head is not None else events
    return verify_chain(
        events, head_seq=len(reference), head_hash=reference[-1].hash if reference else GENESIS_HASH
    )


def test_intact_chain_verifies_and_counts() -> None:
    """An untouched chain verifies, reports every event and its head hash."""
    events = build(20)
    result = verify(events)
    assert result.ok
    assert result.verified == 20
    assert result.head_hash == events[-1].hash


def test_empty_chain_verifies() -> None:
    """A new enclave has an empty chain, which is intact."""
    assert verify_chain([], head_seq=0, head_hash=GENESIS_HASH).ok


def test_edited_event_is_named() -> None:
    """Changing any field of an event without recomputing its hash is found at that event."""
    events = build(10)
    events[4] = dataclasses.replace(events[4], actor="mallory")
    result = verify(events, build(10))
    assert not result.ok
    assert result.failed_seq == 5
    assert "edited" in (result.reason or "")


def test_edited_and_rehashed_event_breaks_the_next_link() -> None:
    """An attacker who recomputes the edited event's hash still breaks the link to the next one."""
    events = build(10)
    edited = chain_event(
        AuditEvent("test.happened", "mallory", "thing", "5", {}),
        seq=5,
        at=events[4].at,
        prev_hash=events[3].hash,
    )
    events[4] = edited
    result = verify(events, build(10))
    assert not result.ok
    assert result.failed_seq == 6


def test_deleted_event_is_named() -> None:
    """Deleting an event in the middle leaves a gap that names the missing event."""
    events = build(10)
    del events[6]
    result = verify(events, build(10))
    assert not result.ok
    assert result.failed_seq == 7
    assert "deleted" in (result.reason or "")


def test_deleted_tail_is_found_against_the_head() -> None:
    """Deleting the last events is found because the recorded head says more were written."""
    full = build(10)
    result = verify(full[:8], full)
    assert not result.ok
    assert result.failed_seq == 9


def test_inserted_event_is_named() -> None:
    """An event inserted (and the later ones renumbered) does not link to its predecessor."""
    events = build(10)
    forged = chain_event(AuditEvent("test.forged", "mallory", "thing", "x"), seq=4, at=T0, prev_hash="f" * 64)
    renumbered = [*events[:3], forged] + [dataclasses.replace(e, seq=e.seq + 1) for e in events[3:]]
    result = verify(renumbered, build(10))
    assert not result.ok
    assert result.failed_seq == 4
    assert "link" in (result.reason or "")


def test_appended_event_past_head_is_found() -> None:
    """A well-formed event appended behind the store's back is past the recorded head."""
    events = build(10)
    extra = chain_event(
        AuditEvent("test.forged", "mallory", "thing", "x"), seq=11, at=T0, prev_hash=events[-1].hash
    )
    result = verify([*events, extra], events)
    assert not result.ok
    assert result.failed_seq == 11


def test_swapped_events_are_named() -> None:
    """Swapping two events' positions (keeping their sequence numbers in place) breaks the first one."""
    events = build(10)
    a, b = events[2], events[5]
    events[2] = dataclasses.replace(b, seq=a.seq)
    events[5] = dataclasses.replace(a, seq=b.seq)
    result = verify(events, build(10))
    assert not result.ok
    assert result.failed_seq == 3


@given(
    n=st.integers(min_value=2, max_value=30),
    data=st.data(),
)
def test_any_single_field_change_is_detected(n: int, data: st.DataObject) -> None:
    """Property: changing any field of any event makes verification fail at or after that event."""
    events = build(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    field_name = data.draw(
        st.sampled_from(["actor", "action", "object_type", "object_id", "details_json", "at"])
    )
    if field_name == "at":
        changed = dataclasses.replace(events[i], at=events[i].at + timedelta(microseconds=1))
    elif field_name == "details_json":
        changed = dataclasses.replace(events[i], details_json=canonical_json({"i": -1}))
    else:
        changed = dataclasses.replace(events[i], **{field_name: getattr(events[i], field_name) + "x"})
    tampered = [*events[:i], changed, *events[i + 1 :]]
    result = verify(tampered, events)
    assert not result.ok
    assert result.failed_seq == i + 1


def test_canonical_json_is_deterministic_and_strict() -> None:
    """Details serialise the same way whatever the key order, and refuse values that cannot round-trip."""
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    with pytest.raises(ValueError, match="Out of range"):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError, match="naive"):
        canonical_json({"x": datetime(2026, 1, 1)})


def test_audit_event_requires_area_and_actor() -> None:
    """Events name their area ('user.created'), and always have an actor."""
    with pytest.raises(ValueError, match=r"area\.verb"):
        AuditEvent("created", "alice", "user", "1")
    with pytest.raises(ValueError, match="actor"):
        AuditEvent("user.created", "", "user", "1")
