"""The custodian pipeline over real HTTP: uploads, refusals, the catalog by role, DCAT, linkage."""

from __future__ import annotations

from pathlib import Path

import httpx

from enclave.domain.identity.accounts import Role
from enclave.wiring import Services
from tests.conftest import LiveServer, make_account
from tests.integration.test_ingest import HEADER, P1, ROWS_BAD, ROWS_OK, SPECS


def upload(client: httpx.Client, spec: Path, extract: bytes, name: str = "admissions.csv") -> httpx.Response:
    return client.post(
        "/catalog/ingest",
        files={
            "spec": (spec.name, spec.read_bytes(), "application/yaml"),
            "extract": (name, extract, "text/csv"),
        },
    )


def extract(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def test_custodian_ingests_over_http_and_researchers_see_only_the_schema(
    api: LiveServer, services: Services
) -> None:
    """A custodian uploads spec and extract and gets the ingest report; a researcher's catalog shows
    columns and descriptions but no counts; the custodian sees counts and versions."""
    custodian = make_account(services, "custodian", Role.CUSTODIAN)
    rosa = make_account(services, "rosa", Role.RESEARCHER)
    with api.client(custodian) as c:
        r = upload(c, SPECS / "admissions.yaml", extract(ROWS_OK + list(ROWS_BAD)))
        assert r.status_code == 201, r.text
        report = r.json()
        assert report["version"] == 1
        assert report["rows_written"] == len(ROWS_OK)
        assert report["rows_quarantined"] == len(ROWS_BAD)
        own = c.get("/catalog/datasets/admissions").json()
        assert own["rows"] == len(ROWS_OK)
        assert (
            c.get("/catalog/datasets/admissions/versions").json()[0]["report"]["rows_read"]
            == report["rows_read"]
        )
    with api.client(rosa) as c:
        (dataset,) = c.get("/catalog/datasets").json()
        assert dataset["name"] == "admissions"
        assert "rows" not in dataset
        assert {col["name"] for col in dataset["columns"]} >= {"person_id", "cost_gbp"}
        r = upload(c, SPECS / "admissions.yaml", extract(ROWS_OK))
        assert r.status_code == 403
        assert c.get("/catalog/datasets/admissions/versions").status_code == 403
        assert c.get("/catalog/linkage").status_code == 403
        assert c.get("/catalog/datasets/nothing").json()["error"] == "not_found"


def test_bad_uploads_are_4xx_with_the_error_model(
    api: LiveServer, services: Services, tmp_path: Path
) -> None:
    """A file not matching its spec is 400 naming the columns; a broken spec 400; too large 413;
    and nothing is published."""
    custodian = make_account(services, "custodian", Role.CUSTODIAN)
    broken_spec = tmp_path / "broken.yaml"
    broken_spec.write_text("dataset: x\ncolumns: 3\n")
    services.settings.max_upload_mb = 1
    with api.client(custodian) as c:
        r = upload(c, SPECS / "admissions.yaml", b"nhs_number,admission_id\n9434765919,A1\n")
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_input"
        assert "missing column(s)" in r.json()["detail"]
        r = upload(c, broken_spec, extract(ROWS_OK))
        assert r.status_code == 400
        assert "broken.yaml is invalid" in r.json()["detail"]
        r = upload(c, SPECS / "admissions.yaml", extract(ROWS_OK * 30_000))
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"
        r = c.post("/catalog/ingest", files={"spec": ("s.yaml", b"x")})
        assert r.status_code == 422
        assert "extract" in r.json()["detail"]
        assert c.get("/catalog/datasets").json() == []


def test_opt_outs_linkage_and_dcat_over_http(api: LiveServer, services: Services) -> None:
    """The opt-out list is replaced by upload; the linkage report and the public DCAT export answer."""
    custodian = make_account(services, "custodian", Role.CUSTODIAN)
    with api.client(custodian) as c:
        for blank in (b"", b"\n\n", b" ,\n"):  # found by schemathesis: a blank first row was a 500
            r = c.put("/optouts", files={"file": ("optouts.csv", blank, "text/csv")})
            assert r.status_code == 400, r.text
            assert "empty" in r.json()["detail"]
        r = c.put("/optouts", files={"file": ("optouts.csv", f"\nnhs_number\n{P1}\n".encode(), "text/csv")})
        assert r.json() == {"stored": 1, "rejected": 0}
        report = upload(c, SPECS / "admissions.yaml", extract(ROWS_OK)).json()
        assert report["rows_opted_out"] == 2
        linkage = c.get("/catalog/linkage").json()
        assert linkage["synthetic_england"]["datasets"] == {"admissions": 3}
    with api.client() as anonymous:
        doc = anonymous.get("/catalog/dcat").json()
        assert [d["dct:identifier"] for d in doc["dcat:dataset"]] == ["admissions"]
        assert anonymous.get("/catalog/datasets").status_code == 401
