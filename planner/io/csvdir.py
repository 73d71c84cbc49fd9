"""A folder of CSV files → raw sheets, as an ERP export arrives: one file per sheet (``Products.csv``, ``BOM.csv``…),
the workbook's headers, UTF-8 with or without a byte-order mark, comma or semicolon separated (detected per file).

The folder becomes the same :class:`~planner.io.reader.RawWorkbook` a workbook does — a sheet per file, each record
numbered by the line it starts on — so validation is exactly the workbook's; :func:`located` then rewrites each
problem's place as *file and line* instead of *sheet and cell*. Problems only a text file can have (not UTF-8, a
tab or pipe separator, a line with more fields than the header) are reported here with the same four parts.

In a semicolon-separated file a comma inside a number is its decimal mark (``8,5`` is 8.5, ``1.234,5`` is 1234.5),
as spreadsheet programs write them in locales that use one; in a comma-separated file numbers use a decimal point.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

from planner.io import contract as C
from planner.io.problems import Problem, did_you_mean
from planner.io.reader import Limits, RawSheet, RawWorkbook, ReadError

_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*%?\s*$")
_GROUPED_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d{1,3}(\.\d{3})+(,\d+)?\s*%?\s*$")
_NAMES = {s.name.casefold(): s for s in C.SHEETS}
_BOMS = {b"\xff\xfe": "UTF-16 (little-endian)", b"\xfe\xff": "UTF-16 (big-endian)"}


def csv_files(folder: Path) -> list[Path]:
    """The folder's CSV files (any case of ``.csv``), sorted; other files and sub-folders are not read."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv" and
                  not p.name.startswith((".", "~$")))


def _problem(code: str, file: str, message: str, line: int | None = None, **kw) -> Problem:
    return Problem(code=code, message=message, sheet=Path(file).stem, file=file, row=line, **kw)


def _decode(path: Path, data: bytes) -> tuple[str | None, Problem | None]:
    """UTF-8 text without its BOM, or the problem that says what the file is instead."""
    for bom, name in _BOMS.items():
        if data.startswith(bom):
            return None, _problem("bad_encoding", path.name, f"the file is {name}, not UTF-8", line=1,
                                  expected="UTF-8 text (with or without a byte-order mark)", found=name,
                                  hint="save it as 'CSV UTF-8 (comma delimited)' in Excel, or convert it with "
                                       "iconv -f UTF-16 -t UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        raw = data[start: end if end >= 0 else len(data)].rstrip(b"\r")
        guess = raw.decode("cp1252", errors="replace")
        return None, _problem("bad_encoding", path.name, f"byte 0x{data[exc.start]:02X} is not UTF-8", line=line,
                              expected="UTF-8 text (with or without a byte-order mark)",
                              found=f"line {line} read as Windows-1252: {guess[:60]!r}",
                              hint="save it as 'CSV UTF-8 (comma delimited)' in Excel, or convert it with "
                                   "iconv -f WINDOWS-1252 -t UTF-8")


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _delimiter(path: Path, text: str, spec: C.Sheet | None) -> tuple[str | None, str, Problem | None]:
    """The file's separator (``,`` or ``;``), the text without an Excel ``sep=`` line, or a problem."""
    first = text.split("\n", 1)[0].strip("\r")
    m = re.fullmatch(r"\s*sep=(.)\s*", first)
    if m:
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if m.group(1) in ",;":
            return m.group(1), text, None
        first = m.group(1)
    else:
        first = next((ln.strip("\r") for ln in text.split("\n") if ln.strip()), "")
    known = {c.name.casefold() for c in spec.columns} if spec else set()

    def score(d: str) -> tuple[int, int]:
        cells = [c.strip().casefold() for c in _fields(first, d)]
        return sum(c in known for c in cells), len(cells)

    best = max((",", ";"), key=score)
    if score(best)[1] > 1 or not first:
        return best, text, None
    other = {"\t": "tab", "|": "'|'"}
    found = next((name for d, name in other.items() if d in first), None)
    if found or (spec is not None and len(spec.columns) > 1):
        return None, text, _problem(
            "bad_delimiter", path.name, "the header row is not separated by commas or semicolons", line=1,
            expected="fields separated by ',' or ';' (" + ", ".join(spec.column_names if spec else []) + ")",
            found=f"separated by {found}" if found else repr(first[:60]),
            hint="export the sheet as CSV with comma or semicolon separators")
    return best, text, None


def _numeric_columns(spec: C.Sheet | None, header: list) -> set[int]:
    if spec is None:
        return set()
    kinds = {c.name.casefold(): c.kind for c in spec.columns}
    return {i for i, h in enumerate(header) if h is not None and kinds.get(str(h).strip().casefold()) in ("int", "float")}


def _decimal(value: str) -> str:
    """A semicolon file's number with a decimal comma, in the decimal-point form the parser reads."""
    if _DECIMAL_COMMA.match(value):
        return value.replace(",", ".")
    if _GROUPED_DECIMAL_COMMA.match(value):
        return value.replace(".", "").replace(",", ".")
    return value


def read_csv_file(path: Path, limits: Limits, problems: list[Problem]) -> RawSheet | None:
    """One CSV file as a raw sheet (records numbered by the line they start on), or None after a problem."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        problems.append(_problem("file_too_large", path.name, f"{path.name} is {size / 2**20:.0f} MB, more than "
                                 f"the limit of {limits.max_file_bytes / 2**20:.0f} MB",
                                 hint="raise the limit with PLANNER_MAX_FILE_MB if the file is genuine"))
        return None
    text, bad = _decode(path, path.read_bytes())
    if bad:
        problems.append(bad)
        return None
    spec = _NAMES.get(path.stem.strip().casefold())
    before = text or ""
    delimiter, text, bad = _delimiter(path, before, spec)
    if bad:
        problems.append(bad)
        return None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or ",", strict=True)
    header: list | None = None
    sheet = RawSheet(path.stem, [])
    numeric: set[int] = set()
    line = 2 if len(text) < len(before) else 1  # after an Excel "sep=;" line, records start on line 2
    offset = line - 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1 + offset
            cells = [c.strip() or None for c in record]
            if all(c is None for c in cells):
                continue
            if header is None:
                header = cells
                while header and header[-1] is None:
                    header.pop()
                sheet.header = header
                numeric = _numeric_columns(spec, header) if delimiter == ";" else set()
                continue
            if len(cells) > len(header) and any(c is not None for c in cells[len(header):]):
                problems.append(_problem(
                    "ragged_row", path.name, f"the line has {len(cells)} fields, the header {len(header)}", line=start,
                    expected=f"{len(header)} fields separated by {delimiter!r}", found=f"{len(cells)} fields",
                    hint="quote values that contain the separator" + (
                        "; numbers with a decimal comma need ';' as the separator" if delimiter == "," else "")))
                continue
            cells = (cells + [None] * len(header))[: len(header)]
            for i in numeric:
                if cells[i] is not None:
                    cells[i] = _decimal(cells[i])
            if len(sheet.rows) >= limits.max_rows:
                problems.append(_problem("too_many_rows", path.name, f"{path.name} has more than "
                                         f"{limits.max_rows:,} data lines", line=start,
                                         hint="raise PLANNER_MAX_ROWS if the plan is genuinely this large"))
                return None
            sheet.rows.append((start, tuple(cells)))
    except csv.Error as exc:
        unclosed = "unexpected end of data" in str(exc)
        problems.append(_problem(
            "corrupt_file", path.name, "a quote (\") opened on this line is never closed" if unclosed else
            f"the line cannot be read as CSV ({exc})", line=line,
            expected="a quoted value closed by a second quote, e.g. \"FAB-A, line 2\"",
            found="the rest of the file inside one value" if unclosed else "text after a closing quote",
            hint="close or remove the quote; a quote inside a quoted value is written twice (\"\")"))
        return None
    return sheet


def folder_sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def read_csv_folder(folder: str | Path, limits: Limits | None = None) -> RawWorkbook:
    """Read every CSV file of a folder into a :class:`RawWorkbook` (file-level problems collected in it), or raise
    :class:`ReadError` when the folder has no CSV file at all."""
    limits = limits or Limits()
    folder = Path(folder)
    if not folder.is_dir():
        raise ReadError(Problem(code="file_not_found", message=f"folder {folder} does not exist", found=str(folder)))
    files = csv_files(folder)
    if not files:
        others = sorted(p.name for p in folder.iterdir())[:8]
        raise ReadError(Problem(code="missing_sheet", message=f"folder {folder} has no .csv files",
                                expected="one CSV file per sheet: " + ", ".join(f"{s.name}.csv" for s in C.SHEETS
                                                                                 if s.required),
                                found=("files " + ", ".join(others)) if others else "an empty folder"))
    problems: list[Problem] = []
    sheets = {}
    for p in files:
        sheet = read_csv_file(p, limits, problems)
        sheets[p.stem] = sheet if sheet is not None else RawSheet(p.stem, [])
    raw = RawWorkbook(path=folder, sha256=folder_sha256(files), sheets=sheets, problems=problems)
    return raw


def located(problems: list[Problem], raw: RawWorkbook) -> list[Problem]:
    """Problems of a CSV folder with *file and line* in place of *sheet and cell* (``Products.csv line 7``).

    A file that could not be read at all already has its problem; the "missing" or "empty" sheet that follows from
    it is dropped, so each cause is reported once."""
    folder = raw.path
    file_of = {}  # contract sheet name → the file that holds it
    for stem in raw.sheets:
        spec = _NAMES.get(stem.strip().casefold())
        if spec is not None:
            file_of.setdefault(spec.name, f"{stem}.csv")
    unreadable = {p.sheet for p in raw.problems}
    names = {p.stem: p.name for p in csv_files(folder)} if folder.is_dir() else {}
    out = []
    for p in problems:
        if p.file:
            out.append(p)
            continue
        if p.code == "missing_sheet" and p.sheet:
            p.file = f"{p.sheet}.csv"
            p.message = f"required file {p.file!r} is missing"
            p.expected = f"a file named {p.file!r} in {folder}"
            p.found = "files " + ", ".join(repr(n) for n in sorted(names.values())) if names else "no CSV files"
        elif p.code == "unknown_sheet":
            p.file = names.get(p.sheet, f"{p.sheet}.csv")
            p.message = f"file {p.file!r} is not a planner sheet"
            p.found = repr(p.file)
            target = did_you_mean(p.sheet, [s.name for s in C.SHEETS], cutoff=0.7)
            p.expected = "a file named after a sheet, e.g. " + (f"'{target.split(chr(34))[1]}.csv'" if target else
                                                                "'Products.csv'")
            p.hint = f'did you mean "{target.split(chr(34))[1]}.csv"?' if target else ""
        elif p.sheet in file_of:
            if p.code in ("empty_sheet", "no_rows") and Path(file_of[p.sheet]).stem in unreadable:
                continue
            p.file = file_of[p.sheet]
            if p.code == "empty_sheet":
                p.message = "file is empty"
                p.expected = p.expected.replace("a header row in row 1", "a header line")
            if p.code == "missing_column":
                p.expected = p.expected.replace("in row 1", "in the header line")
        else:
            out.append(p)
            continue
        p.cell = ""
        out.append(p)
    return out
