"""The researcher's project page drawings: the budget gauge and the spending chart's lines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from enclave.domain.queries.budget import Account, Budget
from enclave.domain.queries.plans import QueryPlan, Release
from enclave.portal.researcher import gauge, spending_chart, workspace_address

PLAN = QueryPlan.model_validate(
    {"dataset": "demographics", "aggregates": [{"kind": "count_rows"}], "epsilon": 1}
)


def release(n: int, author: str, epsilon: str, at: datetime) -> Release:
    return Release(
        id=n,
        project_id=1,
        dataset="demographics",
        dataset_version=1,
        fingerprint=f"f{n}",
        plan=PLAN,
        epsilon=Decimal(epsilon),
        delta=Decimal(0),
        mechanism="laplace",
        noise_scales={},
        values=[{"count_rows": 123.456789}],
        accuracy={},
        author=author,
        created_at=at,
    )


def test_the_gauge_is_the_ledger_in_shares_of_the_grant() -> None:
    account = Account(1, Budget(Decimal(2)), Budget(Decimal("0.5")), Budget(Decimal("0.25")))
    drawn = gauge(account)
    assert (drawn.spent, drawn.reserved, drawn.remaining) == (25.0, 12.5, 62.5)
    empty = Account(1, Budget(Decimal(0)), Budget(Decimal(0)), Budget(Decimal(0)))
    assert gauge(empty).spent == 0.0


def test_each_member_gets_a_step_line_of_their_own_spending() -> None:
    start = date(2026, 1, 1)
    releases = [
        release(1, "ann", "0.5", datetime(2026, 1, 11, tzinfo=UTC)),
        release(2, "bob", "0.25", datetime(2026, 1, 21, tzinfo=UTC)),
        release(3, "ann", "0.5", datetime(2026, 1, 31, tzinfo=UTC)),
    ]
    now = datetime(2026, 2, 10, tzinfo=UTC)
    chart = spending_chart(releases, Decimal(2), start, now)
    assert [(s.member, s.total, s.releases) for s in chart.series] == [
        ("ann", Decimal("1.0"), 2),
        ("bob", Decimal("0.25"), 1),
    ]
    assert chart.top == Decimal(2)
    ann = [tuple(map(float, p.split(","))) for p in chart.series[0].points.split()]
    # From the bottom left, up by a quarter of the chart at each of ann's releases, then flat to the end.
    assert ann[0] == (0.0, 100.0)
    assert [y for _, y in ann] == [100.0, 100.0, 75.0, 75.0, 50.0, 50.0]
    assert ann[-1][0] == 100.0
    assert ann[1][0] < ann[3][0] < 100.0  # in time order, and the last step before the right edge
    assert chart.series[0].colour != chart.series[1].colour
    assert chart.series[0].dash != chart.series[1].dash  # not told apart by colour alone
    assert spending_chart([], Decimal(1), start, now).series == []


def test_the_workspace_is_the_members_named_server_of_the_project() -> None:
    assert workspace_address("http://hub:8000", "ann", 7) == "http://hub:8000/hub/spawn/ann/p7"
