"""The files of a version's table in the research store, and what their footers declare.

A version's folder holds its table under :data:`DATA_FILE`. As ingest writes it, the table is two
files instead: its bounded view (``data.bounded.parquet``, at most the dataset's bound of rows per
person, chosen at ingest: :mod:`enclave.ingest.bounded` says how and why that is safe) and the rows
beyond each person's bound (``data.excess.parquet``); a version whose view was rebuilt for a new
bound has the full file again. A Parquet footer may declare a bound of rows per person
(:data:`BOUND_KEY`) and which file it is a view of (:data:`VIEW_OF_KEY`); the DP engine trusts a
view only when both match.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import polars.selectors as cs

#: The file name by which a version's table is known (and under which a derived frame is cached).
DATA_FILE = "data.parquet"
VIEW_SUFFIX = ".bounded.parquet"
EXCESS_SUFFIX = ".excess.parquet"
BOUND_KEY = "enclave.max_rows_per_person"
VIEW_OF_KEY = "enclave.view_of"
EXCESS_OF_KEY = "enclave.excess_of"


def view_path(data: Path) -> Path:
    """Where the bounded view of ``data`` lives: ``data.parquet`` -> ``data.bounded.parquet``."""
    return data.with_name(data.name.removesuffix(".parquet") + VIEW_SUFFIX)


def excess_path(data: Path) -> Path:
    """Where ingest writes the rows of ``data`` beyond their person's bound: ``data.excess.parquet``."""
    return data.with_name(data.name.removesuffix(".parquet") + EXCESS_SUFFIX)


def table_files(data: Path) -> list[Path]:
    """The files that together hold every row of the table whose full file is ``data``.

    That is ``data`` itself where it exists (a version built before ingest wrote views, or one whose
    bound changed since: ``build_views`` writes it back). A version as ingest writes it has no such
    file: its rows are its bounded view plus the rows beyond the bound, so that each row is written
    once."""
    if data.is_file():
        return [data]
    return [view_path(data), excess_path(data)]


def scan_table(data: Path) -> pl.LazyFrame:
    """Every row of the table whose full file is ``data`` (see ``table_files``), with the schema of a
    full file: category columns stored as ``pl.Enum`` in the view are read back as text."""
    files = table_files(data)
    scan = pl.scan_parquet(files)
    # A selector, resolved when the query runs: building the scan reads no footer.
    return scan if len(files) == 1 else scan.with_columns(cs.enum().cast(pl.String))


def declared_bound(path: Path) -> tuple[int, str | None] | None:
    """The bound of rows per person a file's footer declares, with the file it is a view of (None for
    a file that declares its own rows bounded, such as a table of one row per person); None if the
    file declares no bound."""
    try:
        meta = pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.PolarsError):
        return None
    raw = meta.get(BOUND_KEY)
    if raw is None or not raw.isdigit() or int(raw) < 1:
        return None
    return int(raw), meta.get(VIEW_OF_KEY)
