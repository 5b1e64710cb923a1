"""The ingest port (:class:`enclave.domain.ports.IngestPipeline`): this package's streaming pipeline,
bounded views and linkage counts over the research store, keyed by the key store.

The domain's catalog use cases decide who may ingest, number and record versions, and audit; what
reads an extract, pseudonymises it and writes Parquet is here. Key material never leaves this
adapter: the use cases get pseudonyms and the key's fingerprint, never a key.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import polars as pl

from enclave.domain.catalog.datasets import NHS_LIKE, PERSON_COLUMN
from enclave.domain.errors import InvalidInput
from enclave.domain.ports import Fault, Progress
from enclave.ingest.bounded import PARQUET, view_seeds, write_view
from enclave.ingest.pipeline import (
    Staged,
    discard,
    fsync_path,
    publish,
    remove_stale_staging,
    stage,
)
from enclave.ingest.spec import LoadedSpec
from enclave.keys import KeyStore, Pseudonymiser
from enclave.store.layout import declared_bound, excess_path, scan_table, table_files, view_path
from enclave.store.research import ParquetResearchStore


class PolarsIngest:
    """Implements :class:`enclave.domain.ports.IngestPipeline` with Polars' streaming engine."""

    def __init__(self, keys: KeyStore, store: ParquetResearchStore, quarantine: Path) -> None:
        self._keys = keys
        self.store = store
        self._quarantine = quarantine

    def lock(self, dataset: str) -> AbstractContextManager[None]:
        return self.store.dataset_lock(dataset)

    def stage(
        self,
        spec: LoadedSpec,
        source: Path,
        *,
        opt_outs: Sequence[str],
        source_name: str | None = None,
        fault: Fault | None = None,
        progress: Progress | None = None,
    ) -> Staged:
        dataset_dir = self.store.dataset_dir(spec.dataset)
        remove_stale_staging(dataset_dir)
        return stage(
            spec,
            source,
            linkage_key=self._keys.linkage_key(),
            opt_outs=pl.DataFrame({PERSON_COLUMN: list(opt_outs)}, schema={PERSON_COLUMN: pl.String}),
            dataset_dir=dataset_dir,
            quarantine_dir=self._quarantine / spec.dataset,
            source_name=source_name,
            fault=fault,
            progress=progress,
        )

    def publish(self, staged: Staged, number: int) -> str:
        return self.store.relative(publish(staged, number))

    def discard(self, staged: Staged, published: str | None) -> None:
        discard(staged)
        if published is not None:
            shutil.rmtree(self.store.root / published, ignore_errors=True)

    def key_fingerprint(self) -> str:
        return self._keys.fingerprint()

    def pseudonymise(self, identifiers: Sequence[str]) -> list[str]:
        return Pseudonymiser(self._keys.linkage_key()).many(list(identifiers))

    def table_file(self, version_path: str) -> Path:
        return self.store.table(version_path)

    def needs_view(self, version_path: str, bound: int) -> bool:
        data = self.store.table(version_path)
        declared = declared_bound(view_path(data))
        has_rows = all(f.is_file() for f in table_files(data))
        return has_rows and (declared is None or declared[0] != bound)

    def build_view(
        self, dataset: str, version_path: str, bound: int, categories: dict[str, list[str]]
    ) -> None:
        """Build the view in a private directory beside the version (a hard link to its data file)
        and rename it into place, so a reader sees the old state or the whole view, never half.

        A version as ingest writes it has no full data file: each row is in its view or among the rows
        beyond the bound (``table_files``). Its full file is written back first, by one rename, and
        from then on the table is read from it; only then is the view replaced and the file of rows
        beyond the old bound removed. A crash between any two steps leaves every reader a whole table
        and a view that is either the old one (which the engine no longer uses, its bound being
        stale) or the new one."""
        data = self.store.table(version_path)
        seeds = view_seeds(self._keys.linkage_key(), dataset)
        if not data.is_file():
            partial = data.with_name(f".{data.name}.{secrets.token_hex(8)}.partial")
            try:
                scan_table(data).sink_parquet(partial, engine="streaming", sync_on_close="all", **PARQUET)
                os.replace(partial, data)
                fsync_path(data.parent)
            finally:
                partial.unlink(missing_ok=True)
        work = data.parent / f".view-{secrets.token_hex(8)}"
        work.mkdir(mode=0o700)
        try:
            os.link(data, work / data.name)
            try:
                view = write_view(work / data.name, bound, seeds, categories)
            except pl.exceptions.PolarsError:
                # a value outside a recorded domain (an older ingest): keep the columns as text
                view = write_view(work / data.name, bound, seeds)
            os.replace(view.path, view_path(data))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        excess_path(data).unlink(missing_ok=True)

    def linkage(self, tables: Mapping[str, str]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Persons in each table (dataset -> version path), and persons in both of each pair of them."""
        persons = {
            name: self.store.scan(path).select(PERSON_COLUMN).unique() for name, path in tables.items()
        }
        counts = {
            n: int(v)
            for n, v in zip(
                persons,
                (f.item() for f in pl.collect_all([lf.select(pl.len()) for lf in persons.values()])),
                strict=True,
            )
        }
        names = sorted(persons)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        matched = pl.collect_all(
            [persons[a].join(persons[b], on=PERSON_COLUMN, how="inner").select(pl.len()) for a, b in pairs]
        )
        return counts, {pair: int(m.item()) for pair, m in zip(pairs, matched, strict=True)}

    def read_identifiers(self, source: Path) -> list[str]:
        """The identifiers of an opt-out file: a CSV with a column ``nhs_number``, or one per line."""
        if not source.is_file():
            raise InvalidInput(f"{source} does not exist")
        try:
            text = source.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{source.name} is not UTF-8 text") from None
        rows = [r for r in csv.reader(text.splitlines()) if any(cell.strip() for cell in r)]
        if not rows:
            raise InvalidInput(f"{source.name} is empty")
        header = [h.strip().lower() for h in rows[0]]
        column = header.index("nhs_number") if "nhs_number" in header else None
        body = rows[1:] if column is not None or not NHS_LIKE.match(rows[0][0].replace(" ", "")) else rows
        idx = column or 0
        return [
            r[idx].replace(" ", "").replace("-", "").strip() for r in body if len(r) > idx and r[idx].strip()
        ]
