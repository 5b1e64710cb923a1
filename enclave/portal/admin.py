"""The administrator's pages: users and their tokens, the audit viewer, the status page."""

from __future__ import annotations

from fastapi import APIRouter

from enclave.portal.web import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
