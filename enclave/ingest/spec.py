"""Source specs: what a custodian declares about an extract, in YAML.

A spec names the dataset, its custodian and population, the **contribution bound** (the most rows per
person a DP query may use) and every column with its role:

- ``person_id``: the linkage identifier, normalised and replaced by ``HMAC-SHA256(linkage key, id)``;
- ``direct_identifier``: dropped at ingest (names, record numbers);
- ``quasi_identifier``: kept only generalised (date of birth -> year of birth or age band, postcode ->
  postcode area);
- ``category``: with a **public domain** (inline values or a code-list file): the public group keys of
  the DP layer; a value outside the domain is quarantined;
- ``numeric``: integer or decimal with **bounds** and a unit; outside the bounds it is clamped or
  quarantined as the spec says;
- ``date``: with a range; outside it the row is quarantined.

Free text is not a role: a column that is not declared is refused.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from enclave.domain.catalog.datasets import PERSON_COLUMN, CatalogColumn, age_band_domain
from enclave.domain.errors import InvalidInput

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
BUILTIN_CODELISTS = Path(__file__).resolve().parents[1] / "codelists"


class Role(StrEnum):
    PERSON_ID = "person_id"
    DIRECT_IDENTIFIER = "direct_identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    CATEGORY = "category"
    NUMERIC = "numeric"
    DATE = "date"


class Generalisation(StrEnum):
    YEAR_OF_BIRTH = "year_of_birth"
    AGE_BAND_5 = "age_band_5"
    AGE_BAND_10 = "age_band_10"
    POSTCODE_AREA = "postcode_area"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeList(Strict):
    codelist: str = Field(description="file name in the spec's folder, or a built-in code list")
    column: str = Field(description="the column of the code list holding the values")


class Column(Strict):
    name: Name
    role: Role
    description: str = ""
    type: Literal["string", "integer", "decimal", "date"] | None = None
    nullable: bool = False
    # person_id
    normalise: Literal["nhs_number", "strip"] = "strip"
    # category
    domain: list[str] | CodeList | None = None
    # numeric
    bounds: tuple[float, float] | None = None
    unit: str | None = None
    out_of_bounds: Literal["clamp", "quarantine"] = "quarantine"
    # date
    range: tuple[date, date] | None = None
    # quasi-identifier
    generalise: Generalisation | None = None
    reference_date: date | None = None

    @model_validator(mode="after")
    def _role_fields(self) -> Column:
        if self.role is Role.CATEGORY and self.domain is None:
            raise ValueError("a category needs a public domain (domain: [values] or a codelist)")
        if self.role is Role.NUMERIC:
            if self.bounds is None:
                raise ValueError("a numeric column needs bounds: [lower, upper]")
            if self.bounds[0] >= self.bounds[1]:
                raise ValueError("bounds must be [lower, upper] with lower < upper")
            if self.type not in ("integer", "decimal"):
                raise ValueError("a numeric column has type integer or decimal")
        if self.role is Role.DATE and self.range is None:
            raise ValueError("a date column needs a range: [first, last]")
        if self.role is Role.DATE and self.range is not None and self.range[0] > self.range[1]:
            raise ValueError("range must be [first, last]")
        if self.role is Role.QUASI_IDENTIFIER:
            if self.generalise is None:
                raise ValueError(f"a quasi-identifier needs a generalisation ({', '.join(Generalisation)})")
            if (
                self.generalise in (Generalisation.AGE_BAND_5, Generalisation.AGE_BAND_10)
                and not self.reference_date
            ):
                raise ValueError("an age band needs a reference_date")
        if self.role is Role.PERSON_ID and self.nullable:
            raise ValueError("the person identifier cannot be nullable")
        return self

    @property
    def output_name(self) -> str | None:
        """The column's name in the research store (None if dropped)."""
        if self.role is Role.DIRECT_IDENTIFIER:
            return None
        if self.role is Role.PERSON_ID:
            return PERSON_COLUMN
        if self.role is Role.QUASI_IDENTIFIER and self.generalise is not None:
            return self.generalise.value
        return self.name


class SourceSpec(Strict):
    dataset: Name
    title: str
    description: str = ""
    custodian: str = Field(description="username of the dataset's custodian")
    population: Name = "default"
    contribution_bound: int = Field(ge=1, le=10_000)
    duplicates: Literal["quarantine", "keep"] = "quarantine"
    columns: list[Column] = Field(min_length=2)

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: list[Column]) -> list[Column]:
        names = [c.name for c in columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"columns declared twice: {', '.join(dupes)}")
        persons = [c.name for c in columns if c.role is Role.PERSON_ID]
        if len(persons) != 1:
            raise ValueError(f"exactly one column must have role person_id (found {len(persons)})")
        outputs = [c.output_name for c in columns if c.output_name]
        clash = sorted({n for n in outputs if outputs.count(n) > 1})
        if clash:
            raise ValueError(f"two columns would be stored under the same name: {', '.join(clash)}")
        return columns

    @property
    def person_column(self) -> Column:
        return next(c for c in self.columns if c.role is Role.PERSON_ID)


class ResolvedColumn(BaseModel):
    """A column as the catalog records it: the domain expanded to values, as the DP layer needs."""

    model_config = ConfigDict(frozen=True)

    name: str
    source: str
    role: Role
    type: str
    description: str
    nullable: bool
    domain: list[str] | None = None
    lower: float | None = None
    upper: float | None = None
    unit: str | None = None
    first: date | None = None
    last: date | None = None


def _read_codelist(ref: CodeList, base: Path) -> list[str]:
    candidates = [base / ref.codelist, BUILTIN_CODELISTS / ref.codelist]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise InvalidInput(
            f"code list {ref.codelist!r} not found next to the spec nor among the built-in code lists"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or ref.column not in reader.fieldnames:
            raise InvalidInput(f"code list {ref.codelist!r} has no column {ref.column!r}")
        values = [row[ref.column] for row in reader if row[ref.column]]
    if not values:
        raise InvalidInput(f"code list {ref.codelist!r} is empty")
    return sorted(set(values))


AGE_BAND_EDGES = {Generalisation.AGE_BAND_5: 5, Generalisation.AGE_BAND_10: 10}


class LoadedSpec(BaseModel):
    """A validated spec with its code lists read, and the fingerprint of exactly what was declared."""

    model_config = ConfigDict(frozen=True)

    spec: SourceSpec
    columns: list[ResolvedColumn]
    sha256: str
    text: str

    @property
    def dataset(self) -> str:
        return self.spec.dataset

    # What the catalog's use cases read of a spec (:class:`enclave.domain.ports.DatasetSpec`).

    @property
    def custodian(self) -> str:
        return self.spec.custodian

    @property
    def population(self) -> str:
        return self.spec.population

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def contribution_bound(self) -> int:
        return self.spec.contribution_bound

    def catalog_columns(self) -> tuple[CatalogColumn, ...]:
        """The output columns as the catalog records them (``DatasetVersion.columns``)."""
        return tuple(CatalogColumn.from_json(c.model_dump(mode="json")) for c in self.columns)


def resolve(spec: SourceSpec, base: Path) -> list[ResolvedColumn]:
    resolved: list[ResolvedColumn] = []
    for col in spec.columns:
        out = col.output_name
        if out is None:
            continue
        kw: dict[str, Any] = {
            "name": out,
            "source": col.name,
            "role": col.role,
            "description": col.description,
            "nullable": col.nullable,
        }
        if col.role is Role.PERSON_ID:
            kw["type"] = "string"
        elif col.role is Role.CATEGORY:
            kw["type"] = "string"
            kw["domain"] = (
                _read_codelist(col.domain, base)
                if isinstance(col.domain, CodeList)
                else sorted({str(v) for v in col.domain or []})
            )
        elif col.role is Role.NUMERIC:
            assert col.bounds is not None
            kw.update(type=col.type, lower=col.bounds[0], upper=col.bounds[1], unit=col.unit)
        elif col.role is Role.DATE:
            assert col.range is not None
            kw.update(type="date", first=col.range[0], last=col.range[1])
        elif col.role is Role.QUASI_IDENTIFIER:
            g = col.generalise
            if g is Generalisation.YEAR_OF_BIRTH:
                kw.update(role=Role.NUMERIC, type="integer", lower=1900, upper=date.today().year, unit="year")
            elif g in AGE_BAND_EDGES:
                kw.update(role=Role.CATEGORY, type="string", domain=age_band_domain(AGE_BAND_EDGES[g]))
            else:
                kw.update(role=Role.CATEGORY, type="string", domain=None)
        resolved.append(ResolvedColumn(**kw))
    return resolved


def parse_spec(text: str, *, base: Path, source: str = "spec") -> LoadedSpec:
    """Parse and validate a spec; every problem is one InvalidInput naming the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{source} must be a YAML mapping with dataset, title, custodian, columns, ...")
    try:
        spec = SourceSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err["loc"])
            if loc.startswith("columns.") and isinstance(raw.get("columns"), list):
                idx = err["loc"][1]
                if (
                    isinstance(idx, int)
                    and idx < len(raw["columns"])
                    and isinstance(raw["columns"][idx], dict)
                ):
                    loc = loc.replace(f"columns.{idx}", f"columns[{raw['columns'][idx].get('name', idx)}]", 1)
            problems.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}" if loc else err["msg"])
        raise InvalidInput(f"{source} is invalid: " + "; ".join(problems)) from None
    try:
        columns = resolve(spec, base)
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc.detail}") from None
    return LoadedSpec(
        spec=spec,
        columns=columns,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        text=text,
    )


def load_spec(path: Path) -> LoadedSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"spec file {path} does not exist") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"spec file {path} is not UTF-8 text") from None
    return parse_spec(text, base=path.parent, source=path.name)
