"""The synthetic population: determinism, NHS numbers, documented faults, dependencies, code lists."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import polars as pl
import pytest

import enclave.synth as synth
from enclave.domain.errors import InvalidInput
from enclave.synth import (
    CODELISTS_DIR,
    FILE_NAMES,
    SynthSummary,
    codes,
    generate,
    icd10_chapter,
    is_valid_nhs_number,
    nhs_check_digit,
    writer,
)

PERSONS = 20_000
SEED = 11

SCHEMAS: dict[str, dict[str, type[pl.DataType]]] = {
    "demographics": {
        "nhs_number": pl.String,
        "given_name": pl.String,
        "family_name": pl.String,
        "date_of_birth": pl.Date,
        "sex": pl.String,
        "postcode": pl.String,
        "region": pl.String,
        "deprivation_quintile": pl.Int64,
    },
    "admissions": {
        "nhs_number": pl.String,
        "admission_id": pl.String,
        "admission_date": pl.Date,
        "icd10_code": pl.String,
        "icd10_chapter": pl.String,
        "length_of_stay_days": pl.Int64,
        "cost_gbp": pl.Int64,
    },
    "prescriptions": {
        "nhs_number": pl.String,
        "prescription_id": pl.String,
        "prescribed_date": pl.Date,
        "drug_class": pl.String,
        "drug_name": pl.String,
        "quantity": pl.Int64,
    },
    "lab_results": {
        "nhs_number": pl.String,
        "test_code": pl.String,
        "result_value": pl.Float64,
        "unit": pl.String,
        "sample_date": pl.Date,
    },
    "deaths": {"nhs_number": pl.String, "date_of_death": pl.Date, "underlying_cause_icd10": pl.String},
    "opt_outs": {"nhs_number": pl.String},
}
EVENT_SOURCES = ("admissions", "prescriptions", "lab_results", "deaths")
EVENT_DATES = {
    "admissions": "admission_date",
    "prescriptions": "prescribed_date",
    "lab_results": "sample_date",
    "deaths": "date_of_death",
}


def read(directory: Path, name: str, fmt: str = "csv") -> pl.DataFrame:
    if fmt == "parquet":
        return pl.read_parquet(directory / f"{name}.parquet")
    return pl.read_csv(directory / f"{name}.csv", schema=SCHEMAS[name])


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def invalid_share(numbers: pl.Series) -> float:
    counts = numbers.value_counts()
    bad: int = sum(n for s, n in counts.iter_rows() if not is_valid_nhs_number(s))
    return bad / numbers.len()


def mean(values: pl.Series) -> float:
    """The mean of a numeric or boolean series, as a float."""
    result = values.cast(pl.Float64).mean()
    assert isinstance(result, float)
    return result


def median(values: pl.Series) -> float:
    result = values.median()
    assert isinstance(result, float)
    return result


def codelist(name: str) -> pl.DataFrame:
    return pl.read_csv(CODELISTS_DIR / name, infer_schema=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthSummary, Path]:
    out = tmp_path_factory.mktemp("synth")
    return generate(PERSONS, SEED, out), out


@pytest.fixture(scope="module")
def data(run: tuple[SynthSummary, Path]) -> dict[str, pl.DataFrame]:
    return {name: read(run[1], name) for name in FILE_NAMES}


@pytest.fixture(scope="module")
def people(data: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Registered people with age at the reference date, a diabetes marker (metformin) and death."""
    on_metformin = data["prescriptions"].filter(pl.col("drug_class") == "biguanide")["nhs_number"]
    dead = data["deaths"]["nhs_number"]
    age = ((pl.lit(synth.REFERENCE_DATE) - pl.col("date_of_birth")).dt.total_days() / 365.25).floor()
    return data["demographics"].with_columns(
        age=age,
        diabetic=pl.col("nhs_number").is_in(on_metformin.implode()),
        dead=pl.col("nhs_number").is_in(dead.implode()),
    )


def small_run(tmp_path: Path, name: str, seed: int, fmt: str = "csv") -> Path:
    out = tmp_path / name
    generate(3_000, seed, out, fmt="parquet" if fmt == "parquet" else "csv")
    return out


# --- determinism and formats -----------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same (persons, seed) gives identical bytes across several chunks; a new seed changes every file."""
    monkeypatch.setattr(writer, "CHUNK_PERSONS", 1_000)
    first, again = small_run(tmp_path, "a", 5), small_run(tmp_path, "b", 5)
    other = small_run(tmp_path, "c", 6)
    assert digests(first) == digests(again)
    assert sorted(digests(first)) == sorted(f"{n}.csv" for n in FILE_NAMES)
    assert all(digests(first)[n] != digests(other)[n] for n in digests(first))


def test_parquet_is_deterministic_and_holds_the_same_data_as_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parquet output (merged from several chunks) is byte-stable and equal, value for value, to the CSV."""
    monkeypatch.setattr(writer, "CHUNK_PERSONS", 1_000)
    csv, pq = small_run(tmp_path, "csv", 5), small_run(tmp_path, "pq", 5, "parquet")
    assert digests(pq) == digests(small_run(tmp_path, "pq2", 5, "parquet"))
    for name in FILE_NAMES:
        from_parquet = read(pq, name, "parquet")
        assert dict(from_parquet.schema) == SCHEMAS[name], name
        assert from_parquet.equals(read(csv, name)), name


def test_summary_counts_rows_and_progress_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary's row counts match the files, progress reaches its totals, and no work files remain."""
    monkeypatch.setattr(writer, "CHUNK_PERSONS", 1_000)
    calls: list[tuple[str, int, int]] = []
    summary = generate(2_500, 1, tmp_path, progress=lambda *call: calls.append(call))
    assert summary.persons == 2_500
    assert summary.files == {f"{n}.csv": read(tmp_path, n).height for n in FILE_NAMES}
    assert summary.files["demographics.csv"] == 2_500
    assert [c for c in calls if c[0] == "generate"] == [
        ("generate", 0, 2_500),
        ("generate", 1_000, 2_500),
        ("generate", 2_000, 2_500),
        ("generate", 2_500, 2_500),
    ]
    assert [c for c in calls if c[0] == "write"][-1] == ("write", 6, 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(summary.files)


def test_a_single_person_still_gives_six_files_with_headers(tmp_path: Path) -> None:
    """The smallest population writes every file, with its header even when it has no rows."""
    summary = generate(1, 0, tmp_path / "new" / "dir")
    assert summary.files["demographics.csv"] == 1
    for name in FILE_NAMES:
        assert read(tmp_path / "new" / "dir", name).columns == list(SCHEMAS[name])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"persons": 0}, "between 1 and 50,000,000"),
        ({"persons": -5}, "between 1 and 50,000,000"),
        ({"persons": 50_000_001}, "between 1 and 50,000,000"),
        ({"persons": 2.5}, "whole number"),
        ({"persons": True}, "whole number"),
        ({"seed": -1}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"fmt": "xlsx"}, "csv or parquet"),
    ],
)
def test_bad_arguments_raise_invalid_input(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    """Out-of-range or mistyped arguments raise InvalidInput with a sentence saying what is allowed."""
    args: dict[str, object] = {"persons": 10, "seed": 1, "out": tmp_path, "fmt": "csv"} | kwargs
    with pytest.raises(InvalidInput, match=message):
        generate(args["persons"], args["seed"], args["out"], fmt=args["fmt"])  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """An output path that exists but is not a directory raises InvalidInput and is left alone."""
    target = tmp_path / "extracts"
    target.write_text("keep me")
    with pytest.raises(InvalidInput, match="not a directory"):
        generate(10, 1, target)
    assert target.read_text() == "keep me"


# --- NHS numbers ------------------------------------------------------------------------------------


def test_check_digit_helpers_on_known_numbers() -> None:
    """Known valid numbers pass, a changed last digit fails, and a body whose check is 10 is never valid."""
    assert is_valid_nhs_number("9434765919")
    assert is_valid_nhs_number("4010232137")
    assert not is_valid_nhs_number("9434765918")
    assert nhs_check_digit("943476591") == 9
    assert nhs_check_digit("100000001") is None  # 1*10 + 1*2 = 12, remainder 1: check 10
    assert not any(is_valid_nhs_number(f"100000001{d}") for d in range(10))
    assert nhs_check_digit("000000000") == 0  # remainder 0: check 11 becomes 0
    for bad in ("943476591", "94347659190", "943 476 5919", "943476591x", "", "\uff19434765919"):
        assert not is_valid_nhs_number(bad)
    with pytest.raises(InvalidInput, match="nine digits"):
        nhs_check_digit("94347659")


def test_every_registered_person_has_a_distinct_valid_number(data: dict[str, pl.DataFrame]) -> None:
    """Demographics and opt-outs hold only valid, distinct numbers in the 9 (test) range."""
    for name in ("demographics", "opt_outs"):
        numbers = data[name]["nhs_number"]
        assert numbers.n_unique() == numbers.len()
        assert invalid_share(numbers) == 0
        assert numbers.str.starts_with("9").all()
    assert data["demographics"].height == PERSONS


# --- faults -----------------------------------------------------------------------------------------


def test_event_sources_have_about_half_a_percent_invalid_check_digits(data: dict[str, pl.DataFrame]) -> None:
    """About 0.5% of event rows carry an NHS number whose check digit is wrong."""
    for name in ("admissions", "prescriptions", "lab_results"):
        assert 0.003 < invalid_share(data[name]["nhs_number"]) < 0.008, name
    assert invalid_share(data["deaths"]["nhs_number"]) < 0.02


def test_admissions_and_prescriptions_have_about_point_three_percent_duplicates(
    data: dict[str, pl.DataFrame],
) -> None:
    """About 0.3% of admission and prescription rows are exact copies; other sources have none."""
    for name in ("admissions", "prescriptions"):
        frame = data[name]
        share = (frame.height - frame.unique().height) / frame.height
        assert 0.0015 < share < 0.005, name
    for name in ("demographics", "lab_results", "deaths", "opt_outs"):
        assert data[name].unique().height == data[name].height, name


def test_about_one_percent_missing_values_and_none_in_identifiers(data: dict[str, pl.DataFrame]) -> None:
    """Documented nullable fields are about 1% empty; identifiers, dates and codes never are."""
    nullable = {
        ("demographics", "postcode"),
        ("admissions", "length_of_stay_days"),
        ("prescriptions", "quantity"),
        ("lab_results", "result_value"),
        ("deaths", "underlying_cause_icd10"),
    }
    for name, frame in data.items():
        for column in frame.columns:
            share = frame[column].null_count() / max(frame.height, 1)
            if (name, column) in nullable:
                limit = 0.03 if name == "deaths" else 0.015
                assert 0.004 < share < limit, (name, column)
            else:
                assert share == 0, (name, column)


def test_about_three_percent_of_people_in_events_are_not_registered(data: dict[str, pl.DataFrame]) -> None:
    """About 3% of the (valid) people in each event source are absent from demographics."""
    registered = data["demographics"]["nhs_number"].implode()
    for name in ("admissions", "prescriptions", "lab_results"):
        numbers = data[name]["nhs_number"].unique()
        valid = numbers.filter(pl.Series([is_valid_nhs_number(n) for n in numbers]))
        assert 0.02 < mean(~valid.is_in(registered)) < 0.045, name


def test_some_registered_people_have_no_events(data: dict[str, pl.DataFrame], people: pl.DataFrame) -> None:
    """Demographics includes people who appear in no event source at all."""
    seen = pl.concat([data[n].select("nhs_number") for n in ("admissions", "prescriptions", "lab_results")])
    silent = people.filter(~pl.col("nhs_number").is_in(seen["nhs_number"].implode()))
    assert 0.02 * PERSONS < silent.height < 0.3 * PERSONS


def test_opt_out_list_covers_two_to_three_percent(data: dict[str, pl.DataFrame]) -> None:
    """The national opt-out list holds about 2-3% of people, some of them unregistered."""
    assert 0.02 * PERSONS < data["opt_outs"].height < 0.03 * PERSONS
    registered = data["demographics"]["nhs_number"].implode()
    assert not data["opt_outs"]["nhs_number"].is_in(registered).all()


# --- the model --------------------------------------------------------------------------------------


def test_ages_sexes_and_dates_are_plausible(data: dict[str, pl.DataFrame], people: pl.DataFrame) -> None:
    """Ages are 0-100 with a UK-like shape, both sexes appear, and every event date is in 2019-2025."""
    assert people["age"].is_between(0, 100).all()
    assert 35 < mean(people["age"]) < 46
    assert 0.15 < mean(people["age"] < 18) < 0.25
    assert 0.03 < mean(people["age"] >= 80) < 0.08
    assert set(people["sex"]) == {"F", "M"}
    assert 0.48 < mean(people["sex"] == "F") < 0.53
    for name, column in EVENT_DATES.items():
        dates = data[name][column]
        assert dates.is_between(date(2019, 1, 1), date(2025, 12, 31)).all(), name


def test_admissions_are_heavy_tailed_and_rise_with_age(
    data: dict[str, pl.DataFrame], people: pl.DataFrame
) -> None:
    """Most have no admission, many 1-3, a few 20+; about 1.5 each, more when old; cost follows stay."""
    counts = data["admissions"].group_by("nhs_number").len()
    per = people.join(counts, on="nhs_number", how="left").with_columns(pl.col("len").fill_null(0))
    assert 1.2 < mean(per["len"]) < 1.8
    assert mean(per["len"] == 0) > 0.5
    assert mean(per["len"].is_between(1, 3)) > 0.25
    assert (per["len"] >= 20).sum() > 5
    young = mean(per.filter(pl.col("age").is_between(18, 40))["len"])
    old = mean(per.filter(pl.col("age") >= 70)["len"])
    assert old > 1.5 * young
    admissions = data["admissions"].drop_nulls()
    assert (admissions["length_of_stay_days"] == 0).any()
    assert admissions["length_of_stay_days"].is_between(0, 365).all()
    assert admissions.select(pl.corr("length_of_stay_days", "cost_gbp")).item() > 0.7
    assert admissions["admission_id"].str.contains(r"^A\d{9}$").all()


def test_diabetes_is_more_common_in_older_and_more_deprived_people(people: pl.DataFrame) -> None:
    """Type 2 diabetes (seen as metformin) is about 7% of adults, rising with age and deprivation."""
    adults = people.filter(pl.col("age") >= 18)
    assert 0.045 < mean(adults["diabetic"]) < 0.085
    by_band = [
        mean(adults.filter(pl.col("age").is_between(lo, hi, closed="left"))["diabetic"])
        for lo, hi in ((18, 40), (40, 60), (60, 101))
    ]
    assert by_band[0] < by_band[1] < by_band[2]
    q = {k: mean(adults.filter(pl.col("deprivation_quintile") == k)["diabetic"]) for k in (1, 5)}
    assert q[1] > 1.4 * q[5]
    assert mean(people.filter(pl.col("age") < 18)["diabetic"]) < 0.005


def test_diabetics_have_higher_hba1c_and_e11_admissions(
    data: dict[str, pl.DataFrame], people: pl.DataFrame
) -> None:
    """People on metformin have HbA1c around 48-90 mmol/mol, others around 30-41, and most E11 admissions."""
    hba1c = data["lab_results"].filter(pl.col("test_code") == "HBA1C").join(people, on="nhs_number")
    diabetic = hba1c.filter(pl.col("diabetic"))["result_value"]
    other = hba1c.filter(~pl.col("diabetic"))["result_value"]
    assert 52 < median(diabetic) < 70
    assert 32 < median(other) < 42
    e11 = data["admissions"].filter(pl.col("icd10_code").str.starts_with("E11")).join(people, on="nhs_number")
    assert mean(e11["diabetic"]) > 0.75


def test_mortality_rises_steeply_with_age_and_with_diabetes(people: pl.DataFrame) -> None:
    """The share who die in 2019-2025 climbs with age band, and is higher for diabetics of the same age."""
    shares = [
        mean(people.filter(pl.col("age").is_between(lo, hi, closed="left"))["dead"])
        for lo, hi in ((18, 40), (40, 60), (60, 80), (80, 101))
    ]
    assert shares[0] < shares[1] < shares[2] < shares[3]
    assert shares[3] > 10 * shares[1]
    older = people.filter(pl.col("age") >= 60)
    assert mean(older.filter(pl.col("diabetic"))["dead"]) > mean(older.filter(~pl.col("diabetic"))["dead"])


def test_deaths_follow_birth_and_mostly_follow_admissions(
    data: dict[str, pl.DataFrame], people: pl.DataFrame
) -> None:
    """Every death is after birth; admissions after a death are rare (late linkage)."""
    deaths = data["deaths"].join(people, on="nhs_number")
    assert (deaths["date_of_death"] >= deaths["date_of_birth"]).all()
    linked = data["admissions"].join(data["deaths"], on="nhs_number")
    late = linked.filter(pl.col("admission_date") > pl.col("date_of_death"))
    assert 0 < late.height < 0.05 * linked.height


def test_egfr_falls_with_age(data: dict[str, pl.DataFrame], people: pl.DataFrame) -> None:
    """Mean eGFR is lower in each older age band; creatinine and eGFR come in pairs on the same day."""
    labs = data["lab_results"]
    egfr = labs.filter(pl.col("test_code") == "EGFR").join(people, on="nhs_number")
    means = [
        mean(egfr.filter(pl.col("age").is_between(lo, hi, closed="left"))["result_value"])
        for lo, hi in ((18, 40), (40, 60), (60, 80), (80, 101))
    ]
    assert means[0] > means[1] > means[2] > means[3]
    assert (
        labs.filter(pl.col("test_code") == "EGFR").height
        == labs.filter(pl.col("test_code") == "CREAT").height
    )


def test_case_mix_respects_sex_age_and_dates(data: dict[str, pl.DataFrame], people: pl.DataFrame) -> None:
    """Maternity codes only for women of 16-47, perinatal ones only for infants, COVID-19 from March 2020."""
    admissions = data["admissions"].join(people, on="nhs_number")
    at_admission = (pl.col("admission_date") - pl.col("date_of_birth")).dt.total_days() / 365.25
    maternity = admissions.filter(pl.col("icd10_chapter") == "XV")
    assert maternity.height > 0
    assert (maternity["sex"] == "F").all()
    assert maternity.select(at_admission.is_between(16, 48).all()).item()
    perinatal = admissions.filter(pl.col("icd10_chapter") == "XVI")
    assert perinatal.select((at_admission < 1).all()).item()
    assert (admissions.filter(pl.col("icd10_code") == "N45.9")["sex"] == "M").all()
    covid = pl.concat(
        [
            data["admissions"].select(code="icd10_code", day="admission_date"),
            data["deaths"].select(code="underlying_cause_icd10", day="date_of_death"),
        ]
    ).filter(pl.col("code").str.starts_with("U07"))
    assert covid.height > 0
    assert (covid["day"] >= date(2020, 3, 1)).all()


def test_postcode_outward_code_determines_the_region(data: dict[str, pl.DataFrame]) -> None:
    """Postcodes look like "LS6 2AB", and each outward code belongs to exactly one region."""
    demo = data["demographics"].drop_nulls("postcode")
    assert demo["postcode"].str.contains(r"^[A-Z]{1,2}\d{1,2} \d[ABD-HJLNP-UW-Z]{2}$").all()
    per_outward = demo.group_by(pl.col("postcode").str.split(" ").list.first()).agg(
        pl.col("region").n_unique()
    )
    assert (per_outward["region"] == 1).all()
    assert demo["region"].n_unique() == 10
    assert set(demo["deprivation_quintile"]) == {1, 2, 3, 4, 5}


# --- code lists -------------------------------------------------------------------------------------


def test_every_emitted_code_is_in_its_code_list(data: dict[str, pl.DataFrame]) -> None:
    """ICD-10 codes and chapters, drugs, lab tests with units and bounds, and regions come from the lists."""
    icd = codelist("icd10_codes.csv")
    chapter_of = dict(zip(icd["code"], icd["chapter"], strict=True))
    admissions = data["admissions"]
    assert set(admissions["icd10_code"]) <= set(chapter_of)
    assert all(
        chapter_of[c] == ch for c, ch in admissions.select("icd10_code", "icd10_chapter").unique().iter_rows()
    )
    assert set(admissions["icd10_chapter"]) <= set(codelist("icd10_chapters.csv")["chapter"])
    assert set(data["deaths"]["underlying_cause_icd10"].drop_nulls()) <= set(chapter_of)
    drugs = codelist("drugs.csv")
    pairs = set(data["prescriptions"].select("drug_name", "drug_class").unique().iter_rows())
    assert pairs <= set(drugs.select("drug_name", "drug_class").iter_rows())
    assert set(drugs["drug_class"]) == set(codelist("drug_classes.csv")["drug_class"])
    tests = {r[0]: r for r in codelist("lab_tests.csv").iter_rows()}
    labs = data["lab_results"]
    for code, unit in labs.select("test_code", "unit").unique().iter_rows():
        assert tests[code][2] == unit
    bounds = (
        labs.drop_nulls()
        .group_by("test_code")
        .agg(lo=pl.col("result_value").min(), hi=pl.col("result_value").max())
    )
    for code, lo, hi in bounds.iter_rows():
        assert float(tests[code][3]) <= lo <= hi <= float(tests[code][4]), code
    assert set(data["demographics"]["region"]) <= set(codelist("regions.csv")["code"])


def test_code_list_files_match_the_generator(tmp_path: Path) -> None:
    """The CSV code lists are exactly what the generator draws from, and each code sits in its chapter."""
    for name, frame in codes._codelist_frames().items():
        frame.write_csv(tmp_path / name)
        assert (tmp_path / name).read_bytes() == (CODELISTS_DIR / name).read_bytes(), name
    chapters = codelist("icd10_chapters.csv")
    assert chapters["chapter"].to_list() == [c[0] for c in codes._CHAPTERS]
    assert chapters.height == 22
    icd = codelist("icd10_codes.csv")
    assert 60 <= icd.height <= 150
    assert icd["code"].n_unique() == icd.height
    assert all(icd10_chapter(code) == chapter for code, chapter in icd.select("code", "chapter").iter_rows())
    assert set(icd["chapter"]) == set(chapters["chapter"])
    assert icd10_chapter("D50.9") == "III"
    assert icd10_chapter("H66.9") == "VIII"
    assert icd10_chapter("U07.1") == "XXII"
    assert icd10_chapter("not a code") is None
    assert codelist("regions.csv").height == 10
