"""Cohort definitions: one row per person, declared as data and checked before any data is touched.

A researcher's question about people ("how many people with a diabetes admission, by region, and their
mean HbA1c") needs several linked sources per person. A :class:`Definition` says, as JSON on the wire:

* an **index date**, the reference for relative date windows and for age;
* a **person-level table** (``persons``, by default ``demographics``): the population is every
  ``person_id`` in it;
* named **variables**, each computed only from *that person's own rows* of one linked table:

  ====================  =============================================  ===========================
  kind                  value                                          public metadata (for DP)
  ====================  =============================================  ===========================
  ``exists``            1 if the person has a matching row, else 0     integer, domain {0, 1}
  ``count``             matching rows, clamped to ``max``              integer in [0, max]
  ``first_date``        earliest date of a date column (or missing)    date within the column range
  ``last_date``         latest date of a date column (or missing)      date within the column range
  ``min`` ``max``       of a numeric column (clamped to its bounds)    the column's type and bounds
  ``mean``              of a numeric column (clamped to its bounds)    decimal within its bounds
  ``age_band``          age at the index date, in 5- or 10-year bands  the bands, 90+ as one band
  ``attribute``         a category or numeric column of ``persons``    its catalog domain or bounds
  ====================  =============================================  ===========================

  The matching rows are those meeting every condition of ``where``: a code in a **code list**
  (``code_in``: a file of ``enclave/codelists`` referenced by name, optionally narrowed by its other
  columns or by code prefixes), a category in a set of values (``in``), a numeric value range
  (``between``), a date window relative to the index date or absolute (``date_between``), or any of
  several conditions (``any``);
* a **population** condition over the variables: comparisons of a variable with a literal, ``in``,
  ``missing``, combined with ``and`` / ``or`` / ``not``. A comparison with a missing value is false, so
  ``not`` of it is true (``not (hba1c > 48)`` keeps people without an HbA1c).

``exists`` is an integer indicator (0/1) rather than a boolean because the DP engine's column types
are string, integer, decimal and date: an indicator can be a public group key, summed (cases) and
averaged (prevalence) like any other integer. Population conditions accept ``true``/``false`` for it.

Age is ``index year - year of birth`` (the age reached during the index year): the research store
keeps only the year of birth. A person born after the index year has no age band.

Every variable has public metadata derived from the definition and the catalog alone (never from the
data), see :func:`variable_meta`; with it the DP layer runs aggregates over the derived frame, whose
privacy unit is one row per person. How the frame is derived, and why one person changes at most one
of its rows, is in :mod:`enclave.dp.cohorts`.

:func:`validate` checks a definition against the catalog (tables, columns, roles, types, code lists,
literals); every refusal is one :class:`InvalidInput` sentence naming the variable and the rule.
:func:`fingerprint` identifies a definition on given dataset versions (and code-list contents), for
the cache of derived frames and for release records.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from enclave.domain.audit.chain import canonical_json
from enclave.domain.catalog.datasets import PERSON_COLUMN, age_band_domain
from enclave.domain.errors import InvalidInput

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
CODELISTS_DIR = Path(__file__).resolve().parents[2] / "codelists"
FORMAT_VERSION = 1  # bump when the meaning of a definition changes: it invalidates cached frames
MAX_VARIABLES = 64
MAX_CONDITIONS = 32
MAX_LIST = 1000
MAX_COUNT = 10_000
MAX_WINDOW_DAYS = 365 * 150
EPOCH = date(1970, 1, 1)

Catalog = Mapping[str, Sequence[Mapping[str, Any]]]
"""The catalog as the DP layer sees it: dataset name -> its column dicts, as ingest records them
(``ResolvedColumn.model_dump(mode="json")``: name, role, type, domain, lower/upper, first/last)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ code lists
class CodelistRef(_Strict):
    """A code list file of ``enclave/codelists`` by name, optionally narrowed.

    ``{"codelist": "icd10_codes", "where": {"chapter": ["IV"]}, "prefixes": ["E10", "E11"]}`` selects
    the codes of chapter IV starting with E10 or E11."""

    codelist: Name = Field(description="file name without .csv, e.g. icd10_codes, drugs, lab_tests")
    column: Name | None = Field(default=None, description="the column holding the codes (default: first)")
    where: dict[Name, list[str]] = Field(
        default_factory=dict, description="keep the rows whose column holds one of these values"
    )
    prefixes: list[str] = Field(
        default_factory=list, max_length=MAX_LIST, description="keep codes with these"
    )

    @field_validator("where")
    @classmethod
    def _where(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for column, values in value.items():
            if not 1 <= len(values) <= MAX_LIST:
                raise ValueError(f"where[{column}] needs 1 to {MAX_LIST} values")
        return value


def codelist_path(name: str, directory: Path = CODELISTS_DIR) -> Path:
    path = directory / f"{name}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.csv"))) or "none"
        raise InvalidInput(f"there is no code list {name!r} (known code lists: {known})")
    return path


def load_codelist(ref: CodelistRef, directory: Path = CODELISTS_DIR) -> tuple[str, ...]:
    """The sorted distinct codes a reference selects; refuses a reference that selects none."""
    path = codelist_path(ref.codelist, directory)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    if not fields:
        raise InvalidInput(f"code list {ref.codelist!r} has no header row")
    column = ref.column or fields[0]
    for name in (column, *ref.where):
        if name not in fields:
            raise InvalidInput(
                f"code list {ref.codelist!r} has no column {name!r} (its columns: {', '.join(fields)})"
            )
    codes = {
        row[column]
        for row in rows
        if row[column]
        and all(row[k] in values for k, values in ref.where.items())
        and (not ref.prefixes or any(row[column].startswith(p) for p in ref.prefixes))
    }
    if not codes:
        raise InvalidInput(f"code list {ref.codelist!r} as narrowed by where/prefixes selects no codes")
    return tuple(sorted(codes))


# ------------------------------------------------------------ row conditions
class DaysFromIndex(_Strict):
    """A date relative to the index date: ``{"days_from_index": -365}``."""

    days_from_index: int = Field(ge=-MAX_WINDOW_DAYS, le=MAX_WINDOW_DAYS)


DateBound = date | DaysFromIndex


def resolve_date(bound: DateBound, index_date: date) -> date:
    if isinstance(bound, DaysFromIndex):
        return index_date + timedelta(days=bound.days_from_index)
    return bound


class CodeIn(_Strict):
    op: Literal["code_in"] = "code_in"
    column: Name
    codelist: CodelistRef


class CategoryIn(_Strict):
    op: Literal["in"] = "in"
    column: Name
    values: list[str] = Field(min_length=1, max_length=MAX_LIST)


class Between(_Strict):
    """A numeric value range, both ends inclusive; a missing end is unbounded."""

    op: Literal["between"] = "between"
    column: Name
    lower: float | None = None
    upper: float | None = None

    @model_validator(mode="after")
    def _ends(self) -> Between:
        if self.lower is None and self.upper is None:
            raise ValueError("between needs a lower or an upper end")
        for end in (self.lower, self.upper):
            if end is not None and end != end:
                raise ValueError("NaN is not a range end")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError("between needs lower <= upper")
        return self


class DateBetween(_Strict):
    """A date window, both ends inclusive; each end absolute (``"2020-01-01"``) or relative to the
    index date (``{"days_from_index": -365}``); a missing end is open."""

    op: Literal["date_between"] = "date_between"
    column: Name
    start: DateBound | None = None
    end: DateBound | None = None

    @model_validator(mode="after")
    def _ends(self) -> DateBetween:
        if self.start is None and self.end is None:
            raise ValueError("date_between needs a start or an end")
        return self


class AnyOf(_Strict):
    op: Literal["any"] = "any"
    conditions: list[RowCondition] = Field(min_length=1, max_length=MAX_CONDITIONS)


RowCondition = Annotated[CodeIn | CategoryIn | Between | DateBetween | AnyOf, Field(discriminator="op")]
AnyOf.model_rebuild()

Where = Annotated[list[RowCondition], Field(max_length=MAX_CONDITIONS)]


# ----------------------------------------------------------------- variables
class Exists(_Strict):
    kind: Literal["exists"] = "exists"
    table: Name
    where: Where = Field(default_factory=list)


class Count(_Strict):
    kind: Literal["count"] = "count"
    table: Name
    where: Where = Field(default_factory=list)
    max: int = Field(ge=1, le=MAX_COUNT, description="counts above this are clamped to it")


class DateOf(_Strict):
    kind: Literal["first_date", "last_date"]
    table: Name
    column: Name
    where: Where = Field(default_factory=list)


class NumericOf(_Strict):
    kind: Literal["min", "max", "mean"]
    table: Name
    column: Name
    where: Where = Field(default_factory=list)


class AgeBand(_Strict):
    """Age at the index date (index year - year of birth) in bands of ``width`` years, 90+ as one."""

    kind: Literal["age_band"] = "age_band"
    width: Literal[5, 10] = 10
    column: Name = "year_of_birth"


class Attribute(_Strict):
    """A column of the person-level table as it is (sex, region, deprivation quintile, ...)."""

    kind: Literal["attribute"] = "attribute"
    column: Name


Variable = Annotated[Exists | Count | DateOf | NumericOf | AgeBand | Attribute, Field(discriminator="kind")]
EventVariable = Exists | Count | DateOf | NumericOf


# ------------------------------------------------------- population condition
Literal_ = bool | int | float | str


class Compare(_Strict):
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    var: Name
    value: Literal_

    @field_validator("value")
    @classmethod
    def _finite(cls, value: Literal_) -> Literal_:
        if isinstance(value, float) and value != value:
            raise ValueError("NaN is not a value to compare with")
        return value


class InValues(_Strict):
    op: Literal["in"] = "in"
    var: Name
    values: list[Literal_] = Field(min_length=1, max_length=MAX_LIST)


class Missing(_Strict):
    """True when the variable has no value (no matching row for a date/min/max/mean, no age band)."""

    op: Literal["missing"] = "missing"
    var: Name


class And(_Strict):
    op: Literal["and"] = "and"
    args: list[Condition] = Field(min_length=1, max_length=MAX_CONDITIONS)


class Or(_Strict):
    op: Literal["or"] = "or"
    args: list[Condition] = Field(min_length=1, max_length=MAX_CONDITIONS)


class Not(_Strict):
    op: Literal["not"] = "not"
    arg: Condition


Condition = Annotated[Compare | InValues | Missing | And | Or | Not, Field(discriminator="op")]
And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()


# ---------------------------------------------------------------- definition
class Definition(_Strict):
    """The serialisable cohort definition (the JSON the client sends)."""

    index_date: date
    persons: Name = Field(default="demographics", description="the person-level table: the population")
    variables: dict[Name, Variable] = Field(min_length=1, max_length=MAX_VARIABLES)
    population: Condition | None = Field(default=None, description="who is kept; everyone if absent")

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, Variable]) -> dict[str, Variable]:
        if PERSON_COLUMN in value:
            raise ValueError(
                f"{PERSON_COLUMN} is the person column of the derived frame, not a variable name"
            )
        return value

    def tables(self) -> list[str]:
        """Every table the definition reads: the person-level table first, then the others sorted
        (so the order does not depend on how the variables were written)."""
        others = {_table_of(var, self.persons) for var in self.variables.values()} - {self.persons}
        return [self.persons, *sorted(others)]

    def columns(self) -> dict[str, set[str]]:
        """The columns read from each table (for the project's scope check); person_id is implied."""
        used: dict[str, set[str]] = {t: set() for t in self.tables()}
        for var in self.variables.values():
            table = _table_of(var, self.persons)
            if isinstance(var, AgeBand | Attribute | DateOf | NumericOf):
                used[table].add(var.column)
            if isinstance(var, Exists | Count | DateOf | NumericOf):
                for cond in var.where:
                    used[table] |= _row_columns(cond)
        return used


def _table_of(var: Variable, persons: str) -> str:
    return persons if isinstance(var, AgeBand | Attribute) else var.table


def _row_columns(cond: RowCondition) -> set[str]:
    if isinstance(cond, AnyOf):
        out: set[str] = set()
        for inner in cond.conditions:
            out |= _row_columns(inner)
        return out
    return {cond.column}


def parse_definition(raw: object) -> Definition:
    """A definition from its JSON form (a dict, or JSON text); problems as one InvalidInput sentence."""
    try:
        if isinstance(raw, str | bytes):
            return Definition.model_validate_json(raw)
        return Definition.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise InvalidInput("the cohort definition is invalid: " + "; ".join(problems)) from None


# ------------------------------------------------------------ public metadata
ValueType = Literal["string", "integer", "decimal", "date"]


@dataclass(frozen=True)
class VariableMeta:
    """What is public about a derived column: from the definition and the catalog, never the data.

    ``lower``/``upper`` bound every value (dates as days since 1970-01-01); ``domain`` lists every
    value a category (or small integer) can take, as strings, the way the catalog records domains."""

    name: str
    kind: str
    type: ValueType
    nullable: bool
    domain: tuple[str, ...] | None = None
    lower: float | None = None
    upper: float | None = None
    first: date | None = None
    last: date | None = None


COUNT_DOMAIN_MAX = 100  # counts clamped to at most this also get a public domain (group keys)


def _catalog_columns(catalog: Catalog, table: str, what: str) -> dict[str, Mapping[str, Any]]:
    columns = catalog.get(table)
    if columns is None:
        known = ", ".join(sorted(catalog)) or "none"
        raise InvalidInput(f"{what} reads table {table!r}, which is not in the catalog (known: {known})")
    by_name = {str(c["name"]): c for c in columns}
    if PERSON_COLUMN not in by_name:
        raise InvalidInput(f"{what} reads table {table!r}, which has no {PERSON_COLUMN} column to link on")
    return by_name


def _column(columns: Mapping[str, Mapping[str, Any]], table: str, name: str, what: str) -> Mapping[str, Any]:
    col = columns.get(name)
    if col is None or name == PERSON_COLUMN:
        usable = ", ".join(sorted(n for n in columns if n != PERSON_COLUMN))
        raise InvalidInput(f"{what}: table {table!r} has no column {name!r} (its columns: {usable})")
    return col


def _as_date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _require(col: Mapping[str, Any], roles: tuple[str, ...], what: str, why: str) -> None:
    if col.get("role") not in roles:
        raise InvalidInput(f"{what}: column {col['name']!r} is a {col.get('role')} column; {why}")


def _numeric_bounds(col: Mapping[str, Any], what: str) -> tuple[float, float]:
    lower, upper = col.get("lower"), col.get("upper")
    if (
        col.get("role") != "numeric"
        or lower is None
        or upper is None
        or col.get("type")
        not in (
            "integer",
            "decimal",
        )
    ):
        raise InvalidInput(
            f"{what}: column {col['name']!r} is not a bounded numeric column in the catalog, so its"
            " values have no public bounds; use a numeric column"
        )
    return float(lower), float(upper)


def _date_range(col: Mapping[str, Any], what: str) -> tuple[date, date]:
    first, last = _as_date(col.get("first")), _as_date(col.get("last"))
    if col.get("type") != "date" or first is None or last is None:
        raise InvalidInput(
            f"{what}: column {col['name']!r} is not a date column with a range in the catalog;"
            " use a date column"
        )
    return first, last


def _check_row_condition(
    cond: RowCondition, columns: Mapping[str, Mapping[str, Any]], table: str, what: str, codelists: Path
) -> None:
    if isinstance(cond, AnyOf):
        for inner in cond.conditions:
            _check_row_condition(inner, columns, table, what, codelists)
        return
    col = _column(columns, table, cond.column, what)
    if isinstance(cond, CodeIn | CategoryIn):
        _require(col, ("category",), what, f"{cond.op} needs a category column with a public domain")
        domain = set(col.get("domain") or ())
        if not domain:
            raise InvalidInput(f"{what}: column {cond.column!r} has no public domain to match codes against")
        if isinstance(cond, CategoryIn):
            outside = sorted(set(cond.values) - domain)
            if outside:
                raise InvalidInput(
                    f"{what}: {', '.join(map(repr, outside[:5]))} not in the public domain of"
                    f" {table}.{cond.column}"
                )
        else:
            codes = load_codelist(cond.codelist, codelists)
            if not domain.intersection(codes):
                raise InvalidInput(
                    f"{what}: none of the {len(codes)} codes of code list {cond.codelist.codelist!r} is a"
                    f" value of {table}.{cond.column}; check the code list and its column"
                )
    elif isinstance(cond, Between):
        _numeric_bounds(col, what)
    else:
        _date_range(col, what)


def _variable_meta(
    name: str, var: Variable, definition: Definition, catalog: Catalog, codelists: Path
) -> VariableMeta:
    what = f"variable {name!r} ({var.kind})"
    table = _table_of(var, definition.persons)
    columns = _catalog_columns(catalog, table, what)
    if isinstance(var, Exists | Count | DateOf | NumericOf):
        for cond in var.where:
            _check_row_condition(cond, columns, table, what, codelists)
    if isinstance(var, Exists):
        return VariableMeta(name, var.kind, "integer", False, ("0", "1"), 0, 1)
    if isinstance(var, Count):
        domain = tuple(str(i) for i in range(var.max + 1)) if var.max <= COUNT_DOMAIN_MAX else None
        return VariableMeta(name, var.kind, "integer", False, domain, 0, var.max)
    if isinstance(var, DateOf):
        first, last = _date_range(_column(columns, table, var.column, what), what)
        return VariableMeta(
            name, var.kind, "date", True, None, (first - EPOCH).days, (last - EPOCH).days, first, last
        )
    if isinstance(var, NumericOf):
        col = _column(columns, table, var.column, what)
        lower, upper = _numeric_bounds(col, what)
        kind: ValueType = "decimal" if var.kind == "mean" else col["type"]
        return VariableMeta(name, var.kind, kind, True, None, lower, upper)
    if isinstance(var, AgeBand):
        col = _column(columns, table, var.column, what)
        if col.get("role") != "numeric" or col.get("type") != "integer":
            raise InvalidInput(f"{what}: column {var.column!r} of {table} is not an integer year of birth")
        return VariableMeta(name, var.kind, "string", True, tuple(age_band_domain(var.width)))
    col = _column(columns, table, var.column, what)
    if col.get("role") == "category":
        domain = col.get("domain")
        if not domain:
            raise InvalidInput(
                f"{what}: column {var.column!r} of {table} has no public domain, so its values could not be"
                " released or grouped by; use a category column with a domain"
            )
        return VariableMeta(
            name, var.kind, "string", bool(col.get("nullable")), tuple(str(v) for v in domain)
        )
    if col.get("role") == "numeric":
        lower, upper = _numeric_bounds(col, what)
        return VariableMeta(name, var.kind, col["type"], bool(col.get("nullable")), None, lower, upper)
    raise InvalidInput(
        f"{what}: column {var.column!r} of {table} is a {col.get('role')} column; an attribute is a category"
        " or numeric column of the person-level table"
    )


def _literal_ok(meta: VariableMeta, value: Literal_) -> bool:
    if meta.type == "string":
        return isinstance(value, str) and (meta.domain is None or value in meta.domain)
    if meta.type == "integer":
        return isinstance(value, int) and (not isinstance(value, bool) or meta.kind == "exists")
    if meta.type == "decimal":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _expected(meta: VariableMeta) -> str:
    if meta.type == "string":
        values = ", ".join(meta.domain or ())
        return f"one of its public values ({values})" if meta.domain else "a string"
    if meta.type == "integer":
        return "true or false (or 0 or 1)" if meta.kind == "exists" else "an integer"
    if meta.type == "decimal":
        return "a number"
    return "a date as YYYY-MM-DD"


def _check_condition(cond: Condition, metas: Mapping[str, VariableMeta]) -> None:
    if isinstance(cond, And | Or):
        for arg in cond.args:
            _check_condition(arg, metas)
        return
    if isinstance(cond, Not):
        _check_condition(cond.arg, metas)
        return
    meta = metas.get(cond.var)
    if meta is None:
        known = ", ".join(metas)
        raise InvalidInput(
            f"the population refers to {cond.var!r}, which is not a variable (variables: {known})"
        )
    values: list[Literal_] = (
        [cond.value] if isinstance(cond, Compare) else list(cond.values) if isinstance(cond, InValues) else []
    )
    for value in values:
        if not _literal_ok(meta, value):
            raise InvalidInput(
                f"the population compares {cond.var!r} ({meta.kind}, {meta.type}) with {value!r}; use"
                f" {_expected(meta)}"
            )
    if isinstance(cond, Compare) and cond.op not in ("==", "!=") and meta.type == "string":
        raise InvalidInput(
            f"the population orders {cond.var!r} with {cond.op}, but it is a category; use ==, != or in"
        )


def variable_meta(
    definition: Definition, catalog: Catalog, *, codelists: Path = CODELISTS_DIR
) -> dict[str, VariableMeta]:
    """The public metadata of every variable, in definition order; validates the definition."""
    metas = {
        name: _variable_meta(name, var, definition, catalog, codelists)
        for name, var in definition.variables.items()
    }
    _catalog_columns(catalog, definition.persons, "the population")
    if definition.population is not None:
        _check_condition(definition.population, metas)
    return metas


def validate(definition: Definition, catalog: Catalog, *, codelists: Path = CODELISTS_DIR) -> None:
    """Check tables, columns, roles, types, code lists and literals against the catalog metadata.

    Raises :class:`InvalidInput` with one sentence naming the variable and what would be allowed."""
    variable_meta(definition, catalog, codelists=codelists)


def fingerprint(
    definition: Definition, versions: Mapping[str, int], *, codelists: Path = CODELISTS_DIR
) -> str:
    """Identifies the derived frame: the canonical definition, its variable order, the versions of
    the tables it reads and the contents of the code lists it references."""
    missing = [t for t in definition.tables() if t not in versions]
    if missing:
        raise InvalidInput(f"no dataset version given for {', '.join(missing)}")
    used_lists = sorted({ref.codelist for ref in _codelist_refs(definition)})
    payload = canonical_json(
        {
            "format": FORMAT_VERSION,
            "definition": definition.model_dump(mode="json"),
            "order": list(definition.variables),
            "versions": {t: int(versions[t]) for t in definition.tables()},
            "codelists": {
                n: hashlib.sha256(codelist_path(n, codelists).read_bytes()).hexdigest() for n in used_lists
            },
        }
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _codelist_refs(definition: Definition) -> list[CodelistRef]:
    refs: list[CodelistRef] = []

    def walk(cond: RowCondition) -> None:
        if isinstance(cond, AnyOf):
            for inner in cond.conditions:
                walk(inner)
        elif isinstance(cond, CodeIn):
            refs.append(cond.codelist)

    for var in definition.variables.values():
        if isinstance(var, Exists | Count | DateOf | NumericOf):
            for cond in var.where:
                walk(cond)
    return refs
