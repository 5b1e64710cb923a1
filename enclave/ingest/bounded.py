"""The per-person bounded view of a version: at most ``k`` rows per person, chosen once at ingest.

Every published version holds a file ``data.bounded.parquet`` in which each person keeps at most
``k`` of their rows, ``k`` being the dataset's contribution bound.
The DP engine queries the view with a *row-level* privacy unit of ``k`` rows
(``dp.unit_of(contributions=k)``), instead of truncating every person to ``k`` rows in every query
(``dp.unit_of(contributions=1, identifier="person_id")`` then ``truncate_per_group(k)``), which is
what made a query 15-30 times slower than the exact Polars query on the same file.

Which rows a person keeps
-------------------------
A person with more than ``k`` rows keeps the ``k`` rows that come first when their rows are sorted
by a keyed 64-bit hash of the row's values (seeded from a key derived from the linkage key and the
dataset's name, so the choice is pseudo-random, unrelated to the extract's order and the same on a
re-ingest), ties broken by the row's values themselves. Rows that tie on everything are identical,
so *which* of them is kept does not change the view. A person with at most ``k`` rows keeps them all.

Why the privacy guarantee is the same
-------------------------------------
Write ``B(D)`` for the view of a table ``D``. The rows ``B`` keeps for a person are a function of
that person's own rows and the key only: the sort key of a row is computed from the row alone, and
neither the order of the file nor any other person's rows enter it. So for two neighbouring tables
``D`` and ``D'``, which differ by all the rows of one person ``p`` (present in one, absent from the
other), ``B(D)`` and ``B(D')`` agree on every other person's rows and differ exactly by ``p``'s kept
rows, of which there are at most ``k``: their symmetric distance is at most ``k``. A measurement that
is ε-DP for tables at symmetric distance ``k`` (OpenDP's ``SymmetricDistance`` with ``d_in = k``,
what ``dp.unit_of(contributions=k)`` declares) is therefore ε-DP with respect to ``D`` and ``D'``
when it is run on ``B(D)``: person-level ε-DP.

This is the same bound OpenDP derives for the per-query route: ``truncate_per_group(k)`` under
``SymmetricIdDistance`` with ``d_in = 1`` (``opendp/extras/polars/__init__.py``; Rust
``make_stable_truncate``) yields a ``SymmetricDistance`` of ``k`` rows, so the noise scale of every
statistic is identical on both routes. What differs is *when* rows are chosen: here once, before any
filter, so a filtered query sees a person's kept rows that pass the filter, where per-query truncation
chose ``k`` among the rows passing the filter. Both are valid; the view is simply fixed at ingest.

How it is written
-----------------
Ingest writes each row once (``enclave/ingest/pipeline.py``): the rows of persons with at most ``k``
rows in the *extract* stream straight into the view, and only the rows of the others are sorted
(``ranked``), then split into the first ``k`` of each person (``within``, into the view) and the rest
(``beyond``, into ``data.excess.parquet``). The view and the excess file together are the table: there
is no ``data.parquet`` (writing every row twice was a fifth of the ingest's time). ``table_files`` and
``scan_table`` are how everything that needs the whole table (a count of persons, cohorts, the
linkage report, output checks) reads it.

A version built before ingest wrote views has a full ``data.parquet`` and no excess file;
``write_view`` builds its view from it: the same rows; only where a person sits in the file can differ,
for one who had more than ``k`` rows in the extract but not after quarantine. When a dataset's bound
changes, ``CatalogService.build_views`` first writes the version's full ``data.parquet`` back (which
then takes precedence over the view and the excess file), then replaces the view.

The contract with the engine
----------------------------
Category columns with a public domain are stored in the view as ``pl.Enum`` of that domain (public,
from the catalog): grouping on them is two to three times faster than on strings, in Polars and in
OpenDP. The engine casts them back to strings wherever their values are compared.
A view declares its bound in its Parquet footer (key-value metadata ``enclave.max_rows_per_person``)
and names the file it bounds (``enclave.view_of``). The engine uses the view only if the declared
bound equals the table's contribution bound; otherwise it falls back to per-query truncation of the
full file (versions ingested before views existed, or a bound changed since). Any other table file
may declare ``enclave.max_rows_per_person`` in its own footer (a derived table of one row per person,
say: ``write_parquet(..., metadata={BOUND_KEY: "1"})``); the engine then queries it row-level when
the declared bound is at most the table's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from enclave.domain.catalog.datasets import PERSON_COLUMN
from enclave.store.layout import (
    BOUND_KEY,
    EXCESS_OF_KEY,
    VIEW_OF_KEY,
    view_path,
)

# zstd at level 1: files a few per cent larger than at the default level, written 1.5 times faster
# (the 32-character pseudonyms are most of the cost) and read faster too. No minimum and maximum per
# row group: rows are in the extract's order, so they would skip nothing, and comparing every
# pseudonym for them cost a tenth of writing the view.
PARQUET: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "statistics": {"min": False, "max": False, "distinct_count": False, "null_count": True},
}
_N = "__rows"
_CODE = "__person_code"
_HASH = "__row_hash"
_RANK = "__rank"


@dataclass(frozen=True)
class BoundedView:
    path: Path
    bound: int
    rows: int  # rows in the view
    persons: int  # distinct persons (in the view and in the full file alike)
    rows_dropped: int  # rows of the full file beyond their person's bound
    persons_over_bound: int  # persons with more than ``bound`` rows in the full file


def excess_metadata(data_name: str) -> dict[str, str]:
    """The footer of the file of rows beyond the bound of the table named ``data_name``."""
    return {EXCESS_OF_KEY: data_name}


def view_seeds(key: bytes, dataset: str) -> tuple[int, int, int, int]:
    """The four 64-bit seeds of the row hash, derived from ``key`` for ``dataset`` (HMAC-SHA256)."""
    digest = hmac.new(key, b"enclave bounded view/v1\x00" + dataset.encode("utf-8"), hashlib.sha256).digest()
    a, b, c, d = (int.from_bytes(digest[i : i + 8], "big") for i in range(0, 32, 8))
    return a, b, c, d


def view_metadata(bound: int, data_name: str) -> dict[str, str]:
    """The footer of a view of the file named ``data_name`` that holds at most ``bound`` rows per person."""
    return {BOUND_KEY: str(bound), VIEW_OF_KEY: data_name}


def domain_enum(domain: Sequence[str]) -> pl.Enum:
    """The ``pl.Enum`` a category column with this public domain is stored as in a view (duplicates
    dropped, first place kept): ingest parses into it, and ``as_enums`` casts to it."""
    return pl.Enum(list(dict.fromkeys(domain)))


def as_enums(categories: Mapping[str, Sequence[str]] | None) -> list[pl.Expr]:
    """Casts of category columns to ``pl.Enum`` of their public domain; a value outside it is an error."""
    return [pl.col(c).cast(domain_enum(d), strict=True) for c, d in (categories or {}).items()]


def ranked(
    rows: pl.LazyFrame, columns: Sequence[str], code: str, seeds: tuple[int, int, int, int]
) -> pl.LazyFrame:
    """``rows`` (of some persons, each with an integer ``code``) as ``columns`` sorted by person, then in
    keyed-hash order, with each row's place among its person's rows in ``__rank`` (0, 1, ...).

    The sort is on the integer code (sorting the string pseudonyms costs several times more), then
    the row hash of ``columns``, then every value of the row, so the order of a person's rows is
    total up to identical rows."""
    others = [c for c in columns if c != PERSON_COLUMN]
    index = pl.int_range(pl.len())
    first = pl.when(pl.col(code) != pl.col(code).shift(1).fill_null(-1)).then(index).otherwise(None)
    rank = index - first.forward_fill()  # position within the person's (contiguous, sorted) rows
    return (
        rows.with_columns(pl.struct(columns).hash(*seeds).alias(_HASH))
        .sort([code, _HASH, *others], nulls_last=True)
        .select(*columns, rank.alias(_RANK))
    )


def within(ranked_rows: pl.LazyFrame, bound: int) -> pl.LazyFrame:
    """The rows of ``ranked`` rows that their person keeps in the view: the first ``bound``."""
    return ranked_rows.filter(pl.col(_RANK) < bound).drop(_RANK)


def beyond(ranked_rows: pl.LazyFrame, bound: int) -> pl.LazyFrame:
    """The rows of ``ranked`` rows beyond their person's bound: the rest."""
    return ranked_rows.filter(pl.col(_RANK) >= bound).drop(_RANK)


def cut(
    rows: pl.LazyFrame, columns: Sequence[str], code: str, bound: int, seeds: tuple[int, int, int, int]
) -> pl.LazyFrame:
    """``rows`` (of some persons, each with an integer ``code``) cut to each person's first ``bound``
    rows in keyed-hash order (``ranked``), as ``columns``."""
    return within(ranked(rows, columns, code, seeds), bound)


def bounded(
    data: pl.LazyFrame, bound: int, seeds: tuple[int, int, int, int], heavy: pl.DataFrame
) -> pl.LazyFrame:
    """``data`` with each person cut to their first ``bound`` rows in keyed-hash order.

    ``heavy`` lists the persons (column ``person_id``) who may have more than ``bound`` rows; only
    their rows are sorted, everybody else's pass through unchanged (so listing a person with fewer
    rows changes where their rows sit in the view, never which rows it holds)."""
    columns = data.collect_schema().names()
    people = heavy.select(PERSON_COLUMN).with_row_index(_CODE).lazy()
    light = data.join(people, on=PERSON_COLUMN, how="anti")
    heavy_rows = data.join(people, on=PERSON_COLUMN, how="inner")
    return pl.concat([light, cut(heavy_rows, columns, _CODE, bound, seeds)], how="vertical")


def write_view(
    data: Path,
    bound: int,
    seeds: tuple[int, int, int, int],
    categories: Mapping[str, Sequence[str]] | None = None,
) -> BoundedView:
    """Write the bounded view of the Parquet file ``data`` next to it (see the module docstring).

    ``categories`` maps columns to their public domain (from the catalog, never from the data): in the
    view they are stored as ``pl.Enum`` of that domain, which Polars and OpenDP group several times
    faster than strings. Every value must be in its domain (ingest quarantines the others)."""
    if bound < 1:
        raise ValueError("a contribution bound is at least 1 row per person")
    scan = pl.scan_parquet(data)
    counts = scan.group_by(PERSON_COLUMN).agg(pl.len().alias(_N)).collect(engine="streaming")
    heavy = counts.filter(pl.col(_N) > bound)
    total = int(counts.get_column(_N).sum() or 0)
    dropped = int((heavy.get_column(_N) - bound).sum() or 0)
    target = view_path(data)
    bounded(scan, bound, seeds, heavy).with_columns(as_enums(categories)).sink_parquet(
        target, metadata=view_metadata(bound, data.name), engine="streaming", **PARQUET
    )
    return BoundedView(target, bound, total - dropped, counts.height, dropped, heavy.height)
