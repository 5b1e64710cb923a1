"""Output requests from a notebook: the only way a file leaves the enclave is through the airlock.

    ws.outputs.add("results/by_sex.csv", description="counts by sex", derived_from=[release])
    ws.outputs.add("figures/by_sex.png", description="the same counts as a bar chart")
    ws.outputs.submit(context="Table 1 of the paper", controls="counts from DP releases, unrounded")
    ws.outputs.status()           # the checks of each file, then the reviewers' outcome
    ws.outputs.import_acro("acro_outputs")   # or: a folder ACRO's finalise() wrote, as a new request

The files are uploaded to the API into a holding area outside the workspace; the automated
disclosure checks run on submission, then two reviewers outside the project decide. Approved files
are downloaded with your personal token, outside the workspace (never from it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Call = Callable[..., Any]
FINAL = frozenset({"rejected", "withdrawn", "released", "release_withdrawn"})


@dataclass(frozen=True)
class OutputFileStatus:
    """One file of a request: its checks (``pass``/``warn``/``fail``, None before submission)."""

    id: int
    name: str
    version: int
    check_status: str | None
    failed_checks: tuple[str, ...]
    changes: tuple[str, ...]
    released: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        checks = self.check_status or "not checked yet"
        failed = f", failed: {', '.join(self.failed_checks)}" if self.failed_checks else ""
        released = ", released" if self.released else ""
        return f"<{self.name} (v{self.version}): {checks}{failed}{released}>"


@dataclass(frozen=True)
class OutputStatus:
    """Where an output request stands, as the server shows it to you."""

    id: int
    project_id: int
    state: str
    version: int
    files: tuple[OutputFileStatus, ...]
    outcome: dict[str, Any] | None
    reviews: tuple[dict[str, Any], ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def check_results(self, name: str) -> list[dict[str, Any]]:
        """Every automated check on one file: rule, status and the sentence a reviewer reads."""
        for f in self.files:
            if f.name == name:
                checks = f.raw.get("checks") or {}
                return list(checks.get("results", []))
        raise KeyError(f"no file {name!r} in output request {self.id}")

    def __repr__(self) -> str:
        lines = [
            f"<Output request {self.id} of project {self.project_id}: {self.state}, version {self.version}"
        ]
        lines += [f"  {f!r}" for f in self.files] or ["  (no files yet: add some with ws.outputs.add(path))"]
        if self.outcome is not None:
            lines.append(f"  outcome: {self.outcome.get('state')} ({self.outcome.get('reason')})")
        for review in self.reviews:
            decided = ", ".join(f"{d['file']}: {d['decision']}" for d in review.get("decisions", []))
            lines.append(f"  review by {review.get('reviewer')} (v{review.get('version')}): {decided}")
        return "\n".join(lines) + ">"


def _file(f: dict[str, Any]) -> OutputFileStatus:
    return OutputFileStatus(
        id=f["id"],
        name=f["name"],
        version=f["version"],
        check_status=f.get("check_status"),
        failed_checks=tuple(f.get("failed_checks", [])),
        changes=tuple(f.get("changes", [])),
        released=f.get("released") is not None,
        raw=f,
    )


def _status(body: dict[str, Any]) -> OutputStatus:
    return OutputStatus(
        id=body["id"],
        project_id=body["project_id"],
        state=body["state"],
        version=body["version"],
        files=tuple(_file(f) for f in body.get("files", [])),
        outcome=body.get("outcome"),
        reviews=tuple(body.get("reviews", [])),
        raw=body,
    )


def _release_id(item: Any) -> int:
    value = getattr(item, "id", item)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"derived_from takes release ids or releases, not {item!r}")
    return value


class Outputs:
    """The output requests of one project, through the API.

    ``call`` is the client's request function (``Workspace._call``: method, path and httpx keyword
    arguments, returning the decoded JSON or raising ``EnclaveClientError``); ``request_id`` resumes
    an existing request, otherwise the first :meth:`add` opens one.
    """

    def __init__(self, call: Call, project: int, request_id: int | None = None) -> None:
        self._call = call
        self.project = project
        self.request_id = request_id
        self._last: OutputStatus | None = None

    def new(self, context: str = "", controls: str = "") -> OutputStatus:
        """Open a new output request (the next :meth:`add` puts files into it)."""
        body = self._call(
            "POST", f"/projects/{self.project}/outputs", json={"context": context, "controls": controls}
        )
        self._last = _status(body)
        self.request_id = self._last.id
        return self._last

    def _current(self) -> int:
        if self.request_id is None or (self._last is not None and self._last.state in FINAL):
            self.new()
        assert self.request_id is not None
        return self.request_id

    def add(
        self,
        path: str | Path,
        *,
        description: str = "",
        derived_from: Iterable[Any] = (),
        name: str | None = None,
        count_columns: Iterable[str] | None = None,
        rounding: dict[str, int] | None = None,
    ) -> OutputFileStatus:
        """Upload a file into the request being edited (replacing a file of the same name).

        ``derived_from``: the releases (or release ids) its numbers come from; ``name``: the path it
        is released under (default: the file's own name); ``count_columns``: which columns of a
        table are counts; ``rounding``: one of ``{"base": 5}``, ``{"significant": 2}``,
        ``{"decimals": 1}``, the rounding you applied to released values.
        """
        source = Path(path)
        content = source.read_bytes()
        data: dict[str, Any] = {
            "name": name or source.name,
            "description": description,
            "derived_from": [str(_release_id(r)) for r in derived_from],
        }
        if count_columns is not None:
            data["count_columns"] = list(count_columns)
        for key, value in (rounding or {}).items():
            if key not in ("base", "significant", "decimals"):
                raise ValueError(f"rounding takes base, significant or decimals, not {key!r}")
            data[f"round_{key}"] = str(value)
        request_id = self._current()
        body = self._call(
            "POST",
            f"/outputs/{request_id}/files",
            files={"file": (data["name"], content)},
            data=data,
        )
        return _file(body)

    def import_acro(self, folder: str | Path, *, context: str = "", controls: str = "") -> OutputStatus:
        """Open a new request from the folder ``acro.finalise(folder, "json")`` wrote: its
        ``results.json``, the outputs it lists and their checksums. ACRO's verdict on each output is
        shown to reviewers beside Enclave's own checks (which still run on submission)."""
        root = Path(folder)
        if not (root / "results.json").is_file():
            raise ValueError(f"{root} has no results.json: give the folder acro.finalise() wrote")
        files = [
            ("files", (path.relative_to(root).as_posix(), path.read_bytes()))
            for path in sorted(root.rglob("*"))
            if path.is_file() and not path.is_symlink()
        ]
        body = self._call(
            "POST",
            f"/projects/{self.project}/outputs/acro",
            files=files,
            data={"context": context, "controls": controls},
        )
        self._last = _status(body)
        self.request_id = self._last.id
        return self._last

    def remove(self, name: str) -> OutputStatus:
        """Remove a file from the request being edited."""
        status = self.status()
        for f in status.files:
            if f.name == name:
                self._last = _status(self._call("DELETE", f"/outputs/{status.id}/files/{f.id}"))
                return self._last
        raise KeyError(f"no file {name!r} in output request {status.id}")

    def submit(self, context: str | None = None, controls: str | None = None) -> OutputStatus:
        """Submit the request: the automated checks run at once, then it waits for two reviewers.

        ``context``: why these outputs are needed; ``controls``: the disclosure controls you applied."""
        if self.request_id is None:
            raise ValueError("add a file first: ws.outputs.add(path, description=...)")
        body = {k: v for k, v in (("context", context), ("controls", controls)) if v is not None}
        self._last = _status(self._call("POST", f"/outputs/{self.request_id}/submit", json=body))
        return self._last

    def withdraw(self, reason: str = "") -> OutputStatus:
        if self.request_id is None:
            raise ValueError("there is no output request to withdraw")
        self._last = _status(
            self._call("POST", f"/outputs/{self.request_id}/withdraw", json={"reason": reason})
        )
        return self._last

    def status(self, request_id: int | None = None) -> OutputStatus:
        """The request's state, each file's checks, the reviews you may see and the outcome."""
        wanted = request_id if request_id is not None else self.request_id
        if wanted is None:
            raise ValueError("no output request yet: add a file with ws.outputs.add(path, description=...)")
        status = _status(self._call("GET", f"/outputs/{wanted}"))
        if request_id is None:
            self._last = status
        return status

    def list(self) -> list[dict[str, Any]]:
        """This project's output requests (id, state, version, author)."""
        result: list[dict[str, Any]] = self._call("GET", "/outputs", params={"project_id": self.project})
        return result

    def __repr__(self) -> str:
        if self.request_id is None:
            return f"<Outputs of project {self.project}: no request yet; ws.outputs.add(path) opens one>"
        state = f" ({self._last.state})" if self._last is not None else ""
        return f"<Outputs of project {self.project}: request {self.request_id}{state}; ws.outputs.status()>"
