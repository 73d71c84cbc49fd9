"""Every workbook planner writes reads well on screen and on paper (issue 17).

Two kinds of check:

* on the workbook itself (openpyxl): a number format on every number, no text cut off by its neighbour, a
  complete Overview index with links, headers repeated on every page, wafer starts in whole wafers with totals
  that add up to what is shown;
* on the PDF LibreOffice prints from it (``soffice --convert-to pdf``, read with poppler's ``pdftotext
  -bbox``): a bounded page count, the plan's name, "hypothetical data" and "Page n of m" on every page, no sheet
  wider than one page, text at a readable size, no chart cut by a page break.

The workbooks are the real commands' output on the example and on a generated plan (one nobody tuned the
layout for). The PDF checks skip with a reason when LibreOffice or poppler is missing; `.ci/run` installs both.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE

from planner.cli import main

# body text of an 11 pt font measures ~14.3 pt in pdftotext's word boxes (ascent + descent); 6.5 pt is the
# smallest size we accept on paper (fit-to-width must not shrink a page below it)
BOX_PER_PT = 1.3
MIN_PRINTED_PT = 6.5
# the example's report gained PnL, PnLByQuarter, UnitCost and expansion dates (issue 19): 43 pages
PAGE_LIMITS = {"report": 50, "generated-report": 60, "compare": 24, "sweep": 16, "grid": 12, "montecarlo": 16,
               "template": 20, "example": 24}


def _cli(*args) -> None:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, (args, res.output)


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> dict[str, Path]:
    """One workbook of every kind, written by the real commands."""
    d = tmp_path_factory.mktemp("books")
    src = d / "example.xlsx"
    shutil.copy(EXAMPLE, src)
    gen = d / "gen.xlsx"
    _cli("generate", "--platforms", "14", "--products", "12", "--fabs", "4", "--quarters", "8", "--seed", "3",
         "-o", gen)
    out = {
        "report": d / "example-report.xlsx", "generated-report": d / "gen-report.xlsx",
        "compare": d / "compare.xlsx", "sweep": d / "sweep.xlsx", "grid": d / "grid.xlsx",
        "montecarlo": d / "mc.xlsx", "template": d / "template.xlsx", "example": d / "example-copy.xlsx",
    }
    _cli("solve", src)
    _cli("solve", gen, "--explain")
    _cli("compare", src, "--all-scenarios", "--workers", "1", "-o", out["compare"])
    _cli("sweep", src, "--param", "Backend[TSV-1].units_per_quarter", "--range", "0.8:1.2:0.05", "--op", "scale",
         "--workers", "1",
         "-o", out["sweep"])
    _cli("sweep", src, "--param", "Backend[TSV-1].units_per_quarter", "--range", "0.8:1.2:0.1", "--op", "scale",
         "--param2",
         "Programs[HBM4].qualification_quarters", "--values2", "2,3,4", "--workers", "1", "-o", out["grid"])
    _cli("montecarlo", src, "--samples", "30", "--workers", "1", "-o", out["montecarlo"])
    _cli("template", out["template"])
    _cli("example", out["example"])
    return out


KINDS = sorted(PAGE_LIMITS)


# ---- the workbook itself -----------------------------------------------------------------------------------------
def _width_chars(ws, col_letter: str) -> float:
    """A column's width; XlsxWriter stores equal neighbours as one range (min..max), openpyxl keys it by its
    first letter."""
    idx = openpyxl.utils.column_index_from_string(col_letter)
    for dim in ws.column_dimensions.values():
        if dim.min is not None and dim.min <= idx <= (dim.max or dim.min) and dim.width:
            return dim.width
    return 8.43


def _merged_width(ws, cell) -> float:
    for rng in ws.merged_cells.ranges:
        if cell.coordinate in rng:
            return sum(_width_chars(ws, openpyxl.utils.get_column_letter(c))
                       for c in range(rng.min_col, rng.max_col + 1))
    return _width_chars(ws, cell.column_letter)


@pytest.mark.parametrize("kind", KINDS)
def test_every_number_has_a_number_format(books, kind):
    wb = openpyxl.load_workbook(books[kind])
    raw = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, int | float) and not isinstance(c.value, bool) and c.number_format == "General":
                    raw.append(f"{ws.title}!{c.coordinate}={c.value!r}")
    assert not raw, f"{len(raw)} numbers without a number format, e.g. {raw[:8]}"


@pytest.mark.parametrize("kind", KINDS)
def test_no_text_is_cut_off(books, kind):
    """A text cell whose right neighbour is filled cannot overflow: it must fit its column (wrapped text: in the
    lines its row height allows). Widths in Excel character units; bold text counts 10% wider. Wrapped text
    needs the lines LibreOffice measures (1.1 characters of running text per unit of width, 14.6 pt a line)."""
    wb = openpyxl.load_workbook(books[kind])
    cut = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if not isinstance(c.value, str) or not c.value:
                    continue
                right = ws.cell(c.row, c.column + 1).value
                merged = any(c.coordinate in r for r in ws.merged_cells.ranges)
                if right in (None, "") and not merged and not c.alignment.wrap_text:
                    continue  # free to overflow into the empty neighbour
                width = _merged_width(ws, c)
                need = len(c.value) * (1.1 if c.font and c.font.b else 1.0)
                if c.alignment.wrap_text:
                    height = ws.row_dimensions[c.row].height or 15
                    lines = max(1, math.floor(height / 14.6))
                    per_line = int(width * (1.0 if c.font and c.font.b else 1.1))
                    needed = sum(len(textwrap.wrap(part, per_line)) or 1 for part in c.value.split("\n"))
                    fits = needed <= lines
                else:
                    fits = need <= width
                if not fits:
                    cut.append(f"{ws.title}!{c.coordinate} ({len(c.value)} chars in {width:.0f}): {c.value[:40]!r}")
    assert not cut, f"{len(cut)} cells cut off, e.g. " + "; ".join(cut[:6])


@pytest.mark.parametrize("kind", ["report", "generated-report", "compare", "sweep", "grid", "montecarlo"])
def test_overview_indexes_every_sheet_with_a_link(books, kind):
    wb = openpyxl.load_workbook(books[kind])
    assert wb.sheetnames[0] == "Overview"
    links = {}
    for row in wb["Overview"].iter_rows():
        for c in row:
            if c.hyperlink is not None and c.hyperlink.location:
                links[c.hyperlink.location.split("!")[0].strip("'")] = c.value
    missing = [s for s in wb.sheetnames[1:] if s not in links]
    assert not missing, f"sheets without a link on the Overview: {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_sheet_is_set_up_for_paper(books, kind):
    """One page wide or an explicit scale, header and footer, and header rows repeated on multi-page tables."""
    wb = openpyxl.load_workbook(books[kind])
    for ws in wb.worksheets:
        ps = ws.page_setup
        assert ps.orientation in ("landscape", "portrait"), ws.title
        fit = ws.sheet_properties.pageSetUpPr is not None and ws.sheet_properties.pageSetUpPr.fitToPage
        assert fit and ps.fitToWidth in (None, 1) and ps.fitToHeight == 0 or ps.scale, ws.title
        assert "hypothetical data" in (ws.oddHeader.right.text or "") + (ws.oddHeader.center.text or ""), ws.title
        assert "&P" in (ws.oddFooter.right.text or "") and "&N" in (ws.oddFooter.right.text or ""), ws.title
        header_rows = [c.row for c in ws["A"] if c.fill is not None and c.fill.fgColor.rgb in ("FF1F3864", "001F3864")]
        if ws.max_row > 40 and header_rows == [1]:  # one table, longer than a page
            assert ws.print_title_rows, f"{ws.title}: {ws.max_row} rows but no header row repeated on each page"


def _rows(path: Path, sheet: str) -> list[dict]:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb[sheet].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


@pytest.mark.parametrize("kind", ["report", "generated-report"])
def test_wafer_starts_are_whole_and_add_up(books, kind):
    """Shown in whole wafers; each fab/node/quarter's starts add up to the Capacity sheet's 'used', never above
    its capacity; the LP stays continuous and the sheet says so."""
    path = books[kind]
    ws_rows = _rows(path, "WaferStarts")
    assert ws_rows and all(float(r["wafers"]).is_integer() for r in ws_rows)
    total: dict = defaultdict(float)
    for r in ws_rows:
        total[(f"{r['fab']}/{r['node']}", r["period"])] += r["wafers"]
    checked = 0
    for r in _rows(path, "Capacity"):
        if r["kind"] != "fab":
            continue
        assert r["used"] == total.get((r["resource"], r["period"]), 0.0), (r["resource"], r["period"])
        assert r["used"] <= r["capacity"] + 1e-9
        checked += 1
    assert checked > 0
    wb = openpyxl.load_workbook(path, read_only=True)
    text = " ".join(str(v) for row in wb["WaferStarts"].iter_rows(values_only=True) for v in row if v) + " ".join(
        str(v) for row in wb["Overview"].iter_rows(values_only=True) for v in row if v)
    assert "whole wafers" in text


def test_compare_wafer_totals_match_the_solve_report(books):
    """The comparison's base wafers per fab is the sum of the whole wafers the solve report shows."""
    shown: dict = defaultdict(float)
    for r in _rows(books["report"], "WaferStarts"):
        shown[r["fab"]] += r["wafers"]
    kpis: dict = {}
    for r in _rows(books["compare"], "KPIs"):  # the first table: values (the change against the base follows)
        kpis.setdefault(r.get("metric"), r)
    for fab, wafers in shown.items():
        assert kpis[f"wafers[{fab}]"]["base"] == wafers, fab


# ---- the printed PDF ------------------------------------------------------------------------------------------------
@dataclass
class Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass
class Page:
    number: int
    width: float
    height: float
    lines: list[list[Word]]

    def _find(self, marker: str, lines: list[list[Word]]) -> int | None:
        return next((i for i, line in enumerate(lines) if marker in " ".join(w.text for w in line)), None)

    @property
    def _header_at(self) -> int | None:  # the page header: the first line saying "hypothetical data"
        return self._find("hypothetical data", self.lines[:4])

    @property
    def _footer_at(self) -> int | None:  # the page footer: the last line saying "Page n of m"
        i = self._find("Page", self.lines[::-1][:3])
        return None if i is None else len(self.lines) - 1 - i

    @property
    def header(self) -> str:
        i = self._header_at
        return " ".join(w.text for w in self.lines[i]) if i is not None else ""

    @property
    def footer(self) -> str:
        i = self._footer_at
        return " ".join(w.text for w in self.lines[i]) if i is not None else ""

    @property
    def body(self) -> list[list[Word]]:
        """Every line but the page header and footer (a chart cut by the page break above may print even
        above the header)."""
        return [line for i, line in enumerate(self.lines) if i not in (self._header_at, self._footer_at)]

    def text(self) -> str:
        return "\n".join(" ".join(w.text for w in line) for line in self.body)


def _pdf_pages(pdf: Path) -> list[Page]:
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=120).stdout
    pages = []
    for n, m in enumerate(re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', html, re.S), 1):
        words = [Word(re.sub(r"&amp;", "&", t), float(a), float(b), float(c), float(d)) for a, b, c, d, t in
                 re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>',
                            m.group(3))]
        words.sort(key=lambda w: (round(w.y0), w.x0))
        lines: list[list[Word]] = []
        for w in words:
            if lines and abs(lines[-1][0].y0 - w.y0) < 2.5:
                lines[-1].append(w)
            else:
                lines.append([w])
        for line in lines:
            line.sort(key=lambda w: w.x0)
        pages.append(Page(n, float(m.group(1)), float(m.group(2)), lines))
    return pages


@pytest.fixture(scope="module")
def pdfs(books, tmp_path_factory) -> dict[str, list[Page]]:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None or shutil.which("pdftotext") is None:
        pytest.skip("LibreOffice (soffice) and poppler (pdftotext) are needed to print; .ci/run installs them "
                    "(apt-get install libreoffice-calc poppler-utils)")
    d = tmp_path_factory.mktemp("pdf")
    profile = d / "profile"
    subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
                    "--convert-to", "pdf", "--outdir", str(d), *[str(p) for p in books.values()]],
                   capture_output=True, text=True, timeout=600, check=True)
    return {k: _pdf_pages(d / (p.stem + ".pdf")) for k, p in books.items()}


def _sheet_of(page: Page, sheetnames: list[str]) -> str:
    """The sheet a page prints (its name is in the page header's centre)."""
    header = page.header
    found = [s for s in sheetnames if f" {s} " in f" {header} "]
    assert found, f"page {page.number}: no sheet name in its header {header!r}"
    return max(found, key=len)


@pytest.mark.office
@pytest.mark.parametrize("kind", KINDS)
def test_page_count_header_and_footer(books, pdfs, kind):
    pages = pdfs[kind]
    assert 1 <= len(pages) <= PAGE_LIMITS[kind], f"{kind}: {len(pages)} pages"
    plan_name = {"template": "template.xlsx", "example": "example-copy.xlsx",
                 "generated-report": "gen.xlsx"}.get(kind, "example.xlsx")
    for p in pages:
        assert {round(p.width), round(p.height)} == {842, 595}, f"page {p.number} is not A4: {p.width}x{p.height}"
        assert "hypothetical data" in p.header and plan_name in p.header, (p.number, p.header)
        assert f"Page {p.number} of {len(pages)}" in p.footer, (p.number, p.footer)


@pytest.mark.office
@pytest.mark.parametrize("kind", KINDS)
def test_text_prints_at_a_readable_size(pdfs, kind):
    small = []
    for p in pdfs[kind]:
        heights = sorted(w.height for line in p.body for w in line)
        if len(heights) < 5:
            continue
        median = heights[len(heights) // 2] / BOX_PER_PT
        if median < MIN_PRINTED_PT:
            small.append(f"page {p.number} ({p.header.split('  ')[0][:40]}): {median:.1f} pt")
    assert not small, f"{kind}: text printed below {MIN_PRINTED_PT} pt on " + "; ".join(small)


@pytest.mark.office
@pytest.mark.parametrize("kind", KINDS)
def test_no_sheet_is_wider_than_one_page(books, pdfs, kind):
    """The widest row of every sheet prints on one line of one page: the first words of all its text cells
    share a line. A sheet two pages wide prints them on different pages (or, with a repeated key column,
    prints the key beside only some of them)."""
    wb = openpyxl.load_workbook(books[kind], read_only=True)
    by_sheet: dict[str, list[Page]] = defaultdict(list)
    for p in pdfs[kind]:
        by_sheet[_sheet_of(p, wb.sheetnames)].append(p)
    for ws in wb.worksheets:
        widest, cells = None, []
        for row in ws.iter_rows(max_row=60, values_only=True):
            filled = [v for v in row if v not in (None, "")]
            if len(filled) >= 2 and (widest is None or len(filled) > len(cells)):
                widest, cells = row, filled
        if widest is None:
            continue
        words = [str(v).split()[0][:12] for v in cells if isinstance(v, str) and v.split()]
        if len(words) < 2:
            continue  # numbers print formatted; the header rows of the same sheet are checked instead
        ok = any(all(any(w.text.startswith(x) for w in line) for x in words)
                 for p in by_sheet[ws.title] for line in p.body)
        assert ok, f"{kind} {ws.title}: the cells of its widest row ({words}) never print on one line: the " \
                   f"sheet is wider than a page"


@pytest.mark.office
@pytest.mark.parametrize("kind", ["report", "generated-report", "compare", "sweep", "montecarlo"])
def test_no_chart_is_cut_by_a_page_break(books, pdfs, kind):
    """Charts live on chart sheets, on a grid whose rows are kept together: every page of a chart sheet starts
    with a chart's title (or the sheet's own title), never with the bottom of a chart cut off the page before."""
    wb = openpyxl.load_workbook(books[kind])
    chart_sheets = {ws.title: ws for ws in wb.worksheets if ws._charts}
    assert chart_sheets, f"{kind}: no charts"
    for ws in chart_sheets.values():
        titles = []
        for ch in ws._charts:
            t = ch.title.tx.rich.p[0].r[0].t if ch.title is not None and ch.title.tx is not None else ""
            assert t, f"{ws.title}: a chart without a title"
            titles.append(t)
        heading = str(ws["A1"].value or "")
        pages = [p for p in pdfs[kind] if _sheet_of(p, wb.sheetnames) == ws.title]
        assert pages
        seen = set()
        for p in pages:
            top = " ".join(w.text for w in p.body[0]) if p.body else ""
            assert top.startswith(heading[:20]) or any(top.startswith(t[:25]) for t in titles), \
                f"{kind} {ws.title} page {p.number} starts with {top[:60]!r}: a chart is cut by the page break"
            text = p.text()
            seen |= {t for t in titles if t[:25] in text}
        assert seen == set(titles), f"{kind} {ws.title}: chart titles not printed: {set(titles) - seen}"


@pytest.mark.office
def test_repeated_header_rows_print_on_every_page(books, pdfs):
    """A table longer than a page shows its header on each page (Service has 72 rows in the example)."""
    wb = openpyxl.load_workbook(books["report"], read_only=True)
    pages = [p for p in pdfs["report"] if _sheet_of(p, wb.sheetnames) == "Service"]
    assert len(pages) >= 2
    for p in pages:
        assert p.body and [w.text for w in p.body[0]][:2] == ["platform", "period"], (p.number, p.body[:1])


# ---- whole wafers -----------------------------------------------------------------------------------------------------
def test_whole_wafers_by_largest_remainder():
    """Hand example. FAB/n1 in 2026Q1 starts 10.4 + 20.7 + 30.2 = 61.3 wafers: floors 10, 20, 30 (60), the rounded
    total is 61, so one wafer goes to the largest remainder (20.7) → 10, 21, 30. In 2026Q2 it starts 99.7 + 0.5 =
    100.2 (a solver tolerance above its capacity of 100): the total is capped at 100, floors 99 + 0 = 99, one wafer to
    the larger remainder (0.7) → 100, 0. Capacity.used becomes those sums."""
    import pandas as pd

    from planner.analysis.results import whole_wafers

    starts = pd.DataFrame({"fab": "FAB", "node": "n1", "product": ["A", "B", "C", "A", "B"],
                           "period": ["2026Q1"] * 3 + ["2026Q2"] * 2, "wafers": [10.4, 20.7, 30.2, 99.7, 0.5],
                           "good_units": 1.0, "lands": "x"})
    capacity = pd.DataFrame({"resource": ["FAB/n1", "FAB/n1", "TSV"], "kind": ["fab", "fab", "backend"],
                             "unit": ["wafers", "wafers", "units"], "period": ["2026Q1", "2026Q2", "2026Q1"],
                             "capacity": [100.0, 100.0, 50.0], "used": [61.3, 100.2, 12.5],
                             "utilisation": [0.613, 1.002, 0.25], "shadow_price": 0.0})
    shown, cap = whole_wafers(starts, capacity)
    assert shown["wafers"].tolist() == [10, 21, 30, 100, 0]
    assert shown["good_units"].tolist() == [1.0] * 5  # units stay the LP's
    assert cap["used"].tolist() == [61, 100, 12.5]  # back-end rows untouched
    assert cap["utilisation"].tolist() == pytest.approx([0.61, 1.0, 0.25])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_whole_wafers_add_up_on_generated_plans(seed):
    """On generated plans: each start moves by less than one wafer, each fab/node/quarter shows its own total
    rounded (capped at its capacity), and Capacity.used is exactly the sum of what WaferStarts shows."""
    import numpy as np

    from planner import api
    from planner.analysis.results import whole_wafers
    from planner.io.generate import generate_frames

    plan = api.plan_from_frames(generate_frames(8, 8, 3, 6, seed))
    res = api.run(plan).results
    assert len(res.wafer_starts) > 0 and (res.wafer_starts["wafers"] % 1 > 1e-6).any(), "nothing to round"
    shown, cap = whole_wafers(res.wafer_starts, res.capacity)
    assert (np.abs(shown["wafers"] - res.wafer_starts["wafers"]) < 1).all()
    assert (shown["wafers"] % 1 == 0).all()
    exact = res.wafer_starts.assign(resource=res.wafer_starts["fab"] + "/" + res.wafer_starts["node"]) \
        .groupby(["resource", "period"])["wafers"].sum()
    sums = shown.assign(resource=shown["fab"] + "/" + shown["node"]).groupby(["resource", "period"])["wafers"].sum()
    limit = cap[cap["kind"] == "fab"].set_index(["resource", "period"])["capacity"]
    for key, total in exact.items():
        assert sums[key] == min(round(total), np.floor(limit[key] + 1e-9)), key
    fab = cap[cap["kind"] == "fab"].set_index(["resource", "period"])["used"]
    assert all(fab[k] == sums.get(k, 0.0) for k in fab.index)
