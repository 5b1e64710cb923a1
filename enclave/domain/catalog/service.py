"""Use cases of the custodian pipeline: ingest, opt-outs, the catalog, linkage reports, DCAT-AP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclave.domain.audit.chain import AuditEvent
from enclave.domain.catalog.datasets import (
    NHS_LIKE,
    CatalogColumn,
    Dataset,
    DatasetVersion,
    check_custodian_of,
    check_ingest,
    check_manage_opt_outs,
    is_custodian_of,
)
from enclave.domain.catalog.reports import IngestReport
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import InvalidInput, NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.ports import DatasetSpec, Fault, IngestPipeline, Progress, UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True)
class LinkagePair:
    a: str
    b: str
    in_a: int
    in_b: int
    matched: int

    @property
    def only_a(self) -> int:
        return self.in_a - self.matched

    @property
    def only_b(self) -> int:
        return self.in_b - self.matched

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "persons_a": self.in_a,
            "persons_b": self.in_b,
            "matched": self.matched,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "match_rate_a": round(self.matched / self.in_a, 4) if self.in_a else None,
            "match_rate_b": round(self.matched / self.in_b, 4) if self.in_b else None,
        }


class CatalogService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        ingest: IngestPipeline,
        clock: Clock = utcnow,
    ) -> None:
        self._uow = uow
        self._ingest = ingest
        self._clock = clock

    # --- ingest ---------------------------------------------------------------------------

    def _opt_outs(self) -> list[str]:
        with self._uow(write=False) as uow:
            return uow.opt_outs.list_opt_outs()

    def ingest(
        self,
        actor: Actor,
        spec: DatasetSpec,
        source: Path,
        *,
        source_name: str | None = None,
        fault: Fault | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Validate ``source`` against ``spec`` and publish it as the dataset's next version
        (``progress`` is told what a long ingest is doing, in a sentence)."""
        name = spec.dataset
        with self._uow(write=False) as uow:
            dataset = uow.catalog.get_dataset(name)
            custodian = uow.users.get_by_username(spec.custodian)
        check_ingest(actor, dataset, spec.custodian)
        if custodian is None or not custodian.has_role(Role.CUSTODIAN):
            raise InvalidInput(
                f"spec names {spec.custodian!r} as custodian, who is not a user with the custodian role"
            )
        if dataset is not None and dataset.population != spec.population:
            raise InvalidInput(
                f"{name} belongs to population {dataset.population!r}; a spec cannot move it to"
                f" {spec.population!r}"
            )
        with self._ingest.lock(name):
            staged = self._ingest.stage(
                spec,
                source,
                opt_outs=self._opt_outs(),
                source_name=source_name,
                fault=fault,
                progress=progress,
            )
            report = staged.report
            published: str | None = None
            try:
                with self._uow() as uow:
                    current = uow.catalog.get_dataset(name)
                    if current is None:
                        current = uow.catalog.add_dataset(
                            name=name,
                            title=spec.title,
                            description=spec.description,
                            population=spec.population,
                            custodian_id=custodian.id,
                            contribution_bound=spec.contribution_bound,
                            created_at=self._clock(),
                            audit=AuditEvent(
                                "dataset.created",
                                actor.name,
                                "dataset",
                                name,
                                {"custodian": custodian.username, "population": spec.population},
                            ),
                        )
                    number = max((v.version for v in uow.catalog.list_versions(current.id)), default=0) + 1
                    report.version = number
                    if fault:
                        fault("before_publish")
                    path = published = self._ingest.publish(staged, number)
                    if fault:
                        fault("published")
                    uow.catalog.publish_version(
                        current.id,
                        DatasetVersion(
                            dataset_id=current.id,
                            version=number,
                            path=path,
                            created_at=self._clock(),
                            created_by=actor.name,
                            source_name=report.source_name,
                            source_sha256=report.source_sha256,
                            spec_sha256=spec.sha256,
                            spec_yaml=spec.text,
                            columns=spec.catalog_columns(),
                            report=report.as_dict(),
                            rows_written=report.rows_written,
                            persons=report.persons,
                            key_fingerprint=self._ingest.key_fingerprint(),
                        ),
                        title=spec.title,
                        description=spec.description,
                        contribution_bound=spec.contribution_bound,
                        audit=AuditEvent(
                            "dataset.version_published",
                            actor.name,
                            "dataset",
                            name,
                            {
                                "version": number,
                                "source_sha256": report.source_sha256,
                                "spec_sha256": spec.sha256,
                                "rows_read": report.rows_read,
                                "rows_written": report.rows_written,
                                "rows_quarantined": report.rows_quarantined,
                                "rows_opted_out": report.rows_opted_out,
                                "reasons": report.reasons,
                            },
                        ),
                    )
                    if fault:
                        fault("recorded")
            except BaseException:
                # Nothing committed: the catalog still points at the previous version. Remove what
                # this attempt wrote, published or not.
                self._ingest.discard(staged, published)
                raise
        return report

    # --- opt-outs -------------------------------------------------------------------------

    def load_opt_outs(self, actor: Actor, source: Path) -> tuple[int, int]:
        """Replace the opt-out list with the identifiers in ``source`` (a CSV with a column
        ``nhs_number``, or one identifier per line). Stored as linkage pseudonyms only.
        Returns (stored, rejected as malformed)."""
        check_manage_opt_outs(actor)
        raw = self._ingest.read_identifiers(source)
        valid = [v for v in raw if NHS_LIKE.match(v)]
        rejected = len(raw) - len(valid)
        pseudonyms = self._ingest.pseudonymise(valid)
        with self._uow() as uow:
            stored = uow.opt_outs.replace_opt_outs(
                pseudonyms,
                self._clock(),
                audit=AuditEvent(
                    "optouts.loaded",
                    actor.name,
                    "opt_out_list",
                    "national",
                    {"stored": len(set(pseudonyms)), "rejected": rejected, "source": source.name},
                ),
            )
        return stored, rejected

    # --- catalog views --------------------------------------------------------------------

    def build_views(self, actor: Actor) -> list[str]:
        """Write the bounded view of every current version that lacks one (versions ingested before
        views existed, or whose dataset's bound no longer matches): the DP engine then measures them
        row-level instead of truncating every person in every query. Idempotent; operators and
        custodians (their own datasets). Returns the datasets whose view was written."""
        if not (actor.is_operator or actor.has_role(Role.ADMIN) or actor.has_role(Role.CUSTODIAN)):
            raise PermissionDenied("building bounded views is for administrators and custodians")
        with self._uow(write=False) as uow:
            datasets = uow.catalog.list_datasets()
            versions = {
                d.name: uow.catalog.get_version(d.id, d.current_version)
                for d in datasets
                if d.current_version is not None
                and (actor.is_operator or actor.has_role(Role.ADMIN) or d.custodian == actor.name)
            }
        built = []
        for dataset in datasets:
            version = versions.get(dataset.name)
            if version is None:
                continue
            if not self._ingest.needs_view(version.path, dataset.contribution_bound):
                continue
            categories = {
                c.name: list(c.domain) for c in version.columns if c.role == "category" and c.domain
            }
            with self._ingest.lock(dataset.name):
                self._ingest.build_view(dataset.name, version.path, dataset.contribution_bound, categories)
            built.append(dataset.name)
            with self._uow() as uow:
                uow.audit.append(
                    AuditEvent(
                        "catalog.view_built",
                        actor.name,
                        "dataset",
                        dataset.name,
                        {"version": version.version, "bound": dataset.contribution_bound},
                    )
                )
        return built

    def list_datasets(self, actor: Actor) -> list[dict[str, Any]]:
        with self._uow(write=False) as uow:
            return [self._view(uow, actor, d) for d in uow.catalog.list_datasets()]

    def get_dataset(self, actor: Actor, name: str) -> dict[str, Any]:
        with self._uow(write=False) as uow:
            dataset = uow.catalog.get_dataset(name)
            if dataset is None:
                raise NotFound(f"no dataset named {name!r}")
            return self._view(uow, actor, dataset)

    def _view(self, uow: UnitOfWork, actor: Actor, dataset: Dataset) -> dict[str, Any]:
        current = _current(uow, dataset)
        view = _public_view(dataset, current)
        if is_custodian_of(actor, dataset):
            view["current_version"] = dataset.current_version
            view["rows"] = current.rows_written if current else 0
            view["persons"] = current.persons if current else 0
            view["max_epsilon"] = str(dataset.max_epsilon)
        return view

    def public_catalogue(self, name: str | None = None) -> list[dict[str, Any]]:
        """What anyone may read of the published datasets (no login), or of the one named ``name``:
        description, custodian, the current version's columns with their roles and public domains,
        the versions' numbers and dates. Never a count of rows or persons, an ingest report or a
        quarantine."""
        with self._uow(write=False) as uow:
            if name is None:
                datasets = uow.catalog.list_datasets()
            else:
                found = uow.catalog.get_dataset(name)
                datasets = [found] if found is not None else []
            entries = []
            for dataset in datasets:
                if dataset.current_version is None:
                    continue
                versions = uow.catalog.list_versions(dataset.id)
                current = next(v for v in versions if v.version == dataset.current_version)
                entry = _public_view(dataset, current)
                entry["versions"] = [
                    {
                        "version": v.version,
                        "current": v.version == dataset.current_version,
                        "published_at": v.created_at.isoformat(),
                    }
                    for v in versions
                ]
                entries.append(entry)
        return entries

    def versions(self, actor: Actor, name: str) -> list[dict[str, Any]]:
        with self._uow(write=False) as uow:
            dataset = uow.catalog.get_dataset(name)
            if dataset is None:
                raise NotFound(f"no dataset named {name!r}")
            check_custodian_of(actor, dataset)
            return [
                {
                    "version": v.version,
                    "current": v.version == dataset.current_version,
                    "created_at": v.created_at.isoformat(),
                    "created_by": v.created_by,
                    "source_name": v.source_name,
                    "source_sha256": v.source_sha256,
                    "spec_sha256": v.spec_sha256,
                    "key_fingerprint": v.key_fingerprint,
                    "report": v.report,
                }
                for v in uow.catalog.list_versions(dataset.id)
            ]

    def current_parquet(self, name: str) -> Path:
        """The current version's full data file, by which its table is named (for the engine and the
        linkage report). A version as ingest writes it has no such file: read it with
        ``enclave.store.layout.scan_table``."""
        with self._uow(write=False) as uow:
            dataset = uow.catalog.get_dataset(name)
            if dataset is None or dataset.current_version is None:
                raise NotFound(f"no dataset named {name!r} with data")
            version = uow.catalog.get_version(dataset.id, dataset.current_version)
        assert version is not None
        return self._ingest.table_file(version.path)

    # --- linkage --------------------------------------------------------------------------

    def linkage_report(self, actor: Actor, population: str | None = None) -> dict[str, Any]:
        """For each pair of datasets of a population: persons in each, matched, only in one."""
        if not (actor.is_operator or actor.has_role(Role.CUSTODIAN) or actor.has_role(Role.ADMIN)):
            raise PermissionDenied("the linkage report needs the custodian or admin role")
        if actor.project_scope is not None:
            raise PermissionDenied("a workspace token cannot read linkage reports")
        with self._uow(write=False) as uow:
            datasets = [d for d in uow.catalog.list_datasets() if d.current_version is not None]
            paths: Mapping[str, str] = {
                d.name: version.path for d in datasets if (version := _current(uow, d)) is not None
            }
        if population is not None:
            datasets = [d for d in datasets if d.population == population]
        visible = [d for d in datasets if is_custodian_of(actor, d)]
        populations: dict[str, list[Dataset]] = {}
        for d in visible:
            populations.setdefault(d.population, []).append(d)
        result: dict[str, Any] = {}
        for pop, members in sorted(populations.items()):
            counts, matched = self._ingest.linkage({d.name: paths[d.name] for d in members})
            names = sorted(counts)
            pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
            result[pop] = {
                "datasets": counts,
                "pairs": [LinkagePair(a, b, counts[a], counts[b], matched[a, b]).as_dict() for a, b in pairs],
            }
        return result

    # --- DCAT-AP --------------------------------------------------------------------------

    def dcat(self, base_url: str) -> dict[str, Any]:
        """Dataset metadata as DCAT-AP JSON-LD for national data portals (no counts, no data)."""
        with self._uow(write=False) as uow:
            datasets = [d for d in uow.catalog.list_datasets() if d.current_version is not None]
            columns = {d.name: version.columns for d in datasets if (version := _current(uow, d)) is not None}
        return {
            "@context": {
                "dcat": "http://www.w3.org/ns/dcat#",
                "dct": "http://purl.org/dc/terms/",
                "foaf": "http://xmlns.com/foaf/0.1/",
                "xsd": "http://www.w3.org/2001/XMLSchema#",
            },
            "@id": f"{base_url}/catalog/dcat",
            "@type": "dcat:Catalog",
            "dct:title": "Enclave research datasets",
            "dct:description": (
                "Pseudonymised health datasets available for approved research through differential"
                " privacy; no row-level access."
            ),
            "dcat:dataset": [
                {
                    "@id": f"{base_url}/catalog/datasets/{d.name}",
                    "@type": "dcat:Dataset",
                    "dct:identifier": d.name,
                    "dct:title": d.title,
                    "dct:description": d.description,
                    "dct:modified": {"@value": d.updated_at.date().isoformat(), "@type": "xsd:date"},
                    "dct:publisher": {"@type": "foaf:Agent", "foaf:name": d.custodian},
                    "dct:accessRights": {
                        "@id": "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
                    },
                    "dcat:keyword": [d.population],
                    "dct:conformsTo": [
                        {
                            "dct:title": f"{c.name} ({c.role}, {c.type})",
                            "dct:description": c.description,
                        }
                        for c in columns[d.name]
                    ],
                    "dcat:distribution": [
                        {
                            "@type": "dcat:Distribution",
                            "dct:title": "Differentially private queries in an approved Enclave project",
                            "dcat:accessURL": {"@id": f"{base_url}/catalog/datasets/{d.name}"},
                            "dct:format": "DP query API",
                        }
                    ],
                }
                for d in datasets
            ],
        }


def _current(uow: UnitOfWork, dataset: Dataset) -> DatasetVersion | None:
    """The dataset's current version, if it has one."""
    if dataset.current_version is None:
        return None
    return uow.catalog.get_version(dataset.id, dataset.current_version)


def _public_view(dataset: Dataset, current: DatasetVersion | None) -> dict[str, Any]:
    """What any signed-in user, and the public catalogue, read of a dataset."""
    return {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "population": dataset.population,
        "custodian": dataset.custodian,
        "contribution_bound": dataset.contribution_bound,
        "updated_at": dataset.updated_at.isoformat(),
        "columns": [_public_column(c) for c in current.columns] if current else [],
    }


def _public_column(column: CatalogColumn) -> dict[str, Any]:
    """A column as researchers see it: every recorded field that is set, but where it came from."""
    return {k: v for k, v in column.as_json().items() if k != "source" and v is not None}
