"""Import an ACRO results folder as an output request, so teams that already use ACRO keep their workflow.

ACRO (the SACRO project's "Automatic Checking of Research Outputs", PyPI ``acro``) wraps a
researcher's pandas and statsmodels calls, runs its statistical disclosure checks on every output
and, on ``acro.finalise(path, "json")``, writes a folder. What is in it, as read from ACRO's source
(``acro/record.py``: ``Records.finalise``, ``Records.finalise_json``, ``Record.serialize_output``,
``Records.write_checksums``; ``acro/acro_tables.py``: ``get_table_sdc`` (0.4) and
``acro/sdcchecks.py``: ``ManyChecksResults.get_table_sdc``, ``SDCChecks.check_to_method`` (1.x)):

* ``results.json``::

    {"version": "1.0.2",
     "tool": {"@type": "SoftwareApplication", "name": "ACRO", ...},            # 1.x only
     "results": {
       "output_0": {"uid": "output_0", "status": "fail",                      # pass | review | fail
                    "type": "table", "properties": {"method": "crosstab", "mitigation": "none"},
                    "files": [{"name": "output_0_0.csv",
                               "sdc": {"summary": {"MinimumThresholdCheck": 2, ...},
                                       "cells": {"MinimumThresholdCheck": [[0, 1], [2, 0]], ...}}}],
                    "outcome": {...}, "command": "acro.crosstab(...)", "summary": "...",
                    "timestamp": "...", "comments": [...], "exception": "...",
                    "fair": {"check_status": {"MinimumThresholdCheck": "fail", ...}, ...}}}}  # 1.x only

* the output files, flat in the folder: tables as ``<uid>_<n>.csv`` (``DataFrame.to_csv``, index
  included), figures (histograms, survival plots, pie charts) and custom outputs under their own
  base names;
* ``checksums/<file>.txt``: the SHA-256 of each top-level file, written after ``results.json``;
* ``config.json`` (ACRO's risk appetite) and, from 1.x, ``session_summary.json``/``.csv``, listed in
  ``results.json`` as outputs ``2ndary_risk_summary_*-DONT_RELEASE`` "for the output checker only".

``sdc.summary`` counts the cells each check flagged and ``sdc.cells`` lists them as ``[row, column]``
positions (from 0, in ACRO's table). ACRO 0.4 names its checks ``threshold``, ``p-ratio``,
``nk-rule``, ``all-values-are-same``, ``negative`` and ``missing`` (plus ``suppressed``: whether ACRO
suppressed the flagged cells); ACRO 1.x names them after the SACRO ontology
(``MinimumThresholdCheck``, ``PPercentCheck``, ``NKCheck``, ...), records each one's status in
``fair.check_status``, and ``properties.mitigation`` says whether it suppressed or rounded the table.

How it maps onto the airlock:

* each file of each output becomes a file of a new draft request, through the normal intake
  (:func:`enclave.airlock.files.intake`), so the type and size limits and the sanitising still apply;
  its description is ACRO's command, summary, comments and exception request;
* ACRO's verdict becomes check results in our :class:`~enclave.airlock.checks.CheckResult` shape,
  stored with the file (``spec["acro"]``) and added to Enclave's own disclosure-check record when the
  request is submitted (:func:`with_imported_checks`). Each ACRO check is a rule ``acro.<check>``
  (``acro.threshold``, ``acro.p_ratio``, ``acro.nk_rule``, ...): a check ACRO failed is a *failed*
  rule, which blocks release until a reviewer overrides it, exactly like Enclave's failed checks;
  ACRO's "review" is a warning. ``acro.status`` carries ACRO's overall verdict and summary; it fails
  when ACRO failed the output and no named check carries the failure (a regression's degrees of
  freedom in ACRO 0.4), and warns otherwise, so one failure needs one override;
* a table ACRO suppressed or rounded (``suppressed``/``mitigation``) turns ACRO's failed checks into
  warnings, as ACRO itself asks only for a review then; a declared rounding base becomes the file's
  rounding, so the provenance check accepts the rounded numbers.

ACRO's verdict is the researcher's own tool's verdict: it is shown beside Enclave's checks and can
add failures, but it never replaces them (they all run on submit) and never removes one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from enclave.airlock.files import validate_file_name
from enclave.domain.errors import InternalError, InvalidInput, PayloadTooLarge
from enclave.domain.outputs.acro import AcroImport, ImportedFile, Upload
from enclave.domain.outputs.checks import CheckRecord, CheckResult, Rounding, Status
from enclave.domain.outputs.files import DEFAULT_LIMITS, Limits

RESULTS_FILE = "results.json"
CHECKSUMS_FOLDER = "checksums"
AUXILIARY_FILES = frozenset({"config.json"})  # written by acro.finalise, never an output
MAX_RESULTS_BYTES = 20 * 1024 * 1024
MAX_OUTPUTS = 500
SUPPORTED = "ACRO 0.4 and 1.x"
CHECKER_ONLY_COMMENT = "DO NOT RELEASE"
MAX_DESCRIPTION = 5000
_SHOWN_CELLS = 5


# --- the results file -----------------------------------------------------------------------------

CheckName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
]
LongText = Annotated[str, StringConstraints(max_length=50_000)]
AcroStatus = Literal["pass", "review", "fail"]


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sdc(_Strict):
    """``files[].sdc``: how many cells each check flagged, and where (``[row, column]`` from 0)."""

    summary: dict[CheckName, StrictInt | StrictBool] = Field(default_factory=dict, max_length=100)
    cells: dict[CheckName, list[tuple[StrictInt, StrictInt]]] = Field(default_factory=dict, max_length=100)

    @model_validator(mode="after")
    def _counts(self) -> Sdc:
        for name, value in self.summary.items():
            if name == "suppressed":
                if not isinstance(value, bool):
                    raise ValueError("summary.suppressed must be true or false")
            elif isinstance(value, bool) or value < 0:
                raise ValueError(f"summary.{name} must be a number of cells (a whole number, 0 or more)")
        for name, cells in self.cells.items():
            if any(row < 0 or column < 0 for row, column in cells):
                raise ValueError(f"cells.{name} holds a negative cell position")
        return self


class AcroFile(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    sdc: Sdc


class Properties(BaseModel):
    """``properties``: free-form in ACRO; what we read is typed, the rest is kept as it is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    method: Annotated[str, StringConstraints(max_length=100)] | None = None
    mitigation: Literal["none", "suppress", "round"] | None = None
    round_base: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None


class Fair(BaseModel):
    """``fair`` (ACRO 1.x): the FAIR description of the checks; we read each check's status."""

    model_config = ConfigDict(extra="allow", frozen=True)

    check_status: dict[CheckName, AcroStatus] = Field(default_factory=dict, max_length=100)

    @field_validator("check_status", mode="before")
    @classmethod
    def _lower_statuses(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _lower(v) for k, v in value.items()}
        return value


class AcroOutput(_Strict):
    """One entry of ``results``: an output ACRO checked, with its files and verdict."""

    uid: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    status: AcroStatus
    type: Annotated[str, StringConstraints(max_length=100)]
    properties: Properties = Field(default_factory=Properties)
    files: list[AcroFile] = Field(max_length=100)
    outcome: dict[str, Any] = Field(default_factory=dict)
    command: LongText = ""
    summary: LongText = ""
    timestamp: Annotated[str, StringConstraints(max_length=100)] = ""
    comments: list[LongText] = Field(default_factory=list, max_length=100)
    exception: LongText = ""
    fair: Fair = Field(default_factory=Fair)

    @field_validator("status", mode="before")
    @classmethod
    def _lower_status(cls, value: object) -> object:
        return _lower(value)


class AcroResults(_Strict):
    """``results.json`` as ``Records.finalise_json`` writes it (ACRO 0.4 and 1.x)."""

    version: Annotated[
        str, StringConstraints(max_length=50, pattern=r"^\d+\.\d+(\.\d+)?([.+-]?[0-9A-Za-z.+-]*)$")
    ]
    tool: dict[str, Any] | None = None
    results: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], AcroOutput] = Field(
        max_length=MAX_OUTPUTS
    )

    @model_validator(mode="after")
    def _consistent(self) -> AcroResults:
        major, minor = (int(p) for p in self.version.split(".")[:2])
        if not (major == 1 or (major, minor) == (0, 4)):
            raise ValueError(
                f"results written by ACRO {self.version} cannot be read; Enclave reads those of {SUPPORTED}"
            )
        for key, output in self.results.items():
            if output.uid != key:
                raise ValueError(f"output {key!r} says its uid is {output.uid!r}; they must be the same")
        return self


def parse_results(raw: bytes) -> AcroResults:
    """``results.json``, validated, or ``InvalidInput`` with a sentence naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{RESULTS_FILE} is not UTF-8 text; it is not ACRO's results file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInput(
            f"{RESULTS_FILE} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None
    except RecursionError:
        raise InvalidInput(f"{RESULTS_FILE} is nested too deeply to be read") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{RESULTS_FILE} must be a JSON object with version and results, as ACRO writes it"
        )
    try:
        return AcroResults.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            f"{RESULTS_FILE} is not an ACRO results file ({SUPPORTED}): {_problems(exc)}"
        ) from None


def _problems(exc: ValidationError, limit: int = 5) -> str:
    errors = exc.errors()
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# --- reading the folder, or the uploaded files ----------------------------------------------------


class _Folder:
    """The folder ``acro.finalise`` wrote, on this machine: only the files ``results.json`` names are
    read, and none that resolves (through a link) to a place outside the folder."""

    def __init__(self, root: Path) -> None:
        if not root.exists():
            raise InvalidInput(f"{root} does not exist; give the folder acro.finalise(path, 'json') wrote")
        if not root.is_dir():
            raise InvalidInput(f"{root} is not a folder; give the folder acro.finalise(path, 'json') wrote")
        self._root = root.resolve()

    def read(self, name: str, limit: int) -> bytes | None:
        path = self._root.joinpath(*name.split("/"))
        if not path.exists() and not path.is_symlink():
            return None
        resolved = path.resolve()
        if not resolved.is_relative_to(self._root):
            raise InvalidInput(
                f"{name} in the ACRO folder is a link to a file outside the folder; copy the file in instead"
            )
        if not resolved.exists():
            return None
        if not resolved.is_file():
            raise InvalidInput(f"{name} in the ACRO folder is not a regular file")
        with resolved.open("rb") as handle:
            return handle.read(limit + 1)

    def check_all_used(self, listed: set[str]) -> None:
        """Other files in the folder are simply not imported."""


class _Uploaded:
    """The folder's files as uploaded: ``(path in the folder, content)`` pairs. Content is read lazily,
    only for the files ``results.json`` names; anything else uploaded is refused."""

    def __init__(self, uploads: Sequence[Upload], limits: Limits) -> None:
        cap = 2 * limits.max_files + 10
        if len(uploads) > cap:
            raise InvalidInput(
                f"{len(uploads)} files were uploaded; an ACRO import takes at most {cap}"
                f" (results.json, up to {limits.max_files} outputs and their checksums)"
            )
        names = [n.replace("\\", "/") for n, _ in uploads]
        if RESULTS_FILE not in names:
            # a folder picked in a browser arrives as "<folder>/results.json", "<folder>/...": drop it
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) == 1 and all("/" in n for n in names) and f"{tops.pop()}/{RESULTS_FILE}" in names:
                names = [n.split("/", 1)[1] for n in names]
        self._items: dict[str, bytes | BinaryIO] = {}
        for name, (_, content) in zip(names, uploads, strict=True):
            if name in self._items:
                raise InvalidInput(f"{name!r} was uploaded twice; upload each file of the ACRO folder once")
            self._items[name] = content
        self._read: set[str] = set()

    def read(self, name: str, limit: int) -> bytes | None:
        item = self._items.get(name)
        if item is None:
            return None
        self._read.add(name)
        return item[: limit + 1] if isinstance(item, bytes) else item.read(limit + 1)

    def check_all_used(self, listed: set[str]) -> None:
        for name in self._items:
            if name in self._read or name in listed or name in AUXILIARY_FILES:
                continue
            if name.startswith(f"{CHECKSUMS_FOLDER}/") and name.endswith(".txt"):
                continue
            shown = name[:200].encode("ascii", "backslashreplace").decode("ascii")
            raise InvalidInput(
                f"{shown!r} was uploaded but {RESULTS_FILE} does not list it; add it to a request on its"
                " own, or leave it out"
            )


# --- mapping ACRO's checks onto ours --------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    rule: str
    meaning: str
    blocking: bool  # does a flagged cell fail the check (ACRO 0.4, which records no per-check status)?
    counts_cells: bool = True  # is sdc.summary a number of flagged cells (not for degrees of freedom)?


_CHECKS: dict[str, _Check] = {
    # ACRO 0.4 (acro_tables.get_table_sdc)
    "threshold": _Check("acro.threshold", "cells are below ACRO's minimum threshold", True),
    "p-ratio": _Check("acro.p_ratio", "cells fail ACRO's p-ratio dominance rule", True),
    "nk-rule": _Check("acro.nk_rule", "cells fail ACRO's N-K dominance rule", True),
    "all-values-are-same": _Check(
        "acro.all_values_are_same", "cells where every contributor has the same value", True
    ),
    "negative": _Check(
        "acro.negative", "cells hold negative values, for which the dominance rules are undefined", False
    ),
    "missing": _Check("acro.missing", "cells were computed over missing values", False),
    # ACRO 1.x (sdcchecks.SDCChecks.check_to_method)
    "MinimumThresholdCheck": _Check("acro.threshold", "cells are below ACRO's minimum threshold", True),
    "PPercentCheck": _Check("acro.p_ratio", "cells fail ACRO's p-percent dominance rule", True),
    "NKCheck": _Check("acro.nk_rule", "cells fail ACRO's N-K dominance rule", True),
    "AllSameValuesCheck": _Check(
        "acro.all_values_are_same", "cells where every contributor has the same value", True
    ),
    "MissingCheck": _Check("acro.missing", "cells were computed over missing values", False),
    "MinimumDoFCheck": _Check(
        "acro.dof", "too few residual degrees of freedom for some cell or model", True, counts_cells=False
    ),
    "PresenceOfZeroCheck": _Check("acro.zeros", "cells are zero, which ACRO was told are disclosive", True),
    "RequiredZeroCheck": _Check("acro.required_zero", "whether zeros are disclosive", False),
    "PresenceOfLinkedTableCheck": _Check(
        "acro.linked_tables", "compare with the other outputs for differencing", False
    ),
    "StatbarnDataCheck": _Check("acro.manual_check", "ACRO asks for a manual check", False),
}
_STATUS = {"pass": Status.PASS, "review": Status.WARN, "fail": Status.FAIL}
_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
_SPACE = re.compile(r"[ \t]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _rule_for(name: str) -> _Check:
    known = _CHECKS.get(name)
    if known is not None:
        return known
    slug = re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()).strip("_")
    return _Check(f"acro.{slug[:60] or 'check'}", f"ACRO's {name} check", False)


def _clean(text: str, limit: int) -> str:
    """ACRO's free text as one readable paragraph without control characters, at most ``limit`` long."""
    lines = [_SPACE.sub(" ", _CONTROL.sub(" ", line)).strip() for line in text.splitlines()]
    flat = " ".join(line for line in lines if line)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _mitigation(output: AcroOutput, sdc: Sdc) -> str | None:
    """How ACRO mitigated the flagged cells, if it did (then it asks only for a review)."""
    if sdc.summary.get("suppressed") is True or output.properties.mitigation == "suppress":
        return "ACRO suppressed the flagged cells"
    if output.properties.mitigation == "round":
        base = output.properties.round_base
        return f"ACRO rounded the table{f' to a multiple of {base}' if base else ''}"
    return None


def map_checks(version: str, output: AcroOutput, file: AcroFile) -> tuple[CheckResult, ...]:
    """ACRO's verdict on one file as check results named ``acro.*``: ``acro.status`` first, then one
    per ACRO check. A check's status is the one ACRO recorded (``fair.check_status``, 1.x), else it
    follows from the flagged-cell count (0.4, and checks 1.x left out of ``check_status``)."""
    sdc = file.sdc
    mitigated = _mitigation(output, sdc)
    names = [n for n in sdc.summary if n != "suppressed"]
    names += [n for n in output.fair.check_status if n not in names]
    per_rule: dict[str, CheckResult] = {}
    softened: set[str] = set()
    for name in names:
        check = _rule_for(name)
        raw = sdc.summary.get(name)
        count = raw if check.counts_cells and not isinstance(raw, bool) else None
        said = output.fair.check_status.get(name)
        if said is None:
            if not check.counts_cells:
                said = "review"
            else:
                said = ("fail" if check.blocking else "review") if count else "pass"
        status = _STATUS[said]
        if said == "pass":
            message = f"ACRO's {name} check passed"
        else:
            flagged = f" flagged {count} cell(s)" if count else f" gave {said}"
            message = f"ACRO's {name} check{flagged}: {check.meaning}"
            positions = sdc.cells.get(name, []) if check.counts_cells else []
            if positions:
                shown = ", ".join(f"row {r} column {c}" for r, c in positions[:_SHOWN_CELLS])
                more = len(positions) - _SHOWN_CELLS
                message += (
                    f" (in ACRO's table, counted from 0: {shown}{f' and {more} more' if more > 0 else ''})"
                )
            if status is Status.FAIL and mitigated:
                status = Status.WARN
                softened.add(check.rule)
                message += f"; {mitigated}, so this asks for a review"
        result = CheckResult(check.rule, status, message)
        before = per_rule.get(check.rule)
        if before is None or _SEVERITY[status] > _SEVERITY[before.status]:
            per_rule[check.rule] = result
    checks = tuple(per_rule.values())
    return (_overall(version, output, checks, mitigated if softened else None), *checks)


def _overall(
    version: str, output: AcroOutput, checks: Sequence[CheckResult], mitigated: str | None
) -> CheckResult:
    """``acro.status``: ACRO's overall verdict. A failure another ``acro.*`` rule carries (or that
    ACRO mitigated) only warns here, so that one failure needs one override."""
    carried = sorted(r.rule for r in checks if r.status is Status.FAIL)
    if output.status == "pass":
        status, message = Status.PASS, f"ACRO {version} passed this output"
    elif output.status == "review":
        status = Status.WARN
        message = (
            f"ACRO {version} did not check this {output.type or 'custom'} output and asks for a review"
            if not checks
            else f"ACRO {version} asks for a review of this output"
        )
    elif carried:
        status = Status.WARN
        message = (
            f"ACRO {version} failed this output; the failure is carried by {', '.join(carried)}, which a"
            " reviewer must override to release it"
        )
    elif mitigated is not None:
        status = Status.WARN
        message = f"ACRO {version} failed this output, and {mitigated.removeprefix('ACRO ')}: review them"
    else:
        status, message = Status.FAIL, f"ACRO {version} failed this output"
    summary = _clean(output.summary, 1000)
    if summary and summary != output.status:
        message += f" (ACRO's summary: {summary})"
    exception = _clean(output.exception, 1000)
    if exception and output.status != "pass":
        message += f"; the researcher asks ACRO's checker for an exception: {exception}"
    return CheckResult("acro.status", status, message)


# --- the import -----------------------------------------------------------------------------------


def _checker_only(uid: str, output: AcroOutput) -> bool:
    return uid.endswith("DONT_RELEASE") or any(CHECKER_ONLY_COMMENT in c for c in output.comments)


def _description(output: AcroOutput, index: int, count: int) -> str:
    parts = [
        f"ACRO {output.type or 'output'} {output.uid}" + (f", file {index} of {count}" if count > 1 else "")
    ]
    command = _clean(output.command, 1500)
    if command and command != output.type:
        parts.append(f"command: {command}")
    summary = _clean(output.summary, 1500)
    if summary and summary != output.status:
        parts.append(f"ACRO's summary: {summary}")
    comments = [c for c in (_clean(c, 500) for c in output.comments) if c]
    if comments:
        parts.append("comments: " + " | ".join(comments))
    exception = _clean(output.exception, 1000)
    if exception:
        parts.append(f"exception requested: {exception}")
    text = ". ".join(p.rstrip(" .;:") for p in parts) + "."
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


_CHECKSUM = re.compile(rb"\s*([0-9a-fA-F]{64})\s*")


def _verify_checksum(name: str, content: bytes, recorded: bytes | None) -> bool:
    """True when ACRO's checksum matches; False when there is none; raise when it does not match."""
    if recorded is None:
        return False
    found = _CHECKSUM.fullmatch(recorded)
    if found is None:
        raise InvalidInput(f"{CHECKSUMS_FOLDER}/{name}.txt is not a SHA-256 checksum as ACRO writes it")
    if hashlib.sha256(content).hexdigest() != found.group(1).decode("ascii").lower():
        raise InvalidInput(
            f"{name} does not match its checksum in {CHECKSUMS_FOLDER}/: it was changed after ACRO checked"
            " it, so ACRO's verdict does not apply; run acro.finalise again, or add the file on its own"
        )
    return True


def load_acro(source: Path | Sequence[Upload], *, limits: Limits = DEFAULT_LIMITS) -> AcroImport:
    """Read an ACRO results folder (a path on this machine, or its files as uploaded) and map it.

    Refuses, with a sentence, a missing or malformed ``results.json``, a listed file that is missing,
    a file name that leaves the folder (``..``, an absolute path, a link to a place outside it), a
    type intake would refuse, a file changed since ACRO's checksum, and uploaded files that
    ``results.json`` does not list. Nothing is written anywhere.
    """
    reader = _Folder(source) if isinstance(source, Path) else _Uploaded(source, limits)
    raw = reader.read(RESULTS_FILE, MAX_RESULTS_BYTES)
    if raw is None:
        raise InvalidInput(
            f"no {RESULTS_FILE}: import the folder acro.finalise(path, 'json') wrote, with its"
            f" {RESULTS_FILE} and output files (an Excel results file cannot be imported)"
        )
    if len(raw) > MAX_RESULTS_BYTES:
        raise PayloadTooLarge(f"{RESULTS_FILE} is over {MAX_RESULTS_BYTES} bytes")
    results = parse_results(raw)
    listed = [
        (uid, output)
        for uid, output in results.results.items()
        if output.files and not _checker_only(uid, output)
    ]
    skipped = [
        f"{uid}: ACRO's session summary, marked for the output checker only (DO NOT RELEASE)"
        if _checker_only(uid, output)
        else f"{uid}: ACRO recorded no file for this {output.type or 'output'}"
        for uid, output in results.results.items()
        if not output.files or _checker_only(uid, output)
    ]
    count = sum(len(o.files) for _, o in listed)
    if count == 0:
        raise InvalidInput(
            f"{RESULTS_FILE} lists no output file to import" + (f" ({'; '.join(skipped)})" if skipped else "")
        )
    if count > limits.max_files:
        raise InvalidInput(
            f"{RESULTS_FILE} lists {count} output files; an output request holds at most {limits.max_files}"
        )
    files: list[ImportedFile] = []
    mitigations: list[str] = []
    seen: dict[str, str] = {}
    total = 0
    for uid, output in listed:
        where = f"ACRO output {uid!r}"
        for index, entry in enumerate(output.files, start=1):
            try:
                validate_file_name(entry.name, limits=limits)
            except InvalidInput as exc:
                raise InvalidInput(f"{where} lists a file that cannot be imported: {exc.detail}") from None
            if entry.name.casefold() in seen:
                raise InvalidInput(
                    f"{where} lists {entry.name!r}, which output {seen[entry.name.casefold()]!r} lists too"
                )
            seen[entry.name.casefold()] = uid
            content = reader.read(entry.name, limits.max_file_bytes)
            if content is None:
                raise InvalidInput(
                    f"{where} lists {entry.name!r}, which is not in the ACRO folder; run acro.finalise"
                    " again or copy the file in"
                )
            if len(content) > limits.max_file_bytes:
                raise PayloadTooLarge(
                    f"{entry.name} is over the size limit: files are limited to {limits.max_file_bytes} bytes"
                )
            total += len(content)
            if total > limits.max_request_bytes:
                raise PayloadTooLarge(
                    f"the files of this ACRO folder add up to more than {limits.max_request_bytes} bytes,"
                    " the limit of an output request"
                )
            recorded = None if "/" in entry.name else reader.read(f"{CHECKSUMS_FOLDER}/{entry.name}.txt", 200)
            verified = _verify_checksum(entry.name, content, recorded)
            checks = map_checks(results.version, output, entry)
            props = output.properties
            rounding = (
                Rounding(base=props.round_base)
                if props.mitigation == "round" and props.round_base is not None
                else None
            )
            verdict: dict[str, Any] = {
                "tool": "ACRO",
                "version": results.version,
                "uid": uid,
                "type": output.type,
                "status": output.status,
                "summary": _clean(output.summary, 2000),
                "command": _clean(output.command, 2000),
                "comments": [_clean(c, 500) for c in output.comments][:20],
                "exception": _clean(output.exception, 2000),
                "timestamp": output.timestamp,
                "method": props.method,
                "mitigation": props.mitigation,
                "round_base": props.round_base,
                "checksum": "verified" if verified else "none",
                "results": [r.to_dict() for r in checks],
            }
            files.append(
                ImportedFile(
                    uid=uid,
                    name=entry.name,
                    content=content,
                    description=_description(output, index, len(output.files)),
                    rounding=rounding,
                    results=checks,
                    verdict=verdict,
                    count_columns=_frequency_columns(output, entry.name, content),
                )
            )
        mitigated = _mitigation(output, output.files[0].sdc)
        if mitigated is not None:
            mitigations.append(f"{uid}: {mitigated.removeprefix('ACRO ')}")
    reader.check_all_used({f.name for o in results.results.values() for f in o.files})
    return AcroImport(results.version, tuple(files), tuple(skipped), tuple(mitigations))


# --- at submit: ACRO's verdict beside Enclave's checks --------------------------------------------


class _StoredResult(_Strict):
    rule: Annotated[str, StringConstraints(pattern=r"^acro\.[a-z0-9_]{1,60}$")]
    status: Status
    message: str
    cells: list[Any] = Field(default_factory=list)


@dataclass(frozen=True)
class ImportedCheckRecord(CheckRecord):
    """A disclosure-check record with the results of an imported tool's checks added (rules
    ``acro.*``) and the tool's verdict under ``imported``."""

    imported: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "imported": dict(self.imported)}


def with_imported_checks(record: CheckRecord, spec: Mapping[str, Any]) -> CheckRecord:
    """``record`` (Enclave's checks of a file) with the ACRO verdict stored in the file's ``spec``
    added as results; unchanged for a file that was not imported from ACRO."""
    stored = spec.get("acro")
    if stored is None:
        return record
    try:
        if not isinstance(stored, Mapping):
            raise TypeError("not a mapping")
        results = [_StoredResult.model_validate(r) for r in stored.get("results", ())]
    except (TypeError, ValidationError) as exc:
        raise InternalError(f"the ACRO verdict stored with {record.file} is malformed ({exc})") from exc
    added = tuple(CheckResult(r.rule, r.status, r.message) for r in results)
    kept = {f.name: getattr(record, f.name) for f in fields(CheckRecord)}
    kept["results"] = (*record.results, *added)
    return ImportedCheckRecord(**kept, imported={k: v for k, v in stored.items() if k != "results"})


def _frequency_columns(output: Any, name: str, content: bytes) -> tuple[str, ...] | None:
    """The count columns of a frequency table ACRO wrote (a ``crosstab`` without ``aggfunc``): every
    column but the first, which holds the row labels. Declared so that Enclave's small-count rule
    reads every cell, as ACRO's threshold check does, instead of guessing from column names (a
    category called "N" is not the count column)."""
    if output.type != "table" or output.properties.method != "crosstab" or not name.endswith(".csv"):
        return None
    if "aggfunc" in (output.command or ""):
        return None
    try:
        header = next(csv.reader(io.StringIO(content.decode("utf-8-sig"))), [])
    except (UnicodeDecodeError, csv.Error):
        return None  # intake refuses it with its own sentence
    columns = tuple(header[1:])
    return columns if columns and len(set(columns)) == len(columns) else None
