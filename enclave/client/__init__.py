"""The researcher's client: the only way to the data from a notebook is through here, and it only
ever receives DP releases.

    ws = enclave.client.connect()                  # inside a workspace: reads the injected settings
    ws = enclave.client.connect(url, token, project=3)   # scripted use, with a personal token
    ws.budget()
    ws.preview(dataset="demographics", count=True, by=["region"], epsilon="0.5")
    release = ws.run(dataset="demographics", count=True, by=["region"], epsilon="0.5")
    release.frame                                  # a pandas DataFrame with the 95% half-widths

    from enclave.client.cohorts import Cohort, V, attribute, exists, mean
    cohort = Cohort("2024-01-01").var("region", attribute("region")).var("diabetes", exists(...))
    ws.schema(cohort)                              # the per-person frame's columns, free
    ws.dummy(cohort, n=500)                        # synthetic per-person rows, free
    ws.run(cohort, count=True, by=["region"], epsilon="0.5")   # DP over one row per person

    ws.outputs.add("table1.csv", description="...", derived_from=[release])
    ws.outputs.submit(context="why", controls="what disclosure controls were applied")

Errors are :class:`EnclaveClientError` whose message is the server's sentence (what is wrong and
what to do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from enclave.client.cohorts import Cohort
from enclave.client.outputs import Outputs

ENV_URL = "ENCLAVE_API_URL"
ENV_TOKEN = "ENCLAVE_API_TOKEN"  # noqa: S105 - the name of the variable, not a token
ENV_PROJECT = "ENCLAVE_PROJECT_ID"
ENV_SOCKET = "ENCLAVE_API_SOCKET"  # inside a sandboxed workspace: the API's Unix socket


class EnclaveClientError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Release:
    """A DP release: its values (with 95% half-widths), what it cost and how it was made."""

    id: int
    epsilon: Decimal
    values: list[dict[str, Any]]
    noise_scales: dict[str, float]
    plan: dict[str, Any]
    recorded: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def frame(self) -> Any:
        """The values as a pandas DataFrame (pandas is imported only when asked for)."""
        import pandas as pd  # type: ignore[import-untyped]

        return pd.DataFrame(self.values)

    def __repr__(self) -> str:
        again = ", recorded earlier at no cost" if self.recorded else ""
        return (
            f"<Release {self.id}: {len(self.values)} rows, epsilon {self.epsilon}{again};"
            f" noise scales {self.noise_scales}>"
        )


def build_plan(
    dataset: str | Cohort,
    *,
    count: bool = False,
    persons: bool = False,
    sum: list[str] | None = None,
    mean: list[str] | None = None,
    median: list[str] | None = None,
    quantiles: dict[str, list[float | str]] | None = None,
    by: list[str] | None = None,
    bins: dict[str, int] | None = None,
    where: list[tuple[str, str, Any]] | None = None,
    epsilon: str | Decimal = "1",
    delta: str | Decimal | None = None,
) -> dict[str, Any]:
    """The JSON plan the server validates (the same shape as ``enclave.domain.queries.plans.QueryPlan``).

    ``bins={"cost_gbp": 10}`` makes a histogram: the column, cut into 10 equal bins over its catalog
    bounds, becomes a group key (added to ``by`` if it is not there), and every bin is released.
    ``persons=True`` counts distinct persons (each once per group), in a query of its own.
    ``delta`` (such as ``"1e-7"``) allows ``by`` a column without a public domain: only the keys
    whose noisy count passes a threshold are released (a DP key release), and the project's budget
    is charged the delta too.
    ``quantiles={"cost_gbp": [0.25, 0.75]}`` releases the quartiles (as ``p25_cost_gbp``, ...).
    ``dataset`` is a dataset's name, or a :class:`~enclave.client.cohorts.Cohort`: the aggregates
    then run over its one-row-per-person frame and ``by``/``where``/columns name its variables."""
    aggregates: list[dict[str, Any]] = [{"kind": "count_rows"}] if count else []
    aggregates += [{"kind": "count_persons"}] if persons else []
    aggregates += [{"kind": "sum", "column": c} for c in sum or []]
    aggregates += [{"kind": "mean", "column": c} for c in mean or []]
    aggregates += [{"kind": "median", "column": c} for c in median or []]
    aggregates += [
        {"kind": "quantile", "column": c, "q": str(q)}
        for c, levels in (quantiles or {}).items()
        for q in levels
    ]
    if not aggregates:
        raise ValueError(
            "ask for at least one aggregate: count=True, persons=True, sum=[...], mean=[...], median=[...]"
            " or quantiles={column: [0.25, 0.75]}"
        )
    plan: dict[str, Any] = {
        "dataset": dataset.persons if isinstance(dataset, Cohort) else dataset,
        "aggregates": aggregates,
        "group_by": list(by or []) + [c for c in bins or {} if c not in (by or [])],
        "filters": [{"column": c, "op": op, "value": v} for c, op, v in where or []],
        "epsilon": str(epsilon),
    }
    if delta is not None:
        plan["delta"] = str(delta)
    if bins:
        plan["bins"] = dict(bins)
    if isinstance(dataset, Cohort):
        plan["cohort"] = dataset.to_dict()
    return plan


class Workspace:
    def __init__(
        self, url: str, token: str, project: int, *, socket: str | None = None, timeout: float = 120
    ) -> None:
        self.project = project
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=httpx.HTTPTransport(uds=socket) if socket else None,
        )
        self.outputs = Outputs(self._call, project)
        """Output requests: the only way a file leaves (see :mod:`enclave.client.outputs`)."""

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                raise EnclaveClientError(
                    response.status_code, body.get("error", "error"), body.get("detail", "")
                )
            except ValueError:
                raise EnclaveClientError(response.status_code, "error", response.text[:300]) from None
        return response.json()

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/me")
        return result

    def budget(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/projects/{self.project}/budget")
        return result

    def catalog(self) -> list[dict[str, Any]]:
        """The datasets of the project's scope, with their columns (schema only)."""
        project = self._call("GET", f"/projects/{self.project}")
        return [{"dataset": name, "columns": columns} for name, columns in project["scope"].items()]

    def preview(self, dataset: str | Cohort, **kwargs: Any) -> dict[str, Any]:
        """Cost and accuracy of a query, for free."""
        result: dict[str, Any] = self._call(
            "POST", f"/projects/{self.project}/queries/preview", json=build_plan(dataset, **kwargs)
        )
        return result

    def run(self, dataset: str | Cohort, **kwargs: Any) -> Release:
        """Run a query: a DP release charged to the project's budget (free if asked before)."""
        return _release(
            self._call("POST", f"/projects/{self.project}/queries", json=build_plan(dataset, **kwargs))
        )

    def sql(
        self, query: str, *, epsilon: str | Decimal, delta: str | Decimal | None = None, preview: bool = False
    ) -> Any:
        """A DP-SQL query (one SELECT of aggregates, WHERE, GROUP BY on public columns), parsed by
        the server into the same plan as :meth:`run`; ``preview=True`` prices it for free. A
        ``delta`` allows a GROUP BY on a column without a public domain (a DP key release)."""
        body = {"sql": query, "epsilon": str(epsilon)}
        if delta is not None:
            body["delta"] = str(delta)
        if preview:
            return self._call("POST", f"/projects/{self.project}/queries/sql/preview", json=body)
        return _release(self._call("POST", f"/projects/{self.project}/queries/sql", json=body))

    def dummy(self, dataset: str | Cohort, n: int = 100, *, seed: int | None = None) -> Any:
        """Synthetic rows with the dataset's schema (or a cohort's per-person frame), from the
        catalog alone (no privacy cost): for writing and testing analysis code before spending
        budget on real answers."""
        import pandas as pd

        if isinstance(dataset, Cohort):
            body = self._call(
                "POST",
                f"/projects/{self.project}/cohorts/dummy",
                json={"cohort": dataset.to_dict(), "n": n, "seed": seed},
            )
        else:
            params: dict[str, Any] = {"n": n}
            if seed is not None:
                params["seed"] = seed
            body = self._call("GET", f"/projects/{self.project}/dummy/{dataset}", params=params)
        return pd.DataFrame(body["rows"], columns=body["columns"])

    def schema(self, cohort: Cohort) -> Any:
        """The columns a cohort's per-person frame will have (type, public domain, bounds), checked
        against the project's scope and the catalog: free, no data is read."""
        import pandas as pd

        columns = self._call("POST", f"/projects/{self.project}/cohorts/schema", json=cohort.to_dict())
        return pd.DataFrame(columns)

    def releases(self) -> list[Release]:
        return [_release(r) for r in self._call("GET", f"/projects/{self.project}/releases")]

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"<Enclave workspace for project {self.project} at {self._http.base_url}>"


def _release(body: dict[str, Any]) -> Release:
    return Release(
        id=body["id"],
        epsilon=Decimal(body["epsilon"]),
        values=body["values"],
        noise_scales=body["noise_scales"],
        plan=body["plan"],
        recorded=body.get("recorded", False),
        raw=body,
    )


def connect(url: str | None = None, token: str | None = None, project: int | None = None) -> Workspace:
    """Connect with the given settings, or those a workspace injects in its environment (in a
    sandboxed workspace the API is reached through a Unix socket, the only way out)."""
    socket = os.environ.get(ENV_SOCKET) if url is None else None
    url = url or os.environ.get(ENV_URL)
    token = token or os.environ.get(ENV_TOKEN)
    project_text = str(project) if project is not None else os.environ.get(ENV_PROJECT)
    missing = [
        name for name, value in ((ENV_URL, url), (ENV_TOKEN, token), (ENV_PROJECT, project_text)) if not value
    ]
    if missing:
        raise EnclaveClientError(
            0,
            "not_configured",
            f"set {', '.join(missing)} (a workspace sets them), or pass url, token and project",
        )
    assert url is not None
    assert token is not None
    assert project_text is not None
    return Workspace(url, token, int(project_text), socket=socket)
