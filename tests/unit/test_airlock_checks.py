"""Automated disclosure checks: for each rule a table that must fail it and one that must pass."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from PIL import Image

from enclave.airlock.checks import (
    Ledger,
    check_file_type,
    count_columns,
    read_table,
    run_checks,
    with_policy_override,
)
from enclave.airlock.files import intake
from enclave.domain.errors import InvalidInput
from enclave.domain.outputs.checks import (
    DEFAULT_POLICY,
    RECORD_SCHEMA,
    CheckContext,
    Contributions,
    Policy,
    Rounding,
    Status,
    TableSpec,
)
from enclave.domain.outputs.files import FileKind, SanitisedFile
from enclave.domain.queries.plans import AggregateSpec, QueryPlan, Release


def release(values: list[dict[str, object]], group_by: tuple[str, ...] = ("year",)) -> Release:
    plan = QueryPlan(
        dataset="hospital",
        aggregates=[AggregateSpec(kind="count_rows"), AggregateSpec(kind="mean", column="age")],
        group_by=list(group_by),
        epsilon=Decimal("0.5"),
    )
    return Release(
        id=1,
        project_id=3,
        dataset="hospital",
        dataset_version=1,
        fingerprint="f" * 64,
        plan=plan,
        epsilon=Decimal("0.5"),
        delta=Decimal(0),
        mechanism="laplace",
        noise_scales={},
        values=values,
        accuracy={},
        author="alice",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


LEDGER = (
    release(
        [
            {"year": 2020, "count": 123, "mean_age": 54.3456},
            {"year": 2021, "count": 457, "mean_age": 61.0},
            {"year": 2022, "count": 120, "mean_age": float("nan")},
        ]
    ),
    1000,
    1004,
)


def table(text: str, name: str = "t.csv") -> SanitisedFile:
    return intake(name, text.encode())


def status(
    text: str, rule: str, context: CheckContext | None = None, spec: TableSpec | None = None, **policy: object
) -> Status:
    p = Policy(**policy) if policy else DEFAULT_POLICY  # type: ignore[arg-type]
    return run_checks(table(text), context or CheckContext(released=LEDGER), spec, p).result(rule).status


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (2, 2)).save(out, "PNG")
    return out.getvalue()


# --- file type and intake -------------------------------------------------------------------------


def test_file_type_fails_when_the_content_is_not_what_the_name_says() -> None:
    assert check_file_type("t.csv", b"year,count\n2020,123\n", FileKind.CSV).status is Status.PASS
    assert check_file_type("t.csv", png(), FileKind.CSV).status is Status.FAIL
    lying = check_file_type("t.json", b"a,b\n1,2\n", FileKind.JSON)
    assert lying.status is Status.FAIL
    assert lying.message == "t.json is named as json but its content is csv"
    assert "not a type the airlock accepts" in check_file_type("x.png", b"\x00\x01", FileKind.PNG).message
    assert check_file_type("n.md", b"# Title\n", FileKind.MARKDOWN).status is Status.PASS


def test_intake_warns_when_formulas_were_neutralised() -> None:
    assert status("year,count\n2020,123\n", "intake") is Status.PASS
    assert status("label,count\n=cmd(),123\n", "intake") is Status.WARN


def test_figures_and_text_warn_for_manual_review_and_skip_table_rules() -> None:
    record = run_checks(intake("figure.png", png()))
    assert [r.rule for r in record.results] == ["file_type", "intake", "manual_review"]
    assert record.status is Status.WARN
    assert "figures cannot be checked automatically" in record.result("manual_review").message
    assert "free text" in run_checks(intake("n.txt", b"hello")).result("manual_review").message


# --- row-level data -------------------------------------------------------------------------------


def test_too_many_rows() -> None:
    rows = "".join(f"{2000 + i},1000\n" for i in range(6))
    assert status("year,count\n" + rows, "row_level.too_many_rows", max_table_rows=5) is Status.FAIL
    assert status("year,count\n" + rows, "row_level.too_many_rows", max_table_rows=6) is Status.PASS


@pytest.mark.parametrize(
    "text",
    [
        "patient_id,count\n1,1000\n",
        "PatientId,count\nA,1000\n",
        "nhs_number,count\n1,1000\n",
        "date_of_birth,count\n1970-01-01,1000\n",
        "surname,count\nX,1000\n",
        "group,count\n" + "".join(f"{'ab' * 16}{i:032x},1000\n" for i in range(2)),
        "code,count\n" + "".join(f"AB{i:06d}X,1000\n" for i in range(20)),
    ],
)
def test_identifier_columns_fail(text: str) -> None:
    """By name, by hash-like values, or by a distinct token on every row."""
    assert status(text, "row_level.identifier_column") is Status.FAIL


def test_ordinary_columns_are_not_identifiers() -> None:
    """Category labels, bands, counts named after people, and a daily series are not identifiers."""
    text = "region_name,age_band,patient_count,year,day\n" + "".join(
        f"R{i},{i}0-{i}9,1000,{2000 + i},2026-01-{i + 1:02d}\n" for i in range(25)
    )
    assert status(text, "row_level.identifier_column") is Status.PASS


def test_known_pseudonyms_fail_wherever_they_appear_and_are_not_repeated_in_the_message() -> None:
    pseudo = "9f" * 16
    context = CheckContext(pseudonyms=frozenset({pseudo}), released=LEDGER)
    record = run_checks(table(f"label,count\nx,1000\n{pseudo},1000\n"), context)
    result = record.result("row_level.pseudonym")
    assert result.status is Status.FAIL
    assert result.cells == ((2, "label"),)
    assert pseudo not in result.message
    assert pseudo not in record.to_json()
    clean = run_checks(table("label,count\nx,1000\n"), context).result("row_level.pseudonym")
    assert clean.status is Status.PASS


# --- small counts ---------------------------------------------------------------------------------


def test_small_counts_fail_zeros_warn_and_large_counts_pass() -> None:
    assert status("year,count\n2020,123\n2021,3\n", "small_counts") is Status.FAIL
    assert status("year,count\n2020,123\n2021,-2\n", "small_counts") is Status.FAIL  # noisy count
    assert status("year,count\n2020,123\n2021,0\n", "small_counts") is Status.WARN
    assert status("year,count\n2020,123\n2021,10\n", "small_counts") is Status.PASS


def test_a_stricter_threshold_applies_but_a_laxer_one_does_not() -> None:
    text = "year,count\n2020,123\n2021,11\n"
    assert status(text, "small_counts", CheckContext(min_count=12)) is Status.FAIL
    laxer = run_checks(table("year,count\n2020,7\n"), CheckContext(min_count=5))
    assert laxer.threshold == 10
    assert laxer.result("small_counts").status is Status.FAIL


def test_count_columns_declared_by_name_or_by_whole_numbers() -> None:
    by_name = read_table(table("year,n_patients,mean_age\n2020,123,4.5\n"))
    assert count_columns(by_name) == ("n_patients",)
    fallback = read_table(table("year,patients,mean_age\n2020,123,4.5\n"))
    assert count_columns(fallback) == ("year", "patients")
    assert count_columns(fallback, ["patients"]) == ("patients",)
    with pytest.raises(InvalidInput, match="declared count column\\(s\\) missing"):
        count_columns(fallback, ["missing"])
    # a declared column is the only one read: the small mean is not a count
    spec = TableSpec(count_columns=("patients",))
    assert status("year,patients,mean_age\n2020,123,4.5\n", "small_counts", spec=spec) is Status.PASS


# --- dominance and p-ratio ------------------------------------------------------------------------

COST = "region,total_cost\nnorth,100\nsouth,200\n"


def test_dominance_fails_when_two_contributors_make_up_most_of_a_total() -> None:
    dominated = TableSpec(contributions=(Contributions("total_cost", ((95.0, 3.0), (50.0, 40.0, 30.0))),))
    record = run_checks(table(COST), CheckContext(), dominated)
    assert record.result("dominance").status is Status.FAIL
    assert record.result("dominance").cells == ((1, "total_cost"),)
    spread = TableSpec(contributions=(Contributions("total_cost", ((40.0, 30.0), (50.0, 40.0))),))
    assert run_checks(table(COST), CheckContext(), spread).result("dominance").status is Status.PASS
    assert "does not apply" in run_checks(table(COST)).result("dominance").message


def test_p_ratio_fails_when_the_rest_is_too_small_to_hide_the_largest() -> None:
    exposed = TableSpec(contributions=(Contributions("total_cost", ((50.0, 46.0), (50.0, 40.0))),))
    assert run_checks(table(COST), CheckContext(), exposed).result("p_ratio").status is Status.FAIL
    boundary = TableSpec(contributions=(Contributions("total_cost", ((50.0, 45.0), (50.0, 40.0))),))
    record = run_checks(table(COST), CheckContext(), boundary)
    assert record.result("p_ratio").status is Status.PASS  # 5 left, exactly p * 50: not below
    assert record.result("dominance").status is Status.FAIL  # 95 of 100 > 90%


def test_contributions_must_match_the_table() -> None:
    with pytest.raises(InvalidInput, match="'cost', which is not a column"):
        run_checks(table(COST), spec=TableSpec(contributions=(Contributions("cost", ((1.0,), (1.0,))),)))
    with pytest.raises(InvalidInput, match="cover 1 rows; the table has 2"):
        run_checks(table(COST), spec=TableSpec(contributions=(Contributions("total_cost", ((1.0,),)),)))


# --- provenance -----------------------------------------------------------------------------------


def test_provenance_passes_for_released_values_keys_and_display_rounding() -> None:
    """Counts, group keys, plain numbers and a mean shown with 2 decimals all trace to the ledger."""
    text = "year,count,mean_age,total\n2020,123,54.35,1000\n2021,457,61.0,1004\n"
    assert status(text, "provenance") is Status.PASS


def test_provenance_fails_for_a_number_the_project_never_released() -> None:
    record = run_checks(table("year,count\n2020,123\n2021,999\n"), CheckContext(released=LEDGER))
    result = record.result("provenance")
    assert result.status is Status.FAIL
    assert result.cells == ((2, "count"),)
    assert "1 of 4 number(s)" in result.message
    assert "not rounded" in result.message
    assert status("year,count\n2020,124\n", "provenance") is Status.FAIL


@pytest.mark.parametrize(
    ("rounding", "shown", "traced"),
    [
        (Rounding(base=5), "125", True),  # 123 -> 125
        (Rounding(base=10), "460", True),  # 457 -> 460
        (Rounding(base=5), "130", False),
        (Rounding(significant=2), "120", True),  # 123 -> 120
        (Rounding(significant=2), "4.6e2", True),  # 457 -> 460, written in scientific notation
        (Rounding(significant=2), "450", False),
        (Rounding(decimals=1), "54.3", True),
        (Rounding(), "125", False),
    ],
)
def test_provenance_allows_the_declared_rounding(rounding: Rounding, shown: str, traced: bool) -> None:
    spec = TableSpec(rounding=rounding)
    result = status(f"year,count\n2020,{shown}\n", "provenance", spec=spec)
    assert result is (Status.PASS if traced else Status.FAIL)


def test_provenance_with_no_ledger_fails_every_number_and_passes_a_table_without_numbers() -> None:
    assert status("year,count\n2020,123\n", "provenance", CheckContext()) is Status.FAIL
    assert status("sex,band\nF,young\n", "provenance", CheckContext()) is Status.PASS


# --- differencing ---------------------------------------------------------------------------------


def test_differencing_fails_for_a_small_difference_of_two_releases() -> None:
    """1004 - 1000 = 4 and 123 - 120 = 3 are below the threshold; 5 differs from every pair."""
    failing = run_checks(table("group,excluded\na,4\nb,3\n"), CheckContext(released=LEDGER))
    result = failing.result("differencing")
    assert result.status is Status.FAIL
    assert result.cells == ((1, "excluded"), (2, "excluded"))
    assert status("group,excluded\na,5\n", "differencing") is Status.PASS
    assert status("group,excluded\na,4\n", "differencing", CheckContext(released=(1000, 1020))) is Status.PASS


def test_differencing_skips_numbers_that_are_themselves_released() -> None:
    assert status("group,value\na,4\n", "differencing", CheckContext(released=(4, 1000, 1004))) is Status.PASS


def test_ledger_reads_releases_and_plain_numbers() -> None:
    ledger = Ledger.of([*LEDGER, float("inf"), Decimal("2.5"), True])
    assert Decimal("123") in ledger.aggregates
    assert Decimal("54.3456") in ledger.aggregates
    assert Decimal("2020") in ledger.keys
    assert Decimal("2020") not in ledger.aggregates
    assert Decimal("2.5") in ledger.aggregates
    assert len(ledger.aggregates) == 8
    assert ledger.small_differences(10) == {Decimal(3), Decimal(4), Decimal("6.6544")}


# --- policy and record ----------------------------------------------------------------------------


def test_the_record_is_machine_readable_and_carries_the_policy() -> None:
    """The record names the policy version and values, the threshold, the rounding and each result."""
    record = run_checks(
        table("year,count\n2020,3\n"), CheckContext(released=LEDGER), TableSpec(rounding=Rounding(base=5))
    )
    data = json.loads(record.to_json())
    assert data["schema"] == RECORD_SCHEMA
    assert data["policy"]["version"] == DEFAULT_POLICY.version
    assert data["policy"]["dominance_k"] == 0.9
    assert data["policy"]["p_ratio"] == 0.1
    assert data["rounding"] == {"base": 5, "significant": None, "decimals": None}
    assert data["status"] == "fail"
    assert data["small_count_threshold"] == 10
    assert {r["rule"] for r in data["results"]} >= {"small_counts", "provenance", "differencing", "dominance"}
    assert record.failed_rules == {"small_counts", "provenance", "differencing"}
    with pytest.raises(KeyError):
        record.result("nope")


def test_policy_and_rounding_refuse_nonsense() -> None:
    with pytest.raises(InvalidInput, match="positive"):
        Policy(small_count_threshold=0)
    with pytest.raises(InvalidInput, match="dominance k"):
        Policy(dominance_k=1.5)
    with pytest.raises(InvalidInput, match="declare one rounding"):
        Rounding(base=5, decimals=1)
    with pytest.raises(InvalidInput, match="at least 1"):
        Rounding(base=0)
    with pytest.raises(InvalidInput, match="between 0 and 12"):
        Rounding(decimals=20)
    with pytest.raises(InvalidInput, match="new version string"):
        with_policy_override(DEFAULT_POLICY, small_count_threshold=20)
    stricter = with_policy_override(DEFAULT_POLICY, version="2026.2", small_count_threshold=20)
    assert stricter.threshold() == 20
    assert stricter.threshold(30) == 30
    with pytest.raises(InvalidInput, match="not a table"):
        read_table(intake("n.txt", b"hi"))


def test_a_safe_table_passes_every_rule() -> None:
    """A released, rounded, large-count aggregate table passes everything."""
    record = run_checks(
        table("year,count,mean_age\n2020,125,54.3\n2021,455,61.0\n"),
        CheckContext(pseudonyms=frozenset({"ab" * 32}), released=LEDGER),
        TableSpec(rounding=Rounding(base=5)),
    )
    failing = {r.rule: r.message for r in record.results if r.status is not Status.PASS}
    # 54.3 / 61.0 are display-rounded means, 125 / 455 are base-5 roundings of 123 / 457
    assert failing == {}, failing
    assert record.status is Status.PASS
    assert record.failed_rules == frozenset()
