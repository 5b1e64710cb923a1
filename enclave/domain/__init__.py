"""Domain logic: plain Python, no web framework and no database library.

Adapters (``enclave.db``, ``enclave.api``, ``enclave.cli``) call into this package through the
protocols in :mod:`enclave.domain.ports`.
"""
