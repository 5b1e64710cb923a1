"""Use cases of access requests and projects.

Every transition is checked against the state machine (``access_states``), performed with its
audit event in one transaction, and refused with a sentence (nothing changed) otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from enclave.domain.access.drafts import (
    MAX_DRAFTS,
    SECTION,
    Draft,
    amendment_answers,
    answers_of,
    check_section,
)
from enclave.domain.access.form import (
    AccessRequestForm,
    CatalogView,
    PersonView,
    ProjectRole,
    check_against,
)
from enclave.domain.access.requests import (
    AccessRequest,
    Decision,
    Part,
    Project,
    Relation,
    RequestQuery,
    approved_scope,
    can_view_request,
    check_can_decide,
    merge_conditions,
    narrow,
    parties,
    seen_through,
    unaccredited,
)
from enclave.domain.access.states import (
    PROJECT_MACHINE,
    REQUEST_MACHINE,
    Party,
    ProjectState,
    RequestState,
)
from enclave.domain.audit.chain import AuditEvent
from enclave.domain.catalog.datasets import PERSON_COLUMN, check_custodian_of
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.policy import can_view_project, check_token_scope, project_parties
from enclave.domain.ports import UnitOfWork, UnitOfWorkFactory
from enclave.domain.queries.budget import Budget

MAX_REASON = 2000


class AccessService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock = utcnow) -> None:
        self._uow = uow
        self._clock = clock

    def today(self) -> date:
        """Today, by the service's clock (a project expires the day after its end date)."""
        return self._clock().date()

    # --- helpers --------------------------------------------------------------------------

    def _load(self, uow: UnitOfWork, actor: Actor, request_id: int, *, lock: bool = False) -> AccessRequest:
        request = uow.access.get_request(request_id, lock=lock)
        if request is None or not can_view_request(actor, request):
            raise NotFound(f"no access request {request_id} that you can see")
        return request

    def _party(self, actor: Actor, request: AccessRequest, target: RequestState) -> Party:
        """The party the actor acts as for this transition (the first that the machine allows)."""
        transition = REQUEST_MACHINE.find(request.state.value, target.value)
        mine = parties(actor, request)
        if transition is not None:
            for party in sorted(mine):
                if party in transition.parties:
                    return party
        return next(iter(sorted(mine)), Party.APPLICANT)

    def _catalog_view(self, uow: UnitOfWork) -> CatalogView:
        columns: dict[str, frozenset[str]] = {}
        limits: dict[str, Decimal] = {}
        for dataset in uow.catalog.list_datasets():
            if dataset.current_version is None:
                continue
            version = uow.catalog.get_version(dataset.id, dataset.current_version)
            assert version is not None
            columns[dataset.name] = frozenset(c.name for c in version.columns if c.name != PERSON_COLUMN)
            limits[dataset.name] = dataset.max_epsilon
        return CatalogView(columns=columns, max_epsilon=limits)

    def _people(self, uow: UnitOfWork, form: AccessRequestForm) -> dict[str, PersonView]:
        out = {}
        for member in form.team:
            user = uow.users.get_by_username(member.username)
            out[member.username] = PersonView(
                exists=user is not None and user.active,
                accredited_until=user.accreditation_expires if user is not None else None,
            )
        return out

    def _validate(self, uow: UnitOfWork, form: AccessRequestForm) -> tuple[Part, ...]:
        problems = check_against(form, self._catalog_view(uow), self._people(uow, form), on=self.today())
        if problems:
            raise InvalidInput("the request cannot be submitted: " + "; ".join(problems))
        parts = []
        for wanted in form.datasets:
            dataset = uow.catalog.get_dataset(wanted.dataset)
            assert dataset is not None
            parts.append(
                Part(dataset=dataset.name, custodian_id=dataset.custodian_id, custodian=dataset.custodian)
            )
        return tuple(parts)

    def _transition(
        self,
        uow: UnitOfWork,
        actor: Actor,
        request: AccessRequest,
        target: RequestState,
        *,
        party: Party | None = None,
        form: AccessRequestForm | None = None,
        parts: tuple[Part, ...] | None = None,
        project_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> AccessRequest:
        transition = REQUEST_MACHINE.check(
            request.state.value, target.value, party or self._party(actor, request, target)
        )
        return uow.access.update_request(
            request.id,
            state=target,
            form=form or request.form,
            parts=parts if parts is not None else request.parts,
            updated_at=self._clock(),
            project_id=project_id if project_id is not None else request.project_id,
            audit=AuditEvent(
                transition.event,
                actor.name,
                "access_request",
                str(request.id),
                {"from": request.state, "to": target, **(details or {})},
            ),
        )

    # --- the applicant ----------------------------------------------------------------------

    def create(self, actor: Actor, form: AccessRequestForm, *, submit: bool) -> AccessRequest:
        """A researcher creates a draft (and, with ``submit``, submits it at once)."""
        with self._uow() as uow:
            return self._create(uow, actor, form, submit=submit)

    def _create(
        self, uow: UnitOfWork, actor: Actor, form: AccessRequestForm, *, submit: bool
    ) -> AccessRequest:
        _check_applicant(actor)
        assert actor.user is not None
        if actor.user.username not in {m.username for m in form.team}:
            raise InvalidInput("the applicant must be a member of the team")
        request = uow.access.add_request(
            applicant_id=actor.user.id,
            state=RequestState.DRAFT,
            form=form,
            parts=(),
            created_at=self._clock(),
            amends_project_id=None,
            audit=AuditEvent(
                "access_request.created", actor.name, "access_request", "new", {"title": form.title}
            ),
        )
        if submit:
            request = self._transition(
                uow, actor, request, RequestState.SUBMITTED, parts=self._validate(uow, form)
            )
        return request

    def amend(self, actor: Actor, project_id: int, form: AccessRequestForm) -> AccessRequest:
        """The project lead asks to change an active project (add members, extend the end date, top up
        the budget, widen the scope): a new request, submitted at once, decided by the custodians of
        every dataset it names exactly as a first request is; on approval the project is updated."""
        with self._uow() as uow:
            return self._amend(uow, actor, project_id, form)

    def _check_amendable(self, uow: UnitOfWork, actor: Actor, project_id: int) -> Project:
        project = uow.access.get_project(project_id)
        if project is None or not self._can_view_project(uow, actor, project):
            raise NotFound(f"no project {project_id} that you can see")
        if actor.user is None or project.members.get(actor.user.username) != "lead":
            raise PermissionDenied("only the project's lead can ask for an amendment")
        state = project.effective_state(self.today())
        if state is not ProjectState.ACTIVE:
            raise InvalidState(f"project {project_id} is {state}: only an active project can be amended")
        return project

    def _amend(
        self, uow: UnitOfWork, actor: Actor, project_id: int, form: AccessRequestForm
    ) -> AccessRequest:
        project = self._check_amendable(uow, actor, project_id)
        assert actor.user is not None
        if form.start_date != project.start_date:
            raise InvalidInput(f"an amendment keeps the project's start date ({project.start_date})")
        if form.budget.epsilon < project.epsilon:
            raise InvalidInput(
                f"an amendment can top up the budget, not reduce it below the {project.epsilon} approved"
            )
        missing = sorted(set(project.members) - {m.username for m in form.team})
        if missing:
            raise InvalidInput(
                f"an amendment cannot remove members ({', '.join(missing)}); close and reapply"
            )
        request = uow.access.add_request(
            applicant_id=actor.user.id,
            state=RequestState.DRAFT,
            form=form,
            parts=(),
            created_at=self._clock(),
            amends_project_id=project.id,
            audit=AuditEvent(
                "access_request.created",
                actor.name,
                "access_request",
                "new",
                {"amends_project": project.id},
            ),
        )
        return self._transition(uow, actor, request, RequestState.SUBMITTED, parts=self._validate(uow, form))

    def edit(self, actor: Actor, request_id: int, form: AccessRequestForm) -> AccessRequest:
        """Edit a draft, or a request sent back for changes."""
        with self._uow() as uow:
            return self._edit(uow, actor, request_id, form)

    def _editable(self, uow: UnitOfWork, actor: Actor, request_id: int) -> AccessRequest:
        request = self._load(uow, actor, request_id, lock=True)
        if Party.APPLICANT not in parties(actor, request):
            raise PermissionDenied("only the applicant can edit a request")
        if request.state not in (RequestState.DRAFT, RequestState.CHANGES_REQUESTED):
            raise InvalidState(
                f"request {request_id} is {request.state}: only drafts and requests sent back for"
                " changes can be edited"
            )
        return request

    def _edit(self, uow: UnitOfWork, actor: Actor, request_id: int, form: AccessRequestForm) -> AccessRequest:
        request = self._editable(uow, actor, request_id)
        if actor.user is not None and actor.user.username not in {m.username for m in form.team}:
            raise InvalidInput("the applicant must be a member of the team")
        return uow.access.update_request(
            request.id,
            state=request.state,
            form=form,
            parts=request.parts,
            updated_at=self._clock(),
            project_id=None,
            audit=AuditEvent("access_request.edited", actor.name, "access_request", str(request.id)),
        )

    def submit(self, actor: Actor, request_id: int) -> AccessRequest:
        """Submit a draft, or resubmit after changes (every part goes back to pending)."""
        with self._uow() as uow:
            return self._submit(uow, actor, request_id)

    def _submit(self, uow: UnitOfWork, actor: Actor, request_id: int) -> AccessRequest:
        request = self._load(uow, actor, request_id, lock=True)
        parts = self._validate(uow, request.form)
        return self._transition(uow, actor, request, RequestState.SUBMITTED, parts=parts)

    def withdraw(self, actor: Actor, request_id: int, reason: str = "") -> AccessRequest:
        with self._uow() as uow:
            request = self._load(uow, actor, request_id, lock=True)
            return self._transition(
                uow, actor, request, RequestState.WITHDRAWN, details={"reason": reason[:MAX_REASON]}
            )

    # --- applications in progress (question pages; enclave.domain.access.drafts) ---------------

    def start_draft(
        self, actor: Actor, *, request_id: int | None = None, amends_project_id: int | None = None
    ) -> Draft:
        """Open an application in progress: empty (the applicant as lead), from one of the applicant's
        requests that may be edited, or from an active project the applicant leads. An application
        already open for the same request or project is returned instead of a second one."""
        _check_applicant(actor)
        assert actor.user is not None
        if request_id is not None and amends_project_id is not None:
            raise InvalidInput("an application edits a request or amends a project, not both")
        with self._uow() as uow:
            mine = uow.access.find_drafts(actor.user.id)
            if request_id is not None:
                request = self._editable(uow, actor, request_id)
                if request.amends_project_id is not None:
                    amends_project_id = request.amends_project_id
                answers = answers_of(request.form)
            elif amends_project_id is not None:
                project = self._check_amendable(uow, actor, amends_project_id)
                answers = amendment_answers(project, uow.access.get_request(project.request_id))
            else:
                answers = {"team": [{"username": actor.user.username, "role": ProjectRole.LEAD.value}]}
            for draft in mine:
                if (draft.request_id, draft.amends_project_id) == (request_id, amends_project_id) and (
                    request_id is not None or amends_project_id is not None
                ):
                    return draft
            if len(mine) >= MAX_DRAFTS:
                raise InvalidInput(
                    f"you have {len(mine)} applications in progress: submit or delete some first"
                )
            return uow.access.add_draft(
                owner_id=actor.user.id,
                answers=answers,
                request_id=request_id,
                amends_project_id=amends_project_id,
                at=self._clock(),
                audit=AuditEvent(
                    "access_draft.started",
                    actor.name,
                    "access_draft",
                    "new",
                    {k: v for k, v in (("request", request_id), ("amends_project", amends_project_id)) if v},
                ),
            )

    def _own_draft(self, uow: UnitOfWork, actor: Actor, draft_id: int, *, lock: bool = False) -> Draft:
        draft = uow.access.get_draft(draft_id, lock=lock)
        # Only its owner, as themselves (never through a workspace token), ever sees a draft.
        if (
            draft is None
            or actor.user is None
            or actor.project_scope is not None
            or draft.owner_id != actor.user.id
        ):
            raise NotFound(f"no application {draft_id} of yours")
        return draft

    def draft(self, actor: Actor, draft_id: int) -> Draft:
        with self._uow(write=False) as uow:
            return self._own_draft(uow, actor, draft_id)

    def drafts(self, actor: Actor) -> list[Draft]:
        """The actor's applications in progress, the most recently changed first."""
        if actor.user is None or actor.project_scope is not None:
            return []
        with self._uow(write=False) as uow:
            return uow.access.find_drafts(actor.user.id)

    def save_section(self, actor: Actor, draft_id: int, section: str, raw: Mapping[str, Any]) -> Draft:
        """Check one section's answers (``InvalidAnswers`` naming each field's problem) and keep them."""
        found = SECTION.get(section)
        if found is None:
            raise NotFound(f"the application has no section {section!r}")
        with self._uow() as uow:
            draft = self._own_draft(uow, actor, draft_id, lock=True)
            answers = check_section(found, raw)
            return uow.access.save_draft(
                draft.id,
                {**draft.answers, **answers},
                self._clock(),
                # Which section was saved, never the answers (they are in the request once submitted).
                audit=AuditEvent(
                    "access_draft.saved", actor.name, "access_draft", str(draft.id), {"section": found.key}
                ),
            )

    def submit_draft(self, actor: Actor, draft_id: int) -> AccessRequest:
        """Submit a complete application: a new request, the request it edits (resubmitted), or the
        amendment of its project; the draft is gone in the same transaction. Refused, with nothing
        changed, if a section is unanswered or the form, catalog or accounts refuse it."""
        with self._uow() as uow:
            draft = self._own_draft(uow, actor, draft_id, lock=True)
            form = draft.form()
            if draft.request_id is not None:
                self._edit(uow, actor, draft.request_id, form)
                request = self._submit(uow, actor, draft.request_id)
            elif draft.amends_project_id is not None:
                request = self._amend(uow, actor, draft.amends_project_id, form)
            else:
                request = self._create(uow, actor, form, submit=True)
            uow.access.delete_draft(
                draft.id,
                audit=AuditEvent(
                    "access_draft.submitted",
                    actor.name,
                    "access_draft",
                    str(draft.id),
                    {"access_request": request.id},
                ),
            )
            return request

    def discard_draft(self, actor: Actor, draft_id: int) -> None:
        """Delete an application in progress (a request it was editing is left as it was)."""
        with self._uow() as uow:
            draft = self._own_draft(uow, actor, draft_id, lock=True)
            uow.access.delete_draft(
                draft.id,
                audit=AuditEvent("access_draft.discarded", actor.name, "access_draft", str(draft.id)),
            )

    # --- the custodians ---------------------------------------------------------------------

    def start_review(self, actor: Actor, request_id: int) -> AccessRequest:
        with self._uow() as uow:
            request = self._load(uow, actor, request_id, lock=True)
            return self._transition(uow, actor, request, RequestState.UNDER_REVIEW)

    def decide(
        self,
        actor: Actor,
        request_id: int,
        dataset: str,
        decision: Decision,
        reason: str,
        *,
        columns: list[str] | None = None,
        epsilon: Decimal | None = None,
        end_date: date | None = None,
        conditions: dict[str, Any] | None = None,
    ) -> AccessRequest:
        """A custodian decides on their dataset's part. The last approval approves the request and
        creates the project; a rejection rejects it; a request for changes sends it back."""
        if decision is Decision.PENDING:
            raise InvalidInput("a decision is approved, rejected or changes_requested")
        if not reason.strip():
            raise InvalidInput("a decision needs a reason the applicant can read")
        if conditions and set(conditions) - {"min_count", "note"}:
            raise InvalidInput("conditions may set min_count (a stricter small-count threshold) and a note")
        if conditions and "min_count" in conditions:
            count = conditions["min_count"]
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
                raise InvalidInput("min_count must be a whole number from 1 to 1000")
        with self._uow() as uow:
            request = self._load(uow, actor, request_id, lock=True)
            if request.amends_project_id is not None:
                # Lock order: domain rows before the audit head (see enclave/domain/ports.py).
                uow.access.get_project(request.amends_project_id, lock=True)
            part = request.part(dataset)
            check_can_decide(actor, request, part)
            if request.state not in (RequestState.SUBMITTED, RequestState.UNDER_REVIEW):
                raise InvalidState(f"request {request_id} is {request.state}: there is nothing to decide")
            if part.decision is not Decision.PENDING:
                raise InvalidState(f"you already decided on {dataset} ({part.decision}); a decision is final")
            if request.state is RequestState.SUBMITTED:
                request = self._transition(
                    uow, actor, request, RequestState.UNDER_REVIEW, party=Party.CUSTODIAN
                )
            decided = replace(
                narrow(request, part, columns=columns, epsilon=epsilon, end_date=end_date)
                if decision is Decision.APPROVED
                else part,
                decision=decision,
                reason=reason[:MAX_REASON],
                conditions=dict(conditions or {}),
                decided_by=actor.name,
                decided_at=self._clock(),
            )
            parts = tuple(decided if p.dataset == dataset else p for p in request.parts)
            request = uow.access.update_request(
                request.id,
                state=request.state,
                form=request.form,
                parts=parts,
                updated_at=self._clock(),
                project_id=None,
                audit=AuditEvent(
                    "access_request.part_decided",
                    actor.name,
                    "access_request",
                    str(request.id),
                    {"dataset": dataset, "decision": decision, "reason": reason[:MAX_REASON]},
                ),
            )
            if decision is Decision.REJECTED:
                return self._transition(uow, actor, request, RequestState.REJECTED, party=Party.CUSTODIAN)
            if decision is Decision.CHANGES_REQUESTED:
                return self._transition(
                    uow, actor, request, RequestState.CHANGES_REQUESTED, party=Party.CUSTODIAN
                )
            if all(p.decision is Decision.APPROVED for p in request.parts):
                return self._approve(uow, actor, request)
            return request

    def _approve(self, uow: UnitOfWork, actor: Actor, request: AccessRequest) -> AccessRequest:
        names = [m.username for m in request.form.team]
        lapsed = unaccredited([uow.users.get_by_username(n) for n in names], names, self.today())
        if lapsed:
            raise InvalidInput(
                "the request cannot be approved: no valid accreditation for "
                + ", ".join(lapsed)
                + "; renew it, then decide again"
            )
        scope, epsilon, end_date = approved_scope(request)
        if request.amends_project_id is not None:
            return self._apply_amendment(uow, actor, request, scope, epsilon, end_date)
        project = uow.access.add_project(
            Project(
                id=0,
                request_id=request.id,
                title=request.form.title,
                lay_summary=request.form.lay_summary,
                organisation=request.form.organisation,
                state=ProjectState.ACTIVE,
                start_date=request.form.start_date,
                end_date=end_date,
                epsilon=epsilon,
                delta=request.form.budget.delta,
                scope=scope,
                conditions=merge_conditions(request.parts),
                members={m.username: m.role.value for m in request.form.team},
                created_at=self._clock(),
            ),
            audit=AuditEvent(
                "project.created",
                "system",
                "project",
                "new",
                {"request": request.id, "scope": scope, "epsilon": epsilon, "end_date": end_date},
            ),
        )
        granted = Budget(project.epsilon, project.delta or Decimal(0))
        uow.budgets.open_account(
            project.id,
            granted,
            self._clock(),
            audit=AuditEvent(
                "budget.granted",
                "system",
                "project",
                str(project.id),
                {"epsilon": granted.epsilon, "delta": granted.delta, "request": request.id},
            ),
        )
        return self._transition(
            uow,
            actor,
            request,
            RequestState.APPROVED,
            party=Party.SYSTEM,
            project_id=project.id,
            details={"project": project.id},
        )

    def _apply_amendment(
        self,
        uow: UnitOfWork,
        actor: Actor,
        request: AccessRequest,
        scope: dict[str, list[str]],
        epsilon: Decimal,
        end_date: date,
    ) -> AccessRequest:
        assert request.amends_project_id is not None
        project = uow.access.get_project(request.amends_project_id, lock=True)
        assert project is not None
        state = project.effective_state(self.today())
        if state is not ProjectState.ACTIVE:
            raise InvalidState(f"project {project.id} is {state}: the amendment can no longer be applied")
        conditions = merge_conditions(request.parts)
        if "min_count" in project.conditions:
            conditions["min_count"] = max(
                int(project.conditions["min_count"]), int(conditions.get("min_count", 0))
            )
        amended = replace(
            project,
            scope=scope,
            epsilon=max(epsilon, project.epsilon),
            delta=request.form.budget.delta,
            end_date=max(end_date, project.end_date),
            members={m.username: m.role.value for m in request.form.team},
            conditions=conditions,
        )
        top_up_epsilon = amended.epsilon - project.epsilon
        top_up_delta = max((amended.delta or Decimal(0)) - (project.delta or Decimal(0)), Decimal(0))
        if top_up_epsilon > 0 or top_up_delta > 0:
            top_up = Budget(top_up_epsilon, top_up_delta)
            uow.budgets.grant(
                project.id,
                top_up,
                self._clock(),
                audit=AuditEvent(
                    "budget.granted",
                    "system",
                    "project",
                    str(project.id),
                    {"epsilon": top_up.epsilon, "delta": top_up.delta, "request": request.id, "top_up": True},
                ),
            )
        uow.access.update_project(
            amended,
            self._clock(),
            audit=AuditEvent(
                "project.amended",
                "system",
                "project",
                str(project.id),
                {
                    "request": request.id,
                    "epsilon": {"from": project.epsilon, "to": amended.epsilon},
                    "end_date": {"from": project.end_date, "to": amended.end_date},
                    "members": sorted(amended.members),
                    "scope": scope,
                },
            ),
        )
        return self._transition(
            uow,
            actor,
            request,
            RequestState.APPROVED,
            party=Party.SYSTEM,
            project_id=project.id,
            details={"project": project.id, "amendment": True},
        )

    # --- reading ------------------------------------------------------------------------------

    def get(self, actor: Actor, request_id: int) -> AccessRequest:
        with self._uow(write=False) as uow:
            return self._load(uow, actor, request_id)

    @staticmethod
    def _query(actor: Actor, *, deciding: bool, **page: Any) -> RequestQuery | None:
        """The repository query for the requests ``actor`` may see (``deciding``: only those with a
        part on one of the actor's datasets); ``None`` when there is none to see."""
        through = seen_through(actor)
        name = actor.user.username if actor.user is not None else None
        if deciding:
            custodian = actor.has_role(Role.CUSTODIAN) if through is None else Relation.CUSTODIAN in through
            if name is None or not custodian:
                return None
            return RequestQuery(party=name, through=frozenset({Relation.CUSTODIAN}), **page)
        if through is None:
            return RequestQuery(**page)
        if not through or name is None:
            return None
        return RequestQuery(party=name, through=through, **page)

    def list_requests(
        self,
        actor: Actor,
        *,
        state: RequestState | None = None,
        deciding: bool = False,
        newest_first: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """The requests ``actor`` may see, oldest first unless ``newest_first``; ``deciding``: only
        those with a part on one of the actor's datasets (the custodian's queue)."""
        query = self._query(
            actor, deciding=deciding, state=state, newest_first=newest_first, offset=offset, limit=limit
        )
        if query is None:
            return []
        with self._uow(write=False) as uow:
            # The query applies the rule; checking each row again costs nothing and keeps one rule.
            return [r for r in uow.access.find_requests(query) if can_view_request(actor, r)]

    def count_requests(
        self, actor: Actor, *, state: RequestState | None = None, deciding: bool = False
    ) -> int:
        query = self._query(actor, deciding=deciding, state=state)
        if query is None:
            return 0
        with self._uow(write=False) as uow:
            return uow.access.count_requests(query)

    def custodian_projects(self, actor: Actor) -> list[Project]:
        """The projects, newest first, that a request with a part on one of the actor's datasets
        created or amended, as far as the actor may see them."""
        query = self._query(actor, deciding=True)
        if query is None:
            return []
        with self._uow(write=False) as uow:
            found = (
                uow.access.get_project(pid)
                for pid in sorted(uow.access.find_request_projects(query), reverse=True)
            )
            return [p for p in found if p is not None and self._can_view_project(uow, actor, p)]

    # --- projects -----------------------------------------------------------------------------

    @staticmethod
    def _custodian_ids(uow: UnitOfWork, project: Project) -> frozenset[int]:
        """The custodians of the datasets in the project's scope."""
        datasets = (uow.catalog.get_dataset(name) for name in project.scope)
        return frozenset(d.custodian_id for d in datasets if d is not None)

    def _project_parties(self, uow: UnitOfWork, actor: Actor, project: Project) -> frozenset[Party]:
        return project_parties(actor, project, self._custodian_ids(uow, project))

    def _can_view_project(self, uow: UnitOfWork, actor: Actor, project: Project) -> bool:
        return can_view_project(actor, project, self._custodian_ids(uow, project))

    def projects(self, actor: Actor) -> list[Project]:
        with self._uow(write=False) as uow:
            return [p for p in uow.access.list_projects() if self._can_view_project(uow, actor, p)]

    def project(self, actor: Actor, project_id: int) -> Project:
        check_token_scope(actor, project_id)
        with self._uow(write=False) as uow:
            project = uow.access.get_project(project_id)
            if project is None or not self._can_view_project(uow, actor, project):
                raise NotFound(f"no project {project_id} that you can see")
            return project

    def set_project_state(self, actor: Actor, project_id: int, target: ProjectState, reason: str) -> Project:
        """Suspend, reinstate, revoke or close a project; takes effect on the next request."""
        if not reason.strip():
            raise InvalidInput("say why, for the audit log and the project's members")
        with self._uow() as uow:
            project = uow.access.get_project(project_id, lock=True)
            if project is None or not self._can_view_project(uow, actor, project):
                raise NotFound(f"no project {project_id} that you can see")
            current = project.effective_state(self.today())
            mine = self._project_parties(uow, actor, project)
            transition = PROJECT_MACHINE.find(current.value, target.value)
            party = next((p for p in sorted(mine) if transition and p in transition.parties), Party.APPLICANT)
            transition = PROJECT_MACHINE.check(current.value, target.value, party)
            return uow.access.set_project_state(
                project.id,
                target,
                self._clock(),
                audit=AuditEvent(
                    transition.event,
                    actor.name,
                    "project",
                    str(project.id),
                    {"from": current, "to": target, "reason": reason[:MAX_REASON]},
                ),
            )

    def expire_due(self) -> list[int]:
        """Record the expiry of every project whose end date has passed (expiry already counts
        before this runs: see ``Project.effective_state``)."""
        today = self.today()
        expired = []
        with self._uow() as uow:
            for project in uow.access.list_projects():
                if (
                    project.state is not ProjectState.EXPIRED
                    and project.effective_state(today) is ProjectState.EXPIRED
                ):
                    transition = PROJECT_MACHINE.check(
                        project.state.value, ProjectState.EXPIRED.value, Party.SYSTEM
                    )
                    uow.access.set_project_state(
                        project.id,
                        ProjectState.EXPIRED,
                        self._clock(),
                        audit=AuditEvent(
                            transition.event,
                            "system",
                            "project",
                            str(project.id),
                            {"end_date": project.end_date},
                        ),
                    )
                    expired.append(project.id)
        return expired

    def register(
        self, *, newest_first: bool = False, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The public register of approved projects (no login): what, who, which data, when, status."""
        today = self.today()
        with self._uow(write=False) as uow:
            found = uow.access.list_projects(newest_first=newest_first, offset=offset, limit=limit)
            return [_register_entry(p, today) for p in found]

    def register_size(self) -> int:
        with self._uow(write=False) as uow:
            return uow.access.count_projects()

    def register_entry(self, project_id: int) -> dict[str, Any] | None:
        """One project's entry in the public register, or ``None``."""
        with self._uow(write=False) as uow:
            found = uow.access.get_project(project_id)
            return _register_entry(found, self.today()) if found is not None else None

    def set_dataset_policy(self, actor: Actor, dataset: str, max_epsilon: Decimal) -> None:
        """A custodian caps the epsilon any one request may ask of their dataset."""
        if not (Decimal(0) < max_epsilon <= Decimal(1000)):
            raise InvalidInput("max_epsilon must be above 0 and at most 1000")
        with self._uow() as uow:
            found = uow.catalog.get_dataset(dataset)
            if found is None:
                raise NotFound(f"no dataset named {dataset!r}")
            check_custodian_of(actor, found)
            uow.catalog.set_dataset_policy(
                found.id,
                max_epsilon,
                audit=AuditEvent(
                    "dataset.policy_set",
                    actor.name,
                    "dataset",
                    dataset,
                    {"max_epsilon": max_epsilon, "previous": found.max_epsilon},
                ),
            )


def _register_entry(project: Project, today: date) -> dict[str, Any]:
    """What the public may know of a project: never its members or its budget."""
    return {
        "id": project.id,
        "title": project.title,
        "lay_summary": project.lay_summary,
        "organisation": project.organisation,
        "datasets": sorted(project.scope),
        "start_date": project.start_date.isoformat(),
        "end_date": project.end_date.isoformat(),
        "status": project.effective_state(today).value,
    }


def _check_applicant(actor: Actor) -> None:
    if actor.user is None or actor.project_scope is not None or not actor.has_role(Role.RESEARCHER):
        raise PermissionDenied("applying for access needs the researcher role")
