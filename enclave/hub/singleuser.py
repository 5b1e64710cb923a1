"""Entry point of a workspace's Jupyter server (``python -I -m enclave.hub.singleuser``).

Before JupyterHub's single-user server starts: make this process non-dumpable, so kernels running
as the same account cannot ptrace it or read its memory (or its initial environment) and undo the
guard; take the server's key out of the environment kernels inherit (``enclave.hub.guard``); forget
the spawner's parent pid, which means nothing inside a PID namespace (ipykernel would otherwise
exit believing its parent gone).
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_DUMPABLE = 4


def main() -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise SystemExit("could not make the workspace server non-dumpable")
    from enclave.hub.guard import take_server_key

    take_server_key()
    os.environ.pop("JPY_PARENT_PID", None)
    from jupyterhub.singleuser import main as singleuser_main

    singleuser_main()


if __name__ == "__main__":
    main()
