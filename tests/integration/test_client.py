"""The researcher's client against the live API: connect from the environment, budget, preview, run,
releases, and errors that carry the server's sentence."""

from __future__ import annotations

import pytest

from enclave.client import EnclaveClientError, connect
from enclave.domain.identity import TokenKind
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
        monkeypatch.setenv("ENCLAVE_API_URL", api.url)
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
