"""The access-request and project state machines, as data: coverage, refusals, generated docs."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from enclave.domain.access.states import (
    MACHINES,
    PROJECT_MACHINE,
    REQUEST_MACHINE,
    Party,
    StateMachine,
    diagrams_markdown,
)
from enclave.domain.errors import InvalidState, PermissionDenied

DOC = Path(__file__).resolve().parents[2] / "docs" / "access-states.md"


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_state_is_reachable_and_non_final_states_have_a_way_out(machine: StateMachine) -> None:
    """From the initial state every state is reachable; only final states have no transition out."""
    seen = {machine.initial}
    queue = deque([machine.initial])
    while queue:
        for t in machine.allowed_from(queue.popleft()):
            if t.target not in seen:
                seen.add(t.target)
                queue.append(t.target)
    assert seen == set(machine.states)
    for state in machine.states:
        assert bool(machine.allowed_from(state)) == (state not in machine.final), state


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_transition_names_its_audit_event_and_parties(machine: StateMachine) -> None:
    """Each transition writes an event of its area and is open to at least one party."""
    area = machine.transitions[0].event.split(".")[0]
    for t in machine.transitions:
        assert t.event.startswith(area + ".")
        assert t.parties
        assert t.source in machine.states
        assert t.target in machine.states
        assert machine.check(t.source, t.target, next(iter(t.parties))) is t
    assert len({(t.source, t.target) for t in machine.transitions}) == len(machine.transitions)


def test_refusals_say_what_is_allowed() -> None:
    """A transition that does not exist names the ones that do; the wrong party is told who can."""
    with pytest.raises(InvalidState, match=r"from draft: submit \(to submitted\), withdraw \(to withdrawn\)"):
        REQUEST_MACHINE.check("draft", "approved", Party.CUSTODIAN)
    with pytest.raises(InvalidState, match="it is final"):
        REQUEST_MACHINE.check("rejected", "submitted", Party.APPLICANT)
    with pytest.raises(PermissionDenied, match="only the applicant can submit"):
        REQUEST_MACHINE.check("draft", "submitted", Party.CUSTODIAN)
    with pytest.raises(PermissionDenied, match="only the system can"):
        PROJECT_MACHINE.check("active", "expired", Party.ADMIN)
    assert PROJECT_MACHINE.can("suspended", "active", Party.CUSTODIAN)
    assert not PROJECT_MACHINE.can("revoked", "active", Party.ADMIN)


def test_generated_diagrams_in_the_docs_are_current() -> None:
    """docs/access-states.md is exactly what the tables generate (run `make docs` after a change)."""
    assert DOC.read_text() == diagrams_markdown()
