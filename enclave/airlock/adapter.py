"""The output-checks port (:class:`enclave.domain.ports.OutputChecks`): intake, the disclosure
rules and the ACRO reader of this package, as the airlock's use cases call them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from enclave.airlock.acro import load_acro, with_imported_checks
from enclave.airlock.checks import run_checks
from enclave.airlock.files import check_request_limits, intake
from enclave.domain.outputs.acro import AcroImport, Upload
from enclave.domain.outputs.checks import CheckContext, CheckRecord, Policy, TableSpec
from enclave.domain.outputs.files import Limits, SanitisedFile


class AirlockChecks:
    """Implements :class:`enclave.domain.ports.OutputChecks`."""

    def intake(self, name: str, content: bytes, *, limits: Limits) -> SanitisedFile:
        return intake(name, content, limits=limits)

    def check_request_limits(self, files: Sequence[tuple[str, int]], *, limits: Limits) -> None:
        check_request_limits(files, limits=limits)

    def check(
        self,
        file: SanitisedFile,
        context: CheckContext,
        spec: TableSpec,
        policy: Policy,
        *,
        imported: Mapping[str, Any],
    ) -> CheckRecord:
        return with_imported_checks(run_checks(file, context, spec, policy), imported)

    def load_acro(self, source: Path | Sequence[Upload], *, limits: Limits) -> AcroImport:
        return load_acro(source, limits=limits)
