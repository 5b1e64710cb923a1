"""The example notebooks in ``notebooks/`` run, cell after cell, against a live API with the
settings a workspace injects: they are documentation, so they must stay true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from enclave.domain.identity.accounts import TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.integration.test_cohorts_api import linked_project

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DEMO_REQUEST = ROOT / "access_requests" / "examples" / "diabetes-regional-variation.yaml"


def test_there_are_example_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_example_notebook_runs_in_a_workspace(services: Services, tmp_path: Path, notebook: Path) -> None:
    # exactly the scope of the demo's project, whose workspace gets these notebooks
    request = yaml.safe_load(DEMO_REQUEST.read_text())
    scope = {part["dataset"]: part["columns"] for part in request["datasets"]}
    project = linked_project(services, tmp_path, scope=scope)
    token = services.identity.issue_token(
        OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project
    ).secret
    book = nbformat.read(notebook, as_version=4)
    code = "\n\n".join(cell.source for cell in book.cells if cell.cell_type == "code")
    work = tmp_path / "notebook-cwd"
    work.mkdir()
    with LiveServer(services) as api:
        env = {
            **os.environ,
            "ENCLAVE_API_URL": "http://enclave",
            "ENCLAVE_API_SOCKET": api.socket,
            "ENCLAVE_API_TOKEN": token,
            "ENCLAVE_PROJECT_ID": str(project),
        }
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 0, f"{notebook.name} failed:\n{done.stderr[-3000:]}"
    assert float(services.budgets.account(OPERATOR, project).spent.epsilon) > 0
