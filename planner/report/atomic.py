"""Atomic output: write to a temporary file beside the target, then rename over it.

A crash, Ctrl-C, SIGTERM or kill while writing leaves either the previous file or none, never a truncated one,
because ``os.replace`` within one directory is atomic on POSIX and Windows. What the writer owns besides:

- only a regular file (or a new path) is ever replaced: a FIFO, a device or a socket at the output path is
  refused, checked before the work starts and again just before the rename;
- every file-system failure (full disk, quota, name too long, permission) is an :class:`OutputError` that names
  the path, never a traceback; the temporary name is kept within the file system's name limit;
- a replaced report keeps its mode (a private 0600 report stays private) and a new one gets the umask's;
- SIGTERM and SIGHUP during the write remove the temporary file first, then take their usual course;
- :func:`output_lock` stops two runs from writing one output (and its journal) at the same time.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import stat
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path


class OutputError(Exception):
    """The output path cannot be written (missing directory, no permission, same as the input, disk full...)."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(st: os.stat_result) -> str | None:
    """What a non-regular file is ("a FIFO ..."), or None for a regular file."""
    if stat.S_ISREG(st.st_mode):
        return None
    return next((kind for test, kind in _KINDS if test(st.st_mode)), "not a regular file")


def _name_max(directory: Path) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        return 255


def _fit(name: str, budget: int) -> str:
    """``name`` cut to at most ``budget`` bytes of UTF-8 (never in the middle of a character)."""
    while len(os.fsencode(name)) > budget:
        name = name[:-1]
    return name


def sidecar(path: Path, suffix: str) -> Path:
    """A file beside ``path`` named after it (``report.xlsx.journal.jsonl``), within the file-name limit.

    A name too long for the file system keeps its start and gets a hash of the whole name, so two long names
    that share their first 200 characters still get different side files.
    """
    path = Path(path)
    name = path.name + suffix
    limit = _name_max(path.parent)
    if len(os.fsencode(name)) <= limit:
        return path.with_name(name)
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:10]
    tail = f"-{digest}{suffix}"
    return path.with_name(_fit(path.name, limit - len(os.fsencode(tail))) + tail)


def check_output_path(path: Path, inputs: tuple[Path, ...] = ()) -> Path:
    """Refuse output paths that would fail late or destroy something; return the resolved path."""
    path = Path(path)
    resolved = path.expanduser().resolve()
    for inp in inputs:
        if Path(inp).expanduser().resolve() == resolved:
            raise OutputError(f"refusing to write the report over the input file {inp}; choose another -o path")
    parent = resolved.parent
    if not parent.exists():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    limit = _name_max(parent)
    size = len(os.fsencode(resolved.name))
    if size > limit:
        raise OutputError(f"cannot write {path}: the file name is too long ({size} bytes; the file system allows "
                          f"at most {limit}); choose a shorter name")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: no permission to write in {parent}")
    _refuse_non_regular(path, resolved)
    return resolved


def _refuse_non_regular(path: Path, resolved: Path) -> None:
    try:
        st = os.stat(resolved)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    kind = _not_regular(st)
    if kind == "a directory":
        raise OutputError(f"cannot write {path}: it is a directory")
    if kind:
        raise OutputError(f"cannot write {path}: it is {kind}, not a regular file; planner only ever replaces "
                          "regular files (choose a file name)")


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux), else set and restored."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _mode_for(target: Path) -> tuple[int, tuple[int, int] | None]:
    """Mode (and owner) the finished file gets: those of the file it replaces, else 0666 minus the umask."""
    try:
        st = os.stat(target)
    except OSError:
        return 0o666 & ~_umask(), None
    return stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)


def _chain(exc: BaseException):
    """``exc`` and every exception behind it: its arguments (XlsxWriter wraps an OSError in one), cause, context."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([*e.args, e.__cause__, e.__context__])


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, its arguments or its cause."""
    return next((e for e in _chain(exc) if isinstance(e, OSError)), None)


_ADVICE = {errno.ENOSPC: "free some space or write elsewhere with -o",
           errno.EDQUOT: "your disk quota is used up: free some space or write elsewhere with -o",
           errno.EFBIG: "the report is larger than the file size this process may write, ulimit -f",
           errno.ENAMETOOLONG: "choose a shorter name", errno.EROFS: "write elsewhere with -o"}


def describe(path: Path, exc: OSError) -> str:
    """One line for a failed write, naming the path: "cannot write r.xlsx: No space left on device (...)"."""
    what = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno or 0, "")
    return f"cannot write {path}: {what}" + (f" ({advice})" if advice else "")


def _release(exc: BaseException) -> None:
    """Free the failed writer's frames now, quietly.

    XlsxWriter leaves its zip file open when a write fails; kept alive by the traceback, it would try to flush
    again at exit and print an "Exception ignored ... File too large" traceback after our one-line error.
    """
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        for e in _chain(exc):
            if e.__traceback__ is not None:
                traceback.clear_frames(e.__traceback__)
        import gc

        gc.collect()
    finally:
        sys.unraisablehook = hook


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM/SIGHUP during a write, so that the temporary file is removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_CLEAN_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def _signals_raise() -> Iterator[dict[int, object]]:
    """While writing, SIGTERM/SIGHUP raise :class:`_Terminated` (main thread only; ignored signals stay ignored)."""
    old: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise _Terminated(signum)

        for sig in _CLEAN_SIGNALS:
            prev = signal.getsignal(sig)
            if prev is signal.SIG_IGN:
                continue
            old[sig] = prev
            signal.signal(sig, handler)
    try:
        yield old
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)  # type: ignore[arg-type]


def _redeliver(signum: int, previous: object) -> None:
    """After the clean-up, let the signal do what it would have done: the old handler, or the default action."""
    if callable(previous):
        previous(signum, None)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    raise SystemExit(128 + signum)  # not reached when the default action terminates the process


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A new, private temporary file in the target's directory, removed unless it was renamed."""
    limit = _name_max(path.parent)
    suffix = ".tmp"
    room = limit - len(os.fsencode(f".-XXXXXXXX{suffix}"))  # mkstemp adds 8 random characters
    prefix = "." + _fit(path.name, max(room, 1)) + "-"  # the name it stands for, cut to fit the limit
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(describe(path, exc)) from exc
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _sync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def atomic_write(path: Path, write: Callable[[Path], None], inputs: tuple[Path, ...] = ()) -> Path:
    """Call ``write(tmp_path)``, then move the finished file onto ``path``; raise :class:`OutputError` if it fails."""
    target = check_output_path(path, inputs)
    mode, owner = _mode_for(target)
    with _signals_raise() as previous:
        try:
            with _temp_beside(target) as tmp:
                try:
                    write(tmp)
                    os.chmod(tmp, mode)
                    if owner is not None and owner != (os.geteuid(), os.getegid()):
                        with contextlib.suppress(OSError):  # keep the owner where we may (root, or own group)
                            os.chown(tmp, *owner)
                    _sync(tmp)
                    _refuse_non_regular(path, target)  # something may have appeared there while we wrote
                    os.replace(tmp, target)
                except OutputError:
                    raise
                except Exception as exc:
                    err = _os_error(exc)
                    if err is None:
                        raise
                    _release(exc)
                    raise OutputError(describe(path, err)) from exc
        except _Terminated as term:
            _redeliver(term.signum, previous.get(term.signum, signal.SIG_DFL))
            raise
    with contextlib.suppress(OSError):  # make the rename itself durable; not all file systems allow it
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return target


@contextlib.contextmanager
def output_lock(path: Path | str) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for a whole run: a second run on the same output is refused.

    The lock is ``flock`` on a hidden file beside the output that holds the owner's process id; the kernel drops
    it when its holder dies, however it dies, so a crashed run never blocks the next one.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; runs are not protected from each other
        yield path
        return
    target = path.expanduser().resolve()
    lock = sidecar(target.with_name("." + target.name), ".lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as exc:
            raise OutputError(describe(path, exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(describe(path, exc)) from exc
            who = f"process {holder}" if holder.isdigit() else "another planner run"
            raise OutputError(f"{path} is in use by {who}, a planner run writing the same output; wait for it "
                              "to finish or choose another -o") from None
        try:  # the holder we waited for may have removed the file: then lock the new one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
