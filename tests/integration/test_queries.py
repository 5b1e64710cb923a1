"""The DP query layer through the real services: preview, run, recorded releases, refusals, and
the budget under concurrent queries, on the configured database."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from enclave.domain.access.states import ProjectState
from enclave.domain.errors import BudgetExceeded, InvalidInput, NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor, TokenKind
from enclave.domain.queries.plans import QueryPlan
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.factories import make_project, tiny_population

REGIONS = 10


def member(services: Services, username: str = "lead") -> Actor:
    return Actor.for_user(services.identity.get_user(OPERATOR, username))


def plan(**changes: object) -> QueryPlan:
    raw: dict[str, object] = {
        "dataset": "demographics",
        "aggregates": [{"kind": "count_rows"}],
        "group_by": ["region"],
        "epsilon": "0.5",
    }
    raw.update(changes)
    return QueryPlan.model_validate(raw)


def spent(services: Services, project: int) -> Decimal:
    return services.budgets.account(OPERATOR, project).spent.epsilon


def test_preview_spends_nothing_and_run_spends_exactly_the_planned_loss(services: Services) -> None:
    """Preview gives cost and accuracy for free; a run releases every public key, records the release
    with its plan and noise, and debits exactly its loss in the same transaction."""
    project = make_project(services, "lead")
    lead = member(services)
    preview = services.queries.preview(lead, project, plan())
    assert Decimal(preview["accounted_epsilon"]) <= Decimal(preview["epsilon"]) == Decimal("0.5")
    assert preview["fits"] is True
    assert preview["aggregates"][0]["noise_scale"] > 0
    assert spent(services, project) == 0
    release, recorded = services.queries.run(lead, project, plan())
    assert recorded is False
    assert len(release.values) == REGIONS
    assert {row["region"] for row in release.values} >= {"E12000001", "W92000004"}
    assert all("count_ci95" in row for row in release.values)
    assert spent(services, project) == release.epsilon
    assert release.noise_scales["count"] > 0
    with services.db.unit_of_work(write=False) as uow:
        actions = [e.action for e in uow.audit.iter_events()]
    assert actions[-3:] == ["budget.reserved", "query.released", "budget.spent"]


def test_an_identical_plan_costs_nothing_the_second_time(services: Services) -> None:
    """Asking the same plan again returns the recorded release: same values, no further spend."""
    project = make_project(services, "lead")
    first, _ = services.queries.run(member(services), project, plan())
    again, recorded = services.queries.run(member(services), project, plan())
    assert recorded is True
    assert again.id == first.id
    assert again.values == first.values
    assert spent(services, project) == first.epsilon
    assert len(services.queries.releases(member(services), project)) == 1


def test_overspending_is_refused_before_any_data_is_read(services: Services) -> None:
    """A plan that does not fit is refused at reservation, with what is left, and nothing changes."""
    project = make_project(services, "lead")
    services.queries.run(member(services), project, plan(epsilon="0.8"))
    with pytest.raises(BudgetExceeded, match="left"):
        services.queries.run(member(services), project, plan(epsilon="0.5", group_by=["sex"]))
    assert spent(services, project) == Decimal("0.8")
    assert services.budgets.account(OPERATOR, project).reserved.epsilon == 0


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"dataset": "admissions"}, PermissionDenied, "not in this project's scope"),
        ({"group_by": ["deprivation_quintile"]}, PermissionDenied, "not in this project's approved scope"),
        ({"aggregates": [{"kind": "sum", "column": "sex"}]}, InvalidInput, "only bounded numeric"),
    ],
)
def test_refusals_come_from_the_plan_and_the_schema(
    services: Services, changes: dict[str, object], error: type[Exception], message: str
) -> None:
    """Scope and type refusals happen before planning, with a sentence, and spend nothing."""
    project = make_project(services, "lead")
    with pytest.raises(error, match=message):
        services.queries.run(member(services), project, plan(**changes), client="192.0.2.7")
    assert spent(services, project) == 0
    refused = [e for e in services.audit.export(OPERATOR) if e.action == "query.refused"]
    assert len(refused) == 1
    assert refused[0].object_id == str(project)
    assert refused[0].details["client"] == "192.0.2.7"
    assert message in str(refused[0].details["detail"])


def test_a_refused_query_over_http_is_audited_with_the_callers_address(services: Services) -> None:
    """Budget, scope and access refusals are audited with the address the server saw; a client's
    own X-Forwarded-For is ignored when no trusted proxy is configured."""
    project = make_project(services, "lead")
    make_project(services, "other", title="Another test project on demographics")
    lead = services.identity.issue_token(OPERATOR, "lead", name="laptop").secret
    stranger = services.identity.issue_token(OPERATOR, "other", name="laptop").secret
    body = plan().model_dump(mode="json")
    spoof = {"X-Forwarded-For": "203.0.113.9"}
    with LiveServer(services) as api, api.client() as c:
        for secret, changes, status in (
            (lead, {"epsilon": "5"}, 409),
            (lead, {"group_by": ["postcode_area"]}, 403),
            (stranger, {}, 404),
        ):
            r = c.post(
                f"/projects/{project}/queries",
                json={**body, **changes},
                headers={"Authorization": f"Bearer {secret}", **spoof},
            )
            assert r.status_code == status, r.text
    refused = [e for e in services.audit.export(OPERATOR) if e.action == "query.refused"]
    assert [e.details["error"] for e in refused] == ["budget_exceeded", "permission_denied", "not_found"]
    assert {e.details["client"] for e in refused} == {"127.0.0.1"}
    assert [e.actor for e in refused] == ["lead", "lead", "other"]


def test_who_may_query(services: Services) -> None:
    """Non-members, another project's workspace token and a suspended project are refused."""
    project = make_project(services, "lead")
    other = make_project(services, "other", title="Another test project on demographics")
    with pytest.raises(NotFound):
        services.queries.run(member(services, "other"), project, plan())
    lead = member(services)
    token = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=other).token
    assert lead.user is not None
    with pytest.raises(PermissionDenied, match="workspace token is for project"):
        services.queries.run(Actor.for_user(lead.user, token), project, plan())
    services.access.set_project_state(OPERATOR, project, ProjectState.SUSPENDED, "pause")
    with pytest.raises(PermissionDenied, match="suspended"):
        services.queries.preview(lead, project, plan())


def test_fifty_parallel_queries_of_a_tenth_against_one(services: Services) -> None:
    """50 distinct queries of epsilon 0.1 run at once against a budget of 1.0: exactly 10 release,
    the others are refused, and the spend is exactly 1.0."""
    project = make_project(services, "lead")
    lead = member(services)
    ok: list[int] = []
    refused: list[int] = []
    barrier = threading.Barrier(50)

    def work(i: int) -> None:
        barrier.wait()
        try:
            services.queries.run(
                lead, project, plan(epsilon="0.1", filters=[{"column": "sex", "op": "!=", "value": f"X{i}"}])
            )
            ok.append(i)
        except BudgetExceeded:
            refused.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 10
    assert len(refused) == 40
    account = services.budgets.account(OPERATOR, project)
    assert account.spent.epsilon == Decimal("1")
    assert account.reserved.epsilon == 0
    assert len(services.queries.releases(lead, project)) == 10


def test_queries_over_http_with_a_workspace_token(services: Services) -> None:
    """A workspace token previews, runs and lists releases of its own project over HTTP, through the
    workspace socket (the only listener that takes it)."""
    project = make_project(services, "lead")
    ws = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project).secret
    body = plan().model_dump(mode="json")
    with LiveServer(services) as api, api.workspace_client(ws) as c:
        assert c.post(f"/projects/{project}/queries/preview", json=body).json()["fits"] is True
        r = c.post(f"/projects/{project}/queries", json=body)
        assert r.status_code == 201, r.text
        assert len(r.json()["values"]) == REGIONS
        assert c.post(f"/projects/{project}/queries", json=body).status_code == 200
        assert len(c.get(f"/projects/{project}/releases").json()) == 1
        r = c.post(f"/projects/{project}/queries", json={**body, "epsilon": "5"})
        assert r.status_code == 409
        assert r.json()["error"] == "budget_exceeded"
        bad = c.post(f"/projects/{project}/queries", json={**body, "group_by": ["postcode_area"]})
        assert bad.status_code == 403
    assert tiny_population().exists()


def test_refusals_do_not_depend_on_the_data(services: Services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same plans on two neighbouring versions of the data (one person removed) are refused with
    exactly the same sentences: refusals come from the plan, the schema and the ledger only."""
    from enclave.ingest.spec import parse_spec
    from tests.factories import SPECS

    project = make_project(services, "lead")
    lead = member(services)
    services.queries.run(lead, project, plan(epsilon="0.9"))
    refused = [
        plan(epsilon="0.5", group_by=["sex"]),  # over budget
        plan(group_by=["postcode_area"]),  # out of scope
        plan(aggregates=[{"kind": "sum", "column": "sex"}]),  # wrong type
    ]

    def messages() -> list[str]:
        out = []
        for p in refused:
            with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what is compared
                services.queries.run(lead, project, p)
            out.append(f"{type(info.value).__name__}: {info.value}")
        return out

    before = messages()
    lines = (tiny_population() / "demographics.csv").read_text().splitlines()
    neighbour = tmp_path / "demographics.csv"
    neighbour.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    text = (
        (SPECS / "demographics.yaml")
        .read_text()
        .replace("custodian: custodian", "custodian: factory-custodian")
    )
    custodian = Actor.for_user(services.identity.get_user(OPERATOR, "factory-custodian"))
    report = services.catalog.ingest(custodian, parse_spec(text, base=SPECS), neighbour)
    assert report.version == 2
    assert messages() == before


def test_median_by_public_keys(services: Services) -> None:
    """A DP median of a bounded numeric, by public keys, through the service: every key, values
    within the catalog bounds, charged like any release."""
    from datetime import date as date_

    project = make_project(services, "lead")
    # The factory's project sees sex and region; year_of_birth needs an amendment-free new project.
    lead = member(services)
    with pytest.raises(PermissionDenied, match="year_of_birth"):
        services.queries.run(lead, project, plan(aggregates=[{"kind": "median", "column": "year_of_birth"}]))
    from tests.factories import make_project as factory

    wide = factory(
        services, "wide", title="A project that sees year of birth", columns=["sex", "year_of_birth"]
    )
    release, _ = services.queries.run(
        member(services, "wide"),
        wide,
        plan(aggregates=[{"kind": "median", "column": "year_of_birth"}], group_by=["sex"], epsilon="1"),
    )
    assert [row["sex"] for row in release.values] == ["F", "M"]
    assert all(1900 <= row["median_year_of_birth"] <= date_.today().year for row in release.values)
    assert spent(services, wide) == Decimal("1")
