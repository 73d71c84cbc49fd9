"""Input workbooks written from the contract: the blank template and any filled plan (the example, generated
plans, scenario exports).

Each sheet gets its contract header, a comment on every header cell saying what the column means and its
unit, and Excel data validation (drop-downs for choices, number ranges), so analysts editing by hand are
stopped by Excel before planner has to stop them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from planner.io import contract as C
from planner.report.atomic import atomic_write
from planner.report.xlsx import Book

VALIDATION_ROWS = 5000


def _comment(col: C.Column) -> str:
    text = col.description or col.name
    if col.unit:
        text += f" [{col.unit}]"
    text += f". Expected: {col.expected()}."
    if not col.required:
        text += " Optional column."
    if col.blank_ok and col.default is not None:
        text += f" Blank = {col.default}."
    return text


def _validation(col: C.Column) -> dict[str, Any] | None:
    if col.kind == "choice":
        return {"validate": "list", "source": list(col.choices), "error_message": f"Expected {col.expected()}."}
    if col.kind in ("int", "float") and (col.min is not None or col.max is not None):
        lo = col.min if col.min is not None else -1e308
        hi = col.max if col.max is not None else 1e308
        v: dict[str, Any] = {"validate": "integer" if col.kind == "int" else "decimal",
                             "criteria": "between", "minimum": lo, "maximum": hi,
                             "error_message": f"Expected {col.expected()}."[:255]}
        if col.blank_ok:
            v["ignore_blank"] = True
        return v
    return None


def write_input_workbook(path: Path | str, data: dict[str, pd.DataFrame] | None = None, title: str = "",
                         notes: list[str] | None = None, sheets: tuple[C.Sheet, ...] = C.SHEETS,
                         kind: str = "template") -> Path:
    """Write a contract workbook; ``data`` maps sheet names to frames (missing sheets get headers only).

    ``kind`` (template, example, generated) is recorded in the document properties, so planner never mistakes
    the workbook for a report it may replace."""
    data = data or {}

    def write(tmp: Path) -> None:
        book = Book(tmp, kind, title=title or "planner input workbook")
        readme = book.sheet("README", "what this workbook is, each sheet, each setting")
        readme.hide_gridlines(2)
        book.width(readme, 0, 22)
        book.width(readme, 1, 90)
        readme.write_string(0, 0, title or "planner input workbook", book.title)
        book.row_height(readme, 0, 22)
        readme.write_string(2, 0, "Notice", book.bold)
        book.paragraph(readme, 2, C.HYPOTHETICAL_NOTICE, 1, 1, book.notice, width=90)
        r = 4
        for line in notes or []:
            r = book.paragraph(readme, r, line, 1, 1, width=90)
        r += 1
        sheets_table = pd.DataFrame({
            "Sheet": [spec.name for spec in sheets],
            "What it holds (hover over a header cell for each column's meaning and unit)": [
                ("(required) " if spec.required else "(optional) ") + spec.description for spec in sheets]})
        _, last = book.table(readme, sheets_table, first_row=r, autofilter=False, freeze=False, repeat_header=False,
                             widths={"Sheet": 22}, wrap={sheets_table.columns[1]: 90})
        r = last + 2
        keys = pd.DataFrame({
            "Settings keys": [k.name for k in C.SETTINGS_KEYS.values()],
            "Meaning": [f"{k.description}; {k.expected()}" + ("" if k.required else f" (default: {k.default})")
                        for k in C.SETTINGS_KEYS.values()]})
        book.table(readme, keys, first_row=r, autofilter=False, freeze=False, repeat_header=False,
                   widths={"Settings keys": 22}, wrap={"Meaning": 90})

        for spec in sheets:
            ws = book.sheet(spec.name, spec.description)
            df = data.get(spec.name)
            if df is None:
                df = pd.DataFrame(columns=spec.column_names)
            df = df[[c for c in df.columns if not str(c).startswith("_")]]
            comments = {c.name: _comment(c) for c in spec.columns}
            formats = {c.name: ("int" if c.kind == "int" else "float" if c.kind == "float" else "")
                       for c in spec.columns}
            for c in spec.columns:
                if c.unit == "fraction":
                    formats[c.name] = "ratio"
                elif c.unit.startswith("money"):
                    formats[c.name] = "money2"
            # free text (Settings notes) wraps in a fixed column rather than shrinking the printed page
            wrap = {"note": 60} if "note" in df.columns else None
            book.table(ws, df, formats=formats, header_comments=comments, autofilter=False, wrap=wrap)
            for j, name in enumerate(df.columns):
                if name not in spec.column_names:
                    continue
                col = spec.column(name)
                v = _validation(col)
                if v:
                    ws.data_validation(1, j, VALIDATION_ROWS, j, v)
            if spec.name == "Settings":
                ws.data_validation(1, 0, VALIDATION_ROWS, 0, {"validate": "list", "source": list(C.SETTINGS_KEYS),
                                                              "show_error": False})
                # each setting's value cell gets its own check: a drop-down for choices and true/false
                for i, key in enumerate(df.get("key", [])):
                    setting = C.SETTINGS_KEYS.get(str(key).strip().casefold())
                    if setting is None:
                        continue
                    choices = list(setting.choices) if setting.kind == "choice" else (
                        ["true", "false"] if setting.kind == "bool" else None)
                    if choices:
                        ws.data_validation(i + 1, 1, i + 1, 1, {"validate": "list", "source": choices,
                                                                "error_message": f"Expected {setting.expected()}."})
        book.close()

    return atomic_write(Path(path), write)


def write_template(path: Path | str) -> Path:
    """An empty workbook with every sheet, header, comment and validation; Settings pre-filled with defaults."""
    settings = pd.DataFrame(
        [{"key": k.name, "value": "" if k.default is None else str(k.default).lower() if isinstance(k.default, bool)
          else k.default, "note": k.description} for k in C.SETTINGS_KEYS.values()]
    )
    return write_input_workbook(path, {"Settings": settings}, title="planner input template",
                                notes=["Fill one sheet per tab; row 1 is the header. Blank rows are skipped.",
                                       "Periods are quarter labels such as 2026Q1. Money is in Settings.currency.",
                                       "Check the workbook with: planner validate THIS_FILE.xlsx"])
