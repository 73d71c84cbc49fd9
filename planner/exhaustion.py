"""Is an exception a sign that the process ran out of memory?

One predicate for every layer that turns library failures into messages of its own: a reader that maps "openpyxl
failed" to "damaged file", or a solver wrapper that maps "HiGHS failed" to "try CBC", must not turn an exhausted
process into a wrong diagnosis (measured under ``ulimit -v``: ``OSError: [Errno 12]`` inside openpyxl was reported
as a corrupt workbook). Nothing here may import a module: with the memory gone, loading one fails too.
"""

from __future__ import annotations

import errno


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (explicitly or while handling), nearest first, at most ten."""
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(out) < 10:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def out_of_memory(exc: BaseException, limited: bool = False) -> bool:
    """True when ``exc`` or its cause is an allocation failure.

    ``limited``: the process runs under an address-space limit, so a C extension's "error return without exception
    set" while importing is an allocation failure too.
    """
    return any(isinstance(e, MemoryError) or isinstance(e, OSError) and e.errno == errno.ENOMEM
               or isinstance(e, ImportError) and ("failed to map segment" in str(e) or "allocate memory" in str(e))
               or isinstance(e, SystemError) and "without exception set" in str(e) and limited
               or type(e).__module__ == "zlib" and "Error -4 " in str(e)  # Z_MEM_ERROR while inflating
               for e in chain(exc))


def address_space_limited() -> bool:
    """Whether this process runs under ``ulimit -v``. Then HiGHS is called on the calling thread only: a new
    thread's first HiGHS call makes glibc allocate highspy's thread-local data, and when that allocation fails
    glibc aborts the whole process ("cannot allocate memory for thread-local data", exit 127, no Python code runs
    — measured under a 300 MB limit), where on one thread running out of memory is the CLI's one-line error."""
    try:
        import resource
    except ImportError:  # not on Windows
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return soft != resource.RLIM_INFINITY
