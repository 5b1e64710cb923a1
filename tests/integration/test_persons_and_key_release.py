"""Counts of persons, DP key releases and histograms through the API and the client: what they release, what
the ledger charges (δ included), and the refusals, on the configured database."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from enclave.client import EnclaveClientError
from enclave.domain.identity.accounts import TokenKind
from enclave.store.layout import scan_table
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.factories import make_project

COLUMNS = ["sex", "region", "year_of_birth", "postcode_area"]


def _stored(services: Services) -> pl.DataFrame:
    """The demographics rows as stored (the test's view of the truth; researchers never see it)."""
    return scan_table(services.catalog.current_parquet("demographics")).collect()


def test_counts_of_persons_and_key_releases_through_the_client(services: Services) -> None:
    project = make_project(services, "lead", columns=COLUMNS, budget={"epsilon": "10", "delta": "1e-6"})
    token = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project)
    stored = _stored(services)
    with LiveServer(services) as api:
        ws = api.workspace(token.secret, project)

        # Persons by sex: one row per person in this table (bound 1), so the scale is 1/ε.
        persons = ws.run("demographics", persons=True, by=["sex"], epsilon="0.5")
        assert list(persons.frame.columns) == ["sex", "persons", "persons_ci95"]
        assert persons.noise_scales == {"persons": pytest.approx(2.0)}
        assert "one row per person" in persons.raw["mechanism"]
        by_sql = ws.sql("SELECT sex, COUNT(DISTINCT person_id) FROM demographics GROUP BY sex", epsilon="0.5")
        assert by_sql.recorded
        assert by_sql.id == persons.id

        # A group-by on year_of_birth (no public domain) needs a delta, and says so.
        with pytest.raises(EnclaveClientError, match="give the plan a delta") as refused:
            ws.run("demographics", count=True, by=["year_of_birth"], epsilon="5")
        assert refused.value.status == 400
        assert ws.budget()["spent"] == {"epsilon": "0.5", "delta": "0"}

        preview = ws.preview("demographics", count=True, by=["year_of_birth"], epsilon="5", delta="1e-7")
        assert preview["threshold"] >= 2
        threshold = preview["threshold"]
        release = ws.run("demographics", count=True, by=["year_of_birth"], epsilon="5", delta="1e-7")
        assert Decimal(release.raw["delta"]) == Decimal("1e-7")
        assert release.raw["mechanism"].endswith(f"key threshold {threshold}")
        budget = ws.budget()
        assert Decimal(budget["spent"]["epsilon"]) == Decimal("5.5")
        assert Decimal(budget["spent"]["delta"]) == Decimal("1e-7")
        frame = release.frame
        years = frame["year_of_birth"].tolist()
        assert years == sorted(years)
        # Every released key passed the threshold on its noisy count...
        assert all(count >= threshold for count in frame["count"])
        # ...and every year with more rows than the threshold is there (discrete Laplace of scale
        # 0.2: short by 2 or more with probability about e^-10).
        truth = dict(stored.group_by("year_of_birth").len().iter_rows())
        certain = {y for y, n in truth.items() if n >= threshold + 2}
        assert certain  # the tiny population has such years: the check is not vacuous
        assert certain <= set(years)
        assert set(years) <= set(truth)  # no key that is not in the data
        # The same plan again is free; SQL with the same delta is the same plan.
        again = ws.sql(
            "SELECT year_of_birth, COUNT(*) FROM demographics GROUP BY year_of_birth",
            epsilon="5",
            delta="1e-7",
        )
        assert again.recorded
        assert again.id == release.id

        # Over the granted delta: refused by the ledger, nothing spent.
        with pytest.raises(EnclaveClientError, match=r"was granted delta 0\.000001 and has delta") as over:
            ws.run("demographics", count=True, by=["postcode_area"], epsilon="1", delta="1e-5")
        assert over.value.code == "budget_exceeded"
        with pytest.raises(EnclaveClientError, match="query of its own") as mixed:
            ws.run("demographics", count=True, persons=True, epsilon="1")
        assert mixed.value.status == 400
        with pytest.raises(EnclaveClientError, match="leave delta at 0"):
            ws.run("demographics", count=True, by=["sex"], epsilon="1", delta="1e-7")
        assert Decimal(ws.budget()["spent"]["epsilon"]) == Decimal("5.5")
        ws.close()


def test_a_project_without_delta_cannot_release_keys(services: Services) -> None:
    project = make_project(services, "lead", columns=COLUMNS)
    token = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project)
    with LiveServer(services) as api:
        ws = api.workspace(token.secret, project)
        with pytest.raises(EnclaveClientError, match=r"costs delta 1E-7 .* was granted no delta") as info:
            ws.run("demographics", count=True, by=["postcode_area"], epsilon="0.5", delta="1e-7")
        assert info.value.code == "budget_exceeded"
        assert ws.budget()["spent"] == {"epsilon": "0", "delta": "0"}
        ws.close()


def test_a_histogram_through_the_client(services: Services) -> None:
    """``bins=`` cuts a bounded numeric into public bins over its catalog bounds: every bin is
    released (those with no rows too), at the noise of a count, with no delta."""
    project = make_project(services, "lead", columns=COLUMNS)
    token = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project)
    with LiveServer(services) as api:
        ws = api.workspace(token.secret, project)
        release = ws.run("demographics", count=True, by=["sex"], bins={"year_of_birth": 4}, epsilon="0.5")
        frame = release.frame
        assert list(frame.columns) == ["sex", "year_of_birth", "count", "count_ci95"]
        assert len(frame) == 2 * 4
        assert frame["year_of_birth"].iloc[0].startswith("1900-")
        assert release.noise_scales == {"count": pytest.approx(2.0)}
        assert release.plan["bins"] == {"year_of_birth": 4}
        with pytest.raises(EnclaveClientError, match="cannot bin 'sex'") as info:
            ws.run("demographics", count=True, bins={"sex": 3}, epsilon="0.5")
        assert info.value.status == 400
        ws.close()
