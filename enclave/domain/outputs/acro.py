"""An ACRO results folder as the airlock imports it: the files to add, each with ACRO's verdict,
and what the import created. Reading and checking the folder is an adapter
(:func:`enclave.airlock.acro.load_acro`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from enclave.domain.outputs.checks import CheckResult, Rounding
from enclave.domain.outputs.review import OutputFile, OutputRequest

Upload = tuple[str, bytes | BinaryIO]


@dataclass(frozen=True)
class ImportedFile:
    """One file to add to the request: its content (intake still runs), description, rounding and
    ACRO's verdict (stored as ``spec["acro"]``)."""

    uid: str
    name: str
    content: bytes
    description: str
    rounding: Rounding | None
    results: tuple[CheckResult, ...]
    verdict: Mapping[str, Any]
    count_columns: tuple[str, ...] | None = None  # a frequency table's cells, all counts

    @property
    def status(self) -> str:
        return str(self.verdict["status"])


@dataclass(frozen=True)
class AcroImport:
    """What an ACRO folder holds for the airlock: the files to add and what was left out, and why."""

    version: str
    files: tuple[ImportedFile, ...]
    skipped: tuple[str, ...]
    mitigations: tuple[str, ...] = ()

    def controls(self) -> str:
        """The disclosure controls ACRO applied, as a sentence for the request (empty when none)."""
        if not self.mitigations:
            return ""
        return f"Applied by ACRO {self.version}: " + "; ".join(self.mitigations) + "."


@dataclass(frozen=True)
class AcroImportResult:
    """What :meth:`enclave.domain.outputs.service.AirlockService.import_acro` created."""

    request: OutputRequest
    version: str
    files: tuple[OutputFile, ...]
    skipped: tuple[str, ...]
