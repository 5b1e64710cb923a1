"""Use cases of the budget ledger: read a project's account, reserve, settle."""

from __future__ import annotations

from enclave.domain.audit.chain import AuditEvent
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import NotFound
from enclave.domain.identity.accounts import Actor
from enclave.domain.policy import check_spend_budget, check_view_budget
from enclave.domain.ports import UnitOfWork, UnitOfWorkFactory
from enclave.domain.queries.budget import Account, Budget, Reservation


class BudgetService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock = utcnow) -> None:
        self._uow = uow
        self._clock = clock

    def account(self, actor: Actor, project_id: int) -> Account:
        with self._uow(write=False) as uow:
            check_view_budget(actor, project_id, uow.access.get_project(project_id))
            account = uow.budgets.get_account(project_id)
        if account is None:
            raise NotFound(f"project {project_id} has no budget account")
        return account

    def reserve(self, actor: Actor, project_id: int, cost: Budget, purpose: str) -> Reservation:
        """Hold ``cost`` for one release, or refuse (before any data is touched) if it does not fit.

        The account row is locked for this short transaction only, so concurrent reservations are
        serialised and their sum never exceeds the budget."""
        with self._uow() as uow:
            check_spend_budget(actor, project_id, uow.access.get_project(project_id), self._clock().date())
            if uow.budgets.get_account(project_id, lock=True) is None:
                raise NotFound(f"project {project_id} has no budget account")
            return uow.budgets.reserve(
                project_id,
                cost,
                self._clock(),
                audit=AuditEvent(
                    "budget.reserved",
                    actor.name,
                    "project",
                    str(project_id),
                    {"epsilon": cost.epsilon, "delta": cost.delta, "purpose": purpose[:200]},
                ),
            )

    def settle(self, actor: Actor, reservation: Reservation, *, spent: bool, reference: str) -> Account:
        """Commit the reservation with the release it paid for, or give it back (nothing left)."""
        with self._uow() as uow:
            return self.settle_within(uow, actor, reservation, spent=spent, reference=reference)

    def settle_within(
        self,
        uow: UnitOfWork,
        actor: Actor,
        reservation: Reservation,
        *,
        spent: bool,
        reference: str,
        details: dict[str, object] | None = None,
    ) -> Account:
        """Settle in the caller's transaction (a release and its debit commit together), audited as
        ``budget.spent`` or ``budget.returned`` with ``details`` (by default the reservation, its
        cost and ``reference``). The account row is locked first (taken already by a caller that
        must lock it before its own writes: the lock order of :mod:`enclave.domain.ports`)."""
        uow.budgets.get_account(reservation.project_id, lock=True)
        return uow.budgets.settle(
            reservation,
            spent=spent,
            reference=reference,
            at=self._clock(),
            audit=AuditEvent(
                "budget.spent" if spent else "budget.returned",
                actor.name,
                "project",
                str(reservation.project_id),
                details
                if details is not None
                else {
                    "reservation": reservation.id,
                    "epsilon": reservation.cost.epsilon,
                    "delta": reservation.cost.delta,
                    "reference": reference[:200],
                },
            ),
        )
