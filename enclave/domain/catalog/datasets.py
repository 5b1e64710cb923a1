"""The catalog: datasets, their versions and columns, and who may see what.

Researchers see a dataset's schema and descriptions, never row counts, reports or quarantine;
a dataset's custodian (and admins) see everything about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from enclave.domain.errors import PermissionDenied
from enclave.domain.identity.accounts import Actor, Role

#: The column every table has: the person's keyed pseudonym, on which sources are linked and by
#: which each person's contribution is bounded.
PERSON_COLUMN = "person_id"
#: The shape of an NHS number as an opt-out list carries it (ten digits, spaces and dashes removed).
NHS_LIKE = re.compile(r"^\d{10}$")
#: Ages are released in bands up to this age; 90+ is one band, so the oldest are not singled out.
MAX_AGE_BAND_START = 90


def age_band_domain(width: int) -> list[str]:
    """The public domain of an age band of ``width`` years: ``0-4``, ``5-9``, ... ``90+``."""
    bands = [f"{a}-{a + width - 1}" for a in range(0, MAX_AGE_BAND_START, width)]
    return [*bands, f"{MAX_AGE_BAND_START}+"]


#: The fields of a catalog column, in the order the catalog records them.
COLUMN_FIELDS = (
    "name",
    "source",
    "role",
    "type",
    "description",
    "nullable",
    "domain",
    "lower",
    "upper",
    "unit",
    "first",
    "last",
)


@dataclass(frozen=True)
class CatalogColumn(Mapping[str, Any]):
    """One column of a dataset version, as the spec declares it and the catalog records it, carried
    to the engine unchanged: its role (``person_id``, ``category``, ``numeric``, ``date``,
    ``quasi_identifier``), its type, and what the DP layer may use as public: a category's domain, a
    numeric column's bounds, a date column's range (ISO dates).

    It reads as the mapping of its recorded JSON as well, key for key, for the code that takes the
    catalog record as it is stored (the cohort language, dummy data, the public catalog view).
    """

    name: str
    source: str
    role: str
    type: str
    description: str
    nullable: bool
    domain: tuple[str, ...] | None = None
    lower: float | None = None
    upper: float | None = None
    unit: str | None = None
    first: str | None = None
    last: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CatalogColumn:
        values: dict[str, Any] = {k: raw[k] for k in COLUMN_FIELDS if k in raw}
        if values.get("domain") is not None:
            values["domain"] = tuple(str(v) for v in values["domain"])
        for bound in ("lower", "upper"):
            if values.get(bound) is not None:
                values[bound] = float(values[bound])
        for day in ("first", "last"):
            if values.get(day) is not None:
                values[day] = str(values[day])
        values.setdefault("source", raw.get("name", ""))
        values.setdefault("description", "")
        values.setdefault("nullable", True)
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        """The column as the catalog records it (the domain as a list)."""
        return {k: self[k] for k in COLUMN_FIELDS}

    @property
    def is_bounded_numeric(self) -> bool:
        return self.role == "numeric" and self.lower is not None and self.upper is not None

    def __getitem__(self, key: str) -> Any:
        if key not in COLUMN_FIELDS:
            raise KeyError(key)
        value = getattr(self, key)
        return list(value) if key == "domain" and value is not None else value

    def __iter__(self) -> Iterator[str]:
        return iter(COLUMN_FIELDS)

    def __len__(self) -> int:
        return len(COLUMN_FIELDS)


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str
    title: str
    description: str
    population: str
    custodian_id: int
    custodian: str
    contribution_bound: int
    current_version: int | None
    created_at: datetime
    updated_at: datetime
    max_epsilon: Decimal = Decimal(10)


@dataclass(frozen=True)
class DatasetVersion:
    dataset_id: int
    version: int
    path: str
    created_at: datetime
    created_by: str
    source_name: str
    source_sha256: str
    spec_sha256: str
    spec_yaml: str
    columns: tuple[CatalogColumn, ...]
    report: dict[str, Any]
    rows_written: int
    persons: int
    key_fingerprint: str


def is_custodian_of(actor: Actor, dataset: Dataset) -> bool:
    if actor.is_operator:
        return True
    if actor.user is None or actor.project_scope is not None:
        return False
    return actor.has_role(Role.ADMIN) or (
        actor.has_role(Role.CUSTODIAN) and actor.user.id == dataset.custodian_id
    )


def can_ingest(actor: Actor, dataset: Dataset | None, spec_custodian: str) -> bool:
    """Operators ingest anything; a custodian ingests their own datasets, and creates new ones
    naming themselves as custodian. Admins manage accounts, not data."""
    if actor.is_operator:
        return True
    if actor.user is None or actor.project_scope is not None or not actor.has_role(Role.CUSTODIAN):
        return False
    if dataset is None:
        return actor.user.username == spec_custodian
    return actor.user.id == dataset.custodian_id and spec_custodian == dataset.custodian


def check_ingest(actor: Actor, dataset: Dataset | None, spec_custodian: str) -> None:
    if not can_ingest(actor, dataset, spec_custodian):
        if dataset is not None:
            raise PermissionDenied(
                f"only {dataset.custodian}, the custodian of {dataset.name}, can ingest into it"
                + (
                    " (and the spec must keep them as custodian)"
                    if spec_custodian != dataset.custodian
                    else ""
                )
            )
        raise PermissionDenied("a new dataset is created by a custodian naming themselves as its custodian")


def check_custodian_of(actor: Actor, dataset: Dataset) -> None:
    if not is_custodian_of(actor, dataset):
        raise PermissionDenied(f"only the custodian of {dataset.name} (or an admin) can see this")


def can_manage_opt_outs(actor: Actor) -> bool:
    return actor.is_operator or (
        actor.project_scope is None and (actor.has_role(Role.CUSTODIAN) or actor.has_role(Role.ADMIN))
    )


def check_manage_opt_outs(actor: Actor) -> None:
    if not can_manage_opt_outs(actor):
        raise PermissionDenied("loading the national data opt-out list needs the custodian or admin role")
