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


def _mixed(wb, cls) -> list:
    """Two sheets with every kind of cell and row XlsxWriter writes: numbers and shared strings with and without
    a format, blanks, booleans, formulas, rich strings, links, merged ranges, comments (on rows with and without
    cells), row heights, row formats, hidden rows, a column format, long and escaped text, cells written out of
    column order, a row past a gap, spans over several blocks of 16 rows; the second sheet with a default row
    height of its own (every row tag through XlsxWriter)."""
    bold = wb.add_format({"bold": True})
    money = wb.add_format({"num_format": "#,##0.00_)"})
    colfmt = wb.add_format({"italic": True})
    sheets = []
    for k in range(2):
        ws = wb.add_worksheet(f"S{k}", worksheet_class=cls)
        if k:
            ws.set_default_row(18)
        ws.set_column(6, 6, 12, colfmt)
        ws.write_string(0, 0, "head & <tag> \"q\"", bold)
        ws.write_number(0, 3, 1e-300, money)
        ws.write_number(0, 1, 2**53 + 1)  # no format: XlsxWriter's own path
        for r in range(1, 60):
            ws.write_number(r, 2, r * 1.1, money)
            ws.write_string(r, 0, f"row {r} " + ("x" * (r * 300) if r % 7 == 0 else ""), bold)
            if r % 5 == 0:
                ws.write_blank(r, 4, None, money)
                ws.write_boolean(r, 5, r % 2 == 0, bold)
        ws.write_number(5, 6, 3.0)  # takes the column format
        ws.write_formula(7, 7, "=C2+C3", money, 4.4)
        ws.write_rich_string(8, 8, "a ", bold, "rich", " text")
        ws.write_url(9, 9, "https://example.com/?a=1&b=2", string="link")
        ws.merge_range(10, 1, 10, 3, "merged", bold)
        ws.write_comment(11, 1, "a comment on a row with cells")
        ws.write_comment(70, 3, "a comment on a row of its own")
        ws.set_row(12, 40)
        ws.set_row(13, None, bold)
        ws.set_row(14, 20, None, {"hidden": True})
        ws.set_row(80, 30)  # a row with a height and no cell
        ws.write_number(200, 0, -0.0, money)
        for r, v in enumerate((0.0, -0.0, 0, 1, 1.0, -0.0, 2**60, float(2**60), 2**53 + 1, np.float64(0.1), 1e-300),
                              start=201):  # equal numbers of other types, the two zeros, after one another
            ws.write_number(r, 1, v, money)
        ws.write_string(200, 12, "far right")
        sheets.append(ws)
    return sheets


def test_fast_rows_are_xlsxwriters_bytes():
    """``_FastSheet._render_rows`` writes the ``<row>`` elements XlsxWriter's own ``_write_rows`` writes, byte for
    byte, on sheets with every kind of cell and row (the fast f-strings and the hand-offs to XlsxWriter)."""
    import io

    import xlsxwriter
    from xlsxwriter.worksheet import Worksheet

    wb = xlsxwriter.Workbook(io.BytesIO(), {"in_memory": True})
    for ws in _mixed(wb, X._FastSheet):
        mine = ws._render_rows()
        fh, ws.fh = ws.fh, io.StringIO()
        Worksheet._write_rows(ws)
        theirs, ws.fh = ws.fh.getvalue(), fh
        assert mine == theirs
        assert 'spans="1:13"' in mine and "<row r=\"81\"" in mine and "ht=" in mine and len(mine) > 5_000


def test_fast_sheets_are_xlsxwriters_parts(tmp_path):
    """The same calls on fast sheets and on XlsxWriter's own write the same parts, byte for byte: every sheet,
    the shared strings, the styles, the comments. Rows pre-rendered (``prerender_rows``) hold the same cells and
    styles, but the styles are numbered in the order the pre-rendering first used them, so there every part but
    the sheets and styles is compared byte for byte, and the cells, formats, widths and heights as openpyxl reads them."""
    import datetime
    import zipfile

    import xlsxwriter

    def write(path, cls, prerender):
        wb = xlsxwriter.Workbook(str(path))
        wb.set_properties({"created": datetime.datetime(2026, 1, 1)})
        sheets = _mixed(wb, cls)
        if prerender:
            for ws in sheets:
                ws.prerender_rows()
        wb.close()
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in zf.namelist()}

    slow = write(tmp_path / "slow.xlsx", None, False)
    fast = write(tmp_path / "fast.xlsx", X._FastSheet, False)
    assert fast.keys() == slow.keys() and "xl/worksheets/sheet2.xml" in fast
    for name in fast:
        assert fast[name] == slow[name], name
    pre = write(tmp_path / "pre.xlsx", X._FastSheet, True)
    assert pre.keys() == slow.keys()
    for name in pre:
        if "worksheets/sheet" not in name and name != "xl/styles.xml":
            assert pre[name] == slow[name], name
    assert _cells(tmp_path / "pre.xlsx") == _cells(tmp_path / "slow.xlsx")


def test_wrapped_lines_count_textwraps_lines():
    """``wrap_lines`` counts the lines without textwrap building them (its chunks split more simply when no word
    can be hyphenated, whole chunks laid by bisection, long words broken as textwrap breaks them): the count is
    textwrap's on 40,000 random texts of words, hyphens, dashes, runs of white space of every kind, tabs,
    non-breaking spaces and words longer than a line, at widths 1..30, and on the texts a report wraps."""
    import random
    import textwrap

    rng = random.Random(7)
    pieces = ["a", "b", "-", "--", " ", "   ", "\xa0", "\t", "x" * 30, "PLT-019,", "re-solve", "—", "1", "\x0b",
              "\r", "\x0c", "-x-", "word", "e-", "Q4", "$5,679", "ab-", "-cd", "a-b-c", "!--", "'--x", "é-è", "_-",
              "9-a", "a-9", "(", ")"]
    checked = 0
    for _ in range(40_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        width = rng.randint(1, 30)
        assert X._wrapped_lines(text, width) == len(textwrap.wrap(text, width, break_long_words=True)), (text, width)
        checked += len(text) > width
    assert checked > 20_000  # most texts are longer than their line: the counting is exercised
    text = ("One more wafer start per quarter at FAB04/1c in 2033Q4 would raise the objective (margin less shortfall "
            "penalties) by $5,679, and one less would lower it as much; short there: PLT-019, PLT-052, PLT-172.")
    for width in (10, 21, 59, 100):
        per_line = max(4, int(width * X.CHARS_PER_WIDTH) - 1)
        assert X.wrap_lines(text, width) == len(textwrap.wrap(text, per_line, break_long_words=True))
        assert X.wrap_lines(text + "\nsecond\n", width) == X.wrap_lines(text, width) + 2  # an empty part is a line


@pytest.mark.parametrize("pending", [None, 1])
def test_parallel_deflate_writes_the_same_file(tmp_path, monkeypatch, pending):
    """A workbook closed with its parts deflated on threads (``_close_workbook``) is the same file, byte for byte,
    as XlsxWriter's own closing: same parts, same compressed bytes, same zip headers — whether the parts wait for
    the closing or are stored as soon as more than ``_PENDING_BYTES`` wait. And the threads were used."""
    import datetime

    import xlsxwriter

    if pending is not None:
        monkeypatch.setattr(X, "_PENDING_BYTES", pending)
    made = []
    real = X._ParallelZip.__init__

    def counted(self, *a, **k):
        made.append(self)
        real(self, *a, **k)

    monkeypatch.setattr(X._ParallelZip, "__init__", counted)

    def write(path, parallel):
        wb = xlsxwriter.Workbook(str(path))
        wb.set_properties({"created": datetime.datetime(2026, 1, 1)})
        _mixed(wb, X._FastSheet)
        big = wb.add_worksheet("big", worksheet_class=X._FastSheet)
        for r in range(3000):
            big.write_number(r, 0, r / 7)
            big.write_string(r, 1, f"text {r % 50}")
        X._close_workbook(wb) if parallel else wb.close()
        return path.read_bytes()

    slow = write(tmp_path / "slow.xlsx", False)
    assert not made
    fast = write(tmp_path / "fast.xlsx", True)
    assert len(made) == 1 and fast == slow
    import xlsxwriter.workbook as xw

    assert xw.ZipFile is __import__("zipfile").ZipFile  # XlsxWriter's own ZipFile is back


def test_auto_format_by_numpy_is_the_per_value_one():
    """The format a numeric column without one gets, computed by numpy for int and float columns, is the one
    the per-value rule gives (whole numbers, fractions within ±1, small and large values, NaN and ±inf ignored,
    an empty or all-missing column)."""
    rng = np.random.default_rng(5)
    cases = [[1.0, 2.0, -3.0], [0.5, -0.25, 1.0], [0.5, 99.0], [0.5, 150.0], [np.nan, np.inf, -np.inf], [],
             [np.nan, 0.3], [2**60, -7], [1e300, 0.1], [-1.0, 0.999], [100.0, 0.5], [-0.0]]
    cases += [list(rng.normal(0, s, 20)) for s in (0.1, 10, 1000)] + [list(rng.integers(-5, 5, 20))]
    names = set()
    for values in cases:
        for dtype in (float, np.int64):
            try:
                series = pd.Series(values, dtype=dtype)
            except (ValueError, OverflowError):
                continue  # NaN or 1e300 as int64
            want = X._auto_format_name(X._numbers(series))
            assert X._auto_format_name_of(series) == want, (values, dtype)
            names.add(want)
    assert names == {"int", "ratio", "float"}


def test_sheets_deflated_ahead_make_the_same_file(tmp_path, monkeypatch):
    """``Book.prerender`` starts deflating each finished sheet's part as far as its rows go (``predeflate``); the
    closing finishes it. The file is the same, byte for byte, as with every part deflated at the closing — also
    when a sheet changes after the pre-rendering (its part then no longer starts with what was deflated ahead,
    and is deflated whole) — and the deflating ahead was used for the sheets that did not change."""
    import datetime

    import planner.report.outputs as outputs

    class Fixed(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 1, 1, tzinfo=tz)

    monkeypatch.setattr(outputs._dt, "datetime", Fixed)
    finished = []
    real = X._deflate_rest

    def counted(start, data, offset):
        finished.append(offset)
        return real(start, data, offset)

    monkeypatch.setattr(X, "_deflate_rest", counted)

    def write(path):
        book = X.Book(path, "report", source="t.xlsx")
        for k in range(3):
            ws = book.sheet(f"S{k}")
            book.table(ws, _awkward())
            book.table(ws, pd.DataFrame({"v": np.arange(3000) / 7, "t": [f"row {i % 40}" for i in range(3000)]}),
                       first_row=10)
        book._sheets["S0"].ws.activate()  # as the Overview is: the first sheet's view does not change on closing
        book.prerender()
        book._sheets["S1"].ws.write_string(2, 0, "changed after the pre-rendering")
        book.close()
        return path.read_bytes()

    ahead = write(tmp_path / "ahead.xlsx")
    assert len(finished) == 2 and min(finished) > 50_000  # S0 and S2: most of each part deflated ahead
    with monkeypatch.context() as m:
        m.setattr(X._FastSheet, "predeflate", lambda self, pool: None)
        whole = write(tmp_path / "whole.xlsx")
    assert len(finished) == 2 and ahead == whole
