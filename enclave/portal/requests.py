"""The custodian's access-request pages: the queue, a request, the decision form, and the
projects on their datasets."""

from __future__ import annotations

from fastapi import APIRouter

from enclave.portal.web import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
