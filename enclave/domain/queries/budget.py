"""Privacy budgets: exact values and the ledger rules.

A budget is (epsilon, delta) as exact decimals: no float ever enters the ledger, so a thousand
debits of 0.001 add up to exactly 1. Every release *reserves* its cost first, atomically against the
project's remaining budget (a row lock held only for that short transaction), then either commits
the reservation with the release it paid for, or gives it back if the release failed before
anything left the enclave. Under any concurrency the committed plus reserved total never exceeds
the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from enclave.domain.errors import BudgetExceeded, InvalidInput, InvalidState

QUANTUM = Decimal("1e-12")


def exact(value: Decimal | int | str, name: str = "epsilon") -> Decimal:
    """A finite, non-negative decimal with at most 12 decimal places (refuses floats: use str)."""
    if isinstance(value, float):
        raise InvalidInput(f"{name} must be given exactly (as a string or Decimal), not as a float")
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{name} {value!r} is not a number") from None
    if not d.is_finite():
        raise InvalidInput(f"{name} must be finite")
    if d < 0:
        raise InvalidInput(f"{name} cannot be negative")
    if d != d.quantize(QUANTUM):
        raise InvalidInput(f"{name} has more than 12 decimal places")
    if not d:
        return Decimal(0)
    exact = d.quantize(QUANTUM).normalize()
    # normalize() writes 10 as 1E+1; whole numbers keep their plain digits (shown to people as such).
    return exact.quantize(Decimal(1)) if exact.as_tuple().exponent > 0 else exact  # type: ignore[operator]


@dataclass(frozen=True)
class Budget:
    epsilon: Decimal
    delta: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", exact(self.epsilon, "epsilon"))
        object.__setattr__(self, "delta", exact(self.delta, "delta"))
        if self.delta >= 1:
            raise InvalidInput("delta must be below 1")

    def __add__(self, other: Budget) -> Budget:
        return Budget(self.epsilon + other.epsilon, self.delta + other.delta)

    def __sub__(self, other: Budget) -> Budget:
        if not other.fits_within(self):
            raise InvalidState(f"cannot take {other} from {self}")
        return Budget(self.epsilon - other.epsilon, self.delta - other.delta)

    def fits_within(self, other: Budget) -> bool:
        return self.epsilon <= other.epsilon and self.delta <= other.delta

    def __str__(self) -> str:
        return f"epsilon {self.epsilon}" + (f", delta {self.delta}" if self.delta else "")


ZERO = Budget(Decimal(0))


class EntryKind(StrEnum):
    GRANT = "grant"  # the budget approved for the project (and top-ups)
    RESERVE = "reserve"  # held for a release being computed
    COMMIT = "commit"  # the reservation paid for a release
    RETURN = "return"  # the reservation given back: the release failed before anything left


@dataclass(frozen=True)
class Account:
    """A project's budget as the ledger sums it."""

    project_id: int
    granted: Budget
    spent: Budget
    reserved: Budget

    @property
    def remaining(self) -> Budget:
        return self.granted - self.spent - self.reserved

    def check_can_reserve(self, cost: Budget) -> None:
        remaining = self.remaining
        if cost.delta > remaining.delta:
            # Said on its own: a budget printed without a delta would not show why it does not fit.
            granted = (
                f"was granted delta {self.granted.delta}" if self.granted.delta else "was granted no delta"
            )
            raise BudgetExceeded(
                f"this query costs delta {cost.delta} (a DP key release) but project {self.project_id}"
                f" {granted} and has delta {remaining.delta} left; group by columns with a public domain,"
                " or ask for a delta in an amendment"
            )
        if not cost.fits_within(remaining):
            raise BudgetExceeded(
                f"this query costs {cost} but project {self.project_id} has {remaining} left"
                f" (of {self.granted}); preview it at a lower epsilon, or ask for a top-up (an amendment)"
            )


@dataclass(frozen=True)
class Reservation:
    id: int
    project_id: int
    cost: Budget
