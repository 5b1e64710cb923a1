"""The airlock over HTTP: output requests, files, checks, reviews, releases and downloads.

Routes only translate: every rule is in :class:`enclave.domain.outputs.service.AirlockService`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from enclave.api.deps import ServicesDep, requires
from enclave.api.schemas import MAX_INT, Printable
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.outputs.checks import Rounding
from enclave.domain.outputs.review import (
    CheckOverride,
    Decision,
    FileDecision,
    OutputFile,
    OutputRequest,
    ReleasedFile,
)
from enclave.domain.outputs.service import Download, OutputView
from enclave.domain.outputs.states import OutputState

router = APIRouter(tags=["outputs"])

# Members act from their workspace (its token is scoped to the project); downloads and reviews need
# a personal token, so a file never leaves through a workspace.
Member = Annotated[Actor, Depends(requires(Role.RESEARCHER, workspace=True))]
Viewer = Annotated[Actor, Depends(requires(workspace=True))]
Reviewer = Annotated[Actor, Depends(requires(Role.REVIEWER))]
ReviewerOrAdmin = Annotated[Actor, Depends(requires(Role.REVIEWER, Role.ADMIN))]
PersonalMember = Annotated[Actor, Depends(requires(Role.RESEARCHER))]
Withdrawer = Annotated[Actor, Depends(requires(Role.RESEARCHER, Role.REVIEWER, Role.ADMIN))]
Id = Annotated[int, PathParam(ge=1, le=MAX_INT)]
LongText = Annotated[str, Field(max_length=5000), Printable]


def request_view(request: OutputRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "project_id": request.project_id,
        "author": request.author,
        "state": request.state.value,
        "version": request.version,
        "context": request.context,
        "controls": request.controls,
        "policy_version": request.policy_version,
        "created_at": request.created_at.isoformat(),
        "updated_at": request.updated_at.isoformat(),
        "submitted_at": request.submitted_at.isoformat() if request.submitted_at else None,
    }


def file_view(file: OutputFile, released: ReleasedFile | None = None) -> dict[str, Any]:
    return {
        "id": file.id,
        "version": file.version,
        "name": file.name,
        "kind": file.kind,
        "size": file.size,
        "sha256": file.sha256,
        "original_sha256": file.original_sha256,
        "description": file.description,
        "derived_from": list(file.derived_from),
        "spec": dict(file.spec),
        "changes": list(file.changes),
        "check_status": file.check_status,
        "failed_checks": sorted(file.failed_rules),
        "checks": dict(file.checks) if file.checks is not None else None,
        "released": released_view(released) if released is not None else None,
    }


def released_view(released: ReleasedFile) -> dict[str, Any]:
    return {
        "id": released.id,
        "file_id": released.file_id,
        "name": released.name,
        "sha256": released.sha256,
        "released_at": released.released_at.isoformat(),
        "withdrawn_at": released.withdrawn_at.isoformat() if released.withdrawn_at else None,
        "withdrawn_by": released.withdrawn_by,
        "withdrawal_reason": released.withdrawal_reason,
    }


def output_view(view: OutputView) -> dict[str, Any]:
    """The request as its viewer may see it: current files with their checks, earlier versions,
    visible reviews, the outcome, and the released files."""
    released = {r.file_id: r for r in view.released}
    return {
        **request_view(view.request),
        "project_title": view.project_title,
        "policy": dict(view.request.policy) if view.request.policy is not None else None,
        "files": [file_view(f, released.get(f.id)) for f in view.current_files],
        "history": [file_view(f) for f in view.files if f.version != view.request.version],
        "reviews": [r.to_dict() for r in view.reviews],
        "outcome": view.outcome.to_dict() if view.outcome is not None else None,
        "can_review": view.can_review,
    }


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: LongText = Field("", description="why these outputs are needed (the justification)")
    controls: LongText = Field("", description="the disclosure controls applied (rounding, suppression)")


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: LongText | None = None
    controls: LongText | None = None


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: Annotated[str, Field(min_length=1, max_length=200)]
    decision: Decision
    comment: LongText = ""


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: Annotated[str, Field(min_length=1, max_length=200)]
    rule: Annotated[str, Field(min_length=1, max_length=100)]
    reason: LongText


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: list[DecisionBody] = Field(max_length=100)
    overrides: list[OverrideBody] = Field(default_factory=list, max_length=500)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: LongText = ""


@router.post(
    "/projects/{project_id}/outputs",
    summary="Open an output request (project members, from the workspace)",
    status_code=status.HTTP_201_CREATED,
)
def create(project_id: Id, body: CreateBody, actor: Member, services: ServicesDep) -> dict[str, Any]:
    request = services.outputs.create(actor, project_id, context=body.context, controls=body.controls)
    return output_view(services.outputs.show(actor, request.id))


def _read_upload(upload: UploadFile, limit: int) -> bytes:
    """At most ``limit + 1`` bytes: enough for the service to refuse (and audit) an oversized file
    without reading all of it."""
    return upload.file.read(limit + 1)


@router.post(
    "/outputs/{output_id}/files",
    summary="Add a file to the version being edited (intake refuses what must not leave); 413 over the limit",
    status_code=status.HTTP_201_CREATED,
)
def add_file(
    output_id: Id,
    actor: Member,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="the file; its name is the name it is released under")],
    name: Annotated[str | None, Form(max_length=200, description="a path within the request")] = None,
    description: Annotated[str, Form(max_length=5000)] = "",
    derived_from: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_INT)]],
        Form(max_length=100, description="ids of this project's releases the numbers come from"),
    ] = [],  # noqa: B006 - FastAPI copies defaults
    count_columns: Annotated[list[Annotated[str, Field(max_length=200)]], Form(max_length=500)] = [],  # noqa: B006
    round_base: Annotated[int | None, Form(ge=1, le=1_000_000)] = None,
    round_significant: Annotated[int | None, Form(ge=1, le=15)] = None,
    round_decimals: Annotated[int | None, Form(ge=0, le=12)] = None,
) -> dict[str, Any]:
    content = _read_upload(file, services.outputs.limits.max_file_bytes)
    added = services.outputs.add_file(
        actor,
        output_id,
        name if name is not None else file.filename or "",
        content,
        description=description,
        derived_from=derived_from,
        count_columns=count_columns or None,
        rounding=Rounding(base=round_base, significant=round_significant, decimals=round_decimals),
    )
    return file_view(added)


@router.post(
    "/projects/{project_id}/outputs/acro",
    summary="Open a draft output request from an ACRO results folder: results.json and the files it lists",
    status_code=status.HTTP_201_CREATED,
)
def import_acro(
    project_id: Id,
    actor: Member,
    services: ServicesDep,
    files: Annotated[
        list[UploadFile],
        File(
            description="results.json and the files of the folder acro.finalise(path, 'json') wrote, each"
            " named by its path in that folder (checksums/... included; config.json is ignored)"
        ),
    ],
    context: Annotated[str, Form(max_length=5000, description="why these outputs are needed")] = "",
    controls: Annotated[
        str, Form(max_length=5000, description="the disclosure controls applied (default: ACRO's)")
    ] = "",
) -> dict[str, Any]:
    imported = services.outputs.import_acro(
        actor,
        project_id,
        [(f.filename or "", f.file) for f in files],
        context=context,
        controls=controls,
    )
    return {
        **output_view(services.outputs.show(actor, imported.request.id)),
        "acro": {"version": imported.version, "skipped": list(imported.skipped)},
    }


@router.delete(
    "/outputs/{output_id}/files/{file_id}",
    summary="Remove a file from the version being edited; answers the request as it now is",
)
def remove_file(output_id: Id, file_id: Id, actor: Member, services: ServicesDep) -> dict[str, Any]:
    services.outputs.remove_file(actor, output_id, file_id)
    return output_view(services.outputs.show(actor, output_id))


@router.post("/outputs/{output_id}/submit", summary="Submit: run the automated checks and send to review")
def submit(output_id: Id, body: SubmitBody, actor: Member, services: ServicesDep) -> dict[str, Any]:
    services.outputs.submit(actor, output_id, context=body.context, controls=body.controls)
    return output_view(services.outputs.show(actor, output_id))


@router.post(
    "/outputs/{output_id}/withdraw",
    summary="Withdraw a request before release (members), or a whole release (members, reviewers, admins)",
)
def withdraw(output_id: Id, body: ReasonBody, actor: Viewer, services: ServicesDep) -> dict[str, Any]:
    services.outputs.withdraw(actor, output_id, body.reason)
    return output_view(services.outputs.show(actor, output_id))


@router.post(
    "/outputs/{output_id}/reviews",
    summary="A reviewer's decisions on every file of the current version (reviewers outside the project)",
    status_code=status.HTTP_201_CREATED,
)
def review(output_id: Id, body: ReviewBody, actor: Reviewer, services: ServicesDep) -> dict[str, Any]:
    view = services.outputs.review(
        actor,
        output_id,
        [FileDecision(d.file, d.decision, d.comment) for d in body.decisions],
        [CheckOverride(o.file, o.rule, o.reason) for o in body.overrides],
    )
    return output_view(view)


@router.post(
    "/outputs/{output_id}/release",
    summary="Release an approved request now (happens on approval; this retries); refused otherwise",
)
def release(output_id: Id, actor: ReviewerOrAdmin, services: ServicesDep) -> dict[str, Any]:
    services.outputs.release(actor, output_id)
    return output_view(services.outputs.show(actor, output_id))


@router.get(
    "/outputs/review-queue",
    summary="The output requests waiting for review that you may review, the riskiest first (reviewers)",
    description=(
        "Failed checks first, then warnings, then more files, then the oldest submission; never your own"
        " projects'. Each entry says its current version's number of files, the worst check and whether your"
        " review is due."
    ),
)
def review_queue(
    actor: Reviewer,
    services: ServicesDep,
    response: Response,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    response.headers["X-Total-Count"] = str(services.outputs.review_queue_size(actor))
    return [
        {
            **request_view(e.request),
            "project_title": e.project_title,
            "files": e.files,
            "worst_check": e.worst,
            "review_due": e.due,
        }
        for e in services.outputs.review_queue(actor, offset=offset, limit=limit)
    ]


@router.get(
    "/outputs", summary="Output requests you can see (members: their projects'; reviewers: all submitted)"
)
def list_outputs(
    actor: Viewer,
    services: ServicesDep,
    project_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    state: Annotated[list[OutputState] | None, Query(max_length=10)] = None,
) -> list[dict[str, Any]]:
    return [
        request_view(r) for r in services.outputs.list_requests(actor, project_id=project_id, states=state)
    ]


@router.get("/outputs/{output_id}", summary="One output request: files, checks, visible reviews, releases")
def show(output_id: Id, actor: Viewer, services: ServicesDep) -> dict[str, Any]:
    return output_view(services.outputs.show(actor, output_id))


#: The media types a page may show in place (the reviewer's preview of a figure).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/svg+xml"})


def file_response(download: Download, *, inline: bool = False) -> Response:
    """A held or released file: downloaded (or, with ``inline``, an image shown in place), never
    sniffed, never run (a sandboxed CSP), never cached; its SHA-256 in a header. The API's routes and
    the portal's pages serve files through this one function."""
    filename = "".join(c if c.isalnum() or c in "._-" else "_" for c in download.released.name) or "output"
    disposition = "inline" if inline and download.media_type in INLINE_TYPES else "attachment"
    return Response(
        content=download.content,
        media_type=download.media_type,
        headers={
            "Content-Disposition": f'{disposition}; filename="{filename}"',
            "X-Content-SHA256": download.released.sha256,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/outputs/{output_id}/files/{file_id}/held",
    summary="A held file's content, for reviewers of the request (audited)",
    response_class=Response,
)
def held(output_id: Id, file_id: Id, actor: Reviewer, services: ServicesDep) -> Response:
    return file_response(services.outputs.held_file(actor, output_id, file_id))


@router.get(
    "/outputs/{output_id}/files/{file_id}/download",
    summary="Download a released file (project members, personal token only; audited)",
    response_class=Response,
)
def download(output_id: Id, file_id: Id, actor: PersonalMember, services: ServicesDep) -> Response:
    return file_response(services.outputs.download(actor, output_id, file_id))


@router.post(
    "/outputs/{output_id}/files/{file_id}/withdraw-release",
    summary="Withdraw a released file: recorded (who, when, why), never erased; downloads stop",
)
def withdraw_release(
    output_id: Id, file_id: Id, body: ReasonBody, actor: Withdrawer, services: ServicesDep
) -> dict[str, Any]:
    return released_view(services.outputs.withdraw_release(actor, output_id, file_id, body.reason))
