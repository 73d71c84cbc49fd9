"""`python -m planner` and the `planner` command: the CLI. Importing it needs memory and time: running out while
loading the libraries is one line, like running out later, and so is Ctrl-C while they load (planner.cli handles
everything after the import)."""

import os
import sys


def _interrupted() -> None:
    """Ctrl-C before the CLI could take it (the libraries still loading): the CLI's own line and exit code, not a
    traceback through importlib."""
    sys.stderr.write("interrupted (Ctrl-C)\n")
    sys.stderr.flush()
    os._exit(130)


def entry() -> None:
    try:
        from planner.cli import _exhausted, main
    except KeyboardInterrupt:
        _interrupted()
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
    except KeyboardInterrupt:  # between click's parsing and a command's own handling
        _interrupted()
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


if __name__ == "__main__":
    entry()
