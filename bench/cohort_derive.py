"""Deriving a cohort's per-person frame, against the exact Polars group-by on the same Parquet.

    python bench/cohort_derive.py                     # 10M admissions + 5M lab results, 2M persons
    python bench/cohort_derive.py --rows 2000000      # a quicker run

Writes synthetic linked tables (persons, admissions, lab results) as Parquet, then times, in one run:

* **exact group-by**: one ``group_by(person_id)`` over the admissions file (a count per person): the
  floor any per-person derivation pays;
* **exact by hand**: the same per-person frame written directly in Polars (persons, joined with the
  admissions and lab results aggregated per person, population filter), what a data scientist would
  write with row access;
* **ours, first**: :func:`enclave.dp.cohorts.derive_cached` from the definition (validate, derive,
  write the cached Parquet file);
* **ours, cached**: the same definition again (the cache hit every further aggregate gets).

It prints each time and the ratios of ours to the exact queries. Nothing here is a test: times vary
with the machine and what else runs on it; the ratios, measured in one run, are what to compare.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from enclave.client.cohorts import Cohort, V, attribute, code_in, codelist, count, exists, is_in, mean
from enclave.domain.queries.cohorts import parse_definition
from enclave.dp.cohorts import derive_cached

REGIONS = [f"E1200000{i}" for i in range(1, 10)]
CODES = ["E11.9", "E11.2", "I21.9", "J18.9", "K35.8", "C50.9", "N39.0", "S72.0"]
TESTS = ["HBA1C", "EGFR", "CHOL"]


def _catalog() -> dict[str, list[dict[str, Any]]]:
    person = {"name": "person_id", "role": "person_id", "type": "string"}
    return {
        "demographics": [
            person,
            {"name": "region", "role": "category", "type": "string", "domain": REGIONS},
            {"name": "sex", "role": "category", "type": "string", "domain": ["F", "M"]},
        ],
        "admissions": [
            person,
            {"name": "icd10_code", "role": "category", "type": "string", "domain": CODES},
            {
                "name": "admission_date",
                "role": "date",
                "type": "date",
                "first": "2019-01-01",
                "last": "2025-12-31",
            },
        ],
        "lab_results": [
            person,
            {"name": "test_code", "role": "category", "type": "string", "domain": TESTS},
            {"name": "result_value", "role": "numeric", "type": "decimal", "lower": 0, "upper": 1500},
        ],
    }


def _write_tables(folder: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    persons = max(rows // 5, 1)
    ids = pl.Series("person_id", [f"{i:032x}" for i in range(persons)])
    paths = {name: folder / f"{name}.parquet" for name in ("demographics", "admissions", "lab_results")}
    pl.DataFrame(
        {
            "person_id": ids,
            "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), persons)],
            "sex": np.array(["F", "M"])[rng.integers(0, 2, persons)],
        }
    ).write_parquet(paths["demographics"])
    who = rng.integers(0, persons, rows)
    pl.DataFrame(
        {
            "person_id": ids.gather(who),
            "icd10_code": np.array(CODES)[rng.integers(0, len(CODES), rows)],
            "admission_date": pl.date_range(
                pl.date(2019, 1, 1), pl.date(2025, 12, 31), "1d", eager=True
            ).sample(rows, with_replacement=True, seed=seed),
        }
    ).write_parquet(paths["admissions"])
    labs = rows // 2
    pl.DataFrame(
        {
            "person_id": ids.gather(rng.integers(0, persons, labs)),
            "test_code": np.array(TESTS)[rng.integers(0, len(TESTS), labs)],
            "result_value": rng.uniform(20, 150, labs).round(1),
        }
    ).write_parquet(paths["lab_results"])
    return paths


def _cohort() -> Cohort:
    return (
        Cohort("2024-01-01")
        .var("region", attribute("region"))
        .var(
            "diabetes",
            exists("admissions", where=code_in("icd10_code", codelist("icd10_codes", prefixes=["E11"]))),
        )
        .var("admissions", count("admissions", at_most=10))
        .var("hba1c", mean("lab_results", "result_value", where=is_in("test_code", ["HBA1C"])))
        .where(V("diabetes") == 1)
    )


def _exact_group_by(paths: dict[str, Path]) -> pl.DataFrame:
    return pl.scan_parquet(paths["admissions"]).group_by("person_id").agg(pl.len()).collect()


def _exact_by_hand(paths: dict[str, Path]) -> pl.DataFrame:
    admissions = (
        pl.scan_parquet(paths["admissions"])
        .group_by("person_id")
        .agg(
            pl.col("icd10_code").str.starts_with("E11").any().cast(pl.Int64).alias("diabetes"),
            pl.len().clip(0, 10).cast(pl.Int64).alias("admissions"),
        )
    )
    labs = (
        pl.scan_parquet(paths["lab_results"])
        .filter(pl.col("test_code") == "HBA1C")
        .group_by("person_id")
        .agg(pl.col("result_value").clip(0, 1500).mean().alias("hba1c"))
    )
    return (
        pl.scan_parquet(paths["demographics"])
        .select("person_id", "region")
        .join(admissions, on="person_id", how="left")
        .join(labs, on="person_id", how="left")
        .with_columns(pl.col("diabetes").fill_null(0), pl.col("admissions").fill_null(0))
        .filter(pl.col("diabetes") == 1)
        .collect()
    )


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="admission rows (lab rows: half)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="enclave-bench-cohort-"))
    try:
        print(
            f"writing {args.rows:,} admissions, {args.rows // 2:,} lab results,"
            f" {args.rows // 5:,} persons ..."
        )
        paths = _write_tables(folder, args.rows)
        definition = parse_definition(_cohort().to_dict())
        catalog = _catalog()
        versions = dict.fromkeys(catalog, 1)

        group_by, _ = _best(lambda: _exact_group_by(paths), args.repeat)
        by_hand, expected = _best(lambda: _exact_by_hand(paths), args.repeat)

        def ours_first() -> Any:
            shutil.rmtree(folder / "cache", ignore_errors=True)
            return derive_cached(definition, paths, catalog, versions, folder / "cache")

        first, derived = _best(ours_first, args.repeat)
        cached, hit = _best(lambda: derive_cached(definition, paths, catalog, versions, folder / "cache"), 3)
        assert hit.from_cache
        got = pl.read_parquet(derived.path)
        if len(got) != len(expected):
            raise SystemExit(f"the derived frame has {len(got)} rows, the exact one {len(expected)}")

        print(f"persons in the cohort: {len(got):,} (one row each)")
        print(f"exact group-by (admissions per person):  {group_by:7.3f} s")
        print(f"exact per-person frame, by hand:         {by_hand:7.3f} s")
        print(f"ours, derive + cache write:               {first:7.3f} s")
        print(f"ours, cached:                             {cached:7.3f} s")
        print(f"ratio ours / exact group-by:              {first / group_by:7.2f}x")
        print(f"ratio ours / exact frame by hand:         {first / by_hand:7.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
