"""Query plans: what a researcher asks, validated before any data is touched.

A plan is a small frozen tree (table, filters, group-by columns, aggregates, privacy loss) that the
client builds and the server checks against the catalog and the project's approved scope. Its
canonical hash, with the dataset version it ran on, identifies a release: asking the same plan again
returns the recorded release at no further cost, so averaging repeated answers gains nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from enclave.domain.audit.chain import canonical_json
from enclave.domain.errors import InvalidInput, PermissionDenied
from enclave.domain.queries.budget import Budget
from enclave.domain.queries.cohorts import Definition

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
MAX_GROUP_BY = 4
MAX_AGGREGATES = 8


class FilterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: Name
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in"]
    value: str | int | float | list[str | int] = Field(description="a literal; a list for 'in'")

    @model_validator(mode="after")
    def _shape(self) -> FilterSpec:
        if (self.op == "in") != isinstance(self.value, list):
            raise ValueError("use a list value with 'in', and a single value with every other operator")
        if isinstance(self.value, list) and not 1 <= len(self.value) <= 1000:
            raise ValueError("an 'in' list has 1 to 1000 values")
        if isinstance(self.value, float) and self.value != self.value:
            raise ValueError("NaN is not a filter value")
        return self


COUNTS = ("count_rows", "count_persons")
MAX_DELTA = Decimal("0.0001")
MAX_BINS = 100


def quantile_label(q: Decimal | float) -> str:
    """``p25`` for 0.25, ``p2_5`` for 0.025: a quantile's level as the percentile, in a name."""
    percent = (Decimal(str(q)) * 100).normalize()
    return "p" + format(percent, "f").replace(".", "_")


class AggregateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["count_rows", "count_persons", "sum", "mean", "median", "quantile"]
    column: Name | None = None
    q: Decimal | None = Field(
        None,
        gt=0,
        lt=1,
        decimal_places=4,
        description="the level of a quantile (0.25 for the lower quartile)",
    )

    @model_validator(mode="after")
    def _column(self) -> AggregateSpec:
        if self.kind in COUNTS and self.column is not None:
            raise ValueError(f"{self.kind} takes no column")
        if self.kind not in COUNTS and self.column is None:
            raise ValueError(f"{self.kind} needs a numeric column")
        if (self.kind == "quantile") != (self.q is not None):
            raise ValueError("a quantile needs its level q (as 0.25), and only a quantile takes one")
        return self

    @property
    def name(self) -> str:
        if self.kind == "count_persons":
            return "persons"
        if self.column is None:
            return "count"
        if self.kind == "quantile":
            assert self.q is not None
            return f"{quantile_label(self.q)}_{self.column}"
        return f"{self.kind}_{self.column}"


class QueryPlan(BaseModel):
    """The serialisable plan (the JSON the client sends).

    With a ``cohort``, the plan runs over the definition's derived frame (one row per person, see
    :mod:`enclave.dp.cohorts`) instead of a dataset's rows: ``dataset`` is then the definition's
    person-level table, and group keys, filters and aggregated columns name its variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Name
    aggregates: list[AggregateSpec] = Field(min_length=1, max_length=MAX_AGGREGATES)
    group_by: list[Name] = Field(default_factory=list, max_length=MAX_GROUP_BY)
    filters: list[FilterSpec] = Field(default_factory=list, max_length=20)
    epsilon: Decimal = Field(gt=0, le=10, max_digits=12, decimal_places=6)
    delta: Decimal = Field(
        Decimal(0),
        ge=0,
        le=MAX_DELTA,
        decimal_places=15,
        description="only for a DP key release (grouping by a column without a public domain), e.g. 1e-7",
    )
    bins: dict[Name, Annotated[int, Field(ge=2, le=MAX_BINS)]] = Field(
        default_factory=dict,
        description="a histogram: a bounded numeric group-by column cut into this many equal bins",
    )
    cohort: Definition | None = Field(
        None, description="a cohort definition: the plan then runs over its one-row-per-person frame"
    )

    @model_validator(mode="after")
    def _cohort_dataset(self) -> QueryPlan:
        if self.cohort is not None and self.cohort.persons != self.dataset:
            raise ValueError(f"with a cohort, the dataset is its person-level table {self.cohort.persons!r}")
        return self

    @field_validator("aggregates")
    @classmethod
    def _distinct(cls, value: list[AggregateSpec]) -> list[AggregateSpec]:
        names = [a.name for a in value]
        if len(set(names)) != len(names):
            raise ValueError("each aggregate may appear once")
        return value

    @model_validator(mode="after")
    def _binned_keys(self) -> QueryPlan:
        for name in self.bins:
            if name not in self.group_by:
                raise ValueError(f"bins of {name!r} make it a group key: add it to group_by")
        return self

    @field_validator("group_by")
    @classmethod
    def _distinct_keys(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each group-by column may appear once")
        return value

    def in_words(self) -> str:
        """What the plan asks, as a sentence (what was noised; never a value of the answer), e.g.
        "Count of rows and mean of age in admissions, by region, where sex == 'F'"."""
        parts = [_aggregate_in_words(a) for a in self.aggregates]
        asked = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        source = f"the cohort over {self.dataset}" if self.cohort is not None else self.dataset
        sentence = f"{asked[:1].upper()}{asked[1:]} in {source}"
        if self.group_by:
            keys = [f"{k} (in {self.bins[k]} bins)" if k in self.bins else k for k in self.group_by]
            sentence += ", by " + ", ".join(keys)
        if self.filters:
            sentence += ", where " + " and ".join(f"{f.column} {f.op} {f.value!r}" for f in self.filters)
        return sentence

    @property
    def cost(self) -> Budget:
        """What a release of this plan is charged: its epsilon, and its delta (a DP key release)."""
        return Budget(self.epsilon, self.delta)

    def columns(self) -> set[str]:
        used = set(self.group_by) | {f.column for f in self.filters}
        used |= {a.column for a in self.aggregates if a.column is not None}
        return used

    def fingerprint(self, dataset_version: int, *, derived: str | None = None) -> str:
        """Identifies a release: the canonical plan and the data version it ran on; for a cohort,
        ``derived`` is the derived frame's fingerprint (every table's version and the code lists)."""
        plan = self.model_dump(mode="json")
        # Fields added later are left out when unused, so earlier plans keep their fingerprints.
        if plan.get("cohort") is None:
            plan.pop("cohort", None)
        if Decimal(plan.get("delta", 0)) == 0:
            plan.pop("delta", None)
        if not plan.get("bins"):
            plan.pop("bins", None)
        for aggregate in plan["aggregates"]:
            if aggregate.get("q") is None:
                aggregate.pop("q", None)
        body: dict[str, Any] = {"plan": plan, "version": dataset_version}
        if derived is not None:
            body["derived"] = derived
        return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def check_scope(plan: QueryPlan, scope: dict[str, list[str]]) -> None:
    """Every table and column the plan uses is in the project's approved scope (schema only)."""
    if plan.cohort is not None:
        check_cohort_scope(plan.cohort, scope)
        return
    if plan.dataset not in scope:
        allowed = ", ".join(sorted(scope)) or "none"
        raise PermissionDenied(
            f"dataset {plan.dataset!r} is not in this project's scope (approved: {allowed})"
        )
    outside = sorted(plan.columns() - set(scope[plan.dataset]))
    if outside:
        raise PermissionDenied(
            f"column(s) {', '.join(outside)} of {plan.dataset} are not in this project's approved scope"
            f" ({', '.join(scope[plan.dataset])})"
        )


def check_cohort_scope(definition: Definition, scope: dict[str, list[str]]) -> None:
    """Every table a cohort definition reads, and every column of it, is in the approved scope."""
    allowed = ", ".join(sorted(scope)) or "none"
    for table, columns in definition.columns().items():
        if table not in scope:
            raise PermissionDenied(
                f"the cohort reads dataset {table!r}, which is not in this project's scope"
                f" (approved: {allowed})"
            )
        outside = sorted(columns - set(scope[table]) - {"person_id"})
        if outside:
            raise PermissionDenied(
                f"the cohort reads column(s) {', '.join(outside)} of {table}, which are not in this"
                f" project's approved scope ({', '.join(scope[table])})"
            )


def check_against_catalog(plan: QueryPlan, columns: Mapping[str, Mapping[str, Any]]) -> None:
    """Roles and types from the catalog: group keys need a public domain, sums and means a bounded
    numeric, filters a known column. The sentence names the column and the rule."""
    subject, thing = ("the cohort", "variable") if plan.cohort is not None else (plan.dataset, "column")
    for key in plan.group_by:
        meta = columns.get(key)
        if meta is None:
            raise InvalidInput(f"{subject} has no {thing} {key!r}")
        if key in plan.bins:
            if meta.get("role") != "numeric" or meta.get("lower") is None or meta.get("upper") is None:
                raise InvalidInput(f"cannot bin {key!r}: only bounded numeric columns have public bins")
            continue
        if not meta.get("domain") and not plan.delta:
            raise InvalidInput(
                f"cannot group by {key!r}: it has no public domain in the catalog, and releasing its raw"
                " values could disclose them; group by a column with a public domain, or give the plan a"
                " delta (such as 1e-7) to release only the keys whose noisy count passes a threshold"
            )
    for agg in plan.aggregates:
        if agg.column is None:
            continue
        meta = columns.get(agg.column)
        if meta is None:
            raise InvalidInput(f"{subject} has no {thing} {agg.column!r}")
        if meta.get("role") != "numeric" or meta.get("lower") is None or meta.get("upper") is None:
            raise InvalidInput(
                f"cannot {agg.kind} {agg.column!r}: only bounded numeric columns can be summed"
            )
    for flt in plan.filters:
        if flt.column not in columns:
            raise InvalidInput(f"{subject} has no {thing} {flt.column!r} to filter on")


@dataclass(frozen=True)
class Release:
    id: int
    project_id: int
    dataset: str
    dataset_version: int
    fingerprint: str
    plan: QueryPlan
    epsilon: Decimal
    delta: Decimal
    mechanism: str
    noise_scales: dict[str, float]
    values: list[dict[str, Any]]
    accuracy: dict[str, float]
    author: str
    created_at: datetime


_AGGREGATE_WORDS = {
    "count_rows": "count of rows",
    "count_persons": "count of persons",
    "sum": "sum of {column}",
    "mean": "mean of {column}",
    "median": "median of {column}",
    "quantile": "quantile {q} of {column}",
}


def _aggregate_in_words(aggregate: AggregateSpec) -> str:
    return _AGGREGATE_WORDS[aggregate.kind].format(column=aggregate.column, q=aggregate.q)
