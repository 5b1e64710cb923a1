"""Dummy data: schema-faithful synthetic rows made from the catalog's metadata alone.

Researchers develop and test notebooks against dummy data at no privacy cost, as OpenSAFELY does,
then run the same code as DP queries. That is only free if the dummy rows carry no information about
the real ones, so this module's one input about a dataset is the column metadata the catalog records
(``ResolvedColumn.model_dump(mode="json")``: name, role, type, nullable, domain, lower/upper,
first/last) and its contribution bound. It never opens the research store, and nothing in it depends
on a row count, a frequency or any other statistic of the real data.

What a column gets (every column keeps its catalog name and order):

* ``person_id``: per-project dummy pseudonyms (see :func:`dummy_person_ids`), several rows per person:
  ``1 + Poisson(min((bound - 1) / 4, 5))`` rows, capped at the dataset's contribution bound, so code
  that truncates or aggregates per person meets the same shape it will meet in the enclave. With one
  seed, the dummy frames of a project's datasets share their first people, so linking them on
  ``person_id`` finds matches, as it does in the real data.
* ``category`` with a public domain: values drawn from the domain with weights from a flat Dirichlet
  draw (seeded), so some categories are common and some rare, as in health data, without those
  weights meaning anything. A category *without* a public domain (a postcode area) gets opaque
  placeholders ``<name>_1`` .. ``<name>_5``: the catalog says nothing about its values, and inventing
  realistic-looking ones would suggest knowledge nobody has.
* ``numeric``: ``lower + Beta(2, 2) x (upper - lower)``: a hump strictly inside the bounds, denser in
  the middle, reaching towards both ends. Integers are whole numbers within ``[ceil(lower),
  floor(upper)]``; decimals are rounded to two places and stay within the bounds.
* ``date``: uniform over the declared ``first``..``last`` range, inclusive.
* ``nullable`` columns are missing in about ``NULL_RATE`` of rows (never the person identifier), so
  notebooks meet missing values before the real data does.

pandas dtypes: text as pandas' default string dtype (``str`` on pandas 3, ``object`` before), integers
as the nullable ``Int64`` (an integer column with gaps stays integer), decimals as ``float64`` (NaN when
missing), dates as ``datetime64`` (NaT when missing), so date comparisons work as researchers expect.

Determinism: the same ``seed``, metadata, ``n``, bound and project key give the same frame. Each column
draws from its own stream (seeded by ``seed`` and the column's name), so adding or removing a column
never changes the others' values.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from enclave.domain.errors import InvalidInput
from enclave.keys import PSEUDONYM_HEX, Pseudonymiser

MAX_DUMMY_ROWS = 1_000_000
NULL_RATE = 0.05
DUMMY_PREFIX = "dummy"
_DUMMY_INPUT = "dummy:"
_PLACEHOLDERS = 5
_DECIMAL_PLACES = 2
_MAX_EXTRA_ROWS_MEAN = 5.0

Rng = np.random.Generator
Column = Mapping[str, Any]


def dummy_person_ids(project_key: bytes, numbers: Sequence[int]) -> list[str]:
    """The dummy pseudonyms of fake person numbers, as one project sees them.

    A dummy pseudonym is ``"dummy"`` followed by the first 27 hex characters of
    ``HMAC-SHA256(project key, "dummy:<number>")``: 32 characters, the length of a real pseudonym.

    Why it can never equal a real pseudonym: every real pseudonym in Enclave, the linkage pseudonym in
    the research store as well as every per-project pseudonym (``enclave.keys``), is the hex digest of
    an HMAC truncated to ``PSEUDONYM_HEX`` characters, so it is made only of ``0-9a-f``. A dummy
    pseudonym contains ``u``, ``m`` and ``y``, which are not hex digits. The two sets are disjoint by
    their alphabet, whatever the keys, the inputs or chance; no probability argument is needed, and a
    reviewer (or the airlock) can tell a dummy identifier at a glance.

    Why keyed, and keyed per project: dummy identifiers then look and behave like the identifiers the
    project may see (unpredictable, stable for a project and a seed), and two projects' dummy frames
    share no identifier, as their real pseudonyms share none. The HMAC input ``dummy:<number>`` also
    never equals a real input (a linkage pseudonym is 32 hex characters and has no ``:``), so the
    keyed function is never evaluated on anything a real pseudonym is derived from.
    """
    hasher = Pseudonymiser(project_key)
    width = PSEUDONYM_HEX - len(DUMMY_PREFIX)
    return [DUMMY_PREFIX + digest[:width] for digest in hasher.many(f"{_DUMMY_INPUT}{k}" for k in numbers)]


def is_dummy_person_id(value: str) -> bool:
    """Whether an identifier is a dummy pseudonym (no real pseudonym ever is)."""
    return len(value) == PSEUDONYM_HEX and value.startswith(DUMMY_PREFIX)


def dummy_frame(
    columns: Sequence[Column],
    n: int,
    *,
    project_key: bytes,
    contribution_bound: int = 1,
    seed: int | None = None,
) -> pd.DataFrame:
    """``n`` synthetic rows with the dataset's columns, from its catalog metadata alone.

    ``columns`` is the catalog's column metadata of one dataset version (the dicts the ingest service
    records); ``contribution_bound`` is the dataset's (most rows per person); ``project_key`` is the
    project's derived key (``KeyStore.project_key``), used only for the dummy identifiers; ``seed``
    makes the frame reproducible (None draws fresh randomness).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_DUMMY_ROWS:
        raise InvalidInput(f"dummy data has 1 to {MAX_DUMMY_ROWS:,} rows; {n!r} was asked for")
    if (
        isinstance(contribution_bound, bool)
        or not isinstance(contribution_bound, int)
        or contribution_bound < 1
    ):
        raise InvalidInput(
            f"the contribution bound is a whole number of rows >= 1, not {contribution_bound!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidInput(f"the dummy data seed is a whole number >= 0, not {seed!r}")
    if not columns:
        raise InvalidInput("dummy data needs at least one column")
    names = [_column_name(c) for c in columns]
    duplicated = sorted({x for x in names if names.count(x) > 1})
    if duplicated:
        raise InvalidInput(f"the column metadata names {', '.join(duplicated)} more than once")

    entropy = seed if seed is not None else np.random.SeedSequence().entropy
    assert entropy is not None

    def stream(label: str) -> Rng:
        # One independent stream per purpose: (entropy, a stable 64-bit hash of the label).
        tag = int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "big")
        return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(tag,)))

    person_ids = _persons(n, contribution_bound, project_key, stream("persons"))
    data: dict[str, Any] = {}
    for meta, name in zip(columns, names, strict=True):
        role = str(meta.get("role"))
        if role == "person_id":
            data[name] = pd.Series(person_ids, dtype=object).astype(_string_dtype())
            continue
        generate = _GENERATORS.get(role)
        if generate is None:
            raise InvalidInput(
                f"column {name!r} has role {role!r}; dummy data knows person_id, category, numeric and date"
            )
        rng = stream(f"column:{name}")
        missing = rng.random(n) < NULL_RATE if meta.get("nullable") else np.zeros(n, dtype=bool)
        data[name] = generate(meta, name, n, rng, missing)
    return pd.DataFrame(data, columns=names)


# ----------------------------------------------------------------- persons
def _persons(n: int, bound: int, project_key: bytes, rng: Rng) -> np.ndarray[Any, np.dtype[np.object_]]:
    """A dummy pseudonym per row: people with 1..bound rows each, rows in random order."""
    # Fake person numbers: consecutive from a random 62-bit start, so distinct within the frame and
    # different for different seeds. The start is the stream's first draw, so it depends on the seed
    # only: frames of several datasets made with one seed for one project share their people, and
    # link on person_id as the real datasets do.
    start = int(rng.integers(0, 2**62))
    mean_extra = min((bound - 1) / 4, _MAX_EXTRA_ROWS_MEAN)
    # n people always suffice (each has at least one row); keep those needed to reach n rows.
    counts = 1 + np.minimum(rng.poisson(mean_extra, size=n), bound - 1)
    people = int(np.searchsorted(np.cumsum(counts), n) + 1)
    owner = np.repeat(np.arange(people), counts[:people])[:n]
    owner = owner[rng.permutation(n)]
    ids = np.array(dummy_person_ids(project_key, range(start, start + people)), dtype=object)
    result: np.ndarray[Any, np.dtype[np.object_]] = ids[owner]
    return result


# ----------------------------------------------------------------- columns by role
def _category(meta: Column, name: str, n: int, rng: Rng, missing: np.ndarray[Any, Any]) -> pd.Series:
    domain = meta.get("domain")
    if domain:
        values: list[Any] = list(dict.fromkeys(domain))
        if meta.get("type") == "integer":
            values = [int(v) for v in values]
    else:
        values = [f"{name}_{i}" for i in range(1, _PLACEHOLDERS + 1)]
    weights = rng.dirichlet(np.ones(len(values)))
    picks = rng.choice(len(values), size=n, p=weights)
    if meta.get("type") == "integer":
        return _integers(np.asarray(values, dtype=np.int64)[picks], missing)
    out = np.asarray(values, dtype=object)[picks]
    out[missing] = None
    return pd.Series(out, dtype=object).astype(_string_dtype())


def _numeric(meta: Column, name: str, n: int, rng: Rng, missing: np.ndarray[Any, Any]) -> pd.Series:
    lower, upper = _bound(meta, "lower", name), _bound(meta, "upper", name)
    if lower > upper:
        raise InvalidInput(f"column {name!r} has lower bound {lower} above its upper bound {upper}")
    position = rng.beta(2.0, 2.0, size=n)
    if meta.get("type") == "integer":
        lo, hi = math.ceil(lower), math.floor(upper)
        if lo > hi:
            raise InvalidInput(f"the integer column {name!r} has no whole number within [{lower}, {upper}]")
        return _integers(lo + np.rint(position * (hi - lo)).astype(np.int64), missing)
    if meta.get("type") != "decimal":
        raise InvalidInput(
            f"the numeric column {name!r} has type {meta.get('type')!r}, not integer or decimal"
        )
    values = np.clip(np.round(lower + position * (upper - lower), _DECIMAL_PLACES), lower, upper)
    values[missing] = np.nan
    return pd.Series(values, dtype="float64")


def _date(meta: Column, name: str, n: int, rng: Rng, missing: np.ndarray[Any, Any]) -> pd.Series:
    first, last = _day(meta, "first", name), _day(meta, "last", name)
    if first > last:
        raise InvalidInput(f"column {name!r} has its first date {first} after its last date {last}")
    offsets = rng.integers(0, (last - first).days + 1, size=n)
    days = np.datetime64(first.isoformat(), "D") + offsets.astype("timedelta64[D]")
    days[missing] = np.datetime64("NaT")
    return pd.Series(days)


_GENERATORS: dict[str, Callable[[Column, str, int, Rng, np.ndarray[Any, Any]], pd.Series]] = {
    "category": _category,
    "numeric": _numeric,
    "date": _date,
}


# ----------------------------------------------------------------- helpers
def _integers(values: np.ndarray[Any, Any], missing: np.ndarray[Any, Any]) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), missing.copy()))


def _string_dtype() -> Any:
    """pandas' default dtype for text: ``str`` on pandas 3 (missing as NaN), ``object`` before."""
    return pd.Series(["x"]).dtype


def _column_name(meta: Column) -> str:
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a column's metadata has no name: {sorted(meta)}")
    return name


def _bound(meta: Column, key: str, name: str) -> float:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"the numeric column {name!r} has no finite {key} bound in the catalog")
    return float(value)


def _day(meta: Column, key: str, name: str) -> date:
    value = meta.get(key)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(f"the date column {name!r} has no {key} date (YYYY-MM-DD) in the catalog")
