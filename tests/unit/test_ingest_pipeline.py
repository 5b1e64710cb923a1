"""The staging step of ingest on its own (no database): identifiers, duplicates, the bounded view written
in the same pass as the data, and clean-up after a crash."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.ingest.bounded import view_seeds, write_view
from enclave.ingest.pipeline import REASON, Staged, _first_failed, _reason_text, stage
from enclave.ingest.spec import LoadedSpec, load_spec, parse_spec
from enclave.keys import reference_hmac
from enclave.store.layout import DATA_FILE, declared_bound, excess_path, scan_table, view_path

SPEC = Path(__file__).resolve().parents[2] / "enclave" / "specs" / "admissions.yaml"
KEY = b"k" * 32
HEADER = "nhs_number,admission_id,admission_date,icd10_code,icd10_chapter,length_of_stay_days,cost_gbp"
NO_OPT_OUTS = pl.DataFrame({"person_id": []}, schema={"person_id": pl.String})


def nhs_number(stem: int) -> str:
    """A valid NHS number (mod-11 check digit) from a nine-digit stem (some stems have none)."""
    digits = f"{stem:09d}"
    check = (11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11) % 11
    return digits + str(check) if check != 10 else nhs_number(stem + 1)


def row(person: str, n: int, *, date: str | None = None) -> str:
    return f"{person},A{n},{date or f'2020-01-{n % 28 + 1:02d}'},E11.9,IV,{n % 5},{100 + n}"


def run(
    tmp_path: Path,
    rows: list[str],
    *,
    opt_outs: pl.DataFrame = NO_OPT_OUTS,
    spec: LoadedSpec | None = None,
    fault: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Staged:
    source = tmp_path / "extract.csv"
    source.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return stage(
        spec or load_spec(SPEC),
        source,
        linkage_key=KEY,
        opt_outs=opt_outs,
        dataset_dir=tmp_path / "store",
        quarantine_dir=tmp_path / "quarantine",
        fault=fault,
        progress=progress,
    )


def quarantined(tmp_path: Path, staged: Staged) -> list[tuple[str, str]]:
    assert staged.report.quarantine_file is not None
    frame = pl.read_csv(tmp_path / "quarantine" / staged.report.quarantine_file, infer_schema=False)
    return list(zip(frame["admission_id"], frame["quarantine_reason"], strict=True))


def test_only_ten_ascii_digits_make_an_nhs_number(tmp_path: Path) -> None:
    """'+123456789' and '-123456789' are ten characters that an integer cast reads as 123456789:
    they are invalid identifiers, never the person '0123456789'. Spaces and hyphens inside a number
    are normalised away."""
    person = "0123456789"  # a valid NHS number with a leading zero
    staged = run(
        tmp_path,
        [row(person, 1), row("+123456789", 2), row("-123456789", 3), row("012 345-6789", 4)],
    )
    data = scan_table(staged.directory / DATA_FILE).collect()
    assert data["person_id"].to_list() == [reference_hmac(KEY, person)] * 2
    invalid = "nhs_number: invalid identifier (format or check digit)"
    assert sorted(quarantined(tmp_path, staged)) == [("A2", invalid), ("A3", invalid)]
    assert (staged.report.rows_read, staged.report.persons) == (4, 1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789 -+_.e\t", max_size=14),
            st.integers(0, 10**10 - 1).map(lambda n: f"{n:010d}"),
            st.integers(0, 10**10 - 1).map(
                lambda n: f" {n // 10**6:04d} {n // 1000 % 1000:03d}-{n % 1000:03d}"
            ),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_fast_key_of_bare_numbers_is_the_full_normalisation(values: list[str]) -> None:
    """Reading ten bare digits with an integer cast (and normalising only the longer values, on a second
    read) gives every row the same key as normalising every value."""
    from enclave.ingest.pipeline import KEY, _person_key, _row_keys

    person = load_spec(SPEC).spec.person_column
    lf = pl.LazyFrame({person.name: values})
    expected = lf.select(_person_key(person, pl.col(person.name).str.strip_chars())).collect().get_column(KEY)
    assert _row_keys(lf, person).to_list() == expected.to_list()


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.lists(st.one_of(st.none(), st.integers(0, 9)), max_size=40),
        # NHS numbers are sorted packed with their row number (34 bits of key); others as they are
        st.lists(
            st.one_of(st.none(), st.integers(0, 3), st.sampled_from([-1, 2**34 - 1, 2**34])), max_size=40
        ),
        st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab", "B"])), max_size=40),
    )
)
def test_rows_sorted_by_key_carry_the_dense_rank_of_their_key(keys: list[object]) -> None:
    """Every row with a key, once each, with its key's place among the sorted distinct keys (what
    ``Series.rank("dense")`` gives it); rows without a key are left out."""
    from enclave.ingest.pipeline import DENSE, ROW, _rows_by_key

    numbers = all(isinstance(k, int | None) for k in keys)
    series = pl.Series("k", keys, dtype=pl.Int64 if numbers else pl.String)
    by_key = _rows_by_key(series)
    expected = series.rank("dense")
    got = dict(zip(by_key.get_column(ROW), by_key.get_column(DENSE), strict=True))
    assert got == {i: r for i, r in enumerate(expected) if r is not None}
    assert by_key.height == len(got)
    # in key order: the ranks never go down
    assert by_key.get_column(DENSE).to_list() == sorted(by_key.get_column(DENSE).to_list())


def test_a_row_gets_the_text_of_the_first_rule_it_fails_even_where_two_rules_share_it() -> None:
    """Reasons are numbered per distinct text, and the number is the physical value of an ``Enum`` of
    the texts: two rules with the same reason must give the same text, and a rule after them its own."""
    rules = [(pl.col("x") == 1, "odd"), (pl.col("x") < 3, "small"), (pl.col("x") == 3, "odd")]
    frame = pl.DataFrame({"x": [1, 2, 3, 4]}).select(_first_failed(rules).alias(REASON))
    assert frame.get_column(REASON).to_list() == [0, 1, 0, None]
    assert frame.select(_reason_text(rules)).get_column(REASON).cast(pl.String).to_list() == [
        "odd",
        "small",
        "odd",
        None,
    ]


def test_pass_2_streams_every_row_without_holding_the_others_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every query of pass 2 runs on Polars' streaming engine without a step that needs a whole column in
    memory, but the ranking of the sorted rows of people over the bound. An expression that is not
    elementwise (a lookup by row number, ``is_in``) becomes such a step, and the stream is held back
    behind it: that cost a ninth of the ingest's time and 1.4 GB more memory for 10M rows
    (``enclave/ingest/pipeline.py``: ``_beside``)."""
    import re

    graphs: list[list[str]] = []
    collect_all = pl.collect_all

    def spy(queries: list[pl.LazyFrame], **kwargs: object) -> list[pl.DataFrame]:
        for query in queries:
            dot = query.show_graph(engine="streaming", plan_stage="physical", raw_output=True)
            graphs.append(re.findall(r'label="([a-z-]+)', dot or ""))
        return collect_all(queries, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "collect_all", spy)
    people = [nhs_number(100_000_000 + 7919 * i) for i in range(3)]
    rows = [row(people[n % 3], n, date="2018-01-01" if n % 17 == 0 else None) for n in range(60)]
    staged = run(tmp_path, [*rows, rows[1]])
    assert staged.report.rows_quarantined == 5
    assert staged.report.rows_over_bound > 0
    assert len(graphs) == 7, "pass 2 is one collect_all of every output"
    for nodes in graphs:
        assert "is-in" not in nodes
        assert nodes.count("in-memory-map") <= nodes.count("sort"), nodes


def test_later_copies_of_a_row_are_duplicates_whatever_the_first_became(tmp_path: Path) -> None:
    """The first of identical rows is judged on its own; every later copy is a duplicate, unless an
    earlier rule already fails it (then that rule is its reason)."""
    a, b = nhs_number(943476591), nhs_number(401023213)
    bad_date = row(b, 2, date="2020-13-01")
    staged = run(tmp_path, [row(a, 1), row(a, 1), bad_date, row(a, 1), bad_date, row(b, 3)])
    assert staged.report.rows_written == 2
    assert sorted(quarantined(tmp_path, staged)) == [
        ("A1", "duplicate row"),
        ("A1", "duplicate row"),
        ("A2", "admission_date: not a date (YYYY-MM-DD)"),
        ("A2", "admission_date: not a date (YYYY-MM-DD)"),
    ]
    assert staged.report.reasons == {"admission_date: not a date (YYYY-MM-DD)": 2, "duplicate row": 2}


def test_rows_equal_as_values_are_duplicates_however_the_csv_quotes_them(tmp_path: Path) -> None:
    """A quoted value is the same value as the bare one, and a line break inside quotes makes one row
    of two lines: duplicates are decided on the values, and the right rows are quarantined."""
    a, b = nhs_number(943476591), nhs_number(401023213)
    quoted = f'"{a}",A1,2020-01-02,"E11.9",IV,1,101'
    two_lines = f'{b},A7,2020-01-02,"E11\n.9",IV,1,101'
    staged = run(tmp_path, [row(a, 1), quoted, two_lines, row(b, 3), row(a, 1), row(b, 3)])
    assert sorted(quarantined(tmp_path, staged)) == [
        ("A1", "duplicate row"),
        ("A1", "duplicate row"),
        ("A3", "duplicate row"),
        ("A7", "icd10_code: value outside its public domain"),
    ]
    assert staged.report.rows_read == 6


@pytest.mark.parametrize(
    ("text", "hashed"),
    [
        ("h,i\n1,x\n2,y\n1,x\n\n\n", True),  # blank lines are rows (of nulls) to both reads
        ('h,i\n1,"x"\n2,y\n', False),  # a quote: lines are not values
        ('h,i\n1,"x\ny"\n2,y\n', False),  # more lines than records
        ("h,i\n1,x\x00z\n2,y\n", False),  # a NUL byte splits a line
    ],
)
def test_rows_are_hashed_by_line_only_where_lines_are_their_values(
    tmp_path: Path, text: str, hashed: bool
) -> None:
    from enclave.ingest.pipeline import _line_hashes

    source = tmp_path / "x.csv"
    source.write_text(text, encoding="utf-8")
    rows = pl.read_csv(source, infer_schema=False).height
    hashes = _line_hashes(source, rows)
    assert (hashes is not None) is hashed
    if hashes is not None:
        assert len(hashes) == rows == 5
        assert hashes[0] == hashes[2] != hashes[1]
        assert hashes[3] == hashes[4] not in (hashes[0], hashes[1])


def test_a_person_over_the_bound_in_the_extract_but_not_in_the_data_keeps_every_row(tmp_path: Path) -> None:
    """A person with 13 rows in the extract, 4 of them quarantined, has 9 rows written: under the bound
    of 10, so the view keeps all 9 and nobody counts as over the bound."""
    a, b = nhs_number(943476591), nhs_number(401023213)
    rows = [row(a, i) for i in range(9)] + [row(a, 100 + i, date="2018-01-01") for i in range(4)]
    staged = run(tmp_path, [*rows, row(b, 1)])
    report = staged.report
    assert (report.rows_written, report.rows_quarantined, report.persons) == (10, 4, 2)
    assert (report.rows_over_bound, report.persons_over_bound) == (0, 0)
    assert pl.read_parquet(view_path(staged.directory / DATA_FILE)).height == 10


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    counts=st.lists(st.integers(1, 16), min_size=1, max_size=6),
    bad=st.sets(st.integers(0, 80), max_size=12),
    opted=st.sets(st.integers(0, 5), max_size=2),
    seed=st.integers(0, 2**16),
)
def test_the_view_written_with_the_data_is_the_view_of_the_data(
    tmp_path: Path, counts: list[int], bad: set[int], opted: set[int], seed: int
) -> None:
    """Whatever the mix of persons over the bound, quarantined rows and opt-outs, the view written in
    the same pass as the data holds the same rows as ``write_view`` makes from the written data (what
    ``build_views`` does for old versions), declares the bound in its footer, and the report's counts
    are those of the data."""
    people = [nhs_number(100_000_000 + 7919 * i) for i in range(len(counts))]
    rows = [
        row(p, n, date="2018-01-01" if n in bad else None)
        for i, p in enumerate(people)
        for n in range(i * 20, i * 20 + counts[i])
    ]
    rows.append(row(nhs_number(401023213), 999))  # somebody is always written
    random.Random(seed).shuffle(rows)
    opt_outs = pl.DataFrame(
        {"person_id": [reference_hmac(KEY, people[i]) for i in opted if i < len(people)]},
        schema={"person_id": pl.String},
    )
    directory = tmp_path / str(seed)
    directory.mkdir(exist_ok=True)
    spec = load_spec(SPEC)
    staged = run(directory, rows, opt_outs=opt_outs, spec=spec)
    data = staged.directory / DATA_FILE
    view = view_path(data)
    assert declared_bound(view) == (10, DATA_FILE)
    # The table is the view and the rows beyond it, each row once: write_view over the whole table,
    # as one file (what build_views has for an old version), must make the same view.
    full = tmp_path / f"{seed}-full" / DATA_FILE
    full.parent.mkdir(exist_ok=True)
    scan_table(data).sink_parquet(full)
    categories = {c.name: list(c.domain or []) for c in spec.columns if c.domain}
    expected = write_view(full, 10, view_seeds(KEY, spec.dataset), categories)
    written, rebuilt = pl.read_parquet(view), pl.read_parquet(expected.path)
    assert written.schema == rebuilt.schema
    assert Counter(written.rows()) == Counter(rebuilt.rows())
    report = staged.report
    assert (report.persons, report.rows_over_bound, report.persons_over_bound) == (
        expected.persons,
        expected.rows_dropped,
        expected.persons_over_bound,
    )
    frame = scan_table(data).collect()
    assert report.rows_written == frame.height
    beyond = pl.read_parquet(excess_path(data))
    assert beyond.height == report.rows_over_bound
    assert Counter([*written.rows(), *beyond.rows()]) == Counter(
        frame.with_columns(pl.col(c).cast(written.schema[c]) for c in categories).rows()
    )
    assert report.rows_opted_out == sum(counts[i] for i in opted if i < len(people))


@pytest.mark.parametrize("point", ["pseudonymised", "written"])
def test_a_crash_while_staging_leaves_nothing_behind(tmp_path: Path, point: str) -> None:
    """An exception at either fault point of staging removes the staging directory and the quarantine
    file: neither store holds anything of the attempt."""
    a = nhs_number(943476591)

    def crash(at: str) -> None:
        if at == point:
            raise RuntimeError(f"injected crash at {at}")

    with pytest.raises(RuntimeError, match="injected crash"):
        run(tmp_path, [row(a, 1), row(a, 2, date="2018-01-01")], fault=crash)
    assert not list((tmp_path / "store").rglob("*"))
    assert not list((tmp_path / "quarantine").rglob("*"))


def test_a_source_that_changes_during_ingest_is_refused(tmp_path: Path) -> None:
    """The source is read more than once: if it is rewritten in between (here, a row appended after
    the identifiers were pseudonymised), the attempt is refused and leaves nothing behind."""
    from enclave.domain.errors import InvalidInput

    def append(at: str) -> None:
        if at == "pseudonymised":
            with (tmp_path / "extract.csv").open("a", encoding="utf-8") as handle:
                handle.write(row(nhs_number(123456789), 2) + "\n")

    with pytest.raises(InvalidInput, match="changed while it was being ingested"):
        run(tmp_path, [row(nhs_number(943476591), 1)], fault=append)
    assert not list((tmp_path / "store").rglob("*"))
    assert not list((tmp_path / "quarantine").rglob("*"))


def test_other_identifiers_are_keyed_by_their_stripped_text(tmp_path: Path) -> None:
    """An identifier without NHS-number normalisation is its text with surrounding blanks stripped:
    ' X1 ' and 'X1' are one person; a blank one is missing."""
    spec = parse_spec(
        "dataset: visits\ntitle: Visits\ncustodian: custodian\ncontribution_bound: 2\ncolumns:\n"
        "  - {name: patient, role: person_id}\n"
        "  - {name: ward, role: category, domain: [a, b]}\n",
        base=tmp_path,
    )
    source = tmp_path / "visits.csv"
    source.write_text("patient,ward\n X1 ,a\nX1,b\nY2,a\n  ,a\nX1,a\n", encoding="utf-8")
    staged = stage(
        spec,
        source,
        linkage_key=KEY,
        opt_outs=NO_OPT_OUTS,
        dataset_dir=tmp_path / "store",
        quarantine_dir=tmp_path / "quarantine",
    )
    data = scan_table(staged.directory / DATA_FILE).collect()
    assert Counter(data["person_id"]) == {reference_hmac(KEY, "X1"): 3, reference_hmac(KEY, "Y2"): 1}
    assert staged.report.reasons == {"patient: missing person identifier": 1}
    assert (staged.report.persons, staged.report.persons_over_bound, staged.report.rows_over_bound) == (
        2,
        1,
        1,
    )
    assert pl.read_parquet(view_path(staged.directory / DATA_FILE)).height == 3


def test_a_long_ingest_says_what_it_is_doing(tmp_path: Path) -> None:
    """Each of the three passes is announced, in order, with the counts known by then."""
    said: list[str] = []
    a, b = nhs_number(943476591), nhs_number(401023213)
    run(tmp_path, [row(a, 1), row(a, 2), row(b, 3)], progress=said.append)
    assert said == [
        "reading the identifiers of extract.csv (pass 1 of 3)",
        "pseudonymising 2 identifiers and looking for duplicates among 3 rows (pass 2 of 3)",
        "validating 3 rows and writing the new version (pass 3 of 3)",
    ]
