"""Query plans: validated against the project's scope and the catalog before any data is touched."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from enclave.domain.errors import InvalidInput, PermissionDenied
from enclave.domain.queries.plans import QueryPlan, check_against_catalog, check_scope

COLUMNS = {
    "region": {"role": "category", "domain": ["E1", "E2"]},
    "postcode_area": {"role": "category", "domain": None},
    "cost_gbp": {"role": "numeric", "lower": 0, "upper": 100000},
    "icd10_code": {"role": "category", "domain": ["E11.9"]},
}
SCOPE = {"admissions": ["region", "cost_gbp", "postcode_area"]}


def plan(**changes: object) -> QueryPlan:
    raw: dict[str, object] = {
        "dataset": "admissions",
        "aggregates": [{"kind": "count_rows"}, {"kind": "sum", "column": "cost_gbp"}],
        "group_by": ["region"],
        "epsilon": "1",
    }
    raw.update(changes)
    return QueryPlan.model_validate(raw)


def test_a_valid_plan_passes_and_has_a_stable_fingerprint() -> None:
    """The same plan on the same version has one fingerprint; another version or epsilon another."""
    p = plan()
    check_scope(p, SCOPE)
    check_against_catalog(p, COLUMNS)
    assert p.fingerprint(1) == plan().fingerprint(1)
    assert p.fingerprint(1) != p.fingerprint(2)
    assert p.fingerprint(1) != plan(epsilon="0.5").fingerprint(1)
    assert [a.name for a in p.aggregates] == ["count", "sum_cost_gbp"]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"dataset": "deaths"}, PermissionDenied, "not in this project's scope"),
        ({"group_by": ["icd10_code"]}, PermissionDenied, "icd10_code of admissions are not in"),
        ({"group_by": ["postcode_area"]}, InvalidInput, "no public domain"),
        ({"aggregates": [{"kind": "sum", "column": "region"}]}, InvalidInput, "only bounded numeric"),
    ],
)
def test_refusals_name_the_rule(changes: dict[str, object], error: type[Exception], message: str) -> None:
    """Out-of-scope tables and columns, keys without a public domain and sums of categories are
    refused with a sentence, from the schema alone."""
    p = plan(**changes)

    def check() -> None:
        check_scope(p, SCOPE)
        check_against_catalog(p, COLUMNS)

    with pytest.raises(error, match=message):
        check()


@pytest.mark.parametrize(
    "changes",
    [
        {"epsilon": "0"},
        {"epsilon": "11"},
        {"aggregates": []},
        {"aggregates": [{"kind": "count_rows", "column": "x"}]},
        {"aggregates": [{"kind": "sum"}]},
        {"aggregates": [{"kind": "mode", "column": "cost_gbp"}]},
        {"filters": [{"column": "region", "op": "in", "value": "E1"}]},
        {"group_by": ["region", "region"]},
        {"dataset": "Robert'); DROP TABLE"},
    ],
)
def test_malformed_plans_are_refused_by_the_model(changes: dict[str, object]) -> None:
    """Shape errors never reach the planner."""
    with pytest.raises(ValidationError):
        plan(**changes)


def test_epsilon_is_exact() -> None:
    """Epsilon is a decimal, never a float."""
    assert plan(epsilon="0.1").epsilon == Decimal("0.1")


def test_the_mechanism_recorded_with_a_release_fits_its_column() -> None:
    """SQLite would store a longer text; PostgreSQL refuses it, and every release with it."""
    from enclave.db.models import ReleaseRow
    from enclave.dp.adapter import KEY_RELEASE, MECHANISM, MECHANISM_PERSONS

    longest = max(
        len(text + KEY_RELEASE.format(threshold=2**32 - 1)) for text in (MECHANISM, MECHANISM_PERSONS)
    )
    assert longest <= ReleaseRow.__table__.c.mechanism.type.length


def test_a_plan_in_words_says_what_was_asked_and_nothing_of_the_answer() -> None:
    plan = QueryPlan.model_validate(
        {
            "dataset": "admissions",
            "aggregates": [{"kind": "count_rows"}, {"kind": "mean", "column": "length_of_stay"}],
            "group_by": ["region", "age"],
            "bins": {"age": 10},
            "filters": [{"column": "sex", "op": "==", "value": "F"}],
            "epsilon": "0.5",
        }
    )
    assert plan.in_words() == (
        "Count of rows and mean of length_of_stay in admissions, by region, age (in 10 bins),"
        " where sex == 'F'"
    )
    one = QueryPlan.model_validate(
        {
            "dataset": "demographics",
            "aggregates": [{"kind": "quantile", "column": "age", "q": "0.25"}],
            "epsilon": 1,
        }
    )
    assert one.in_words() == "Quantile 0.25 of age in demographics"
