"""Benchmark: how long a researcher waits for a project's workspace.

Run (as root, with bubblewrap installed):  .venv/bin/python bench/workspace_spawn.py [--repeat 3]

Sets up a small demonstration enclave in a temporary directory, starts the API and the hub as
processes, logs in as the researcher and, in one run on this machine, measures for the sandboxed
workspace (bubblewrap, its own account) and for the same server unsandboxed (the unsafe development
mode, i.e. what JupyterHub's LocalProcessSpawner does): the time from the start request to a server
that answers, the first cell of a new kernel, and a later cell. Prints each median and the ratio
sandboxed / unsandboxed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port, free_port_pair
from tests.helpers.hub import HubSession, wait_for

ENCLAVE = [sys.executable, "-m", "enclave.cli"]


def measure(env: dict[str, str], hub_port: int, password: str, repeat: int, log: Path) -> dict[str, float]:
    with log.open("ab") as out:
        hub = subprocess.Popen([*ENCLAVE, "hub"], env=env, stdout=out, stderr=out)  # noqa: S603
    try:
        wait_for(f"http://127.0.0.1:{hub_port}/hub/login", hub, log)
        session = HubSession(f"http://127.0.0.1:{hub_port}", "researcher")
        session.login(password)
        spawn, first, later = [], [], []
        first_spawn = 0.0
        for i in range(repeat + 1):
            print(f"  {env.get('ENCLAVE_WORKSPACE_MODE', 'sandbox')}: start {i + 1}", file=sys.stderr)
            started = time.perf_counter()
            response = session.start("p1")
            if response.status_code >= 400:
                raise SystemExit(f"start: {response.status_code} {response.text}\n{log.read_text()[-3000:]}")
            if i == 0:  # the first start also makes the account and the home's disk image
                first_spawn = time.perf_counter() - started
            else:
                spawn.append(time.perf_counter() - started)
            kernel = session.kernel("p1")
            started = time.perf_counter()
            kernel.run("1 + 1")
            first.append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(10):
                kernel.run("1 + 1")
            later.append((time.perf_counter() - started) / 10)
            kernel.close()
            session.stop("p1")
        session.close()
        return {
            "first spawn": first_spawn,
            "spawn": statistics.median(spawn),
            "first cell": statistics.median(first),
            "later cell": statistics.median(later),
        }
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        home = Path(tmp) / "home"
        api_port, hub_port = free_port(), free_port_pair()
        log = Path(tmp) / "processes.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
        env.update(ENCLAVE_HOME=str(home), ENCLAVE_API_PORT=str(api_port), ENCLAVE_HUB_PORT=str(hub_port))
        subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [*ENCLAVE, "demo", "--no-serve", "--persons", "2000"], env=env, check=True, capture_output=True
        )
        creds = json.loads((home / "keys" / "demo-credentials.json").read_text())
        password = next(c["password"] for c in creds if c["username"] == "researcher")
        with log.open("ab") as out:
            api = subprocess.Popen([*ENCLAVE, "serve"], env=env, stdout=out, stderr=out)  # noqa: S603
        try:
            wait_for(f"http://127.0.0.1:{api_port}/healthz", api, log)
            sandboxed = measure(env, hub_port, password, args.repeat, log)
            unsafe = measure(
                {**env, "ENCLAVE_WORKSPACE_MODE": "unsafe"}, hub_port, password, args.repeat, log
            )
        finally:
            api.send_signal(signal.SIGINT)
            api.wait(timeout=30)
    print(f"workspace of project 1, median of {args.repeat} after a first start (this machine, one run)")
    print(f"{'':12} {'sandboxed':>10} {'unsandboxed':>12} {'ratio':>6}")
    for key in sandboxed:
        print(f"{key:12} {sandboxed[key]:9.3f}s {unsafe[key]:11.3f}s {sandboxed[key] / unsafe[key]:6.2f}")


if __name__ == "__main__":
    main()
