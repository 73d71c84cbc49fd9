"""Where a workbook may be written: the output-path policy every writing command applies before any work.

One function, :func:`check_output`, decides; the CLI calls it for every path it will write, before reading
the plan or solving, and again just before the write (a file may have appeared during a long batch):

1. the path ends in ``.xlsx`` — every command writes an Excel workbook, and a workbook named ``.csv`` is a
   trap for the next reader (:class:`OutputUsageError`, exit 2);
2. it is none of the inputs, its directory exists and is writable (:func:`planner.report.atomic.check_output_path`);
3. nothing is there, or what is there is a **report planner wrote and nobody has saved since** — anything else
   (a file planner did not write, a report someone edited, an input workbook, even one planner created: an
   analyst fills those in) is kept unless ``force`` (:class:`OutputRefused`, exit 1). Commands that create
   input workbooks (template, example, generate) never replace an existing file without ``force``.

How a planner report is recognised (README, "What planner promises"): :func:`stamp` runs after the workbook
is closed and before it is moved into place. It writes a custom document property ``planner_workbook`` =
kind (visible in Excel under File > Info > Properties; it survives a re-save, so an edited report is named as
such) and puts ``planner <kind> <fingerprint>`` in the zip archive's comment, where the fingerprint is a
SHA-256 over every part's name, size and CRC-32 from the zip's central directory. Excel, LibreOffice and
openpyxl rebuild the archive when they save, which drops or invalidates the comment, so a report someone
saved is no longer "untouched". Reading both costs the central directory and one small XML part, never the
workbook.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree

from planner.report.atomic import OutputError, check_output_path

#: workbooks a later run may replace when untouched
REPORT_KINDS = {"report": "solve report", "compare": "scenario comparison", "sweep": "sweep",
                "montecarlo": "Monte Carlo report", "hedge": "hedged plan"}
#: input workbooks: never replaced without --force, whoever wrote them
INPUT_KINDS = {"template": "input template", "example": "example plan", "generated": "generated plan"}
KINDS = {**REPORT_KINDS, **INPUT_KINDS}
EXTENSION = ".xlsx"
PROPERTY = "planner_workbook"
_COMMENT_PREFIX = b"planner "
_CUSTOM_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/custom-properties}"
_MAX_PART = 1 << 20  # a custom.xml larger than this is not ours; never inflate more


class OutputUsageError(OutputError):
    """The output path is wrong for what the command writes (a usage error: exit 2, before any work)."""


class OutputRefused(OutputError):
    """Something is at the output path that planner must not replace without ``--force``."""


@dataclass(frozen=True)
class Mark:
    """What planner can tell about an existing workbook from its properties."""

    kind: str | None  # planner_workbook property, None when absent
    untouched: bool  # the archive is byte-for-byte as planner wrote it (fingerprint matches)


def set_properties(wb, kind: str, title: str, source: str = "") -> None:
    """Document properties of a workbook planner writes (``wb``: an open ``xlsxwriter.Workbook``).

    Title and comments say what it is and that the data are hypothetical (they show in Excel's file info and
    in a PDF's metadata); the custom property names the kind so an edited report is still recognised.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown workbook kind {kind!r}; one of {', '.join(KINDS)}")
    from planner import __version__

    wb.set_properties({
        "title": title, "subject": KINDS[kind], "author": "planner", "company": "hypothetical data",
        "comments": "All data in this workbook are hypothetical." + (f" Input: {source}." if source else ""),
        "created": _dt.datetime.now(_dt.UTC),
    })
    wb.set_custom_property(PROPERTY, kind)
    wb.set_custom_property("planner_version", __version__)


def _fingerprint(zf: zipfile.ZipFile) -> str:
    h = hashlib.sha256()
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        h.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
    return h.hexdigest()[:32]


def stamp(path: Path | str, kind: str) -> None:
    """Seal a closed workbook as planner's: the archive comment carries its kind and fingerprint.

    Appending a comment rewrites only the zip's central directory; the parts are untouched.
    """
    with zipfile.ZipFile(path, "a") as zf:
        zf.comment = _COMMENT_PREFIX + f"{kind} {_fingerprint(zf)}".encode()


def read_mark(path: Path | str) -> Mark | None:
    """The planner mark of an existing regular file, or ``None`` when it is not a workbook at all."""
    try:
        with zipfile.ZipFile(path) as zf:
            kind = None
            try:
                info = zf.getinfo("docProps/custom.xml")
            except KeyError:
                info = None
            if info is not None and info.file_size <= _MAX_PART:
                try:
                    root = ElementTree.fromstring(zf.read(info))
                    for prop in root.iter(f"{_CUSTOM_NS}property"):
                        if prop.get("name") == PROPERTY:
                            kind = "".join(prop.itertext()).strip() or None
                except Exception:  # noqa: BLE001 - a damaged or hostile part: not ours
                    kind = None
            comment = zf.comment or b""
            untouched = False
            if kind is not None and comment.startswith(_COMMENT_PREFIX):
                parts = comment[len(_COMMENT_PREFIX):].decode("ascii", "replace").split()
                untouched = len(parts) == 2 and parts[0] == kind and parts[1] == _fingerprint(zf)
            return Mark(kind, untouched)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def check_output(path: Path | str, kind: str, *, force: bool = False, inputs: tuple[Path, ...] = (),
                 option: str = "-o") -> Path:
    """Refuse an output path that would lose work or mislead; return the resolved path to write.

    ``option`` names the argument in messages (``-o`` or ``OUT.xlsx``). ``force`` lifts rule 3 only: an
    input file, a missing directory or a wrong extension are refused whatever the flags.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown workbook kind {kind!r}")
    path = Path(path)
    if path.suffix.lower() != EXTENSION:
        found = f"'{path.suffix}'" if path.suffix else "no extension"
        raise OutputUsageError(f"{option} {path}: planner writes an Excel workbook, so the name must end in "
                               f"{EXTENSION} (found {found}); e.g. {path.with_suffix(EXTENSION).name}")
    target = check_output_path(path, inputs)
    for inp in inputs:  # a hard link or second name for an input is still the input
        try:
            same = target.exists() and Path(inp).exists() and os.path.samefile(target, inp)
        except OSError:
            same = False
        if same:
            raise OutputError(f"refusing to write over the input file {inp} ({path} is the same file); "
                              f"choose another {option} path")
    if force:
        return target
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    hint = f"choose another {option} path, or add --force to replace it"
    if not stat.S_ISREG(st.st_mode):
        raise OutputRefused(f"{path} exists and is not a regular file; {hint}")
    if kind in INPUT_KINDS:
        raise OutputRefused(f"{path} already exists and may hold someone's plan; planner does not replace an "
                            f"existing file when it writes an input workbook: {hint}")
    mark = read_mark(target)
    if mark is None or mark.kind is None:
        raise OutputRefused(f"{path} exists and is not a report planner wrote (it lacks the '{PROPERTY}' document "
                            f"property every planner report carries); refusing to replace it: {hint}")
    if mark.kind not in REPORT_KINDS:
        what = f"planner {KINDS[mark.kind]} (an input workbook, perhaps filled in since)" if mark.kind in INPUT_KINDS \
            else f"workbook of a kind this planner does not know ({mark.kind!r})"
        raise OutputRefused(f"{path} is a {what}; refusing to replace it with a report: {hint}")
    if not mark.untouched:
        raise OutputRefused(f"{path} is a planner {REPORT_KINDS[mark.kind]} that has been saved since "
                            f"planner wrote it (someone may have added to it); refusing to replace it: {hint}")
    return target
