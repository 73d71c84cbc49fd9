"""``planner convert``: a CSV folder (one file per sheet) into an input workbook, and a workbook into a folder.

Conversion copies what the user wrote — every contract sheet's header and cells, extra columns included — not the
validated plan, so nothing is filled in or dropped on the way; a semicolon file's decimal commas become numbers (as
:mod:`planner.io.csvdir` reads them). The plan need not be valid to be converted (fixing an ERP export in Excel is a
reason to convert it); the caller validates the result and says so. Existing files are never replaced unless
``force``; each file is written atomically.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from planner.io import contract as C
from planner.io.csvdir import read_csv_folder
from planner.io.problems import Problem
from planner.io.reader import RawWorkbook, read_workbook
from planner.io.validate import parse_value
from planner.report.atomic import OutputError, atomic_write, check_output_path
from planner.report.template import write_input_workbook

_SPEC = {s.name.casefold(): s for s in C.SHEETS}


@dataclass
class Converted:
    written: list[Path]
    sheets: list[str]
    skipped: list[str] = field(default_factory=list)  # sheets or files that are not planner sheets
    problems: list[Problem] = field(default_factory=list)  # what the reader found (blank formula cells …)


def _contract_sheets(raw: RawWorkbook) -> dict[str, tuple[list, list[tuple]]]:
    out = {}
    for name, sheet in raw.sheets.items():
        spec = _SPEC.get(name.strip().casefold())
        if spec is not None and spec.name not in out:
            out[spec.name] = (sheet.header, [r for _, r in sheet.rows])
    return out


def _typed(spec: C.Sheet, header: list, rows: list[tuple]) -> pd.DataFrame:
    """A sheet's cells with numbers as numbers (text that does not parse stays text, for the user to fix)."""
    cols = {c.name.casefold(): c for c in spec.columns}
    names = [str(h) if h is not None else f"column {i + 1}" for i, h in enumerate(header)]
    data: dict[str, list] = {n: [] for n in names}
    for rec in rows:
        for i, n in enumerate(names):
            v = rec[i] if i < len(rec) else None
            col = cols.get(n.strip().casefold())
            if isinstance(v, str) and col is not None and col.kind in ("int", "float"):
                parsed, err = parse_value(col, v)
                if parsed is not None and err in (None, "out_of_range", "yield_out_of_range"):
                    v = int(parsed) if float(parsed).is_integer() else parsed
            data[n].append(v)
    return pd.DataFrame(data, dtype=object)


def folder_to_workbook(src: Path, dst: Path, force: bool = False) -> Converted:
    """Every contract CSV of ``src`` as one sheet of the workbook ``dst``."""
    if dst.suffix.lower() != ".xlsx":
        raise OutputError(f"cannot write {dst}: a folder converts to an .xlsx workbook")
    if dst.exists() and not force:
        raise OutputError(f"{dst} exists; add --force to replace it")
    raw = read_csv_folder(src)
    if raw.problems:
        return Converted([], [], problems=raw.problems)
    sheets = _contract_sheets(raw)
    frames = {name: _typed(C.SHEETS_BY_NAME[name], h, rows) for name, (h, rows) in sheets.items()}
    skipped = [f"{n}.csv" for n in raw.sheets if n.strip().casefold() not in _SPEC]
    written = write_input_workbook(dst, frames, title=f"planner input workbook (converted from {src.name}/)",
                                   notes=[f"Converted from the CSV folder {src} by planner convert."])
    order = [s.name for s in C.SHEETS if s.name in frames]
    return Converted([written], order, skipped)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, _dt.datetime | _dt.date):
        return v.isoformat()
    return str(v)


def workbook_to_folder(src: Path, dst: Path, force: bool = False) -> Converted:
    """Every contract sheet of the workbook ``src`` as ``dst/<Sheet>.csv`` (UTF-8, comma-separated)."""
    raw = read_workbook(src)
    sheets = _contract_sheets(raw)
    if dst.exists() and not dst.is_dir():
        raise OutputError(f"cannot write {dst}: it is a file, not a folder")
    targets = {name: dst / f"{name}.csv" for name in sheets}
    if dst.exists() and not force:
        clash = sorted(p.name for p in targets.values() if p.exists())
        if clash:
            raise OutputError(f"{dst} already holds {', '.join(clash)}; add --force to replace them")
    if not dst.exists():
        check_output_path(dst)  # the parent must exist and be writable
        dst.mkdir()
    written = []
    for name, (header, rows) in sheets.items():
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        width = len(header)
        w.writerow([_text(h) for h in header])
        for rec in rows:
            w.writerow([_text(v) for v in list(rec)[:width]])
        text = buf.getvalue()
        written.append(atomic_write(targets[name], lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"),
                                    inputs=(src,)))
    skipped = [n for n in raw.sheets if n.strip().casefold() not in _SPEC]
    order = [s.name for s in C.SHEETS if s.name in sheets]
    return Converted(written, order, skipped, problems=raw.problems)
