"""Use cases of the DP query layer: preview, run, releases, dummy data, cohort schemas.

Order of a run, so that invariants 2-4 hold by construction:
1. the plan is checked against the project's scope and the catalog (schema only);
2. an identical plan on the same data version returns its recorded release at no cost;
3. OpenDP plans the query (schema only) and accounts its privacy loss;
4. that loss is *reserved* against the project's budget (refused here, before any data is read,
   if it does not fit);
5. OpenDP computes the release;
6. the release and the debit are written in one transaction; if step 5 failed, the reservation is
   given back and the failure is audited: nothing released, nothing spent.

The engine (:class:`enclave.domain.ports.QueryEngine`) does steps 3 and 5; everything else is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from enclave.domain.access.requests import Project
from enclave.domain.audit.chain import AuditEvent
from enclave.domain.catalog.datasets import PERSON_COLUMN
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import (
    Conflict,
    InternalError,
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from enclave.domain.identity.accounts import Actor
from enclave.domain.policy import check_dataset_in_scope, check_query_access
from enclave.domain.ports import (
    CohortSource,
    PlannedQuery,
    QueryEngine,
    TableSource,
    UnitOfWork,
    UnitOfWorkFactory,
)
from enclave.domain.queries.budget_service import BudgetService
from enclave.domain.queries.cohorts import Catalog, Definition, VariableMeta, variable_meta
from enclave.domain.queries.cohorts import fingerprint as cohort_fingerprint
from enclave.domain.queries.plans import (
    QueryPlan,
    Release,
    check_against_catalog,
    check_cohort_scope,
    check_scope,
)


@dataclass(frozen=True)
class CohortInputs:
    """What a cohort definition reads, as the project may see it: the scoped catalog of each table,
    the current version and its path in the research store."""

    project: Project
    catalog: Catalog
    versions: dict[str, int]
    version_paths: dict[str, str]

    @property
    def source(self) -> CohortSource:
        return CohortSource(self.catalog, self.versions, self.version_paths)


@dataclass(frozen=True)
class Prepared:
    project: Project
    dataset_version: int
    source: TableSource | CohortSource
    derived: str | None = None  # a cohort's derived-frame fingerprint


class QueryService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        engine: QueryEngine,
        budgets: BudgetService,
        project_key: Callable[[int], bytes] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._project_key = project_key
        self._uow = uow
        self._engine = engine
        self._budgets = budgets
        self._clock = clock

    def _member_project(self, uow: UnitOfWork, actor: Actor, project_id: int) -> Project:
        """Queries are for the project's members only (:func:`enclave.domain.policy.check_query_access`)."""
        return check_query_access(actor, project_id, uow.access.get_project(project_id), self._clock().date())

    def _cohort_inputs(self, actor: Actor, project_id: int, definition: Definition) -> CohortInputs:
        """The scoped catalog, versions and paths of every table a definition reads (schema only)."""
        with self._uow(write=False) as uow:
            project = self._member_project(uow, actor, project_id)
            check_cohort_scope(definition, project.scope)
            catalog: dict[str, list[dict[str, Any]]] = {}
            versions: dict[str, int] = {}
            paths: dict[str, str] = {}
            for table in definition.tables():
                dataset = uow.catalog.get_dataset(table)
                if dataset is None or dataset.current_version is None:
                    raise NotFound(f"dataset {table!r} has no data yet")
                version = uow.catalog.get_version(dataset.id, dataset.current_version)
                assert version is not None
                allowed = set(project.scope[table]) | {PERSON_COLUMN}
                # Only the approved columns are visible to the definition, so validation (which
                # names unknown columns) cannot reveal a column outside the project's scope.
                catalog[table] = [c.as_json() for c in version.columns if c.name in allowed]
                versions[table] = version.version
                paths[table] = version.path
        return CohortInputs(project, catalog, versions, paths)

    def _prepare_cohort(self, actor: Actor, project_id: int, plan: QueryPlan) -> Prepared:
        """Check a plan over a cohort (schema only), then derive its per-person frame (cached per
        definition and dataset versions). Deriving reads the data but releases nothing: its only
        output is the cached frame, inside the enclave, that the DP engine then measures."""
        assert plan.cohort is not None
        inputs = self._cohort_inputs(actor, project_id, plan.cohort)
        metas = variable_meta(plan.cohort, inputs.catalog)
        check_against_catalog(plan, {name: _catalog_view(meta) for name, meta in metas.items()})
        return Prepared(
            inputs.project,
            inputs.versions[plan.dataset],
            inputs.source,
            derived=cohort_fingerprint(plan.cohort, inputs.versions),
        )

    def _refuse_if_unaffordable(self, actor: Actor, project_id: int, plan: QueryPlan) -> None:
        """A plan that could not be paid for is refused before a cohort is derived from the data
        (the reservation itself, later, is what guarantees the budget under concurrency)."""
        self._budgets.account(actor, project_id).check_can_reserve(plan.cost)

    def _prepare(self, actor: Actor, project_id: int, plan: QueryPlan) -> Prepared:
        if plan.cohort is not None:
            return self._prepare_cohort(actor, project_id, plan)
        with self._uow(write=False) as uow:
            project = self._member_project(uow, actor, project_id)
            check_scope(plan, project.scope)
            dataset = uow.catalog.get_dataset(plan.dataset)
            if dataset is None or dataset.current_version is None:
                raise NotFound(f"dataset {plan.dataset!r} has no data yet")
            version = uow.catalog.get_version(dataset.id, dataset.current_version)
        assert version is not None
        columns = {c.name: c for c in version.columns}
        check_against_catalog(plan, columns)
        source = TableSource(
            version_path=version.path,
            contribution_bound=dataset.contribution_bound,
            columns=tuple(columns[name] for name in project.scope[plan.dataset] if name in columns),
        )
        return Prepared(project, version.version, source)

    def _engine_plan(self, plan: QueryPlan, prepared: Prepared) -> PlannedQuery:
        """The engine's plan (for a cohort, after deriving or reusing its per-person frame)."""
        planned = self._engine.plan(plan, prepared.source)
        # The ledger charges the epsilon the researcher asked for: exact, and never below the loss
        # OpenDP's privacy map accounts for (which the engine guarantees, and this checks).
        if planned.epsilon > plan.epsilon or planned.delta > plan.delta:
            raise InternalError(
                f"OpenDP accounted ({planned.epsilon}, {planned.delta}), above the planned"
                f" ({plan.epsilon}, {plan.delta})"
            )
        return planned

    def preview(self, actor: Actor, project_id: int, plan: QueryPlan) -> dict[str, Any]:
        """The cost and the accuracy of each aggregate at this epsilon, without spending anything."""
        prepared = self._prepare(actor, project_id, plan)
        planned = self._engine_plan(plan, prepared)
        account = self._budgets.account(actor, project_id)
        preview: dict[str, Any] = {
            "epsilon": str(plan.epsilon),
            "accounted_epsilon": str(planned.epsilon),
            "remaining_epsilon": str(account.remaining.epsilon),
            "fits": plan.cost.fits_within(account.remaining),
            "aggregates": [
                {"name": a.name, "noise_scale": a.noise_scale, "ci95": a.ci95} for a in planned.aggregates
            ],
        }
        if plan.delta:
            preview |= {
                "delta": str(plan.delta),
                "remaining_delta": str(account.remaining.delta),
                "threshold": planned.threshold,
            }
        return preview

    def run(
        self, actor: Actor, project_id: int, plan: QueryPlan, *, client: str | None = None
    ) -> tuple[Release, bool]:
        """Release the plan's answer; returns (release, whether it was already recorded). A refusal
        (no access to the project, a column out of scope, the budget exhausted, ...) is audited as
        ``query.refused`` with its reason and the caller's address before it reaches the caller."""
        try:
            return self._run(actor, project_id, plan)
        except (PermissionDenied, NotFound, InvalidInput, InvalidState) as exc:
            where = {"client": client} if client else {}
            details: dict[str, object] = {
                "error": exc.code,
                "detail": exc.detail[:300],
                "dataset": plan.dataset,
                "epsilon": str(plan.epsilon),
                **where,
            }
            with self._uow() as uow:
                uow.audit.append(AuditEvent("query.refused", actor.name, "project", str(project_id), details))
            raise

    def _run(self, actor: Actor, project_id: int, plan: QueryPlan) -> tuple[Release, bool]:
        prepared = self._prepare(actor, project_id, plan)
        fingerprint = plan.fingerprint(prepared.dataset_version, derived=prepared.derived)
        with self._uow(write=False) as uow:
            existing = uow.releases.find_release(project_id, fingerprint)
        if existing is not None:
            return existing, True
        if isinstance(prepared.source, CohortSource):
            self._refuse_if_unaffordable(actor, project_id, plan)
        planned = self._engine_plan(plan, prepared)
        cost = plan.cost
        reservation = self._budgets.reserve(actor, project_id, cost, purpose=fingerprint)
        try:
            result = self._engine.release(planned)
        except Exception as exc:
            self._budgets.settle(actor, reservation, spent=False, reference="release failed")
            with self._uow() as uow:
                uow.audit.append(
                    AuditEvent(
                        "query.failed",
                        actor.name,
                        "project",
                        str(project_id),
                        {"fingerprint": fingerprint, "error": type(exc).__name__},
                    )
                )
            raise InternalError("the release failed; nothing was released and nothing was spent") from exc
        accuracy = {a.name: a.ci95 for a in planned.aggregates if a.ci95 is not None}
        release = Release(
            id=0,
            project_id=project_id,
            dataset=plan.dataset,
            dataset_version=prepared.dataset_version,
            fingerprint=fingerprint,
            plan=plan,
            epsilon=plan.epsilon,
            delta=plan.delta,
            mechanism=planned.mechanism,
            noise_scales=result.noise_scales,
            values=result.values,
            accuracy=accuracy,
            author=actor.name,
            created_at=self._clock(),
        )
        try:
            with self._uow() as uow:
                # Lock order everywhere: the domain row first, the audit head last (every audited
                # write takes it), so two transactions never wait on each other in a cycle.
                uow.budgets.get_account(project_id, lock=True)
                recorded = uow.releases.add_release(
                    release,
                    audit=AuditEvent(
                        "query.released",
                        actor.name,
                        "release",
                        "new",
                        {"project": project_id, "fingerprint": fingerprint, **_loss(plan)},
                    ),
                )
                self._budgets.settle_within(
                    uow,
                    actor,
                    reservation,
                    spent=True,
                    reference=f"release {recorded.id}",
                    details={"reservation": reservation.id, **_loss(plan), "release": recorded.id},
                )
        except Conflict:
            # The same plan was released concurrently: this answer is discarded unseen (no loss),
            # the reservation is given back, and the recorded release is the answer.
            self._budgets.settle(
                actor, reservation, spent=False, reference="identical plan released concurrently"
            )
            with self._uow(write=False) as uow:
                first = uow.releases.find_release(project_id, fingerprint)
            assert first is not None
            return first, True
        return recorded, False

    def dummy(self, actor: Actor, project_id: int, dataset: str, n: int, *, seed: int | None = None) -> Any:
        """Schema-faithful synthetic rows of a dataset in the project's scope, made from the catalog's
        metadata alone (never from the data), with identifiers keyed to this project: free, since
        nothing about any person goes into them. Audited like any other access."""
        if self._project_key is None:
            raise InternalError("dummy data needs the key store")
        with self._uow(write=False) as uow:
            project = self._member_project(uow, actor, project_id)
            check_dataset_in_scope(project, dataset)
            found = uow.catalog.get_dataset(dataset)
            if found is None or found.current_version is None:
                raise NotFound(f"dataset {dataset!r} has no data yet")
            version = uow.catalog.get_version(found.id, found.current_version)
        assert version is not None
        scope = set(project.scope[dataset])
        columns = [c for c in version.columns if c.name in scope or c.role == "person_id"]
        frame = self._engine.dummy(
            columns,
            n,
            project_key=self._project_key(project.id),
            contribution_bound=found.contribution_bound,
            seed=seed,
        )
        self._audit_dummy(actor, project.id, {"dataset": dataset, "rows": n, "seed": seed})
        return frame

    def _audit_dummy(self, actor: Actor, project_id: int, details: dict[str, Any]) -> None:
        with self._uow() as uow:
            uow.audit.append(AuditEvent("query.dummy_data", actor.name, "project", str(project_id), details))

    def cohort_schema(self, actor: Actor, project_id: int, definition: Definition) -> list[dict[str, Any]]:
        """The derived frame's columns (type, public domain, bounds), validated against the scoped
        catalog: free, it reads no data. Researchers check a definition with it before running."""
        inputs = self._cohort_inputs(actor, project_id, definition)
        return [_catalog_view(meta) for meta in variable_meta(definition, inputs.catalog).values()]

    def dummy_cohort(
        self, actor: Actor, project_id: int, definition: Definition, n: int, *, seed: int | None = None
    ) -> Any:
        """Dummy rows of a cohort's derived frame (one per person), from the definition and the
        catalog alone: the variables' public domains, bounds and date ranges, never the data."""
        if self._project_key is None:
            raise InternalError("dummy data needs the key store")
        inputs = self._cohort_inputs(actor, project_id, definition)
        metas = variable_meta(definition, inputs.catalog)
        columns = [{"name": PERSON_COLUMN, "role": "person_id", "type": "string", "nullable": False}]
        columns += [_catalog_view(meta) for meta in metas.values()]
        frame = self._engine.dummy(columns, n, project_key=self._project_key(project_id), seed=seed)
        self._audit_dummy(actor, project_id, {"cohort": definition.tables(), "rows": n, "seed": seed})
        return frame

    def releases(self, actor: Actor, project_id: int) -> list[Release]:
        with self._uow(write=False) as uow:
            self._member_project(uow, actor, project_id)
            return uow.releases.list_releases(project_id)


def _loss(plan: QueryPlan) -> dict[str, Decimal]:
    """The privacy loss as audited: ε, and δ when there is one (audit entries of pure-DP releases
    keep their earlier shape)."""
    return {"epsilon": plan.epsilon, "delta": plan.delta} if plan.delta else {"epsilon": plan.epsilon}


def _catalog_view(meta: VariableMeta) -> dict[str, Any]:
    """A derived variable described as a catalog column (role, type, domain, bounds, date range)."""
    role = {"string": "category", "date": "date"}.get(meta.type, "numeric")
    view: dict[str, Any] = {"name": meta.name, "role": role, "type": meta.type, "nullable": meta.nullable}
    if meta.domain is not None:
        view["domain"] = list(meta.domain)
    if role == "numeric":
        view["lower"], view["upper"] = meta.lower, meta.upper
    if role == "date":
        view["first"] = meta.first.isoformat() if meta.first else None
        view["last"] = meta.last.isoformat() if meta.last else None
    return view
