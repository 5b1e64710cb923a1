"""The airlock end to end on the configured database: output requests with real files through the
real API over HTTP, the two-reviewer path, new versions, consolidation, overrides, release exactly
once under concurrency, downloads with the personal token only, withdrawal, and every refusal of
the issue's "bad input" list (refused with a clear error, audited, nothing in the release store)."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from PIL import Image

from enclave.db.migrate import alembic_config
from enclave.domain.access.states import ProjectState
from enclave.domain.errors import InvalidState, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role, TokenKind
from enclave.domain.outputs.files import Limits
from enclave.domain.outputs.review import Decision, FileDecision
from enclave.domain.outputs.service import AirlockService
from enclave.domain.outputs.states import OutputState
from enclave.domain.queries.plans import QueryPlan, Release
from enclave.keys import project_pseudonym
from enclave.store.layout import DATA_FILE, scan_table
from enclave.store.research import ParquetResearchStore
from enclave.wiring import Services, airlock
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.factories import make_project

CONTEXT = "Table 1 of the paper: registered persons by sex."
CONTROLS = "Counts copied from a DP release, unrounded."


def actor(services: Services, username: str) -> Actor:
    return Actor.for_user(services.identity.get_user(OPERATOR, username))


def counts_by_sex(services: Services, project: int) -> Release:
    plan = QueryPlan.model_validate(
        {
            "dataset": "demographics",
            "aggregates": [{"kind": "count_rows"}],
            "group_by": ["sex"],
            "epsilon": "0.5",
        }
    )
    release, _ = services.queries.run(actor(services, "lead"), project, plan)
    return release


def released_table(release: Release) -> bytes:
    rows = "".join(f"{r['sex']},{r['count']}\n" for r in release.values)
    return f"sex,count\n{rows}".encode()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def audit_actions(services: Services) -> list[str]:
    with services.db.unit_of_work(write=False) as uow:
        return [e.action for e in uow.audit.iter_events()]


def refusals(services: Services) -> list[dict[str, Any]]:
    import json

    with services.db.unit_of_work(write=False) as uow:
        return [
            json.loads(e.details_json)
            for e in uow.audit.iter_events()
            if e.action == "output_request.refused"
        ]


def release_store_files(services: Services) -> list[Path]:
    root = services.settings.release_store
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def setting(services: Services) -> dict[str, Any]:
    """An active project led by ``lead`` with one DP release, three reviewers outside it, and the
    lead's workspace token."""
    project = make_project(services, "lead", columns=["sex", "region"])
    release = counts_by_sex(services, project)
    reviewers = {name: make_account(services, name, Role.REVIEWER) for name in ("rev1", "rev2", "rev3")}
    lead_token = services.identity.issue_token(OPERATOR, "lead", name="laptop").secret
    ws = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project).secret
    return {"project": project, "release": release, "reviewers": reviewers, "lead": lead_token, "ws": ws}


def approve_all(
    c: httpx.Client, output_id: int, reviewer: Account, names: list[str], **extra: Any
) -> httpx.Response:
    body = {"decisions": [{"file": n, "decision": "approve"} for n in names], **extra}
    return c.post(f"/outputs/{output_id}/reviews", json=body, headers=reviewer.headers)


def test_two_reviewers_release_real_files_downloaded_with_the_personal_token_only(
    api: LiveServer, services: Services, setting: dict[str, Any], tmp_path: Path
) -> None:
    """The researcher uploads a table and a figure from the workspace (client), submits; the checks
    pass or warn; the first reviewer sees only their own review; the second approval releases both
    files (0400, hashed) at once; the workspace token cannot download, the personal token can, and
    every download is audited. A withdrawn release is recorded and no longer downloadable."""
    project, release = setting["project"], setting["release"]
    rev1, rev2 = setting["reviewers"]["rev1"], setting["reviewers"]["rev2"]
    (tmp_path / "by_sex.csv").write_bytes(released_table(release))
    (tmp_path / "by_sex.png").write_bytes(png())
    ws = api.workspace(setting["ws"], project)
    outputs = ws.outputs
    assert "no request yet" in repr(outputs)
    added = outputs.add(tmp_path / "by_sex.csv", description="counts by sex", derived_from=[release.id])
    assert added.check_status is None
    assert added.version == 1
    outputs.add(tmp_path / "by_sex.png", description="the same as a bar chart")
    status = outputs.submit(context=CONTEXT, controls=CONTROLS)
    assert status.state == "in_review"
    by_name = {f.name: f for f in status.files}
    assert by_name["by_sex.csv"].check_status == "pass", status.check_results("by_sex.csv")
    assert by_name["by_sex.png"].check_status == "warn"
    assert {r["rule"] for r in status.check_results("by_sex.csv")} >= {
        "provenance",
        "small_counts",
        "file_type",
    }
    assert "in_review" in repr(status)
    assert "by_sex.csv" in repr(status)
    names = ["by_sex.csv", "by_sex.png"]
    output_id = status.id

    with api.client() as c:
        assert c.get(
            f"/outputs/{output_id}/files/{by_name['by_sex.csv'].id}/held", headers=rev1.headers
        ).content == (released_table(release))
        first = approve_all(c, output_id, rev1, names)
        assert first.status_code == 201, first.text
        assert first.json()["state"] == "in_review"
        assert [r["reviewer"] for r in first.json()["reviews"]] == ["rev1"]
        assert [
            r["reviewer"] for r in c.get(f"/outputs/{output_id}", headers=rev2.headers).json()["reviews"]
        ] == []
        assert outputs.status().reviews == ()  # the researcher sees decisions once review is over
        second = approve_all(c, output_id, rev2, names)
        assert second.status_code == 201, second.text
        body = second.json()
        assert body["state"] == "released"
        assert body["outcome"]["state"] == "approved"
        files = {f["name"]: f for f in body["files"]}
        assert all(f["released"] is not None for f in files.values())

        stored = release_store_files(services)
        assert len(stored) == 2
        for path in stored:
            assert stat.S_IMODE(path.stat().st_mode) == 0o400
        assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in stored} == {
            f["sha256"] for f in files.values()
        }

        table_id = files["by_sex.csv"]["id"]
        url = f"/outputs/{output_id}/files/{table_id}/download"
        with api.workspace_client(setting["ws"]) as w:
            absent = w.get(url)  # the workspace socket does not serve released files at all
        assert absent.status_code == 404
        assert set(absent.json()) == {"error", "detail"}
        assert absent.json()["error"] == "not_found"
        assert "no such endpoint" in absent.json()["detail"]
        refused = c.get(url, headers={"Authorization": f"Bearer {setting['ws']}"})  # and the port refuses it
        assert refused.status_code == 403
        assert refused.json()["error"] == "permission_denied"
        assert "a workspace token works only inside its workspace" in refused.json()["detail"]
        got = c.get(url, headers={"Authorization": f"Bearer {setting['lead']}"})
        assert got.status_code == 200
        assert got.content == released_table(release)
        assert got.headers["x-content-sha256"] == hashlib.sha256(got.content).hexdigest()
        assert c.get(url, headers=rev1.headers).status_code == 403  # not a researcher
        assert audit_actions(services).count("output.downloaded") == 1

        withdrawn = c.post(
            f"/outputs/{output_id}/files/{table_id}/withdraw-release",
            json={"reason": "a co-author found a mislabelled row"},
            headers=rev1.headers,
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["withdrawn_by"] == "rev1"
        gone = c.get(url, headers={"Authorization": f"Bearer {setting['lead']}"})
        assert gone.status_code == 409
        assert "withdrawn" in gone.json()["detail"]
        assert len(release_store_files(services)) == 2  # recorded, not erased

    actions = audit_actions(services)
    for action in (
        "output_request.created",
        "output_request.file_added",
        "output_request.submitted",
        "output_request.checks_run",
        "output_request.checks_recorded",
        "output_request.reviewed",
        "output_request.approved",
        "output.released",
        "output_request.released",
        "output.downloaded",
        "output.release_withdrawn",
    ):
        assert action in actions, action
    assert outputs.status().state == "released"
    ws.close()


def test_changes_requested_then_a_new_version_keeps_the_history(
    api: LiveServer, services: Services, setting: dict[str, Any]
) -> None:
    """Both reviewers ask for changes; the researcher replaces the figure in version 2 (version 1 and
    its reviews stay), resubmits, and version 2 is reviewed afresh by the same reviewers."""
    rev1, rev2 = setting["reviewers"]["rev1"], setting["reviewers"]["rev2"]
    with api.client() as c, api.workspace_client(setting["ws"]) as w:
        output_id = w.post(f"/projects/{setting['project']}/outputs", json={"context": CONTEXT}).json()["id"]
        files = {"file": ("by_sex.csv", released_table(setting["release"]))}
        assert w.post(f"/outputs/{output_id}/files", files=files).status_code == 201
        assert w.post(f"/outputs/{output_id}/submit", json={}).json()["state"] == "in_review"
        change = {
            "decisions": [{"file": "by_sex.csv", "decision": "request_changes", "comment": "add a caption"}]
        }
        c.post(f"/outputs/{output_id}/reviews", json=change, headers=rev1.headers)
        body = c.post(f"/outputs/{output_id}/reviews", json=change, headers=rev2.headers).json()
        assert body["state"] == "changes_requested"
        # the researcher now sees the decisions that sent it back
        seen = w.get(f"/outputs/{output_id}").json()
        assert {r["reviewer"] for r in seen["reviews"]} == {"rev1", "rev2"}
        assert (
            w.post(
                f"/outputs/{output_id}/files",
                files={"file": ("note.md", b"# Caption\n\nCounts by sex.\n")},
            ).status_code
            == 201
        )
        resubmitted = w.post(f"/outputs/{output_id}/submit", json={}).json()
        assert resubmitted["state"] == "in_review"
        assert resubmitted["version"] == 2
        assert sorted(f["name"] for f in resubmitted["files"]) == ["by_sex.csv", "note.md"]
        assert [f["version"] for f in resubmitted["history"]] == [1]
        names = ["by_sex.csv", "note.md"]
        assert approve_all(c, output_id, rev1, names).status_code == 201
        final = approve_all(c, output_id, rev2, names).json()
        assert final["state"] == "released"
        assert [r["version"] for r in final["reviews"]] == [1, 1, 2, 2]
    assert "output_request.resubmitted" in audit_actions(services)
    assert "output_request.version_started" in audit_actions(services)


def test_disagreement_and_a_failed_check_need_a_consolidating_override(
    api: LiveServer, services: Services, setting: dict[str, Any]
) -> None:
    """A small count not traceable to the ledger fails two checks; two approvals without an override
    do not release it: a third reviewer consolidates with a recorded override reason."""
    rev1, rev2, rev3 = (setting["reviewers"][n] for n in ("rev1", "rev2", "rev3"))
    with api.client() as c, api.workspace_client(setting["ws"]) as w:
        output_id = w.post(f"/projects/{setting['project']}/outputs", json={"context": CONTEXT}).json()["id"]
        table = b"group,n\nall,3\n"
        w.post(f"/outputs/{output_id}/files", files={"file": ("small.csv", table)})
        body = w.post(f"/outputs/{output_id}/submit", json={}).json()
        failed = set(body["files"][0]["failed_checks"])
        assert {"small_counts", "provenance"} <= failed
        assert approve_all(c, output_id, rev1, ["small.csv"]).json()["state"] == "in_review"
        assert approve_all(c, output_id, rev2, ["small.csv"]).json()["state"] == "needs_consolidation"
        no_override = approve_all(c, output_id, rev3, ["small.csv"])
        assert no_override.status_code == 400
        assert "override" in no_override.json()["detail"]
        overrides = [
            {"file": "small.csv", "rule": rule, "reason": "a structural count published in the protocol"}
            for rule in sorted(failed)
        ]
        done = approve_all(c, output_id, rev3, ["small.csv"], overrides=overrides)
        assert done.status_code == 201, done.text
        assert done.json()["state"] == "released"
        assert done.json()["outcome"]["files"][0]["overrides"]
    assert len(release_store_files(services)) == 1


def test_bad_input_is_refused_clearly_audited_and_nothing_is_released(
    api: LiveServer, services: Services, setting: dict[str, Any]
) -> None:
    """Path traversal, absolute paths, archives, oversized files (413), non-UTF-8 text, ragged CSV,
    a file lying about its type, a reviewer deciding twice or on their own project, and the release
    of an unapproved request: each a 4xx with a sentence, each audited, nothing released."""
    services.outputs.limits = Limits(max_file_bytes=5000, max_request_bytes=8000)
    insider = make_account(services, "insider", Role.RESEARCHER, Role.REVIEWER)
    own = make_project(services, "insider", title="The insider's own project")
    rev1 = setting["reviewers"]["rev1"]
    with api.client() as c, api.workspace_client(setting["ws"]) as w:
        output_id = w.post(f"/projects/{setting['project']}/outputs", json={"context": CONTEXT}).json()["id"]

        def upload(name: str, content: bytes) -> httpx.Response:
            return w.post(f"/outputs/{output_id}/files", files={"file": ("x", content)}, data={"name": name})

        cases = [
            ("../../etc/evil.csv", b"a,b\n10,20\n", 400, "uses . or .."),
            ("/etc/passwd.csv", b"a,b\n10,20\n", 400, "absolute path"),
            ("results.zip", b"PK\x03\x04rest", 400, "archive"),
            ("results.csv", b"PK\x03\x04rest", 400, "archive"),
            ("big.csv", b"a,b\n" + b"10,20\n" * 1000, 413, "limited to 5000 bytes"),
            ("latin1.csv", "name,n\ncaf\xe9,12\n".encode("latin-1"), 400, "not UTF-8"),
            ("ragged.csv", b"a,b,c\n1,2,3\n4,5\n", 400, "ragged rows"),
            ("table.csv", png(), 400, "its content is a PNG image"),
        ]
        for name, content, code, phrase in cases:
            r = upload(name, content)
            assert r.status_code == code, (name, r.text)
            assert set(r.json()) == {"error", "detail"}
            assert phrase in r.json()["detail"], (name, r.json())
        # the request limit: two files that together exceed it
        assert upload("one.csv", b"a,b\n" + b"10,20\n" * 700).status_code == 201
        too_much = upload("two.csv", b"a,b\n" + b"10,20\n" * 700)
        assert too_much.status_code == 413

        assert w.post(f"/outputs/{output_id}/submit", json={}).status_code == 200
        assert approve_all(c, output_id, rev1, ["one.csv"]).status_code == 201
        twice = approve_all(c, output_id, rev1, ["one.csv"])
        assert twice.status_code == 409
        assert "already decided" in twice.json()["detail"]
        unapproved = c.post(f"/outputs/{output_id}/release", headers=rev1.headers)
        assert unapproved.status_code == 409
        assert "only an approved request can be released" in unapproved.json()["detail"]

        insider_ws = services.identity.issue_token(
            OPERATOR, "insider", kind=TokenKind.WORKSPACE, project_id=own
        ).secret
        with api.workspace_client(insider_ws) as h:
            own_id = h.post(f"/projects/{own}/outputs", json={"context": CONTEXT}).json()["id"]
            h.post(f"/outputs/{own_id}/files", files={"file": ("mine.md", b"# Mine\n")})
            assert h.post(f"/outputs/{own_id}/submit", json={}).status_code == 200
        self_review = approve_all(c, own_id, insider, ["mine.md"])
        assert self_review.status_code == 403
        assert "must be checked by reviewers who did not write it" in self_review.json()["detail"]

    recorded = refusals(services)
    actions = [r["action"] for r in recorded]
    assert actions.count("add_file") == len(cases) + 1
    assert actions.count("release") == 1
    assert actions.count("review") == 2
    assert all(r["reason"] for r in recorded)
    assert release_store_files(services) == []


def test_a_frozen_project_cannot_create_add_submit_or_download(
    services: Services, setting: dict[str, Any]
) -> None:
    """Suspending the project closes the airlock to its members (withdrawal stays possible)."""
    lead = actor(services, "lead")
    request = services.outputs.create(lead, setting["project"], context=CONTEXT)
    services.outputs.add_file(lead, request.id, "by_sex.csv", released_table(setting["release"]))
    services.access.set_project_state(OPERATOR, setting["project"], ProjectState.SUSPENDED, "audit finding")
    with pytest.raises(PermissionDenied, match="suspended"):
        services.outputs.create(lead, setting["project"], context=CONTEXT)
    with pytest.raises(PermissionDenied, match="suspended"):
        services.outputs.add_file(lead, request.id, "other.md", b"# x\n")
    with pytest.raises(PermissionDenied, match="suspended"):
        services.outputs.submit(lead, request.id)
    assert services.outputs.withdraw(lead, request.id, "project suspended").state is OutputState.WITHDRAWN


def test_cells_holding_a_pseudonym_of_the_store_or_of_the_project_fail(
    services: Services, setting: dict[str, Any]
) -> None:
    """A table with a person id from the research store, or its per-project pseudonym, fails the
    pseudonym rule; a 32-hex string that is neither does not."""
    with services.db.unit_of_work(write=False) as uow:
        dataset = uow.catalog.get_dataset("demographics")
        assert dataset is not None
        assert dataset.current_version is not None
        version = uow.catalog.get_version(dataset.id, dataset.current_version)
        assert version is not None
    person = scan_table(services.settings.research_store / version.path / DATA_FILE).collect()["person_id"][0]
    derived = project_pseudonym(services.keys, setting["project"], person)
    lead = actor(services, "lead")
    results = {}
    for label, cell in (("store", person), ("project", derived), ("neither", "0" * 32)):
        request = services.outputs.create(lead, setting["project"], context=CONTEXT)
        services.outputs.add_file(lead, request.id, "t.csv", f"who,n\n{cell},40\n".encode())
        services.outputs.submit(lead, request.id)
        view = services.outputs.show(lead, request.id)
        checks = view.current_files[0].checks
        assert checks is not None
        results[label] = next(r["status"] for r in checks["results"] if r["rule"] == "row_level.pseudonym")
    assert results == {"store": "fail", "project": "fail", "neither": "pass"}


def _in_review(services: Services, setting: dict[str, Any], outputs: AirlockService) -> int:
    lead = actor(services, "lead")
    request = outputs.create(lead, setting["project"], context=CONTEXT)
    outputs.add_file(lead, request.id, "by_sex.csv", released_table(setting["release"]))
    outputs.add_file(lead, request.id, "note.md", b"# Note\n\nCounts by sex.\n")
    outputs.submit(lead, request.id)
    return request.id


def _approve(outputs: AirlockService, who: Actor, request_id: int) -> None:
    outputs.review(who, request_id, [FileDecision(n, Decision.APPROVE) for n in ("by_sex.csv", "note.md")])


def test_concurrent_approvals_release_each_file_exactly_once(
    services: Services, setting: dict[str, Any]
) -> None:
    """Three reviewers approve at the same moment: two reviews count, the third is refused, and the
    release happens once: one record and one file per approved file."""
    request_id = _in_review(services, setting, services.outputs)
    reviewers = [actor(services, n) for n in ("rev1", "rev2", "rev3")]
    barrier = threading.Barrier(len(reviewers))
    errors: list[Exception] = []

    def go(who: Actor) -> None:
        barrier.wait()
        try:
            _approve(services.outputs, who, request_id)
        except InvalidState as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1
    view = services.outputs.show(OPERATOR, request_id)
    assert view.request.state is OutputState.RELEASED
    assert len(view.reviews) == 2
    assert len(view.released) == 2
    assert len(release_store_files(services)) == 2


def test_concurrent_releases_of_an_approved_request_write_one_record_and_one_file(
    services: Services, setting: dict[str, Any]
) -> None:
    """With release decoupled from approval, eight threads release the same approved request at once:
    each file is copied and recorded exactly once; every caller gets the same records."""
    outputs = airlock(
        services.settings,
        services.db,
        services.keys,
        ParquetResearchStore(services.settings.research_store),
        release_on_approval=False,
    )
    request_id = _in_review(services, setting, outputs)
    _approve(outputs, actor(services, "rev1"), request_id)
    _approve(outputs, actor(services, "rev2"), request_id)
    assert outputs.show(OPERATOR, request_id).request.state is OutputState.APPROVED
    barrier = threading.Barrier(8)
    results: list[list[int]] = []
    failures: list[BaseException] = []

    def go() -> None:
        barrier.wait()
        try:
            results.append(sorted(r.id for r in outputs.release(actor(services, "rev3"), request_id)))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len({tuple(r) for r in results}) == 1
    with services.db.unit_of_work(write=False) as uow:
        assert len(uow.outputs.list_released(request_id)) == 2
    assert len(release_store_files(services)) == 2
    assert audit_actions(services).count("output.released") == 2


def test_the_review_queue_ranks_by_risk_then_age_and_agrees_with_each_request(
    api: LiveServer, services: Services, setting: dict[str, Any]
) -> None:
    """``review_queue`` reads every waiting request in a few queries; what it says of each (files,
    worst check, whether my review is due) is what ``show`` says of it one by one."""
    outputs, lead = services.outputs, actor(services, "lead")
    project = setting["project"]
    good = released_table(setting["release"])

    def submitted(files: dict[str, bytes]) -> int:
        request = outputs.create(lead, project, context="Tables for the paper, counts by sex.")
        for name, content in files.items():
            outputs.add_file(lead, request.id, name, content)
        return outputs.submit(lead, request.id).id

    clean = submitted({"by_sex.csv": good})
    many = submitted({"a.csv": good, "b.csv": good, "c.md": b"# Notes\nNo numbers here.\n"})
    risky = submitted({"small.csv": b"sex,count\nF,3\nM,4\n"})
    reviewed = submitted({"by_sex.csv": good})
    outputs.review(actor(services, "rev1"), reviewed, [FileDecision("by_sex.csv", Decision.APPROVE)])

    rev1 = actor(services, "rev1")
    queue = outputs.review_queue(rev1)
    assert queue[0].request.id == risky  # failed checks first
    assert {e.request.id for e in queue} == {clean, many, risky, reviewed}
    for entry in queue:
        view = outputs.show(rev1, entry.request.id)
        assert entry.files == len(view.current_files)
        assert entry.due == view.can_review
        assert entry.project_title == view.project_title
    assert next(e for e in queue if e.request.id == reviewed).due is False  # decided once per version
    assert next(e for e in queue if e.request.id == risky).worst == "fail"
    ranks = [e.rank for e in queue]
    assert ranks == sorted(ranks)
    with pytest.raises(PermissionDenied):
        outputs.review_queue(lead)  # no reviewer role (a reviewer inside the project: the portal's test)
    assert outputs.review_queue_size(rev1) == 4
    assert [e.request.id for e in outputs.review_queue(rev1, offset=1, limit=2)] == [
        e.request.id for e in queue[1:3]
    ]
    # Migration 0010 fills the ranking of requests checked before it existed, as the checks write it.
    before = [(e.request.id, e.files, e.worst) for e in queue]
    services.db.engine.dispose()
    config = alembic_config(services.settings.database)
    command.downgrade(config, "0009")
    command.upgrade(config, "head")
    assert [(e.request.id, e.files, e.worst) for e in outputs.review_queue(rev1)] == before
    with api.client() as c:
        over_http = c.get("/outputs/review-queue", headers=setting["reviewers"]["rev1"].headers)
        assert over_http.status_code == 200
        assert [(e["id"], e["files"], e["worst_check"], e["review_due"]) for e in over_http.json()] == [
            (e.request.id, e.files, e.worst, e.due) for e in queue
        ]
        assert (
            c.get("/outputs/review-queue", headers={"Authorization": f"Bearer {setting['lead']}"}).status_code
            == 403
        )
