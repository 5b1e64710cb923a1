"""The airlock's content handling, an adapter behind :class:`enclave.domain.ports.OutputChecks`:
file intake (:mod:`enclave.airlock.files`: type from content, sanitising with PIL, nh3 and
defusedxml), the automated disclosure rules (:mod:`enclave.airlock.checks`, on pandas) and the ACRO
results reader (:mod:`enclave.airlock.acro`), offered to the use cases by :mod:`enclave.airlock.adapter`.

The request's states, the review rules, the check record and the use cases are the domain's
(:mod:`enclave.domain.outputs`).
"""
