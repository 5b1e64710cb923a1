"""The query use cases over their engine port: what they promise whatever engine answers.

``QueryService`` reaches the DP engine only through :class:`enclave.domain.ports.QueryEngine`, so a
second engine (Spark) can be put behind it. These tests put engines that misbehave behind it, over
the real metadata database, and check that the use case, not the engine, keeps the ledger right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from enclave.domain.errors import InternalError
from enclave.domain.identity.accounts import Actor
from enclave.domain.ports import (
    AggregateAccuracy,
    Answer,
    CohortSource,
    PlannedQuery,
    QueryEngine,
    TableSource,
)
from enclave.domain.queries.plans import QueryPlan
from enclave.domain.queries.service import QueryService
from enclave.wiring import Services
from tests.conftest import OPERATOR
from tests.factories import make_project


class FixedEngine:
    """An engine that plans every query with the loss it is told to account and answers one row."""

    def __init__(self, accounted: Decimal) -> None:
        self.accounted = accounted
        self.planned: list[TableSource | CohortSource] = []
        self.released = 0

    def plan(self, plan: QueryPlan, source: TableSource | CohortSource) -> PlannedQuery:
        self.planned.append(source)
        return PlannedQuery(
            epsilon=self.accounted,
            delta=Decimal(0),
            threshold=None,
            aggregates=(AggregateAccuracy("count", 2.0, 5.99),),
            mechanism="a fixed test engine",
            handle=plan,
        )

    def release(self, planned: PlannedQuery) -> Answer:
        self.released += 1
        return Answer(values=[{"region": "London", "count": 7}], noise_scales={"count": 2.0})

    def dummy(
        self,
        columns: Sequence[Mapping[str, Any]],
        n: int,
        *,
        project_key: bytes,
        contribution_bound: int = 1,
        seed: int | None = None,
    ) -> Any:
        raise AssertionError("not used here")


def service(services: Services, engine: QueryEngine) -> QueryService:
    return QueryService(services.db.unit_of_work, engine=engine, budgets=services.budgets)


def plan(epsilon: str) -> QueryPlan:
    return QueryPlan.model_validate(
        {
            "dataset": "demographics",
            "aggregates": [{"kind": "count_rows"}],
            "group_by": ["region"],
            "epsilon": epsilon,
        }
    )


def spent(services: Services, project: int) -> Decimal:
    return services.budgets.account(OPERATOR, project).spent.epsilon


def test_an_engine_that_accounts_more_than_the_plan_asks_is_refused_before_anything_is_spent(
    services: Services,
) -> None:
    """The ledger charges the epsilon the researcher asked for, so an engine whose privacy map
    accounts more would release more than is paid for: the use case refuses, releases nothing and
    reserves nothing, whatever the engine."""
    project = make_project(services, "lead")
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "lead"))
    greedy = FixedEngine(Decimal("0.3"))
    with pytest.raises(InternalError, match=r"accounted \(0.3, 0\), above the planned \(0.2, 0\)"):
        service(services, greedy).run(lead, project, plan("0.2"))
    assert greedy.released == 0
    assert spent(services, project) == 0
    with services.db.unit_of_work(write=False) as uow:
        assert not [e for e in uow.audit.iter_events() if e.action == "budget.reserved"]


def test_the_engine_is_given_the_version_and_scope_and_its_answer_is_recorded_as_the_release(
    services: Services,
) -> None:
    """The engine sees where the current version is, the project's bound and only the columns in
    scope; what it answers is the release, charged exactly, and asking again costs nothing."""
    project = make_project(services, "lead")
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "lead"))
    fair = FixedEngine(Decimal("0.25"))
    queries = service(services, fair)
    release, recorded = queries.run(lead, project, plan("0.25"))
    assert not recorded
    (source,) = fair.planned
    assert isinstance(source, TableSource)
    with services.db.unit_of_work(write=False) as uow:
        dataset = uow.catalog.get_dataset("demographics")
        assert dataset is not None
        assert dataset.current_version is not None
        version = uow.catalog.get_version(dataset.id, dataset.current_version)
    assert version is not None
    assert source.version_path == version.path
    assert source.contribution_bound == dataset.contribution_bound
    assert [c.name for c in source.columns] == ["sex", "region"]  # the project's scope, nothing more
    assert release.values == [{"region": "London", "count": 7}]
    assert release.mechanism == "a fixed test engine"
    assert release.accuracy == {"count": 5.99}
    assert spent(services, project) == Decimal("0.25")
    again, recorded = queries.run(lead, project, plan("0.25"))
    assert recorded
    assert again.id == release.id
    assert fair.released == 1
    assert spent(services, project) == Decimal("0.25")
