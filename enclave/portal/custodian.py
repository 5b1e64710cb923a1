"""The custodian's dataset pages: versions and ingest reports, uploads, linkage, budget policy."""

from __future__ import annotations

from fastapi import APIRouter

from enclave.portal.web import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
