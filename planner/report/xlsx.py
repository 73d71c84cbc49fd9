"""Writing workbooks: one small layer over XlsxWriter shared by the template, the example and the reports.

XlsxWriter is opened with ``strings_to_formulas=False`` so that no text, whatever it starts with (``=``,
``+``, ``-``, ``@``), can ever become a formula: formula injection is closed at the root rather than by
escaping at each call site. Formulas the report wants are written with ``write_formula`` explicitly. The same
holds for charts (:meth:`Book.chart`: a title or series name is text, even one that looks like ``Sheet!A1``)
and number formats (:func:`literal_format`: a currency label is shown, never interpreted).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

# number format names → Excel formats
NUMBER_FORMATS = {
    "int": "#,##0",
    "float": "#,##0.00",
    "float1": "#,##0.0",
    "money": "#,##0",
    "money2": "#,##0.00",
    "pct": "0.0%",
    "text": "@",
    "ratio": "0.000",
}


class Book:
    """An XlsxWriter workbook with the house formats."""

    def __init__(self, path: Path | str, constant_memory: bool = False):
        self.wb = xlsxwriter.Workbook(
            str(path),
            {"strings_to_formulas": False, "strings_to_urls": False, "nan_inf_to_errors": True,
             "constant_memory": constant_memory},
        )
        self.fmt: dict[str, Any] = {name: self.wb.add_format({"num_format": f}) for name, f in NUMBER_FORMATS.items()}
        self.header = self.wb.add_format({"bold": True, "bg_color": "#1F3864", "font_color": "#FFFFFF",
                                          "border": 1, "valign": "top"})
        self.title = self.wb.add_format({"bold": True, "font_size": 16, "font_color": "#1F3864"})
        self.subtitle = self.wb.add_format({"bold": True, "font_size": 12, "font_color": "#1F3864"})
        self.bold = self.wb.add_format({"bold": True})
        self.wrap = self.wb.add_format({"text_wrap": True, "valign": "top"})
        self.notice = self.wb.add_format({"bold": True, "font_color": "#9C0006", "bg_color": "#FFC7CE",
                                          "border": 1, "text_wrap": True})
        self.bad = self.wb.add_format({"bg_color": "#FFC7CE", "font_color": "#9C0006"})

    def money(self, currency: str, decimals: int = 0) -> Any:
        """Money format for a currency: "$"#,##0 for USD, #,##0 EUR otherwise (the label as literal text)."""
        digits = "#,##0" + ("." + "0" * decimals if decimals else "")
        fmt = f'"$"{digits}' if currency.upper() == "USD" else f"{digits} {literal_format(currency)}"
        return self.wb.add_format({"num_format": fmt})

    def chart(self, options: dict[str, Any]) -> Any:
        """A chart whose titles, axis names and series names given as text stay text.

        XlsxWriter turns any name matching ``Sheet!A1`` into a cell reference (``<c:f>``), so a platform named
        ``+1+cmd|' /C calc'!A0`` would put a formula into a chart title. Names given as ``[sheet, row, col]``
        still refer to that cell, which holds the text written with ``write_string``.
        """
        chart = self.wb.add_chart(options)
        by_reference = chart._process_names  # XlsxWriter's own: resolves [sheet, row, col] lists

        def names(name: Any, name_formula: Any) -> tuple[Any, Any]:
            return by_reference(name, name_formula) if isinstance(name, list) else (name, name_formula)

        chart._process_names = names
        return chart

    def sheet(self, name: str) -> Worksheet:
        """A new sheet set up to print landscape, one page wide (also how the PDF rendering looks)."""
        ws = self.wb.add_worksheet(name[:31])
        ws.set_landscape()
        ws.set_paper(9)
        ws.fit_to_pages(1, 0)
        return ws

    def close(self) -> None:
        self.wb.close()

    def write_cell(self, ws: Worksheet, row: int, col: int, value: Any, fmt: Any = None) -> None:
        """Write one value by its Python type; text is always text, NaN/None a blank."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            ws.write_blank(row, col, None, fmt)
        elif isinstance(value, bool):
            ws.write_boolean(row, col, value, fmt)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and math.isinf(value):
                ws.write_string(row, col, "inf" if value > 0 else "-inf", fmt)
            else:
                ws.write_number(row, col, value, fmt)
        elif hasattr(value, "item"):  # numpy scalar
            self.write_cell(ws, row, col, value.item(), fmt)
        else:
            ws.write_string(row, col, str(value), fmt)

    def table(self, ws: Worksheet, df: pd.DataFrame, formats: dict[str, str] | None = None, first_row: int = 0,
              first_col: int = 0, widths: dict[str, float] | None = None, autofilter: bool = True,
              freeze: bool = True, header_comments: dict[str, str] | None = None) -> tuple[int, int]:
        """Write a frame as a formatted table; returns (first data row, last data row) 0-based."""
        formats = formats or {}
        cols = list(df.columns)
        for j, c in enumerate(cols):
            ws.write_string(first_row, first_col + j, str(c), self.header)
            if header_comments and c in header_comments:
                ws.write_comment(first_row, first_col + j, header_comments[c], {"x_scale": 2.2, "y_scale": 1.6})
        col_fmts = [self.fmt.get(formats.get(c, ""), None) for c in cols]
        values = df.to_numpy(dtype=object) if len(df) else []
        for i, rec in enumerate(values):
            r = first_row + 1 + i
            for j, v in enumerate(rec):
                self.write_cell(ws, r, first_col + j, v, col_fmts[j])
        for j, c in enumerate(cols):
            if widths and c in widths:
                w = widths[c]
            else:
                sample = [len(str(c))] + [len(_display(v, formats.get(c))) for v in df[c].head(200)]
                w = min(max(sample) + 2, 60)
            ws.set_column(first_col + j, first_col + j, max(w, 8))
        last = first_row + len(df)
        if autofilter and cols:
            ws.autofilter(first_row, first_col, max(last, first_row), first_col + len(cols) - 1)
        if freeze:
            ws.freeze_panes(first_row + 1, 0)
        return first_row + 1, last


def literal_format(text: str) -> str:
    """Text as an Excel number-format literal: every character escaped, so none acts as a code (``0 # ; @ "``)."""
    return "".join("\\" + ch for ch in text)


def _display(v: Any, fmt: str | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float | int) and not isinstance(v, bool):
        if fmt == "pct":
            return f"{v:.1%}"
        return f"{v:,.2f}" if fmt in ("float", "money2") else f"{v:,.0f}"
    return str(v)
