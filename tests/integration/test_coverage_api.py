"""The released 95% intervals cover the truth at their stated rate, measured end to end: plans sent
over HTTP by the client, computed by OpenDP, recorded in the release ledger and read back from it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import polars as pl

from enclave.domain.identity.accounts import TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.factories import make_project

RELEASES = 150


def test_released_intervals_cover_the_truth_at_their_rate(services: Services) -> None:
    project = make_project(
        services, "lead", columns=["sex", "region", "year_of_birth"], budget={"epsilon": "10"}
    )
    token = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project)
    # The rows the engine measures: the version's bounded view (one row per person here).
    view = sorted(services.settings.research_store.glob("demographics/v*/data.bounded.parquet"))[-1]
    truth = (
        pl.read_parquet(view)
        .with_columns(pl.col("sex").cast(pl.String))
        .group_by("sex")
        .agg(pl.len().alias("n"), pl.col("year_of_birth").clip(1900, date.today().year).mean().alias("m"))
    )
    true_n = dict(truth.select("sex", "n").rows())
    true_m = dict(truth.select("sex", "m").rows())
    with LiveServer(services) as api:
        ws = api.workspace(token.secret, project)
        ids = set()
        for i in range(RELEASES):
            # Each plan differs (by a millionth of epsilon), so each is a new release with fresh noise
            # rather than the recorded answer to an identical plan.
            epsilon = Decimal("0.05") + Decimal(i) / 1_000_000  # 150 of them: about 7.5 in all
            release = ws.run("demographics", count=True, mean=["year_of_birth"], by=["sex"], epsilon=epsilon)
            assert not release.recorded
            ids.add(release.id)
        recorded = [r for r in ws.releases() if r.id in ids]
        ws.close()
    assert len(recorded) == RELEASES
    hits_n = hits_m = total = 0
    for release in recorded:
        for row in release.values:
            total += 1
            hits_n += abs(row["count"] - true_n[row["sex"]]) <= row["count_ci95"]
            hits_m += abs(row["mean_year_of_birth"] - true_m[row["sex"]]) <= row["mean_year_of_birth_ci95"]
    # 300 intervals: a true rate of 95% lands in [0.90, 0.99] with probability above 0.999.
    assert 0.90 <= hits_n / total <= 0.99
    assert hits_m / total >= 0.90  # a mean's interval is a union bound: at least its rate
