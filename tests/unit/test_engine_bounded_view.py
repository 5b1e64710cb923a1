"""The engine on a table's bounded view: a row-level bound of k, the same noise as truncation per query."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Filter, Query, TableMeta
from enclave.ingest.bounded import view_seeds, write_view
from enclave.store.layout import BOUND_KEY, VIEW_OF_KEY, view_path

COLUMNS = {
    "sex": ColumnMeta("sex", "string", domain=("F", "M", "X")),
    "los": ColumnMeta("los", "integer", lower=0, upper=100),
    "bmi": ColumnMeta("bmi", "decimal", lower=10, upper=50),
    "admitted": ColumnMeta("admitted", "date"),
}
SCHEMA = {"person_id": pl.String, "sex": pl.String, "los": pl.Int64, "bmi": pl.Float64, "admitted": pl.Date}
SEEDS = view_seeds(b"k" * 32, "t")
K = 2

EVERY_AGGREGATE = (
    Aggregate("count_rows"),
    Aggregate("sum", "los"),
    Aggregate("mean", "bmi"),
    Aggregate("median", "los"),
)


def _frame() -> pl.DataFrame:
    """40 persons with 1 or 2 rows, none with sex X; person 0 has 6 rows."""
    rows = [
        (
            f"{i:032x}",
            "F" if i % 2 else "M",
            (i + j) % 30,
            20.0 + i % 10,
            date(2020, 1, 1) + timedelta(days=i),
        )
        for i in range(40)
        for j in range(1 + i % 2)
    ]
    rows += [(f"{0:032x}", "M", j, 25.0, date(2020, 1, 1)) for j in range(5)]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


@pytest.fixture(scope="module")
def engine() -> DPEngine:
    return DPEngine()


@pytest.fixture
def files(tmp_path: Path) -> tuple[TableMeta, TableMeta]:
    """The same data twice: with its bounded view (as ingest writes it: sex as an Enum of its public
    domain), and without."""
    with_view = tmp_path / "v" / "data.parquet"
    with_view.parent.mkdir()
    _frame().write_parquet(with_view)
    write_view(with_view, K, SEEDS, {"sex": ["F", "M", "X"]})
    plain = tmp_path / "plain.parquet"
    os.link(with_view, plain)
    return TableMeta(with_view, K, COLUMNS), TableMeta(plain, K, COLUMNS)


def _query(table: TableMeta, epsilon: str = "1", **kwargs: object) -> Query:
    return Query(table, EVERY_AGGREGATE, group_by=("sex",), epsilon=Decimal(epsilon), **kwargs)  # type: ignore[arg-type]


def test_the_view_is_queried_with_a_row_level_bound_of_k(
    engine: DPEngine, files: tuple[TableMeta, TableMeta]
) -> None:
    """With a view the plan scans it with SymmetricDistance d_in = k; without, it truncates persons."""
    viewed, plain = files
    plan = engine.plan(_query(viewed))
    assert (plan.source, plan.row_bound) == (view_path(viewed.path), K)
    assert "SymmetricDistance" in str(plan._context.accountant.input_metric)
    fallback = engine.plan(_query(plain))
    assert (fallback.source, fallback.row_bound) == (plain.path, None)
    assert "SymmetricIdDistance" in str(fallback._context.accountant.input_metric)


@pytest.mark.parametrize("epsilon", ["0.3", "1", "4"])
def test_privacy_map_and_noise_scales_equal_the_truncation_route(
    engine: DPEngine, files: tuple[TableMeta, TableMeta], epsilon: str
) -> None:
    """For every aggregate, OpenDP's map of the view's measurement at d_in = k rows equals the ε of the
    truncation route's at d_in = 1 person, and every statistic's noise scale and accuracy agree."""
    viewed, plain = files
    view_plan = engine.plan(_query(viewed, epsilon))
    trunc_plan = engine.plan(_query(plain, epsilon))
    assert view_plan.epsilon == trunc_plan.epsilon <= Decimal(epsilon)
    assert Decimal(repr(view_plan._measurement.map(K))) == view_plan.epsilon
    assert view_plan._measurement.check(K, float(epsilon))
    assert not view_plan._measurement.check(K + 1, float(epsilon))  # k really is the bound accounted
    assert view_plan.statistics == trunc_plan.statistics
    assert [s.name for s in view_plan.statistics] == [
        "rows",
        "sum(los)",
        "sum(bmi)",
        "count(bmi)",
        "median(los)",
    ]
    count = engine.plan(Query(viewed, (Aggregate("count_rows"),), epsilon=Decimal(epsilon)))
    assert count.aggregates[0].noise_scale == pytest.approx(K / float(epsilon), rel=1e-9)  # k / ε


def test_release_from_the_view_counts_at_most_k_rows_per_person(
    engine: DPEngine, files: tuple[TableMeta, TableMeta]
) -> None:
    """With negligible noise the view shows through: person 0's 7 rows count as 2, filters apply."""
    viewed, _ = files
    query = Query(
        viewed,
        (Aggregate("count_rows"),),
        group_by=("sex",),
        filters=(Filter("admitted", "<", date(2020, 1, 1) + timedelta(days=20)),),
        epsilon=Decimal(10_000),
    )
    data = engine.release(engine.plan(query)).data
    # persons 0..19: the 10 odd ones have 2 rows (F), the 10 even ones 1 row (M), person 0 two.
    assert data.select("sex", "count").rows() == [("F", 20), ("M", 11), ("X", 0)]


def test_a_view_for_another_bound_or_file_is_not_used(
    engine: DPEngine, files: tuple[TableMeta, TableMeta], tmp_path: Path
) -> None:
    """The view is used only if its footer declares exactly the table's bound and names its file."""
    viewed, _ = files
    assert engine.plan(_query(TableMeta(viewed.path, K + 1, COLUMNS))).row_bound is None
    other = tmp_path / "other.parquet"
    _frame().write_parquet(other)
    pl.read_parquet(view_path(viewed.path)).write_parquet(
        view_path(other), metadata={BOUND_KEY: str(K), VIEW_OF_KEY: "data.parquet"}
    )
    assert engine.plan(_query(TableMeta(other, K, COLUMNS))).row_bound is None


def test_a_file_that_declares_its_own_bound_is_queried_row_level(engine: DPEngine, tmp_path: Path) -> None:
    """A file whose footer declares at most m <= k rows per person (a derived per-person table) is
    queried directly with a row-level bound of k."""
    path = tmp_path / "per_person.parquet"
    _frame().unique("person_id").write_parquet(path, metadata={BOUND_KEY: "1"})
    plan = engine.plan(_query(TableMeta(path, K, COLUMNS)))
    assert (plan.source, plan.row_bound) == (path, K)
    assert engine.plan(_query(TableMeta(path, 1, COLUMNS))).row_bound == 1


def test_planning_on_the_view_reads_no_rows(
    engine: DPEngine, files: tuple[TableMeta, TableMeta], monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan() reads Parquet footers only, on the view route too."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("plan() collected data")

    viewed, _ = files
    with monkeypatch.context() as patch:
        patch.setattr(pl.LazyFrame, "collect", refuse)
        patch.setattr(pl, "read_parquet", refuse)
        plan = engine.plan(_query(viewed, "0.9"))
    assert engine.release(plan).data.height == 3


def test_a_cached_measurement_is_rechecked_and_draws_fresh_noise(
    engine: DPEngine, files: tuple[TableMeta, TableMeta]
) -> None:
    """The second plan of a shape reuses the measurement (checked again by OpenDP); each release of it
    draws its own noise, and each plan still has its own budget of one release."""
    viewed, _ = files
    query = Query(viewed, (Aggregate("count_rows"),), group_by=("sex",), epsilon=Decimal("0.01"))
    first, second = engine.plan(query), engine.plan(query)
    assert second.scale_from_cache
    assert second._measurement is first._measurement
    assert second._context is not first._context
    a, b = engine.release(first).data, engine.release(second).data
    assert a["count"].to_list() != b["count"].to_list()  # scale 200: equal with probability < 1e-6
    with pytest.raises(RuntimeError, match="already been released"):
        engine.release(first)


def test_a_replaced_file_is_seen(engine: DPEngine, files: tuple[TableMeta, TableMeta]) -> None:
    """The source cache is keyed on the files' identity: removing the view falls back to truncation."""
    viewed, _ = files
    assert engine.plan(_query(viewed)).row_bound == K
    view_path(viewed.path).unlink()
    assert engine.plan(_query(viewed)).row_bound is None


@pytest.mark.parametrize(
    "filters",
    [
        (),
        (Filter("sex", "==", "F"),),
        (Filter("sex", "!=", "M"),),
        (Filter("sex", "<", "M"),),  # compared as text, not by category order
        (Filter("sex", ">=", "G"),),  # a value outside the domain
        (Filter("sex", "in", ["M", "X", "nope"]),),
        (Filter("los", ">", 10), Filter("admitted", "<=", "2020-01-20")),
    ],
)
def test_view_and_full_file_agree_when_nobody_is_over_the_bound(
    engine: DPEngine, tmp_path: Path, filters: tuple[Filter, ...]
) -> None:
    """Without persons over the bound, the view (sex stored as an Enum) and the full file (sex as text)
    give the same answers at negligible noise, for every filter and group key: the same semantics."""
    path = tmp_path / "data.parquet"
    _frame().filter(pl.int_range(pl.len()).over("person_id") < K).write_parquet(path)
    write_view(path, K, SEEDS, {"sex": ["F", "M", "X"]})
    plain = tmp_path / "plain.parquet"
    os.link(path, plain)
    aggregates = (Aggregate("count_rows"), Aggregate("sum", "los"), Aggregate("mean", "bmi"))
    answers = []
    for table in (TableMeta(path, K, COLUMNS), TableMeta(plain, K, COLUMNS)):
        query = Query(table, aggregates, group_by=("sex",), filters=filters, epsilon=Decimal(10**6))
        data = engine.release(engine.plan(query)).data
        assert data.schema["sex"] == pl.String
        answers.append(data.select("sex", "count", "sum_los", pl.col("mean_bmi").round(2)).rows())
    assert answers[0] == answers[1]


def test_enum_categories_must_cover_the_catalog_domain(
    engine: DPEngine, files: tuple[TableMeta, TableMeta]
) -> None:
    """A catalog domain with values the view's Enum lacks is refused with a sentence, before any data."""
    viewed, _ = files
    columns = dict(COLUMNS, sex=ColumnMeta("sex", "string", domain=("F", "M", "U")))
    with pytest.raises(ValueError, match="categories that miss 1 value"):
        engine.plan(Query(TableMeta(viewed.path, K, columns), (Aggregate("count_rows"),), group_by=("sex",)))


def test_a_known_shape_at_a_new_epsilon_is_calibrated_like_a_fresh_one(
    files: tuple[TableMeta, TableMeta],
) -> None:
    """An engine that has calibrated a shape at one ε starts the next ε from that scale and lands on the
    same measurement as a fresh engine: same accounted ε, same noise scales."""
    viewed, _ = files
    warm = DPEngine()
    warm.plan(_query(viewed, "0.35"))
    again = warm.plan(_query(viewed, "0.7"))
    fresh = DPEngine().plan(_query(viewed, "0.7"))
    assert not again.scale_from_cache
    assert again.epsilon == fresh.epsilon
    assert again.statistics == fresh.statistics
