"""`python -m planner`: the CLI. Importing it needs memory too: running out while loading the libraries is one
line, like running out later (planner.cli handles everything after the import)."""

import os
import sys

try:
    from planner.cli import _exhausted, main
except (MemoryError, ImportError, SystemError) as exc:
    if not (isinstance(exc, MemoryError) or "memory" in str(exc) or "map segment" in str(exc)
            or "without exception set" in str(exc) or "without setting an exception" in str(exc)):
        raise
    sys.stderr.write("error: out of memory while starting planner: close other programs or raise the limit "
                     "(ulimit -v)\n")
    sys.stderr.flush()
    os._exit(1)

try:
    main()
except (MemoryError, SystemError) as exc:
    # out of memory outside any command: click parsing the arguments or closing its context (seen under
    # ulimit -v: "error return without exception set" from click's make_context); a command's own exhaustion
    # is handled in planner.cli._Planner.invoke
    message = _exhausted(exc)
    if message is None:
        raise
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    os._exit(1)
