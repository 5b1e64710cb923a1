"""Ingest, an adapter behind :class:`enclave.domain.ports.IngestPipeline`: source specs, the streaming
pipeline (validate, quarantine, opt out, pseudonymise, generalise), bounded views, offered to the
catalog use cases by :mod:`enclave.ingest.adapter`."""
