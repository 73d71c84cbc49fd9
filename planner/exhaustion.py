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


# How CPython words a C function that failed without setting an exception — under ``ulimit -v``, an allocation
# that failed where nothing could say so: "error return without exception set" (a C extension), "<function …>
# returned NULL without setting an exception" (a call; seen from click's Command.main at the memory edge)
NULL_WITHOUT_EXCEPTION = ("without exception set", "without setting an exception")


def out_of_memory(exc: BaseException, limited: bool = False) -> bool:
    """True when ``exc`` or its cause is an allocation failure.

    ``limited``: the process runs under an address-space limit, so a C extension's "error return without exception
    set" while importing is an allocation failure too.
    """
    return any(isinstance(e, MemoryError) or isinstance(e, OSError) and e.errno == errno.ENOMEM
               or isinstance(e, ImportError) and ("failed to map segment" in str(e) or "allocate memory" in str(e))
               or isinstance(e, SystemError) and limited and any(w in str(e) for w in NULL_WITHOUT_EXCEPTION)
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


# Address space a HiGHS call must have left under ``ulimit -v``. HiGHS does not survive an allocation that fails
# inside a call: the process dies of a segfault, no Python code runs (measured: the example under a 210 MB limit
# died in a price re-solve with 0.1 MB left, 1 run in 4; the same runs had 7.9 MB left when they passed).
HIGHS_HEADROOM = 16 * 2**20


def address_space_headroom() -> int | None:
    """Bytes of address space this process may still map under ``ulimit -v``; None without a limit (or where
    the process's size cannot be read: not on Linux)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return soft - pages * resource.getpagesize()


def require_headroom(what: str) -> None:
    """Raise :class:`MemoryError` (the CLI's one-line "out of memory" error) before ``what`` — a HiGHS call —
    when less than ``HIGHS_HEADROOM`` of address space is left under ``ulimit -v``: there HiGHS would die of a
    segfault instead of failing."""
    left = address_space_headroom()
    if left is not None and left < HIGHS_HEADROOM:
        raise MemoryError(f"{what}: {max(left, 0) / 2**20:.1f} MB of address space left under ulimit -v")
