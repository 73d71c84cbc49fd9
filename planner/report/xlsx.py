"""Writing workbooks: one layer over XlsxWriter shared by every workbook planner writes — the house formats,
column widths, wrapped text, print set-up, chart grids, the Overview's sheet index and the document properties.

Screen and paper are set up here once, not per writer:

* every number gets a number format (money, units, percent, wafers…; a column without one gets one from its
  values), so no raw float such as ``0.0487062249999894`` ever shows;
* a column is as wide as its header's longest word and its content; several tables on one sheet widen a
  column, never narrow it; text longer than ``MAX_TEXT`` characters wraps in a fixed-width column and the row
  grows to hold it, instead of widening the page until it prints at 4 pt;
* every sheet prints on A4 — portrait when it fits, landscape where wide — one page wide (fit to width, never
  below ``MIN_SCALE``; a wider sheet prints at that scale across pages with its key column repeated), with
  header rows repeated on every page and a header/footer giving the plan's file name, the sheet, "hypothetical
  data" and "Page n of m";
* charts sit on a grid (:meth:`Book.chart_grid`) with page breaks between grid rows, so no chart is cut;
* the Overview's sheet index (:meth:`Book.sheet_index`) is written when the book closes, so it lists every
  sheet, each with a link.

XlsxWriter is opened with ``strings_to_formulas=False`` so that no text, whatever it starts with (``=``,
``+``, ``-``, ``@``), can ever become a formula: formula injection is closed at the root rather than by
escaping at each call site. Formulas the report wants are written with ``write_formula`` explicitly. The same
holds for charts (:meth:`Book.chart`: a title or series name is text, even one that looks like ``Sheet!A1``)
and number formats (:func:`literal_format`: a currency label is shown, never interpreted).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import io
import itertools
import math
import os
import re
import textwrap
import threading
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import CellNumberTuple, CellStringTuple, Worksheet

from planner import __version__
from planner.report.outputs import KINDS, set_properties, stamp

# number format names → Excel formats
NUMBER_FORMATS = {
    "int": "#,##0",
    "units": "#,##0",
    "wafers": "#,##0",
    "count": "0",
    "float": "#,##0.00",
    "float1": "#,##0.0",
    "money": "#,##0",
    "money2": "#,##0.00",
    "pct": "0.0%",
    "dpct": "+0.0%;-0.0%;0.0%",
    "signed": "+#,##0;-#,##0;0",
    "text": "@",
    "ratio": "0.000",
    "seconds": "0.00",
    "sci": "0.0E+00",
}

# Page geometry (A4, margins 0.4" left/right, 0.75" top/bottom), in Excel's 96-dpi pixels. A column of width w
# characters is 7w + 5 pixels in Calibri 11.
PAPER_A4 = 9
PAGE_HEIGHT_PT = {"landscape": (8.27 - 2 * 0.75) * 72, "portrait": (11.69 - 2 * 0.75) * 72}
MARGIN_LR, MARGIN_TB, MARGIN_HF = 0.4, 0.75, 0.3
PORTRAIT_PX = int((8.27 - 2 * MARGIN_LR) * 96)
LANDSCAPE_PX = int((11.69 - 2 * MARGIN_LR) * 96)
LANDSCAPE_HEIGHT_PX = int((8.27 - 2 * MARGIN_TB) * 96) - 24  # less the header and footer lines
MIN_SCALE = 0.62  # 11 pt prints at 6.8 pt at the least
DEFAULT_WIDTH = 8.43
MAX_TEXT = 50  # longer text wraps in a column this wide (or the width a writer asks for)
MAX_AUTO_WIDTH = 40
LINE_PT = 15.0  # one line of 11 pt text
CHARS_PER_WIDTH = 1.1  # characters of running text per unit of column width (LibreOffice/Carlito: 1.1-1.25)

# Chart grid: two half-width charts or one full-width chart per grid row, rows kept to a page
CHART_W, CHART_H, CHART_GAP = 600, 300, 12
GRID_PX = 2 * CHART_W + CHART_GAP + 10
GRID_SCALE = min(100, int(LANDSCAPE_PX / GRID_PX * 100))
ROW_PX = 20


def col_px(width: float) -> float:
    return width * 7 + 5


def padded(num_format: str) -> str:
    """A number format with a little space after the number (``_)``, the width of a parenthesis), so a
    right-aligned number never runs into the left-aligned text of the next column."""
    if num_format in ("@", "General"):
        return num_format
    sections = re.split(r"(?<!\\);", num_format)  # an escaped \; is a literal (a currency label), not a section
    return ";".join(sec if sec.endswith("_)") else sec + "_)" for sec in sections)


@functools.lru_cache(maxsize=1 << 14)
def wrap_lines(text: str, width: float, bold: bool = False) -> int:
    """Lines ``text`` takes when wrapped in a column ``width`` characters wide (conservatively: a few more
    than LibreOffice or Excel need, never fewer). Kept for the texts asked again (a column of platform lists)."""
    per_line = max(4, int(width * (CHARS_PER_WIDTH / (1.1 if bold else 1.0))) - 1)
    # a part that fits on one line (and has no tab, which textwrap would expand) is one line
    return sum(1 if len(part) <= per_line and "\t" not in part else max(1, _wrapped_lines(part, per_line))
               for part in str(text).split("\n"))


_SPLITTER = textwrap.TextWrapper(break_long_words=True)


_SPACES = re.compile("( +)")
# what any split of textwrap's inside a word needs: a hyphen between letters, or two hyphens (written to start
# with the hyphen, which the regex engine finds fast)
_MAY_HYPHENATE = re.compile(r"-(?:(?<=[^\d\W]-)(?=[^\d\W])|-)")


def _chunks(text: str) -> list[str]:
    """``textwrap``'s chunks of ``text`` (``TextWrapper._split_chunks``: tabs expanded, white space made spaces,
    split into runs of spaces and words, a word further at its hyphens). textwrap splits a word only at a hyphen
    between letters (``re-solve``) or at a dash (``--``); a text with neither (``PLT-019, PLT-052``) is split at
    its spaces alone, by a simpler pattern."""
    text = text.expandtabs(_SPLITTER.tabsize).translate(_SPLITTER.unicode_whitespace_trans)
    parts = (_SPLITTER.wordsep_re if _MAY_HYPHENATE.search(text) else _SPACES).split(text)
    return [c for c in parts if c]


def _wrapped_lines(text: str, width: int) -> int:
    """``len(textwrap.wrap(text, width, break_long_words=True))``, counted without building the lines: textwrap's
    own chunks (words, hyphenated parts, runs of white space) laid greedily on lines as ``_wrap_chunks`` lays
    them — the whole chunks that fit found by bisecting their running lengths, a chunk too long for any line
    broken as ``_handle_long_word`` breaks it (after its last hyphen that fits), white space dropped at the
    start and end of lines. A test compares it with textwrap on many texts and widths."""
    chunks = _chunks(text)
    n = len(chunks)
    cum = [0, *itertools.accumulate(map(len, chunks))]
    i, lines = 0, 0
    head: str | None = None  # the rest of chunk i, once a long word was broken
    while i < n:
        first = chunks[i] if head is None else head
        if lines and first.strip() == "":  # a line after the first does not start with white space
            i, head = i + 1, None
            if i == n:
                break
            first = chunks[i]
        cur, taken, last = 0, 0, ""
        if len(first) <= width:
            cur, taken, last, i, head = len(first), 1, first, i + 1, None
            j = bisect.bisect_right(cum, cum[i] + width - cur, i) - 1  # whole chunks i..j-1 fit as well
            if j > i:
                cur, taken, last, i = cur + cum[j] - cum[i], taken + j - i, chunks[j - 1], j
        if i < n:
            nxt = chunks[i] if head is None else head
            if len(nxt) > width:  # too long for any line: as much as fits, after a hyphen if there is one
                end = width - cur
                hyphen = nxt.rfind("-", 0, end)
                if hyphen > 0 and any(c != "-" for c in nxt[:hyphen]):
                    end = hyphen + 1
                last, head, taken = nxt[:end], nxt[end:], taken + 1
        if taken and last.strip() == "":  # nor ends with it
            taken -= 1
        if taken:
            lines += 1
    return lines


def _esc(text: str) -> str:
    """Text for a page header/footer: '&' is a control character there."""
    return str(text).replace("&", "&&")[:80]


# Large tables (a 416k-column plan writes ~700k cells) are written through two shortcuts, ``FAST`` switches both off
# (tests compare the two workbooks cell by cell, and the rows' XML byte for byte). Both produce what XlsxWriter's own
# calls produce: (1) a plain column (finite numbers, or text under 16,000 characters) is stored straight into the
# sheet's cell table with its one format, as ``write_number``/``write_string`` store it, without their per-cell
# argument and bounds checks (done once per column instead); (2) the rows are serialised by
# ``_FastSheet._render_rows`` into one list of strings, a number or shared-string cell with a format by one f-string,
# everything else by XlsxWriter's own element writers. They lean on XlsxWriter's cell table (``Worksheet.table``, its
# cell tuples, ``_write_cell``): ``_FAST_OK`` checks those are there, and without them every cell goes the ordinary
# way.
FAST = True
_FAST_OK = (callable(getattr(Worksheet, "_write_cell", None)) and callable(getattr(Worksheet, "_check_dimensions", None))
            and CellNumberTuple.__name__ == "Number" and CellStringTuple.__name__ == "String")
_MAX_FAST_TEXT = 16_000  # longer text may need XlsxWriter's UTF-16 length check and truncation


class _Sink:
    """A file-like ``write`` that appends to a list: XlsxWriter's own element writers, pointed at it, add their
    XML to the rows :meth:`_FastSheet._render_rows` is building, in order."""

    def __init__(self, write: Callable[[str], Any]):
        self.write = write


class _FastSheet(Worksheet):
    """A worksheet that serialises its rows faster than XlsxWriter, to the same bytes (see ``FAST``), and can
    serialise them ahead of the workbook's closing (:meth:`prerender_rows`)."""

    _rows_xml: str | None = None
    _rows_state: tuple | None = None

    def _state(self) -> tuple:
        """What the rows' XML depends on: used range, rows, cells, row heights, comments."""
        return (self.dim_rowmin, self.dim_rowmax, self.dim_colmin, self.dim_colmax, len(self.table),
                sum(map(len, self.table.values())), len(self.row_info), len(self.comments))

    def prerender_rows(self) -> None:
        """Serialise the rows now into a string, for the closing to copy (``planner solve`` does this while it
        waits for the capacity price checks, so that the closing after them has less to do). Should the sheet
        change after this (a cell written, a row's settings changed), the closing renders it afresh."""
        if self.constant_memory or self.dim_rowmin is None:
            return
        self._rows_xml = self._render_rows()
        self._rows_state = self._state()

    def _spans(self) -> dict[int, str]:
        """XlsxWriter's ``_calculate_spans``: per block of 16 rows, the first and last column (1-based) holding
        a cell or a comment within the used range — from each row's lowest and highest column instead of a
        scan of every column of every row."""
        colmin, colmax, rowmin, rowmax = self.dim_colmin, self.dim_colmax, self.dim_rowmin, self.dim_rowmax
        lo: dict[int, int] = {}
        hi: dict[int, int] = {}
        for rows in (self.table, self.comments):
            for row, cells in rows.items():
                if not cells or not rowmin <= row <= rowmax:
                    continue
                a, b = min(cells), max(cells)
                if a < colmin or b > colmax:
                    inside = [c for c in cells if colmin <= c <= colmax]
                    if not inside:
                        continue
                    a, b = min(inside), max(inside)
                k = row >> 4
                if k in lo:
                    lo[k], hi[k] = min(lo[k], a), max(hi[k], b)
                else:
                    lo[k], hi[k] = a, b
        return {k: f"{lo[k] + 1}:{hi[k] + 1}" for k in sorted(lo)}

    def _render_rows(self) -> str:
        """The sheet's ``<row>`` elements, byte for byte as XlsxWriter's ``_write_rows`` writes them, built as
        one list of strings: a number or shared-string cell with a format is one f-string (its format's index
        looked up once per sheet, in the order XlsxWriter would first ask for it), a plain row's start tag
        another; every other cell and every row with settings (height, format, comments) goes through
        XlsxWriter's own ``_write_cell``/``_write_row``, writing into the same list."""
        out: list[str] = []
        sink = _Sink(out.append)
        fh, self.fh = self.fh, sink
        try:
            self.row_spans = spans = self._spans()
            table, row_info, comments = self.table, self.row_info, self.comments
            colmin, colmax = self.dim_colmin, self.dim_colmax
            # a row without settings has the start tag <row r=".." spans=".."> only when the default height is
            # the original one and no Excel 2010 attribute is asked for; otherwise XlsxWriter writes every tag
            plain = self.default_row_height == self.original_row_height and self.excel_version == 2007
            xfs: dict[Any, int] = {}  # a format's index, by the format (hashed by identity)
            names = [xl_col_to_name(c) for c in range(colmax + 1)]
            write_cell, write_row, add = super()._write_cell, self._write_row, out.append
            number, string = CellNumberTuple, CellStringTuple
            for row in range(self.dim_rowmin, self.dim_rowmax + 1):
                cells = table.get(row)
                info = row_info.get(row)
                if not cells:
                    if info is not None or row in comments:
                        self._write_empty_row(row, spans.get(row >> 4), info)
                    continue
                span = spans.get(row >> 4)
                if info is None and plain:
                    add(f'<row r="{row + 1}" spans="{span}">' if span else f'<row r="{row + 1}">')
                else:
                    write_row(row, span, info)
                rs = str(row + 1)
                items = sorted(cells.items())
                if items[0][0] < colmin or items[-1][0] > colmax:  # XlsxWriter writes the used range only
                    items = [(c, cell) for c, cell in items if colmin <= c <= colmax]
                for col, cell in items:
                    fmt = cell.format
                    cls = cell.__class__
                    if fmt is not None and (cls is number or cls is string):
                        xf = xfs.get(fmt)
                        if xf is None:
                            xf = xfs[fmt] = fmt._get_xf_index()
                        if cls is number:
                            add(f'<c r="{names[col]}{rs}" s="{xf}"><v>{cell.number:.16G}</v></c>')
                        else:
                            add(f'<c r="{names[col]}{rs}" s="{xf}" t="s"><v>{cell.string}</v></c>')
                    else:
                        write_cell(row, col, cell)
                add("</row>")
        finally:
            self.fh = fh
        return "".join(out)

    def _check_dimensions(self, row: int, col: int, ignore_row: bool = False, ignore_col: bool = False) -> int:
        # every cell write and set_row passes here (the fast column writes too): what was pre-rendered is stale,
        # even where the counts in _state stay the same (a cell written again, a row's height raised)
        if not (ignore_row or ignore_col):
            self._rows_xml = None
        return super()._check_dimensions(row, col, ignore_row, ignore_col)

    def set_row(self, row: int, height: float | None = None, cell_format: Any = None,
                options: dict | None = None) -> int:
        kept, before = self._rows_xml, self.row_info.get(row)
        out = super().set_row(row, height, cell_format, options)
        if kept is not None and self.row_info.get(row) == before:  # the same settings again (the closing
            self._rows_xml = kept  # re-applies the heights prerender applied): the rendered rows still hold
        return out

    _xml_path: str | None = None

    def _set_xml_writer(self, filename: Any) -> None:
        self._xml_path = filename if isinstance(filename, str) else None
        super()._set_xml_writer(filename)

    def _assemble_xml_file(self) -> None:
        super()._assemble_xml_file()
        head, self._head = self._head, None
        if _ZIP and self._xml_path:  # written and closed: deflated while XlsxWriter writes the next parts
            _ZIP[-1].prefetch(self._xml_path, head)

    _head: tuple[bytes, Future] | None = None

    def predeflate(self, pool: ThreadPoolExecutor) -> None:
        """Start deflating the sheet's part now, as far as its rows go (the XML before them and the pre-rendered
        rows: ~95 % of a large sheet): what XlsxWriter will write first, rendered as it renders it, then deflated
        on ``pool`` by zipfile's compressor, kept unfinished. The closing finishes it with the rest of the part
        (:meth:`_ParallelZip.prefetch`) — if the part does start with these bytes; else it deflates the whole."""
        if self._rows_xml is None:
            return
        fh, self.fh = self.fh, io.StringIO()
        try:  # the first steps of Worksheet._assemble_xml_file, which only write
            self._xml_declaration()
            self._write_worksheet()
            self._write_sheet_pr()
            self._write_dimension()
            self._write_sheet_views()
            self._write_sheet_format_pr()
            self._write_cols()
            self._write_sheet_data()
            head = self.fh.getvalue().encode()
        finally:
            self.fh = fh
        self._head = (head, pool.submit(_deflate_start, head))

    def _write_rows(self) -> None:
        if self.constant_memory:
            super()._write_rows()
            return
        if self._rows_xml is not None and self._rows_state == self._state():
            self.fh.write(self._rows_xml)
            return
        if self.dim_rowmin is not None:
            self.fh.write(self._render_rows())


# Closing a workbook deflates its parts (~30 MB of XML for a 416k-column plan) one after the other on the calling
# thread. ``_ParallelZip`` deflates them on a few threads instead (zlib lets go of the GIL), each sheet as soon as
# XlsxWriter has written it, while it writes the next: the same level, the same bytes (zipfile's own header, its
# compressor's output for the whole part, which is the same whatever size the pieces it is fed), in the same order.
_DEFLATERS = max(1, min(4, (os.cpu_count() or 2) - 1))  # the calling thread has work of its own meanwhile
_PENDING_BYTES = 256 << 20  # parts read and waiting to be stored, at most: then the ones before are stored first


def _deflate_start(head: bytes) -> tuple[Any, bytes]:
    """zipfile's compressor (default level) fed the first bytes of a part: the compressor, to be fed the rest,
    and what it has output so far. Its output for the whole is the same however the part is cut."""
    packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return packer, packer.compress(head)


def _deflate_rest(start: Future, data: bytes, offset: int) -> bytes:
    packer, out = start.result()
    return out + packer.compress(memoryview(data)[offset:]) + packer.flush()


def _deflate(data: bytes, level: int | None) -> bytes:
    """What zipfile's compressor makes of ``data`` (``zipfile._get_compressor`` for ZIP_DEFLATED)."""
    packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION if level is None else level, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


class _Packed:
    """A compressor whose output was computed beforehand: ``_ZipWriteFile`` feeds it the part (and computes the
    CRC and sizes itself) and gets the deflated bytes on flushing."""

    def __init__(self, packed: bytes):
        self.packed = packed

    def compress(self, data: Any) -> bytes:
        return b""

    def flush(self) -> bytes:
        return self.packed


class _ParallelZip(zipfile.ZipFile):
    """The ZipFile XlsxWriter stores a workbook's parts in (see :func:`_close_workbook`): a part handed to
    :meth:`write` (a temporary file, removed right after) is read at once and deflated on a thread; the parts are
    stored in the order they came, with zipfile's own header and bookkeeping, when :meth:`close` (or a part
    written another way) comes. A part :meth:`prefetch` was told of is deflated from when it was complete."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pool = ThreadPoolExecutor(_DEFLATERS, thread_name_prefix="deflate")
        self._early: dict[str, tuple[bytes, Future]] = {}
        self._parts: list[tuple[zipfile.ZipInfo, bytes, Future]] = []
        self._waiting = 0

    def prefetch(self, path: str, head: tuple[bytes, Future] | None = None) -> None:
        """Read the finished part at ``path`` and start deflating it; ``head``: its first bytes and their deflating
        begun (:meth:`_FastSheet.predeflate`), finished here if the part starts with them."""
        if self.compression != zipfile.ZIP_DEFLATED or path in self._early:
            return
        if head is None or self.compresslevel is not None:
            self._early[path] = self._read(path)
            return
        with open(path, "rb") as f:
            data = f.read()
        job = (self._pool.submit(_deflate_rest, head[1], data, len(head[0])) if data.startswith(head[0])
               else self._pool.submit(_deflate, data, self.compresslevel))  # the sheet changed since
        self._early[path] = data, job

    def write(self, filename: Any, arcname: Any = None, compress_type: Any = None, compresslevel: Any = None) -> None:
        if (compress_type is not None or compresslevel is not None or self.compression != zipfile.ZIP_DEFLATED
                or self.mode != "w" or not isinstance(filename, str) or os.path.isdir(filename)):
            self._store()
            super().write(filename, arcname, compress_type, compresslevel)
            return
        zinfo = zipfile.ZipInfo.from_file(filename, arcname, strict_timestamps=self._strict_timestamps)
        zinfo.compress_type, zinfo._compresslevel = self.compression, self.compresslevel
        data, job = self._early.pop(filename, None) or self._read(filename)
        self._parts.append((zinfo, data, job))
        self._waiting += len(data)
        if self._waiting > _PENDING_BYTES:
            self._store()

    def _read(self, path: str) -> tuple[bytes, Future]:
        """The part's bytes (read now: XlsxWriter removes the file once :meth:`write` returns) and their
        deflating, under way."""
        with open(path, "rb") as f:
            data = f.read()
        return data, self._pool.submit(_deflate, data, self.compresslevel)

    def writestr(self, zinfo_or_arcname: Any, data: Any, compress_type: Any = None,
                 compresslevel: Any = None) -> None:
        self._store()
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def _store(self) -> None:
        parts, self._parts, self._waiting = self._parts, [], 0
        for zinfo, data, job in parts:
            packed = job.result()
            zinfo.file_size = len(data)
            with self.open(zinfo, "w") as dest:
                if getattr(dest, "_compressor", None) is not None:
                    dest._compressor = _Packed(packed)  # else it compresses the part itself
                dest.write(data)

    def close(self) -> None:
        try:
            if self.fp is not None:
                self._store()
        finally:
            self._pool.shutdown(cancel_futures=True)
            self._early.clear()
            super().close()


_CLOSING = threading.Lock()
_ZIP: list[_ParallelZip] = []  # the one being written, while a Book closes


def _zip_ok() -> bool:
    import xlsxwriter.workbook as xw

    return isinstance(getattr(xw, "ZipFile", None), type)


_ZIP_OK = _zip_ok()


def _close_workbook(wb: xlsxwriter.Workbook) -> None:
    """``wb.close()``, its parts deflated in parallel (:class:`_ParallelZip`): XlsxWriter opens the ZipFile its
    module names, which is ours for the duration (one closing at a time, so that it is put back)."""
    import xlsxwriter.workbook as xw

    if not (FAST and _ZIP_OK):
        wb.close()
        return
    with _CLOSING:
        plain = xw.ZipFile

        def opened(*args: Any, **kwargs: Any) -> _ParallelZip:
            _ZIP.append(_ParallelZip(*args, **kwargs))
            return _ZIP[-1]

        xw.ZipFile = opened
        try:
            wb.close()
        finally:
            xw.ZipFile = plain
            _ZIP.clear()


@dataclass
class _SheetInfo:
    ws: Worksheet
    about: str
    widths: dict[int, float] = field(default_factory=dict)
    heights: dict[int, float] = field(default_factory=dict)
    repeat: bool = False
    grid: ChartGrid | None = None
    key_cols: int = 1
    blocks: list[tuple[int, int]] = field(default_factory=list)  # row ranges kept on one page


class ChartGrid:
    """Charts placed two to a row (or one across), each grid row kept on one page by page breaks.

    Only charts live on a chart sheet (plus a title and notes above the grid), so the page breaks it sets are
    the sheet's only ones and the print scale is fixed (``GRID_SCALE``) to what the breaks assume.
    """

    def __init__(self, book: Book, ws: Worksheet, first_row: int):
        self.book, self.ws = book, ws
        self.row = first_row
        info = book._info(ws)
        self.page_px = sum(info.heights.get(r, LINE_PT) for r in range(first_row)) * 96 / 72
        self.capacity = LANDSCAPE_HEIGHT_PX / (GRID_SCALE / 100)
        self.slot = 0
        self.height = 0
        self.breaks: list[int] = []
        info.grid = self

    def _end_row(self) -> None:
        rows = math.ceil((self.height + CHART_GAP) / ROW_PX)
        self.row += rows
        self.page_px += rows * ROW_PX
        self.slot = 0

    def add(self, chart: Any, full_width: bool = False, height: int = CHART_H) -> None:
        span = 2 if full_width else 1
        if self.slot and self.slot + span > 2:
            self._end_row()
        if self.slot == 0:
            if self.page_px + height + CHART_GAP > self.capacity and self.row > 0:
                self.breaks.append(self.row)
                self.page_px = 0
            self.height = height
        chart.set_size({"width": CHART_W * span + CHART_GAP * (span - 1), "height": self.height})
        self.ws.insert_chart(self.row, 0, chart, {"x_offset": 4 + self.slot * (CHART_W + CHART_GAP), "y_offset": 4})
        self.slot += span
        if self.slot >= 2:
            self._end_row()


class Book:
    """An XlsxWriter workbook with the house formats, widths and print set-up.

    ``kind`` (report, compare, sweep, montecarlo, template, example, generated) goes into the document
    properties and the archive seal (:mod:`planner.report.outputs`); ``source`` is the plan's file name, shown
    in every page header.
    """

    def __init__(self, path: Path | str, kind: str, title: str = "", source: str = "",
                 constant_memory: bool = False):
        self.path, self.kind, self.source = Path(path), kind, source
        self.wb = xlsxwriter.Workbook(
            str(path),
            {"strings_to_formulas": False, "strings_to_urls": False, "nan_inf_to_errors": True,
             "constant_memory": constant_memory},
        )
        set_properties(self.wb, kind, title or f"planner {kind}", source)
        self._formats: dict[Any, Any] = {}
        # every cell is top-aligned: a row grown for wrapped text reads from its top line
        self.fmt: dict[str, Any] = {name: self.wb.add_format({"num_format": padded(f), "valign": "top"})
                                    for name, f in NUMBER_FORMATS.items()}
        self.text = self.wb.add_format({"valign": "top"})
        self.header = self.wb.add_format({"bold": True, "bg_color": "#1F3864", "font_color": "#FFFFFF",
                                          "border": 1, "valign": "top", "text_wrap": True})
        self.title = self.wb.add_format({"bold": True, "font_size": 16, "font_color": "#1F3864"})
        self.subtitle = self.wb.add_format({"bold": True, "font_size": 12, "font_color": "#1F3864"})
        self.bold = self.wb.add_format({"bold": True, "valign": "top"})
        self.wrap = self.wb.add_format({"text_wrap": True, "valign": "top"})
        self.notice = self.wb.add_format({"bold": True, "font_color": "#9C0006", "bg_color": "#FFC7CE",
                                          "border": 1, "text_wrap": True, "valign": "top"})
        self.bad = self.wb.add_format({"bg_color": "#FFC7CE", "font_color": "#9C0006"})
        self.link = self.wb.add_format({"font_color": "#0563C1", "underline": 1, "bold": True, "valign": "top"})
        self._sheets: dict[str, _SheetInfo] = {}
        self._index: tuple[Worksheet, int, int] | None = None
        self._reserved: dict[str, Worksheet] = {}
        self._deferred: list[Callable[[], None]] | None = None
        self._deflater: ThreadPoolExecutor | None = None  # deflates sheets' parts ahead of the closing

    # ---- formats -------------------------------------------------------------------------------------------------
    def money(self, currency: str, decimals: int = 0) -> Any:
        """Money format for a currency: "$"#,##0 for USD, #,##0 EUR otherwise (the label as literal text)."""
        digits = "#,##0" + ("." + "0" * decimals if decimals else "")
        return self.number(f'"$"{digits}' if currency.upper() == "USD" else f"{digits} {literal_format(currency)}")

    def number(self, spec: str, **props: Any) -> Any:
        """A cell format for a number format name (``NUMBER_FORMATS``) or an Excel format string."""
        props = {"valign": "top", **props}
        key = (padded(NUMBER_FORMATS.get(spec, spec)), tuple(sorted(props.items())))
        if key not in self._formats:
            self._formats[key] = self.wb.add_format({"num_format": key[0], **props})
        return self._formats[key]

    def _fmt(self, f: Any) -> Any:
        if f is None or not isinstance(f, str):
            return f
        return self.fmt.get(f) or self.number(f)

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

    # ---- sheets --------------------------------------------------------------------------------------------------
    # ---- sheets filled out of order -------------------------------------------------------------------------
    def defer_priced(self) -> None:
        """From now on, :meth:`when_priced` reserves its sheets in place and keeps their writing for
        :meth:`fill_priced` (the report's sheets that need the capacity price checks, which still run)."""
        self._deferred = []

    def when_priced(self, fill: Callable[[], None], sheet: tuple[str, str]) -> None:
        """Write a sheet (``sheet`` = its name and index line; ``fill`` writes it, calling :meth:`sheet` with that
        name) now, or, after :meth:`defer_priced`, add the empty sheet now — its place among the sheets — and
        write it in :meth:`fill_priced`. The cells are the same either way."""
        if self._deferred is None:
            fill()
            return
        ws = self.sheet(*sheet)
        self._reserved[ws.name] = ws
        self._deferred.append(fill)

    def prerender(self) -> None:
        """Serialise now the rows of every sheet that is complete (all but those :meth:`when_priced` reserved),
        with their final heights: work the closing would do, done while the caller would otherwise wait."""
        for info in self._sheets.values():
            ws = info.ws
            if ws.name in self._reserved or not isinstance(ws, _FastSheet):
                continue
            for row, h in info.heights.items():
                ws.set_row(row, h)
            ws.prerender_rows()
            if FAST and _ZIP_OK:  # widths and page set-up are final too: the part's start is deflated meanwhile
                self._print_setup(info)
                if self._deflater is None:
                    self._deflater = ThreadPoolExecutor(1, thread_name_prefix="deflate")
                ws.predeflate(self._deflater)

    def fill_priced(self) -> None:
        """Write the sheets :meth:`when_priced` kept, in the order they were reserved."""
        fills, self._deferred = self._deferred or [], None
        for fill in fills:
            fill()
        if self._reserved:  # a reserved sheet its fill never asked for would stay empty: a bug, said loudly
            raise RuntimeError(f"sheets reserved but not written: {', '.join(self._reserved)}")

    def sheet(self, name: str, about: str = "") -> Worksheet:
        """A new sheet with the page header and footer; ``about`` is its line in the Overview's index."""
        reserved = self._reserved.pop(name[:31], None)
        if reserved is not None:  # reserved in place by when_priced: its writing has come
            self._sheets[reserved.name].about = about
            return reserved
        ws = self.wb.add_worksheet(name[:31], worksheet_class=_FastSheet if FAST and _FAST_OK else None)
        ws.set_paper(PAPER_A4)
        ws.set_margins(left=MARGIN_LR, right=MARGIN_LR, top=MARGIN_TB, bottom=MARGIN_TB)
        plan = _esc(self.source) if self.source else "&F"
        ws.set_header(f"&L&8{plan}&C&8&A&R&8hypothetical data", {"margin": MARGIN_HF})
        ws.set_footer(f"&L&8planner {__version__} · {_esc(KINDS.get(self.kind, self.kind))}&R&8Page &P of &N",
                      {"margin": MARGIN_HF})
        self._sheets[ws.name] = _SheetInfo(ws, about)
        return ws

    def _info(self, ws: Worksheet) -> _SheetInfo:
        return self._sheets[ws.name]

    def width(self, ws: Worksheet, col: int, chars: float) -> None:
        """Make column ``col`` at least ``chars`` wide (tables sharing a sheet widen a column, never narrow it)."""
        w = self._info(ws).widths
        w[col] = max(w.get(col, 0.0), float(chars))

    def row_height(self, ws: Worksheet, row: int, points: float) -> None:
        h = self._info(ws).heights
        h[row] = max(h.get(row, 0.0), points)

    def keep_together(self, ws: Worksheet, first_row: int, last_row: int) -> None:
        """Print rows ``first_row..last_row`` (a titled table, a section) on one page when they fit on one: a
        page break goes before them if the page they start on would cut them."""
        self._info(ws).blocks.append((first_row, last_row))

    def chart_grid(self, ws: Worksheet, first_row: int) -> ChartGrid:
        return ChartGrid(self, ws, first_row)

    def sheet_index(self, ws: Worksheet, row: int, last_col: int = 5) -> None:
        """Reserve rows from ``row`` on ``ws`` (the Overview) for the index of every sheet: its name as a link
        in column A, what it holds across columns B..``last_col``. Written when the book closes, so sheets added
        later are listed too."""
        self._index = (ws, row, last_col)

    # ---- cells ---------------------------------------------------------------------------------------------------
    def write_cell(self, ws: Worksheet, row: int, col: int, value: Any, fmt: Any = None) -> None:
        """Write one value by its Python type; text is always text, NaN/None a blank, a number never without a
        number format."""
        fmt = self._fmt(fmt)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            ws.write_blank(row, col, None, fmt)
        elif isinstance(value, bool | np.bool_):
            ws.write_boolean(row, col, bool(value), fmt if fmt is not None else self.text)
        elif isinstance(value, int | float):
            if isinstance(value, float) and math.isinf(value):
                ws.write_string(row, col, "inf" if value > 0 else "-inf", fmt)
            else:
                ws.write_number(row, col, value, fmt if fmt is not None else self._auto_fmt([value]))
        elif hasattr(value, "item"):  # numpy scalar
            self.write_cell(ws, row, col, value.item(), fmt)
        else:
            ws.write_string(row, col, str(value), fmt if fmt is not None else self.text)

    def _write_column(self, ws: Worksheet, first_row: int, col: int, values: list[Any], fmt: Any, kind: str) -> None:
        """One column of a table: numbers (``kind`` i/u/f, ``fmt`` a cell format) or objects, written as
        :meth:`write_cell` would write each (a str with ``fmt``, or the house text format), only faster."""
        text_fmt = fmt if fmt is not None else self.text
        if (isinstance(ws, _FastSheet) and values and first_row + len(values) <= ws.xls_rowmax
                and col < ws.xls_colmax and not ws.constant_memory):
            table, shared, num = ws.table, ws.str_table._get_shared_string_index, kind != "O"
            rows = range(first_row, first_row + len(values))
            if num and (kind != "f" or np.isfinite(np.asarray(values, dtype=float)).all()):
                # every value finite (a list from numpy holds Python ints or floats): the cells are made and
                # stored by C loops (a namedtuple is the tuple of its fields; the rows' dicts as table[i] makes them)
                cells = map(tuple.__new__, repeat(CellNumberTuple), zip(values, repeat(fmt)))
            elif not num and set(map(type, values)) == {str} and max(map(len, values)) <= _MAX_FAST_TEXT:
                cells = map(tuple.__new__, repeat(CellStringTuple), zip(map(shared, values), repeat(text_fmt)))
            else:
                cells = None
            if cells is not None:
                deque(map(dict.__setitem__, map(table.__getitem__, rows), repeat(col), cells), maxlen=0)
                ws._check_dimensions(first_row, col)
                ws._check_dimensions(first_row + len(values) - 1, col)
                return
            for i, v in enumerate(values, start=first_row):
                t = type(v)
                if num and ((t is float and v - v == 0.0) or t is int):  # finite (NaN and ±inf fail v - v == 0)
                    table[i][col] = CellNumberTuple(v, fmt)
                elif not num and t is str and len(v) <= _MAX_FAST_TEXT:
                    table[i][col] = CellStringTuple(shared(v), text_fmt)
                else:
                    self.write_cell(ws, i, col, v, fmt)
            ws._check_dimensions(first_row, col)  # what each write_* call records: the used range
            ws._check_dimensions(first_row + len(values) - 1, col)
            return
        write_number, write_string = ws.write_number, ws.write_string
        for i, v in enumerate(values, start=first_row):
            t = type(v)
            if kind != "O" and ((t is float and v - v == 0.0) or t is int):  # finite: NaN, ±inf fail v - v == 0
                write_number(i, col, v, fmt)
            elif kind == "O" and t is str:
                write_string(i, col, v, text_fmt)
            else:
                self.write_cell(ws, i, col, v, fmt)

    def _auto_fmt(self, values: Sequence[Any]) -> Any:
        nums = [float(v) for v in values if isinstance(v, int | float | np.number) and not isinstance(v, bool)
                and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))]
        return self.fmt[_auto_format_name(nums)]

    def paragraph(self, ws: Worksheet, row: int, text: str, first_col: int = 0, last_col: int = 0,
                  fmt: Any = None, width: float | None = None) -> int:
        """Wrapped text across columns ``first_col..last_col`` (merged), its row tall enough for every line;
        ``width`` (characters) is the merged width when the columns' widths are not final yet. Returns the
        next free row."""
        fmt = fmt or self.wrap
        if width is None:
            w = self._info(ws).widths
            width = sum(w.get(c, DEFAULT_WIDTH) for c in range(first_col, last_col + 1))
        if last_col > first_col:
            ws.merge_range(row, first_col, row, last_col, text, fmt)
        else:
            ws.write_string(row, first_col, text, fmt)
        self.row_height(ws, row, LINE_PT * wrap_lines(text, width, bold=fmt is self.notice) + 2)
        return row + 1

    # ---- tables --------------------------------------------------------------------------------------------------
    def table(self, ws: Worksheet, df: pd.DataFrame, formats: dict[str, Any] | None = None, first_row: int = 0,
              first_col: int = 0, widths: dict[str, float] | None = None, autofilter: bool = True,
              freeze: bool = True, header_comments: dict[str, str] | None = None,
              wrap: dict[str, float] | None = None, repeat_header: bool | None = None) -> tuple[int, int]:
        """Write a frame as a formatted table; returns (first data row, last data row) 0-based.

        ``formats`` maps a column to a number format name, an Excel format string, a cell format, or a
        sequence of those (one per row: a Summary's values differ by row); a numeric column without one gets
        one from its values. ``wrap`` maps text columns to a fixed width they wrap in; any other text column
        with values longer than ``MAX_TEXT`` wraps at ``MAX_TEXT``. ``repeat_header`` (default: when the table
        starts the sheet) repeats the header row on every printed page.
        """
        formats = dict(formats or {})
        widths = dict(widths or {})
        wrap = dict(wrap or {})
        cols = list(df.columns)
        n = len(df)
        col_fmts: list[Any] = []
        for c in cols:
            f = formats.get(c)
            series = df[c]
            if f is None and n and _is_numeric(series):
                f = self.fmt[_auto_format_name_of(series)]
            if isinstance(f, list | tuple | pd.Series | np.ndarray):
                col_fmts.append([self._fmt(x) for x in list(f)])
            else:
                col_fmts.append(self._fmt(f))
            if c not in wrap and c not in widths and series.dtype == object and n:
                longest = series.head(2000).map(lambda v: len(v) if isinstance(v, str) else 0).max()
                if longest > MAX_TEXT:
                    wrap[c] = MAX_TEXT
        wrap_fmt = self.wrap
        # widths: the header's longest word (headers wrap at spaces) and the content, or what the writer asks
        final: dict[str, float] = {}
        for j, c in enumerate(cols):
            if c in wrap:
                final[c] = wrap[c]
            elif c in widths:
                final[c] = widths[c]
            else:
                final[c] = auto_width(df[c], _fmt_name(formats.get(c)))
            self.width(ws, first_col + j, final[c])
        # header row, tall enough for the longest wrapped header
        lines = 1
        for j, c in enumerate(cols):
            ws.write_string(first_row, first_col + j, str(c), self.header)
            lines = max(lines, wrap_lines(str(c), final[c], bold=True))
            if header_comments and c in header_comments:
                ws.write_comment(first_row, first_col + j, header_comments[c], {"x_scale": 2.2, "y_scale": 1.6})
        if lines > 1:
            self.row_height(ws, first_row, LINE_PT * lines + 2)
        # Column by column (cell order does not matter to XlsxWriter outside constant_memory): a plain numeric
        # or text column with one format goes through _write_column (see FAST), skipping write_cell's per-cell
        # type dispatch; per-row formats and wrapped columns go row by row below. Same cells, same formats:
        # NaN a blank, ±inf the text "inf"/"-inf", anything else through write_cell.
        fast = n and FAST and not self.wb.constant_memory
        slow_cols: list[int] = []
        for j, c in enumerate(cols):
            f = col_fmts[j]
            series = df.iloc[:, j]
            kind = (series.dtype.kind if isinstance(series.dtype, np.dtype)
                    else "O" if pd.api.types.is_string_dtype(series.dtype) else "")
            if not fast or isinstance(f, list) or c in wrap or kind not in ("i", "u", "f", "O") or (kind != "O" and f is None):
                slow_cols.append(j)
                continue
            column = series.to_numpy(dtype=object if kind == "O" else None).tolist()
            self._write_column(ws, first_row + 1, first_col + j, column, f, kind)
        values = df.iloc[:, slow_cols].to_numpy(dtype=object) if n and slow_cols else []
        wrap_idx = [(k, wrap[cols[j]]) for k, j in enumerate(slow_cols) if cols[j] in wrap]
        for i, rec in enumerate(values):
            r = first_row + 1 + i
            for k, v in enumerate(rec):
                j = slow_cols[k]
                f = col_fmts[j][i] if isinstance(col_fmts[j], list) else col_fmts[j]
                if isinstance(v, str) and cols[j] in wrap and (len(v) > wrap[cols[j]] or "\n" in v):
                    f = wrap_fmt
                self.write_cell(ws, r, first_col + j, v, f)
            if wrap_idx:
                need = max(wrap_lines(rec[j], w) if isinstance(rec[j], str) else 1 for j, w in wrap_idx)
                if need > 1:
                    self.row_height(ws, r, LINE_PT * need + 2)
        last = first_row + n
        if autofilter and cols:
            ws.autofilter(first_row, first_col, max(last, first_row), first_col + len(cols) - 1)
        if freeze:
            ws.freeze_panes(first_row + 1, 0)
        info = self._info(ws)
        if repeat_header or (repeat_header is None and first_row == 0 and not info.repeat):
            ws.repeat_rows(first_row)
            info.repeat = True
        elif first_row > 0:  # a table further down a sheet: with its title row, on one page if it fits
            info.blocks.append((first_row - 1, last))
        return first_row + 1, last

    def data_blocks(self, ws: Worksheet, df: pd.DataFrame, first_row: int, title: str, fmt: Any = "int",
                    max_cols: int = 8, keys: int = 1) -> tuple[dict[str, tuple[int, int, int, int]], int]:
        """A matrix (``keys`` leading columns name the rows: categories, sweep parameters) in stacked blocks
        of at most ``max_cols`` value columns each, so it prints one page wide however many series or items it
        has. Returns, for each value column, (header row, first row, last row, column) — what a chart series
        refers to — and the next free row."""
        where: dict[str, tuple[int, int, int, int]] = {}
        key_cols = list(df.columns[:keys])
        value_cols = list(df.columns[keys:])
        chunks = [value_cols[i:i + max_cols] for i in range(0, len(value_cols), max_cols)] or [[]]
        row = first_row
        for k, chunk in enumerate(chunks):
            label = title if len(chunks) == 1 else f"{title} ({k + 1} of {len(chunks)})"
            ws.write_string(row, 0, label, self.subtitle)
            first, last = self.table(ws, df[[*key_cols, *chunk]], first_row=row + 1, autofilter=False,
                                     freeze=False, repeat_header=False, formats={c: fmt for c in chunk})
            for j, c in enumerate(chunk, start=keys):
                where[c] = (first - 1, first, last, j)
            row = last + 3
        return where, row

    # ---- closing -------------------------------------------------------------------------------------------------
    def _write_index(self) -> None:
        if self._index is None:
            return
        ws, row, last_col = self._index
        first = row
        ws.write_string(row, 0, "Sheets in this workbook", self.subtitle)
        for name, info in self._sheets.items():
            if info.ws is ws:
                continue
            row += 1
            ws.write_url(row, 0, f"internal:'{name}'!A1", self.link, string=name, tip=f"go to {name}")
            self.width(ws, 0, len(name) * 1.1 + 2)
            if info.about:
                self.paragraph(ws, row, info.about, 1, last_col)
        self.keep_together(ws, first, row)

    def _print_setup(self, info: _SheetInfo) -> None:
        ws = info.ws
        for col, w in info.widths.items():
            ws.set_column(col, col, w)
        for row, h in info.heights.items():
            ws.set_row(row, h)
        if info.grid is not None:
            ws.set_landscape()
            ws.set_print_scale(GRID_SCALE)
            if info.grid.breaks:
                ws.set_h_pagebreaks(info.grid.breaks)
            return
        last = ws.dim_colmax if ws.dim_colmax is not None else 0
        px = sum(col_px(info.widths.get(c, DEFAULT_WIDTH)) for c in range(last + 1))
        if px <= PORTRAIT_PX:
            ws.set_portrait()
            ws.fit_to_pages(1, 0)
            orientation, scale = "portrait", 1.0
        elif px * MIN_SCALE <= LANDSCAPE_PX:
            ws.set_landscape()
            ws.fit_to_pages(1, 0)
            orientation, scale = "landscape", min(1.0, LANDSCAPE_PX / px)
        else:  # wider than a page at the smallest readable scale: across pages, the key column repeated
            ws.set_landscape()
            ws.set_print_scale(int(MIN_SCALE * 100))
            ws.repeat_columns(0, info.key_cols - 1)
            ws.print_across()
            orientation, scale = "landscape", MIN_SCALE
        breaks = _page_breaks(info, ws.dim_rowmax or 0, PAGE_HEIGHT_PT[orientation] * 0.95 / scale)
        if breaks:
            ws.set_h_pagebreaks(breaks)

    def close(self) -> None:
        """Write the sheet index, apply widths, heights and print set-up, close the workbook and seal it as
        planner's (:func:`planner.report.outputs.stamp`)."""
        self._write_index()
        for info in self._sheets.values():
            self._print_setup(info)
        try:
            _close_workbook(self.wb)
        finally:
            if self._deflater is not None:
                self._deflater.shutdown(cancel_futures=True)
        stamp(self.path, self.kind)

    def release(self) -> None:
        """Free a closed book's cells now. XlsxWriter's sheets and workbook refer to each other, so without this
        the ~700k cells of a large report wait for the cyclic collector, which then walks them all (0.15 s)."""
        for info in self._sheets.values():
            info.ws.table.clear()
            info.grid = None


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a large workbook is written, back as it was after.

    Writing a 416k-column plan's report makes ~700k cell tuples (each holding a format, so tracked by the
    collector) that all live until the workbook closes; the collector, triggered by their allocation, walks the
    ever larger heap again and again — 0.45 s of a 2.3 s write, for nothing: the report's objects are freed by
    reference counting, and the few reference cycles pandas leaves are collected after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def auto_width(series: pd.Series, fmt: str | None = None) -> float:
    """A column's width in characters: its longest shown value and its header's longest word (headers wrap
    at spaces), within 6..MAX_AUTO_WIDTH."""
    head = series.head(2000)
    content = max((len(v) if type(v) is str else len(_display(v, fmt)) for v in _widest_candidates(head)), default=0)
    header = max((len(t) for t in str(series.name).split()), default=0) * 1.1
    pad = 3 if _is_numeric(series) else 2  # a right-aligned number beside left-aligned text needs air
    return min(max(content + pad, header + 2, 6), MAX_AUTO_WIDTH)


def _widest_candidates(head: pd.Series) -> Any:
    """The values among which the widest shown one is: for a plain int or float column, each number format's
    longest text is that of its largest or its most negative value (rounding and digit grouping only grow with
    the magnitude, a minus sign adds one; ±inf shows as text), so a handful of values stand for 2,000 (a 416k-column plan's report sizes
    ~700 such columns); any other column, every value."""
    if head.dtype.kind not in "iuf" or not len(head):
        return head
    v = head.to_numpy(dtype=float)
    infinite = np.unique(v[np.isinf(v)])  # shown as "inf": no longer for being larger
    v = v[np.isfinite(v)]
    small = (np.abs(v) < 1) & (v != np.round(v))  # what _display shows with three decimals when it has no format
    picks = [np.concatenate([part[[part.argmin(), part.argmax()]], part[np.signbit(part)][:1]])  # -0.0 shows "-"
             for part in (v[small], v[~small]) if len(part)] + [infinite]
    return [float(x) for x in np.concatenate(picks)] if picks else []


def column_blocks(df: pd.DataFrame, keys: Sequence[str], budget_px: float,
                  widths: dict[int, float], offset: int = 0) -> list[list[str]]:
    """Split ``df``'s columns into blocks that each print within ``budget_px``, every block starting with the
    ``keys``: a wide table becomes several narrower ones stacked, rather than a page shrunk below reading size.

    ``widths`` (column position → width, shared by every table of the sheet) is read and widened as blocks
    are laid out, so a caller can lay out all of a sheet's tables first and check the sheet's final width.
    """
    keys = [k for k in keys if k in df.columns]
    rest = [c for c in df.columns if c not in keys]
    own = {c: auto_width(df[c]) for c in df.columns}
    blocks: list[list[str]] = []
    cur: list[str] = list(keys)
    for c in rest:
        trial = [*cur, c]
        px = sum(col_px(max(widths.get(j, 0.0), own[name])) for j, name in enumerate(trial, start=offset))
        if px > budget_px and len(cur) > len(keys):
            blocks.append(cur)
            cur = [*keys, c]
        else:
            cur = trial
    blocks.append(cur)
    for block in blocks:
        for j, name in enumerate(block, start=offset):
            widths[j] = max(widths.get(j, 0.0), own[name])
    return blocks


def _page_breaks(info: _SheetInfo, last_row: int, page_pt: float) -> list[int]:
    """Page breaks for a sheet of several tables or sections (``info.blocks``): every page boundary is set
    by hand, so each block that fits on a page starts on a fresh page when the current one would cut it.

    Pagination is simulated from the rows' heights with ``page_pt`` (the printable height in the sheet's
    unscaled points, a little less than the office suite's), and *every* page end becomes a manual break —
    the office suite then never paginates on its own, so the simulation is what prints.
    """
    if not info.blocks:
        return []
    tops = [0.0]
    for r in range(last_row + 1):
        tops.append(tops[-1] + info.heights.get(r, LINE_PT))
    starts = {first: last for first, last in info.blocks}
    breaks: list[int] = []
    start = 0
    r = 0
    while r <= last_row:
        block_end = starts.get(r)
        if block_end is not None and r > start:
            block_end = min(block_end, last_row)
            fits_alone = tops[block_end + 1] - tops[r] <= page_pt
            if fits_alone and tops[block_end + 1] - tops[start] > page_pt:
                breaks.append(r)
                start = r
        if tops[r + 1] - tops[start] > page_pt and r > start:
            breaks.append(r)
            start = r
        r += 1
    return breaks


def _is_numeric(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    vals = series.dropna()
    return len(vals) > 0 and all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in vals)


def _numbers(series: pd.Series) -> list[float]:
    out = []
    for v in series:
        if isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_):
            f = float(v)
            if not (math.isnan(f) or math.isinf(f)):
                out.append(f)
    return out


def _auto_format_name(nums: list[float]) -> str:
    """A format for numbers nobody named one for: whole numbers with separators, fractions to 3 places,
    other values to 2 (or none above 100, where cents are noise)."""
    if not nums:
        return "int"
    if all(float(v).is_integer() for v in nums):
        return "int"
    big = max(abs(v) for v in nums)
    if big <= 1:
        return "ratio"
    return "float" if big < 100 else "int"


def _auto_format_name_of(series: pd.Series) -> str:
    """``_auto_format_name(_numbers(series))``, for a plain int or float column by numpy (a 416k-column plan's
    report has columns of 19,200 numbers without a named format)."""
    if not (isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf"):
        return _auto_format_name(_numbers(series))
    v = series.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if not len(v) or (v == np.floor(v)).all():
        return "int"
    big = float(np.abs(v).max())
    return "ratio" if big <= 1 else "float" if big < 100 else "int"


def _fmt_name(f: Any) -> str | None:
    return f if isinstance(f, str) else None


def literal_format(text: str) -> str:
    """Text as an Excel number-format literal: every character escaped, so none acts as a code (``0 # ; @ "``)."""
    return "".join("\\" + ch for ch in text)


def _display(v: Any, fmt: str | None) -> str:
    """The text a cell shows, for sizing its column."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool | np.bool_):
        return "FALSE"
    if isinstance(v, float | int | np.number):
        v = float(v)
        if fmt in ("pct",):
            return f"{v:.1%}"
        if fmt in ("dpct",):
            return f"{v:+.1%}"
        if fmt in ("ratio",):
            return f"{v:.3f}"
        if fmt in ("float", "money2", "seconds"):
            return f"{v:,.2f}"
        if fmt and "$" in fmt or fmt == "money":
            return f"${v:,.0f}"
        if abs(v) < 1 and not v.is_integer() and fmt is None:
            return f"{v:.3f}"
        return f"{v:,.0f}"
    return str(v)
