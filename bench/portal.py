"""Benchmark: the portal's busiest pages against the JSON API calls that answer the same question.

Run:  .venv/bin/python bench/portal.py [--requests 10000] [--projects 1000] [--events 200000]
      [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]   (default: SQLite)

Fills a temporary enclave through the real services (projects approved by their custodian, access
requests submitted, and the audit chain topped up to the number of events asked for), then, in one
run, times each page and its API call in the same process (``TestClient``: the app's own time, no
network), and prints p50 and p95 of each and the ratio page / API. The targets of issue 19: each
page at most 2x its API call, and p95 under 150 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

warnings.filterwarnings("ignore")

from fastapi.testclient import TestClient  # noqa: E402

from enclave.api.app import create_app  # noqa: E402
from enclave.config import Settings  # noqa: E402
from enclave.domain.audit.chain import AuditEvent  # noqa: E402
from enclave.domain.identity.accounts import Actor, Role  # noqa: E402
from enclave.wiring import Services, build_services  # noqa: E402
from tests.conftest import OPERATOR, Account  # noqa: E402
from tests.factories import demographics_form, make_project  # noqa: E402
from tests.helpers.portal import sign_in_http  # noqa: E402


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed(services: Services, requests: int, projects: int, events: int) -> int:
    """Returns the id of one submitted request (for the request page)."""
    started = time.monotonic()
    for i in range(projects):
        make_project(services, f"lead{i % 50}", title=f"Project {i} on regional demographics")
        if i % 100 == 99:
            progress(f"  {i + 1:,} projects ({time.monotonic() - started:.0f} s)")
    researcher = Actor.for_user(services.identity.get_user(OPERATOR, "lead0"))
    form = demographics_form(services, "lead0", title="A request on demographics")
    last = 0
    for i in range(requests - projects):
        last = services.access.create(researcher, form, submit=True).id
        if i % 1000 == 999:
            progress(f"  {projects + i + 1:,} requests ({time.monotonic() - started:.0f} s)")
    with services.db.unit_of_work(write=False) as uow:
        have = uow.audit.get_head()[0]
    batch = 5000
    for start in range(have, events, batch):
        with services.db.unit_of_work() as uow:
            for n in range(start, min(start + batch, events)):
                uow.audit.append(AuditEvent("bench.filler", f"user{n % 97}", "bench", str(n), {"n": n}))
        progress(f"  {min(start + batch, events):,} audit events ({time.monotonic() - started:.0f} s)")
    return last


def seed_outputs(services: Services, outputs: int, projects: int, rows: int) -> tuple[int, int]:
    """Output requests submitted for review across the projects (each by its lead), the last with a
    table of ``rows`` rows; returns that request's id and its table's file id."""
    started = time.monotonic()
    small = b"region,count\nNorth,12\nSouth,30\n"
    for i in range(outputs - 1):
        project = i % projects + 1
        lead = Actor.for_user(services.identity.get_user(OPERATOR, f"lead{(project - 1) % 50}"))
        request = services.outputs.create(lead, project, context="Counts by region for the paper's table 1.")
        services.outputs.add_file(lead, request.id, "by_region.csv", small)
        services.outputs.submit(lead, request.id)
        if i % 500 == 499:
            progress(f"  {i + 1:,} output requests ({time.monotonic() - started:.0f} s)")
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "lead0"))
    request = services.outputs.create(lead, 1, context="A long table, to measure the preview.")
    table = "group,count\n" + "".join(f"g{n},{100 + n % 900}\n" for n in range(rows))
    big = services.outputs.add_file(lead, request.id, "long.csv", table.encode())
    services.outputs.submit(lead, request.id)
    return request.id, big.id


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    call()  # warm
    out = []
    for _ in range(repeat):
        begin = time.perf_counter()
        call()
        out.append((time.perf_counter() - begin) * 1000)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--outputs", type=int, default=5_000)
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the previewed table")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="enclave-bench-portal-") as home:
        services = build_services(Settings(home=Path(home), database_url=args.database_url))
        progress(f"seeding {args.projects:,} projects, {args.requests:,} requests, {args.events:,} events")
        request_id = seed(services, args.requests, args.projects, args.events)
        progress(f"seeding {args.outputs:,} output requests, one with a {args.rows:,}-row table")
        output_id, file_id = seed_outputs(services, args.outputs, args.projects, args.rows)
        # The custodian of every request's dataset, who is an administrator (the audit viewer) and
        # an output checker (a member of no project) too.
        owner = Account("factory-custodian", "factory-custodian-password", "")
        services.identity.grant_role(OPERATOR, owner.username, Role.ADMIN)
        services.identity.grant_role(OPERATOR, owner.username, Role.REVIEWER)
        services.identity.set_password(OPERATOR, owner.username, owner.password)
        app = create_app(services)
        with TestClient(app, follow_redirects=False) as page_client, TestClient(app) as api_client:
            assert sign_in_http(page_client, owner).status_code == 303
            token = services.identity.issue_token(OPERATOR, owner.username, name="bench").secret
            api_client.headers["Authorization"] = f"Bearer {token}"
            pairs = [
                (
                    "custodian's queue",
                    "/portal/custodian/requests",
                    "/requests?deciding=true&newest_first=true&limit=50",
                ),
                ("a request", f"/portal/custodian/requests/{request_id}", f"/requests/{request_id}"),
                ("the register", "/portal/register", "/register?newest_first=true&limit=50"),
                ("audit viewer, first page", "/portal/admin/audit", "/audit/events?limit=50"),
                ("reviewers' queue", "/portal/reviewer/outputs", "/outputs/review-queue"),
                (
                    f"{args.rows:,}-row table, page 1",
                    f"/portal/reviewer/outputs/{output_id}?file={file_id}&page=1",
                    f"/outputs/{output_id}/files/{file_id}/held",
                ),
            ]
            preview = page_client.get(f"/portal/reviewer/outputs/{output_id}?file={file_id}&page=1").text
            shown = preview.count('<th scope="row"')
            assert 0 < shown <= 100, f"the preview sent {shown} rows"
            progress(f"the preview's first page sends {shown} of {args.rows:,} rows")
            print(f"{'page':28} {'page p50':>9} {'p95':>8} {'API p50':>9} {'p95':>8} {'page/API':>9}")
            for label, page, api in pairs:
                for client, url in ((page_client, page), (api_client, api)):
                    status = client.get(url).status_code
                    assert status == 200, f"{url}: {status}"
                page_ms = timed(lambda page=page: page_client.get(page), args.repeat)
                api_ms = timed(lambda api=api: api_client.get(api), args.repeat)
                ratio = statistics.median(page_ms) / statistics.median(api_ms)
                print(
                    f"{label:28} {statistics.median(page_ms):8.1f}ms {p95(page_ms):7.1f}ms"
                    f" {statistics.median(api_ms):8.1f}ms {p95(api_ms):7.1f}ms {ratio:8.2f}x"
                )
        services.close()


if __name__ == "__main__":
    main()
