"""The airlock's content handling: file intake (:mod:`enclave.airlock.files`) and the automated
disclosure checks (:mod:`enclave.airlock.checks`).

Both are plain Python over bytes and values, with no database or web imports, so the service, the
API, the CLI and an ACRO importer all run the same code. The review rules and the request state
machine live in :mod:`enclave.domain.outputs.review` and :mod:`enclave.domain.outputs.states`.
"""
