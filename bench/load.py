"""Benchmark: the API under concurrent clients over real HTTP, next to GET /healthz in the same run.

Run:  .venv/bin/python bench/load.py [--clients 8,16,32] [--seconds 10]
      [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]   (default: SQLite)

Sets up a small demonstration enclave in a temporary directory (`enclave demo --no-serve`), starts
`enclave serve` as a process, logs in as the demo researcher and, at each number of clients, runs
for the given seconds each of three loads, every client on its own kept-alive connection:

- healthz: GET /healthz (the HTTP stack's floor);
- distinct: DP queries that were never asked before (each is a release charged to the budget: a
  count filtered on a different year of birth, at a different tiny epsilon);
- cached: plans already released (answered from the release ledger, free).

Prints queries per second and p50/p95/p99 latency of each, per level. The goal of issue 22: at
least 60 distinct DP queries per second with p99 under 250 ms at 16 clients, not falling from 8
to 32 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enclave.client import build_plan
from tests.conftest import free_port
from tests.helpers.hub import wait_for

ENCLAVE = [sys.executable, "-m", "enclave.cli"]
YEARS = range(1900, 2027)


def distinct_plans() -> Callable[[], dict[str, Any]]:
    """A never-repeating stream of plans: the filter's year and the epsilon (in millionths) vary."""
    counter = itertools.count()

    def next_plan() -> dict[str, Any]:
        k = next(counter)
        year = YEARS[k % len(YEARS)]
        epsilon = Decimal(1 + k // len(YEARS)) / 1_000_000
        return build_plan("demographics", count=True, where=[("year_of_birth", ">=", year)], epsilon=epsilon)

    return next_plan


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(
    base: str, token: str, clients: int, seconds: float, request: Callable[[httpx.AsyncClient], Any]
) -> dict[str, float]:
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await request(http)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 300:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, the first: {failures[0]}")
    return {
        "q/s": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="8,16,32", help="numbers of concurrent clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=10, help="how long each load runs at each level")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in the home)")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="enclave-load-") as tmp:
        home, log = Path(tmp) / "home", Path(tmp) / "processes.log"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
        env.update(ENCLAVE_HOME=str(home), ENCLAVE_API_PORT=str(port), ENCLAVE_LOG_LEVEL="warning")
        if args.database_url:
            env["ENCLAVE_DATABASE_URL"] = args.database_url
        print("setting up a demonstration enclave ...", file=sys.stderr)
        subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [*ENCLAVE, "demo", "--no-serve", "--persons", "2000"], env=env, check=True, capture_output=True
        )
        creds = json.loads((home / "keys" / "demo-credentials.json").read_text())
        password = next(c["password"] for c in creds if c["username"] == "researcher")
        with log.open("ab") as out:
            api = subprocess.Popen([*ENCLAVE, "serve"], env=env, stdout=out, stderr=out)  # noqa: S603
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/healthz", api, log)
            login = httpx.post(f"{base}/auth/login", json={"username": "researcher", "password": password})
            token = login.json()["token"]
            results = asyncio.run(run_levels(base, token, levels, args.seconds))
        finally:
            api.send_signal(signal.SIGINT)
            api.wait(timeout=60)
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"the API over HTTP on {database}, {args.seconds:.0f} s per load and level (this machine, one run)")
    print(
        f"{'clients':>7} {'load':>9} {'q/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'/ healthz':>10}"
    )
    for clients, by_load in results.items():
        for name, r in by_load.items():
            ratio = by_load["healthz"]["q/s"] / r["q/s"]
            print(
                f"{clients:>7} {name:>9} {r['q/s']:8.1f} {r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f}"
                f" {ratio:9.1f}x"
            )


async def run_levels(base: str, token: str, levels: list[int], seconds: float) -> dict[int, dict[str, Any]]:
    project = "/projects/1/queries"
    next_plan = distinct_plans()
    released: list[dict[str, Any]] = []

    async def healthz(http: httpx.AsyncClient) -> httpx.Response:
        return await http.get("/healthz")

    async def distinct(http: httpx.AsyncClient) -> httpx.Response:
        plan = next_plan()
        response = await http.post(project, json=plan)
        if response.status_code == 201:
            released.append(plan)
        return response

    turn = itertools.count()

    async def cached(http: httpx.AsyncClient) -> httpx.Response:  # the released plans, in turn
        return await http.post(project, json=released[next(turn) % len(released)])

    results: dict[int, dict[str, Any]] = {}
    for clients in levels:
        print(f"  {clients} clients ...", file=sys.stderr)
        results[clients] = {
            "healthz": await load(base, token, clients, seconds, healthz),
            "distinct": await load(base, token, clients, seconds, distinct),
            "cached": await load(base, token, clients, seconds, cached),
        }
    return results


if __name__ == "__main__":
    main()
