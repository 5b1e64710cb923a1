"""Automated disclosure checks on output files, recorded as a machine-readable record.

Each rule is a named function that looks at one file (after :func:`enclave.airlock.files.intake`)
and returns a ``CheckResult`` - ``pass``, ``warn`` or ``fail`` - with a sentence a reviewer
understands and the cells concerned (row and column, never the value: messages must not carry
data). The thresholds live in a versioned ``Policy`` that is recorded with every result, so a
reviewer (or an auditor years later) knows which rules and numbers a file was checked against; the
``CheckRecord`` serialises to JSON in the spirit of SATRE's disclosure-check record. Those three,
and what the rules are given, are the domain's (:mod:`enclave.domain.outputs.checks`).

The rules follow the SACRO/ACRO statistical disclosure control checks, made aware of differential
privacy: in this enclave researchers never see a row, so nearly every number in an output comes
from a DP release the enclave recorded, and *provenance* (every number traceable to this project's
release ledger) is the strongest check. The others catch what slips past it:

==============================  ======================================================================
rule                            fails when
==============================  ======================================================================
``file_type``                   the content is not what the file name says
``row_level.too_many_rows``     a table has more rows than an aggregate table plausibly has
``row_level.identifier_column`` a column is named like, or looks like, an identifier or pseudonym
``row_level.pseudonym``         a cell equals a known pseudonym (the store's or this project's)
``small_counts``                a count is below the threshold (zeros only warn)
``dominance``                   the n largest contributors make up more than k of a cell's total
``p_ratio``                     the rest of a cell's total estimates the largest contributor to p
``provenance``                  a number is not a released value (allowing the declared rounding)
``differencing``                a cell equals a small difference of two released values
``intake``                      (warns) intake neutralised spreadsheet formulas in the file
``manual_review``               (warns) figures and text: the table rules cannot read them
==============================  ======================================================================

How a table declares what its columns are (:class:`TableSpec`): *count* columns are named by the
researcher, or recognised by name (``n``, ``count``, ``freq``, ``n_*``, ``count_*``, ``*_n``,
``*_count``), or, when none is named so, every column whose cells are all whole numbers. Contributor
magnitudes for the dominance and p-ratio rules cannot come from the researcher, who never sees an
individual's value: the service supplies them as :class:`Contributions` (computed by the data layer,
or mapped from an imported ACRO results file), one per magnitude column, aligned with the table rows.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd  # type: ignore[import-untyped]

from enclave.airlock.files import detect_kind
from enclave.domain.errors import InvalidInput
from enclave.domain.outputs.checks import (
    DEFAULT_POLICY,
    Cell,
    CheckContext,
    CheckRecord,
    CheckResult,
    Contributions,
    Policy,
    Released,
    Rounding,
    Status,
    TableSpec,
    round_at,
)
from enclave.domain.outputs.files import IMAGE_KINDS, TABLE_KINDS, FileKind, SanitisedFile

# --- running ----------------------------------------------------------------------------------------


def run_checks(
    file: SanitisedFile,
    context: CheckContext | None = None,
    spec: TableSpec | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> CheckRecord:
    """Every rule that applies to ``file``, as a record to store with the request version."""
    context = context or CheckContext()
    spec = spec or TableSpec()
    threshold = policy.threshold(context.min_count)
    results = [check_file_type(file.name, file.content, file.kind), check_intake(file)]
    if file.kind in TABLE_KINDS:
        table = read_table(file)
        ledger = Ledger.of(context.released)
        counts = count_columns(table, spec.count_columns)
        results += [
            check_too_many_rows(table, policy),
            check_identifier_columns(table, policy),
            check_pseudonyms(table, context.pseudonyms, policy),
            check_small_counts(table, counts, threshold, policy),
            check_dominance(table, spec.contributions, policy),
            check_p_ratio(table, spec.contributions, policy),
            check_provenance(table, ledger, spec.rounding, policy),
            check_differencing(table, ledger, spec.rounding, threshold, policy),
        ]
    else:
        results.append(
            CheckResult(
                "manual_review",
                Status.WARN,
                f"{'figures' if file.kind in IMAGE_KINDS else 'free text and documents'} cannot be checked"
                " automatically: check that every number shown comes from a released, checked table",
            )
        )
    return CheckRecord(
        file=file.name,
        sha256=file.sha256,
        kind=file.kind,
        policy=policy,
        threshold=threshold,
        rounding=spec.rounding,
        intake_changes=file.changes,
        results=tuple(results),
    )


def read_table(file: SanitisedFile) -> pd.DataFrame:
    """The table as strings, exactly as written (no NA guessing, no type inference)."""
    if file.kind not in TABLE_KINDS:
        raise InvalidInput(f"{file.name} is not a table")
    return pd.read_csv(
        io.BytesIO(file.content),
        sep="\t" if file.kind is FileKind.TSV else ",",
        dtype=str,
        keep_default_na=False,
        na_filter=False,
    )


# --- numbers ----------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def parse_number(text: str) -> Decimal | None:
    """A cell's number as written, or None for anything that is not a plain number."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _decimals_shown(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _to_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return d if d.is_finite() else None


def _numbers(table: pd.DataFrame) -> Iterator[tuple[Cell, Decimal]]:
    for column in table.columns:
        for row, text in enumerate(table[column], start=1):
            value = parse_number(str(text))
            if value is not None:
                yield (row, str(column)), value


class _Matcher:
    """Is a number, as written, one of a set of values, allowing declared and display rounding?

    Display rounding: a cell written with d decimals matches a value rounded to d decimals, because
    a researcher who prints 12.35 for a released 12.3456 has not changed where the number came from.
    """

    def __init__(self, values: Iterable[Decimal], rounding: Rounding) -> None:
        self._values = sorted(set(values))
        self._exact = set(self._values)
        self._declared = {r for v in self._values for r in rounding.apply(v)}
        self._shown: dict[int, set[Decimal]] = {}

    def __bool__(self) -> bool:
        return bool(self._values)

    def matches(self, cell: Decimal) -> bool:
        if cell in self._exact or cell in self._declared:
            return True
        d = min(_decimals_shown(cell), 12)
        if d not in self._shown:
            self._shown[d] = {r for v in self._values for r in round_at(v, -d)}
        return cell in self._shown[d]


@dataclass(frozen=True)
class Ledger:
    """The numbers of this project's releases: aggregate values, and group-key values (public)."""

    aggregates: tuple[Decimal, ...]
    keys: tuple[Decimal, ...]

    @classmethod
    def of(cls, released: Sequence[Released]) -> Ledger:
        aggregates: list[Decimal] = []
        keys: list[Decimal] = []
        for item in released:
            plain = _to_decimal(item)
            if plain is not None:
                aggregates.append(plain)
                continue
            if isinstance(item, int | float | Decimal):
                continue  # NaN or infinity: not a number a table can show
            group_by = set(item.plan.group_by)
            for row in item.values:
                for name, value in row.items():
                    number = _to_decimal(value)
                    if number is not None:
                        (keys if name in group_by else aggregates).append(number)
        return cls(tuple(aggregates), tuple(keys))

    def small_differences(self, threshold: int) -> set[Decimal]:
        """Every positive difference below ``threshold`` between two released aggregate values."""
        values = sorted(set(self.aggregates))
        limit = Decimal(threshold)
        found: set[Decimal] = set()
        for i, low in enumerate(values):
            for high in values[i + 1 :]:
                diff = high - low
                if diff >= limit:
                    break
                found.add(diff)
        return found


# --- rules ----------------------------------------------------------------------------------------

_FILE_TYPE_COMPATIBLE: dict[FileKind, frozenset[FileKind]] = {
    FileKind.CSV: frozenset({FileKind.CSV, FileKind.TEXT}),  # a one-column CSV reads as plain text
    FileKind.TSV: frozenset({FileKind.TSV, FileKind.TEXT}),
    FileKind.TEXT: frozenset({FileKind.TEXT, FileKind.CSV, FileKind.TSV}),
    FileKind.MARKDOWN: frozenset({FileKind.TEXT, FileKind.CSV, FileKind.TSV}),
}


def check_file_type(name: str, content: bytes, declared: FileKind) -> CheckResult:
    """The content, read on its own (magic bytes, then parsing), is the kind the name declares."""
    found = detect_kind(content)
    accepted = _FILE_TYPE_COMPATIBLE.get(declared, frozenset({declared}))
    if found in accepted:
        return CheckResult("file_type", Status.PASS, f"the content is {declared.value}, as the name says")
    what = "not a type the airlock accepts" if found is None else found.value
    return CheckResult(
        "file_type", Status.FAIL, f"{name} is named as {declared.value} but its content is {what}"
    )


def check_intake(file: SanitisedFile) -> CheckResult:
    """What intake changed; neutralised formulas warn because the researcher's table was altered."""
    if not file.changes:
        return CheckResult("intake", Status.PASS, "accepted unchanged")
    altered = any("formula" in c for c in file.changes)
    return CheckResult("intake", Status.WARN if altered else Status.PASS, "; ".join(file.changes))


def check_too_many_rows(table: pd.DataFrame, policy: Policy = DEFAULT_POLICY) -> CheckResult:
    rule = "row_level.too_many_rows"
    if len(table) > policy.max_table_rows:
        return CheckResult(
            rule,
            Status.FAIL,
            f"the table has {len(table)} rows, more than the {policy.max_table_rows} an aggregate table"
            " may have; it may be row-level data",
        )
    return CheckResult(rule, Status.PASS, f"{len(table)} rows, within the limit of {policy.max_table_rows}")


_IDENTIFIER_NAME = re.compile(
    r"^(.*_)?(id|ids|uuid|guid|pseudonym|pseudo_id|nhs_number|nhsnumber|nir|ssn|mrn|email|e_mail|phone"
    r"|phone_number|postcode|post_code|zip_code|zipcode|dob|date_of_birth|birth_date|birthdate)$"
    r"|^(patient|person|subject|participant|individual|user)_?(key|no|number|ref)$"
    r"|^(first|last|sur|full|given|family)_?name$"
)
_TOKEN = re.compile(r"[0-9A-Za-z_\-+/=]{8,}")
_HASH = re.compile(r"[0-9a-fA-F]{32,}")
_DATE = re.compile(r"\d{4}-\d{2}(-\d{2})?([T ][\d:.]+)?|\d{1,2}/\d{1,2}/\d{2,4}")


def _normalise_column(name: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def check_identifier_columns(table: pd.DataFrame, policy: Policy = DEFAULT_POLICY) -> CheckResult:
    """A column named like an identifier, holding hashes, or distinct tokens on every row."""
    rule = "row_level.identifier_column"
    flagged: list[str] = []
    for column in table.columns:
        name = str(column)
        cells = [str(v).strip() for v in table[column] if str(v).strip()]
        by_name = _IDENTIFIER_NAME.match(_normalise_column(name)) is not None
        hashes = bool(cells) and all(_HASH.fullmatch(v) for v in cells)
        tokens = (
            len(cells) >= policy.identifier_min_rows
            and len(set(cells)) == len(cells)
            and all(_TOKEN.fullmatch(v) and any(ch.isdigit() for ch in v) for v in cells)
            and not any(_DATE.fullmatch(v) for v in cells)  # a daily series is not an identifier
            and not all(parse_number(v) is not None for v in cells)
        )
        if by_name or hashes or tokens:
            flagged.append(name)
    if flagged:
        return CheckResult(
            rule,
            Status.FAIL,
            f"column(s) {', '.join(flagged)} look like identifiers (by name, or a distinct code on every"
            " row); identifiers must not leave the enclave",
        )
    return CheckResult(rule, Status.PASS, "no column looks like an identifier")


def check_pseudonyms(
    table: pd.DataFrame, pseudonyms: frozenset[str], policy: Policy = DEFAULT_POLICY
) -> CheckResult:
    """Any cell equal to a known pseudonym is row-level data, whatever its column is called."""
    rule = "row_level.pseudonym"
    hits: list[Cell] = []
    if pseudonyms:
        for column in table.columns:
            for row, text in enumerate(table[column], start=1):
                if str(text).strip() in pseudonyms:
                    hits.append((row, str(column)))
    if hits:
        return CheckResult(
            rule,
            Status.FAIL,
            f"{len(hits)} cell(s) hold a person pseudonym ({_where(hits)}); person-level values must not"
            " leave the enclave",
            _listed(hits, policy),
        )
    return CheckResult(rule, Status.PASS, f"no cell matches any of the {len(pseudonyms)} known pseudonyms")


_COUNT_NAME = re.compile(
    r"^(n|count|counts|freq|frequency|number)$|^(n|count|num|number)_|_(n|count|counts|freq)$"
)


def count_columns(table: pd.DataFrame, declared: Sequence[str] | None = None) -> tuple[str, ...]:
    """The columns the small-count rule reads: declared, else named like counts, else whole numbers."""
    names = [str(c) for c in table.columns]
    if declared is not None:
        unknown = [c for c in declared if c not in names]
        if unknown:
            raise InvalidInput(f"declared count column(s) {', '.join(unknown)} are not in the table")
        return tuple(declared)
    by_name = tuple(n for n in names if _COUNT_NAME.search(_normalise_column(n)))
    if by_name:
        return by_name
    whole: list[str] = []
    for name in names:
        values = [parse_number(str(v)) for v in table[name] if str(v).strip()]
        if values and all(v is not None and v == v.to_integral_value() for v in values):
            whole.append(name)
    return tuple(whole)


def check_small_counts(
    table: pd.DataFrame, counts: Sequence[str], threshold: int, policy: Policy = DEFAULT_POLICY
) -> CheckResult:
    """Counts below the threshold fail; zeros warn (a structural zero can disclose as much)."""
    rule = "small_counts"
    small: list[Cell] = []
    zeros: list[Cell] = []
    for column in counts:
        for row, text in enumerate(table[column], start=1):
            value = parse_number(str(text))
            if value is None:
                continue
            if value == 0:
                zeros.append((row, column))
            elif value < threshold:
                small.append((row, column))
    if small:
        return CheckResult(
            rule,
            Status.FAIL,
            f"{len(small)} count(s) below the threshold of {threshold} ({_where(small)}); suppress, combine"
            " categories or round them",
            _listed(small, policy),
        )
    if zeros:
        return CheckResult(
            rule,
            Status.WARN,
            f"{len(zeros)} zero count(s) ({_where(zeros)}); check that a zero does not disclose something"
            " about a group",
            _listed(zeros, policy),
        )
    checked = ", ".join(counts) or "none found"
    return CheckResult(rule, Status.PASS, f"every count is at least {threshold} (count columns: {checked})")


def _magnitudes(
    table: pd.DataFrame, contributions: Sequence[Contributions]
) -> Iterator[tuple[Cell, Decimal, tuple[Decimal, ...]]]:
    for c in contributions:
        if c.column not in table.columns:
            raise InvalidInput(
                f"contributions are given for {c.column!r}, which is not a column of the table"
            )
        if len(c.top) != len(table):
            raise InvalidInput(
                f"contributions for {c.column!r} cover {len(c.top)} rows; the table has {len(table)}"
            )
        for row, (text, top) in enumerate(zip(table[c.column], c.top, strict=True), start=1):
            total = parse_number(str(text))
            if total is None:
                continue
            tops = tuple(sorted((abs(d) for v in top if (d := _to_decimal(v)) is not None), reverse=True))
            yield (row, c.column), abs(total), tops


def check_dominance(
    table: pd.DataFrame, contributions: Sequence[Contributions], policy: Policy = DEFAULT_POLICY
) -> CheckResult:
    """(n, k) rule: a cell fails when its n largest contributors make up more than k of its total."""
    rule = "dominance"
    n, k = policy.dominance_n, Decimal(repr(policy.dominance_k))
    if not contributions:
        return CheckResult(rule, Status.PASS, "no contributor magnitudes declared: the rule does not apply")
    dominated: list[Cell] = []
    for cell, total, tops in _magnitudes(table, contributions):
        if total > 0 and sum(tops[:n], Decimal(0)) > k * total:
            dominated.append(cell)
    if dominated:
        return CheckResult(
            rule,
            Status.FAIL,
            f"in {len(dominated)} cell(s) ({_where(dominated)}) the {n} largest contributors make up more"
            f" than {policy.dominance_k:.0%} of the total, so the total reveals their values",
            _listed(dominated, policy),
        )
    return CheckResult(rule, Status.PASS, f"no cell is dominated by its {n} largest contributors (k={k})")


def check_p_ratio(
    table: pd.DataFrame, contributions: Sequence[Contributions], policy: Policy = DEFAULT_POLICY
) -> CheckResult:
    """p-percent rule: a cell fails when total - top1 - top2 < p * top1, i.e. the second-largest
    contributor could estimate the largest to within p by subtracting their own value."""
    rule = "p_ratio"
    p = Decimal(repr(policy.p_ratio))
    if not contributions:
        return CheckResult(rule, Status.PASS, "no contributor magnitudes declared: the rule does not apply")
    exposed: list[Cell] = []
    for cell, total, tops in _magnitudes(table, contributions):
        if not tops or tops[0] == 0:
            continue
        second = tops[1] if len(tops) > 1 else Decimal(0)
        if total - tops[0] - second < p * tops[0]:
            exposed.append(cell)
    if exposed:
        return CheckResult(
            rule,
            Status.FAIL,
            f"in {len(exposed)} cell(s) ({_where(exposed)}) the second-largest contributor could estimate the"
            f" largest to within {policy.p_ratio:.0%}",
            _listed(exposed, policy),
        )
    return CheckResult(rule, Status.PASS, f"every cell satisfies the p-ratio rule (p={p})")


def check_provenance(
    table: pd.DataFrame, ledger: Ledger, rounding: Rounding, policy: Policy = DEFAULT_POLICY
) -> CheckResult:
    """Every number in the table is a value of this project's release ledger (or a released group
    key), as released, as rounded the way the researcher declared, or as displayed with fewer decimals."""
    rule = "provenance"
    matcher = _Matcher((*ledger.aggregates, *ledger.keys), rounding)
    untraced: list[Cell] = []
    total = 0
    for cell, value in _numbers(table):
        total += 1
        if not matcher.matches(value):
            untraced.append(cell)
    if untraced:
        return CheckResult(
            rule,
            Status.FAIL,
            f"{len(untraced)} of {total} number(s) ({_where(untraced)}) are not values this project released"
            f" ({rounding.describe()}); a derived number (a percentage, a ratio) needs a reviewer's override",
            _listed(untraced, policy),
        )
    return CheckResult(rule, Status.PASS, f"all {total} number(s) trace to this project's releases")


def check_differencing(
    table: pd.DataFrame, ledger: Ledger, rounding: Rounding, threshold: int, policy: Policy = DEFAULT_POLICY
) -> CheckResult:
    """A number below the threshold that is not itself released but equals the difference of two
    released values: subtracting two safe numbers has disclosed a small group."""
    rule = "differencing"
    differences = _Matcher(ledger.small_differences(threshold), rounding)
    released = _Matcher((*ledger.aggregates, *ledger.keys), rounding)
    found: list[Cell] = []
    if differences:
        for cell, value in _numbers(table):
            if 0 < abs(value) < threshold and differences.matches(abs(value)) and not released.matches(value):
                found.append(cell)
    if found:
        return CheckResult(
            rule,
            Status.FAIL,
            f"{len(found)} cell(s) ({_where(found)}) equal the difference of two released values and are"
            f" below {threshold}: the difference discloses a small group",
            _listed(found, policy),
        )
    return CheckResult(
        rule, Status.PASS, f"no cell is a difference below {threshold} of two of this project's releases"
    )


def _where(cells: Sequence[Cell], limit: int = 5) -> str:
    shown = ", ".join(f"row {r} column {c}" for r, c in cells[:limit])
    return shown + (f" and {len(cells) - limit} more" if len(cells) > limit else "")


def _listed(cells: Sequence[Cell], policy: Policy) -> tuple[Cell, ...]:
    return tuple(cells[: policy.max_cells_listed])


def with_policy_override(policy: Policy, **values: Any) -> Policy:
    """A new policy from ``policy`` with some values changed; ``version`` must change with them."""
    if "version" not in values or values["version"] == policy.version:
        raise InvalidInput("a changed policy needs a new version string, so records can tell them apart")
    return replace(policy, **values)
