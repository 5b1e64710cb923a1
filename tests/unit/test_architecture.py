"""The floor plan holds: the domain is plain Python over ports, and the use cases live in it.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a function counts
as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "enclave"
DOMAIN = ROOT / "domain"

# Everything in enclave/ that is not the domain is an adapter (or the wiring, the settings, a tool).
ADAPTERS = sorted(
    p.stem if p.is_file() else p.name
    for p in ROOT.iterdir()
    if p.name != "domain" and not p.name.startswith(("_", ".")) and (p.suffix == ".py" or p.is_dir())
)
# What does IO, talks to the network or a database, or computes on data: adapters' libraries.
LIBRARIES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "polars",
    "pandas",
    "numpy",
    "opendp",
    "pyspark",
    "jupyterhub",
    "PIL",
    "nh3",
    "defusedxml",
    "os",
    "shutil",
    "fcntl",
    "tempfile",
    "subprocess",
    "socket",
)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


DOMAIN_MODULES = sorted(DOMAIN.rglob("*.py"))


def test_the_adapters_are_what_the_tree_says() -> None:
    """A new top-level package is either an adapter (listed here by the tree) or the domain."""
    for expected in ("api", "db", "dp", "ingest", "airlock", "store", "hub", "cli", "client", "wiring"):
        assert expected in ADAPTERS


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_domain_module_imports_an_adapter_or_an_adapters_library(path: Path) -> None:
    """The domain reaches the database, the engine, the stores and the checks only through
    ``enclave.domain.ports``; an import of ``enclave.<adapter>`` or of a library that does IO or data
    work would let a use case bypass them."""
    for line, module in _imports(path):
        top, _, rest = module.partition(".")
        if top == "enclave":
            assert rest.split(".")[0] == "domain", f"{path.name}:{line} imports the adapter {module}"
        assert top not in LIBRARIES, f"{path.name}:{line} imports {module}, an adapter's library"


def test_every_use_case_that_carries_an_invariant_is_in_the_domain() -> None:
    """Queries (invariants 2-4), outputs (5) and the catalog (1, 7) are domain services over ports,
    wired to their adapters in ``enclave.wiring`` only."""
    from enclave.domain.catalog.service import CatalogService
    from enclave.domain.outputs.service import AirlockService
    from enclave.domain.queries.service import QueryService

    for service in (QueryService, AirlockService, CatalogService):
        assert service.__module__.startswith("enclave.domain."), service
        for name, parameter in inspect.signature(service).parameters.items():
            annotation = str(parameter.annotation)
            assert "Path" not in annotation, f"{service.__name__}({name}) takes a path: use a store port"
