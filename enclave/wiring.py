"""Build the services from settings: the one place where adapters meet the domain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from enclave.airlock.adapter import AirlockChecks
from enclave.config import Settings
from enclave.db.migrate import ensure_schema
from enclave.db.session import Database
from enclave.domain.access.service import AccessService
from enclave.domain.access.workspaces import WorkspaceService
from enclave.domain.audit.executions import ExecutionService
from enclave.domain.audit.service import AuditService
from enclave.domain.catalog.service import CatalogService
from enclave.domain.clock import Clock, utcnow
from enclave.domain.identity.service import IdentityService, TokenPolicy
from enclave.domain.outputs.service import AirlockService
from enclave.domain.queries.budget_service import BudgetService
from enclave.domain.queries.service import QueryService
from enclave.dp.adapter import PolarsQueryEngine
from enclave.dp.engine import DPEngine
from enclave.ingest.adapter import PolarsIngest
from enclave.keys import KeyStore, Pseudonymiser
from enclave.store.files import DiskHoldingStore, DiskReleaseStore
from enclave.store.research import ParquetResearchStore


@dataclass
class Services:
    settings: Settings
    db: Database
    identity: IdentityService
    audit: AuditService
    keys: KeyStore
    catalog: CatalogService
    access: AccessService
    budgets: BudgetService
    queries: QueryService
    workspaces: WorkspaceService
    executions: ExecutionService
    outputs: AirlockService

    def close(self) -> None:
        self.db.dispose()


def airlock(
    settings: Settings,
    db: Database,
    keys: KeyStore,
    research: ParquetResearchStore,
    *,
    release_on_approval: bool = True,
    clock: Clock = utcnow,
) -> AirlockService:
    """The airlock's use cases over the holding, release and research stores of ``settings``."""

    def project_pseudonyms(project_id: int, values: Sequence[str]) -> list[str]:
        return Pseudonymiser(keys.project_key(project_id)).many(list(values))

    return AirlockService(
        db.unit_of_work,
        checks=AirlockChecks(),
        holding=DiskHoldingStore(settings.holding_store),
        releases=DiskReleaseStore(settings.release_store),
        research=research,
        project_pseudonyms=project_pseudonyms,
        release_on_approval=release_on_approval,
        clock=clock,
    )


def build_services(settings: Settings, *, migrate: bool = True, clock: Clock = utcnow) -> Services:
    """Check the configuration, prepare ENCLAVE_HOME and the schema, and wire the services.

    With ``migrate``, an empty database gets the schema; one that is behind is refused with the
    command to run (never migrated silently).
    """
    settings.check_safe_to_start()
    settings.ensure_home()
    db = Database(settings.database)
    if migrate:
        ensure_schema(db.engine, settings.database)
    policy = TokenPolicy(
        session_ttl=timedelta(hours=settings.session_ttl_hours),
        personal_default_ttl=timedelta(days=settings.token_default_days),
        max_ttl=timedelta(days=settings.token_max_days),
        web_idle=timedelta(minutes=settings.portal_idle_minutes),
        max_failed_logins=settings.login_max_failures,
        lockout=timedelta(minutes=settings.login_lockout_minutes),
    )
    # In production the master key must already exist (`enclave keys init`), so a mistyped path
    # never silently starts a new key that links nothing ingested before.
    keys = KeyStore(settings.master_key_file, create=settings.mode != "production")
    research = ParquetResearchStore(settings.research_store, derived=settings.derived_store)
    budgets = BudgetService(db.unit_of_work, clock=clock)
    identity = IdentityService(db.unit_of_work, policy=policy, clock=clock)
    return Services(
        settings=settings,
        db=db,
        identity=identity,
        audit=AuditService(db.unit_of_work),
        keys=keys,
        catalog=CatalogService(
            db.unit_of_work, ingest=PolarsIngest(keys, research, settings.quarantine_store), clock=clock
        ),
        access=AccessService(db.unit_of_work, clock=clock),
        budgets=budgets,
        queries=QueryService(
            db.unit_of_work,
            engine=PolarsQueryEngine(DPEngine(), research),
            budgets=budgets,
            project_key=keys.project_key,
            clock=clock,
        ),
        workspaces=WorkspaceService(db.unit_of_work, identity=identity, clock=clock),
        executions=ExecutionService(
            db.unit_of_work, clock=clock, retention_days=settings.execution_retention_days
        ),
        outputs=airlock(settings, db, keys, research, clock=clock),
    )
