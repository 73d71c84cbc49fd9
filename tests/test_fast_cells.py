"""The report's fast cell path (``planner.report.xlsx.FAST``: columns stored straight into XlsxWriter's cell table
and serialised in one step) writes the same workbook as XlsxWriter's own per-cell calls: every cell's value,
number format, font and alignment, every sheet's widths, heights, filters and frozen panes. Checked on a
generated plan's report and on a table with every kind of awkward value (NaN, ±inf, None, booleans, numpy
scalars, text over 16,000 characters, control characters, a pandas string column with missing values)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import openpyxl
import pandas as pd
import pytest

import planner.report.xlsx as X


def _cells(path) -> dict:
    wb = openpyxl.load_workbook(path)
    out = {}
    for ws in wb.worksheets:
        cells = {}
        for row in ws.iter_rows():
            for c in row:
                if c.value is not None or c.has_style:
                    cells[c.coordinate] = (c.value, c.number_format, c.font.b, c.alignment.wrap_text,
                                           c.alignment.vertical, c.fill.fgColor.rgb)
        out[ws.title] = (cells, ws.freeze_panes, ws.auto_filter.ref, ws.print_title_rows,
                         {k: v.width for k, v in ws.column_dimensions.items()},
                         {k: v.height for k, v in ws.row_dimensions.items()})
    return out


def _awkward() -> pd.DataFrame:
    df = pd.DataFrame({
        "num": [1.5, np.nan, np.inf, -np.inf, 0.0, -2.25],
        "int": np.array([1, 2, 3, 2**53 + 1, -5, 0], dtype=np.int64),
        "obj": [None, "x", 3, np.float64(2.5), True, "a\x01b"],
        "text": ["short", "y" * 17_000, "=1+1", "", "line\nbreak", "  pad  "],
        "flag": [True, False, True, False, True, False],
        "s": pd.array(["a", None, "c", "d", None, "f"], dtype="string"),
    })
    df.insert(2, "dup", df["num"] * 2)
    return df


def _write(path, fast: bool) -> None:
    old = X.FAST
    X.FAST = fast
    try:
        book = X.Book(path, "report", source="t.xlsx")
        ws = book.sheet("T")
        book.table(ws, _awkward(), formats={"int": "units"})
        ws2 = book.sheet("U")
        book.table(ws2, _awkward().iloc[:, [0, 1, 3, 6]], first_row=3)
        book.close()
    finally:
        X.FAST = old


def test_fast_path_is_taken():
    """Not a vacuous comparison: with FAST on, the sheets are the fast kind and a column goes to the cell table
    without XlsxWriter's write_number."""
    assert X._FAST_OK
    book = X.Book("/dev/null", "report")
    ws = book.sheet("T")
    assert isinstance(ws, X._FastSheet)
    calls = []
    ws.write_number = lambda *a, **k: calls.append(a)  # type: ignore[method-assign]
    book.table(ws, pd.DataFrame({"v": [1.0, 2.0, 3.0]}))
    assert calls == [] and ws.table[3][0].number == 3.0


def test_awkward_table_same_with_and_without_fast_path(tmp_path):
    _write(tmp_path / "fast.xlsx", True)
    _write(tmp_path / "slow.xlsx", False)
    fast, slow = _cells(tmp_path / "fast.xlsx"), _cells(tmp_path / "slow.xlsx")
    assert fast == slow
    cells = fast["T"][0]
    assert cells["A3"][0] is None and cells["A4"][0] == "inf" and cells["B5"][0] == 2**53  # Excel holds doubles
    assert len(cells["E3"][0]) == 17_000


@pytest.mark.parametrize("policy", ["margin"])
def test_generated_report_same_with_and_without_fast_path(tmp_path, policy):
    plan = tmp_path / "g.xlsx"
    subprocess.run([sys.executable, "-m", "planner", "generate", "--platforms", "12", "--products", "10", "--fabs",
                    "3", "--quarters", "6", "--seed", "3", "-o", str(plan)], check=True, capture_output=True)
    from planner import api
    from planner.report.writer import write_report

    _, rep = api.analyse(api.load_workbook(plan), insights=False, explain=False)
    old = X.FAST
    try:
        for fast in (True, False):
            X.FAST = fast
            write_report(tmp_path / f"r{fast}.xlsx", rep)
    finally:
        X.FAST = old
    fast, slow = _cells(tmp_path / "rTrue.xlsx"), _cells(tmp_path / "rFalse.xlsx")
    assert fast.keys() == slow.keys() and len(fast) >= 8
    assert sum(len(v[0]) for v in fast.values()) > 1000
    assert fast == slow
