"""Property-based API testing with schemathesis against the live server: no input gives a 5xx, and
every 4xx answers with the error model.

Driven through schemathesis' strategies rather than its pytest plugin, so each operation is
fuzzed with both schema-conforming and schema-violating data against one live server.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from enclave.domain.identity.accounts import Role
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer, make_account

# 10 valid and 10 invalid cases for each of the ~60 operations, on each database: about 1,200 calls,
# about a minute a database on a slow machine. At 30 this one test was a third of the suite and CI neared
# its 20 minutes; at 15 it still took 92 s a database on a slow day (CI 17.5 minutes).
EXAMPLES_PER_OPERATION_AND_MODE = 10
# What uvicorn answers, itself, to a request that is not valid HTTP (an invalid-mode case can put bytes
# in a header that HTTP forbids): the application never sees it, so it has no error model to give.
UNPARSABLE = "Invalid HTTP request received."


@pytest.mark.slow
def test_no_input_causes_a_server_error(api: LiveServer, services: Services) -> None:
    """Whatever schemathesis sends (as an admin, with a fresh token each time so a generated logout
    or revocation cannot lock the run out), the answer is never 5xx and every 4xx has the error model."""
    make_account(services, "admin", Role.ADMIN, Role.RESEARCHER)
    make_account(services, "target", Role.RESEARCHER)
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    calls = 0

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal calls
                token = services.identity.issue_token(OPERATOR, "admin").secret
                response = case.call(base_url=api.url, headers={"Authorization": f"Bearer {token}"})
                calls += 1
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
                )
                if response.status_code == 400 and response.text == UNPARSABLE:
                    return  # refused by the HTTP server (uvicorn) before any of our code ran
                if 400 <= response.status_code < 500:
                    body = response.json()
                    assert set(body) == {"error", "detail"}, body

            try:
                check()
            except Unsatisfiable:
                # An operation with no parameters and no body has nothing to violate.
                assert mode is GenerationMode.NEGATIVE
    assert calls > 200
