"""The custodian pipeline on hand-made extracts: every role, every fault, opt-outs, keys, versions,
crashes, on the configured database."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import update

from enclave.db.models import DatasetRow
from enclave.domain.errors import InvalidInput, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role
from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Query, TableMeta
from enclave.ingest.spec import load_spec
from enclave.keys import project_pseudonym, reference_hmac
from enclave.store.layout import declared_bound, excess_path, scan_table, view_path
from enclave.wiring import Services
from tests.conftest import OPERATOR, make_account

SPECS = Path(__file__).resolve().parents[2] / "enclave" / "specs"
ROOT = Path(__file__).resolve().parents[2]

# Valid NHS numbers (mod-11 check digit) and one with a wrong check digit.
P1, P2, P3, P4 = "9434765919", "4010232137", "9990001111", "4505577104"
BAD = "9434765918"
HEADER = "nhs_number,admission_id,admission_date,icd10_code,icd10_chapter,length_of_stay_days,cost_gbp"

ROWS_OK = [
    "943 476 5919,A1,2020-01-05,E11.9,IV,3,1200",
    f"{P1},A2,2021-03-01,I21.4,IX,9,5400",
    f"{P2},A3,2022-07-14,J18.9,X,2,900",
    f"{P3},A4,2023-02-02,E11.9,IV,500,3000",  # length of stay clamped to 365
    f"{P4},A5,2024-11-30,I21.4,IX,,450",  # length of stay missing: nullable
]
ROWS_BAD = {
    f"{BAD},A6,2020-01-05,E11.9,IV,3,1200": "nhs_number: invalid identifier (format or check digit)",
    ",A7,2020-01-05,E11.9,IV,3,1200": "nhs_number: missing person identifier",
    f"{P2},A8,2018-12-31,E11.9,IV,3,1200": "admission_date: outside 2019-01-01..2025-12-31",
    f"{P2},A9,2020-13-01,E11.9,IV,3,1200": "admission_date: not a date (YYYY-MM-DD)",
    f"{P2},A10,2020-01-05,ZZZ,IV,3,1200": "icd10_code: value outside its public domain",
    f"{P2},A11,2020-01-05,E11.9,IV,3,": "cost_gbp: missing value",
    f"{P2},A12,2020-01-05,E11.9,IV,3,twelve": "cost_gbp: not an integer",
    f"{P2},A3,2022-07-14,J18.9,X,2,900": "duplicate row",
}


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def custodian(services: Services) -> Actor:
    make_account(services, "custodian", Role.CUSTODIAN)
    user = services.identity.get_user(OPERATOR, "custodian")
    return Actor.for_user(user)


@pytest.fixture
def admissions(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "admissions.csv", ROWS_OK + list(ROWS_BAD))


def store_files(services: Services) -> list[Path]:
    return sorted(
        p for p in services.settings.research_store.rglob("*") if p.is_file() and p.suffix == ".parquet"
    )


def current_frame(services: Services, name: str) -> pl.DataFrame:
    return scan_table(services.catalog.current_parquet(name)).collect()


def test_ingest_validates_every_row_and_reports_each_reason(
    services: Services, custodian: Actor, admissions: Path
) -> None:
    """Valid rows are published with the identifier replaced; each faulty row is quarantined with its
    reason, counted in the report, and kept in a custodian-only file; out-of-bounds values clamp."""
    report = services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), admissions)
    assert report.version == 1
    assert report.rows_read == len(ROWS_OK) + len(ROWS_BAD)
    assert report.rows_written == len(ROWS_OK)
    assert report.rows_quarantined == len(ROWS_BAD)
    assert report.reasons == {reason: list(ROWS_BAD.values()).count(reason) for reason in ROWS_BAD.values()}
    assert report.clamped == {"length_of_stay_days": 1, "cost_gbp": 0}
    assert report.persons == 4

    frame = current_frame(services, "admissions")
    assert frame.columns == [
        "person_id",
        "admission_date",
        "icd10_code",
        "icd10_chapter",
        "length_of_stay_days",
        "cost_gbp",
    ]
    assert frame.schema["cost_gbp"] == pl.Int64
    assert frame.schema["admission_date"] == pl.Date
    assert frame["length_of_stay_days"].max() == 365
    linkage_key = services.keys.linkage_key()
    assert set(frame["person_id"]) == {reference_hmac(linkage_key, p) for p in (P1, P2, P3, P4)}

    quarantine = services.settings.quarantine_store / "admissions" / str(report.quarantine_file)
    assert quarantine.stat().st_mode & 0o777 == 0o600
    quarantined = pl.read_csv(quarantine, infer_schema=False)
    assert sorted(quarantined["quarantine_reason"]) == sorted(ROWS_BAD.values())


def test_no_raw_identifier_and_no_key_material_reaches_the_store(
    services: Services, custodian: Actor, admissions: Path
) -> None:
    """Scan every byte of the research store, the catalog and the audit log for the raw numbers
    and for the master, linkage and project keys: none appear."""
    services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), admissions)
    master = bytes.fromhex(services.settings.master_key_file.read_text().strip())
    secrets = [master, services.keys.linkage_key(), services.keys.project_key(1)]
    needles = (
        [s.hex().encode() for s in secrets] + secrets + [p.encode() for p in (P1, P2, P3, P4, "943 476 5919")]
    )
    files = store_files(services)
    assert files
    for path in files:
        data = path.read_bytes()
        for pl_frame_value in pl.read_parquet(path).to_dicts():
            text = json.dumps(pl_frame_value, default=str).encode()
            assert not any(n in text for n in needles), path
        assert not any(n in data for n in needles), path
    with services.db.unit_of_work(write=False) as uow:
        dumped = json.dumps(
            [e.to_json() for e in uow.audit.iter_events()]
            + [v.report for d in uow.catalog.list_datasets() for v in uow.catalog.list_versions(d.id)]
        ).encode()
    assert not any(n in dumped for n in needles)


def test_two_projects_never_share_a_pseudonym(services: Services, custodian: Actor, admissions: Path) -> None:
    """Per-project pseudonyms are derived keys: for every person, projects 1 and 2 see different
    values, and neither is the store's pseudonym."""
    services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), admissions)
    persons = current_frame(services, "admissions")["person_id"].unique().to_list()
    one = {project_pseudonym(services.keys, 1, p) for p in persons}
    two = {project_pseudonym(services.keys, 2, p) for p in persons}
    assert len(one) == len(two) == len(persons)
    assert one.isdisjoint(two)
    assert one.isdisjoint(persons)
    assert two.isdisjoint(persons)


def test_opted_out_people_are_removed_before_anything_is_stored(
    services: Services, custodian: Actor, admissions: Path, tmp_path: Path
) -> None:
    """People on the opt-out list vanish from the store and the quarantine; the report counts them."""
    opt_outs = write_csv(tmp_path / "optouts.csv", [P1, "943-476-5919", "not a number"], header="nhs_number")
    stored, rejected = services.catalog.load_opt_outs(custodian, opt_outs)
    assert (stored, rejected) == (1, 1)
    report = services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), admissions)
    assert report.rows_opted_out == 2  # P1's two admissions (one written with spaces)
    assert report.rows_written == len(ROWS_OK) - 2
    frame = current_frame(services, "admissions")
    assert reference_hmac(services.keys.linkage_key(), P1) not in set(frame["person_id"])
    quarantine = services.settings.quarantine_store / "admissions" / str(report.quarantine_file)
    assert P1 not in quarantine.read_text()
    with services.db.unit_of_work(write=False) as uow:
        assert uow.opt_outs.count_opt_outs() == 1
        assert P1 not in uow.opt_outs.list_opt_outs()


def test_parquet_and_csv_extracts_give_the_same_version(
    services: Services, custodian: Actor, tmp_path: Path
) -> None:
    """The same rows as Parquet (typed columns) and as CSV publish identical data."""
    csv_path = write_csv(tmp_path / "a.csv", ROWS_OK[1:])
    parquet_path = tmp_path / "a.parquet"
    pl.read_csv(csv_path, infer_schema=False).with_columns(
        pl.col("admission_date").str.to_date(), pl.col("cost_gbp").cast(pl.Int64)
    ).write_parquet(parquet_path)
    spec = load_spec(SPECS / "admissions.yaml")
    services.catalog.ingest(custodian, spec, csv_path)
    from_csv = current_frame(services, "admissions").sort("admission_date")
    services.catalog.ingest(custodian, spec, parquet_path)
    from_parquet = current_frame(services, "admissions").sort("admission_date")
    assert from_csv.equals(from_parquet)


def test_each_ingest_is_a_new_version_and_the_old_one_stays(
    services: Services, custodian: Actor, tmp_path: Path
) -> None:
    """Version 2 becomes current; version 1's files are untouched; the catalog lists both."""
    spec = load_spec(SPECS / "admissions.yaml")
    services.catalog.ingest(custodian, spec, write_csv(tmp_path / "v1.csv", ROWS_OK[:2]))
    v1_file = services.catalog.current_parquet("admissions")
    v1 = scan_table(v1_file).collect()
    services.catalog.ingest(custodian, spec, write_csv(tmp_path / "v2.csv", ROWS_OK))
    assert services.catalog.current_parquet("admissions") != v1_file
    assert scan_table(v1_file).collect().equals(v1)
    versions = services.catalog.versions(custodian, "admissions")
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]
    assert versions[1]["report"]["rows_written"] == len(ROWS_OK)


@pytest.mark.parametrize("point", ["pseudonymised", "written", "before_publish", "published", "recorded"])
def test_a_crash_at_any_point_leaves_the_previous_version(
    services: Services, custodian: Actor, tmp_path: Path, point: str
) -> None:
    """An exception injected at each step of a second ingest leaves version 1 current, intact and
    readable, and no trace of the failed attempt in the store or the catalog."""
    spec = load_spec(SPECS / "admissions.yaml")
    services.catalog.ingest(custodian, spec, write_csv(tmp_path / "v1.csv", ROWS_OK[:2]))
    before = current_frame(services, "admissions")
    files_before = store_files(services)

    def crash(at: str) -> None:
        if at == point:
            raise RuntimeError(f"injected crash at {at}")

    with pytest.raises(RuntimeError, match="injected crash"):
        services.catalog.ingest(custodian, spec, write_csv(tmp_path / "v2.csv", ROWS_OK), fault=crash)
    assert current_frame(services, "admissions").equals(before)
    assert store_files(services) == files_before
    assert [v["version"] for v in services.catalog.versions(custodian, "admissions")] == [1]
    assert not list((services.settings.research_store / "admissions").glob(".staging-*"))
    assert services.audit.verify(OPERATOR).ok


def test_a_killed_process_leaves_the_previous_version(
    services: Services, custodian: Actor, tmp_path: Path
) -> None:
    """A process killed outright (no clean-up runs) right after the rename of its new version
    leaves version 1 current; the next ingest publishes version 2 normally."""
    spec_path = SPECS / "admissions.yaml"
    services.catalog.ingest(custodian, load_spec(spec_path), write_csv(tmp_path / "v1.csv", ROWS_OK[:2]))
    before = current_frame(services, "admissions")
    script = """
import os, sys
from pathlib import Path
from enclave.config import Settings
from enclave.domain.identity.accounts import Actor
from enclave.ingest.spec import load_spec
from enclave.wiring import build_services
home, url, spec, data = sys.argv[1:]
s = build_services(Settings(home=home, database_url=url))
def crash(at):
    if at == "published":
        os._exit(9)
s.catalog.ingest(Actor.operator("killer"), load_spec(Path(spec)), Path(data), fault=crash)
"""
    write_csv(tmp_path / "v2.csv", ROWS_OK)
    args = [str(services.settings.home), services.settings.database, str(spec_path), str(tmp_path / "v2.csv")]
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    assert current_frame(services, "admissions").equals(before)
    report = services.catalog.ingest(custodian, load_spec(spec_path), tmp_path / "v2.csv")
    assert report.version == 2
    assert current_frame(services, "admissions").height == len(ROWS_OK)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (HEADER.encode() + b"\n", "has a header but no rows"),
        (b"nhs_number,admission_id\n9434765919,A1\n", "missing column(s) the spec declares: admission_date"),
        ((HEADER + ",ward\n" + ROWS_OK[1] + ",W1\n").encode(), "column(s) the spec does not declare: ward"),
        (
            "nhs_number,admission_id,admission_date,icd10_code,icd10_chapter,length_of_stay_days,cost_gbp\n"
            "9434765919,Ä1,2020-01-05,E11.9,IV,3,1200\n".encode("latin-1"),
            "UTF-8",
        ),
    ],
    ids=["empty", "header-only", "missing-columns", "extra-column", "not-utf8"],
)
def test_bad_files_are_refused_and_nothing_is_written(
    services: Services, custodian: Actor, tmp_path: Path, content: bytes, message: str
) -> None:
    """A file that cannot be ingested at all gets one clear sentence; no version, no staging, no
    quarantine file is left."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), path)
    assert store_files(services) == []
    assert not list(services.settings.quarantine_store.rglob("*.csv"))
    assert services.catalog.list_datasets(custodian) == []


def test_truncated_parquet_is_refused(services: Services, custodian: Actor, tmp_path: Path) -> None:
    """A Parquet file cut short is reported as unreadable, not half-ingested."""
    good = tmp_path / "good.parquet"
    pl.read_csv(write_csv(tmp_path / "a.csv", ROWS_OK), infer_schema=False).write_parquet(good)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InvalidInput, match=r"cannot read truncated\.parquet"):
        services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), truncated)
    assert store_files(services) == []


def test_every_row_invalid_publishes_nothing(services: Services, custodian: Actor, tmp_path: Path) -> None:
    """If no row passes, there is no new version, and the message says why."""
    path = write_csv(tmp_path / "all-bad.csv", [f"{BAD},A1,2020-01-05,E11.9,IV,3,1200"])
    with pytest.raises(InvalidInput, match=r"no row of all-bad\.csv passed validation"):
        services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), path)
    assert store_files(services) == []


def test_quarantine_policy_for_numeric_bounds(services: Services, custodian: Actor, tmp_path: Path) -> None:
    """A numeric declared out_of_bounds: quarantine sends the row to quarantine instead of clamping."""
    text = (
        (SPECS / "admissions.yaml")
        .read_text()
        .replace(
            "bounds: [0, 100000]\n    unit: GBP\n    out_of_bounds: clamp",
            "bounds: [0, 100000]\n    unit: GBP",
        )
    )
    spec_path = tmp_path / "strict.yaml"
    spec_path.write_text(text)
    path = write_csv(tmp_path / "a.csv", [*ROWS_OK, f"{P2},A99,2020-01-05,E11.9,IV,3,250000"])
    report = services.catalog.ingest(custodian, load_spec(spec_path), path)
    assert report.reasons == {"cost_gbp: outside bounds [0, 100000]": 1}


def test_who_may_ingest(services: Services, custodian: Actor, admissions: Path) -> None:
    """Researchers cannot ingest; another custodian cannot ingest into someone else's dataset nor
    create one in another's name; the spec's custodian must hold the custodian role."""
    spec = load_spec(SPECS / "admissions.yaml")
    make_account(services, "rosa", Role.RESEARCHER)
    make_account(services, "other", Role.CUSTODIAN)
    rosa = Actor.for_user(services.identity.get_user(OPERATOR, "rosa"))
    other = Actor.for_user(services.identity.get_user(OPERATOR, "other"))
    with pytest.raises(PermissionDenied):
        services.catalog.ingest(rosa, spec, admissions)
    with pytest.raises(PermissionDenied, match="naming themselves"):
        services.catalog.ingest(other, spec, admissions)
    services.catalog.ingest(custodian, spec, admissions)
    with pytest.raises(PermissionDenied, match="only custodian, the custodian of admissions"):
        services.catalog.ingest(other, spec, admissions)
    services.identity.revoke_role(OPERATOR, "custodian", Role.CUSTODIAN)
    with pytest.raises(InvalidInput, match="not a user with the custodian role"):
        services.catalog.ingest(OPERATOR, spec, admissions)


def test_catalog_views_by_role(services: Services, custodian: Actor, admissions: Path) -> None:
    """Researchers see schema and descriptions, never counts; the custodian sees counts and versions."""
    services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), admissions)
    make_account(services, "rosa", Role.RESEARCHER)
    rosa = Actor.for_user(services.identity.get_user(OPERATOR, "rosa"))
    public = services.catalog.get_dataset(rosa, "admissions")
    assert "rows" not in public
    assert "persons" not in public
    assert "current_version" not in public
    columns = {c["name"]: c for c in public["columns"]}
    assert "nhs_number" not in columns
    assert "admission_id" not in columns
    assert columns["cost_gbp"]["upper"] == 100000
    assert columns["cost_gbp"]["unit"] == "GBP"
    assert "E11.9" in columns["icd10_code"]["domain"]
    own = services.catalog.get_dataset(custodian, "admissions")
    assert own["rows"] == len(ROWS_OK)
    assert own["persons"] == 4
    with pytest.raises(PermissionDenied):
        services.catalog.versions(rosa, "admissions")


def test_linkage_report_counts_matches_per_pair(services: Services, custodian: Actor, tmp_path: Path) -> None:
    """Persons in each source, matched and only-in-one, computed exactly from the stored pseudonyms."""
    services.catalog.ingest(
        custodian, load_spec(SPECS / "admissions.yaml"), write_csv(tmp_path / "a.csv", ROWS_OK)
    )
    deaths = write_csv(
        tmp_path / "d.csv",
        [f"{P2},2024-01-01,I21.4", "9876543210,2024-02-01,J18.9"],
        header="nhs_number,date_of_death,underlying_cause_icd10",
    )
    services.catalog.ingest(custodian, load_spec(SPECS / "deaths.yaml"), deaths)
    report = services.catalog.linkage_report(custodian)
    (pair,) = report["synthetic_england"]["pairs"]
    assert pair == {
        "a": "admissions",
        "b": "deaths",
        "persons_a": 4,
        "persons_b": 2,
        "matched": 1,
        "only_in_a": 3,
        "only_in_b": 1,
        "match_rate_a": 0.25,
        "match_rate_b": 0.5,
    }


def test_dcat_export_lists_datasets_without_counts(
    services: Services, custodian: Actor, admissions: Path
) -> None:
    """The DCAT-AP JSON-LD names each dataset with its publisher and columns, and no row counts."""
    services.catalog.ingest(custodian, load_spec(SPECS / "admissions.yaml"), admissions)
    doc = services.catalog.dcat("https://enclave.example.org")
    assert doc["@type"] == "dcat:Catalog"
    (dataset,) = doc["dcat:dataset"]
    assert dataset["dct:identifier"] == "admissions"
    assert dataset["dct:publisher"]["foaf:name"] == "custodian"
    assert str(len(ROWS_OK)) not in json.dumps(dataset["dct:conformsTo"])
    assert "rows" not in json.dumps(doc)


def test_a_version_holds_its_bounded_view(services: Services, custodian: Actor, tmp_path: Path) -> None:
    """A version holds its bounded view: each person cut to the spec's contribution bound (10
    admissions), declared in its footer; the rows beyond it are in a file of their own, each row being
    written once; the report counts what was cut."""
    heavy = [f"{P2},B{i},2020-02-{i + 1:02d},E11.9,IV,{i},{100 * i}" for i in range(13)]
    report = services.catalog.ingest(
        custodian, load_spec(SPECS / "admissions.yaml"), write_csv(tmp_path / "a.csv", ROWS_OK[:2] + heavy)
    )
    assert (report.rows_written, report.persons) == (15, 2)
    assert (report.rows_over_bound, report.persons_over_bound) == (3, 1)
    data = services.catalog.current_parquet("admissions")
    view = view_path(data)
    assert view.parent == data.parent
    assert declared_bound(view) == (10, data.name)
    assert sorted(p.name for p in data.parent.iterdir()) == sorted([view.name, excess_path(data).name])
    full, bounded = scan_table(data).collect(), pl.read_parquet(view)
    assert full.group_by("person_id").len()["len"].sort().to_list() == [2, 13]
    assert pl.read_parquet(excess_path(data)).height == 3
    assert bounded.group_by("person_id").len()["len"].sort().to_list() == [2, 10]
    # Categories with a public domain are stored as Enums of it in the view.
    domains = {c.name: c.domain for c in load_spec(SPECS / "admissions.yaml").columns}
    assert bounded.schema["icd10_code"] == pl.Enum(domains["icd10_code"] or [])
    assert bounded.schema["icd10_chapter"] == pl.Enum(domains["icd10_chapter"] or [])
    as_text = bounded.with_columns(pl.col("icd10_code", "icd10_chapter").cast(pl.String))
    assert as_text.join(full, on=full.columns, how="anti").is_empty()  # rows of the data only
    versions = services.catalog.versions(custodian, "admissions")
    assert versions[0]["report"]["rows_over_bound"] == 3
    # The DP engine, given the table as the query service describes it (the version's data file and
    # the dataset's bound), scans the view with a row-level bound of 10.
    table = TableMeta(data, 10, {"cost_gbp": ColumnMeta("cost_gbp", "integer", lower=0, upper=100_000)})
    plan = DPEngine().plan(Query(table, (Aggregate("sum", "cost_gbp"),)))
    assert (plan.source, plan.row_bound) == (view, 10)


def test_versions_without_a_bounded_view_get_one_built_in_place(
    services: Services, custodian: Actor, tmp_path: Path
) -> None:
    """A version ingested before views existed (a full data file, no view: made so here) is measured by
    per-query truncation; `build_views` writes the same view the ingest would have, atomically,
    audited, and only where one is missing; the engine then uses it."""
    heavy = [f"{P2},B{i},2020-02-{i + 1:02d},E11.9,IV,{i},{100 * i}" for i in range(13)]
    services.catalog.ingest(
        custodian, load_spec(SPECS / "admissions.yaml"), write_csv(tmp_path / "a.csv", ROWS_OK[:2] + heavy)
    )
    data = services.catalog.current_parquet("admissions")
    view = view_path(data)
    written = pl.read_parquet(view)
    scan_table(data).collect().write_parquet(data)
    view.unlink()
    excess_path(data).unlink()
    table = TableMeta(data, 10, {"cost_gbp": ColumnMeta("cost_gbp", "integer", lower=0, upper=100_000)})
    assert DPEngine().plan(Query(table, (Aggregate("sum", "cost_gbp"),))).row_bound is None
    make_account(services, "someone", Role.RESEARCHER)
    researcher = Actor.for_user(services.identity.get_user(OPERATOR, "someone"))
    with pytest.raises(PermissionDenied):
        services.catalog.build_views(researcher)
    assert services.catalog.build_views(custodian) == ["admissions"]
    assert declared_bound(view) == (10, data.name)
    assert pl.read_parquet(view).equals(written)  # the same rows, in the same order, as at ingest
    assert sorted(p.name for p in data.parent.iterdir()) == sorted([data.name, view.name])  # no leftovers
    plan = DPEngine().plan(Query(table, (Aggregate("sum", "cost_gbp"),)))
    assert (plan.source, plan.row_bound) == (view, 10)
    assert services.catalog.build_views(custodian) == []  # nothing left to build
    events = [e.action for e in services.audit.export(OPERATOR) if e.object_id == "admissions"]
    assert events.count("catalog.view_built") == 1


def test_a_changed_bound_rebuilds_the_view_and_keeps_every_row(
    services: Services, custodian: Actor, tmp_path: Path
) -> None:
    """A version as ingest writes it holds each row once (its view, and the rows beyond the bound).
    When the dataset's bound changes under it, `build_views` first writes the full table back into
    one file, then the view for the new bound, and removes the file of rows beyond the old one: the
    table keeps exactly its rows and the engine uses the new view."""
    heavy = [f"{P2},B{i},2020-02-{i + 1:02d},E11.9,IV,{i},{100 * i}" for i in range(13)]
    services.catalog.ingest(
        custodian, load_spec(SPECS / "admissions.yaml"), write_csv(tmp_path / "a.csv", ROWS_OK[:2] + heavy)
    )
    data = services.catalog.current_parquet("admissions")
    before = scan_table(data).collect()
    assert not data.exists()
    with services.db.engine.begin() as conn:
        conn.execute(update(DatasetRow).where(DatasetRow.name == "admissions").values(contribution_bound=4))
    assert services.catalog.build_views(custodian) == ["admissions"]
    assert sorted(p.name for p in data.parent.iterdir()) == sorted([data.name, view_path(data).name])
    after = scan_table(data).collect()
    assert after.schema == before.schema
    assert Counter(after.rows()) == Counter(before.rows())
    assert declared_bound(view_path(data)) == (4, data.name)
    per_person = pl.read_parquet(view_path(data)).group_by("person_id").len()["len"].sort().to_list()
    assert per_person == [2, 4]
    table = TableMeta(data, 4, {"cost_gbp": ColumnMeta("cost_gbp", "integer", lower=0, upper=100_000)})
    plan = DPEngine().plan(Query(table, (Aggregate("sum", "cost_gbp"),)))
    assert (plan.source, plan.row_bound) == (view_path(data), 4)
    assert services.catalog.build_views(custodian) == []
