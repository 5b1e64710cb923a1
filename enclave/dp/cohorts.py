"""Deriving the per-person frame of a cohort definition, and caching it for DP aggregates.

:func:`derive` turns a :class:`~enclave.domain.queries.cohorts.Definition` into a Polars ``LazyFrame`` with
exactly one row per person of the person-level table: ``person_id`` and one column per variable, in
definition order, restricted to the population. :func:`derived_table_meta` gives the engine's column
metadata (public domains and bounds from the definition and the catalog), and :func:`derive_cached`
materialises the frame once per (definition, dataset versions, code lists) under
``<cache_dir>/<fingerprint>/data.parquet`` and returns the :class:`~enclave.dp.engine.TableMeta` the
:class:`~enclave.dp.engine.DPEngine` runs on with ``contribution_bound = 1``.

How it is computed
------------------
1. **Persons.** ``scan(persons).group_by("person_id")`` gives one row per person, with the attribute
   columns the definition reads (if a registry held two rows for a person, the smallest value is
   taken, still from that person's rows only). Age bands are computed from each row's own year of
   birth and the (public) index date.
2. **Events.** For each other table, one lazy scan reads only ``person_id`` and the columns the
   definition uses, keeps the rows matching at least one of the table's variable conditions (a
   row-wise filter), and one ``group_by("person_id").agg(...)`` computes every variable of that table,
   each as an aggregate of the person's rows that match its own condition: ``any`` (exists), ``sum``
   clipped to ``[0, max]`` (count), ``min``/``max`` of a date, ``min``/``max``/``mean`` of a value
   clipped to the column's catalog bounds.
3. **Linking.** Each per-person aggregate is left-joined onto the persons **on ``person_id`` only**;
   both sides have one row per ``person_id``, so the join is one-to-one. A person with no row in a
   table gets ``exists = 0``, ``count = 0`` and missing dates and values. Rows of persons absent from the
   person-level table are not in the frame.
4. **Population.** The population condition is a row-wise filter over the variables, applied last.

Why one person changes at most one row
--------------------------------------
Let ``D`` and ``D'`` be two versions of the linked tables that differ only in the rows of one person
``p`` (in any number of tables). Every operation above is one of:

* a **row-wise** map or filter (a condition on a row's own columns, clipping to a public bound, an age
  from the row's own year of birth): its output for a row depends on that row alone;
* a **``group_by("person_id")`` aggregation**: the output row of person ``q`` is a function of ``q``'s
  rows only;
* a **one-to-one join on ``person_id``**: the output row of ``q`` combines ``q``'s row of each side.

Composing them, the derived row of every person ``q != p`` is the same function of the same rows in
``D`` and ``D'``; only ``p``'s row may appear, disappear or change. So the derived frame has a
contribution bound of one row per person, and DP aggregates over it use ``contribution_bound = 1``.

This is enforced by construction: the expressions are built here from the closed vocabulary of the
definition language (a researcher never supplies a Polars expression), every literal (codes, window
dates, bounds, clamps) comes from the definition, the code-list files or the catalog's public
metadata and never from the data, and the module uses no window (``over``), no sort-dependent
operation, no aggregate over all rows, and no join on anything but ``person_id``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast

import polars as pl

from enclave.domain.catalog.datasets import MAX_AGE_BAND_START, PERSON_COLUMN
from enclave.domain.errors import InternalError, InvalidInput
from enclave.domain.queries.cohorts import (
    CODELISTS_DIR,
    AgeBand,
    And,
    AnyOf,
    Attribute,
    Between,
    Catalog,
    CategoryIn,
    CodeIn,
    Compare,
    Condition,
    Count,
    DateOf,
    Definition,
    Exists,
    InValues,
    Missing,
    Not,
    NumericOf,
    Or,
    RowCondition,
    VariableMeta,
    fingerprint,
    load_codelist,
    resolve_date,
    variable_meta,
)
from enclave.dp.engine import ColumnMeta, TableMeta, compare
from enclave.store.layout import BOUND_KEY, DATA_FILE, scan_table

DERIVED_CONTRIBUTION_BOUND = 1  # one row per person: see the module docstring
_POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "decimal": pl.Float64(),
    "date": pl.Date(),
}


# ------------------------------------------------------------------ derive
def derive(
    definition: Definition,
    tables: Mapping[str, Path],
    catalog: Catalog,
    *,
    codelists: Path = CODELISTS_DIR,
) -> pl.LazyFrame:
    """The per-person frame of ``definition`` (lazy): ``person_id`` and one column per variable.

    ``tables`` maps each table the definition reads to its Parquet file; the definition is validated
    against ``catalog`` first. Row order is unspecified (sort by ``person_id`` where it matters)."""
    metas = variable_meta(definition, catalog, codelists=codelists)
    missing = [t for t in definition.tables() if t not in tables]
    if missing:
        raise InvalidInput(f"no data file given for table(s) {', '.join(missing)}")

    frame = _persons(definition, tables[definition.persons], metas)
    for table in definition.tables():
        variables = {
            name: var
            for name, var in definition.variables.items()
            if isinstance(var, Exists | Count | DateOf | NumericOf) and var.table == table
        }
        if not variables:
            continue
        per_person = _events(definition, tables[table], catalog[table], variables, codelists)
        # One row per person_id on each side: a one-to-one left join.
        frame = frame.join(per_person, on=PERSON_COLUMN, how="left", validate="1:1")
        fills = [
            pl.col(name).fill_null(0) for name, var in variables.items() if isinstance(var, Exists | Count)
        ]
        if fills:
            frame = frame.with_columns(fills)

    casts = [pl.col(name).cast(_POLARS_TYPES[meta.type]) for name, meta in metas.items()]
    frame = frame.select(pl.col(PERSON_COLUMN), *casts)
    if definition.population is not None:
        frame = frame.filter(_condition(definition.population, metas))
    return frame


def _persons(definition: Definition, path: Path, metas: Mapping[str, VariableMeta]) -> pl.LazyFrame:
    attributes = {
        name: var for name, var in definition.variables.items() if isinstance(var, AgeBand | Attribute)
    }
    columns = sorted({var.column for var in attributes.values()})
    scan = scan_table(path).select(PERSON_COLUMN, *columns)
    if not columns:
        return scan.unique(PERSON_COLUMN)
    people = scan.group_by(PERSON_COLUMN).agg(pl.col(c).min() for c in columns)
    derived = []
    for name, var in attributes.items():
        if isinstance(var, AgeBand):
            derived.append(_age_band(pl.col(var.column), definition.index_date, var.width).alias(name))
        else:
            meta = metas[name]
            value = pl.col(var.column)
            if meta.lower is not None and meta.upper is not None:
                value = value.clip(meta.lower, meta.upper)
            derived.append(value.alias(name))
    return people.select(pl.col(PERSON_COLUMN), *derived)


def _age_band(year_of_birth: pl.Expr, index_date: date, width: int) -> pl.Expr:
    age = pl.lit(index_date.year, dtype=pl.Int64) - year_of_birth.cast(pl.Int64)
    start = (age // width) * width
    label = pl.concat_str(start.cast(pl.String), pl.lit("-"), (start + width - 1).cast(pl.String))
    return (
        pl.when(age < 0)
        .then(pl.lit(None, dtype=pl.String))
        .when(age >= MAX_AGE_BAND_START)
        .then(pl.lit(f"{MAX_AGE_BAND_START}+"))
        .otherwise(label)
    )


def _events(
    definition: Definition,
    path: Path,
    columns: Sequence[Mapping[str, Any]],
    variables: Mapping[str, Exists | Count | DateOf | NumericOf],
    codelists: Path,
) -> pl.LazyFrame:
    catalog_cols = {str(c["name"]): c for c in columns}
    used = sorted(definition.columns()[next(iter(variables.values())).table])
    conditions: dict[str, pl.Expr | None] = {}
    for name, var in variables.items():
        terms = [_row_condition(c, definition.index_date, codelists) for c in var.where]
        conditions[name] = pl.all_horizontal(terms) if terms else None

    scan = scan_table(path).select(PERSON_COLUMN, *used)
    if all(cond is not None for cond in conditions.values()):
        # Row-wise: drop the rows no variable of this table uses (each row judged on its own columns).
        scan = scan.filter(pl.any_horizontal(cast("list[pl.Expr]", list(conditions.values()))))

    aggs = []
    for name, var in variables.items():
        cond = conditions[name]
        if isinstance(var, Exists):
            aggs.append((pl.lit(True) if cond is None else cond).any().cast(pl.Int64).alias(name))
        elif isinstance(var, Count):
            counted = pl.len() if cond is None else cond.sum()
            aggs.append(counted.cast(pl.Int64).clip(0, var.max).alias(name))
        else:
            value = pl.col(var.column)
            if isinstance(var, NumericOf):
                col = catalog_cols[var.column]
                value = value.clip(cast(float, col["lower"]), cast(float, col["upper"]))
            if cond is not None:
                value = value.filter(cond)
            if var.kind in ("first_date", "min"):
                aggs.append(value.min().alias(name))
            elif var.kind in ("last_date", "max"):
                aggs.append(value.max().alias(name))
            else:
                aggs.append(value.cast(pl.Float64).mean().alias(name))
    return scan.group_by(PERSON_COLUMN).agg(aggs)


def _row_condition(cond: RowCondition, index_date: date, codelists: Path) -> pl.Expr:
    """A condition on one row's own columns; a missing value never matches."""
    if isinstance(cond, AnyOf):
        return pl.any_horizontal([_row_condition(c, index_date, codelists) for c in cond.conditions])
    column = pl.col(cond.column)
    if isinstance(cond, CodeIn):
        expr = column.is_in(pl.Series(load_codelist(cond.codelist, codelists), dtype=pl.String).implode())
    elif isinstance(cond, CategoryIn):
        expr = column.is_in(pl.Series(cond.values, dtype=pl.String).implode())
    elif isinstance(cond, Between):
        terms = []
        if cond.lower is not None:
            terms.append(column >= cond.lower)
        if cond.upper is not None:
            terms.append(column <= cond.upper)
        expr = pl.all_horizontal(terms)
    else:
        terms = []
        if cond.start is not None:
            terms.append(column >= pl.lit(resolve_date(cond.start, index_date), dtype=pl.Date))
        if cond.end is not None:
            terms.append(column <= pl.lit(resolve_date(cond.end, index_date), dtype=pl.Date))
        expr = pl.all_horizontal(terms)
    return column.is_not_null() & expr.fill_null(False)


# -------------------------------------------------------------- population
def _literal(meta: VariableMeta, value: object) -> pl.Expr:
    if meta.type == "date":
        return pl.lit(date.fromisoformat(str(value)), dtype=pl.Date)
    if meta.type == "integer":
        return pl.lit(int(cast(int, value)), dtype=pl.Int64)
    if meta.type == "decimal":
        return pl.lit(float(cast(float, value)), dtype=pl.Float64)
    return pl.lit(str(value), dtype=pl.String)


def _condition(cond: Condition, metas: Mapping[str, VariableMeta]) -> pl.Expr:
    """A row-wise condition over a person's variables; a comparison with a missing value is false."""
    if isinstance(cond, And):
        return pl.all_horizontal([_condition(a, metas) for a in cond.args])
    if isinstance(cond, Or):
        return pl.any_horizontal([_condition(a, metas) for a in cond.args])
    if isinstance(cond, Not):
        return ~_condition(cond.arg, metas)
    column = pl.col(cond.var)
    if isinstance(cond, Missing):
        return column.is_null()
    meta = metas[cond.var]
    if isinstance(cond, InValues):
        expr = pl.any_horizontal([column == _literal(meta, v) for v in cond.values])
    else:
        assert isinstance(cond, Compare)
        expr = compare(column, cond.op, _literal(meta, cond.value))
    return expr.fill_null(False)


# ---------------------------------------------------------- engine metadata
def derived_table_meta(
    definition: Definition, catalog: Catalog, *, codelists: Path = CODELISTS_DIR
) -> dict[str, ColumnMeta]:
    """The engine's metadata of every derived column: public domains (group keys) and bounds."""
    return {
        name: ColumnMeta(
            name=name,
            type=meta.type,
            domain=meta.domain,
            lower=meta.lower if meta.type in ("integer", "decimal") else None,
            upper=meta.upper if meta.type in ("integer", "decimal") else None,
        )
        for name, meta in variable_meta(definition, catalog, codelists=codelists).items()
    }


# ------------------------------------------------------------------- cache
@dataclass(frozen=True)
class DerivedTable:
    """A materialised derived frame, ready for the DP engine."""

    fingerprint: str
    path: Path
    table: TableMeta  # contribution_bound = 1
    from_cache: bool


def derive_cached(
    definition: Definition,
    tables: Mapping[str, Path],
    catalog: Catalog,
    versions: Mapping[str, int],
    cache_dir: Path,
    *,
    codelists: Path = CODELISTS_DIR,
) -> DerivedTable:
    """Derive once per (definition, dataset versions, code lists) and reuse the Parquet file.

    The file is written next to its final place and renamed into it (atomic on one filesystem), so a
    reader never sees half a file; two concurrent derivations of one definition write the same rows
    and the last rename wins."""
    columns = derived_table_meta(definition, catalog, codelists=codelists)
    key = fingerprint(definition, versions, codelists=codelists)
    folder = cache_dir / key
    path = folder / DATA_FILE
    from_cache = path.is_file()
    if not from_cache:
        frame = derive(definition, tables, catalog, codelists=codelists)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{DATA_FILE}.{uuid.uuid4().hex}.partial"
        try:
            # One row per person by construction (module docstring): declared in the footer, so
            # the engine measures it with a row-level bound of 1 instead of truncating per query.
            frame.sink_parquet(partial, metadata={BOUND_KEY: str(DERIVED_CONTRIBUTION_BOUND)})
            # The footer's bound is a privacy claim: check it on the file before it is published.
            persons = pl.scan_parquet(partial).select(
                pl.len().alias("rows"), pl.col(PERSON_COLUMN).n_unique().alias("persons")
            )
            rows, unique = persons.collect().row(0)
            if rows != unique:
                raise InternalError(f"the derived frame has {rows} rows for {unique} persons; not published")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return DerivedTable(
        fingerprint=key,
        path=path,
        table=TableMeta(path=path, contribution_bound=DERIVED_CONTRIBUTION_BOUND, columns=columns),
        from_cache=from_cache,
    )
