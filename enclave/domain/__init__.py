"""Domain logic: plain Python, no web framework, no database library, no data engine.

The subpackages follow the data as it flows through the enclave:

- :mod:`~enclave.domain.identity`: accounts, roles, accreditation, tokens, who is acting;
- :mod:`~enclave.domain.catalog`: datasets, their versions and columns, as custodians publish them;
- :mod:`~enclave.domain.access`: access requests, custodian decisions, projects and their workspaces;
- :mod:`~enclave.domain.queries`: DP query plans, cohort definitions and the budget ledger;
- :mod:`~enclave.domain.outputs`: output requests through the airlock, reviews and release;
- :mod:`~enclave.domain.audit`: the hash-chained audit log every change above is written to.

Beside them, :mod:`~enclave.domain.policy` (who may use a project: the one access policy),
:mod:`~enclave.domain.ports` (the protocols the adapters implement: the repositories, the DP engine,
the stores, the output checks, the ingest pipeline), :mod:`~enclave.domain.errors` (the one exception
hierarchy) and :mod:`~enclave.domain.clock`.
"""
