"""The disclosure-check record: the versioned policy, the researcher's declarations about a table,
what the checks are given, and what they found.

The rules that fill it in read tables (:mod:`enclave.airlock.checks`, behind
:class:`enclave.domain.ports.OutputChecks`); this module is what the airlock's use cases store, show
and reason about. A record serialises to JSON in the spirit of SATRE's disclosure-check record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Protocol

from enclave.domain.audit.chain import canonical_json
from enclave.domain.errors import InvalidInput
from enclave.domain.outputs.files import FileKind
from enclave.domain.queries.plans import QueryPlan

RECORD_SCHEMA = "enclave.disclosure-checks/1"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a check status, not a password)
    WARN = "warn"
    FAIL = "fail"


_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


Cell = tuple[int, str]  # (1-based data row, column name)


@dataclass(frozen=True)
class Policy:
    """Server-side disclosure-control thresholds, versioned: change a value, change ``version``.

    Defaults are ACRO's where ACRO has one (threshold 10, dominance n=2 k=0.9, p-ratio 0.1).
    """

    version: str = "2026.1"
    small_count_threshold: int = 10
    max_table_rows: int = 1000
    dominance_n: int = 2
    dominance_k: float = 0.9
    p_ratio: float = 0.1
    identifier_min_rows: int = 20  # a column distinct on every row looks like an identifier from here
    max_cells_listed: int = 20

    def __post_init__(self) -> None:
        if self.small_count_threshold < 1 or self.max_table_rows < 1 or self.dominance_n < 1:
            raise InvalidInput("policy thresholds must be positive")
        if not (0 < self.dominance_k <= 1 and 0 < self.p_ratio < 1):
            raise InvalidInput("policy dominance k must be in (0, 1] and p in (0, 1)")

    def threshold(self, stricter: int | None = None) -> int:
        """The small-count threshold in force: a custodian or project may raise it, never lower it."""
        if stricter is None:
            return self.small_count_threshold
        return max(self.small_count_threshold, stricter)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Rounding:
    """The rounding the researcher declared for a table's numbers: at most one of base, significant
    digits or decimals. Provenance accepts a number equal to a released value rounded this way (half
    to even or half up, whichever the researcher's tool used)."""

    base: int | None = None
    significant: int | None = None
    decimals: int | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.base, self.significant, self.decimals) if v is not None]
        if len(given) > 1:
            raise InvalidInput("declare one rounding: to a base, to significant digits or to decimals")
        if (self.base is not None and self.base < 1) or (
            self.significant is not None and self.significant < 1
        ):
            raise InvalidInput("a rounding base or number of significant digits must be at least 1")
        if self.decimals is not None and not 0 <= self.decimals <= 12:
            raise InvalidInput("round to between 0 and 12 decimals")

    def apply(self, value: Decimal) -> set[Decimal]:
        """Every accepted rounded form of ``value`` (just the value when no rounding is declared)."""
        if self.base is not None:
            b = Decimal(self.base)
            return {(value / b).quantize(Decimal(1), mode) * b for mode in _MODES}
        if self.significant is not None:
            if value == 0:
                return {value}
            return round_at(value, value.adjusted() - self.significant + 1)
        if self.decimals is not None:
            return round_at(value, -self.decimals)
        return {value}

    def describe(self) -> str:
        if self.base is not None:
            return f"rounded to a multiple of {self.base}"
        if self.significant is not None:
            return f"rounded to {self.significant} significant digits"
        if self.decimals is not None:
            return f"rounded to {self.decimals} decimals"
        return "not rounded"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_MODES = (ROUND_HALF_EVEN, ROUND_HALF_UP)


def round_at(value: Decimal, exponent: int) -> set[Decimal]:
    quantum = Decimal(1).scaleb(exponent)
    return {value.quantize(quantum, mode) for mode in _MODES}


@dataclass(frozen=True)
class Contributions:
    """Contributor magnitudes of one magnitude column: for each table row (in order), the largest
    individual contributions to that cell, largest first. The cell's total is the table's value."""

    column: str
    top: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class TableSpec:
    """What the researcher (and the service) declared about one table."""

    count_columns: tuple[str, ...] | None = None
    rounding: Rounding = field(default_factory=Rounding)
    contributions: tuple[Contributions, ...] = ()


class ReleaseLike(Protocol):
    """What the checks read from a release of the ledger (:class:`enclave.domain.queries.plans.Release`)."""

    @property
    def plan(self) -> QueryPlan: ...

    @property
    def values(self) -> list[dict[str, Any]]: ...


Released = ReleaseLike | int | float | Decimal


@dataclass(frozen=True)
class CheckContext:
    """What the checks need beyond the file, supplied by the service for the request's project.

    ``pseudonyms``: the store's person pseudonyms and this project's derived ones (or a sample the
    service chooses); ``released``: this project's releases from the ledger, or plain numbers (an
    ACRO import); ``min_count``: a stricter small-count threshold set by a custodian or the project.
    """

    pseudonyms: frozenset[str] = frozenset()
    released: tuple[Released, ...] = ()
    min_count: int | None = None


@dataclass(frozen=True)
class CheckResult:
    rule: str
    status: Status
    message: str
    cells: tuple[Cell, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "status": self.status.value,
            "message": self.message,
            "cells": [{"row": r, "column": c} for r, c in self.cells],
        }


@dataclass(frozen=True)
class CheckRecord:
    """The disclosure-check record of one file: what was checked, against which policy, with what result."""

    file: str
    sha256: str
    kind: FileKind
    policy: Policy
    threshold: int
    rounding: Rounding
    intake_changes: tuple[str, ...]
    results: tuple[CheckResult, ...]

    @property
    def status(self) -> Status:
        return max((r.status for r in self.results), key=_SEVERITY.__getitem__, default=Status.PASS)

    @property
    def failed_rules(self) -> frozenset[str]:
        """The rules a reviewer must override to approve the file (``ReviewSubject.failed_checks``)."""
        return frozenset(r.rule for r in self.results if r.status is Status.FAIL)

    def result(self, rule: str) -> CheckResult:
        for r in self.results:
            if r.rule == rule:
                return r
        raise KeyError(rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RECORD_SCHEMA,
            "file": self.file,
            "sha256": self.sha256,
            "kind": self.kind.value,
            "policy": self.policy.to_dict(),
            "small_count_threshold": self.threshold,
            "rounding": self.rounding.to_dict(),
            "intake_changes": list(self.intake_changes),
            "status": self.status.value,
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        return canonical_json(self.to_dict())
