"""Benchmark: a DP query on OpenDP against the exact Polars query on the same Parquet file.

Run:  .venv/bin/python bench/dp_query.py [--rows 10000000] [--persons 2000000] [--repeat 20]

Prints, measured in one run on this machine:
  - a 10M-row admissions table (person unit, bound 10): count and mean of cost by 10 public regions at
    epsilon 1: the exact Polars query from Parquet, our engine's first call (noise scale solved) and a
    repeated call (scale cached), and the ratio to the exact query;
  - a small query (count by sex on 100k rows): p50 of our engine, planning and release included.
(The API and ledger add a few milliseconds per query on top: see tests/integration/test_queries.py.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Query, TableMeta

REGIONS = tuple(f"R{i:02d}" for i in range(10))


def make_table(path: Path, rows: int, persons: int, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    ids = np.char.add("p", rng.permutation(persons).astype(str))
    who = rng.integers(0, persons, size=rows)
    pl.DataFrame(
        {
            "person_id": ids[who],
            "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), size=rows)],
            "sex": np.array(["F", "M"])[rng.integers(0, 2, size=rows)],
            "cost_gbp": rng.integers(0, 20_000, size=rows),
        }
    ).write_parquet(path)


def timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--persons", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    engine = DPEngine()
    columns = {
        "region": ColumnMeta("region", "string", domain=REGIONS),
        "sex": ColumnMeta("sex", "string", domain=("F", "M")),
        "cost_gbp": ColumnMeta("cost_gbp", "integer", lower=0, upper=20_000),
    }
    with tempfile.TemporaryDirectory(prefix="enclave-bench-dp-") as tmp:
        big, small = Path(tmp) / "big.parquet", Path(tmp) / "small.parquet"
        make_table(big, args.rows, args.persons)
        make_table(small, 100_000, 20_000)

        exact = min(
            timed(
                lambda: (
                    pl.scan_parquet(big).group_by("region").agg(pl.len(), pl.col("cost_gbp").mean()).collect()
                )
            )
            for _ in range(3)
        )
        query = Query(
            TableMeta(big, 10, columns),
            (Aggregate("count_rows"), Aggregate("mean", "cost_gbp")),
            group_by=("region",),
            epsilon=Decimal("1"),
        )
        first = timed(lambda: engine.release(engine.plan(query)))
        again = min(timed(lambda: engine.release(engine.plan(query))) for _ in range(3))

        small_query = Query(
            TableMeta(small, 10, columns), (Aggregate("count_rows"),), ("sex",), epsilon=Decimal("0.5")
        )
        engine.release(engine.plan(small_query))
        small_times = [timed(lambda: engine.release(engine.plan(small_query))) for _ in range(args.repeat)]

    print(f"{args.rows:,} rows, {args.persons:,} persons, count + mean(cost) by 10 regions, epsilon 1")
    print(f"exact Polars from Parquet        {exact:7.2f} s")
    print(f"ours, first (scale solved)       {first:7.2f} s   ratio {first / exact:5.1f}x")
    print(f"ours, repeated (scale cached)    {again:7.2f} s   ratio {again / exact:5.1f}x   (target <= 4x)")
    p50 = statistics.median(small_times) * 1000
    print(f"small query (count by sex, 100k rows): p50 {p50:.0f} ms over {args.repeat} runs (engine only)")


if __name__ == "__main__":
    main()
