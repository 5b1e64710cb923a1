"""The researcher's client against the live API: connect from the environment, budget, preview, run,
releases, and errors that carry the server's sentence."""

from __future__ import annotations

import pytest

from enclave.client import EnclaveClientError, connect
from enclave.domain.identity.accounts import TokenKind
from enclave.store.layout import scan_table
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.factories import make_project


def test_client_in_a_workspace(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the settings a workspace injects, the client previews for free, runs a query into a
    pandas DataFrame with its intervals, sees the budget move and gets the recorded release again."""
    project = make_project(services, "lead")
    token = services.identity.issue_token(
        OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project
    ).secret
    with LiveServer(services) as api:
        monkeypatch.setenv("ENCLAVE_API_URL", "http://enclave")
        monkeypatch.setenv("ENCLAVE_API_SOCKET", api.socket)
        monkeypatch.setenv("ENCLAVE_API_TOKEN", token)
        monkeypatch.setenv("ENCLAVE_PROJECT_ID", str(project))
        ws = connect()
        assert ws.whoami()["username"] == "lead"
        assert ws.catalog() == [{"dataset": "demographics", "columns": ["sex", "region"]}]
        assert ws.budget()["remaining"]["epsilon"] == "1"
        preview = ws.preview("demographics", count=True, by=["region"], epsilon="0.25")
        assert preview["fits"] is True
        assert ws.budget()["spent"]["epsilon"] == "0"
        release = ws.run("demographics", count=True, by=["sex"], epsilon="0.25")
        frame = release.frame
        assert list(frame["sex"]) == ["F", "M"]
        assert "count_ci95" in frame.columns
        assert "epsilon 0.25" in repr(release)
        assert ws.budget()["spent"]["epsilon"] == "0.25"
        again = ws.run("demographics", count=True, by=["sex"], epsilon="0.25")
        assert again.recorded
        assert again.id == release.id
        assert len(ws.releases()) == 1
        with pytest.raises(EnclaveClientError, match="not in this project's approved scope") as info:
            ws.run("demographics", count=True, by=["postcode_area"], epsilon="0.1")
        assert info.value.status == 403
        with pytest.raises(EnclaveClientError, match="left") as over:
            ws.run("demographics", count=True, epsilon="5")
        assert over.value.code == "budget_exceeded"
        ws.close()


def test_client_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a workspace and without arguments, the error names the variables to set."""
    for name in ("ENCLAVE_API_URL", "ENCLAVE_API_TOKEN", "ENCLAVE_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(
        EnclaveClientError, match="set ENCLAVE_API_URL, ENCLAVE_API_TOKEN, ENCLAVE_PROJECT_ID"
    ):
        connect()
    with pytest.raises(ValueError, match="at least one aggregate"):
        connect("http://x", "t", 1).run("demographics")


def test_sql_and_dummy_data_through_the_client(services: Services) -> None:
    """DP-SQL lands on the same plan as the builder (same release, same ledger); injection is refused
    at parse time and spends nothing; dummy data has the scope's columns, values in the catalog's
    domains, and identifiers that are no real pseudonym."""
    project = make_project(services, "lead")
    token = services.identity.issue_token(
        OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project
    ).secret
    with LiveServer(services) as api:
        ws = api.workspace(token, project)
        priced = ws.sql("SELECT sex, COUNT(*) FROM demographics GROUP BY sex", epsilon="0.2", preview=True)
        assert priced["plan"]["group_by"] == ["sex"]
        assert ws.budget()["spent"]["epsilon"] == "0"
        by_sql = ws.sql("SELECT sex, COUNT(*) FROM demographics GROUP BY sex", epsilon="0.2")
        assert list(by_sql.frame["sex"]) == ["F", "M"]
        by_builder = ws.run("demographics", count=True, by=["sex"], epsilon="0.2")
        assert by_builder.recorded
        assert by_builder.id == by_sql.id
        assert ws.budget()["spent"]["epsilon"] == "0.2"
        for attack in (
            "SELECT COUNT(*) FROM demographics; DROP TABLE users",
            "SELECT COUNT(*) FROM demographics -- comment",
            "PRAGMA table_info(demographics)",
            "SELECT COUNT(*) FROM demographics UNION SELECT COUNT(*) FROM users",
        ):
            with pytest.raises(EnclaveClientError) as refused:
                ws.sql(attack, epsilon="0.1")
            assert refused.value.status == 400
        with pytest.raises(EnclaveClientError, match="approved scope"):
            ws.sql("SELECT postcode_area, COUNT(*) FROM demographics GROUP BY postcode_area", epsilon="0.1")
        assert ws.budget()["spent"]["epsilon"] == "0.2"

        frame = ws.dummy("demographics", n=200, seed=7)
        assert len(frame) == 200
        assert set(frame.columns) == {"person_id", "sex", "region"}
        with services.db.unit_of_work(write=False) as uow:
            dataset = uow.catalog.get_dataset("demographics")
            assert dataset is not None
            assert dataset.current_version is not None
            version = uow.catalog.get_version(dataset.id, dataset.current_version)
        assert version is not None
        domains = {c["name"]: set(c["domain"]) for c in version.columns if c.get("domain")}
        assert set(frame["sex"].dropna()) <= domains["sex"]
        assert set(frame["region"].dropna()) <= domains["region"]
        real = set(
            scan_table(services.settings.research_store / version.path / "data.parquet")
            .collect()
            .get_column("person_id")
        )
        assert not real & set(frame["person_id"])
        assert ws.dummy("demographics", n=200, seed=7).equals(frame)
        with pytest.raises(EnclaveClientError, match="not in this project's scope"):
            ws.dummy("admissions", n=5)
        assert ws.budget()["spent"]["epsilon"] == "0.2"
        ws.close()
