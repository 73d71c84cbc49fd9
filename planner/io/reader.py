"""Workbook → raw sheets (cell values with their row numbers). No business rules here.

The reader's job is to get values out of a file safely: it refuses what is not an .xlsx workbook with a
message that says what the file looks like instead, bounds what it will unpack (zip bombs, absurd used
ranges), uses cached values of formulas and notes the formulas that have none (``validate`` reports those in
the cells it reads), reads Strict OOXML files through their Transitional equivalent, and never opens the input
for writing. Everything about what the values *mean* belongs to ``validate``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

from planner.exhaustion import out_of_memory
from planner.io.problems import Problem

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class Limits:
    """Bounds on what the reader accepts; each can be raised by the caller (CLI flags or environment)."""

    max_file_bytes: int = int(os.environ.get("PLANNER_MAX_FILE_MB", "100")) * 1024 * 1024
    max_uncompressed_bytes: int = int(os.environ.get("PLANNER_MAX_UNZIPPED_MB", "1000")) * 1024 * 1024
    max_rows: int = int(os.environ.get("PLANNER_MAX_ROWS", "1000000"))
    max_columns: int = 200


@dataclass
class RawSheet:
    """One worksheet as read: header cells and data rows (1-based Excel row numbers).

    ``state`` is Excel's visibility (``visible``, ``hidden`` or ``veryHidden``, which only a macro can undo);
    ``formulas`` maps (Excel row, 0-based column) to each formula that has no cached value, header row included.
    """

    name: str
    header: list[Any]
    rows: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    state: str = "visible"
    formulas: dict[tuple[int, int], str] = field(default_factory=dict)


@dataclass
class RawWorkbook:
    path: Path
    sha256: str
    sheets: dict[str, RawSheet]
    problems: list[Problem] = field(default_factory=list)


class ReadError(Exception):
    """A file-level problem: the workbook cannot be read at all."""

    def __init__(self, problem: Problem):
        super().__init__(problem.render())
        self.problem = problem


def _fail(code: str, path: Path, message: str, hint: str = "") -> ReadError:
    return ReadError(Problem(code=code, message=message, sheet="", found=str(path.name), hint=hint))


def _unreadable(path: Path, exc: Exception) -> Exception:
    """Map a parser failure to a problem: unsafe XML (refused on purpose) or a damaged file — or, when the process
    ran out of memory while parsing, to that (the file is not to blame)."""
    if out_of_memory(exc):
        return MemoryError(f"while reading {path.name}")
    cause: BaseException | None = exc
    while cause is not None and not type(cause).__module__.startswith("defusedxml"):
        cause = cause.__cause__ or cause.__context__  # openpyxl wraps parser errors in ValueError
    if cause is not None:
        return _fail("unsafe_xml", path, f"{path.name} contains XML that planner refuses to parse "
                     f"({type(cause).__name__}: entity declarations or external references, used by "
                     "'billion laughs' and XXE attacks)", hint="re-save the workbook from Excel or LibreOffice")
    return _fail("corrupt_file", path, f"{path.name} cannot be read as a workbook: {type(exc).__name__}: {exc}",
                 hint="re-save it from Excel or LibreOffice")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_container(path: Path, limits: Limits) -> None:
    """Refuse files that are not a plain .xlsx zip, before any XML is parsed."""
    if not path.exists():
        raise _fail("file_not_found", path, f"input file {path} does not exist")
    if not path.is_file():
        raise _fail("not_a_file", path, f"{path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise _fail("empty_file", path, f"{path.name} is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise _fail("file_too_large", path,
                    f"{path.name} is {size / 2**20:.0f} MB, more than the limit of "
                    f"{limits.max_file_bytes / 2**20:.0f} MB",
                    hint="raise the limit with PLANNER_MAX_FILE_MB if the file is genuine")
    with open(path, "rb") as fh:
        head = fh.read(8)
    suffix = path.suffix.lower()
    if head == OLE_SIGNATURE:
        raise _fail("not_xlsx", path,
                    f"{path.name} is an OLE2 compound file: a legacy .xls workbook or a password-protected "
                    "workbook, which planner cannot read",
                    hint="open it in Excel or LibreOffice, remove any password and save as .xlsx")
    if not zipfile.is_zipfile(path):
        kind = {".csv": "a CSV file", ".ods": "an OpenDocument spreadsheet", ".xls": "a legacy .xls file"}.get(
            suffix, "not an .xlsx workbook (not a zip container)")
        raise _fail("not_xlsx", path, f"{path.name} is {kind}",
                    hint="planner reads Excel .xlsx workbooks; save the file as .xlsx")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if suffix == ".ods" or "content.xml" in names and "xl/workbook.xml" not in names:
                raise _fail("not_xlsx", path, f"{path.name} is an OpenDocument spreadsheet (.ods)",
                            hint="save it as .xlsx (File > Save As > Excel 2007-365)")
            if "xl/workbook.bin" in names:
                raise _fail("not_xlsx", path, f"{path.name} is a binary .xlsb workbook",
                            hint="save it as .xlsx")
            if "xl/workbook.xml" not in names:
                raise _fail("not_xlsx", path, f"{path.name} is a zip file but not an Excel workbook "
                            "(no xl/workbook.xml inside)", hint="save the workbook as .xlsx")
            total = sum(i.file_size for i in zf.infolist())
            if total > limits.max_uncompressed_bytes:
                raise _fail("unzipped_too_large", path,
                            f"{path.name} would unpack to {total / 2**20:.0f} MB, more than the limit of "
                            f"{limits.max_uncompressed_bytes / 2**20:.0f} MB (a zip bomb or a huge workbook)",
                            hint="raise PLANNER_MAX_UNZIPPED_MB if the file is genuine")
    except zipfile.BadZipFile as exc:
        raise _fail("corrupt_file", path, f"{path.name} is a damaged zip/xlsx file ({exc})",
                    hint="re-save it from Excel or LibreOffice") from exc


def _trim(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(None if (isinstance(v, str) and v.strip() == "") else v for v in values)


STRICT_MARK = b"http://purl.oclc.org/ooxml/spreadsheetml/main"
# ISO/IEC 29500 Strict namespaces → their Transitional equivalents (longest first: prefixes of each other)
_STRICT_TO_TRANSITIONAL = (
    (b"http://purl.oclc.org/ooxml/officeDocument/relationships/extendedProperties",
     b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties"),
    (b"http://purl.oclc.org/ooxml/officeDocument/relationships/customProperties",
     b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"),
    (b"http://purl.oclc.org/ooxml/officeDocument/extendedProperties",
     b"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"),
    (b"http://purl.oclc.org/ooxml/officeDocument/customProperties",
     b"http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"),
    (b"http://purl.oclc.org/ooxml/officeDocument/", b"http://schemas.openxmlformats.org/officeDocument/2006/"),
    (b"http://purl.oclc.org/ooxml/spreadsheetml/main", b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"),
    (b"http://purl.oclc.org/ooxml/drawingml/", b"http://schemas.openxmlformats.org/drawingml/2006/"),
)


def _is_strict(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf, zf.open("xl/workbook.xml") as fh:
        return STRICT_MARK in fh.read(1 << 16)


@contextlib.contextmanager
def _transitional(path: Path) -> Iterator[Path]:
    """The workbook as openpyxl can read it: the file itself, or a Transitional copy of a Strict OOXML file.

    Excel's "Strict Open XML Spreadsheet" stores the same parts under other namespace names; openpyxl knows
    only the Transitional ones and would see a workbook without sheets. The copy (a temporary file, removed
    afterwards; its size is bounded by the unzip limit checked before) renames the namespaces and nothing else.
    """
    if not _is_strict(path):
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix="planner-strict-", suffix=".xlsx")
    os.close(fd)
    try:
        try:
            with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
                for item in zin.infolist():
                    data = zin.read(item.filename)
                    if item.filename.endswith((".xml", ".rels")):
                        for strict, transitional in _STRICT_TO_TRANSITIONAL:
                            data = data.replace(strict, transitional)
                    zout.writestr(item, data)
        except (OSError, zipfile.BadZipFile) as exc:
            raise _strict_refused(path, exc) from exc
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _strict_refused(path: Path, exc: BaseException | str) -> Exception:
    if isinstance(exc, BaseException) and out_of_memory(exc):
        return MemoryError(f"while reading {path.name}")
    why = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return _fail("strict_ooxml", path, f"{path.name} is saved as Strict Open XML Spreadsheet and could not be "
                 f"read ({why})", hint="save it as 'Excel Workbook (*.xlsx)' instead")


def read_workbook(path: str | os.PathLike[str], limits: Limits | None = None) -> RawWorkbook:
    """Read every sheet of an .xlsx into :class:`RawWorkbook`, or raise :class:`ReadError`.

    Formula cells contribute their cached values; a formula without a cached value (a workbook written by a
    script and never recalculated) is noted in ``RawSheet.formulas``: ``validate`` reports it where it reads
    the cell (a blank in its place would silently change the plan) and ignores it where it does not.
    """
    limits = limits or Limits()
    path = Path(path)
    _check_container(path, limits)
    sha = file_sha256(path)
    try:
        with _transitional(path) as source:
            sheets = _read_sheets(path, source, limits)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:  # damaged between the checks and the read
        raise _unreadable(path, exc) from exc
    return RawWorkbook(path=path, sha256=sha, sheets=sheets)


def _read_sheets(path: Path, source: Path, limits: Limits) -> dict[str, RawSheet]:
    import openpyxl  # deferred: importing openpyxl costs ~0.2 s, irrelevant for --help

    strict = source != path
    wb_values = wb_formulas = None
    try:
        wb_values = openpyxl.load_workbook(source, read_only=True, data_only=True)
        with_formulas = {ws.title for ws in wb_values.worksheets if _has_formulas(ws)}
        if with_formulas:
            wb_formulas = openpyxl.load_workbook(source, read_only=True, data_only=False)
    except ReadError:
        raise
    except Exception as exc:  # openpyxl raises many types for damaged files; all mean "cannot read"
        if wb_values is not None:
            wb_values.close()
        raise (_strict_refused(path, exc) if strict else _unreadable(path, exc)) from exc

    sheets: dict[str, RawSheet] = {}
    try:
        for ws in wb_values.worksheets:
            wf = wb_formulas[ws.title] if ws.title in with_formulas else None
            sheets[ws.title] = _read_sheet(path, ws, wf, limits)
    except ReadError:
        raise
    except Exception as exc:
        raise (_strict_refused(path, exc) if strict else _unreadable(path, exc)) from exc
    finally:
        wb_values.close()
        if wb_formulas is not None:
            wb_formulas.close()
    if strict and not sheets:
        raise _strict_refused(path, "no worksheets found")
    return sheets


# a formula element in a worksheet part, with or without a namespace prefix: <f>, <f t="shared" …/>, <x:f>
_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s>/]")
SCAN_BYTES = 1 << 20  # the scan reads a sheet in pieces of this size: a sheet may unpack to hundreds of MB


def _has_formulas(ws: Any) -> bool:
    """Whether a worksheet part has any formula element: only then is it parsed a second time for its formulas.

    The second parse (``data_only=False``) differs from the first only in cells with a formula element, and it
    cost as much as the first (0.25 s of the 0.6 s that reading and validating the 416k-column plan took). The
    scan reads the decompressed XML (text cannot hold a bare ``<``, so a match is a tag); a sheet it cannot
    scan counts as having formulas.
    """
    try:
        with ws.parent._archive.open(ws._worksheet_path) as fh:
            tail = b""
            while chunk := fh.read(SCAN_BYTES):
                text = tail + chunk
                if _FORMULA_TAG.search(text):
                    return True
                tail = text[text.rfind(b"<"):] if b"<" in text else b""  # a tag cut at the piece's end
            return False
    except Exception:  # openpyxl's internals moved: take the safe, slower way
        return True


def _uncached(value: Any, formula: Any) -> str | None:
    return formula if value is None and isinstance(formula, str) and formula.startswith("=") else None


def _read_sheet(path: Path, ws: Any, wf: Any, limits: Limits) -> RawSheet:
    state = getattr(ws, "sheet_state", "visible") or "visible"
    values_iter = ws.iter_rows(values_only=True, max_col=limits.max_columns)
    # no formula in the sheet (wf None): its cells read the same either way, and nothing is uncached
    formulas_iter = repeat(()) if wf is None else wf.iter_rows(values_only=True, max_col=limits.max_columns)
    header_row = next(values_iter, None)
    header_forms = next(formulas_iter, None) or ()
    if header_row is None:
        return RawSheet(ws.title, [], state=state)
    header = list(_trim(header_row))
    formulas: dict[tuple[int, int], str] = {}
    for col, (v, f) in enumerate(zip(header, header_forms, strict=False)):
        if (form := _uncached(v, f)) is not None:
            formulas[(1, col)] = form
    width = max([i + 1 for i, h in enumerate(header) if h is not None] + [c + 1 for _, c in formulas] + [0])
    header = header[:width]
    raw = RawSheet(ws.title, header, state=state, formulas=formulas)
    for excel_row, (vals, forms) in enumerate(zip(values_iter, formulas_iter, strict=False), start=2):
        vals = _trim(vals[:width])
        uncached = {col: form for col, (v, f) in enumerate(zip(vals, forms[:width], strict=False))
                    if (form := _uncached(v, f)) is not None}
        if all(v is None for v in vals) and not uncached:
            continue
        if len(raw.rows) >= limits.max_rows:
            raise _fail("too_many_rows", path, f"sheet {ws.title!r} has more than {limits.max_rows:,} data rows",
                        hint="raise PLANNER_MAX_ROWS if the plan is genuinely this large")
        for col, form in uncached.items():
            formulas[(excel_row, col)] = form
        raw.rows.append((excel_row, vals))
    return raw


class ReadAside:
    """:func:`read_workbook` in a forked copy of this process, so that a caller with imports still to do (pandas,
    scipy: 0.3 s for ``planner solve``) does them meanwhile on the other core; :meth:`result` waits for the
    :class:`RawWorkbook`, or says None, and the caller reads the workbook itself: whatever the child could not
    read is read again where its problems are reported as they always were.

    Only where a fork is plainly safe: Linux, no address-space limit (a fork there can fail for the address
    space alone), and no other thread in this process (the child imports openpyxl; a lock another thread held
    at the fork would never be released there); and only where a second core is free (:func:`_core_free`): the
    child's CPU time is what reading here costs, but a busy machine makes it wait (on the 416k-column plan:
    0.3-0.4 s less with a core free, from the CPU times of parent and child; measured with both cores taken by
    other work, the same within the noise, and 0.1-0.2 s more before the parent's objects were frozen for the
    fork). Ctrl-C is the parent's: the child ignores it and is killed."""

    def __init__(self, path: str | os.PathLike[str], limits: Limits | None = None):
        import gc
        import signal
        import sys
        import threading

        from planner.exhaustion import address_space_limited

        self._pid = 0
        self._fd = -1
        path = Path(path)
        if (not sys.platform.startswith("linux") or not hasattr(os, "fork") or threading.active_count() > 1
                or address_space_limited() or not path.is_file() or not _core_free()):
            return
        for stream in (sys.stdout, sys.stderr):  # else the child's buffers could be written twice
            with contextlib.suppress(AttributeError, OSError, ValueError):
                stream.flush()
        r, w = os.pipe()
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # no Ctrl-C in the child before it
        gc.freeze()  # the child's collections leave the parent's objects alone: no copy of their pages
        try:  # ignores it
            pid = os.fork()
        except OSError:  # no process to be had: the caller reads
            gc.unfreeze()
            os.close(r)
            os.close(w)
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
            return
        if pid:
            gc.unfreeze()
        if pid == 0:  # the child: read, send, leave without running anything of the parent's at exit
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, masked)
                os.close(r)
                _send(w, path, limits)
            finally:
                os._exit(0)
        # the child is recorded before Ctrl-C can be delivered here again: a KeyboardInterrupt as the mask is
        # restored would otherwise leave it unknown to every close() (never killed, never reaped)
        self._pid, self._fd = pid, r
        os.close(w)
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
        except BaseException:  # Ctrl-C held while forking lands now: the caller never gets this object to close
            self.close()
            raise

    def result(self) -> RawWorkbook | None:
        """The workbook as read by the child, or None (no child, or it failed: then read it yourself)."""
        if not self._pid:
            return None
        import pickle

        chunks = []
        try:
            while chunk := os.read(self._fd, 1 << 20):
                chunks.append(chunk)
        except BaseException:  # Ctrl-C while waiting: the child goes too
            self.close()
            raise
        self.close()
        try:
            ok, raw = pickle.loads(b"".join(chunks))
        except Exception:  # noqa: BLE001 - the child died before it said anything whole
            return None
        return raw if ok else None

    def close(self) -> None:
        """Stop the child if it still runs, and reap it."""
        import signal

        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            self._pid = 0


def _core_free() -> bool:
    """Whether another core is likely idle: at least two cores for this process, and a load average (the last
    minute's) at least half a core below them (a run just before this one, on one core, leaves about 1 on two)."""
    try:
        cores = len(os.sched_getaffinity(0))
        return cores >= 2 and os.getloadavg()[0] <= cores - 0.5
    except (AttributeError, OSError):
        return False


def _send(fd: int, path: Path, limits: Limits | None) -> None:
    import pickle

    try:
        payload = pickle.dumps((True, read_workbook(path, limits)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # noqa: BLE001 - any failure is "no answer": the parent reads and reports it
        payload = pickle.dumps((False, None))
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)

