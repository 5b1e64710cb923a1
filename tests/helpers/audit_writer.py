"""Run as a separate process by the concurrency tests: append events from several threads."""

from __future__ import annotations

import sys
import threading

from enclave.db.session import Database
from enclave.domain.audit.chain import AuditEvent


def main() -> None:
    url, label, threads, per_thread = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    db = Database(url)
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with db.unit_of_work() as uow:
                    uow.audit.append(
                        AuditEvent("test.concurrent", f"{label}-{t}", "counter", str(i), {"i": i})
                    )
        except BaseException as exc:  # reported to the parent through the exit code
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    db.dispose()
    if errors:
        print(repr(errors[0]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
