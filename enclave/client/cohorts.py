"""A builder for cohort definitions, for notebooks: plain Python in, the JSON definition out.

    from enclave.client.cohorts import Cohort, V, age_band, attribute, code_in, codelist, count, exists
    from enclave.client.cohorts import date_between, is_in, mean

    cohort = (
        Cohort(index_date="2024-01-01")                       # persons: the demographics table
        .var("diabetes", exists("admissions", where=code_in("icd10_code", codelist("icd10_codes",
                                                                                    prefixes=["E11"]))))
        .var("admissions", count("admissions", at_most=10, where=date_between("admission_date", -365, 0)))
        .var("hba1c", mean("lab_results", "result_value", where=is_in("test_code", ["HBA1C"])))
        .var("age", age_band(10))
        .var("region", attribute("region"))
        .where((V("diabetes") == 1) & ~V("hba1c").missing())
    )
    cohort.to_dict()   # the definition the API accepts; cohort.to_json() for the same as text

Dates in ``date_between`` are absolute (a ``date`` or ``"YYYY-MM-DD"``) or relative to the index date
(an ``int``: days from it, negative before it); ``None`` leaves that end open. ``where=`` takes one
condition or a list (all must hold); ``any_of(...)`` matches rows meeting at least one.

The builder uses only the standard library (no pydantic, no enclave server code), so it works in any
notebook and never disagrees with the server about anything but the shape: the server validates the
definition against the catalog (tables, columns, roles, code lists, literals) and answers a refusal
with a sentence saying what to change. The language itself is documented in
``enclave.domain.queries.cohorts``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

Spec = dict[str, Any]
Literal_ = bool | int | float | str | date
RowConditions = Spec | Sequence[Spec] | None


# ----------------------------------------------------------------- code lists
def codelist(
    name: str,
    *,
    column: str | None = None,
    where: dict[str, str | Sequence[str]] | None = None,
    prefixes: Sequence[str] | None = None,
) -> Spec:
    """A code list file by name (``icd10_codes``, ``drugs``, ``lab_tests``, ...), optionally narrowed:
    ``codelist("drugs", where={"drug_class": "biguanide"})``,
    ``codelist("icd10_codes", prefixes=["E11"])``."""
    spec: Spec = {"codelist": name}
    if column is not None:
        spec["column"] = column
    if where:
        spec["where"] = {k: [v] if isinstance(v, str) else list(v) for k, v in where.items()}
    if prefixes:
        spec["prefixes"] = list(prefixes)
    return spec


# ------------------------------------------------------------- row conditions
def code_in(column: str, codes: str | Spec) -> Spec:
    """Rows whose ``column`` holds a code of the code list (a name, or a :func:`codelist`)."""
    return {
        "op": "code_in",
        "column": column,
        "codelist": codelist(codes) if isinstance(codes, str) else codes,
    }


def is_in(column: str, values: Sequence[str]) -> Spec:
    """Rows whose category ``column`` is one of ``values``."""
    if isinstance(values, str):
        raise TypeError("is_in takes a list of values; use eq(column, value) for one value")
    return {"op": "in", "column": column, "values": list(values)}


def eq(column: str, value: str) -> Spec:
    """Rows whose category ``column`` equals ``value``."""
    return is_in(column, [value])


def between(column: str, lower: float | None = None, upper: float | None = None) -> Spec:
    """Rows whose numeric ``column`` is within [lower, upper] (an end left as None is open)."""
    spec: Spec = {"op": "between", "column": column}
    if lower is not None:
        spec["lower"] = lower
    if upper is not None:
        spec["upper"] = upper
    return spec


def _date_bound(value: int | str | date) -> Any:
    if isinstance(value, bool):
        raise TypeError("a date bound is a date, 'YYYY-MM-DD' or an int of days from the index date")
    if isinstance(value, int):
        return {"days_from_index": value}
    return value.isoformat() if isinstance(value, date) else value


def date_between(
    column: str, start: int | str | date | None = None, end: int | str | date | None = None
) -> Spec:
    """Rows whose date ``column`` is within [start, end]: dates, or ints of days from the index date."""
    spec: Spec = {"op": "date_between", "column": column}
    if start is not None:
        spec["start"] = _date_bound(start)
    if end is not None:
        spec["end"] = _date_bound(end)
    return spec


def any_of(*conditions: Spec) -> Spec:
    """Rows meeting at least one of the conditions."""
    return {"op": "any", "conditions": list(conditions)}


def _where(where: RowConditions) -> list[Spec]:
    if where is None:
        return []
    if isinstance(where, dict):
        return [where]
    return list(where)


# ------------------------------------------------------------------ variables
def exists(table: str, where: RowConditions = None) -> Spec:
    """1 if the person has a row of ``table`` matching ``where``, else 0."""
    return {"kind": "exists", "table": table, "where": _where(where)}


def count(table: str, *, at_most: int, where: RowConditions = None) -> Spec:
    """The person's matching rows of ``table``, clamped to ``at_most`` (its public upper bound)."""
    return {"kind": "count", "table": table, "where": _where(where), "max": at_most}


def first_date(table: str, column: str, where: RowConditions = None) -> Spec:
    return {"kind": "first_date", "table": table, "column": column, "where": _where(where)}


def last_date(table: str, column: str, where: RowConditions = None) -> Spec:
    return {"kind": "last_date", "table": table, "column": column, "where": _where(where)}


def minimum(table: str, column: str, where: RowConditions = None) -> Spec:
    return {"kind": "min", "table": table, "column": column, "where": _where(where)}


def maximum(table: str, column: str, where: RowConditions = None) -> Spec:
    return {"kind": "max", "table": table, "column": column, "where": _where(where)}


def mean(table: str, column: str, where: RowConditions = None) -> Spec:
    return {"kind": "mean", "table": table, "column": column, "where": _where(where)}


def age_band(width: int = 10, column: str = "year_of_birth") -> Spec:
    """Age at the index date (index year - year of birth) in 5- or 10-year bands, 90+ as one."""
    return {"kind": "age_band", "width": width, "column": column}


def attribute(column: str) -> Spec:
    """A column of the person-level table: sex, region, ..."""
    return {"kind": "attribute", "column": column}


# ---------------------------------------------------------------- population
def _literal(value: Literal_) -> bool | int | float | str:
    return value.isoformat() if isinstance(value, date) else value


class Cond:
    """A population condition; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ("spec",)

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def __and__(self, other: Cond) -> Cond:
        return Cond({"op": "and", "args": [self.spec, other.spec]})

    def __or__(self, other: Cond) -> Cond:
        return Cond({"op": "or", "args": [self.spec, other.spec]})

    def __invert__(self) -> Cond:
        return Cond({"op": "not", "arg": self.spec})

    def __bool__(self) -> bool:
        raise TypeError("combine population conditions with &, | and ~, not and/or/not")

    def __repr__(self) -> str:
        return f"Cond({json.dumps(self.spec)})"


class V:
    """A variable of the definition, to compare in the population: ``V("hba1c") > 48``."""

    __slots__ = ("name",)
    __hash__ = None  # type: ignore[assignment]  # == builds a condition

    def __init__(self, name: str) -> None:
        self.name = name

    def _cmp(self, op: str, value: Literal_) -> Cond:
        return Cond({"op": op, "var": self.name, "value": _literal(value)})

    def __eq__(self, value: Literal_) -> Cond:  # type: ignore[override]
        return self._cmp("==", value)

    def __ne__(self, value: Literal_) -> Cond:  # type: ignore[override]
        return self._cmp("!=", value)

    def __lt__(self, value: Literal_) -> Cond:
        return self._cmp("<", value)

    def __le__(self, value: Literal_) -> Cond:
        return self._cmp("<=", value)

    def __gt__(self, value: Literal_) -> Cond:
        return self._cmp(">", value)

    def __ge__(self, value: Literal_) -> Cond:
        return self._cmp(">=", value)

    def isin(self, values: Sequence[Literal_]) -> Cond:
        return Cond({"op": "in", "var": self.name, "values": [_literal(v) for v in values]})

    def missing(self) -> Cond:
        return Cond({"op": "missing", "var": self.name})


# ------------------------------------------------------------------- cohort
class Cohort:
    """A cohort definition being built; each method returns a new Cohort."""

    def __init__(
        self,
        index_date: str | date,
        persons: str = "demographics",
        *,
        _variables: dict[str, Spec] | None = None,
        _population: Spec | None = None,
    ) -> None:
        self.index_date = index_date.isoformat() if isinstance(index_date, date) else index_date
        self.persons = persons
        self._variables = dict(_variables or {})
        self._population = _population

    def var(self, name: str, variable: Spec) -> Cohort:
        """Add the variable ``name`` (a column of the derived frame)."""
        if name in self._variables:
            raise ValueError(f"the variable {name!r} is already defined")
        return Cohort(
            self.index_date,
            self.persons,
            _variables={**self._variables, name: variable},
            _population=self._population,
        )

    def where(self, condition: Cond) -> Cohort:
        """Keep the persons meeting ``condition`` (and any condition given before)."""
        spec = condition.spec
        if self._population is not None:
            spec = {"op": "and", "args": [self._population, spec]}
        return Cohort(self.index_date, self.persons, _variables=self._variables, _population=spec)

    def to_dict(self) -> Spec:
        out: Spec = {
            "index_date": self.index_date,
            "persons": self.persons,
            "variables": json.loads(json.dumps(self._variables)),
        }
        if self._population is not None:
            out["population"] = json.loads(json.dumps(self._population))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __repr__(self) -> str:
        return f"Cohort({self.to_json()})"
