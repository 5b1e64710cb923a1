"""Differential privacy, an adapter behind :class:`enclave.domain.ports.QueryEngine`: the OpenDP
engine on Polars (:mod:`enclave.dp.engine`), cohort derivation, dummy data and DP-SQL, offered to the
use cases by :mod:`enclave.dp.adapter`."""
