"""The output-request state machine, as data: coverage, refusals, the generated page."""

from __future__ import annotations

from collections import deque

import pytest

from enclave.domain.errors import InvalidState, PermissionDenied
from enclave.domain.outputs.states import (
    OUTPUT_MACHINE,
    REVIEWABLE_STATES,
    STATE_DESCRIPTIONS,
    AirlockParty,
    OutputState,
    diagrams_markdown,
)


def test_every_state_is_reachable_and_only_final_states_are_dead_ends() -> None:
    """From draft every state is reachable; a state has no way out exactly when it is final."""
    seen = {OUTPUT_MACHINE.initial}
    queue = deque([OUTPUT_MACHINE.initial])
    while queue:
        for t in OUTPUT_MACHINE.allowed_from(queue.popleft()):
            if t.target not in seen:
                seen.add(t.target)
                queue.append(t.target)
    assert seen == set(OUTPUT_MACHINE.states) == {s.value for s in OutputState}
    for state in OUTPUT_MACHINE.states:
        assert bool(OUTPUT_MACHINE.allowed_from(state)) == (state not in OUTPUT_MACHINE.final), state


def test_every_transition_names_its_audit_event_and_parties() -> None:
    """Each transition writes an output_request.* event, is open to someone, and is unique."""
    for t in OUTPUT_MACHINE.transitions:
        assert t.event.startswith("output_request.")
        assert t.parties
        assert {t.source, t.target} <= set(OUTPUT_MACHINE.states)
        assert OUTPUT_MACHINE.check(t.source, t.target, next(iter(t.parties))) is t
    pairs = [(t.source, t.target) for t in OUTPUT_MACHINE.transitions]
    assert len(set(pairs)) == len(pairs)


def test_outcomes_are_moved_by_the_system_and_withdrawal_is_possible_until_release() -> None:
    """Reviewers never move a request themselves: their decisions do, through the system."""
    for state in REVIEWABLE_STATES:
        for t in OUTPUT_MACHINE.allowed_from(state):
            if t.target != OutputState.WITHDRAWN:
                assert t.parties == {AirlockParty.SYSTEM}
    for before in ("draft", "submitted", "in_review", "needs_consolidation", "changes_requested", "approved"):
        assert OUTPUT_MACHINE.can(before, "withdrawn", AirlockParty.RESEARCHER), before
    assert not OUTPUT_MACHINE.can("released", "withdrawn", AirlockParty.RESEARCHER)
    assert OUTPUT_MACHINE.can("released", "release_withdrawn", AirlockParty.REVIEWER)


def test_refusals_say_what_is_allowed_and_who_can() -> None:
    """A missing transition names the allowed ones; the wrong party is told who may act."""
    with pytest.raises(InvalidState, match=r"from draft: submit \(to submitted\), withdraw \(to withdrawn\)"):
        OUTPUT_MACHINE.check("draft", "released", AirlockParty.SYSTEM)
    with pytest.raises(InvalidState, match="it is final"):
        OUTPUT_MACHINE.check("release_withdrawn", "released", AirlockParty.ADMIN)
    with pytest.raises(InvalidState, match="from in_review"):
        OUTPUT_MACHINE.check("in_review", "released", AirlockParty.SYSTEM)
    with pytest.raises(PermissionDenied, match="only the system can release"):
        OUTPUT_MACHINE.check("approved", "released", AirlockParty.REVIEWER)
    with pytest.raises(PermissionDenied, match="only the researcher can submit"):
        OUTPUT_MACHINE.check("draft", "submitted", AirlockParty.REVIEWER)


def test_generated_page_has_the_diagram_and_every_state_and_transition() -> None:
    """The page the integrator writes to docs/airlock-states.md is complete and deterministic."""
    page = diagrams_markdown()
    assert page == diagrams_markdown()
    assert "```mermaid\nstateDiagram-v2\n    [*] --> draft" in page
    for state in OutputState:
        assert f"| {state.value} | {STATE_DESCRIPTIONS[state]} |" in page
    for t in OUTPUT_MACHINE.transitions:
        assert f"    {t.source} --> {t.target}: {t.label()}" in page
        assert f"`{t.event}`" in page
    assert "| in_review | " in page
    assert "reviewer (decides)" in page
    assert "| rejected | final: nothing leaves | nobody (final) |" in page
