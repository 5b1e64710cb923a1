"""What an ingest reports: the counts a custodian reads (and the catalog records with the version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class IngestReport:
    dataset: str
    source_name: str
    source_sha256: str
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    rows_opted_out: int = 0
    persons: int = 0
    # The bounded view (enclave/ingest/bounded.py): rows beyond their person's contribution bound,
    # which DP queries do not use, and the persons who have such rows.
    rows_over_bound: int = 0
    persons_over_bound: int = 0
    clamped: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    quarantine_file: str | None = None
    seconds: float = 0.0
    version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "source_name": self.source_name,
            "source_sha256": self.source_sha256,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_quarantined": self.rows_quarantined,
            "rows_opted_out": self.rows_opted_out,
            "persons": self.persons,
            "rows_over_bound": self.rows_over_bound,
            "persons_over_bound": self.persons_over_bound,
            "clamped": self.clamped,
            "reasons": self.reasons,
            "quarantine_file": self.quarantine_file,
            "seconds": round(self.seconds, 3),
        }
