"""The per-person bounded view written at ingest: at most k rows per person, chosen per person only."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.ingest.bounded import view_seeds, write_view
from enclave.store.layout import (
    BOUND_KEY,
    VIEW_OF_KEY,
    declared_bound,
    excess_path,
    scan_table,
    table_files,
    view_path,
)

SEEDS = view_seeds(b"k" * 32, "admissions")
SCHEMA = {"person_id": pl.String, "code": pl.String, "cost": pl.Int64, "day": pl.Date}
Row = tuple[str, str | None, int, date]


def _write(path: Path, rows: list[Row]) -> Path:
    pl.DataFrame(rows, schema=SCHEMA, orient="row").write_parquet(path)
    return path


def _rows(path: Path) -> Counter[Row]:
    return Counter(pl.read_parquet(path).rows())


def _table(counts: dict[str, int]) -> list[Row]:
    return [
        (person, f"c{(i * 7) % 3}" if i % 4 else None, (i * 37) % 11, date(2020, 1, 1 + i % 28))
        for person, n in counts.items()
        for i in range(n)
    ]


def test_each_person_keeps_min_of_their_rows_and_the_bound(tmp_path: Path) -> None:
    """A person with n rows keeps min(n, k) of them, all taken from their own rows; the report counts
    the rows and persons over the bound."""
    counts = {"a": 1, "b": 3, "c": 4, "d": 9}
    data = _write(tmp_path / "data.parquet", _table(counts))
    view = write_view(data, 3, SEEDS)
    assert view.path == tmp_path / "data.bounded.parquet" == view_path(data)
    kept = _rows(view.path)
    per_person = Counter(row[0] for row in kept.elements())
    assert per_person == {p: min(n, 3) for p, n in counts.items()}
    assert not kept - _rows(data)  # a sub-multiset of the data
    assert (view.rows, view.persons, view.rows_dropped, view.persons_over_bound) == (10, 4, 7, 2)


def test_identical_rows_count_towards_the_bound(tmp_path: Path) -> None:
    """Five identical rows of one person become two under a bound of two."""
    data = _write(tmp_path / "data.parquet", [("a", "x", 1, date(2020, 1, 1))] * 5)
    assert _rows(write_view(data, 2, SEEDS).path) == {("a", "x", 1, date(2020, 1, 1)): 2}


def test_the_footer_declares_the_bound_and_the_file_bounded(tmp_path: Path) -> None:
    """The view's Parquet footer says its bound and which file it bounds; a plain file declares none."""
    data = _write(tmp_path / "data.parquet", _table({"a": 3}))
    view = write_view(data, 2, SEEDS)
    meta = pl.read_parquet_metadata(view.path)
    assert (meta[BOUND_KEY], meta[VIEW_OF_KEY]) == ("2", "data.parquet")
    assert declared_bound(view.path) == (2, "data.parquet")
    assert declared_bound(data) is None
    assert declared_bound(tmp_path / "absent.parquet") is None
    own = tmp_path / "own.parquet"
    pl.DataFrame({"person_id": ["a"]}).write_parquet(own, metadata={BOUND_KEY: "1"})
    assert declared_bound(own) == (1, None)
    pl.DataFrame({"person_id": ["a"]}).write_parquet(own, metadata={BOUND_KEY: "0"})
    assert declared_bound(own) is None
    assert pl.read_parquet_schema(view.path) == pl.read_parquet_schema(data)  # no categories given


def test_the_choice_depends_on_the_key_not_on_the_row_order(tmp_path: Path) -> None:
    """Shuffling the file keeps the same rows; another key keeps (for some person) other rows."""
    rows = _table({f"p{i}": 12 for i in range(20)})
    first = _rows(write_view(_write(tmp_path / "a.parquet", rows), 2, SEEDS).path)
    shuffled = pl.DataFrame(rows, schema=SCHEMA, orient="row").sample(fraction=1, shuffle=True, seed=5)
    shuffled.write_parquet(tmp_path / "b.parquet")
    assert _rows(write_view(tmp_path / "b.parquet", 2, SEEDS).path) == first
    other = write_view(_write(tmp_path / "c.parquet", rows), 2, view_seeds(b"other" * 8, "admissions"))
    assert _rows(other.path) != first


def test_a_bound_below_one_is_refused(tmp_path: Path) -> None:
    """A contribution bound is at least one row per person."""
    with pytest.raises(ValueError, match="at least 1"):
        write_view(_write(tmp_path / "data.parquet", _table({"a": 1})), 0, SEEDS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    counts=st.dictionaries(st.sampled_from([f"p{i}" for i in range(8)]), st.integers(1, 7), max_size=6),
    added=st.integers(1, 9),
    bound=st.integers(1, 4),
    order=st.randoms(use_true_random=False),
)
def test_neighbouring_tables_have_views_at_distance_at_most_k(
    tmp_path: Path, counts: dict[str, int], added: int, bound: int, order: object
) -> None:
    """The privacy argument, checked: adding one person's rows (anywhere in the file) changes the
    view by exactly that person's kept rows, at most k of them; everybody else's rows are unchanged."""
    base = _table(counts)
    newcomer = [("q", f"c{i % 2}", i, date(2021, 1, 1 + i)) for i in range(added)]
    neighbour = base + newcomer
    order.shuffle(neighbour)  # type: ignore[attr-defined]
    name = f"{len(counts)}-{added}-{bound}-{abs(hash(tuple(neighbour))) % 10**9}"
    v1 = _rows(write_view(_write(tmp_path / f"d{name}.parquet", base), bound, SEEDS).path)
    v2 = _rows(write_view(_write(tmp_path / f"n{name}.parquet", neighbour), bound, SEEDS).path)
    assert not v1 - v2  # nothing of anybody else changes
    difference = v2 - v1
    assert {row[0] for row in difference.elements()} <= {"q"}
    assert difference.total() == min(added, bound)


def test_public_categories_are_stored_as_enums_of_their_domain(tmp_path: Path) -> None:
    """A category column is stored in the view as an Enum of its public domain (in domain order);
    a value outside the domain is an error, never a silent null."""
    data = _write(tmp_path / "data.parquet", _table({"a": 3, "b": 2}))
    view = write_view(data, 2, SEEDS, {"code": ["c2", "c1", "c0", "unused"]})
    schema = pl.read_parquet_schema(view.path)
    assert schema["code"] == pl.Enum(["c2", "c1", "c0", "unused"])
    assert schema["person_id"] == pl.String
    frame = pl.read_parquet(view.path).with_columns(pl.col("code").cast(pl.String))
    assert not Counter(frame.rows()) - _rows(data)
    with pytest.raises(pl.exceptions.InvalidOperationError):
        write_view(data, 2, SEEDS, {"code": ["c0"]})


def test_a_table_is_its_full_file_or_else_its_view_and_the_rows_beyond(tmp_path: Path) -> None:
    """Ingest stores each row once: the view (categories as Enums) and the rows beyond the bound. Read
    through ``scan_table`` the two are the whole table, with categories as text; a full file, where
    one exists, is the table on its own (even beside an excess file a crash left behind)."""
    rows = _table({"a": 2, "b": 5})
    enum = pl.Enum(["c0", "c1", "c2"])
    data = tmp_path / "data.parquet"
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row").with_columns(pl.col("code").cast(enum))
    frame.head(4).write_parquet(view_path(data))
    frame.tail(3).write_parquet(excess_path(data))
    assert table_files(data) == [view_path(data), excess_path(data)]
    whole = scan_table(data).collect()
    assert whole.schema == pl.Schema(SCHEMA)
    assert Counter(whole.rows()) == Counter(rows)
    _write(data, rows[:1])
    assert table_files(data) == [data]
    assert scan_table(data).collect().rows() == rows[:1]
