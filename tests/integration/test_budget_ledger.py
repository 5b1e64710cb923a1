"""The budget ledger on the configured database: exactly as many reservations succeed as fit, under
threads and processes; settlement; refusals."""

from __future__ import annotations

import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from enclave.domain.access.states import ProjectState
from enclave.domain.errors import BudgetExceeded, PermissionDenied
from enclave.domain.identity.accounts import Actor, TokenKind
from enclave.domain.queries.budget import Budget
from enclave.wiring import Services
from tests.conftest import OPERATOR
from tests.factories import make_project

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import sys, threading
from decimal import Decimal
from enclave.config import Settings
from enclave.domain.queries.budget import Budget
from enclave.domain.errors import BudgetExceeded
from enclave.domain.identity.accounts import Actor
from enclave.wiring import build_services
home, url, project, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = build_services(Settings(home=home, database_url=url), migrate=False)
ok = []
barrier = threading.Barrier(n)
def work():
    barrier.wait()
    try:
        s.budgets.reserve(Actor.operator("proc"), project, Budget(Decimal("0.1")), "concurrency test")
        ok.append(1)
    except BudgetExceeded:
        pass
threads = [threading.Thread(target=work) for _ in range(n)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(ok))
"""


def test_fifty_parallel_reservations_of_a_tenth_against_one(services: Services) -> None:
    """30 threads here and 2 processes of 10 threads reserve 0.1 each against a budget of 1.0:
    exactly 10 succeed, the account holds exactly 1.0, and the ledger's entries add up to it."""
    project = make_project(services, "lead")
    assert services.budgets.account(OPERATOR, project).granted == Budget(Decimal("1"))
    home, url = str(services.settings.home), services.settings.database
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, home, url, str(project), "10"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    successes: list[int] = []
    barrier = threading.Barrier(30)

    def work() -> None:
        barrier.wait()
        try:
            services.budgets.reserve(OPERATOR, project, Budget(Decimal("0.1")), "concurrency test")
            successes.append(1)
        except BudgetExceeded:
            pass

    threads = [threading.Thread(target=work) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from_processes = 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        from_processes += int(out.strip())
    assert len(successes) + from_processes == 10
    account = services.budgets.account(OPERATOR, project)
    assert account.reserved == Budget(Decimal("1"))
    assert account.remaining == Budget(Decimal("0"))
    with services.db.unit_of_work(write=False) as uow:
        entries = uow.budgets.list_entries(project)
    assert sum(Decimal(str(e["epsilon"])) for e in entries if e["kind"] == "reserve") == Decimal("1")


def test_settling_commits_or_returns_exactly_once(services: Services) -> None:
    """A committed reservation is spent; a returned one is available again; neither settles twice."""
    project = make_project(services, "lead")
    first = services.budgets.reserve(OPERATOR, project, Budget(Decimal("0.4")), "a")
    second = services.budgets.reserve(OPERATOR, project, Budget(Decimal("0.5")), "b")
    with pytest.raises(BudgetExceeded, match=r"has epsilon 0\.1 left"):
        services.budgets.reserve(OPERATOR, project, Budget(Decimal("0.2")), "c")
    services.budgets.settle(OPERATOR, first, spent=True, reference="release 1")
    account = services.budgets.settle(OPERATOR, second, spent=False, reference="failed before release")
    assert account.spent == Budget(Decimal("0.4"))
    assert account.reserved == Budget(Decimal("0"))
    assert account.remaining == Budget(Decimal("0.6"))
    with pytest.raises(Exception, match="already settled"):
        services.budgets.settle(OPERATOR, first, spent=True, reference="again")
    assert services.audit.verify(OPERATOR).ok


def test_who_may_reserve(services: Services) -> None:
    """A member of an active project may; a suspended project, another project's workspace token and
    a non-member may not."""
    project = make_project(services, "lead")
    other = make_project(services, "other-lead", title="Another test project on demographics")
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "lead"))
    services.budgets.reserve(lead, project, Budget(Decimal("0.1")), "ok")
    outsider = Actor.for_user(services.identity.get_user(OPERATOR, "other-lead"))
    with pytest.raises(Exception, match="no project"):
        services.budgets.reserve(outsider, project, Budget(Decimal("0.1")), "not mine")
    token = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=other).token
    with pytest.raises(PermissionDenied, match="workspace token is for project"):
        services.budgets.reserve(Actor.for_user(lead.user, token), project, Budget(Decimal("0.1")), "x")  # type: ignore[arg-type]
    services.access.set_project_state(OPERATOR, project, ProjectState.SUSPENDED, "pause")
    with pytest.raises(PermissionDenied, match="suspended"):
        services.budgets.reserve(lead, project, Budget(Decimal("0.1")), "while suspended")


def test_a_state_machine_of_debits_and_failures_on_the_database(services: Services) -> None:
    """Hypothesis drives the real services on the configured database with reservations, commits,
    returns, real releases and releases that fail after their debit was reserved. After every step
    the ledger equals a model of it: spent is exactly the committed costs (each release's epsilon
    among them), a failed release spent nothing and released nothing, and spent + reserved never
    exceeds the grant."""
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        invariant,
        precondition,
        rule,
        run_state_machine_as_test,
    )

    from enclave.domain.errors import InternalError
    from enclave.domain.queries.plans import QueryPlan

    lead_name = "lead"
    engine = services.queries._engine
    costs = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("0.4"), places=2)

    class Ledger(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.project = make_project(services, lead_name)
            self.lead = Actor.for_user(services.identity.get_user(OPERATOR, lead_name))
            self.granted = Decimal(1)
            self.spent = Decimal(0)
            self.open: list[tuple[object, Decimal]] = []
            self.released = 0
            self.plans = 0

        def _fits(self, cost: Decimal) -> bool:
            return self.spent + sum(c for _, c in self.open) + cost <= self.granted

        @rule(cost=costs)
        def reserve(self, cost: Decimal) -> None:
            fits = self._fits(cost)
            try:
                reservation = services.budgets.reserve(self.lead, self.project, Budget(cost), "machine")
            except BudgetExceeded:
                assert not fits
                return
            assert fits
            self.open.append((reservation, cost))

        @precondition(lambda self: self.open)
        @rule(index=st.integers(min_value=0), spent=st.booleans())
        def settle(self, index: int, spent: bool) -> None:
            reservation, cost = self.open.pop(index % len(self.open))
            services.budgets.settle(self.lead, reservation, spent=spent, reference="machine")  # type: ignore[arg-type]
            if spent:
                self.spent += cost

        @rule(cost=costs, fail=st.booleans())
        def release(self, cost: Decimal, fail: bool) -> None:
            # A new plan each time (a millionth of epsilon apart), so nothing is answered for free.
            self.plans += 1
            epsilon = cost + Decimal(self.plans) / 1_000_000
            plan = QueryPlan.model_validate(
                {"dataset": "demographics", "aggregates": [{"kind": "count_rows"}], "epsilon": epsilon}
            )
            fits = self._fits(epsilon)

            def broken(planned: object) -> object:
                raise RuntimeError("injected failure after the reservation")

            if fail:
                engine.release = broken  # type: ignore[method-assign]
            try:
                services.queries.run(self.lead, self.project, plan)
            except BudgetExceeded:
                assert not fits
                return
            except InternalError:
                assert fail
                assert fits
                return
            finally:
                if fail:
                    del engine.release  # back to the class's method
            assert not fail
            assert fits
            self.spent += epsilon
            self.released += 1

        @invariant()
        def ledger_matches_the_model(self) -> None:
            account = services.budgets.account(OPERATOR, self.project)
            assert account.spent.epsilon == self.spent
            assert account.reserved.epsilon == sum((c for _, c in self.open), Decimal(0))
            assert account.spent.epsilon + account.reserved.epsilon <= self.granted
            releases = services.queries.releases(self.lead, self.project)
            assert len(releases) == self.released

    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    assert services.audit.verify(OPERATOR).ok
