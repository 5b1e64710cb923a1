"""Concurrent writers never fork or break the chain, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from enclave.domain.audit.chain import AuditEvent
from enclave.wiring import Services
from tests.conftest import OPERATOR

ROOT = Path(__file__).resolve().parents[2]


def test_eight_threads_and_two_processes_leave_one_intact_chain(services: Services) -> None:
    """8 threads here and 2 other processes (4 threads each) append at once; every event is chained
    exactly once, in one line, and the chain verifies."""
    per_thread = 25
    url = services.settings.database
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.audit_writer", url, f"proc{p}", "4", str(per_thread)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(2)
    ]
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with services.db.unit_of_work() as uow:
                    uow.audit.append(AuditEvent("test.concurrent", f"thread-{t}", "counter", str(i)))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        _, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
    assert not failures, failures

    expected = 8 * per_thread + 2 * 4 * per_thread
    result = services.audit.verify(OPERATOR)
    assert result.ok, result.describe()
    assert result.verified == expected
    with services.db.unit_of_work(write=False) as uow:
        events = list(uow.audit.iter_events())
    assert [e.seq for e in events] == list(range(1, expected + 1))
    per_writer = Counter(e.actor for e in events)
    assert set(per_writer.values()) == {per_thread}
    assert len(per_writer) == 16
