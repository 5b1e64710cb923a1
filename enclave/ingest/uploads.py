"""An uploaded spec and extract, ingested: the one path the API's ``POST /catalog/ingest`` and the
portal's upload page share, so both accept and refuse exactly the same files."""

from __future__ import annotations

from pathlib import Path

from enclave.domain.catalog.reports import IngestReport
from enclave.domain.catalog.service import CatalogService
from enclave.domain.errors import InvalidInput
from enclave.domain.identity.accounts import Actor
from enclave.domain.ports import Progress
from enclave.ingest.spec import parse_spec

#: A spec is a short YAML file.
MAX_SPEC_BYTES = 1 << 20


def ingest_upload(
    catalog: CatalogService,
    actor: Actor,
    spec: Path,
    extract: Path,
    *,
    progress: Progress | None = None,
) -> IngestReport:
    """Parse the uploaded ``spec`` and ingest ``extract`` against it. An uploaded spec may use only
    the built-in code lists (never a file beside it on the server)."""
    if spec.stat().st_size > MAX_SPEC_BYTES:
        raise InvalidInput(f"the spec is larger than {MAX_SPEC_BYTES >> 20} MiB; a spec is a short YAML file")
    try:
        text = spec.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the spec is not UTF-8 text") from None
    loaded = parse_spec(text, base=spec.parent / "no-local-codelists", source=spec.name)
    return catalog.ingest(actor, loaded, extract, source_name=extract.name, progress=progress)
