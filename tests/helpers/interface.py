"""Write Enclave's public interface to a folder: the OpenAPI document and every ``--help``.

A refactoring that promises "behaviour, API and CLI unchanged" runs this before and after and
compares the two folders byte for byte::

    python -m tests.helpers.interface /tmp/before     # on the old commit
    python -m tests.helpers.interface /tmp/after      # on the new one
    diff -r /tmp/before /tmp/after

The help texts are rendered at a fixed terminal width, without colour, so two runs of the same code
give the same bytes on any machine.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import typer.main
from typer.testing import CliRunner


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    children = getattr(command, "commands", None) or {}
    for name in sorted(children):
        found += _commands(children[name], (*path, name))
    return found


def write_interface(out: Path) -> int:
    """Write ``openapi.json`` and ``help/<command path>.txt``; returns the number of files."""
    from enclave.api.app import create_app
    from enclave.cli import app as cli_app
    from enclave.config import Settings
    from enclave.wiring import build_services

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        services = build_services(Settings(home=Path(home), mode="development"))
        try:
            spec = create_app(services).openapi()
        finally:
            services.close()
    (out / "openapi.json").write_text(json.dumps(spec, indent=2) + "\n")
    root = typer.main.get_command(cli_app)
    runner = CliRunner()
    helps = out / "help"
    helps.mkdir(exist_ok=True)
    count = 1
    env = {"COLUMNS": "120", "TERM": "dumb", "NO_COLOR": "1", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    for path in _commands(root):
        result = runner.invoke(cli_app, [*path, "--help"], env=env, terminal_width=120)
        text = result.output + (f"\n[exit {result.exit_code}]\n" if result.exit_code else "")
        (helps / ((" ".join(("enclave", *path))).replace(" ", "_") + ".txt")).write_text(text)
        count += 1
    return count


if __name__ == "__main__":
    for key in [k for k in os.environ if k.startswith("ENCLAVE_")]:
        del os.environ[key]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("interface")
    print(f"{write_interface(target)} files written to {target}")
