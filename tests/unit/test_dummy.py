"""Dummy data: rows made from the catalog alone, within every domain, bound and range of every
shipped spec, with per-project dummy pseudonyms that can never equal a real one."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from enclave.domain.errors import InvalidInput
from enclave.dp.dummy import MAX_DUMMY_ROWS, NULL_RATE, dummy_frame, dummy_person_ids, is_dummy_person_id
from enclave.ingest.spec import PERSON_COLUMN, LoadedSpec, load_spec
from enclave.keys import KeyStore, Pseudonymiser, project_pseudonym

SPECS = sorted((Path(__file__).resolve().parents[2] / "enclave" / "specs").glob("*.yaml"))
REAL_PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")
ROWS = 3000


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys" / "master.key", create=True)


def catalog_columns(loaded: LoadedSpec) -> list[dict[str, Any]]:
    """The column metadata exactly as the ingest service records it in the catalog
    (``DatasetVersion.columns``, see ``enclave.domain.catalog.service``)."""
    return [c.model_dump(mode="json") for c in loaded.columns]


def make(
    loaded: LoadedSpec, keys: KeyStore, *, n: int = ROWS, seed: int | None = 7, project: int = 1
) -> pd.DataFrame:
    return dummy_frame(
        catalog_columns(loaded),
        n,
        project_key=keys.project_key(project),
        contribution_bound=loaded.spec.contribution_bound,
        seed=seed,
    )


def test_every_shipped_spec_is_covered() -> None:
    """The parametrised tests below run on each spec in enclave/specs (none is skipped silently)."""
    assert {p.stem for p in SPECS} >= {"admissions", "deaths", "demographics", "lab_results", "prescriptions"}


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_values_respect_every_domain_bound_and_range(spec_path: Path, keys: KeyStore) -> None:
    """Categories come from their public domain, numerics lie within their bounds (whole numbers
    for integer columns), dates within their declared range; the columns and their order are the
    catalog's."""
    loaded = load_spec(spec_path)
    frame = make(loaded, keys)
    assert len(frame) == ROWS
    assert list(frame.columns) == [c.name for c in loaded.columns]
    for col in loaded.columns:
        values = frame[col.name].dropna()
        assert len(values) > 0, col.name
        if col.role == "person_id":
            continue
        if col.role == "category":
            if col.domain:
                assert set(values) <= set(col.domain), col.name
            else:
                # No public domain (postcode area): opaque placeholders, never invented real values.
                assert set(values) <= {f"{col.name}_{i}" for i in range(1, 6)}, col.name
        elif col.role == "numeric":
            assert col.lower is not None
            assert col.upper is not None
            assert values.min() >= col.lower, col.name
            assert values.max() <= col.upper, col.name
            if col.type == "integer":
                assert str(frame[col.name].dtype) == "Int64", col.name
            else:
                assert frame[col.name].dtype == "float64", col.name
        elif col.role == "date":
            assert col.first is not None
            assert col.last is not None
            assert values.min() >= pd.Timestamp(col.first), col.name
            assert values.max() <= pd.Timestamp(col.last), col.name
        else:  # pragma: no cover - the catalog has no other roles
            pytest.fail(f"unexpected role {col.role} for {col.name}")


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_missing_values_only_where_nullable(spec_path: Path, keys: KeyStore) -> None:
    """Nullable columns have some missing values (about NULL_RATE), the others none, and the person
    identifier never."""
    loaded = load_spec(spec_path)
    frame = make(loaded, keys)
    for col in loaded.columns:
        missing = int(frame[col.name].isna().sum())
        if col.nullable:
            assert 0.5 * NULL_RATE * ROWS < missing < 2 * NULL_RATE * ROWS, col.name
        else:
            assert missing == 0, col.name


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_rows_per_person_respect_the_contribution_bound(spec_path: Path, keys: KeyStore) -> None:
    """Nobody has more rows than the dataset's contribution bound, and where the bound allows it,
    people have several rows, as they will in the real data."""
    loaded = load_spec(spec_path)
    bound = loaded.spec.contribution_bound
    per_person = make(loaded, keys)[PERSON_COLUMN].value_counts()
    assert per_person.max() <= bound
    if bound > 1:
        assert per_person.max() > 1
        assert per_person.mean() > 1.5


def test_dummy_pseudonyms_never_equal_real_ones(keys: KeyStore) -> None:
    """Real pseudonyms (linkage and per-project) are 32 lower-case hex characters; dummy ones
    contain non-hex letters, so the sets are disjoint by construction. Checked against real
    pseudonyms of the same project, and of the dummy inputs themselves."""
    project = 3
    nhs_numbers = [f"9{i:09d}" for i in range(5000)]
    linkage = Pseudonymiser(keys.linkage_key()).many(nhs_numbers)
    real = set(linkage) | {project_pseudonym(keys, project, p) for p in linkage}
    # The keyed function applied to the very strings dummy ids are derived from, as if they were
    # linkage pseudonyms: still never a dummy id.
    real |= {project_pseudonym(keys, project, f"dummy:{k}") for k in range(1000)}
    assert all(REAL_PSEUDONYM.fullmatch(p) for p in real)

    frame = make(load_spec(SPECS[0]), keys, project=project, n=5000)
    dummy = set(frame[PERSON_COLUMN])
    dummy |= set(dummy_person_ids(keys.project_key(project), range(1000)))
    assert dummy.isdisjoint(real)
    assert all(is_dummy_person_id(p) and len(p) == 32 and not REAL_PSEUDONYM.fullmatch(p) for p in dummy)
    assert not any(is_dummy_person_id(p) for p in real)


def test_dummy_pseudonyms_are_per_project(keys: KeyStore) -> None:
    """Two projects' dummy frames share no identifier, as their real pseudonyms share none."""
    loaded = load_spec(SPECS[0])
    one = set(make(loaded, keys, project=1)[PERSON_COLUMN])
    two = set(make(loaded, keys, project=2)[PERSON_COLUMN])
    assert one.isdisjoint(two)


def test_same_seed_same_frame_and_columns_are_independent(keys: KeyStore) -> None:
    """A seed reproduces the frame exactly; another seed gives another; dropping a column leaves the
    other columns' values unchanged (each column has its own stream)."""
    loaded = next(load_spec(p) for p in SPECS if p.stem == "admissions")
    first = make(loaded, keys, seed=11)
    pd.testing.assert_frame_equal(first, make(loaded, keys, seed=11))
    other = make(loaded, keys, seed=12)
    assert not first.equals(other)
    assert set(first[PERSON_COLUMN]).isdisjoint(set(other[PERSON_COLUMN]))

    columns = [c for c in catalog_columns(loaded) if c["name"] != "icd10_code"]
    fewer = dummy_frame(columns, ROWS, project_key=keys.project_key(1), contribution_bound=10, seed=11)
    pd.testing.assert_frame_equal(fewer, first.drop(columns=["icd10_code"]))


def test_without_a_seed_frames_differ(keys: KeyStore) -> None:
    loaded = load_spec(SPECS[0])
    assert not make(loaded, keys, seed=None).equals(make(loaded, keys, seed=None))


def test_one_seed_links_a_projects_datasets(keys: KeyStore) -> None:
    """With one seed, dummy frames of two datasets share people, so notebooks that link sources
    on person_id find matches in dummy data too."""
    specs = {p.stem: load_spec(p) for p in SPECS}
    demographics = make(specs["demographics"], keys, n=500)
    admissions = make(specs["admissions"], keys, n=1500)
    shared = set(demographics[PERSON_COLUMN]) & set(admissions[PERSON_COLUMN])
    assert len(shared) > 100


def test_dtypes_are_usable_in_pandas(keys: KeyStore) -> None:
    """Dates compare with timestamps, integers stay integers despite gaps, text is text."""
    loaded = next(load_spec(p) for p in SPECS if p.stem == "admissions")
    frame = make(loaded, keys, n=500)
    assert pd.api.types.is_datetime64_any_dtype(frame["admission_date"])
    assert (frame["admission_date"] >= pd.Timestamp(date(2019, 1, 1))).all()
    assert str(frame["length_of_stay_days"].dtype) == "Int64"
    assert frame["length_of_stay_days"].isna().any()
    assert pd.api.types.is_string_dtype(frame["icd10_code"])


@pytest.mark.parametrize("n", [0, -1, MAX_DUMMY_ROWS + 1, True, 2.5, "10"])
def test_row_count_limits(n: Any, keys: KeyStore) -> None:
    """Between 1 and a million rows, said as a sentence."""
    with pytest.raises(InvalidInput, match="dummy data has 1 to 1,000,000 rows"):
        dummy_frame(catalog_columns(load_spec(SPECS[0])), n, project_key=keys.project_key(1), seed=1)


def test_single_row_and_single_value_domains(keys: KeyStore) -> None:
    """Edge cases: one row; a one-value domain; a numeric whose bounds allow one whole number."""
    columns = [
        {"name": "person_id", "role": "person_id", "type": "string", "nullable": False},
        {"name": "sex", "role": "category", "type": "string", "nullable": False, "domain": ["F"]},
        {"name": "k", "role": "numeric", "type": "integer", "nullable": False, "lower": 2.5, "upper": 3.5},
        {
            "name": "d",
            "role": "date",
            "type": "date",
            "nullable": True,
            "first": "2020-02-29",
            "last": "2020-02-29",
        },
    ]
    frame = dummy_frame(columns, 1, project_key=keys.project_key(1), contribution_bound=3, seed=0)
    assert len(frame) == 1
    big = dummy_frame(columns, 200, project_key=keys.project_key(1), contribution_bound=3, seed=0)
    assert set(big["sex"]) == {"F"}
    assert set(big["k"]) == {3}
    assert set(big["d"].dropna()) == {pd.Timestamp("2020-02-29")}


@pytest.mark.parametrize(
    ("column", "sentence"),
    [
        ({"name": "x", "role": "free_text"}, "column 'x' has role 'free_text'"),
        ({"name": "x", "role": "numeric", "type": "integer"}, "has no finite lower bound"),
        (
            {"name": "x", "role": "numeric", "type": "string", "lower": 0, "upper": 1},
            "not integer or decimal",
        ),
        (
            {"name": "x", "role": "numeric", "type": "decimal", "lower": 2, "upper": 1},
            "above its upper bound",
        ),
        ({"name": "x", "role": "numeric", "type": "integer", "lower": 0.2, "upper": 0.8}, "no whole number"),
        ({"name": "x", "role": "date", "first": "2020-01-01"}, "has no last date"),
        ({"name": "x", "role": "date", "first": "2021-01-01", "last": "2020-01-01"}, "after its last date"),
        ({"role": "category"}, "a column's metadata has no name"),
    ],
)
def test_unusable_metadata_is_refused(column: dict[str, Any], sentence: str, keys: KeyStore) -> None:
    """Metadata the generator cannot honour is an error naming the column, never a guess."""
    with pytest.raises(InvalidInput, match=re.escape(sentence)):
        dummy_frame([column], 10, project_key=keys.project_key(1), seed=0)


def test_other_argument_errors(keys: KeyStore) -> None:
    key = keys.project_key(1)
    cols = catalog_columns(load_spec(SPECS[0]))
    with pytest.raises(InvalidInput, match="contribution bound"):
        dummy_frame(cols, 10, project_key=key, contribution_bound=0)
    with pytest.raises(InvalidInput, match="seed"):
        dummy_frame(cols, 10, project_key=key, seed=-1)
    with pytest.raises(InvalidInput, match="at least one column"):
        dummy_frame([], 10, project_key=key)
    with pytest.raises(InvalidInput, match="more than once"):
        dummy_frame(cols + cols[:1], 10, project_key=key)
