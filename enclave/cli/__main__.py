"""``python -m enclave.cli``: the ``enclave`` command (the demo starts its hub this way)."""

from enclave.cli import main

main()
