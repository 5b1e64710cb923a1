"""Budgets as exact values, and the ledger rule as a Hypothesis state machine."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from enclave.domain.errors import BudgetExceeded, InvalidInput
from enclave.domain.queries.budget import ZERO, Account, Budget, exact


def test_arithmetic_is_exact() -> None:
    """A thousand debits of 0.001 are exactly 1: no float drift in the ledger."""
    total = ZERO
    for _ in range(1000):
        total = total + Budget(Decimal("0.001"))
    assert total == Budget(Decimal(1))
    assert (Budget(Decimal("1")) - Budget(Decimal("0.3"))).epsilon == Decimal("0.7")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, "not as a float"),
        ("nan", "finite"),
        ("-1", "negative"),
        ("1e-13", "12 decimal places"),
        ("x", "not a number"),
    ],
)
def test_bad_values_are_refused(value: object, message: str) -> None:
    """Floats, NaN, negatives and over-precise values never enter the ledger."""
    with pytest.raises(InvalidInput, match=message):
        exact(value)  # type: ignore[arg-type]


class LedgerModel(RuleBasedStateMachine):
    """Reservations and settlements in any order never take the account below zero, and a refused
    reservation changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.account = Account(1, Budget(Decimal("1")), ZERO, ZERO)
        self.open: list[Budget] = []

    @rule(cost=st.decimals(min_value=0, max_value=Decimal("0.6"), places=3))
    def reserve(self, cost: Decimal) -> None:
        amount = Budget(cost)
        before = self.account
        try:
            self.account.check_can_reserve(amount)
        except BudgetExceeded:
            assert not amount.fits_within(before.remaining)
            assert self.account == before
            return
        self.account = Account(1, before.granted, before.spent, before.reserved + amount)
        self.open.append(amount)

    @precondition(lambda self: self.open)
    @rule(spent=st.booleans())
    def settle(self, spent: bool) -> None:
        amount = self.open.pop()
        a = self.account
        self.account = Account(1, a.granted, a.spent + amount if spent else a.spent, a.reserved - amount)

    @invariant()
    def never_overspent(self) -> None:
        assert (self.account.spent + self.account.reserved).fits_within(self.account.granted)
        assert self.account.remaining.epsilon >= 0


TestLedgerModel = LedgerModel.TestCase
