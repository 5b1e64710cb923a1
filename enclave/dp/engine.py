"""The OpenDP execution engine: plans and releases differentially private aggregates.

Every noisy value comes from OpenDP 0.16 (``opendp.extras.polars``): this module builds an OpenDP
Polars query over ``pl.scan_parquet(path)``, asks OpenDP for its privacy map and accuracy, and lets
OpenDP's compositor run it. Nothing here samples noise.

Privacy model
-------------
* **Privacy unit: the person**, each contributing at most the catalog's ``contribution_bound`` k
  rows. Two routes give that unit the same privacy map and the same noise:

  - *the bounded view* (the route for every version ingested with one): ingest writes beside the
    table a file in which every person keeps at most k of their rows, chosen by a keyed hash of
    the row, a function of that person's rows only (``enclave/ingest/bounded.py``, which proves the
    point). Neighbouring tables (one person's rows in or out) then have views at symmetric distance
    at most k, so the engine queries the view with a *row-level* unit of k rows,
    ``dp.unit_of(contributions=k)`` (``opendp/context.py: unit_of`` -> ``SymmetricDistance``,
    ``d_in = k``), and no per-query truncation. ``person_id`` is not even read. The view's Parquet
    footer declares its bound; the engine uses it only if that equals the table's bound. A table file
    whose own footer declares at most k rows per person is queried the same way.
  - *per-query truncation* (files without a view): ``dp.unit_of(contributions=1,
    identifier=pl.col("person_id"))`` (-> ``SymmetricIdDistance``): neighbouring tables differ in
    *all* rows of one person. The query calls ``LazyFrameQuery.truncate_per_group(k)``
    (``opendp/extras/polars/__init__.py``), which keeps at most k rows per ``person_id`` (a random
    sample of them); OpenDP's ``make_stable_truncate`` turns the identifier distance into a row
    distance of k. Filters are applied before the truncation, so the rows a person may contribute
    are chosen among the rows the query actually uses. This costs a window over every person in
    every query (15-30 times the exact query).
* **Pure DP (ε, Laplace), not zCDP** (a DP key release, below, is the one (ε, δ) case). Budgets in
  the enclave are denominated in ε and debited by addition; pure DP composes by addition with δ = 0,
  so the ε accounted here is exactly what a ledger adds up, with no δ to carry or conversion to
  explain. (zCDP/Gaussian would pay off for queries with
  very many aggregates, at the price of a δ.) Counts and integer sums get OpenDP's discrete Laplace.
* **Public keys by default.** Group-by keys are the cross product of the catalog's public domains (and
  of a histogram's bins, cut at breaks computed from the catalog bounds alone), joined with
  ``LazyFrameQuery.with_keys`` (a left join from the key set, OpenDP's ``KeySanitizer::Join``): every
  public key combination is released, those with no rows too, and no key is read from the data.
  ``Margin(invariant="keys")`` (formerly ``public_info="keys"``) is deliberately *not* used: it declares
  the keys present in the data unprotected and would release only those.
* **DP key release.** A group-by on a column without a public domain is allowed only with a δ: the
  measure is then ``Approximate(MaxDivergence)`` and ``make_private_lazyframe(..., threshold=)``
  releases a group only if its noisy count passes a threshold calibrated to δ (``_key_release``).
* **Counts of persons** run alone, over the table's full file, with the identifier unit and
  ``truncate_per_group(1, by=keys)`` (+ ``truncate_num_groups``): one row per person and group.
* **Clamping.** ``.dp.sum(bounds)`` clips to the catalog bounds inside OpenDP. Integers stay integers
  (money is integer). Decimals are summed in fixed point: clipped, shifted by the lower bound, scaled by
  ``10**p``, rounded and cast to ``Int64`` inside the OpenDP plan, so the sum is exact and its noise is
  discrete Laplace; a float sum would have to pay for floating-point rounding over ``max_rows`` rows
  (over 400 times the noise for a ``[10, 50]`` column with ``max_rows = 10**9``).
* **Means** are post-processed from a noisy sum and a noisy count of non-null values, released in the
  same measurement. OpenDP's ``.dp.mean`` is the same two statistics at the same cost (it also spends
  on a sum and a length), but separate statistics let a query that asks for ``sum(x)`` and ``mean(x)``
  pay for ``sum(x)`` once, and give the count of non-null values rather than of rows.
* **Medians** use OpenDP's ``DPExpr.median(candidates)`` (``opendp/extras/polars/__init__.py``; the
  0.5 case of ``DPExpr.quantile``): an exponential mechanism (``ExponentialMin`` in OpenDP's summary,
  pure DP) that picks one of ``_MEDIAN_CANDIDATES`` public candidates evenly spaced over the catalog
  bounds (integers for an integer column), so a released median is always a candidate within the
  bounds. Its noise scale is on the candidates' scores, not in the column's unit, and OpenDP's
  ``summarize`` gives no accuracy for a quantile: the plan's accuracy of a median is None and its
  ``<name>_ci95`` column is null. Its privacy map, like Laplace's, is inversely proportional to the
  global scale, so it shares the calibration below.
* ``Margin(by=(), max_length=max_rows)`` is a *public* upper bound on the rows of a table (not the row
  count, which researchers may not see). OpenDP needs it to rule out overflow in sums.

Budget split and calibration
----------------------------
All statistics of a query share OpenDP's ``global_scale`` (``make_private_lazyframe``): each gets
noise ``global_scale x its sensitivity``, so ε is split evenly across statistics. OpenDP builds a
query over an empty frame of the input domain (``Context.query``), so a measurement depends on the
query's shape, never on the data: the calibrated measurement and its ``summarize`` are cached per
shape (key: input domain, privacy unit, filters, truncation, statistics with their bounds and the key
set as serialized Polars expressions, and ε), because the binary search of
``LazyFrameQuery.resolve()`` costs about a second. Noise is drawn when a measurement runs, so every
release of a cached measurement has fresh noise, and each plan gets its own compositor
(``make_adaptive_composition``, as ``Context.compositor`` builds it; itself cached per domain, unit
and ε, its queryable made per plan) that admits one release of at most the plan's ε. On a cache miss
the engine probes OpenDP's privacy map at scale 1 and rescales (the map of a Laplace plan is
inversely proportional to the scale), and falls back to OpenDP's own ``binary_search_param`` if that
does not land. Whatever the route, the measurement is only ever used if OpenDP's
``Measurement.check(d_in, ε)`` accepts it (re-checked on every plan), and the compositor refuses any
measurement whose privacy loss exceeds the plan's ε. The plan's ε is read back from the
measurement's privacy map, ``measurement.map(d_in)``. The file a table resolves to (view or not) and
its schema are cached on the files' size, mtime and inode.
"""

from __future__ import annotations

import math
import operator
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import product
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import opendp.prelude as dp
import polars as pl
from opendp.accuracy import summarize_polars_measurement
from opendp.extras.polars import Margin, dp_len
from opendp.mod import GLOBAL_FEATURES, OpenDPException, binary_search_param

from enclave.domain.catalog.datasets import PERSON_COLUMN
from enclave.domain.queries.plans import quantile_label
from enclave.store.layout import declared_bound, scan_table, table_files, view_path

CONFIDENCE_ALPHA = 0.05
# Features that weaken OpenDP's guarantees: "honest-but-curious" trusts user code, "floating-point"
# (renamed "idealized-numerics" in 0.16; enable_features("floating-point") records the new name)
# assumes exact real arithmetic.
FORBIDDEN_FEATURES = ("honest-but-curious", "floating-point", "idealized-numerics")
DEFAULT_MAX_ROWS = 10**9
_MAX_DECIMAL_PLACES = 6
_CACHE_SIZE = 1024
_EPOCH = date(1970, 1, 1)
_MEDIAN_CANDIDATES = 100  # public median candidates, evenly spaced over the column's bounds
MAX_BINS = 100

ColumnType = Literal["string", "integer", "decimal", "date"]
AggregateKind = Literal["count_rows", "count_persons", "sum", "mean", "median", "quantile"]
FilterOp = Literal["==", "!=", "<", "<=", ">", ">=", "in"]


@dataclass(frozen=True)
class ColumnMeta:
    name: str
    type: ColumnType
    domain: tuple[str, ...] | None = None  # public category domain (group keys); None = no public keys
    lower: float | None = None  # numeric clamp bounds
    upper: float | None = None


@dataclass(frozen=True)
class TableMeta:
    path: Path  # the Parquet file
    contribution_bound: int  # max rows per person a query may use
    columns: Mapping[str, ColumnMeta]  # excluding person_id


@dataclass(frozen=True)
class Aggregate:
    kind: AggregateKind
    column: str | None = None
    q: float | None = None  # the quantile's level (0 < q < 1), for kind "quantile" only

    @property
    def name(self) -> str:
        """The output column: ``count``, ``sum_<column>``, ``mean_<column>``, ``median_<column>`` or
        ``p<percent>_<column>`` (a quantile: ``p25_cost``)."""
        if self.kind == "count_rows":
            return "count"
        if self.kind == "count_persons":
            return "persons"
        if self.kind == "quantile":
            return f"{quantile_label(self.q or 0)}_{self.column}"
        return f"{self.kind}_{self.column}"


@dataclass(frozen=True)
class Filter:
    column: str
    op: FilterOp
    value: object


@dataclass(frozen=True)
class Query:
    table: TableMeta
    aggregates: tuple[Aggregate, ...]
    group_by: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    epsilon: Decimal = Decimal("1")  # total pure-DP ε (Laplace); see the module docstring
    delta: Decimal = Decimal(0)  # > 0 only for a DP key release (group keys without a public domain)
    bins: tuple[tuple[str, int], ...] = ()  # (column, number of bins): a histogram of a bounded numeric

    @property
    def counts_persons(self) -> bool:
        """A count of persons, which is always a query of its own (``_validate``)."""
        return self.aggregates[0].kind == "count_persons"


@dataclass(frozen=True)
class Statistic:
    """One quantity OpenDP adds noise to, in the column's own unit."""

    name: str  # e.g. "rows", "sum(cost)", "count(los)", "median(los)"
    distribution: str  # as OpenDP's summary names it, e.g. "Integer Laplace", "ExponentialMin"
    scale: float  # noise scale (for a median, of the candidates' scores)
    accuracy: float | None  # half-width of the 95% interval (OpenDP summarize(alpha=0.05)); None if
    # OpenDP gives none (a median)
    accuracy_half_alpha: float | None  # the same at alpha=0.025, for the union bound of a mean's interval
    # (computed for queries with a mean only)


@dataclass(frozen=True)
class AggregatePlan:
    name: str  # output column; its interval is in "<name>_ci95"
    aggregate: Aggregate
    noise_scale: float  # of the released statistic; for a mean, of its numerator (the sum); for a
    # median, of the candidates' scores
    accuracy: float | None  # 95% half-width; None for a mean, whose half-width differs per group, and
    # for a median, for which OpenDP's summarize gives no accuracy
    statistics: tuple[str, ...]  # the Statistic names it is computed from


@dataclass(frozen=True)
class Plan:
    query: Query
    epsilon: Decimal  # the privacy loss OpenDP's measurement accounts for (<= query.epsilon)
    aggregates: tuple[AggregatePlan, ...]
    statistics: tuple[Statistic, ...]
    scale_from_cache: bool
    _measurement: Any = field(repr=False, compare=False)
    _context: Any = field(repr=False, compare=False)
    _keys: pl.DataFrame | None = field(repr=False, compare=False)
    _stats: tuple[_Stat, ...] = field(repr=False, compare=False)
    source: Path | None = None  # the file scanned: the table's file or its bounded view
    row_bound: int | None = None  # k if the source holds at most k rows per person (row-level unit of
    # k rows); None if persons are truncated to k rows in the query (identifier unit of 1 person)
    delta: Decimal = Decimal(0)  # the δ OpenDP's map accounts for (<= query.delta): a DP key release only
    threshold: int | None = None  # a DP key release: a key is released only if its noisy count is >= this

    @property
    def noise_scales(self) -> dict[str, float]:
        return {a.name: a.noise_scale for a in self.aggregates}


@dataclass(frozen=True)
class Result:
    data: pl.DataFrame  # group keys, one column per aggregate and "<name>_ci95" for each
    epsilon: Decimal
    noise_scales: Mapping[str, float]


@dataclass(frozen=True)
class _Stat:
    """A statistic as built into the OpenDP plan: alias in the OpenDP output, unit divisor."""

    name: str
    alias: str
    divisor: int  # 10**p for fixed-point decimal sums, else 1


class DPEngine:
    """Plans and releases DP queries with OpenDP; safe to share between threads."""

    def __init__(self, *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        _refuse_unsafe_features()
        dp.enable_features("contrib")  # the only feature needed: OpenDP's Polars constructors
        if max_rows < 1:
            raise ValueError("max_rows must be a positive public bound on the rows of a table.")
        self._max_rows = max_rows
        self._sources: _Lru[tuple[object, ...], _Source] = _Lru(_CACHE_SIZE)
        self._accountants: _Lru[tuple[object, ...], Any] = _Lru(_CACHE_SIZE)
        self._calibrated: _Lru[tuple[object, ...], _Calibrated] = _Lru(_CACHE_SIZE)
        self._hints: _Lru[tuple[object, ...], tuple[float, float]] = _Lru(_CACHE_SIZE)  # (scale, ε)

    # ------------------------------------------------------------------ plan
    def plan(self, query: Query) -> Plan:
        """Validate the query, build it in OpenDP over ``pl.scan_parquet`` and calibrate its noise.

        Reads only Parquet footers (schema and key-value metadata), never rows."""
        _refuse_unsafe_features()
        _validate(query)
        table = query.table
        used = _used_columns(query)
        source = self._source(table)
        _check_schema(source.schema, table, used)
        k = table.contribution_bound
        persons = query.counts_persons
        if persons and not (source.row_bound and k == 1):
            # A count of persons reads every row of the table (the bounded view has dropped some of a
            # person's rows, which may be the ones passing the filters) and truncates each person to
            # one row per group in the query (below).
            source = self._source(table, view=False)
            _check_schema(source.schema, table, used)
        if source.row_bound:
            # The bounded view (enclave/ingest/bounded.py): at most k rows per person, so a row-level
            # unit of k rows is the person-level unit. context.py: unit_of(contributions=k) ->
            # (SymmetricDistance, k). person_id is not read (unless nothing else is: a row count).
            # A file of one row per person (a cohort frame, k = 1) counts persons as rows.
            unit = dp.unit_of(contributions=k)
            columns = used or [PERSON_COLUMN]
        else:
            # context.py: unit_of(identifier=...) -> SymmetricIdDistance: a person is the unit.
            unit = dp.unit_of(contributions=1, identifier=PERSON_COLUMN)
            columns = [PERSON_COLUMN, *used]
        data = scan_table(source.path).select(*columns)
        d_out = _loss_float(query.epsilon, query.delta)
        accountant = self._accountant(source, columns, unit, d_out, data)
        metric, d_in = unit

        filters = [_filter_expr(flt, table.columns[flt.column], source.schema) for flt in query.filters]
        stats, exprs = _statistics(query, self._max_rows)
        # Public keys: the cross product of the catalog's domains. A group key without a public domain
        # (only with a δ, checked in _validate) makes the whole group-by a DP key release instead.
        binned = dict(query.bins)
        public = all(table.columns[name].domain or name in binned for name in query.group_by)
        keys = _key_frame(query, source.schema) if query.group_by and public else None
        group_keys = _group_keys(query)
        by = [pl.col(name) for name in group_keys]
        bin_exprs = [_bin_expr(table.columns[name], n) for name, n in query.bins]
        groups = len(keys) if keys is not None else k
        # The cache key holds everything the measurement depends on: the input domain (schema and
        # margins), the privacy unit, the filters, truncation, statistics with their bounds, the key
        # set as serialized Polars expressions, and ε. Not the data: OpenDP builds the query plan over
        # an empty frame of the domain (context.py: Context.query, _lazyframe_from_domain) and the
        # measurement is applied to the data only when the context's queryable runs it.
        shape = (
            str(accountant.input_domain),
            str(metric),
            d_in,
            k,
            tuple(e.meta.serialize() for e in (*filters, *bin_exprs, *exprs)),
            query.group_by,
            tuple(s.name for s in stats),  # a count of persons truncates differently from one of rows
            keys.serialize() if keys is not None else b"",
            d_out,  # last: shape[:-1] is the shape at any ε
        )

        # context.py: a Context over the accountant's queryable on this data; Context.__call__ submits
        # the measurement to it at release. Context.query() spends nothing.
        context = dp.Context(
            accountant=accountant, queryable=accountant(data), d_in=d_in, d_mids=cast(Any, [d_out])
        )

        def build() -> Any:
            lf_query: Any = context.query()
            for expr in filters:
                lf_query = lf_query.filter(expr)
            if bin_exprs:
                # A histogram's bins: Polars' cut at public breaks spread over the catalog bounds, a
                # row-wise map OpenDP recognises (its stability is the identity), as a new key column.
                lf_query = lf_query.with_columns(*bin_exprs)
            if not source.row_bound and persons:
                # extras/polars: LazyFrameQuery.truncate_per_group(1, by): one row per person and group,
                # so each group counts a person once; then truncate_num_groups bounds the groups a
                # person counts in. OpenDP 0.16 accounts ``rank < g`` as g groups but Polars' dense
                # ranks start at 1, so its truncate_num_groups(g) keeps g - 1: it is asked for one more
                # than the groups kept (the accounting stays OpenDP's, and conservative). keep="first"
                # because its "sample" fails on a name clash in 0.16; which groups a person over the
                # limit keeps is then the first in key order (documented in docs/queries.md).
                lf_query = lf_query.truncate_per_group(1, by=by)
                if by:
                    lf_query = lf_query.truncate_num_groups(min(groups, k) + 1, by=by, keep="first")
            elif not source.row_bound:
                # extras/polars: LazyFrameQuery.truncate_per_group: SymmetricIdDistance to k rows per person.
                lf_query = lf_query.truncate_per_group(k)
            if keys is not None:
                # extras/polars: LazyFrameQuery.with_keys: left join from the public key set.
                return lf_query.group_by(*group_keys).agg(*exprs).with_keys(keys)
            if query.group_by:
                # A DP key release: no key set, so OpenDP releases a group only if its noisy count
                # passes a threshold it calibrates to δ (make_private_lazyframe's ``threshold``).
                return lf_query.group_by(*group_keys).agg(*exprs)
            return lf_query.select(*exprs)

        calibrated, from_cache = self._calibrate(shape, build, d_in, d_out, stats)
        return Plan(
            query=query,
            epsilon=_epsilon_decimal(calibrated.loss, query.epsilon),
            delta=_epsilon_decimal(calibrated.delta, query.delta) if query.delta else Decimal(0),
            threshold=calibrated.threshold,
            aggregates=_aggregate_plans(query, calibrated.statistics),
            statistics=calibrated.statistics,
            scale_from_cache=from_cache,
            _measurement=calibrated.measurement,
            _context=context,
            _keys=keys,
            _stats=stats,
            source=source.path,
            row_bound=k if source.row_bound else None,
        )

    def _source(self, table: TableMeta, *, view: bool = True) -> _Source:
        """The file a query on ``table`` scans, and whether it holds at most k rows per person
        (``view=False``: the table's own file, for a count of persons).

        Cached on the files' identity (size, mtime, inode): versions are immutable once published."""
        if not view:
            own: tuple[object, ...] = (str(table.path), _table_identity(table.path))
            cached = self._sources.get(own)
            if cached is None:
                cached = _Source(table.path, scan_table(table.path).collect_schema(), row_bound=False)
                self._sources.put(own, cached)
            return cached
        bounded = view_path(table.path)
        view_id = _identity(bounded)
        key = (str(table.path), table.contribution_bound, _table_identity(table.path), view_id)
        cached = self._sources.get(key)
        if cached is not None:
            return cached
        source = _Source(table.path, scan_table(table.path).collect_schema(), row_bound=False)
        declared = declared_bound(table.path)
        if declared is not None and declared[0] <= table.contribution_bound:
            # The file itself declares at most k rows per person: truncation would be a no-op.
            source = _Source(table.path, source.schema, row_bound=True)
        elif view_id is not None and declared_bound(bounded) == (table.contribution_bound, table.path.name):
            # Its bounded view, built at ingest for exactly this bound.
            source = _Source(bounded, pl.scan_parquet(bounded).collect_schema(), row_bound=True)
        self._sources.put(key, source)
        return source

    def _accountant(
        self, source: _Source, columns: list[str], unit: tuple[Any, Any], d_out: _Loss, data: pl.LazyFrame
    ) -> Any:
        """OpenDP's compositor measurement for one query of ``d_out`` on these columns (cached).

        What ``Context.compositor(data, privacy_unit=unit, privacy_loss=dp.loss_of(epsilon=d_out),
        split_evenly_over=1, margins=[Margin(by=(), max_length=max_rows)])`` builds (context.py),
        minus its binary search for the weight scale, which is 1 for a single query."""
        metric, d_in = unit
        # The domain OpenDP infers is a function of the selected columns' names and types only.
        key = (tuple((c, repr(source.schema[c])) for c in columns), str(metric), d_in, d_out)
        cached = self._accountants.get(key)
        if cached is not None:
            return cached
        # context.py: loss_of(epsilon) -> max_divergence; loss_of(epsilon, delta) -> its Approximate form.
        measure, _ = (
            dp.loss_of(epsilon=d_out[0], delta=d_out[1])
            if isinstance(d_out, tuple)
            else dp.loss_of(epsilon=d_out)
        )
        # context.py: domain_of(LazyFrame, infer=True) reads the schema only; with_margin adds the public
        # row bound OpenDP needs to rule out overflow in sums.
        domain = dp.with_margin(dp.domain_of(data, infer=True), Margin(by=(), max_length=self._max_rows))
        # combinators.py: make_adaptive_composition, the accountant Context.compositor uses; its queryable
        # refuses a query whose privacy loss exceeds d_mids[0]. It holds no data: each plan makes its own
        # queryable over the data, with its own budget of d_out.
        accountant = dp.c.make_adaptive_composition(
            input_domain=domain, input_metric=metric, output_measure=measure, d_in=d_in, d_mids=[d_out]
        )
        self._accountants.put(key, accountant)
        return accountant

    def _calibrate(
        self, shape: tuple[object, ...], build: Any, d_in: Any, d_out: _Loss, stats: tuple[_Stat, ...]
    ) -> tuple[_Calibrated, bool]:
        """The OpenDP measurement for this query shape with the smallest scale OpenDP accepts for ``d_out``.

        A measurement is a function of the query shape only, and each release draws fresh noise when
        OpenDP's compositor runs it, so the calibrated measurement and its summary are cached per shape
        (this is what makes a repeated query cheap). Every plan re-checks it with OpenDP's
        ``Measurement.check(d_in, d_out)``."""
        cached = self._calibrated.get(shape)
        if cached is not None and cached.measurement.check(d_in, d_out):
            return cached, True
        lf_query = build()
        # The same pieces LazyFrameQuery.resolve() hands to make_private_lazyframe.
        inner = object.__getattribute__(lf_query, "_query")
        polars_plan = object.__getattribute__(lf_query, "polars_plan")
        input_domain, input_metric = inner._chain
        measure = inner._output_measure
        if isinstance(d_out, tuple):

            def make_released(scale: float, threshold: int) -> Any:
                return dp.m.make_private_lazyframe(
                    input_domain=input_domain,
                    input_metric=input_metric,
                    output_measure=measure,
                    lazyframe=polars_plan,
                    global_scale=scale,
                    threshold=threshold,
                )

            measurement = _key_release(make_released, d_in, d_out)
            return self._calibrated_put(shape, measurement, d_in, stats), False

        made: dict[float, Any] = {}

        def make(scale: float) -> Any:
            if scale not in made:  # the last probe of the search is the measurement used
                made[scale] = dp.m.make_private_lazyframe(
                    input_domain=input_domain,
                    input_metric=input_metric,
                    output_measure=measure,
                    lazyframe=polars_plan,
                    global_scale=scale,
                )
            return made[scale]

        # The same query shape at another ε: its scale, rescaled, is the first probe.
        hint = self._hints.get(shape[:-1])
        start = hint[0] * hint[1] / d_out if hint is not None else 1.0
        scale = _solve_scale(make, d_in, d_out, start=start)
        self._hints.put(shape[:-1], (scale, d_out))
        measurement = make(scale)
        if not measurement.check(d_in, d_out):
            raise RuntimeError("OpenDP refused the calibrated measurement: this is a bug in the engine.")
        return self._calibrated_put(shape, measurement, d_in, stats), False

    def _calibrated_put(
        self, shape: tuple[object, ...], measurement: Any, d_in: Any, stats: tuple[_Stat, ...]
    ) -> _Calibrated:
        # accuracy.py: summarize_polars_measurement reads each statistic's distribution and scale (and
        # the threshold of a DP key release).
        summary = summarize_polars_measurement(measurement, CONFIDENCE_ALPHA)
        means = any(s.name.startswith("count(") for s in stats)  # a count of values is only for a mean
        half = summarize_polars_measurement(measurement, CONFIDENCE_ALPHA / 2) if means else None
        loss = measurement.map(d_in)
        thresholds = (
            [int(t) for t in cast(pl.DataFrame, summary)["threshold"] if t is not None]
            if "threshold" in cast(pl.DataFrame, summary).columns
            else []
        )
        calibrated = _Calibrated(
            measurement=measurement,
            statistics=_read_summary(stats, summary, half),
            loss=float(loss[0] if isinstance(loss, tuple) else loss),
            delta=float(loss[1]) if isinstance(loss, tuple) else 0.0,
            threshold=max(thresholds) if thresholds else None,
        )
        self._calibrated.put(shape, calibrated)
        return calibrated

    # --------------------------------------------------------------- release
    def release(self, plan: Plan) -> Result:
        """Run a plan once (a plan's budget is spent by its first release) and post-process it."""
        _refuse_unsafe_features()
        try:
            # context.py: Context.__call__ submits the measurement to the compositor's queryable,
            # which checks its privacy loss against the plan's ε; the answer is a OnceFrame.
            once = plan._context(plan._measurement)
        except (OpenDPException, IndexError) as exc:
            raise RuntimeError("this plan has already been released: plan the query again") from exc
        raw = cast(pl.DataFrame, once.collect())
        if plan._keys is not None:
            # Public key order, and a guarantee that every key combination is present.
            names = list(plan._keys.columns)
            # Enum keys (the bounded view) come back from OpenDP as Categorical: both sides are
            # joined, and released, as the strings they stand for.
            keys, raw = _text_keys(plan._keys, names), _text_keys(raw, names)
            raw = keys.join(raw, on=names, how="left", nulls_equal=True, maintain_order="left")
        elif plan.query.group_by:
            # A DP key release: the keys that passed the threshold, in key order (not in the order
            # the data happened to be grouped in).
            names = _group_keys(plan.query)
            raw = _text_keys(raw, names).sort(names, nulls_last=True)
        else:
            names = []
        # A histogram's key column is released under its column's name.
        raw = raw.rename({_bin_key(name): name for name, _ in plan.query.bins})
        names = list(plan.query.group_by)
        return Result(
            data=_post_process(plan, raw, names),
            epsilon=plan.epsilon,
            noise_scales=plan.noise_scales,
        )


@dataclass(frozen=True)
class _Source:
    """What a query scans: a bounded view, or a table's full file as ``scan_table`` reads it."""

    path: Path
    schema: pl.Schema
    row_bound: bool  # every person has at most the table's contribution bound of rows in it


@dataclass(frozen=True)
class _Calibrated:
    measurement: Any  # OpenDP Measurement (make_private_lazyframe), data-independent
    statistics: tuple[Statistic, ...]
    loss: float  # measurement.map(d_in): ε (the first part of (ε, δ) for a DP key release)
    delta: float = 0.0
    threshold: int | None = None  # a DP key release's threshold on the noisy count


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells a file from its replacement: size, modification time and inode (None: absent)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _table_identity(path: Path) -> tuple[object, ...]:
    """The identity of every file holding the table whose full file is ``path`` (``table_files``)."""
    return tuple(_identity(f) for f in table_files(path))


_K = TypeVar("_K")
_V = TypeVar("_V")


class _Lru(Generic[_K, _V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


# ---------------------------------------------------------------- validation
def _refuse_unsafe_features() -> None:
    enabled = sorted(f for f in FORBIDDEN_FEATURES if f in GLOBAL_FEATURES)
    if enabled:
        raise RuntimeError(
            f"OpenDP has the feature(s) {', '.join(enabled)} enabled, which void its privacy guarantees;"
            " the DP engine refuses to run in this process."
        )


def _validate(query: Query) -> None:
    table = query.table
    cols = table.columns
    if not query.epsilon.is_finite() or query.epsilon <= 0:
        raise ValueError(f"Epsilon must be a positive finite number, not {query.epsilon}.")
    if not query.delta.is_finite() or not 0 <= query.delta < 1:
        raise ValueError(f"Delta must be at least 0 and below 1, not {query.delta}.")
    if table.contribution_bound < 1:
        raise ValueError("The table's contribution bound must be at least 1 row per person.")
    if PERSON_COLUMN in cols:
        raise ValueError(f"The column {PERSON_COLUMN} is the privacy unit and cannot be queried.")
    if not query.aggregates:
        raise ValueError("A query needs at least one aggregate.")
    names = [a.name for a in query.aggregates]
    if len(set(names)) != len(names):
        raise ValueError("Each aggregate may appear only once in a query.")
    for agg in query.aggregates:
        _validate_aggregate(agg, cols)
    if any(a.kind == "count_persons" for a in query.aggregates) and len(query.aggregates) > 1:
        raise ValueError(
            "A count of persons is a query of its own (it counts each person once per group, where the"
            " other aggregates use up to the contribution bound of rows per person): ask for the other"
            " aggregates in a separate query."
        )
    if len(set(query.group_by)) != len(query.group_by):
        raise ValueError("A column may appear only once in group_by.")
    binned = dict(query.bins)
    if len(binned) != len(query.bins):
        raise ValueError("A column may be binned only once.")
    for name, n in query.bins:
        if name not in query.group_by:
            raise ValueError(f"The bins of {name} make it a group key: add {name} to group_by.")
        col = _column(name, cols, "bin")
        if col.type not in ("integer", "decimal") or col.lower is None or col.upper is None:
            raise ValueError(f"Cannot bin {name}: only bounded numeric columns have public bins.")
        if not 2 <= n <= MAX_BINS:
            raise ValueError(f"A histogram has 2 to {MAX_BINS} bins, not {n}.")
    private = [
        name for name in query.group_by if not _column(name, cols, "group by").domain and name not in binned
    ]
    if private and query.delta <= 0:
        raise ValueError(
            f"Cannot group by {private[0]}: it has no public domain of keys, and keys read from the data"
            " are not private. Give the query a delta (such as 1e-7) to release only the keys whose noisy"
            " count passes a threshold (a DP key release), or group by a column with a public domain."
        )
    if query.delta > 0 and not private:
        raise ValueError(
            "A delta is only for a DP key release (a group-by on a column without a public domain);"
            " this query is pure DP: leave delta at 0."
        )
    if private and not any(a.kind in ("count_rows", "count_persons") for a in query.aggregates):
        raise ValueError(
            f"Grouping by {private[0]} releases only keys whose noisy count passes a threshold: add a"
            " count (count_rows or count_persons) to the aggregates."
        )
    for name in query.group_by:
        col = cols[name]
        if name in binned:
            continue
        if not col.domain:
            if col.type not in ("string", "integer", "date"):
                raise ValueError(
                    f"Cannot group by {name}: only string, integer and date columns can be group keys."
                )
            continue
        if col.type not in ("string", "integer"):
            raise ValueError(f"Cannot group by {name}: only string and integer columns can be group keys.")
        if col.type == "integer":
            for value in col.domain:
                _parse_int(value, f"The domain of {name} holds {value!r}, which is not an integer.")
    for flt in query.filters:
        _validate_filter(flt, cols)


def _validate_aggregate(agg: Aggregate, cols: Mapping[str, ColumnMeta]) -> None:
    if agg.kind in ("count_rows", "count_persons"):
        if agg.column is not None:
            raise ValueError(f"A {agg.kind} aggregate counts {agg.kind[6:]} and takes no column.")
        return
    if agg.kind not in ("sum", "mean", "median", "quantile"):
        raise ValueError(
            f"Unknown aggregate {agg.kind!r}: use count_rows, count_persons, sum, mean, median or quantile."
        )
    if (agg.kind == "quantile") != (agg.q is not None):
        raise ValueError("A quantile needs its level q (0 < q < 1), and only a quantile takes one.")
    if agg.q is not None and not 0 < agg.q < 1:
        raise ValueError(f"A quantile's level is between 0 and 1 (exclusive), not {agg.q}.")
    if agg.column is None:
        raise ValueError(f"A {agg.kind} needs a column.")
    col = _column(agg.column, cols, agg.kind)
    if col.type not in ("integer", "decimal"):
        raise ValueError(f"Cannot take the {agg.kind} of {col.name}: it is a {col.type} column, not numeric.")
    if col.lower is None or col.upper is None:
        raise ValueError(f"Cannot take the {agg.kind} of {col.name}: it has no clamp bounds in the catalog.")
    if not (math.isfinite(col.lower) and math.isfinite(col.upper)) or col.lower > col.upper:
        raise ValueError(f"The bounds of {col.name} must be finite with lower <= upper.")
    if col.type == "integer" and not (float(col.lower).is_integer() and float(col.upper).is_integer()):
        raise ValueError(f"The bounds of the integer column {col.name} must be integers.")


def _validate_filter(flt: Filter, cols: Mapping[str, ColumnMeta]) -> None:
    col = _column(flt.column, cols, "filter on")
    if flt.op not in ("==", "!=", "<", "<=", ">", ">=", "in"):
        raise ValueError(f"Unknown filter operator {flt.op!r}.")
    if flt.op == "in":
        if not isinstance(flt.value, list | tuple | set | frozenset) or not flt.value:
            raise ValueError(f"The filter {flt.column} in ... needs a non-empty list of values.")
        values = list(flt.value)
    else:
        values = [flt.value]
    for value in values:
        _literal(col, value)  # raises ValueError on a mismatched type


def _column(name: str, cols: Mapping[str, ColumnMeta], what: str) -> ColumnMeta:
    col = cols.get(name)
    if col is None:
        raise ValueError(f"Cannot {what} {name!r}: the table has no such column.")
    return col


def _parse_int(value: str, message: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(message) from None


def _used_columns(query: Query) -> list[str]:
    used: list[str] = []
    for name in (
        *query.group_by,
        *(f.column for f in query.filters),
        *(a.column for a in query.aggregates if a.column is not None),
    ):
        if name not in used:
            used.append(name)
    return used


_EXPECTED_DTYPES: dict[str, tuple[type[pl.DataType], ...]] = {
    "string": (pl.String, pl.Enum),  # Enum: a category of the bounded view (enclave/ingest/bounded.py)
    "integer": (pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt32, pl.UInt16, pl.UInt8),
    "decimal": (pl.Float64, pl.Float32),
    "date": (pl.Date,),
}


def _check_schema(schema: pl.Schema, table: TableMeta, used: list[str]) -> None:
    if schema.get(PERSON_COLUMN) != pl.String:
        raise ValueError(f"The table {table.path.name} has no string {PERSON_COLUMN} column.")
    for name in used:
        meta = table.columns[name]
        dtype = schema.get(name)
        if dtype is None:
            raise ValueError(f"The catalog lists {name}, but the table file has no such column.")
        if not isinstance(dtype, _EXPECTED_DTYPES[meta.type]):
            raise ValueError(f"The column {name} is stored as {dtype}, not as the catalog's {meta.type}.")


# ----------------------------------------------------------- building blocks
def _literal(col: ColumnMeta, value: object) -> pl.Expr:
    """A typed literal comparable with the column (checked against the catalog type)."""
    if col.type == "string" and isinstance(value, str):
        return pl.lit(value, dtype=pl.String)
    if col.type == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return pl.lit(value, dtype=pl.Int64)
    if col.type == "decimal" and isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return pl.lit(float(value), dtype=pl.Float64)
    if col.type == "date":
        day = value if isinstance(value, date) else None
        if isinstance(value, str):
            try:
                day = date.fromisoformat(value)
            except ValueError:
                day = None
        if day is not None:
            # OpenDP 0.16 rejects Date literals ("unsupported literal value: Date(...)"), so dates are
            # compared on their physical representation, days since 1970-01-01 (Int32).
            return pl.lit((day - _EPOCH).days, dtype=pl.Int32)
    raise ValueError(f"The filter value {value!r} does not match the {col.type} column {col.name}.")


def _filter_expr(flt: Filter, col: ColumnMeta, schema: pl.Schema) -> pl.Expr:
    column = pl.col(col.name)
    if col.type == "date":
        column = column.to_physical()
    elif isinstance(schema.get(col.name), pl.Enum):
        # Compared as strings, as in the full file (an Enum orders by category, not by text).
        column = column.cast(pl.String)
    if flt.op == "in":
        # OpenDP 0.16 does not support is_in ("IsIn ... is not currently supported"): a disjunction.
        terms = [column == _literal(col, v) for v in cast("list[object]", list(cast(Any, flt.value)))]
        expr = terms[0]
        for term in terms[1:]:
            expr = expr | term
        return expr
    return compare(column, flt.op, _literal(col, flt.value))


_COMPARISONS: dict[str, Any] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(left: pl.Expr, op: str, right: pl.Expr) -> pl.Expr:
    """``left <op> right`` for the comparison operators of plans and cohort definitions."""
    result: pl.Expr = _COMPARISONS[op](left, right)
    return result


def _dp(expr: pl.Expr) -> Any:
    """The ``.dp`` namespace that ``opendp.extras.polars`` registers on Polars expressions (``DPExpr``)."""
    return cast(Any, expr).dp


def _decimal_places(lower: float, upper: float, max_rows: int) -> int:
    """Fixed-point digits for a decimal sum: as many as fit (<= 6) without risk of Int64 overflow."""
    biggest = max(abs(lower), abs(upper), 1.0)
    for places in range(_MAX_DECIMAL_PLACES, -1, -1):
        if max_rows * biggest * 10**places <= 2**62:
            return places
    raise ValueError(f"The bounds [{lower:g}, {upper:g}] are too wide to sum without overflow.")


def _sum_expr(col: ColumnMeta, alias: str, max_rows: int) -> tuple[pl.Expr, int]:
    assert col.lower is not None
    assert col.upper is not None
    if col.type == "integer":
        # extras/polars: DPExpr.sum clips to the bounds and adds (discrete) noise to the sum.
        return _dp(pl.col(col.name).cast(pl.Int64)).sum((int(col.lower), int(col.upper))).alias(alias), 1
    places = _decimal_places(col.lower, col.upper, max_rows)
    unit = 10**places
    lo, hi = round(col.lower * unit), round(col.upper * unit)
    # Fixed point: clip, shift to >= 0 so the cast (which truncates) rounds half up, shift back.
    fixed = ((pl.col(col.name).clip(col.lower, col.upper) - col.lower) * float(unit) + 0.5).cast(
        pl.Int64
    ) + pl.lit(lo, dtype=pl.Int64)
    return _dp(fixed).sum((lo, hi)).alias(alias), unit


def _median_expr(col: ColumnMeta, alias: str, q: float = 0.5) -> tuple[pl.Expr, int]:
    """OpenDP's DP median (or quantile at level ``q``) over public candidates evenly spaced across
    the catalog bounds."""
    assert col.lower is not None
    assert col.upper is not None
    steps = [
        col.lower + (col.upper - col.lower) * i / (_MEDIAN_CANDIDATES - 1) for i in range(_MEDIAN_CANDIDATES)
    ]
    # extras/polars: DPExpr.median(candidates) (DPExpr.quantile at alpha 0.5): an exponential mechanism
    # that selects one of the public candidates; its scale is filled in by make_private_lazyframe's
    # global_scale.
    # DPExpr.quantile(alpha, candidates) is the same mechanism at another level (median is alpha 0.5).
    if col.type == "integer":
        ints = sorted({round(v) for v in steps})
        expr = _dp(pl.col(col.name).cast(pl.Int64))
        return (expr.median(ints) if q == 0.5 else expr.quantile(q, ints)).alias(alias), 1
    floats = sorted(set(steps))
    expr = _dp(pl.col(col.name).cast(pl.Float64))
    return (expr.median(floats) if q == 0.5 else expr.quantile(q, floats)).alias(alias), 1


def _statistics(query: Query, max_rows: int) -> tuple[tuple[_Stat, ...], list[pl.Expr]]:
    """The distinct OpenDP statistics the aggregates need, each built once."""
    stats: list[_Stat] = []
    exprs: list[pl.Expr] = []
    cols = query.table.columns

    def need(name: str, build: Any) -> None:
        if any(s.name == name for s in stats):
            return
        alias = f"__stat{len(stats)}"
        expr, divisor = build(alias)
        stats.append(_Stat(name=name, alias=alias, divisor=divisor))
        exprs.append(expr)

    for agg in query.aggregates:
        if agg.kind == "count_rows":
            # extras/polars: dp_len (dp.len) counts the rows of each group, signed (noise may go negative).
            need("rows", lambda a: (dp_len(signed=True).alias(a), 1))
            continue
        if agg.kind == "count_persons":
            # The same dp_len, over one row per person (and group): see Engine.plan's truncation.
            need("persons", lambda a: (dp_len(signed=True).alias(a), 1))
            continue
        col = cols[cast(str, agg.column)]
        if agg.kind == "median":
            need(f"median({col.name})", lambda a, c=col: _median_expr(c, a))
            continue
        if agg.kind == "quantile":
            level = cast(float, agg.q)
            need(f"quantile({col.name}, {level})", lambda a, c=col, q=level: _median_expr(c, a, q))
            continue
        need(f"sum({col.name})", lambda a, c=col: _sum_expr(c, a, max_rows))
        if agg.kind == "mean":
            # extras/polars: DPExpr.count counts the non-null values of the column.
            need(
                f"count({col.name})",
                lambda a, c=col: (_dp(pl.col(c.name)).count(signed=True).alias(a), 1),
            )
    return tuple(stats), exprs


def _key_frame(query: Query, stored: pl.Schema) -> pl.DataFrame:
    """Every combination of the public domains of the group-by columns, typed as the file stores them."""
    cols = query.table.columns
    domains: list[list[object]] = []
    schema: dict[str, pl.DataType | type[pl.DataType]] = {}
    binned = dict(query.bins)
    for name in query.group_by:
        col = cols[name]
        if name in binned:
            _, labels = bin_edges(col, binned[name])
            domains.append(list(labels))
            schema[_bin_key(name)] = pl.Categorical
            continue
        assert col.domain is not None
        if col.type == "integer":
            domains.append([int(v) for v in dict.fromkeys(col.domain)])
            schema[name] = pl.Int64
        else:
            values: list[object] = list(dict.fromkeys(col.domain))
            dtype = stored.get(name)
            if isinstance(dtype, pl.Enum):
                missing = set(values) - set(dtype.categories.to_list())
                if missing:
                    raise ValueError(
                        f"The column {name} is stored with categories that miss {len(missing)} value(s) of"
                        " its catalog domain."
                    )
                schema[name] = dtype
            else:
                schema[name] = pl.String
            domains.append(values)
    rows = list(product(*domains))
    return pl.DataFrame(rows, schema=schema, orient="row")


_Loss = float | tuple[float, float]  # ε, or (ε, δ) for a DP key release


def _bin_key(name: str) -> str:
    """The key column of a binned group-by column, beside the column itself (which aggregates may use)."""
    return f"__bin_{name}"


def _group_keys(query: Query) -> list[str]:
    """The key columns a query groups on: each group-by column itself, or its bins."""
    binned = dict(query.bins)
    return [_bin_key(name) if name in binned else name for name in query.group_by]


def bin_edges(col: ColumnMeta, n: int) -> tuple[list[float], list[str]]:
    """The public inner breaks of ``n`` equal bins over the column's catalog bounds, and their labels.

    Bins are closed on the right, as Polars' ``cut`` makes them: ``[lo, b1]``, ``(b1, b2]`` ... up to
    ``(b(n-1), hi]``. Integer columns get integer breaks (fewer bins when the range is narrower than
    ``n``) and labels that name the integers they hold: ``0-4``, ``5-9``."""
    assert col.lower is not None
    assert col.upper is not None
    lo, hi = col.lower, col.upper
    if col.type == "integer":
        ilo, ihi = int(lo), int(hi)
        width = ihi - ilo + 1  # the integers in the bounds, shared out as evenly as they go
        breaks = sorted({ilo + width * i // n - 1 for i in range(1, n)} & set(range(ilo, ihi)))
        edges = [ilo - 1, *breaks, ihi]  # bin i holds edges[i] + 1 .. edges[i + 1]
        labels = [
            f"{edges[i] + 1}-{edges[i + 1]}" if edges[i + 1] > edges[i] + 1 else str(edges[i + 1])
            for i in range(len(edges) - 1)
        ]
        return [float(b) for b in breaks], labels
    steps = [lo + (hi - lo) * i / n for i in range(1, n)]
    edges_f = [lo, *steps, hi]
    labels = [f"{'[' if i == 0 else '('}{edges_f[i]:g}, {edges_f[i + 1]:g}]" for i in range(len(edges_f) - 1)]
    return steps, labels


def _bin_expr(col: ColumnMeta, n: int) -> pl.Expr:
    breaks, labels = bin_edges(col, n)
    return pl.col(col.name).cut(breaks, labels=labels).alias(_bin_key(col.name))


def _epsilon_float(epsilon: Decimal) -> float:
    """The largest float not above the requested ε (or δ), so OpenDP's check can never exceed it."""
    value = float(epsilon)
    if Decimal(value) > epsilon:
        value = math.nextafter(value, 0.0)
    return value


def _loss_float(epsilon: Decimal, delta: Decimal) -> _Loss:
    return (_epsilon_float(epsilon), _epsilon_float(delta)) if delta else _epsilon_float(epsilon)


def _epsilon_decimal(loss: float, requested: Decimal) -> Decimal:
    """The accounted loss as a decimal never above the requested one."""
    short = Decimal(repr(loss))
    return short if short <= requested else Decimal(loss)


def _solve_scale(make: Any, d_in: Any, d_out: float, *, start: float = 1.0) -> float:
    """The smallest global scale OpenDP's privacy map accepts for ``d_out``.

    OpenDP's Laplace map is sensitivity / scale, so probing the map at ``start`` and rescaling lands in
    one or two steps (one, from the scale of the same query at another ε); each candidate is verified
    with ``Measurement.check``. If that does not settle, OpenDP's ``binary_search_param`` (what
    ``LazyFrameQuery.resolve`` uses) decides."""
    scale = start
    for _ in range(6):
        loss = float(make(scale).map(d_in))
        if not math.isfinite(loss) or loss <= 0:
            break
        if loss <= d_out and (loss >= d_out * (1 - 1e-9)):
            return scale
        scale = scale * loss / d_out
        if loss > d_out * (1 - 1e-9):
            scale = math.nextafter(scale, math.inf)
    return float(binary_search_param(make, d_in=d_in, d_out=d_out, T=float))


_NO_THRESHOLD = 2**32 - 1  # OpenDP's thresholds are u32: the largest keeps the threshold out of the way


class _EpsilonPart:
    """An (ε, δ) measurement seen through its ε alone, for the scale search."""

    def __init__(self, measurement: Any) -> None:
        self._measurement = measurement

    def map(self, d_in: Any) -> float:
        return float(self._measurement.map(d_in)[0])

    def check(self, d_in: Any, d_out: float) -> bool:
        return self.map(d_in) <= d_out


def _key_release(make: Any, d_in: Any, d_out: tuple[float, float]) -> Any:
    """The measurement of a DP key release: the smallest scale for ε, then the smallest threshold for δ.

    The same two searches as OpenDP's ``LazyFrameQuery.resolve()`` for an ``Approximate`` measure
    (``make_private_lazyframe(..., threshold=)``: a group is released only if its noisy count is at
    least the threshold, and δ bounds the chance that a key only one person has passes it). OpenDP's
    own threshold search fails at large ε (its lower probes raise "threshold must be greater than
    1"), so here a probe that raises counts as too small. The result is checked with
    ``Measurement.check(d_in, (ε, δ))`` before use."""
    epsilon, delta = d_out
    scale = _solve_scale(lambda s: _EpsilonPart(make(s, _NO_THRESHOLD)), d_in, epsilon)

    def enough(threshold: int) -> bool:
        try:
            return bool(float(make(scale, threshold).map(d_in)[1]) <= delta)
        except OpenDPException:
            return False

    if not enough(_NO_THRESHOLD):
        raise ValueError(
            f"Delta {delta:g} is too small for a DP key release at this epsilon: use a larger delta."
        )
    low, high = 2, _NO_THRESHOLD
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    measurement = make(scale, high)
    if not measurement.check(d_in, d_out):
        raise RuntimeError("OpenDP refused the calibrated key release: this is a bug in the engine.")
    return measurement


def _read_summary(stats: tuple[_Stat, ...], summary: Any, half: Any) -> tuple[Statistic, ...]:
    by_alias = {row["column"]: row for row in cast(pl.DataFrame, summary).iter_rows(named=True)}
    half_by_alias = (
        {row["column"]: row for row in cast(pl.DataFrame, half).iter_rows(named=True)}
        if half is not None
        else {}
    )

    def accuracy(row: dict[str, Any], divisor: int) -> float | None:
        # OpenDP's summarize gives no accuracy for a quantile: a null, or no column if all are.
        value = row.get("accuracy")
        return None if value is None else float(value) / divisor

    out = []
    for s in stats:
        row = by_alias[s.alias]
        out.append(
            Statistic(
                name=s.name,
                distribution=str(row["distribution"]),
                scale=float(row["scale"]) / s.divisor,
                accuracy=accuracy(row, s.divisor),
                accuracy_half_alpha=accuracy(half_by_alias[s.alias], s.divisor) if half_by_alias else None,
            )
        )
    return tuple(out)


def _aggregate_plans(query: Query, statistics: tuple[Statistic, ...]) -> tuple[AggregatePlan, ...]:
    by_name = {s.name: s for s in statistics}
    plans = []
    for agg in query.aggregates:
        if agg.kind in ("count_rows", "count_persons"):
            s = by_name["rows" if agg.kind == "count_rows" else "persons"]
            plans.append(AggregatePlan(agg.name, agg, s.scale, s.accuracy, (s.name,)))
        elif agg.kind == "sum":
            s = by_name[f"sum({agg.column})"]
            plans.append(AggregatePlan(agg.name, agg, s.scale, s.accuracy, (s.name,)))
        elif agg.kind in ("median", "quantile"):
            key = f"median({agg.column})" if agg.kind == "median" else f"quantile({agg.column}, {agg.q})"
            s = by_name[key]
            plans.append(AggregatePlan(agg.name, agg, s.scale, None, (s.name,)))
        else:
            s = by_name[f"sum({agg.column})"]
            plans.append(AggregatePlan(agg.name, agg, s.scale, None, (s.name, f"count({agg.column})")))
    return tuple(plans)


# ----------------------------------------------------------- post-processing
def _text_keys(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """``frame`` with its Enum and Categorical key columns cast to strings."""
    return frame.with_columns(
        pl.col(n).cast(pl.String) for n in names if isinstance(frame.schema[n], pl.Enum | pl.Categorical)
    )


def _post_process(plan: Plan, raw: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Aggregates and their 95% half-widths from the noisy statistics (post-processing only)."""
    stat_alias = {s.name: s for s in plan._stats}
    stat_info = {s.name: s for s in plan.statistics}
    out: list[pl.Expr] = [pl.col(k) for k in keys]
    for agg in plan.aggregates:
        if agg.aggregate.kind in ("count_rows", "count_persons", "sum", "median", "quantile"):
            s = stat_alias[agg.statistics[0]]
            value = pl.col(s.alias)
            if s.divisor != 1:
                value = value.cast(pl.Float64) / s.divisor
            out.append(value.alias(agg.name))
            out.append(pl.lit(agg.accuracy, dtype=pl.Float64).alias(f"{agg.name}_ci95"))
        else:
            col = plan.query.table.columns[cast(str, agg.aggregate.column)]
            out.extend(_mean_exprs(agg.name, col, stat_alias, stat_info, agg.statistics))
    return raw.select(out)


def _mean_exprs(
    name: str,
    col: ColumnMeta,
    alias: Mapping[str, _Stat],
    info: Mapping[str, Statistic],
    names: tuple[str, ...],
) -> list[pl.Expr]:
    """A mean as noisy sum / noisy count, clamped to the bounds, with a union-bound interval.

    With probability >= 95% both the sum and the count are within their OpenDP accuracies at
    alpha = 2.5%; the interval covers every ratio in that box (and never exceeds the bounds)."""
    assert col.lower is not None
    assert col.upper is not None
    lo, hi = float(col.lower), float(col.upper)
    s_stat, c_stat = alias[names[0]], alias[names[1]]
    a_s, a_c = info[names[0]].accuracy_half_alpha, info[names[1]].accuracy_half_alpha
    assert a_s is not None  # Laplace statistics always have an OpenDP accuracy
    assert a_c is not None
    total = pl.col(s_stat.alias).cast(pl.Float64) / s_stat.divisor
    count = pl.col(c_stat.alias).cast(pl.Float64)
    mean = (total / pl.max_horizontal(count, pl.lit(1.0))).clip(lo, hi)
    corners = [(total + ds) / (count + dc) for ds in (-a_s, a_s) for dc in (-a_c, a_c)]
    low = pl.min_horizontal(corners).clip(lo, hi)
    high = pl.max_horizontal(corners).clip(lo, hi)
    width = pl.when(count - a_c > 0).then(pl.max_horizontal(mean - low, high - mean)).otherwise(hi - lo)
    return [mean.alias(name), width.alias(f"{name}_ci95")]
