"""The query engine port (:class:`enclave.domain.ports.QueryEngine`) on OpenDP and Polars.

Translates the researcher's :class:`~enclave.domain.queries.plans.QueryPlan` into the engine's
:class:`~enclave.dp.engine.Query` over a file of the research store (a dataset version's table, or a
cohort's derived per-person frame), plans it with :class:`~enclave.dp.engine.DPEngine` and releases
it; every noisy value comes from OpenDP (see :mod:`enclave.dp.engine`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from enclave.domain.catalog.datasets import CatalogColumn
from enclave.domain.errors import InvalidInput
from enclave.domain.ports import AggregateAccuracy, Answer, CohortSource, PlannedQuery, TableSource
from enclave.domain.queries.plans import QueryPlan
from enclave.dp.cohorts import derive_cached
from enclave.dp.dummy import dummy_frame
from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Filter, Plan, Query, TableMeta
from enclave.store.research import ParquetResearchStore

# Stored with each release (at most 100 characters: the column's width).
MECHANISM = "OpenDP 0.16 Polars: discrete Laplace; rows per person <= bound"
MECHANISM_PERSONS = "OpenDP 0.16 Polars: discrete Laplace; one row per person and group"
KEY_RELEASE = "; key threshold {threshold}"


def mechanism(planned: Plan) -> str:
    """What a release records of how it was made (at most 100 characters)."""
    text = MECHANISM_PERSONS if planned.query.counts_persons else MECHANISM
    if planned.threshold is not None:
        text += KEY_RELEASE.format(threshold=planned.threshold)
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column(column: CatalogColumn) -> ColumnMeta:
    return ColumnMeta(
        name=column.name,
        type=column.type,  # type: ignore[arg-type]
        domain=column.domain or None,
        lower=column.lower,
        upper=column.upper,
    )


def engine_query(plan: QueryPlan, table: TableMeta) -> Query:
    """The engine's query for ``plan`` over ``table``."""
    return Query(
        table=table,
        aggregates=tuple(
            Aggregate(a.kind, a.column, float(a.q) if a.q is not None else None) for a in plan.aggregates
        ),
        group_by=tuple(plan.group_by),
        filters=tuple(
            Filter(f.column, f.op, tuple(f.value) if isinstance(f.value, list) else f.value)
            for f in plan.filters
        ),
        epsilon=plan.epsilon,
        delta=plan.delta,
        bins=tuple(plan.bins.items()),
    )


class PolarsQueryEngine:
    """Implements :class:`enclave.domain.ports.QueryEngine` with OpenDP on Polars."""

    def __init__(self, engine: DPEngine, store: ParquetResearchStore) -> None:
        self.engine = engine
        self.store = store

    def _table(self, plan: QueryPlan, source: TableSource | CohortSource) -> TableMeta:
        if isinstance(source, TableSource):
            return TableMeta(
                path=self.store.table(source.version_path),
                contribution_bound=source.contribution_bound,
                columns={c.name: _column(c) for c in source.columns},
            )
        assert plan.cohort is not None
        paths = {table: self.store.table(path) for table, path in source.version_paths.items()}
        derived = derive_cached(plan.cohort, paths, source.catalog, source.versions, self.store.derived)
        used = plan.columns()
        return TableMeta(
            path=derived.table.path,
            contribution_bound=derived.table.contribution_bound,
            columns={name: meta for name, meta in derived.table.columns.items() if name in used},
        )

    def plan(self, plan: QueryPlan, source: TableSource | CohortSource) -> PlannedQuery:
        query = engine_query(plan, self._table(plan, source))
        try:
            planned = self.engine.plan(query)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return PlannedQuery(
            epsilon=planned.epsilon,
            delta=planned.delta,
            threshold=planned.threshold,
            aggregates=tuple(
                AggregateAccuracy(a.name, a.noise_scale, a.accuracy) for a in planned.aggregates
            ),
            mechanism=mechanism(planned),
            handle=planned,
        )

    def release(self, planned: PlannedQuery) -> Answer:
        assert isinstance(planned.handle, Plan)
        result = self.engine.release(planned.handle)
        values = [{k: _jsonable(v) for k, v in row.items()} for row in result.data.to_dicts()]
        return Answer(values=values, noise_scales=dict(result.noise_scales))

    def dummy(
        self,
        columns: Sequence[Mapping[str, Any]],
        n: int,
        *,
        project_key: bytes,
        contribution_bound: int = 1,
        seed: int | None = None,
    ) -> Any:
        return dummy_frame(
            columns, n, project_key=project_key, contribution_bound=contribution_bound, seed=seed
        )
