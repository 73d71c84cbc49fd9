"""Atomic output: write to a temporary file beside the target, then rename over it.

A crash, Ctrl-C or kill while writing leaves either the previous file or none, never a truncated one,
because ``os.replace`` within one directory is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


class OutputError(Exception):
    """The output path cannot be written (missing directory, no permission, same as the input)."""


def check_output_path(path: Path, inputs: tuple[Path, ...] = ()) -> Path:
    """Refuse output paths that would fail late or destroy an input; return the resolved path."""
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
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: no permission to write in {parent}")
    if resolved.exists() and resolved.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    return resolved


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix + ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: Path, write: Callable[[Path], None], inputs: tuple[Path, ...] = ()) -> Path:
    """Call ``write(tmp_path)``, then move the finished file onto ``path``."""
    target = check_output_path(path, inputs)
    with _temp_beside(target) as tmp:
        try:
            write(tmp)
        except PermissionError as exc:
            raise OutputError(f"cannot write {path}: {exc}") from exc
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    return target
