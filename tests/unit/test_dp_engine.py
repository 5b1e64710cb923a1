"""The OpenDP engine: privacy maps, noise scales, public keys, refusals and interval coverage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import opendp.prelude as dp
import polars as pl
import pytest
from opendp.mod import GLOBAL_FEATURES

from enclave.dp.engine import (
    Aggregate,
    ColumnMeta,
    DPEngine,
    Filter,
    Query,
    TableMeta,
)

COLUMNS = {
    "sex": ColumnMeta("sex", "string", domain=("F", "M", "X")),
    "region": ColumnMeta("region", "string", domain=("north", "south")),
    "postcode": ColumnMeta("postcode", "string"),
    "los": ColumnMeta("los", "integer", lower=0, upper=100),
    "bmi": ColumnMeta("bmi", "decimal", lower=10, upper=50),
    "admitted": ColumnMeta("admitted", "date"),
}


def _pid(i: int) -> str:
    return f"{i:032x}"


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    schema = {
        "person_id": pl.String,
        "sex": pl.String,
        "region": pl.String,
        "postcode": pl.String,
        "los": pl.Int64,
        "bmi": pl.Float64,
        "admitted": pl.Date,
    }
    pl.DataFrame(rows, schema=schema, orient="row").write_parquet(path)
    return path


@pytest.fixture(scope="module")
def engine() -> DPEngine:
    return DPEngine()


@pytest.fixture
def table(tmp_path: Path) -> TableMeta:
    """60 persons, 2 rows each, none with sex X; person 0 has 5 extra rows."""
    rows: list[dict[str, object]] = []
    for i in range(60):
        for j in range(2):
            rows.append(
                {
                    "person_id": _pid(i),
                    "sex": "F" if i % 2 else "M",
                    "region": "north" if i % 3 else "south",
                    "postcode": f"AB{i % 7}",
                    "los": (i + j) % 30,
                    "bmi": 20.0 + (i % 10) + 0.25 * j,
                    "admitted": date(2020, 1, 1) + timedelta(days=10 * i + j),
                }
            )
    for j in range(5):
        rows.append(dict(rows[0], los=j))
    return TableMeta(_write(tmp_path / "t.parquet", rows), contribution_bound=2, columns=COLUMNS)


def _count_by_sex(table: TableMeta, epsilon: str = "1") -> Query:
    return Query(table, (Aggregate("count_rows"),), group_by=("sex",), epsilon=Decimal(epsilon))


def test_plan_accounts_at_most_the_requested_epsilon(engine: DPEngine, table: TableMeta) -> None:
    """The plan's ε comes from OpenDP's privacy map: at most, and within rounding of, the request."""
    for eps in ("0.1", "0.5", "1", "3"):
        plan = engine.plan(_count_by_sex(table, eps))
        assert plan.epsilon <= Decimal(eps)
        assert plan.epsilon >= Decimal(eps) * Decimal("0.999999")
        assert Decimal(repr(plan._measurement.map(1))) == plan.epsilon


def test_count_scale_is_contribution_bound_over_epsilon(engine: DPEngine, tmp_path: Path) -> None:
    """A count's Laplace scale is k/ε, as OpenDP's measurement says, for several k and ε."""
    path = _write(tmp_path / "k.parquet", [])
    for k in (1, 2, 5):
        for eps in ("0.25", "1", "2"):
            plan = engine.plan(_count_by_sex(TableMeta(path, k, COLUMNS), eps))
            scale = plan.aggregates[0].noise_scale
            assert scale == pytest.approx(k / float(eps), rel=1e-9)
            assert scale >= k / float(eps)  # never less noise than the privacy map requires
            assert plan.statistics[0].distribution == "Integer Laplace"


def test_scale_and_accuracy_agree_with_opendp_summarize(engine: DPEngine, table: TableMeta) -> None:
    """The plan's noise scale and 95% accuracy match OpenDP's own query.summarize(alpha=0.05)."""
    plan = engine.plan(_count_by_sex(table, "0.7"))
    context = dp.Context.compositor(
        data=pl.scan_parquet(table.path).select("person_id", "sex"),
        privacy_unit=dp.unit_of(contributions=1, identifier="person_id"),
        privacy_loss=dp.loss_of(epsilon=0.7),
        split_evenly_over=1,
        margins=[dp.polars.Margin(by=(), max_length=10**9)],
    )
    query = (
        context.query()
        .truncate_per_group(table.contribution_bound)
        .group_by("sex")
        .agg(dp.len(signed=True))
        .with_keys(pl.DataFrame({"sex": ["F", "M", "X"]}))
    )
    summary = query.summarize(alpha=0.05)
    assert plan.aggregates[0].noise_scale == pytest.approx(summary["scale"][0], rel=1e-9)
    assert plan.aggregates[0].accuracy == pytest.approx(summary["accuracy"][0], rel=1e-9)


def test_sum_and_mean_share_the_sum(engine: DPEngine, table: TableMeta) -> None:
    """sum(x) and mean(x) spend on one noisy sum and one noisy count, ε split evenly by OpenDP."""
    query = Query(
        table,
        (Aggregate("sum", "los"), Aggregate("mean", "los")),
        group_by=("region",),
        epsilon=Decimal("1"),
    )
    plan = engine.plan(query)
    assert [s.name for s in plan.statistics] == ["sum(los)", "count(los)"]
    k, eps_each = table.contribution_bound, 0.5
    scales = {s.name: s.scale for s in plan.statistics}
    assert scales["sum(los)"] == pytest.approx(k * 100 / eps_each, rel=1e-9)
    assert scales["count(los)"] == pytest.approx(k / eps_each, rel=1e-9)
    assert plan.noise_scales == {"sum_los": scales["sum(los)"], "mean_los": scales["sum(los)"]}
    assert plan.aggregates[1].accuracy is None  # a mean's half-width is given per group


def test_decimal_sum_is_fixed_point_with_exact_sensitivity(engine: DPEngine, table: TableMeta) -> None:
    """A decimal sum is noised as a fixed-point integer: scale k·max|bound|/ε, not inflated by floats."""
    plan = engine.plan(Query(table, (Aggregate("sum", "bmi"),), epsilon=Decimal("1")))
    assert plan.statistics[0].distribution == "Integer Laplace"
    assert plan.aggregates[0].noise_scale == pytest.approx(2 * 50 / 1, rel=1e-9)


def test_every_public_key_appears_even_without_rows(engine: DPEngine, table: TableMeta) -> None:
    """All key combinations of the public domains are released in domain order, including empty ones."""
    query = Query(
        table,
        (Aggregate("count_rows"), Aggregate("sum", "los"), Aggregate("mean", "bmi"), Aggregate("sum", "bmi")),
        group_by=("sex", "region"),
    )
    release = engine.release(engine.plan(query))
    keys = release.data.select("sex", "region").rows()
    assert keys == [(s, r) for s in ("F", "M", "X") for r in ("north", "south")]
    assert release.data.columns == [
        "sex",
        "region",
        "count",
        "count_ci95",
        "sum_los",
        "sum_los_ci95",
        "mean_bmi",
        "mean_bmi_ci95",
        "sum_bmi",
        "sum_bmi_ci95",
    ]
    assert release.data.schema["count"] == pl.Int64
    assert release.data.schema["sum_los"] == pl.Int64  # integers stay integers
    assert release.data.schema["sum_bmi"] == pl.Float64
    assert release.data["mean_bmi"].is_between(10, 50).all()  # post-processed into the bounds
    assert release.data.null_count().sum_horizontal().item() == 0
    assert release.noise_scales["count"] == pytest.approx(2 / (1 / 4), rel=1e-9)


def test_filters_truncation_and_mean_with_negligible_noise(engine: DPEngine, table: TableMeta) -> None:
    """With ε = 10^4 the noise is below rounding, so filters (dates, 'in') and truncation show through."""
    query = Query(
        table,
        (Aggregate("count_rows"), Aggregate("mean", "los")),
        group_by=("sex",),
        filters=(
            Filter("admitted", "<", date(2020, 1, 1) + timedelta(days=300)),
            Filter("region", "in", ["north", "south"]),
            Filter("sex", "!=", "X"),
        ),
        epsilon=Decimal(10_000),
    )
    data = engine.release(engine.plan(query)).data
    # persons 0..29 qualify (2 rows each; person 0's 7 rows are truncated to 2): 15 F, 15 M.
    assert data.select("sex", "count").rows() == [("F", 30), ("M", 30), ("X", 0)]
    truth = (
        pl.read_parquet(table.path)
        .filter(pl.col("person_id").is_in([_pid(i) for i in range(1, 30, 2)]))
        .get_column("los")
        .mean()
    )
    assert data["mean_los"][0] == pytest.approx(truth, abs=1e-3)


@pytest.mark.parametrize(
    ("query_kwargs", "message"),
    [
        ({"aggregates": (Aggregate("sum", "nope"),)}, "no such column"),
        ({"group_by": ("nope",)}, "no such column"),
        ({"filters": (Filter("nope", "==", 1),)}, "no such column"),
        ({"group_by": ("postcode",)}, "no public domain"),
        ({"aggregates": (Aggregate("sum", "sex"),)}, "not numeric"),
        ({"aggregates": (Aggregate("mean", "admitted"),)}, "not numeric"),
        ({"aggregates": (Aggregate("count_rows", "los"),)}, "takes no column"),
        ({"aggregates": ()}, "at least one aggregate"),
        ({"filters": (Filter("los", ">", "ten"),)}, "does not match"),
        ({"filters": (Filter("sex", "in", []),)}, "non-empty list"),
        ({"epsilon": Decimal(0)}, "positive"),
    ],
)
def test_refusals_raise_value_error_with_a_sentence(
    engine: DPEngine, table: TableMeta, query_kwargs: dict[str, object], message: str
) -> None:
    """Invalid queries are refused before any data is touched, with a readable sentence."""
    fields: dict[str, object] = {"table": table, "aggregates": (Aggregate("count_rows"),)}
    fields.update(query_kwargs)
    with pytest.raises(ValueError, match=message) as info:
        engine.plan(Query(**fields))  # type: ignore[arg-type]
    text = str(info.value)
    assert text[0].isupper()
    assert text.endswith(".")
    assert " " in text


def test_planning_reads_no_rows(engine: DPEngine, table: TableMeta, monkeypatch: pytest.MonkeyPatch) -> None:
    """plan() only reads the Parquet schema: collecting any frame during planning would fail."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("plan() collected data")

    with monkeypatch.context() as patch:
        patch.setattr(pl.LazyFrame, "collect", refuse)
        patch.setattr(pl, "read_parquet", refuse)
        plan = engine.plan(_count_by_sex(table))
    assert engine.release(plan).data.height == 3


def test_repeated_plan_reuses_the_solved_scale(engine: DPEngine, table: TableMeta) -> None:
    """A repeated query shape takes its scale from the cache, still checked by OpenDP."""
    first = engine.plan(_count_by_sex(table, "0.3"))
    second = engine.plan(_count_by_sex(table, "0.3"))
    assert second.scale_from_cache
    assert second.noise_scales == first.noise_scales
    assert second._measurement.check(1, 0.3)


def test_a_plan_is_released_only_once(engine: DPEngine, table: TableMeta) -> None:
    """The plan's OpenDP compositor holds one query's budget: a second release is refused."""
    plan = engine.plan(_count_by_sex(table))
    engine.release(plan)
    with pytest.raises(RuntimeError, match="already been released"):
        engine.release(plan)


def test_engine_enables_only_contrib(engine: DPEngine) -> None:
    """Constructing the engine enables "contrib" and none of the features that weaken guarantees."""
    assert "contrib" in GLOBAL_FEATURES
    assert not {"honest-but-curious", "floating-point", "idealized-numerics"} & GLOBAL_FEATURES


def test_engine_refuses_unsafe_features_in_a_subprocess() -> None:
    """With "floating-point" or "honest-but-curious" enabled, DPEngine() raises RuntimeError."""
    script = textwrap.dedent(
        """
        import warnings
        import opendp.prelude as dp
        from enclave.dp.engine import DPEngine

        warnings.simplefilter("ignore", DeprecationWarning)
        for feature in ("floating-point", "honest-but-curious"):
            dp.enable_features(feature)
            try:
                DPEngine()
            except RuntimeError as exc:
                assert "refuses" in str(exc), exc
                print("refused", feature)
            else:
                raise SystemExit(f"engine started with {feature}")
            dp.disable_features(feature)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "floating-point", "refused", "honest-but-curious"]


def test_ninety_five_percent_intervals_cover_at_about_their_rate(engine: DPEngine, tmp_path: Path) -> None:
    """Over 200 releases a count's 95% interval covers the truth 90-99% of the time, a mean's >= 90%."""
    rows: list[dict[str, object]] = [
        {
            "person_id": _pid(i),
            "sex": ("F", "M", "X")[i % 3],
            "region": "north",
            "postcode": "AB1",
            "los": i % 50,
            "bmi": 25.0,
            "admitted": date(2020, 1, 1),
        }
        for i in range(300)
    ]
    table = TableMeta(_write(tmp_path / "c.parquet", rows), contribution_bound=1, columns=COLUMNS)
    truth = pl.DataFrame(rows).group_by("sex").agg(pl.len().alias("n"), pl.col("los").mean().alias("m"))
    true_n = dict(truth.select("sex", "n").rows())
    true_m = dict(truth.select("sex", "m").rows())
    query = Query(
        table, (Aggregate("count_rows"), Aggregate("mean", "los")), group_by=("sex",), epsilon=Decimal("0.2")
    )
    hits_n = hits_m = total = 0
    for _ in range(200):
        data = engine.release(engine.plan(query)).data
        for sex, n, n_ci, m, m_ci in data.select(
            "sex", "count", "count_ci95", "mean_los", "mean_los_ci95"
        ).rows():
            total += 1
            hits_n += abs(n - true_n[sex]) <= n_ci
            hits_m += abs(m - true_m[sex]) <= m_ci
    assert 0.90 <= hits_n / total <= 0.99
    assert hits_m / total >= 0.90


def test_scale_search_falls_back_to_opendp_binary_search() -> None:
    """When the privacy map is not inversely proportional to the scale, OpenDP's binary search decides."""
    from enclave.dp.engine import _solve_scale

    class Fake:
        def __init__(self, scale: float) -> None:
            self.scale = scale

        def map(self, d_in: int) -> float:
            return d_in / self.scale**2

        def check(self, d_in: int, d_out: float) -> bool:
            return self.map(d_in) <= d_out

    scale = _solve_scale(Fake, 1, 0.25)
    assert scale == pytest.approx(2.0, rel=1e-6)
    assert Fake(scale).check(1, 0.25)


def test_median_is_planned_within_epsilon(engine: DPEngine, table: TableMeta) -> None:
    """A median (with a count) is calibrated by OpenDP's privacy map to at most the requested ε."""
    for eps in ("0.5", "2"):
        query = Query(
            table,
            (Aggregate("count_rows"), Aggregate("median", "los")),
            group_by=("sex",),
            epsilon=Decimal(eps),
        )
        plan = engine.plan(query)
        assert plan.aggregates[1].name == "median_los"
        assert Decimal(0) < plan.epsilon <= Decimal(eps)
        assert plan.epsilon >= Decimal(eps) * Decimal("0.999999")
        assert Decimal(repr(plan._measurement.map(1))) == plan.epsilon
        assert plan._measurement.check(1, float(eps))
        median = plan.statistics[1]
        assert median.name == "median(los)"
        assert median.accuracy is None  # OpenDP's summarize gives no accuracy for a quantile
        assert plan.aggregates[1].accuracy is None
        assert plan.aggregates[1].noise_scale == median.scale > 0


def test_median_release_has_every_key_within_bounds(engine: DPEngine, table: TableMeta) -> None:
    """A released median has a row for every public key, values within the bounds and a null ci95."""
    query = Query(
        table,
        (Aggregate("median", "los"), Aggregate("median", "bmi")),
        group_by=("sex", "region"),
        epsilon=Decimal(1),
    )
    data = engine.release(engine.plan(query)).data
    assert data.select("sex", "region").rows() == [
        (s, r) for s in ("F", "M", "X") for r in ("north", "south")
    ]
    assert data.columns == ["sex", "region", "median_los", "median_los_ci95", "median_bmi", "median_bmi_ci95"]
    assert data.schema["median_los"] == pl.Int64
    assert data["median_los"].is_between(0, 100).all()
    assert data["median_bmi"].is_between(10, 50).all()
    assert data.select("median_los", "median_bmi").null_count().sum_horizontal().item() == 0
    assert data["median_los_ci95"].is_null().all()


def _spread(n: int) -> list[dict[str, object]]:
    """One row per person, ``los`` and ``bmi`` spread evenly over most of their bounds."""
    return [
        {
            "person_id": _pid(i),
            "sex": ("F", "M")[i % 2],
            "region": "north",
            "postcode": "AB1",
            "los": (i * 37) % 71,
            "bmi": 10 + ((i * 7919) % 1000) * 0.03,
            "admitted": date(2020, 1, 1),
        }
        for i in range(n)
    ]


def test_median_is_close_to_the_truth_with_generous_epsilon(engine: DPEngine, tmp_path: Path) -> None:
    """On 5000 persons with ε = 5 the DP median is within 5% of the range of the true median."""
    n = 5000
    rows = _spread(n)
    table = TableMeta(_write(tmp_path / "m.parquet", rows), contribution_bound=1, columns=COLUMNS)
    query = Query(table, (Aggregate("median", "los"), Aggregate("median", "bmi")), epsilon=Decimal(5))
    data = engine.release(engine.plan(query)).data
    truth = pl.DataFrame(rows)
    assert data["median_los"][0] == pytest.approx(truth["los"].median(), abs=0.05 * 100)
    assert data["median_bmi"][0] == pytest.approx(truth["bmi"].median(), abs=0.05 * 40)


def test_median_of_a_string_column_is_refused(engine: DPEngine, table: TableMeta) -> None:
    """A median of a string column is refused with a ValueError before planning."""
    with pytest.raises(ValueError, match="not numeric"):
        engine.plan(Query(table, (Aggregate("median", "sex"),)))


def test_quartiles_are_close_to_the_truth_and_planned_within_epsilon(
    engine: DPEngine, tmp_path: Path
) -> None:
    """OpenDP's DPExpr.quantile at 0.25 and 0.75 (the median's exponential mechanism at another level;
    its scores' sensitivity grows away from 0.5, and OpenDP's privacy map accounts for it): near the
    true quartiles with a generous ε, named p25_/p75_, ordered, and planned within ε."""
    n = 5000
    rows = _spread(n)
    table = TableMeta(_write(tmp_path / "q.parquet", rows), contribution_bound=1, columns=COLUMNS)
    quartiles = (Aggregate("quantile", "los", 0.25), Aggregate("quantile", "los", 0.75))
    plan = engine.plan(Query(table, quartiles, epsilon=Decimal(5)))
    assert plan.epsilon <= Decimal(5)
    assert [a.name for a in plan.aggregates] == ["p25_los", "p75_los"]
    assert all(a.noise_scale > 0 and a.accuracy is None for a in plan.aggregates)
    data = engine.release(plan).data
    truth = pl.DataFrame(rows)["los"]
    assert data["p25_los"][0] == pytest.approx(truth.quantile(0.25), abs=0.05 * 100)
    assert data["p75_los"][0] == pytest.approx(truth.quantile(0.75), abs=0.05 * 100)
    assert data["p25_los"][0] < data["p75_los"][0]
    with pytest.raises(ValueError, match="between 0 and 1"):
        engine.plan(Query(table, (Aggregate("quantile", "los", 1.5),)))
    with pytest.raises(ValueError, match="needs its level"):
        engine.plan(Query(table, (Aggregate("quantile", "los"),)))
