"""The ingest pipeline: validate, quarantine, opt out, pseudonymise, generalise, write a new version.

Everything runs on Polars' streaming engine over ``scan_csv``/``scan_parquet``, so an extract is never
one giant DataFrame: what is held in memory is one entry per distinct identifier (its pseudonym and
row count), each row's person number (32 bits) and two flags (opted out, duplicate) and, to find
duplicate rows, one 64-bit hash per row.
Every source column is read as text and checked by the spec's rules; the first rule a row fails
becomes its quarantine reason. Then, in this order:

1. rows of people on the national data opt-out list are removed (whatever else is wrong with them)
   and only counted;
2. rows with a reason go to the custodian-only quarantine file (raw values plus the reason);
3. the other rows are written to a staging directory with the identifier replaced by its keyed
   pseudonym, direct identifiers dropped and quasi-identifiers generalised. Each row is written once:
   into the version's bounded view, where each person keeps at most the dataset's contribution bound
   of rows and which DP queries run on, or, for the few rows beyond their person's bound, into a file
   of their own; the two together are the table (``enclave/store/layout.py``: ``table_files``).

The source is read three times and nothing is read back: pass 1a reads the identifier column (the
distinct identifiers, each one's row count and each row's person number, all from one sort), pass 1b
hashes every row (duplicates; each line whole, where a CSV file's lines are its rows' values) while a
thread computes the HMAC of each distinct identifier once, and pass 2 zips each row with its person
number and flags as the source streams (``_beside``), evaluates every rule once per row and feeds one
cached stream to all the outputs at once: the bounded view and the rows beyond it (only the rows of
people with more rows than the bound in the extract are sorted), the quarantine file and the counts
of the report. The source's SHA-256 is computed in another thread meanwhile.

The staging directory becomes a version only by one ``rename``; the catalog points at it only when
the database transaction that records the version commits. A crash at any point leaves the previous
version current and intact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from enclave.domain.catalog.datasets import MAX_AGE_BAND_START, PERSON_COLUMN
from enclave.domain.catalog.reports import IngestReport
from enclave.domain.errors import InvalidInput
from enclave.domain.ports import Fault, Progress
from enclave.ingest.bounded import (
    PARQUET,
    as_enums,
    beyond,
    domain_enum,
    excess_metadata,
    ranked,
    view_metadata,
    view_seeds,
    within,
)
from enclave.ingest.spec import (
    AGE_BAND_EDGES,
    Column,
    Generalisation,
    LoadedSpec,
    Role,
)
from enclave.keys import Pseudonymiser
from enclave.store.layout import DATA_FILE, excess_path, view_path

REASON = "_reason"
NORM = "_norm_id"
KEY = "_id_key"
ODD = "_needs_normalising"
DENSE = "_key_rank"
ROW = "_row"
OPTED_OUT = "_opted_out"
CODE = "_person_code"
HEAVY = "_heavy"
NTH = "_nth"
COUNT = "_count"
DUP = "_duplicate"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_format(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PAR1":
        return "parquet"
    if path.suffix.lower() == ".parquet":
        return "parquet"  # claims to be Parquet but lacks the magic: reported by the reader
    return "csv"


def _scan(path: Path, spec: LoadedSpec) -> pl.LazyFrame:
    """A lazy frame of the file with every column as text, after checking its header."""
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name} is empty")
    fmt = detect_format(path)
    try:
        if fmt == "parquet":
            lf = pl.scan_parquet(path)
            header = list(lf.collect_schema().names())
            lf = lf.select(pl.col(c).cast(pl.String) for c in header)
        else:
            with path.open("rb") as handle:
                first = handle.readline()
            try:
                first.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{path.name} is not UTF-8 text: save the extract as UTF-8") from None
            lf = pl.scan_csv(path, infer_schema=False, encoding="utf8")
            # the schema of a scan reads the header only (``read_csv(n_rows=0)`` read the whole file)
            header = list(lf.collect_schema().names())
    except InvalidInput:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path.name, "Parquet" if fmt == "parquet" else "CSV", exc) from None
    declared = [c.name for c in spec.spec.columns]
    missing = [c for c in declared if c not in header]
    extra = [c for c in header if c not in declared]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) the spec declares: {', '.join(missing)}")
        if extra:
            parts.append(f"column(s) the spec does not declare: {', '.join(extra)}")
        raise InvalidInput(f"{path.name} does not match spec {spec.dataset}: " + "; ".join(parts))
    return lf


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _unreadable(name: str, kind: str, exc: BaseException) -> InvalidInput:
    """The custodian's sentence for a file the reader rejects."""
    message = _first_line(exc)
    if "utf-8" in message.lower() or "utf8" in message.lower():
        return InvalidInput(f"{name} is not UTF-8 text: save the extract as UTF-8")
    return InvalidInput(f"cannot read {name} as {kind}: {message}")


def _check_digit_valid(n: pl.Expr) -> pl.Expr:
    """Whether the ten-digit number ``n`` ends with the mod-11 check digit of its first nine
    (weights 10..2). Integer arithmetic (digit i is ``n // 10**(9-i) % 10``) is an order of
    magnitude faster than slicing strings; it is applied to the distinct identifiers only."""
    digits = [(n // 10 ** (9 - i)) % 10 for i in range(10)]
    total = sum((d * (10 - i) for i, d in enumerate(digits[:9])), start=pl.lit(0, dtype=pl.Int64))
    check = (11 - total % 11) % 11
    return cast(pl.Expr, (check != 10) & (check == digits[9]))


def _person_key(col: Column, stripped: pl.Expr) -> pl.Expr:
    """What a row's identifier is looked up by, from its value with surrounding blanks stripped.

    An NHS number is normalised (spaces and hyphens removed) and keyed as an integer, which groups
    and joins several times faster than text; only values that normalise to exactly ten ASCII digits
    get a key, so '0123456789' and '123456789' (or '+123456789', which an integer cast accepts) can
    never meet. Other identifiers are keyed by their stripped text ('' is invalid)."""
    if col.normalise == "nhs_number":
        norm = stripped.str.replace_all(r"[ -]", "")
        return pl.when(norm.str.contains(r"^[0-9]{10}$")).then(norm.cast(pl.Int64, strict=False)).alias(KEY)
    return stripped.alias(KEY)


def _plain_key(stripped: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """The key of an NHS number written as ten bare digits, the common case, with none of
    ``_person_key``'s text rewriting (half its cost): ten bytes that an integer cast reads and that do
    not start with a sign are ten ASCII digits. With it, whether the row may need the full
    normalisation: longer than ten bytes (spaces or hyphens only add)."""
    size = stripped.str.len_bytes()
    plain = (size == 10) & ~stripped.str.starts_with("+") & ~stripped.str.starts_with("-")
    return pl.when(plain).then(stripped.cast(pl.Int64, strict=False)).alias(KEY), (size > 10).alias(ODD)


def _beside(lf: pl.LazyFrame, rows: pl.DataFrame) -> pl.LazyFrame:
    """The rows of ``lf`` with the columns of ``rows`` (one row per row of ``lf``, in order) beside them.

    Zipped row by row as the source streams. A lookup by row number (``pl.lit(values).gather(row)``)
    is not elementwise, and the streaming engine runs such an expression on the whole column in
    memory. Pass 2 had three of them (person number, pseudonym, reason text) and an ``is_in`` per
    category (a join in the streaming engine); making them all elementwise took its peak memory from
    3.5 to 2.1 GB and its page faults from 600,000 to 130,000 for 10M rows. Fresh memory is dear on this
    kind of machine: the kernel's zeroing of new pages was an eighth of the whole ingest's CPU time."""
    return pl.concat([lf, rows.lazy()], how="horizontal")


def _row_keys(lf: pl.LazyFrame, col: Column) -> pl.Series:
    """Every row's key (``_person_key``), in order, from one read of the identifier column; rows whose
    NHS number is written with spaces or hyphens are normalised on a second read of those rows only."""
    stripped = pl.col(col.name).str.strip_chars()
    if col.normalise != "nhs_number":
        return lf.select(_person_key(col, stripped)).collect(engine="streaming").get_column(KEY)
    frame = lf.select(*_plain_key(stripped)).collect(engine="streaming")
    keys = frame.get_column(KEY)
    if frame.get_column(ODD).any():
        odd = (
            _beside(lf, frame.select(ODD))
            .with_row_index(ROW)
            .filter(pl.col(ODD))
            .select(ROW, _person_key(col, stripped))
            .collect(engine="streaming")
        )
        keys = keys.scatter(odd.get_column(ROW), odd.get_column(KEY))
    return keys


_ROW_BITS = 30


def _rows_by_key(keys: pl.Series) -> pl.DataFrame:
    """The rows that have a key (``keys`` in row order, null: none), sorted by it: each one's number
    (``ROW``) and its key's dense rank (``DENSE``: 1 for the smallest key, 2 for the next, ...), which
    is the key's place in the sorted distinct keys.

    One multithreaded sort in a lazy query: ``Series.rank("dense")`` of the same keys took twice as long,
    and the HMAC thread runs beside it. Integer keys that fit in 34 bits (every NHS number: ten digits)
    are sorted together with their row number as one 64-bit integer, ``key << 30 | row``: half the time
    of sorting the rows by key and carrying their numbers along."""
    key = pl.col(KEY)
    frame = keys.to_frame(KEY).lazy()
    if keys.dtype == pl.Int64 and len(keys) <= 1 << _ROW_BITS and not keys.is_empty():
        low, high = keys.min(), keys.max()
        if low is not None and cast(int, low) >= 0 and cast(int, high) < 1 << (64 - _ROW_BITS):
            scale = 1 << _ROW_BITS
            packed = pl.col("_packed")
            key_part = packed // scale
            return (
                frame.select(
                    (key.cast(pl.UInt64) * scale + pl.int_range(pl.len(), dtype=pl.UInt64)).alias("_packed")
                )
                .drop_nulls()
                .sort("_packed")
                .select(
                    (packed % scale).cast(pl.UInt32).alias(ROW),
                    (key_part != key_part.shift(1)).fill_null(True).cum_sum().alias(DENSE),
                )
                .collect()
            )
    return (
        frame.with_row_index(ROW)
        .filter(key.is_not_null())
        .sort(KEY)
        .select(ROW, (key != key.shift(1)).fill_null(True).cum_sum().alias(DENSE))
        .collect()
    )


def _identifiers(col: Column, counted: pl.DataFrame) -> pl.DataFrame:
    """The valid identifiers among the distinct keys of ``counted`` (column ``KEY``, with others
    kept), with ``NORM``: the normalised identifier that is pseudonymised."""
    frame = counted.filter(pl.col(KEY).is_not_null())
    if col.normalise == "nhs_number":
        return frame.filter(_check_digit_valid(pl.col(KEY))).with_columns(
            pl.col(KEY).cast(pl.String).str.zfill(10).alias(NORM)
        )
    return frame.filter(pl.col(KEY).str.len_chars() > 0).with_columns(pl.col(KEY).alias(NORM))


def _pseudonymise(key: bytes, identifiers: pl.Series) -> pl.Series:
    """The pseudonyms of the normalised ``identifiers``, in order. Run in a thread beside Polars, from
    the copy of the values out of Polars (as ``bytes``: see ``Pseudonymiser.many_encoded``) to the
    Series of pseudonyms back."""
    values = identifiers.cast(pl.Binary).to_list()
    return pl.Series(PERSON_COLUMN, Pseudonymiser(key).many_encoded(values), pl.String)


def _parsed_name(col: Column) -> str:
    return f"_p_{col.name}"


def _stripped_name(col: Column) -> str:
    return f"_s_{col.name}"


def _stripped_columns(spec: LoadedSpec) -> list[pl.Expr]:
    """Every checked column with surrounding blanks stripped, computed once per row: the parsers, the
    key and the presence checks all read it (stripping again in each rule cost more than all the
    rules together)."""
    return [
        pl.col(c.name).str.strip_chars().alias(_stripped_name(c))
        for c in spec.spec.columns
        if c.role is not Role.DIRECT_IDENTIFIER
    ]


def _present(col: Column) -> pl.Expr:
    """Whether the row has a value in ``col``: neither null nor blank."""
    return pl.col(_stripped_name(col)).str.len_bytes().fill_null(0) > 0


def _domain(spec: LoadedSpec, col: Column) -> pl.Enum | None:
    """The ``Enum`` of a category column's public domain (None for an empty one, which no value is in).
    A category is parsed into it: a value outside the domain becomes null (an elementwise cast, where
    ``is_in`` becomes a join in the streaming engine), and the bounded view stores it so."""
    domain = next(c.domain for c in spec.columns if c.source == col.name)
    return domain_enum(domain) if domain else None


def _parse(spec: LoadedSpec, col: Column) -> pl.Expr | None:
    """The typed value of a column, computed once per row (None: the column stays text)."""
    raw = pl.col(_stripped_name(col))
    if col.role is Role.NUMERIC:
        return raw.cast(pl.Int64 if col.type == "integer" else pl.Float64, strict=False)
    if col.role is Role.DATE:
        return raw.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if col.role is Role.QUASI_IDENTIFIER:
        if col.generalise is Generalisation.POSTCODE_AREA:
            return raw.str.to_uppercase().str.extract(r"^([A-Z]{1,2})[0-9]", 1)
        return raw.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if col.role is Role.CATEGORY:
        domain = _domain(spec, col)
        return raw if domain is None else raw.cast(domain, strict=False)
    return None


def _parsed_columns(spec: LoadedSpec) -> list[pl.Expr]:
    return [expr.alias(_parsed_name(c)) for c in spec.spec.columns if (expr := _parse(spec, c)) is not None]


def _rules(spec: LoadedSpec) -> tuple[list[tuple[pl.Expr, str]], dict[str, pl.Expr]]:
    """(bad-row condition, reason) in order, and the clamp conditions of numeric columns.

    Conditions read the stripped (``_s_<name>``) and parsed (``_p_<name>``) columns, so each value
    is stripped and parsed once."""
    rules: list[tuple[pl.Expr, str]] = []
    clamps: dict[str, pl.Expr] = {}
    for col in spec.spec.columns:
        if col.role is Role.DIRECT_IDENTIFIER:
            continue
        present = _present(col)
        if col.role is Role.PERSON_ID:
            # Validity was decided once per distinct identifier: invalid ones have no person number.
            rules.append((~present, f"{col.name}: missing person identifier"))
            rules.append((pl.col(CODE).is_null(), f"{col.name}: invalid identifier (format or check digit)"))
            continue
        if not col.nullable:
            rules.append((~present, f"{col.name}: missing value"))
        parsed = pl.col(_parsed_name(col))
        if col.role is Role.CATEGORY:
            outside = parsed.is_null() if _domain(spec, col) is not None else pl.lit(True)
            rules.append((present & outside, f"{col.name}: value outside its public domain"))
        elif col.role is Role.NUMERIC:
            assert col.bounds is not None
            lo, hi = col.bounds
            kind = "an integer" if col.type == "integer" else "a number"
            bad = parsed.is_null() | parsed.is_nan() if col.type == "decimal" else parsed.is_null()
            rules.append((present & bad, f"{col.name}: not {kind}"))
            outside = present & ((parsed < lo) | (parsed > hi))
            if col.out_of_bounds == "quarantine":
                rules.append((outside, f"{col.name}: outside bounds [{lo:g}, {hi:g}]"))
            else:
                clamps[col.name] = outside
        elif col.role is Role.DATE:
            assert col.range is not None
            first, last = col.range
            rules.append((present & parsed.is_null(), f"{col.name}: not a date (YYYY-MM-DD)"))
            rules.append(
                (present & ((parsed < first) | (parsed > last)), f"{col.name}: outside {first}..{last}")
            )
        elif col.role is Role.QUASI_IDENTIFIER:
            if col.generalise is Generalisation.POSTCODE_AREA:
                rules.append((present & parsed.is_null(), f"{col.name}: not a UK postcode"))
            else:
                rules.append((present & parsed.is_null(), f"{col.name}: not a date (YYYY-MM-DD)"))
                if col.reference_date is not None:
                    rules.append(
                        (present & (parsed > col.reference_date), f"{col.name}: after the reference date")
                    )
    return rules, clamps


DUPLICATE = "duplicate row"
ROW_HASH = "_row_hash"
_ROW_HASH_SEED = 0x5EED


def _row_hash(spec: LoadedSpec) -> pl.Expr:
    """A 64-bit hash of a row's raw values, computed row by row in the first pass.

    Duplicates are then found on this one column, which is an order of magnitude faster than
    comparing whole rows. A false duplicate would need two distinct rows with equal 64-bit hashes
    (about 3 in a million for 10M rows); it would go to quarantine, where the custodian sees it:
    never a silent loss."""
    return pl.struct([c.name for c in spec.spec.columns]).hash(_ROW_HASH_SEED).alias(ROW_HASH)


def _line_hashes(path: Path, rows: int) -> pl.Series | None:
    """A 64-bit hash of each record's line in a CSV file, in record order, where equal lines are
    exactly equal rows; otherwise None, and the rows are hashed by their values.

    Reading each line whole (no quotes, a separator byte that UTF-8 text does not hold) skips splitting
    it into fields, which is five times cheaper than hashing the parsed values. Two lines are then the
    same row as values exactly when no field is quoted (``"x"`` and ``x`` are the same value) and the
    lines are the records: there are exactly as many as the ``rows`` the CSV parser found (a line
    break inside quotes only adds lines; a blank line is a row of nulls to both reads). A file with a
    quote, a NUL byte or a read error gets None."""
    try:
        lines = pl.scan_csv(path, separator="\x00", quote_char=None, infer_schema=False, encoding="utf8")
        line = pl.first()
        frame = lines.select(
            line.hash(_ROW_HASH_SEED).alias(ROW_HASH), line.str.contains('"', literal=True).alias("quoted")
        ).collect(engine="streaming")
    except pl.exceptions.PolarsError:
        return None
    if frame.height != rows or frame.get_column("quoted").any():
        return None
    return frame.get_column(ROW_HASH)


def _duplicate_rows(hashes: pl.Series) -> pl.Series:
    """The numbers of the rows whose hash an earlier row already has (the first of each stays).

    A sort finds the hashes that occur more than once (few, in any real extract); only the rows with
    those are then looked at in order, which is several times faster than ``is_first_distinct`` over
    every row."""
    ordered = hashes.sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    candidates = (
        hashes.to_frame(ROW_HASH).with_row_index(ROW).filter(pl.col(ROW_HASH).is_in(repeated.implode()))
    )
    return candidates.filter(~pl.col(ROW_HASH).is_first_distinct()).get_column(ROW)


def _reasons(rules: list[tuple[pl.Expr, str]]) -> list[str]:
    """The distinct reasons of ``rules``, in order: a reason's number is its place in this list."""
    return list(dict.fromkeys(reason for _, reason in rules))


def _first_failed(rules: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """The number of the reason of the first rule a row fails (null: none). A number per row instead of
    the reason's text is four times cheaper to compute; the text is looked up for the quarantined rows
    only (``_reason_text``)."""
    if not rules:
        return pl.lit(None, dtype=pl.UInt16)
    numbers = {reason: number for number, reason in enumerate(_reasons(rules))}
    chain: Any = pl
    for cond, reason in rules:
        chain = chain.when(cond.fill_null(False)).then(pl.lit(numbers[reason], dtype=pl.UInt16))
    return cast(pl.Expr, chain.otherwise(pl.lit(None, dtype=pl.UInt16)))


def _reason_text(rules: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """The reason numbered in ``REASON``: a cast of the number to an ``Enum`` of the reasons, whose
    physical value it is. That is elementwise, where a lookup (``gather``) in the list of reasons is not
    (see ``_beside``)."""
    return pl.col(REASON).cast(pl.Enum(_reasons(rules)))


def _age_band(dob: pl.Expr, reference: date, width: int) -> pl.Expr:
    ref = pl.lit(reference)
    years = ref.dt.year() - dob.dt.year()
    had_birthday = (ref.dt.month() > dob.dt.month()) | (
        (ref.dt.month() == dob.dt.month()) & (ref.dt.day() >= dob.dt.day())
    )
    age = years - (~had_birthday).cast(pl.Int32)
    start = (age // width) * width
    band = start.cast(pl.String) + "-" + (start + width - 1).cast(pl.String)
    return pl.when(age >= MAX_AGE_BAND_START).then(pl.lit(f"{MAX_AGE_BAND_START}+")).otherwise(band)


def _outputs(spec: LoadedSpec, pseudonyms: pl.Series) -> list[pl.Expr]:
    """The research store's columns, from the parsed values and the person number (``pseudonyms`` in
    person-number order).

    The pseudonym is fetched here, for the rows written only, instead of being carried through the
    rules and the filters of every row (a pass that only counted the quarantined rows touched about
    1 GB more fresh memory with it)."""
    exprs: list[pl.Expr] = []
    for col in spec.spec.columns:
        out = col.output_name
        if out is None:
            continue
        if col.role is Role.PERSON_ID:
            # Per batch of rows as they stream: a gather from a literal is not elementwise and would run
            # in memory (``_beside``).
            by_code = pl.col(CODE).map_batches(pseudonyms.gather, return_dtype=pl.String, is_elementwise=True)
            exprs.append(by_code.alias(PERSON_COLUMN))
            continue
        parsed = pl.col(_parsed_name(col))
        if col.role is Role.NUMERIC:
            assert col.bounds is not None
            lo, hi = col.bounds
            bounds = (int(lo), int(hi)) if col.type == "integer" else (lo, hi)
            exprs.append(parsed.clip(*bounds).alias(out))
        elif col.role is Role.QUASI_IDENTIFIER and col.generalise is Generalisation.YEAR_OF_BIRTH:
            exprs.append(parsed.dt.year().cast(pl.Int64).alias(out))
        elif col.role is Role.QUASI_IDENTIFIER and col.generalise in AGE_BAND_EDGES:
            assert col.generalise is not None
            assert col.reference_date is not None
            exprs.append(_age_band(parsed, col.reference_date, AGE_BAND_EDGES[col.generalise]).alias(out))
        else:
            exprs.append(parsed.alias(out))
    return exprs


def _public_categories(spec: LoadedSpec) -> dict[str, list[str]]:
    """Category columns and their public domains, for the bounded view's ``Enum`` columns: only those
    whose every written value the rules have checked to be in the domain."""
    resolved = {c.source: c for c in spec.columns}
    return {
        resolved[c.name].name: list(domain)
        for c in spec.spec.columns
        if c.role is Role.CATEGORY and (domain := resolved[c.name].domain)
    }


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries (a rename into it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for child in path.iterdir():
        fsync_path(child)
    fsync_path(path)


def _persons_written(people: pl.DataFrame, rejected: pl.DataFrame) -> int:
    """How many persons have a row in the data: those not opted out with more rows than were
    quarantined (``rejected``: quarantined rows per person number). Counting distinct persons from
    the few quarantined rows is much cheaper than over every written row."""
    quarantined = people.join(rejected, on=CODE, how="left", suffix="_quarantined").select(
        pl.col(f"{COUNT}_quarantined").fill_null(0).alias("q"), COUNT, OPTED_OUT
    )
    return quarantined.filter(~pl.col(OPTED_OUT) & (pl.col(COUNT) > pl.col("q"))).height


@dataclass
class Staged:
    """A validated, written, not yet published version."""

    directory: Path
    report: IngestReport


def stage(
    spec: LoadedSpec,
    source: Path,
    *,
    linkage_key: bytes,
    opt_outs: pl.DataFrame,
    dataset_dir: Path,
    quarantine_dir: Path,
    source_name: str | None = None,
    fault: Fault | None = None,
    progress: Progress | None = None,
) -> Staged:
    """Validate and write ``source`` into a fresh staging directory under ``dataset_dir``.

    ``opt_outs`` has one column ``person_id`` of linkage pseudonyms. Nothing outside the staging
    directory and one new quarantine file is written; on any error both are removed.
    """
    started = time.perf_counter()
    report = IngestReport(spec.dataset, source_name or source.name, "")
    say = progress or (lambda _: None)
    lf = _scan(source, spec)
    # The source is read several times (and hashed alongside): a file that changes in between would
    # give passes that disagree, so its identity is compared at the end.
    identity = _file_identity(source)
    person = spec.spec.person_column
    bound = spec.spec.contribution_bound
    dedupe = spec.spec.duplicates == "quarantine"

    dataset_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.chmod(0o700)
    staging = dataset_dir / f".staging-{uuid.uuid4().hex[:12]}"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    quarantine_file = quarantine_dir / f"{spec.dataset}-{stamp}-{staging.name[-12:]}.csv"
    data_file = staging / DATA_FILE
    # Two threads work beside Polars, which releases the GIL while it runs a query: the source's
    # SHA-256 (hashlib and file reads release the GIL on large blocks too) and the HMAC of the
    # identifiers, which runs while Polars hashes the rows for duplicates.
    with ThreadPoolExecutor(max_workers=2) as pool:
        digest = pool.submit(sha256_file, source)
        say(f"reading the identifiers of {source.name} (pass 1 of 3)")
        try:
            # Pass 1a, the identifier column only: each row's key, kept in memory (8 bytes a row).
            keys = _row_keys(lf, person)
        except pl.exceptions.PolarsError as exc:
            raise _read_error(source, identity, exc) from None
        report.rows_read = len(keys)
        if report.rows_read == 0:
            raise InvalidInput(f"{source.name} has a header but no rows")
        # The distinct keys, sorted: a key's dense rank (1, 2, ...) is its place in this list. The sort of
        # every row below would give them too, but finding them first (about 0.3 s for 10M rows) lets the
        # HMACs, the longest path from here to pass 2, start that much sooner.
        distinct = keys.drop_nulls().unique().sort()
        ids = _identifiers(person, distinct.to_frame(KEY).with_row_index(DENSE, offset=1))
        # Each valid distinct identifier is pseudonymised once, in a thread, while the rows are ranked
        # and hashed.
        pseudonyms = pool.submit(_pseudonymise, linkage_key, ids.get_column(NORM))
        say(
            f"pseudonymising {ids.height:,} identifiers and looking for duplicates among"
            f" {report.rows_read:,} rows (pass 2 of 3)"
        )
        # A sort ranks the rows' keys several times faster than a hash table groups them, and gives
        # every row the number of its key, which pass 2 looks up by row number instead of by key.
        by_key = _rows_by_key(keys)
        del keys
        counts = np.bincount(by_key.get_column(DENSE).to_numpy(), minlength=len(distinct) + 1)
        # Each person's number (``CODE``), which every row gets and fetches its pseudonym by: the valid
        # identifiers in key order, those with more rows than the contribution bound (so that the bounded
        # view must choose among their rows) first, which makes that flag a comparison of the number.
        # All of this is done before the HMACs are waited for.
        people = (
            ids.select(DENSE, pl.lit(pl.Series(COUNT, counts, pl.UInt32)).gather(pl.col(DENSE)))
            .with_row_index(NTH)
            .sort(pl.col(COUNT) > bound, descending=True, maintain_order=True)
            .with_row_index(CODE)
        )
        heavy_below = int((people.get_column(COUNT) > bound).sum())
        # Each row's person number, by its key's rank (null: no key, or an invalid one).
        by_rank = pl.repeat(None, len(distinct) + 1, dtype=pl.UInt32, eager=True).scatter(
            people.get_column(DENSE), people.get_column(CODE)
        )
        codes = pl.repeat(None, report.rows_read, dtype=pl.UInt32, eager=True).scatter(
            by_key.get_column(ROW), by_rank.gather(by_key.get_column(DENSE))
        )
        del by_key, by_rank, distinct, ids
        duplicates = pl.Series(ROW, [], pl.UInt32)
        if dedupe:
            # Pass 1b: a hash of every row, in order, to find the duplicate rows: of its line in a CSV
            # file, else of its values.
            hashes = _line_hashes(source, report.rows_read) if detect_format(source) == "csv" else None
            if hashes is None:
                try:
                    hashes = lf.select(_row_hash(spec)).collect(engine="streaming").get_column(ROW_HASH)
                except pl.exceptions.PolarsError as exc:
                    raise _read_error(source, identity, exc) from None
            duplicates = _duplicate_rows(hashes)
            del hashes
        # The pseudonyms in person-number order, and who is on the national data opt-out list.
        people = people.select(
            CODE,
            COUNT,
            pl.lit(pseudonyms.result()).gather(pl.col(NTH)).alias(PERSON_COLUMN),
        ).with_columns(
            pl.col(PERSON_COLUMN).is_in(opt_outs.get_column(PERSON_COLUMN).implode()).alias(OPTED_OUT)
        )
        del pseudonyms
        if fault:
            fault("pseudonymised")

        say(f"validating {report.rows_read:,} rows and writing the new version (pass 3 of 3)")
        rules, clamps = _rules(spec)
        # What pass 2 needs of each row beyond its values: its person number, whether that person opted
        # out and whether the row repeats an earlier one (1 bit a row each).
        repeats = pl.repeat(False, report.rows_read, eager=True)
        if len(duplicates):
            repeats = repeats.scatter(duplicates, True)
            rules.append((pl.col(DUP), DUPLICATE))
        opted = people.get_column(OPTED_OUT).gather(codes).fill_null(False)
        rows = pl.DataFrame([codes.alias(CODE), opted.alias(OPTED_OUT), repeats.alias(DUP)])
        del codes, duplicates, repeats, opted
        code = pl.col(CODE)
        # Pass 2 (the second and last read of the source): every rule is evaluated once per row, and
        # the cached result feeds every output at once, so nothing is written twice or read back.
        prepared = (
            _beside(lf, rows)
            .with_columns(*_stripped_columns(spec))
            .with_columns(*_parsed_columns(spec))
            .with_columns((code < heavy_below).fill_null(False).alias(HEAVY))
            .with_columns(
                _first_failed(rules).alias(REASON),
                *[c.alias(f"_clamp_{n}") for n, c in clamps.items()],
            )
            .cache()
        )
        ok = pl.col(REASON).is_null() & ~pl.col(OPTED_OUT)
        kept = prepared.filter(ok)
        rejected = prepared.filter(pl.col(REASON).is_not_null() & ~pl.col(OPTED_OUT))
        outputs = _outputs(spec, people.get_column(PERSON_COLUMN))
        columns = [e.meta.output_name() for e in outputs]
        written = kept.select(*outputs, CODE, HEAVY)
        # Each written row is stored once (enclave/ingest/bounded.py): in the bounded view, or among
        # the rows beyond the bound. People with at most ``bound`` rows in the whole extract keep
        # them all and stream straight into the view; only the rows of the others are sorted, once,
        # and split.
        heavy = written.filter(pl.col(HEAVY))
        # Categories are parsed into their domain's Enum, which is how the view stores them; the rows
        # are ranked on their text, as ``write_view`` ranks the rows of a full file, and cast back.
        categories = _public_categories(spec)
        heavy_text = heavy.with_columns(pl.col(c).cast(pl.String) for c in categories)
        sorted_heavy = (
            ranked(heavy_text, columns, CODE, view_seeds(linkage_key, spec.dataset))
            .with_columns(as_enums(categories))
            .cache()
        )
        view = pl.concat(
            [written.filter(~pl.col(HEAVY)).select(columns), within(sorted_heavy, bound)], how="vertical"
        )

        staging.mkdir()
        try:
            _, _, _, stats, reasons_df, rejected_counts, heavy_counts = pl.collect_all(
                [
                    view.sink_parquet(
                        view_path(data_file), lazy=True, metadata=view_metadata(bound, DATA_FILE), **PARQUET
                    ),
                    beyond(sorted_heavy, bound).sink_parquet(
                        excess_path(data_file), lazy=True, metadata=excess_metadata(DATA_FILE), **PARQUET
                    ),
                    rejected.select(
                        *[c.name for c in spec.spec.columns], _reason_text(rules).alias("quarantine_reason")
                    ).sink_csv(quarantine_file, lazy=True),
                    prepared.select(
                        ok.sum().alias("written"),
                        (pl.col(REASON).is_not_null() & ~pl.col(OPTED_OUT)).sum().alias("quarantined"),
                        pl.col(OPTED_OUT).sum().alias("opted_out"),
                        *[(pl.col(f"_clamp_{n}").fill_null(False) & ok).sum().alias(n) for n in clamps],
                    ),
                    rejected.group_by(REASON).agg(pl.len()).select(_reason_text(rules), pl.col("len")),
                    rejected.group_by(CODE).agg(pl.len().alias(COUNT)),
                    heavy.group_by(CODE).agg(pl.len().alias(COUNT)),
                ],
                engine="streaming",
            )
            if fault:
                fault("written")
            row = stats.row(0, named=True)
            report.rows_written = int(row["written"] or 0)
            report.rows_quarantined = int(row["quarantined"] or 0)
            report.rows_opted_out = int(row["opted_out"] or 0)
            report.clamped = {n: int(row[n] or 0) for n in clamps}
            report.reasons = dict(sorted((r, int(n)) for r, n in reasons_df.iter_rows()))
            report.persons = _persons_written(people, rejected_counts)
            over = heavy_counts.filter(pl.col(COUNT) > bound)
            report.rows_over_bound = int((over.get_column(COUNT) - bound).sum() or 0)
            report.persons_over_bound = over.height
            if report.rows_quarantined:
                quarantine_file.chmod(0o600)
                report.quarantine_file = quarantine_file.name
            else:
                quarantine_file.unlink(missing_ok=True)
            if report.rows_written == 0:
                raise InvalidInput(
                    f"no row of {source.name} passed validation ({report.rows_quarantined} quarantined,"
                    f" {report.rows_opted_out} opted out): nothing to publish; see the ingest report"
                )
            report.source_sha256 = digest.result()
            if _file_identity(source) != identity:
                raise _changed(source)
            _fsync_tree(staging)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            quarantine_file.unlink(missing_ok=True)
            if isinstance(exc, pl.exceptions.PolarsError):
                raise _read_error(source, identity, exc) from None
            raise
    report.seconds = time.perf_counter() - started
    return Staged(staging, report)


def _changed(source: Path) -> InvalidInput:
    return InvalidInput(
        f"{source.name} changed while it was being ingested: nothing was published; ingest it again once"
        " the file is complete"
    )


def _read_error(source: Path, identity: tuple[int, int, int], exc: BaseException) -> InvalidInput:
    """The custodian's sentence for a pass that failed: the file changed under it (a later pass over a
    longer file finds rows the first did not number), or the reader rejects it."""
    if _file_identity(source) != identity:
        return _changed(source)
    return _unreadable(source.name, detect_format(source), exc)


def _file_identity(path: Path) -> tuple[int, int, int]:
    """What tells a file from a rewritten one: size, modification time (ns) and inode."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def publish(staged: Staged, version: int) -> Path:
    """Make the staged directory a version with one atomic rename; return its path."""
    target = staged.directory.parent / f"v{version:04d}-{staged.directory.name[-12:]}"
    os.rename(staged.directory, target)
    fsync_path(target.parent)
    return target


def discard(staged: Staged) -> None:
    shutil.rmtree(staged.directory, ignore_errors=True)


def remove_stale_staging(dataset_dir: Path) -> int:
    """Staging directories left by a crash are never published; remove them (under the dataset lock)."""
    removed = 0
    if dataset_dir.is_dir():
        for child in dataset_dir.glob(".staging-*"):
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return removed
