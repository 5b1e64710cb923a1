"""The research store: one folder per dataset, one per published version inside it.

A version's folder (``DatasetVersion.path``, relative to the store) holds its table under the name
:data:`DATA_FILE`. As ingest writes it, that table is two files: the bounded view and the rows beyond
each person's bound (``enclave/store/layout.py``: ``table_files``); :meth:`ParquetResearchStore.scan`
reads it whole either way. Derived cohort frames are cached in a store of their own, by fingerprint.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from enclave.store.layout import DATA_FILE, scan_table


class ParquetResearchStore:
    def __init__(self, root: Path, *, derived: Path | None = None) -> None:
        self.root = root
        self.derived = derived if derived is not None else root.parent / "derived"

    def table(self, version_path: str) -> Path:
        """The full data file of the version stored at ``version_path``, by which its table is named
        (the engine resolves it to the bounded view where there is one)."""
        return self.root / version_path / DATA_FILE

    def scan(self, version_path: str) -> pl.LazyFrame:
        """Every row of the version's table."""
        return scan_table(self.table(version_path))

    def distinct(self, version_path: str, column: str) -> set[str]:
        """The distinct values of one column of a version's table, as text (nulls left out)."""
        values = self.scan(version_path).select(pl.col(column).unique()).collect().to_series()
        return {str(v) for v in values.to_list() if v is not None}

    def dataset_dir(self, dataset: str) -> Path:
        return self.root / dataset

    def relative(self, path: Path) -> str:
        """A version folder's path as recorded in the catalog."""
        return str(path.relative_to(self.root))

    @contextmanager
    def dataset_lock(self, dataset: str) -> Iterator[None]:
        """One writer per dataset at a time, across processes (ingest, building a view)."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / f".{dataset}.lock"
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
