"""Benchmark: ingest of a large admissions extract, against doing no work and a naive HMAC loop.

Run:  .venv/bin/python bench/ingest.py [--rows 10000000] [--persons 2000000] [--rounds 3]

Prints, measured in this one run on this machine:
  - our whole ingest (validate, pseudonymise, quarantine, write a version, record it) in rows/s;
  - the ratio to (a) Polars reading the same CSV and writing Parquet with no work at all;
  - the ratio to (b) a plain Python ``hmac.new`` loop over the identifiers alone.

The three are measured in turn, ``--rounds`` times, and each round's ratios are printed with their
median: on a virtual machine whose speed varies by a third from one minute to the next, one round
says little, and a ratio is only fair between measurements taken side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from enclave.config import Settings
from enclave.domain.identity.accounts import Actor, Role
from enclave.ingest.spec import load_spec
from enclave.wiring import build_services

SPEC = Path(__file__).resolve().parents[1] / "enclave" / "specs" / "admissions.yaml"
CODELISTS = Path(__file__).resolve().parents[1] / "enclave" / "codelists"


def nhs_numbers(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct valid NHS numbers (mod-11 check digit), as strings."""
    out: list[np.ndarray] = []
    have = 0
    base = rng.choice(np.arange(100_000_000, 999_999_999), size=int(n * 1.2), replace=False)
    digits = np.stack([(base // 10 ** (8 - i)) % 10 for i in range(9)], axis=1)
    total = (digits * np.arange(10, 1, -1)).sum(axis=1)
    check = (11 - total % 11) % 11
    ok = check != 10
    numbers = base[ok] * 10 + check[ok]
    out.append(numbers)
    have += len(numbers)
    result = np.concatenate(out)[:n]
    assert len(result) == n, "not enough valid numbers drawn"
    return result.astype(str)


def make_extract(path: Path, rows: int, persons: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    ids = nhs_numbers(persons, rng)
    who = rng.integers(0, persons, size=rows)
    codelist = pl.read_csv(CODELISTS / "icd10_codes.csv")
    codes = codelist["code"].to_numpy()
    chapters = codelist["chapter"].to_numpy()
    code_idx = rng.integers(0, len(codes), size=rows)
    start = np.datetime64("2019-01-01")
    dates = start + rng.integers(0, 365 * 7, size=rows).astype("timedelta64[D]")
    los = np.minimum(rng.geometric(0.25, size=rows) - 1, 400)
    cost = (los * 450 + rng.integers(200, 3000, size=rows)).astype(np.int64)
    frame = pl.DataFrame(
        {
            "nhs_number": ids[who],
            "admission_id": np.char.add("A", np.arange(rows).astype(str)),
            "admission_date": dates,
            "icd10_code": codes[code_idx],
            "icd10_chapter": chapters[code_idx],
            "length_of_stay_days": los,
            "cost_gbp": cost,
        }
    )
    frame.write_csv(path)


def ingest_only(extract: Path, home: Path) -> None:
    """Time one ingest of ``extract`` into a new enclave at ``home``; print it as JSON."""
    services = build_services(Settings(home=home))
    services.identity.create_user(
        Actor.operator("bench"), username="custodian", password=None, roles=frozenset({Role.CUSTODIAN})
    )
    custodian = Actor.for_user(services.identity.get_user(Actor.operator("bench"), "custodian"))
    t0 = time.perf_counter()
    report = services.catalog.ingest(custodian, load_spec(SPEC), extract)
    seconds = time.perf_counter() - t0
    services.close()
    print(json.dumps([seconds, report.rows_read, report.rows_written, report.rows_quarantined]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--persons", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="measure each of the three this many times")
    parser.add_argument("--ingest-only", nargs=2, metavar=("EXTRACT", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_only:
        ingest_only(*map(Path, args.ingest_only))
        return
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        work = Path(tmp)
        extract = work / "admissions.csv"
        t0 = time.perf_counter()
        make_extract(extract, args.rows, args.persons)
        size_mb = extract.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:,.0f} MB) in {time.perf_counter() - t0:.1f} s")

        ids = pl.read_csv(extract, columns=["nhs_number"], infer_schema=False)["nhs_number"].to_list()
        rounds = [measure(extract, ids, work / f"round-{n}") for n in range(max(1, args.rounds))]
        del ids

    rows, written, quarantined = rounds[0].counts
    print(f"ingest: {rows:,} read, {written:,} written, {quarantined:,} quarantined")
    print("round   ours (s)  M rows/s   (a) no work (s)  (b) hmac loop (s)   ours/(a)  ours/(b)")
    for n, r in enumerate(rounds, 1):
        print(
            f"{n:5d}  {r.ours:9.2f}  {rows / r.ours / 1e6:8.2f}  {r.baseline:16.2f}  {r.naive:17.2f}"
            f"  {r.ours / r.baseline:8.2f}x {r.ours / r.naive:8.2f}x"
        )
    ours = statistics.median(r.ours for r in rounds)
    print(f"median: ours {ours:.2f} s ({rows / ours / 1e6:.2f} M rows/s)")
    to_a = statistics.median(r.ours / r.baseline for r in rounds)
    to_b = statistics.median(r.ours / r.naive for r in rounds)
    print(f"ratio ours / (a) no-work baseline: {to_a:.2f}x the time (median)")
    print(f"ratio ours / (b) naive HMAC loop : {to_b:.2f}x the time (median)")


@dataclass(frozen=True)
class Round:
    ours: float
    baseline: float
    naive: float
    counts: tuple[int, int, int]  # rows read, written, quarantined by our ingest


def measure(extract: Path, ids: list[str], home: Path) -> Round:
    """One round: (a), (b) and ours, one after the other."""
    # (a) Polars with no work: read the CSV, write Parquet.
    t0 = time.perf_counter()
    pl.scan_csv(extract, infer_schema=False).sink_parquet(home.with_suffix(".parquet"))
    baseline = time.perf_counter() - t0
    home.with_suffix(".parquet").unlink()

    # (b) a plain Python HMAC loop over the identifiers alone.
    key = b"k" * 32
    t0 = time.perf_counter()
    for value in ids:
        hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    naive = time.perf_counter() - t0

    # Ours: the whole ingest through the catalog service (SQLite metadata, as embedded), in a
    # process of its own as `enclave ingest` runs, not in this one, whose heap the extract's
    # generation and the 10M-string loop above have filled.
    child = subprocess.run(  # noqa: S603 - this script, with paths it made
        [sys.executable, __file__, "--ingest-only", str(extract), str(home)],
        check=True,
        capture_output=True,
        text=True,
    )
    ours, rows, written, quarantined = json.loads(child.stdout.splitlines()[-1])
    shutil.rmtree(home, ignore_errors=True)
    return Round(ours, baseline, naive, (rows, written, quarantined))


if __name__ == "__main__":
    main()
