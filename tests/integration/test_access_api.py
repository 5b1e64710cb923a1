"""Access requests and projects over real HTTP, with the error model on every refusal."""

from __future__ import annotations

import json

import yaml

from enclave.domain.identity.accounts import Role
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer, make_account
from tests.integration.test_access import EXAMPLE, OWNERS, population, world  # noqa: F401 - fixtures

FORM = json.loads(json.dumps(yaml.safe_load(EXAMPLE.read_text()), default=str))


def headers(services: Services, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.identity.issue_token(OPERATOR, username).secret}"}


def test_request_to_project_over_http(world: Services) -> None:  # noqa: F811
    """Submit as the researcher, decide as each custodian, read the project; the public register
    lists it without a login."""
    with LiveServer(world) as api, api.client() as c:
        r = c.post("/requests", params={"submit": "true"}, json=FORM, headers=headers(world, "researcher"))
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert r.json()["state"] == "submitted"
        assert [p["decision"] for p in r.json()["parts"]] == ["pending"] * 3
        for dataset, owner in OWNERS.items():
            r = c.post(
                f"/requests/{rid}/decisions",
                json={"dataset": dataset, "decision": "approved", "reason": "fine", "min_count": 15},
                headers=headers(world, owner),
            )
            assert r.status_code == 200, r.text
        assert r.json()["state"] == "approved"
        pid = r.json()["project_id"]
        project = c.get(f"/projects/{pid}", headers=headers(world, "researcher")).json()
        assert project["conditions"] == {"min_count": 15}
        assert project["epsilon"] == "3.0"
        budget = c.get(f"/projects/{pid}/budget", headers=headers(world, "researcher")).json()
        assert budget["granted"]["epsilon"] == "3"
        assert budget["remaining"]["epsilon"] == "3"
        assert c.get(f"/projects/{pid}/budget", headers=headers(world, "rival")).status_code == 404
        register = c.get("/register").json()
        assert [e["title"] for e in register] == [FORM["title"]]
        assert "members" not in register[0]


def test_refusals_over_http(world: Services) -> None:  # noqa: F811
    """Unknown datasets 400, another custodian's part 403, deciding twice 409, acting in the wrong
    state 409, a malformed form 422, someone else's request 404."""
    make_account(world, "dora", Role.CUSTODIAN)
    with LiveServer(world) as api, api.client() as c:
        researcher = headers(world, "researcher")
        bad = {**FORM, "datasets": [{"dataset": "genomes", "columns": ["snp"], "justification": "x" * 30}]}
        r = c.post("/requests", params={"submit": "true"}, json=bad, headers=researcher)
        assert r.status_code == 400
        assert "unknown dataset 'genomes'" in r.json()["detail"]
        r = c.post("/requests", json={**FORM, "budget": {"epsilon": "lots"}}, headers=researcher)
        assert r.status_code == 422
        assert "budget.epsilon" in r.json()["detail"]
        rid = c.post("/requests", params={"submit": "true"}, json=FORM, headers=researcher).json()["id"]
        decision = {"dataset": "lab_results", "decision": "approved", "reason": "fine"}
        r = c.post(f"/requests/{rid}/decisions", json=decision, headers=headers(world, "carl"))
        assert r.status_code == 403
        assert "only cora" in r.json()["detail"]
        assert (
            c.post(f"/requests/{rid}/decisions", json=decision, headers=headers(world, "cora")).status_code
            == 200
        )
        r = c.post(f"/requests/{rid}/decisions", json=decision, headers=headers(world, "cora"))
        assert r.status_code == 409
        assert r.json()["error"] == "invalid_state"
        r = c.post(f"/requests/{rid}/submit", headers=researcher)
        assert r.status_code == 409
        assert "from under_review" in r.json()["detail"]
        r = c.get(f"/requests/{rid}", headers=headers(world, "rival"))
        assert r.status_code == 404
        assert c.get("/requests", headers=headers(world, "dora")).json() == []
