"""Histograms of bounded numerics: public bins over the catalog bounds, every bin released, the
noise of a count (bins are a row-wise map, so the sensitivity is unchanged)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Filter, Query, TableMeta, bin_edges

COLUMNS = {
    "sex": ColumnMeta("sex", "string", domain=("F", "M")),
    "los": ColumnMeta("los", "integer", lower=0, upper=29),
    "bmi": ColumnMeta("bmi", "decimal", lower=10, upper=50),
}
COUNT = (Aggregate("count_rows"),)


@pytest.fixture(scope="module")
def engine() -> DPEngine:
    return DPEngine()


@pytest.fixture
def frame() -> pl.DataFrame:
    """200 persons, one row each; length of stay 0..19 (none in the top bins), bmi 10..49.5."""
    return pl.DataFrame(
        {
            "person_id": [f"{i:032x}" for i in range(200)],
            "sex": ["F" if i % 2 else "M" for i in range(200)],
            "los": [i % 20 for i in range(200)],
            "bmi": [10 + (i % 80) / 2 for i in range(200)],
        }
    )


@pytest.fixture
def table(tmp_path: Path, frame: pl.DataFrame) -> TableMeta:
    frame.write_parquet(tmp_path / "h.parquet")
    return TableMeta(tmp_path / "h.parquet", contribution_bound=1, columns=COLUMNS)


def test_bins_are_public_and_cover_the_bounds() -> None:
    assert bin_edges(COLUMNS["los"], 3) == ([9.0, 19.0], ["0-9", "10-19", "20-29"])
    assert bin_edges(COLUMNS["bmi"], 4)[1] == ["[10, 20]", "(20, 30]", "(30, 40]", "(40, 50]"]
    # A range narrower than the bins asked for: one integer per bin.
    assert bin_edges(ColumnMeta("n", "integer", lower=0, upper=2), 10) == ([0.0, 1.0], ["0", "1", "2"])


def test_a_histogram_releases_every_bin_with_a_counts_noise(
    engine: DPEngine, table: TableMeta, frame: pl.DataFrame
) -> None:
    plan = engine.plan(Query(table, COUNT, group_by=("los",), bins=(("los", 3),), epsilon=Decimal(1)))
    assert plan.aggregates[0].noise_scale == pytest.approx(1.0, rel=1e-9)  # k/ε with k = 1
    exact = engine.plan(Query(table, COUNT, group_by=("los",), bins=(("los", 3),), epsilon=Decimal(10)))
    data = engine.release(exact).data
    assert data["los"].to_list() == ["0-9", "10-19", "20-29"]  # the empty top bin too
    # Discrete Laplace of scale 0.1: off by 2 or more with probability below e^-19.
    truth = [100, 100, 0]
    assert all(abs(got - n) < 2 for got, n in zip(data["count"], truth, strict=True))


def test_a_histogram_crossed_with_a_category_and_a_mean_of_the_binned_column(
    engine: DPEngine, table: TableMeta, frame: pl.DataFrame
) -> None:
    query = Query(
        table,
        (Aggregate("count_rows"), Aggregate("mean", "bmi")),
        group_by=("sex", "bmi"),
        bins=(("bmi", 2),),
        filters=(Filter("los", "<", 10),),
        epsilon=Decimal(1000),  # the noise is then far below the tolerance below
    )
    data = engine.release(engine.plan(query)).data
    assert data.select("sex", "bmi").rows() == [
        ("F", "[10, 30]"),
        ("F", "(30, 50]"),
        ("M", "[10, 30]"),
        ("M", "(30, 50]"),
    ]
    kept = frame.filter(pl.col("los") < 10).with_columns(
        pl.when(pl.col("bmi") <= 30).then(pl.lit("[10, 30]")).otherwise(pl.lit("(30, 50]")).alias("band")
    )
    for sex, band, mean in data.select("sex", "bmi", "mean_bmi").rows():
        cell = kept.filter((pl.col("sex") == sex) & (pl.col("band") == band))
        # The epsilon is split between the count and the mean's sum and count, so the sum's noise
        # scale is a few times 50 * 3 / 1000, over some 25 values: a mean off by 0.5 has a probability
        # below e^-15 (0.05, the tolerance first written here, was off once in CI: e^-8 was wrong).
        # The two bands' means are some 20 apart, so a mean in the wrong cell still fails.
        assert mean == pytest.approx(cell["bmi"].mean(), abs=0.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bins": (("los", 3),)}, "add los to group_by"),
        ({"group_by": ("sex",), "bins": (("sex", 3),)}, "Cannot bin sex"),
        ({"group_by": ("los",), "bins": (("los", 1),)}, "2 to 100 bins"),
        ({"group_by": ("los",), "bins": (("los", 101),)}, "2 to 100 bins"),
    ],
)
def test_histogram_refusals(
    engine: DPEngine, table: TableMeta, fields: dict[str, object], message: str
) -> None:
    query: dict[str, object] = {"table": table, "aggregates": COUNT} | fields
    with pytest.raises(ValueError, match=message):
        engine.plan(Query(**query))  # type: ignore[arg-type]
