"""Benchmark: a DP query on OpenDP against the exact Polars query on the same Parquet file.

Run:  .venv/bin/python bench/dp_query.py [--rows 10000000] [--persons 2000000] [--repeat 20]

Prints, measured in one run on this machine:
  - a 10M-row admissions table (person unit, bound 10): count and mean of cost by 10 public regions at
    epsilon 1: the exact Polars query from Parquet (on the full file and on its bounded view), our
    engine's first call (noise scale solved) and repeated calls (measurement cached), and the ratios;
    once on the bounded view that ingest writes (``enclave/ingest/bounded.py``: every person cut to
    the bound once, queried with a row-level bound), once on the full file with per-query
    truncation (``truncate_per_group``, the route for files without a view);
  - a small query (count by sex on 100k rows): p50 of our engine, planning and release included, on
    both routes;
  - the same small query through the real HTTP API (uvicorn, a workspace token, SQLite metadata),
    budget ledger and release ledger included, on a 100k-person demographics table ingested by the
    real pipeline: p50 of new plans (each a different epsilon, so OpenDP calibrates each one) and of
    repeated plans (answered from the release ledger at no cost). ``--no-api`` skips it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from enclave.config import Settings
from enclave.domain.access import Decision
from enclave.domain.access_form import validate_form
from enclave.domain.identity import Actor, Role, TokenKind
from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Query, TableMeta
from enclave.ingest.bounded import view_seeds, write_view
from enclave.ingest.spec import load_spec
from enclave.synth import generate
from enclave.wiring import build_services

SPECS = Path(__file__).resolve().parents[1] / "enclave" / "specs"

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


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def with_view(path: Path, bound: int) -> None:
    """Write the bounded view of ``path`` as ingest does (categories as Enums of their public domain)."""
    write_view(path, bound, view_seeds(b"bench-key" * 4, path.stem), {"region": REGIONS, "sex": ("F", "M")})


def without_view(path: Path) -> Path:
    """The same file under a name with no bounded view beside it: the per-query truncation route."""
    alias = path.with_name(f"{path.stem}-no-view.parquet")
    os.link(path, alias)
    return alias


def api_small_query(repeat: int) -> tuple[list[float], list[float]]:
    """Latencies (s) of count-by-sex queries over HTTP: new plans, then one plan repeated."""
    import httpx
    import uvicorn

    from enclave.api.app import create_app

    operator = Actor.operator("bench")
    with tempfile.TemporaryDirectory(prefix="enclave-bench-api-") as tmp:
        home = Path(tmp)
        generate(100_000, 11, home / "population")
        services = build_services(Settings(home=home / "home"))
        for name, role in (("custodian", Role.CUSTODIAN), ("lead", Role.RESEARCHER)):
            services.identity.create_user(operator, username=name, password=None, roles=frozenset({role}))
        custodian = Actor.for_user(services.identity.get_user(operator, "custodian"))
        lead = Actor.for_user(services.identity.get_user(operator, "lead"))
        services.catalog.ingest(
            custodian, load_spec(SPECS / "demographics.yaml"), home / "population" / "demographics.csv"
        )
        today = services.access._today()
        services.identity.set_accreditation(operator, "lead", today + timedelta(days=365))
        form = validate_form(
            {
                "title": "Benchmark of small DP queries",
                "lay_summary": "Times small differentially private queries through the API.",
                "organisation": "Enclave benchmarks",
                "purpose": "To measure the latency of the DP query layer end to end.",
                "public_benefit": "A DP layer fast enough for interactive research.",
                "legal_basis": "gdpr_6_1_e_and_9_2_j",
                "ethics_reference": "BENCH-001",
                "datasets": [
                    {
                        "dataset": "demographics",
                        "columns": ["sex", "region"],
                        "justification": "Counts by sex for the benchmark.",
                    }
                ],
                "team": [{"username": "lead", "role": "lead"}],
                "start_date": today,
                "end_date": today + timedelta(days=30),
                "budget": {"epsilon": "5"},
                "analysis_plan": "Counts by sex, through the DP layer.",
                "output_plan": "No outputs leave the enclave.",
            }
        )
        request = services.access.create(lead, form, submit=True)
        request = services.access.decide(custodian, request.id, "demographics", Decision.APPROVED, "bench")
        project = request.project_id
        token = services.identity.issue_token(
            operator, "lead", kind=TokenKind.WORKSPACE, project_id=project
        ).secret
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(services), host="127.0.0.1", port=port, log_level="warning", access_log=False
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        new: list[float] = []
        again: list[float] = []
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client:

                def post(epsilon: str) -> float:
                    body = {
                        "dataset": "demographics",
                        "aggregates": [{"kind": "count_rows"}],
                        "group_by": ["sex"],
                        "epsilon": epsilon,
                    }
                    t0 = time.perf_counter()
                    response = client.post(f"/projects/{project}/queries", json=body)
                    elapsed = time.perf_counter() - t0
                    response.raise_for_status()
                    return elapsed

                post("0.1")  # warm up: first OpenDP run in the process, first connection
                new = [post(f"0.{i + 1:04d}") for i in range(repeat)]
                again = [post("0.1") for _ in range(repeat)]
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            services.close()
    return new, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--persons", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-api", action="store_true", help="skip the small query through the HTTP API")
    args = parser.parse_args()
    engine = DPEngine()
    bound = 10
    columns = {
        "region": ColumnMeta("region", "string", domain=REGIONS),
        "sex": ColumnMeta("sex", "string", domain=("F", "M")),
        "cost_gbp": ColumnMeta("cost_gbp", "integer", lower=0, upper=20_000),
    }
    with tempfile.TemporaryDirectory(prefix="enclave-bench-dp-") as tmp:
        big, small = Path(tmp) / "big.parquet", Path(tmp) / "small.parquet"
        make_table(big, args.rows, args.persons)
        make_table(small, 100_000, 20_000)
        view_seconds = timed(lambda: with_view(big, bound))
        with_view(small, bound)
        big_full, small_full = without_view(big), without_view(small)

        def exact(path: Path) -> float:
            query = pl.scan_parquet(path).group_by("region").agg(pl.len(), pl.col("cost_gbp").mean())
            return timed(query.collect)

        def large(path: Path) -> Query:
            return Query(
                TableMeta(path, bound, columns),
                (Aggregate("count_rows"), Aggregate("mean", "cost_gbp")),
                group_by=("region",),
                epsilon=Decimal("1"),
            )

        def small_query(path: Path) -> Query:
            return Query(
                TableMeta(path, bound, columns), (Aggregate("count_rows"),), ("sex",), epsilon=Decimal("0.5")
            )

        def run(query: Query) -> float:
            return timed(lambda: engine.release(engine.plan(query)))

        exact(big)  # warm the file cache
        first_view = run(large(big))
        first_trunc = run(large(big_full))
        # Interleaved, so that load from elsewhere on the machine hits every series alike.
        series: dict[str, list[float]] = {"exact": [], "exact_view": [], "view": [], "trunc": []}
        for _ in range(5):
            series["exact"].append(exact(big))
            series["exact_view"].append(exact(big.with_name("big.bounded.parquet")))
            series["view"].append(run(large(big)))
            series["trunc"].append(run(large(big_full)))
        small_series: dict[str, list[float]] = {"view": [], "trunc": []}
        run(small_query(small))
        run(small_query(small_full))
        for _ in range(args.repeat):
            small_series["view"].append(run(small_query(small)))
            small_series["trunc"].append(run(small_query(small_full)))

    best = {name: min(values) for name, values in series.items()}
    exact_s = best["exact"]
    print(
        f"{args.rows:,} rows, {args.persons:,} persons, count + mean(cost) by 10 regions,"
        f" epsilon 1, bound {bound}"
    )
    print(f"bounded view written in {view_seconds:.2f} s (once, at ingest)")
    print(f"exact Polars from Parquet, full file     {exact_s:7.3f} s")
    print(f"exact Polars from Parquet, bounded view  {best['exact_view']:7.3f} s")
    print("ours, best of 5 (median), ratio to the exact query on the full file / on the view:")
    for name, label, first in (
        ("view", "bounded view, row-level bound", first_view),
        ("trunc", "full file, per-query truncation", first_trunc),
    ):
        med = statistics.median(series[name])
        print(
            f"  {label:32s} first {first:6.3f} s ({first / exact_s:5.1f}x)   repeated {best[name]:6.3f} s"
            f" ({med:.3f})   ratio {best[name] / exact_s:5.1f}x / {best[name] / best['exact_view']:5.1f}x"
            "   (target <= 4x)"
        )
    for name, label in (("view", "bounded view"), ("trunc", "per-query truncation")):
        p50 = statistics.median(small_series[name]) * 1000
        print(
            f"small query (count by sex, 100k rows), {label}: p50 {p50:.1f} ms"
            f" over {args.repeat} runs (engine)"
        )
    if not args.no_api:
        new, again = api_small_query(args.repeat)
        print(
            f"small query (count by sex, 100k persons) through the HTTP API with both ledgers: p50"
            f" {statistics.median(new) * 1000:.1f} ms new plans, {statistics.median(again) * 1000:.1f} ms"
            f" repeated plans, over {args.repeat} runs each   (target < 30 ms)"
        )


if __name__ == "__main__":
    main()
