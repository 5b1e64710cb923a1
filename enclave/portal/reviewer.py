"""The output checker's workbench: the queue of output requests to review, a request with a preview
of each held file (its risky cells highlighted), and the reviewer's decisions.

Every page calls the airlock's use cases the API's routes call (``AirlockService.review_queue``,
``review_view``, ``held_file``, ``review``): who may see and decide what, the blindness of the reviews, the
state machine and every refusal are the service's rules, and a refusal is shown as the service's
own sentence, with nothing changed. A reviewer who is a member of a request's project is refused by
the service too (``review_queue`` leaves those requests out, ``review_view`` refuses them, as
``held_file`` does).

The previews show content that has not been vetted: only reviewers get these pages, every file is
read through ``held_file`` (audited), and file content is only ever shown escaped.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from starlette.responses import RedirectResponse, Response

from enclave.api.deps import ServicesDep
from enclave.api.routes.outputs import file_response
from enclave.api.schemas import MAX_INT
from enclave.domain.errors import EnclaveError, InternalError, NotFound
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.outputs.files import IMAGE_KINDS, FileKind
from enclave.domain.outputs.review import (
    CheckOverride,
    Decision,
    FileDecision,
    OutputFile,
    Review,
    worst_check,
)
from enclave.domain.outputs.service import OutputView
from enclave.domain.outputs.states import OutputState
from enclave.portal.forms import FormErrors, refusal_sentence, text_field
from enclave.portal.sessions import CheckedForm, signed_in
from enclave.portal.web import PREFIX, Renderer
from enclave.wiring import Services

router = APIRouter(prefix=PREFIX, include_in_schema=False)
log = logging.getLogger("enclave.portal")

ReviewerPage = Annotated[Actor, Depends(signed_in(Role.REVIEWER))]
Id = Annotated[int, PathParam(ge=1, le=MAX_INT)]

#: GOV.UK tag colour and label of each output request state.
STATE_TAGS = {
    OutputState.DRAFT: ("grey", "Draft"),
    OutputState.SUBMITTED: ("blue", "Submitted"),
    OutputState.IN_REVIEW: ("light-blue", "In review"),
    OutputState.NEEDS_CONSOLIDATION: ("orange", "Needs a third review"),
    OutputState.CHANGES_REQUESTED: ("yellow", "Changes requested"),
    OutputState.APPROVED: ("green", "Approved"),
    OutputState.REJECTED: ("red", "Rejected"),
    OutputState.RELEASED: ("green", "Released"),
    OutputState.WITHDRAWN: ("grey", "Withdrawn"),
    OutputState.RELEASE_WITHDRAWN: ("grey", "Release withdrawn"),
}
#: Tag of a check outcome (of a rule, or the worst of a file or a request).
CHECK_TAGS = {
    "fail": ("red", "Failed"),
    "warn": ("yellow", "Warning"),
    "pass": ("green", "Passed"),
    None: ("grey", "Not checked"),
}
DECISION_TAGS = {
    Decision.APPROVE: ("green", "Approve"),
    Decision.REQUEST_CHANGES: ("yellow", "Request changes"),
    Decision.REJECT: ("red", "Reject"),
}

#: The messages a page shows after a change: fixed sentences, never text from the request.
DONE = {"reviewed": "Your decisions are recorded."}

#: Requests per page of the queue; rows per page of a table's preview.
QUEUE_PAGE = 50
TABLE_PAGE = 100
#: At most this many characters of a text file are shown in the page; the rest is in the held file.
TEXT_PREVIEW = 100_000


_render = Renderer(DONE, state_tags=STATE_TAGS, check_tags=CHECK_TAGS, decision_tags=DECISION_TAGS)


# --- the queue ----------------------------------------------------------------------------------


@router.get("/reviewer/outputs", response_class=HTMLResponse, name="reviewer_outputs")
def queue(
    request: Request,
    services: ServicesDep,
    actor: ReviewerPage,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    shown = services.outputs.review_queue_size(actor)
    pages = max(1, -(-shown // QUEUE_PAGE))
    page = min(page, pages)
    rows = services.outputs.review_queue(actor, offset=(page - 1) * QUEUE_PAGE, limit=QUEUE_PAGE)
    return _render(
        request,
        "reviewer/queue.html",
        title="Output checking",
        rows=rows,
        shown=shown,
        page=page,
        pages=pages,
    )


# --- ACRO's verdict -------------------------------------------------------------------------------

#: Tag of ACRO's own verdict on an output, in ACRO's words (pass, review, fail).
ACRO_TAGS = {
    "pass": ("green", "Pass"),
    "review": ("yellow", "Review"),
    "fail": ("red", "Fail"),
}
#: The sentence ``enclave.airlock.acro.map_checks`` writes for a check's cells: "(in ACRO's table,
#: counted from 0: row 0 column 3, row 1 column 3 and 4 more)", the first five positions only.
_ACRO_CELLS = re.compile(r"\(in ACRO's table, counted from 0: ([^()]*)\)")
_ACRO_CELL = re.compile(r"row (\d{1,9}) column (\d{1,9})")
_ACRO_MORE = re.compile(r" and (\d{1,9}) more$")


@dataclass
class AcroCheck:
    """One of ACRO's checks of a file (a rule ``acro.*``). ``positions`` are the cells ACRO flagged as
    ACRO counts them: ``(row, column)`` of its table from 0, without the header row and the index
    column; ``unlisted`` is how many more it flagged than the verdict lists."""

    rule: str
    status: str
    message: str
    positions: list[tuple[int, int]] = field(default_factory=list)
    unlisted: int = 0


@dataclass
class AcroVerdict:
    """ACRO's verdict on one file, as the import stored it (``spec["acro"]``). All of it is the
    researcher's tool's output: text to show escaped, never markup."""

    version: str
    status: str
    uid: str
    type: str
    method: str
    summary: str
    comments: list[str]
    command: str
    exception: str
    mitigation: str
    checksum: str
    checks: list[AcroCheck]

    @property
    def rules(self) -> frozenset[str]:
        return frozenset(c.rule for c in self.checks)


def _string(value: object, limit: int = 5000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _acro_positions(result: Mapping[str, Any]) -> tuple[list[tuple[int, int]], int]:
    """The cells one ACRO result is on: its ``cells`` when the verdict records them (``[row, column]``
    pairs or ``{"row": .., "column": ..}``, numbers from 0), else those its sentence lists."""
    listed: list[tuple[int, int]] = []
    raw = result.get("cells")
    for cell in raw if isinstance(raw, list) else ():
        pair = (cell.get("row"), cell.get("column")) if isinstance(cell, Mapping) else cell
        if (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)
        ):
            listed.append((pair[0], pair[1]))
    if listed:
        return listed, 0
    found = _ACRO_CELLS.search(_string(result.get("message"), 100_000))
    if found is None:
        return [], 0
    shown = found.group(1)
    more = _ACRO_MORE.search(shown)
    return [(int(r), int(c)) for r, c in _ACRO_CELL.findall(shown)], int(more.group(1)) if more else 0


def acro_verdict(file: OutputFile) -> AcroVerdict | None:
    """ACRO's verdict on a file imported from an ACRO results folder; None for any other file."""
    stored = (file.spec or {}).get("acro")
    if not isinstance(stored, Mapping):
        return None
    checks = []
    results = stored.get("results")
    for result in results if isinstance(results, list) else ():
        if not isinstance(result, Mapping):
            continue
        rule, status = _string(result.get("rule"), 100), result.get("status")
        if not rule.startswith("acro.") or status not in ("fail", "warn", "pass"):
            continue
        positions, unlisted = _acro_positions(result) if status != "pass" else ([], 0)
        checks.append(AcroCheck(rule, str(status), _string(result.get("message")), positions, unlisted))
    comments = stored.get("comments")
    round_base = stored.get("round_base")
    mitigation = {
        "suppress": "ACRO suppressed the flagged cells",
        "round": "ACRO rounded the table"
        + (f" to a multiple of {round_base}" if isinstance(round_base, int) and round_base > 0 else ""),
    }.get(_string(stored.get("mitigation")), "")
    return AcroVerdict(
        version=_string(stored.get("version"), 50),
        status=_string(stored.get("status"), 20),
        uid=_string(stored.get("uid"), 200),
        type=_string(stored.get("type"), 100),
        method=_string(stored.get("method"), 100),
        summary=_string(stored.get("summary")),
        comments=[c for c in comments if isinstance(c, str) and c][:20] if isinstance(comments, list) else [],
        command=_string(stored.get("command")),
        exception=_string(stored.get("exception")),
        mitigation=mitigation,
        checksum=_string(stored.get("checksum"), 20),
        checks=checks,
    )


# --- previews -----------------------------------------------------------------------------------


@dataclass
class Note:
    """A failed or warned rule on a table's cells, numbered for the markers in the table."""

    number: int
    rule: str
    status: str
    message: str


@dataclass
class AcroNote:
    """A check ACRO failed or asked a review for, numbered A1, A2... for the markers in the table;
    ``places`` are its cells as this preview numbers them, ``outside`` positions that are no cell of
    the table as written, ``unlisted`` cells ACRO flagged that the verdict does not place."""

    number: int
    rule: str
    status: str
    message: str
    places: list[str] = field(default_factory=list)
    outside: int = 0
    unlisted: int = 0


@dataclass
class Cell:
    """One cell of a table's preview, with the notes of Enclave's checks and of ACRO's on it."""

    value: str
    notes: list[Note]
    acro: list[AcroNote]

    @property
    def flag(self) -> str:
        """``fail``, ``warn`` or empty: the worst of Enclave's checks on the cell."""
        if not self.notes:
            return ""
        return "fail" if any(n.status == "fail" for n in self.notes) else "warn"

    @property
    def acro_flag(self) -> str:
        """``fail``, ``warn`` or empty: the worst of ACRO's checks on the cell."""
        if not self.acro:
            return ""
        return "fail" if any(n.status == "fail" for n in self.acro) else "warn"


@dataclass
class Preview:
    """What the page shows of one file: ``kind`` is table, text, image or none (with ``problem``)."""

    kind: str
    problem: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[tuple[int, list[Cell]]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    unplaced: list[Note] = field(default_factory=list)
    acro_notes: list[AcroNote] = field(default_factory=list)
    page: int = 1
    has_next: bool = False
    here: set[int] = field(default_factory=set)
    acro_here: set[int] = field(default_factory=set)
    text: str = ""
    cut: bool = False


def _notes(
    file: OutputFile, skip: frozenset[str] = frozenset()
) -> tuple[list[Note], dict[tuple[int, str], list[Note]], list[Note]]:
    """The failed and warned results of a file, numbered; the cells each is on; those on no cell.
    Rules in ``skip`` (ACRO's, shown with ACRO's cells) are left out."""
    notes: list[Note] = []
    cells: dict[tuple[int, str], list[Note]] = {}
    unplaced: list[Note] = []
    for result in (file.checks or {}).get("results", ()):
        status = result.get("status")
        if status not in ("fail", "warn") or result.get("rule") in skip:
            continue
        note = Note(len(notes) + 1, str(result.get("rule", "")), status, str(result.get("message", "")))
        notes.append(note)
        placed = result.get("cells") or ()
        for cell in placed:
            cells.setdefault((int(cell["row"]), str(cell["column"])), []).append(note)
        if not placed:
            unplaced.append(note)
    return notes, cells, unplaced


def _acro_notes(
    verdict: AcroVerdict | None, header: list[str]
) -> tuple[list[AcroNote], dict[tuple[int, int], list[AcroNote]]]:
    """ACRO's failed and warned checks, numbered, and the cells of the CSV each is on, by row (from 1,
    as the preview numbers them) and column index. ACRO counts from 0 in its own table, which
    ``DataFrame.to_csv`` writes after a header row and with the index as the first column: ACRO's
    ``[r, c]`` is the preview's row ``r + 1`` and the CSV's column ``c + 1``."""
    notes: list[AcroNote] = []
    cells: dict[tuple[int, int], list[AcroNote]] = {}
    for check in verdict.checks if verdict is not None else ():
        if check.status not in ("fail", "warn"):
            continue
        note = AcroNote(len(notes) + 1, check.rule, check.status, check.message, unlisted=check.unlisted)
        notes.append(note)
        for row, column in check.positions:
            if column + 1 >= len(header):
                note.outside += 1
                continue
            note.places.append(f"row {row + 1}, column {header[column + 1]}")
            cells.setdefault((row + 1, column + 1), []).append(note)
    return notes, cells


def _table(file: OutputFile, content: bytes, page: int, verdict: AcroVerdict | None = None) -> Preview:
    """One page of a CSV/TSV: the header and at most :data:`TABLE_PAGE` rows, read no further than
    one row past the page (to know whether there is a next one)."""
    notes, cells, unplaced = _notes(file, verdict.rules if verdict is not None else frozenset())
    delimiter = "\t" if file.kind == FileKind.TSV else ","
    text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    header = next(reader, [])
    acro_notes, acro_cells = _acro_notes(verdict, header)
    start = (page - 1) * TABLE_PAGE
    wanted = list(itertools.islice(reader, start, start + TABLE_PAGE + 1))
    has_next = len(wanted) > TABLE_PAGE
    rows = []
    for offset, row in enumerate(wanted[:TABLE_PAGE]):
        number = start + offset + 1
        padded = row + [""] * (len(header) - len(row))
        names = header + [""] * (len(padded) - len(header))
        rows.append(
            (
                number,
                [
                    Cell(value, cells.get((number, name), []), acro_cells.get((number, index), []))
                    for index, (value, name) in enumerate(zip(padded, names, strict=True))
                ],
            )
        )
    if page > 1 and not rows:
        raise NotFound(f"{file.name} has no page {page}")
    return Preview(
        "table",
        header=header,
        rows=rows,
        notes=notes,
        unplaced=unplaced,
        acro_notes=acro_notes,
        page=page,
        has_next=has_next,
        here={n.number for _, row_cells in rows for c in row_cells for n in c.notes},
        acro_here={n.number for _, row_cells in rows for c in row_cells for n in c.acro},
    )


def _text(file: OutputFile, content: bytes) -> Preview:
    text = content.decode("utf-8")
    if file.kind == FileKind.JSON:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return Preview("text", text=text[:TEXT_PREVIEW], cut=len(text) > TEXT_PREVIEW)


def preview(
    services: Services,
    actor: Actor,
    output_id: int,
    file: OutputFile,
    page: int,
    verdict: AcroVerdict | None = None,
) -> Preview:
    """The preview of one held file; a file that cannot be shown gets a sentence instead."""
    kind = FileKind(file.kind) if file.kind in set(FileKind) else None
    if kind in IMAGE_KINDS or kind is FileKind.SVG:
        return Preview("image")
    try:
        content = services.outputs.held_file(actor, output_id, file.id).content
    except InternalError as exc:
        # The holding store's own integrity check: logged for the operators, a sentence for the reviewer.
        log.error("held file %s of output request %s cannot be read: %s", file.id, output_id, exc)
        problem = f"{file.name} cannot be shown: its held copy is missing or does not match its SHA-256"
        return Preview("none", problem=problem)
    try:
        if kind in (FileKind.CSV, FileKind.TSV):
            return _table(file, content, page, verdict)
        return _text(file, content)
    except (UnicodeDecodeError, ValueError, csv.Error, RecursionError):
        # json.JSONDecodeError is a ValueError
        problem = f"{file.name} cannot be shown in the page: its content is not readable"
        return Preview("none", problem=problem)


# --- the request page -----------------------------------------------------------------------------


def _viewable(services: Services, actor: Actor, output_id: int) -> OutputView:
    """The request as this reviewer may see it; a member of its project is refused (403)."""
    return services.outputs.review_view(actor, output_id)


@dataclass
class Typed:
    """What the reviewer typed into the decision form, to show it again: per file id."""

    decisions: dict[int, str] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)
    overrides: dict[tuple[int, int], str] = field(default_factory=dict)


def _failed(file: OutputFile) -> list[str]:
    """The failed rules of a file, in a fixed order (a rule's place names its override field)."""
    return sorted(file.failed_rules)


@dataclass
class Side:
    """One independent reviewer's decision on one file, with its comment and overrides."""

    reviewer: str
    decision: Decision
    comment: str
    overrides: list[CheckOverride]


@dataclass
class Compared:
    """The two independent reviews of one file side by side. ``standing`` is ``disagree`` (they
    differ), ``open`` (both approve, but a failed check is not overridden: ``open_rules``) or
    ``agree`` (their decision stands)."""

    file: str
    sides: tuple[Side, Side]
    standing: str
    open_rules: list[str] = field(default_factory=list)


@dataclass
class Consolidation:
    """A request that needs a consolidating decision, as a reviewer sees it once both independent
    reviews are in (they are no longer blind): the two reviews file by file; whether this reviewer
    is the one to decide (``mine``, the service's ``can_review``) or gave one of the two reviews."""

    version: int
    reviewers: tuple[str, str]
    files: list[Compared]
    mine: bool
    reviewed: bool

    @property
    def disagree(self) -> list[str]:
        return [c.file for c in self.files if c.standing == "disagree"]

    @property
    def open(self) -> list[Compared]:
        return [c for c in self.files if c.standing == "open"]

    def of(self, name: str) -> Compared | None:
        return next((c for c in self.files if c.file == name), None)


def _side(review: Review, name: str) -> Side | None:
    found = next((d for d in review.decisions if d.file == name), None)
    if found is None:
        return None
    overrides = [o for o in review.overrides if o.file == name]
    return Side(review.reviewer, Decision(found.decision), found.comment, overrides)


def _consolidation(view: OutputView, actor: Actor) -> Consolidation | None:
    """The two reviews of a request that needs a consolidating decision; None in any other state,
    or while the viewer may not see both (the service decides what is visible)."""
    item = view.request
    if item.state is not OutputState.NEEDS_CONSOLIDATION:
        return None
    independent = [r for r in view.reviews if r.version == item.version and not r.consolidating][:2]
    if len(independent) < 2:
        return None
    first, second = independent
    # The service's outcome says which files are unsettled; the portal only names why.
    unsettled = {f.file for f in view.outcome.files if f.decision is None} if view.outcome else set()
    compared = []
    for file in view.current_files:
        a, b = _side(first, file.name), _side(second, file.name)
        if a is None or b is None:
            continue
        if a.decision != b.decision:
            compared.append(Compared(file.name, (a, b), "disagree"))
        elif file.name in unsettled:
            overridden = {o.rule for o in (*a.overrides, *b.overrides)}
            compared.append(Compared(file.name, (a, b), "open", sorted(file.failed_rules - overridden)))
        else:
            compared.append(Compared(file.name, (a, b), "agree"))
    viewer = actor.user.username if actor.user is not None else ""
    return Consolidation(
        version=item.version,
        reviewers=(first.reviewer, second.reviewer),
        files=compared,
        mine=view.can_review,
        reviewed=viewer in (first.reviewer, second.reviewer),
    )


def _own_checks(file: OutputFile, verdict: AcroVerdict | None) -> list[Mapping[str, Any]]:
    """Enclave's own check results of a file: its record without ACRO's rules (shown with ACRO's verdict)."""
    skip = verdict.rules if verdict is not None else frozenset()
    return [r for r in (file.checks or {}).get("results", ()) if r.get("rule") not in skip]


def _request_page(
    request: Request,
    services: Services,
    actor: Actor,
    view: OutputView,
    *,
    file_id: int | None = None,
    page: int = 1,
    typed: Typed | None = None,
    errors: FormErrors | None = None,
    status: int = 200,
) -> HTMLResponse:
    current = view.current_files
    verdicts = {f.id: acro_verdict(f) for f in current}
    previews = {
        f.id: preview(services, actor, view.request.id, f, page if f.id == file_id else 1, verdicts[f.id])
        for f in current
    }
    own_checks = {f.id: _own_checks(f, verdicts[f.id]) for f in current}
    return _render(
        request,
        "reviewer/request.html",
        title=f"Output request {view.request.id}",
        view=view,
        item=view.request,
        files=current,
        previews=previews,
        verdicts=verdicts,
        own_checks=own_checks,
        acro_tags=ACRO_TAGS,
        consolidation=_consolidation(view, actor),
        failed={f.id: _failed(f) for f in current},
        worst=worst_check(current),
        typed=typed or Typed(),
        errors=errors or FormErrors(),
        status=status,
    )


@router.get("/reviewer/outputs/{output_id}", response_class=HTMLResponse)
def request_page(
    request: Request,
    output_id: Id,
    services: ServicesDep,
    actor: ReviewerPage,
    file: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    view = _viewable(services, actor, output_id)
    if file is not None and file not in {f.id for f in view.current_files}:
        raise NotFound(f"output request {output_id} has no file {file} in its current version")
    return _request_page(request, services, actor, view, file_id=file, page=page)


@router.get("/reviewer/outputs/{output_id}/files/{file_id}/held", response_class=Response)
def held(output_id: Id, file_id: Id, services: ServicesDep, actor: ReviewerPage) -> Response:
    """A held file's bytes, as the API's ``held`` route serves them: images are shown in the page,
    anything else is downloaded; nothing in it can run (sandboxed, no sniffing)."""
    return file_response(services.outputs.held_file(actor, output_id, file_id), inline=True)


# --- decisions ------------------------------------------------------------------------------------


def _read(form: Any, files: tuple[OutputFile, ...]) -> Typed:
    typed = Typed()
    for f in files:
        typed.decisions[f.id] = text_field(form, f"decision-{f.id}", 40)
        typed.comments[f.id] = text_field(form, f"comment-{f.id}", 5000)
        for index, _ in enumerate(_failed(f)):
            typed.overrides[(f.id, index)] = text_field(form, f"override-{f.id}-{index}", 5000)
    return typed


def _error_field(message: str, files: tuple[OutputFile, ...]) -> str:
    """Which field a refusal is about, so the message stands beside it: the file it names."""
    lowered = message.lower()
    for f in sorted(files, key=lambda f: len(f.name), reverse=True):
        if f.name.lower() not in lowered:
            continue
        if "overrid" in lowered:
            for index, rule in enumerate(_failed(f)):
                if rule.lower() in lowered:
                    return f"override-{f.id}-{index}"
        if "comment" in lowered:
            return f"comment-{f.id}"
        return f"decision-{f.id}"
    return f"decision-{files[0].id}" if files else "decisions"


@router.post("/reviewer/outputs/{output_id}", response_class=HTMLResponse)
def review(
    request: Request, output_id: Id, services: ServicesDep, actor: ReviewerPage, form: CheckedForm
) -> Response:
    view = _viewable(services, actor, output_id)
    files = view.current_files
    typed = _read(form, files)
    errors = FormErrors()
    decisions = []
    overrides = []
    for f in files:
        chosen = typed.decisions[f.id]
        if chosen not in set(Decision):
            message = f"Select whether you approve {f.name}, ask for changes or reject it"
            errors.add(f"decision-{f.id}", message)
            continue
        decisions.append(FileDecision(f.name, Decision(chosen), typed.comments[f.id]))
        for index, rule in enumerate(_failed(f)):
            reason = typed.overrides[(f.id, index)]
            if reason:
                overrides.append(CheckOverride(f.name, rule, reason))
    if errors:
        return _request_page(request, services, actor, view, typed=typed, errors=errors, status=400)
    try:
        services.outputs.review(actor, output_id, decisions, overrides)
    except NotFound:
        raise
    except EnclaveError as exc:
        errors.add(_error_field(exc.detail, files), refusal_sentence(exc))
        view = _viewable(services, actor, output_id)
        return _request_page(request, services, actor, view, typed=typed, errors=errors, status=400)
    return RedirectResponse(f"{PREFIX}/reviewer/outputs/{output_id}?done=reviewed", status_code=303)
