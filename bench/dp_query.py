"""Benchmark: a DP query on OpenDP against the exact Polars query and SmartNoise SQL on the same Parquet file.

Run:  .venv/bin/python bench/dp_query.py [--rows 10000000] [--persons 2000000] [--repeat 20]
                                         [--no-api] [--no-smartnoise]

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
    repeated plans (answered from the release ledger at no cost). ``--no-api`` skips it;
  - both queries on SmartNoise SQL (``snsql.from_df`` on pandas) with the same file, unit, bound, clamping
    and epsilon, and the ratios ours / SmartNoise, on the query alone and with each side's setup (ours:
    writing the bounded view; SmartNoise: Parquet into pandas and ``from_df``, which copies the frame into an
    in-memory SQLite database). SmartNoise SQL needs opendp < 0.15 and pandas < 3, so it runs in its own
    venv, ``bench/.venv-smartnoise``, which the bench creates on first use (``pip install`` from PyPI of
    ``SMARTNOISE_REQUIREMENTS``; delete the directory to rebuild it), through ``bench/_smartnoise_worker.py``
    (see that file for how the metadata mirrors our engine). If the venv cannot be created (no network), the
    bench says why in one line and goes on. ``--no-smartnoise`` skips it (at 10M rows it adds a few
    minutes: SmartNoise's setup is over a minute and each query tens of seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
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
from enclave.domain.access.form import validate_form
from enclave.domain.access.requests import Decision
from enclave.domain.identity.accounts import Actor, Role, TokenKind
from enclave.dp.engine import Aggregate, ColumnMeta, DPEngine, Query, TableMeta
from enclave.ingest.bounded import view_seeds, write_view
from enclave.ingest.spec import load_spec
from enclave.synth import generate
from enclave.wiring import build_services

SPECS = Path(__file__).resolve().parents[1] / "enclave" / "specs"

REGIONS = tuple(f"R{i:02d}" for i in range(10))

SMARTNOISE_VENV = Path(__file__).resolve().parent / ".venv-smartnoise"
SMARTNOISE_WORKER = Path(__file__).resolve().parent / "_smartnoise_worker.py"
# smartnoise-sql 1.0.10 pulls opendp 0.14.x and pandas 2.x; pyarrow lets pandas read the bench's Parquet.
SMARTNOISE_REQUIREMENTS = ("smartnoise-sql==1.0.10", "pyarrow")
COST_BOUNDS = (0, 20_000)
SMARTNOISE_REPEAT_LARGE = 2  # each run of the large query takes tens of seconds on SmartNoise
LARGE_SQL = "SELECT region, COUNT(*) AS n, AVG(cost_gbp) AS mean_cost FROM bench.admissions GROUP BY region"
SMALL_SQL = "SELECT sex, COUNT(*) AS n FROM bench.admissions GROUP BY sex"


def make_table(path: Path, rows: int, persons: int, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    ids = np.char.add("p", rng.permutation(persons).astype(str))
    who = rng.integers(0, persons, size=rows)
    pl.DataFrame(
        {
            "person_id": ids[who],
            "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), size=rows)],
            "sex": np.array(["F", "M"])[rng.integers(0, 2, size=rows)],
            "cost_gbp": rng.integers(COST_BOUNDS[0], COST_BOUNDS[1], size=rows),
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


def _why(exc: Exception) -> str:
    """The last meaningful line of a failed subprocess (pip's ERROR line, a traceback's exception)."""
    if isinstance(exc, subprocess.CalledProcessError):
        lines = [line.strip() for line in (exc.stderr or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        return (errors or lines or [f"exit status {exc.returncode}"])[-1]
    return f"{type(exc).__name__}: {exc}"


def smartnoise_python() -> tuple[Path | None, str]:
    """The SmartNoise venv's interpreter, the venv created on first use; or None and the reason."""
    python = SMARTNOISE_VENV / "bin" / "python"
    stamp = SMARTNOISE_VENV / ".installed"
    wanted = "\n".join(SMARTNOISE_REQUIREMENTS)
    if stamp.is_file() and stamp.read_text() == wanted:
        return python, ""
    print(f"creating {SMARTNOISE_VENV} for SmartNoise SQL ({', '.join(SMARTNOISE_REQUIREMENTS)})")
    try:
        subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "venv", "--clear", str(SMARTNOISE_VENV)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        subprocess.run(  # noqa: S603 - the venv's interpreter, fixed arguments
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--timeout",
                "15",
                "--retries",
                "1",
                *SMARTNOISE_REQUIREMENTS,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not create {SMARTNOISE_VENV} ({_why(exc)})"
    stamp.write_text(wanted)
    return python, ""


def smartnoise(
    python: Path, path: Path, bound: int, queries: dict[str, tuple[str, Decimal]], repeat: int
) -> dict:
    """Run the queries on SmartNoise SQL in its venv; the worker's JSON report, its queries keyed by name."""
    job = {
        "path": str(path),
        "bound": bound,
        "lower": COST_BOUNDS[0],
        "upper": COST_BOUNDS[1],
        "repeat": repeat,
        "queries": [{"sql": sql, "epsilon": float(epsilon)} for sql, epsilon in queries.values()],
    }
    done = subprocess.run(  # noqa: S603 - the venv's interpreter, our worker, our JSON
        [str(python), str(SMARTNOISE_WORKER), json.dumps(job)],
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["queries"] = dict(zip(queries, report["queries"], strict=True))
    return report


def duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def print_smartnoise(
    title: str, report: dict, name: str, stat: str, ours: dict[str, tuple[float, float]]
) -> None:
    """SmartNoise's times for one query and the ratios ours / SmartNoise, on the query and with setup.

    ``ours`` maps a route to (query seconds by the same statistic, seconds to the first answer with setup).
    """
    query = report["queries"][name]
    runs = query["seconds"]
    query_s = min(runs) if stat == "best" else statistics.median(runs)
    setup_s = report["read_s"] + report["reader_s"]
    print(
        f"{title}, epsilon {query['cost_epsilon']:g} in total ({query['epsilon_per_statistic']:.3g} per noisy"
        f" statistic), {report['rows']:,} rows: setup {setup_s:.2f} s (Parquet into pandas"
        f" {report['read_s']:.2f} s, snsql.from_df into SQLite {report['reader_s']:.2f} s), query {stat} of"
        f" {len(runs)} {duration(query_s)} (first {duration(runs[0])})"
    )
    for label, (ours_s, ours_setup_s) in ours.items():
        total_s = setup_s + runs[0]
        print(
            f"  ours / SmartNoise, {label:22s} query {ours_s / query_s:7.4f}x ({query_s / ours_s:6.1f} times"
            f" faster)   with setup, to the first answer {ours_setup_s:6.2f} s / {total_s:6.2f} s ="
            f" {ours_setup_s / total_s:7.4f}x ({total_s / ours_setup_s:5.1f} times faster)"
        )


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
        today = services.access.today()
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
    parser.add_argument(
        "--no-smartnoise", action="store_true", help="skip the comparison with SmartNoise SQL"
    )
    args = parser.parse_args()
    engine = DPEngine()
    bound = 10
    columns = {
        "region": ColumnMeta("region", "string", domain=REGIONS),
        "sex": ColumnMeta("sex", "string", domain=("F", "M")),
        "cost_gbp": ColumnMeta("cost_gbp", "integer", lower=COST_BOUNDS[0], upper=COST_BOUNDS[1]),
    }
    with tempfile.TemporaryDirectory(prefix="enclave-bench-dp-") as tmp:
        big, small = Path(tmp) / "big.parquet", Path(tmp) / "small.parquet"
        make_table(big, args.rows, args.persons)
        make_table(small, 100_000, 20_000)
        view_seconds = timed(lambda: with_view(big, bound))
        small_view_seconds = timed(lambda: with_view(small, bound))
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
        small_first = {"view": run(small_query(small)), "trunc": run(small_query(small_full))}
        for _ in range(args.repeat):
            small_series["view"].append(run(small_query(small)))
            small_series["trunc"].append(run(small_query(small_full)))
        # SmartNoise reads the full files (it cuts each person to max_ids per query, by reservoir sampling).
        sn: dict[str, dict] = {}
        sn_skipped = "skipped (--no-smartnoise)" if args.no_smartnoise else ""
        if not args.no_smartnoise:
            python, sn_skipped = smartnoise_python()
            if python is not None:
                try:
                    sn["large"] = smartnoise(
                        python, big_full, bound, {"large": (LARGE_SQL, Decimal("1"))}, SMARTNOISE_REPEAT_LARGE
                    )
                    sn["small"] = smartnoise(
                        python, small_full, bound, {"small": (SMALL_SQL, Decimal("0.5"))}, args.repeat
                    )
                except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                    sn_skipped = f"the SmartNoise worker failed ({_why(exc)})"

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
    if sn_skipped:
        print(f"SmartNoise SQL comparison: {sn_skipped}")
    if sn:
        report = next(iter(sn.values()))
        versions, query = report["versions"], next(iter(report["queries"].values()))
        print(
            f"SmartNoise SQL {versions['smartnoise-sql']} (opendp {versions['opendp']}, pandas"
            f" {versions['pandas']}, pyarrow {versions['pyarrow']}, SQLAlchemy {versions['sqlalchemy']},"
            f" Python {report['python']}; bench/.venv-smartnoise) on the full files: person unit (max_ids"
            f" {bound}, reservoir-sampled per query), cost clamped to [{COST_BOUNDS[0]}, {COST_BOUNDS[1]}],"
            f" groups not censored (public, as in ours), delta 0 (its odometer reports"
            f" {query['cost_delta']:.0e}, the tolerance of its composition); epsilon split evenly over its"
            " noisy statistics (AVG = SUM / COUNT)"
        )
    if "large" in sn:
        print_smartnoise(
            "  SmartNoise, count + mean(cost) by 10 regions",
            sn["large"],
            "large",
            "best",
            {
                "bounded view:": (best["view"], view_seconds + first_view),
                "per-query truncation:": (best["trunc"], first_trunc),
            },
        )
    if "small" in sn:
        print_smartnoise(
            "  SmartNoise, count by sex",
            sn["small"],
            "small",
            "p50",
            {
                "bounded view:": (
                    statistics.median(small_series["view"]),
                    small_view_seconds + small_first["view"],
                ),
                "per-query truncation:": (statistics.median(small_series["trunc"]), small_first["trunc"]),
            },
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
