"""Importing an ACRO results folder into the airlock, end to end on the configured database: the
folder's files uploaded over HTTP (or read by the CLI), a draft request with ACRO's verdict stored
beside each file, Enclave's own checks on submit with ACRO's failures among them, and release only
once a reviewer has overridden ACRO's failed rule. Bad folders are refused with a sentence, audited,
and leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from enclave.domain.errors import InvalidInput, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role, TokenKind
from enclave.domain.outputs.files import Limits
from enclave.domain.outputs.review import Decision, FileDecision
from enclave.domain.outputs.states import OutputState
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer, make_account
from tests.factories import make_project
from tests.integration.conftest import Invoke
from tests.unit.test_acro import (
    CROSSTAB,
    FILES_V04,
    FILES_V1,
    folder_uploads,
    results_v04,
    results_v1,
    write_folder,
)

CONTEXT = "Tables 1 and 2 of the paper, checked with ACRO in the workspace."


def actor(services: Services, username: str) -> Actor:
    return Actor.for_user(services.identity.get_user(OPERATOR, username))


@pytest.fixture
def setting(services: Services) -> dict[str, Any]:
    """An active project led by ``lead``, three reviewers outside it, the lead's workspace token."""
    project = make_project(services, "lead")
    reviewers = {name: make_account(services, name, Role.REVIEWER) for name in ("rev1", "rev2", "rev3")}
    ws = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project).secret
    return {"project": project, "reviewers": reviewers, "ws": ws}


def upload(
    c: httpx.Client, project: int, files: list[tuple[str, bytes]], headers: dict[str, str] | None = None
) -> httpx.Response:
    return c.post(
        f"/projects/{project}/outputs/acro",
        files=[("files", (name, content)) for name, content in files],
        data={"context": CONTEXT},
        headers=headers,
    )


def audit(services: Services) -> list[tuple[str, dict[str, Any]]]:
    with services.db.unit_of_work(write=False) as uow:
        return [(e.action, json.loads(e.details_json)) for e in uow.audit.iter_events()]


def requests_of(services: Services, project: int) -> list[Any]:
    return services.outputs.list_requests(OPERATOR, project_id=project)


def release_store_files(services: Services) -> list[Path]:
    root = services.settings.release_store
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_acro_folder_uploaded_from_the_workspace_is_reviewed_with_acros_verdict_beside_ours(
    api: LiveServer, services: Services, setting: dict[str, Any], tmp_path: Path
) -> None:
    """The researcher uploads the folder acro.finalise wrote (results.json, outputs, checksums,
    config, ACRO's session summary) from the workspace: a draft holds the three outputs with
    ACRO's verdicts, the checker-only summary is left out. On submit Enclave's checks run and ACRO's
    failed threshold and zero checks are failed rules of the crosstab: two approvals do not release
    it, a third reviewer must override them with a reason, and only then are the files released."""
    project = setting["project"]
    rev1, rev2, rev3 = (setting["reviewers"][n] for n in ("rev1", "rev2", "rev3"))
    folder = write_folder(tmp_path / "acro_outputs", results_v1(), FILES_V1)
    with api.client() as c, api.workspace_client(setting["ws"]) as w:
        created = upload(w, project, folder_uploads(folder))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["state"] == "draft"
        assert body["author"] == "lead"
        assert body["controls"] == "Applied by ACRO 1.0.2: output_2: suppressed the flagged cells."
        assert body["acro"]["version"] == "1.0.2"
        assert [s.split(":")[0] for s in body["acro"]["skipped"]] == ["2ndary_risk_summary_json-DONT_RELEASE"]
        files = {f["name"]: f for f in body["files"]}
        assert sorted(files) == ["notes.txt", "output_0_0.csv", "output_2_0.csv"]
        table = files["output_0_0.csv"]
        assert table["spec"]["acro"]["status"] == "fail"
        assert table["spec"]["acro"]["checksum"] == "verified"
        assert "print(acro.crosstab(df.year, df.grant_type))" in table["description"]
        assert table["check_status"] is None  # Enclave's checks run on submit
        output_id = body["id"]

        submitted = w.post(f"/outputs/{output_id}/submit", json={})
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["state"] == "in_review"

        seen = c.get(f"/outputs/{output_id}", headers=rev1.headers).json()
        files = {f["name"]: f for f in seen["files"]}
        table = files["output_0_0.csv"]
        assert {"acro.threshold", "acro.zeros", "provenance"} <= set(table["failed_checks"])
        rules = {r["rule"]: r for r in table["checks"]["results"]}
        assert {"file_type", "small_counts", "provenance"} <= set(rules)  # Enclave's own checks ran
        assert rules["acro.threshold"]["status"] == "fail"
        assert "flagged 3 cell(s)" in rules["acro.threshold"]["message"]
        assert table["checks"]["imported"]["tool"] == "ACRO"
        assert table["checks"]["imported"]["status"] == "fail"
        suppressed = files["output_2_0.csv"]
        assert not any(r.startswith("acro.") for r in suppressed["failed_checks"])
        assert {r["rule"]: r["status"] for r in suppressed["checks"]["results"]}["acro.threshold"] == "warn"
        assert files["notes.txt"]["check_status"] == "warn"
        assert files["notes.txt"]["failed_checks"] == []

        names = sorted(files)

        def approve(reviewer: Any, overrides: list[dict[str, str]] | None = None) -> httpx.Response:
            decisions = [{"file": n, "decision": "approve"} for n in names]
            return c.post(
                f"/outputs/{output_id}/reviews",
                json={"decisions": decisions, "overrides": overrides or []},
                headers=reviewer.headers,
            )

        assert approve(rev1).json()["state"] == "in_review"
        second = approve(rev2).json()
        assert second["state"] == "needs_consolidation"
        blocked = next(f for f in second["outcome"]["files"] if f["file"] == "output_0_0.csv")
        assert "acro.threshold" in blocked["reason"]
        refused = approve(rev3)
        assert refused.status_code == 400
        assert "acro.threshold" in refused.json()["detail"]
        assert release_store_files(services) == []
        overrides = [
            {"file": name, "rule": rule, "reason": "X is a structural category published by the funder"}
            for name in names
            for rule in files[name]["failed_checks"]
        ]
        done = approve(rev3, overrides)
        assert done.status_code == 201, done.text
        assert done.json()["state"] == "released"
        table_outcome = next(f for f in done.json()["outcome"]["files"] if f["file"] == "output_0_0.csv")
        assert {"acro.threshold", "acro.zeros"} <= {o["rule"] for o in table_outcome["overrides"]}
    assert len(release_store_files(services)) == 3
    events = audit(services)
    imported = [d for a, d in events if a == "output_request.acro_imported"]
    assert imported[0]["acro_version"] == "1.0.2"
    assert imported[0]["failed"]["output_0_0.csv"] == ["acro.zeros", "acro.threshold"]
    added = [d for a, d in events if a == "output_request.file_added"]
    assert {d["acro"]["uid"] for d in added} == {"output_0", "output_1", "output_2"}
    checks_run = next(d for a, d in events if a == "output_request.checks_run")
    assert "acro.threshold" in checks_run["failed"]["output_0_0.csv"]


def test_the_cli_imports_a_folder_and_submits_it(cli: Invoke, services: Services, tmp_path: Path) -> None:
    """`enclave outputs import-acro PROJECT FOLDER --as lead --submit` creates and submits the request
    (ACRO 0.4 folder: the failed regression is a failed acro.status); a folder with a link out of it
    is refused in one line, audited, and creates nothing."""
    project = make_project(services, "lead")
    folder = write_folder(tmp_path / "acro", results_v04(), FILES_V04)
    out = cli(
        "outputs", "import-acro", str(project), str(folder), "--as", "lead", "--context", CONTEXT, "--submit"
    )
    assert "is in_review: 4 file(s) imported from ACRO 0.4.8" in out.stdout
    assert "output_0_0.csv  ACRO fail; checks fail" in out.stdout
    assert "acro.threshold" in out.stdout
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  output_")}
    assert "acro.status" in lines["output_3_0.csv"]
    assert "acro.status" not in lines["output_2_0.csv"]
    [request] = requests_of(services, project)
    assert request.state is OutputState.IN_REVIEW
    draft = cli("outputs", "import-acro", str(project), str(folder), "--as", "lead").stdout
    assert "is draft" in draft
    assert "submit it to send it to review" in draft

    secret = tmp_path / "secret.csv"
    secret.write_bytes(CROSSTAB)
    (folder / "output_0_0.csv").unlink()
    (folder / "output_0_0.csv").symlink_to(secret)
    bad = cli("outputs", "import-acro", str(project), str(folder), "--as", "lead", ok=False)
    assert bad.exit_code == 1
    assert "is a link to a file outside the folder" in bad.stderr
    assert len(requests_of(services, project)) == 2
    refused = [d for a, d in audit(services) if a == "output_request.refused"]
    assert refused[-1]["action"] == "import_acro"
    assert "outside the folder" in refused[-1]["reason"]


def _variant(tmp_path: Path, label: str) -> list[tuple[str, bytes]]:
    results, files = results_v1(), dict(FILES_V1)
    table = results["results"]["output_0"]
    if label == "traversal":
        table["files"][0]["name"] = "../../etc/evil.csv"
    elif label == "ragged":
        files["output_0_0.csv"] = b"year,G,N\n2010,60\n"
    elif label == "png_named_csv":
        files["output_0_0.csv"] = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    elif label == "status":
        table["status"] = "unknown"
    uploads = folder_uploads(write_folder(tmp_path / label, results, files, checksums=label != "tampered"))
    if label == "no_results":
        return [(n, c) for n, c in uploads if n != "results.json"]
    if label == "bad_json":
        return [(n, b"{oops" if n == "results.json" else c) for n, c in uploads]
    if label == "unlisted":
        return [*uploads, ("secrets.csv", b"a,b\n1,2\n")]
    if label == "tampered":
        return [
            *[(n, b"year,G\n2010,60\n" if n == "output_0_0.csv" else c) for n, c in uploads],
            ("checksums/output_0_0.csv.txt", b"0" * 64),
        ]
    return uploads


@pytest.mark.parametrize(
    ("label", "code", "phrase"),
    [
        ("no_results", 400, "no results.json: import the folder acro.finalise"),
        ("bad_json", 400, "results.json is not valid JSON (line 1, column 2"),
        ("status", 400, "results.output_0.status: Input should be 'pass', 'review' or 'fail'"),
        ("traversal", 400, "lists a file that cannot be imported: the file name '../../etc/evil.csv' uses"),
        ("unlisted", 400, "'secrets.csv' was uploaded but results.json does not list it"),
        ("tampered", 400, "output_0_0.csv does not match its checksum in checksums/"),
        ("ragged", 400, "ACRO output 'output_0': output_0_0.csv has ragged rows"),
        ("png_named_csv", 400, "ACRO output 'output_0': output_0_0.csv is named as csv but its content is"),
        ("big", 413, "output_0_0.csv is over the size limit"),
    ],
)
def test_a_bad_acro_folder_is_refused_with_a_sentence_audited_and_creates_nothing(
    api: LiveServer,
    services: Services,
    setting: dict[str, Any],
    tmp_path: Path,
    label: str,
    code: int,
    phrase: str,
) -> None:
    """Each malformed folder is a 4xx with the reason; the refusal is audited (import_acro); no output
    request exists afterwards and the holding store is untouched."""
    if label == "big":
        services.outputs.limits = Limits(max_file_bytes=40)
    project = setting["project"]
    with api.workspace_client(setting["ws"]) as w:
        r = upload(w, project, _variant(tmp_path, label))
    assert r.status_code == code, r.text
    assert set(r.json()) == {"error", "detail"}
    assert phrase in r.json()["detail"]
    refused = [d for a, d in audit(services) if a == "output_request.refused"]
    assert [d["action"] for d in refused] == ["import_acro"]
    assert requests_of(services, project) == []
    holding = services.settings.holding_store
    assert not holding.exists() or not any(p.is_file() for p in holding.rglob("*"))


def test_only_members_import_and_a_workspace_token_only_for_its_project(
    api: LiveServer, services: Services, setting: dict[str, Any], tmp_path: Path
) -> None:
    """A reviewer outside the project, or the lead's workspace token of another project, cannot
    import into it; the service refuses an operator who is nobody's member."""
    other = make_project(services, "lead", title="The lead's other project")
    uploads = folder_uploads(write_folder(tmp_path / "acro", results_v1(), FILES_V1))
    with api.client() as c, api.workspace_client(setting["ws"]) as w:
        elsewhere = upload(w, other, uploads)
        assert elsewhere.status_code == 403
        assert (
            f"this workspace token is for project {setting['project']}, not {other}"
            in elsewhere.json()["detail"]
        )
        assert upload(c, setting["project"], uploads, setting["reviewers"]["rev1"].headers).status_code == 403
    with pytest.raises(PermissionDenied, match="only members"):
        services.outputs.import_acro(OPERATOR, setting["project"], uploads)
    assert requests_of(services, setting["project"]) == []


def test_a_service_import_from_a_folder_checks_and_reviews_like_any_request(
    services: Services, setting: dict[str, Any], tmp_path: Path
) -> None:
    """Through the service with a folder path: the import is a draft; intake refusals name the ACRO
    output; submit records ACRO's failure among the failed checks; an approval without override
    leaves the request unreleased."""
    lead = actor(services, "lead")
    folder = write_folder(tmp_path / "acro", results_v04(), FILES_V04)
    imported = services.outputs.import_acro(lead, setting["project"], folder, context=CONTEXT)
    assert imported.version == "0.4.8"
    assert [f.name for f in imported.files] == [f"output_{i}_0.csv" for i in range(4)]
    assert imported.request.state is OutputState.DRAFT
    services.outputs.submit(lead, imported.request.id)
    view = services.outputs.show(lead, imported.request.id)
    failed = {f.name: f.failed_rules for f in view.current_files}
    assert "acro.threshold" in failed["output_0_0.csv"]
    assert "acro.status" in failed["output_3_0.csv"]
    assert not any(r.startswith("acro.") for r in failed["output_1_0.csv"])  # suppressed by ACRO
    names = [f.name for f in view.current_files]
    for reviewer in ("rev1", "rev2"):
        services.outputs.review(
            actor(services, reviewer), imported.request.id, [FileDecision(n, Decision.APPROVE) for n in names]
        )
    assert (
        services.outputs.show(OPERATOR, imported.request.id).request.state is OutputState.NEEDS_CONSOLIDATION
    )
    assert release_store_files(services) == []

    broken = results_v04()
    broken["results"]["output_0"]["files"][0]["name"] = "output_0_0.xlsx"
    with pytest.raises(
        InvalidInput, match=r"ACRO output 'output_0' lists a file .* \.xlsx files are not accepted"
    ):
        services.outputs.import_acro(
            lead, setting["project"], write_folder(tmp_path / "x", broken, FILES_V04)
        )


def test_the_client_imports_the_folder_from_a_notebook(
    api: LiveServer, services: Services, setting: dict[str, Any], tmp_path: Path
) -> None:
    """``ws.outputs.import_acro(folder)`` uploads the folder ACRO wrote as a new draft request."""
    folder = write_folder(tmp_path / "acro_outputs", results_v1(), FILES_V1)
    ws = api.workspace(setting["ws"], setting["project"])
    status = ws.outputs.import_acro(folder, context=CONTEXT)
    assert status.state == "draft"
    assert sorted(f.name for f in status.files) == ["notes.txt", "output_0_0.csv", "output_2_0.csv"]
    assert ws.outputs.request_id == status.id
    with pytest.raises(ValueError, match=r"no results\.json"):
        ws.outputs.import_acro(tmp_path)
    ws.close()
