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


def test_request_lists_and_the_register_page_over_http(world: Services) -> None:  # noqa: F811
    """``GET /requests`` and ``GET /register`` take a page (offset, limit, newest first), a state and
    the custodian's own queue, and say in ``X-Total-Count`` how many match whatever the page."""
    with LiveServer(world) as api, api.client() as c:
        researcher = headers(world, "researcher")
        ids = [
            c.post("/requests", params={"submit": "true"}, json=FORM, headers=researcher).json()["id"]
            for _ in range(3)
        ]
        c.post(f"/requests/{ids[0]}/withdraw", json={"reason": "a duplicate"}, headers=researcher)
        carl = headers(world, "carl")
        page = c.get(
            "/requests", params={"deciding": "true", "newest_first": "true", "limit": 2}, headers=carl
        )
        assert page.status_code == 200
        assert [r["id"] for r in page.json()] == [ids[2], ids[1]]
        assert page.headers["X-Total-Count"] == "3"
        rest = c.get("/requests", params={"state": "withdrawn", "offset": 0}, headers=carl)
        assert [r["id"] for r in rest.json()] == [ids[0]]
        assert rest.headers["X-Total-Count"] == "1"
        # The admin sees every request, but has no queue of their own.
        admin = headers(world, "admin")
        assert c.get("/requests", headers=admin).headers["X-Total-Count"] == "3"
        assert c.get("/requests", params={"deciding": "true"}, headers=admin).json() == []
        for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"state": "lost"}):
            refused = c.get("/requests", params=bad, headers=carl)
            assert refused.status_code == 422, bad
            assert refused.json()["error"] == "validation_error", bad
        register = c.get("/register", params={"limit": 1})
        assert register.status_code == 200
        assert register.json() == []
        assert register.headers["X-Total-Count"] == "0"
