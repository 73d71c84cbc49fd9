"""`python -m planner`: the CLI. Importing it needs memory too: running out while loading the libraries is one
line, like running out later (planner.cli handles everything after the import)."""

import os
import sys

try:
    from planner.cli import main
except (MemoryError, ImportError, SystemError) as exc:
    if not (isinstance(exc, MemoryError) or "memory" in str(exc) or "map segment" in str(exc)
            or "without exception set" in str(exc)):
        raise
    sys.stderr.write("error: out of memory while starting planner: close other programs or raise the limit "
                     "(ulimit -v)\n")
    sys.stderr.flush()
    os._exit(1)

main()
