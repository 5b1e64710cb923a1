"""Counts of persons and DP key releases: privacy maps, noise scales, thresholds and refusals."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Filter, Query, TableMeta

COLUMNS = {
    "sex": ColumnMeta("sex", "string", domain=("F", "M", "X")),
    "region": ColumnMeta("region", "string", domain=("north", "south")),
    "postcode": ColumnMeta("postcode", "string"),
    "los": ColumnMeta("los", "integer", lower=0, upper=100),
    "admitted": ColumnMeta("admitted", "date"),
}
PERSONS = (Aggregate("count_persons"),)
COUNT = (Aggregate("count_rows"),)
DELTA = Decimal("1e-7")


def _pid(i: int) -> str:
    return f"{i:032x}"


@pytest.fixture(scope="module")
def engine() -> DPEngine:
    return DPEngine()


@pytest.fixture
def frame() -> pl.DataFrame:
    """60 persons with 2 rows each; person 0 has 5 more rows and person 1 rows of every sex."""
    rows: list[dict[str, object]] = []
    for i in range(60):
        for j in range(2):
            rows.append(
                {
                    "person_id": _pid(i),
                    "sex": "F" if i % 2 else "M",
                    "region": "north" if i % 3 else "south",
                    "postcode": "AB1" if i < 40 else "ZZ9",
                    "los": (i + j) % 30,
                    "admitted": date(2020, 1, 1) + timedelta(days=i % 3),
                }
            )
    rows += [dict(rows[0], los=j) for j in range(5)]
    rows += [dict(rows[2], sex=s) for s in ("M", "X")]
    return pl.DataFrame(rows)


@pytest.fixture
def table(tmp_path: Path, frame: pl.DataFrame) -> TableMeta:
    frame.write_parquet(tmp_path / "t.parquet")
    return TableMeta(tmp_path / "t.parquet", contribution_bound=2, columns=COLUMNS)


def test_a_count_of_persons_has_sensitivity_one(engine: DPEngine, table: TableMeta) -> None:
    """Truncated to one row per person, one person changes the count by one, whatever the bound:
    the scale is 1/ε (k/ε for a count of rows)."""
    for k in (1, 2, 5):
        for eps in ("0.5", "2"):
            at_k = TableMeta(table.path, k, COLUMNS)
            plan = engine.plan(Query(at_k, PERSONS, epsilon=Decimal(eps)))
            assert plan.aggregates[0].noise_scale == pytest.approx(1 / float(eps), rel=1e-9)
            assert plan.statistics[0].distribution == "Integer Laplace"
            assert plan.epsilon <= Decimal(eps)
            rows = engine.plan(Query(at_k, COUNT, epsilon=Decimal(eps)))
            assert rows.aggregates[0].noise_scale == pytest.approx(k / float(eps), rel=1e-9)


def test_a_count_of_persons_counts_each_person_once(
    engine: DPEngine, table: TableMeta, frame: pl.DataFrame
) -> None:
    """With negligible noise the count is the number of distinct persons with a row passing the
    filters (person 0's seven rows count once), over the whole table, not its bounded rows."""
    flt = (Filter("los", ">=", 3),)
    data = engine.release(engine.plan(Query(table, PERSONS, filters=flt, epsilon=Decimal(10_000)))).data
    truth = frame.filter(pl.col("los") >= 3)["person_id"].n_unique()
    assert data["persons"].to_list() == [truth]
    assert data.columns == ["persons", "persons_ci95"]


def test_persons_by_group_count_each_person_once_per_group(
    engine: DPEngine, table: TableMeta, frame: pl.DataFrame
) -> None:
    """By sex (3 public keys, bound 5): each person counts once in each group they have a row in,
    every public key is released, and the scale is the number of groups a person may count in."""
    at_5 = TableMeta(table.path, 5, COLUMNS)
    plan = engine.plan(Query(at_5, PERSONS, group_by=("sex",), epsilon=Decimal(10_000)))
    data = engine.release(plan).data
    truth = dict(frame.group_by("sex").agg(pl.col("person_id").n_unique()).iter_rows())
    assert data.select("sex", "persons").rows() == [(s, truth.get(s, 0)) for s in ("F", "M", "X")]
    # A person counts in at most 3 groups (there are 3 keys): L1 sensitivity 3.
    assert plan.aggregates[0].noise_scale == pytest.approx(3 / 10_000, rel=1e-9)
    # With a bound of 2 below the 3 keys, a person counts in at most 2 groups; OpenDP 0.16 accounts the
    # truncation as one group more (see Engine.plan), so the scale is 3, never less than 2.
    plan_2 = engine.plan(Query(table, PERSONS, group_by=("sex",), epsilon=Decimal(1)))
    assert plan_2.aggregates[0].noise_scale == pytest.approx(3.0, rel=1e-9)
    person_1 = engine.release(
        engine.plan(Query(table, PERSONS, group_by=("sex",), epsilon=Decimal(10_000)))
    ).data
    # Person 1 (rows of sex F, M and X) is kept in two of their groups: one fewer person in all.
    assert sum(person_1["persons"]) == sum(truth.values()) - 1


def test_a_dp_key_release_has_a_threshold_and_accounts_delta(engine: DPEngine, table: TableMeta) -> None:
    """Keys without a public domain come from the data, through OpenDP's threshold on the noisy
    count: the plan accounts (ε, δ) within the request and says the threshold."""
    query = Query(table, COUNT, group_by=("postcode",), epsilon=Decimal(1), delta=DELTA)
    plan = engine.plan(query)
    assert Decimal(0) < plan.delta <= DELTA
    assert plan.epsilon <= Decimal(1)
    assert plan.threshold is not None
    assert plan.threshold > 2  # above one person's contribution
    assert plan.aggregates[0].noise_scale == pytest.approx(2.0, rel=1e-9)  # k/ε, as with public keys
    eps, delta = plan._measurement.map(1)  # one person (no bounded view: the identifier unit)
    assert eps <= 1
    assert delta <= 1e-7


def test_a_dp_key_release_releases_only_keys_above_the_threshold(
    engine: DPEngine, table: TableMeta, frame: pl.DataFrame
) -> None:
    """With a generous ε the threshold is low and both postcodes pass, with their counts; with a
    small ε it is above every count and nothing is released (an empty frame, with its columns)."""
    generous = Query(table, COUNT, group_by=("postcode",), epsilon=Decimal(10), delta=DELTA)
    plan = engine.plan(generous)
    data = engine.release(plan).data
    # Each person's rows truncated to the bound of 2 (persons 0 and 1 have more).
    truth = (
        frame.group_by("person_id", "postcode")
        .len()
        .group_by("postcode")
        .agg(pl.col("len").clip(upper_bound=2).sum())
        .sort("postcode")
        .rows()
    )
    assert data["postcode"].to_list() == [key for key, _ in truth]
    # Discrete Laplace of scale k/ε = 0.2: off by 5 or more with probability below e^-25.
    assert all(abs(got - n) < 5 for got, (_, n) in zip(data["count"], truth, strict=True))
    small = Query(table, COUNT, group_by=("postcode",), epsilon=Decimal("0.1"), delta=DELTA)
    plan = engine.plan(small)
    assert plan.threshold is not None
    assert plan.threshold > len(frame)
    released = engine.release(plan).data
    assert released.height == 0
    assert released.columns == ["postcode", "count", "count_ci95"]


def test_a_dp_key_release_groups_by_dates_and_counts_persons(
    engine: DPEngine, table: TableMeta, frame: pl.DataFrame
) -> None:
    data = engine.release(
        engine.plan(Query(table, PERSONS, group_by=("admitted",), epsilon=Decimal(10), delta=DELTA))
    ).data
    truth = frame.group_by("admitted").agg(pl.col("person_id").n_unique()).sort("admitted").rows()
    assert data["admitted"].to_list() == [key for key, _ in truth]
    # Scale (groups + 1)/ε = 0.3 (see test_persons_by_group...): off by 5 or more below e^-16.
    assert all(abs(got - n) < 5 for got, (_, n) in zip(data["persons"], truth, strict=True))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"aggregates": (Aggregate("count_persons"), Aggregate("count_rows"))}, "query of its own"),
        ({"aggregates": (Aggregate("count_persons", "los"),)}, "takes no column"),
        ({"group_by": ("postcode",)}, "Give the query a delta"),
        (
            {"group_by": ("postcode",), "delta": DELTA, "aggregates": (Aggregate("sum", "los"),)},
            "add a count",
        ),
        ({"group_by": ("sex",), "delta": DELTA}, "leave delta at 0"),
        ({"delta": Decimal(1)}, "below 1"),
    ],
)
def test_refusals_of_persons_and_key_releases(
    engine: DPEngine, table: TableMeta, fields: dict[str, object], message: str
) -> None:
    query: dict[str, object] = {"table": table, "aggregates": COUNT} | fields
    with pytest.raises(ValueError, match=message):
        engine.plan(Query(**query))  # type: ignore[arg-type]


def test_refusals_do_not_depend_on_the_data(engine: DPEngine, table: TableMeta, tmp_path: Path) -> None:
    """The same refused plan on a neighbouring table (one person fewer) gives the same sentence."""
    neighbour = tmp_path / "n.parquet"
    pl.read_parquet(table.path).filter(pl.col("person_id") != _pid(0)).write_parquet(neighbour)
    sentences = []
    for path in (table.path, neighbour):
        with pytest.raises(ValueError, match="no public domain") as info:
            engine.plan(Query(TableMeta(path, 2, COLUMNS), COUNT, group_by=("postcode",)))
        sentences.append(str(info.value))
    assert sentences[0] == sentences[1]
