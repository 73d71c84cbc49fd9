"""Append a scenario to a workbook's Scenarios sheet without touching anything else in the file.

Loading a workbook with openpyxl and saving it back rewrites every part: fonts, column widths, comments,
data validations, conditional formats and charts it does not model are lost or changed. An analyst's input
workbook deserves better, so this module edits the one XML part that holds the Scenarios sheet — new ``<row>``
elements spliced in after the last row that has a value, each cell an inline string or a number, styled like
the cell above it — and copies every other part of the zip unchanged (same bytes after decompression). When
the workbook has no Scenarios sheet, one is added (a new worksheet part, its relationship and content type, a
``<sheet>`` entry in ``workbook.xml``); the existing parts again stay as they were.

The result is written to a temporary file beside the target, read back and validated as a plan (the new
scenario must apply, as ``planner validate`` would check it), and only then moved over the target
(:func:`planner.report.atomic.atomic_write`): a failure leaves the target as it was.
"""

from __future__ import annotations

import io
import posixpath
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree as DET

from planner.report.atomic import atomic_write

SHEET = "Scenarios"
COLUMNS = ("scenario", "sheet", "key", "column", "op", "value")
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
WORKSHEET_TYPE = NS_REL + "/worksheet"
WORKSHEET_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"

_ROW_RE = re.compile(r"<(?:\w+:)?row\b[^>]*?(?:/>|>.*?</(?:\w+:)?row>)", re.S)
_HAS_VALUE = re.compile(r"<(?:\w+:)?(?:v|is)\b[^>]*>(?!\s*</)", re.S)
_R_ATTR = re.compile(r'\sr="(\d+)"')
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 cannot hold


class SheetEditError(Exception):
    """The scenario cannot be saved (duplicate name, unreadable workbook, result not valid); says why."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _col_letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def _col_index(ref: str) -> int:
    letters = re.match(r"[A-Z]+", ref).group(0)
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _sheet_part(zf: zipfile.ZipFile, name: str) -> str | None:
    """The zip path of the worksheet called ``name`` (case-insensitive, as the planner reads sheets)."""
    wb = DET.fromstring(zf.read("xl/workbook.xml"))
    rid = None
    for el in wb.iter():
        if _local(el.tag) == "sheet" and str(el.get("name", "")).strip().casefold() == name.casefold():
            rid = el.get(f"{{{NS_REL}}}id")
            break
    if rid is None:
        return None
    rels = DET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    for rel in rels:
        if rel.get("Id") == rid:
            return _resolve("xl/workbook.xml", rel.get("Target", ""))
    raise SheetEditError(f"the workbook names a sheet {name!r} but has no part for it (damaged file?)")


def _resolve(base_part: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_part), target))


def _shared_strings(zf: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in zf.namelist():
        return []
    root = DET.fromstring(zf.read("xl/sharedStrings.xml"))
    out = []
    for si in root:
        if _local(si.tag) != "si":
            continue
        # rich text runs: the visible text is every <t> outside phonetic runs (<rPh>)
        texts = []
        for el in si.iter():
            if _local(el.tag) == "rPh":
                continue
            if _local(el.tag) == "t":
                texts.append(el.text or "")
        out.append("".join(texts))
    return out


def _cell_text(c, shared: list[str]) -> Any:
    t = c.get("t")
    if t == "inlineStr":
        return "".join(el.text or "" for el in c.iter() if _local(el.tag) == "t")
    v = next((el.text for el in c if _local(el.tag) == "v"), None)
    if v is None:
        return None
    if t == "s":
        try:
            return shared[int(v)]
        except (ValueError, IndexError):
            return None
    return v


def _read_sheet(xml: bytes, shared: list[str]) -> tuple[dict[str, int], list[str], dict[int, str | None], int]:
    """Header (contract column → index), scenario names, style of each column in the last valued row, and the
    last row that holds a value."""
    root = DET.fromstring(xml)
    header: dict[str, int] = {}
    names: list[str] = []
    styles: dict[int, str | None] = {}
    last = 0
    r_prev = 0
    for row in root.iter():
        if _local(row.tag) != "row":
            continue
        r = int(row.get("r") or r_prev + 1)
        r_prev = r
        cells = {}
        c_prev = -1
        for c in row:
            if _local(c.tag) != "c":
                continue
            ref = c.get("r")
            i = _col_index(ref) if ref else c_prev + 1
            c_prev = i
            cells[i] = (_cell_text(c, shared), c.get("s"))
        if not any(v not in (None, "") for v, _ in cells.values()):
            continue
        last = max(last, r)
        if r == 1:
            for i, (v, _) in cells.items():
                if v is not None and str(v).strip().casefold() in COLUMNS:
                    header.setdefault(str(v).strip().casefold(), i)
        else:
            styles = {i: s for i, (_, s) in cells.items()}
            if "scenario" in header and header["scenario"] in cells:
                names.append(str(cells[header["scenario"]][0]))
    return header, names, styles, last


def _cell_xml(prefix: str, ref: str, value: Any, style: str | None) -> str:
    s = f' s="{style}"' if style is not None else ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, int | float):
        return f'<{prefix}c r="{ref}"{s}><{prefix}v>{value!r}</{prefix}v></{prefix}c>'
    text = escape(str(value))
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return (f'<{prefix}c r="{ref}"{s} t="inlineStr"><{prefix}is><{prefix}t{space}>{text}</{prefix}t>'
            f"</{prefix}is></{prefix}c>")


def _rows_xml(prefix: str, rows: list[dict], header: dict[str, int], first_row: int,
              styles: dict[int, str | None]) -> str:
    out = []
    for n, rec in enumerate(rows):
        r = first_row + n
        cells = "".join(_cell_xml(prefix, f"{_col_letter(header[k])}{r}", rec[k], styles.get(header[k]))
                        for k in sorted(COLUMNS, key=lambda k: header[k]) if rec.get(k) is not None)
        out.append(f'<{prefix}row r="{r}">{cells}</{prefix}row>')
    return "".join(out)


def _append_rows(xml: bytes, rows: list[dict], shared: list[str]) -> tuple[bytes, int, int]:
    """The sheet XML with ``rows`` after its last valued row; returns (xml, old last row, new last row)."""
    header, names, styles, last = _read_sheet(xml, shared)
    text = xml.decode("utf-8")
    m = re.search(r"<(\w+:)?sheetData\b[^>]*?(/?)>", text)
    if m is None:
        raise SheetEditError(f"the {SHEET} sheet has no cell data part (damaged file?)")
    prefix = m.group(1) or ""
    existing = {n.strip().casefold() for n in names}
    if rows and rows[0]["scenario"].strip().casefold() in existing:
        raise SheetEditError(f"a scenario named {rows[0]['scenario']!r} is already on the {SHEET} sheet: "
                             "choose another name")
    new_header = ""
    if not header:
        if last > 0:
            raise SheetEditError(f"the {SHEET} sheet has no header row with the columns "
                                 + ", ".join(COLUMNS) + " in row 1")
        header = {k: i for i, k in enumerate(COLUMNS)}
        new_header = _rows_xml(prefix, [{k: k for k in COLUMNS}], header, 1, {})
        last = 1
    missing = [k for k in COLUMNS if k not in header]
    if missing:
        raise SheetEditError(f"the {SHEET} sheet's header lacks column(s) {', '.join(missing)}")
    first_new = last + 1
    new_last = last + len(rows)
    new_rows = new_header + _rows_xml(prefix, rows, header, first_new, styles)
    if m.group(2) == "/":  # <sheetData/>: no rows at all
        text = text[:m.start()] + f"<{prefix}sheetData>{new_rows}</{prefix}sheetData>" + text[m.end():]
    else:
        end = text.index(f"</{prefix}sheetData>", m.end())
        body = text[m.end():end]
        kept, insert_at, r_prev = [], None, 0
        pos = 0
        for rm in _ROW_RE.finditer(body):
            ra = _R_ATTR.search(rm.group(0)[: rm.group(0).index(">")])
            r = int(ra.group(1)) if ra else r_prev + 1
            r_prev = r
            if r > last and insert_at is None:
                insert_at = len("".join(kept)) + len(body[pos:rm.start()])
            kept.append(body[pos:rm.start()])
            # an empty, styled row where a new one goes is replaced (it holds no value: nothing is lost)
            if not (first_new <= r <= new_last and not _HAS_VALUE.search(rm.group(0))):
                kept.append(rm.group(0))
            pos = rm.end()
        kept.append(body[pos:])
        body = "".join(kept)
        if insert_at is None:
            insert_at = len(body.rstrip()) if body.strip() else len(body)
        body = body[:insert_at] + new_rows + body[insert_at:]
        text = text[:m.end()] + body + text[end:]
    width = max(header.values()) + 1
    text = re.sub(r'(<(?:\w+:)?dimension\b[^>]*\bref=")([^"]*)(")',
                  lambda d: d.group(1) + _grow_ref(d.group(2), new_last, width) + d.group(3), text, count=1)
    return text.encode("utf-8"), last, new_last


def _grow_ref(ref: str, last_row: int, width: int) -> str:
    m = re.fullmatch(r"\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?", ref.strip())
    if not m:
        return f"A1:{_col_letter(width - 1)}{last_row}"
    c1, r1, c2, r2 = m.group(1), int(m.group(2)), m.group(3) or m.group(1), int(m.group(4) or m.group(2))
    c2 = c2 if _col_index(c2 + "1") >= width - 1 else _col_letter(width - 1)
    return f"{c1}{r1}:{c2}{max(r2, last_row)}"


def _grow_tables(zf: zipfile.ZipFile, sheet_part: str, old_last: int, new_last: int) -> dict[str, bytes]:
    """Excel tables (ListObjects) on the sheet that end at the old last row grow to hold the new rows."""
    rels_part = posixpath.join(posixpath.dirname(sheet_part), "_rels", posixpath.basename(sheet_part) + ".rels")
    if rels_part not in zf.namelist():
        return {}
    out = {}
    for rel in DET.fromstring(zf.read(rels_part)):
        if not str(rel.get("Type", "")).endswith("/table"):
            continue
        part = _resolve(sheet_part, rel.get("Target", ""))
        if part not in zf.namelist():
            continue
        xml = zf.read(part).decode("utf-8")
        m = re.search(r'<(?:\w+:)?table\b[^>]*?\bref="([A-Z]+)(\d+):([A-Z]+)(\d+)"', xml)
        if not m or int(m.group(4)) != old_last:
            continue
        old = f"{m.group(1)}{m.group(2)}:{m.group(3)}{m.group(4)}"
        new = f"{m.group(1)}{m.group(2)}:{m.group(3)}{new_last}"
        out[part] = xml.replace(f'ref="{old}"', f'ref="{new}"').encode("utf-8")
    return out


def _add_sheet(zf: zipfile.ZipFile, rows: list[dict]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Parts to replace and parts to add for a new Scenarios sheet (the workbook had none)."""
    names = set(zf.namelist())
    n = 1
    while f"xl/worksheets/sheet{n}.xml" in names:
        n += 1
    part = f"xl/worksheets/sheet{n}.xml"
    header = {k: i for i, k in enumerate(COLUMNS)}
    body = _rows_xml("", [{k: k for k in COLUMNS}], header, 1, {}) + _rows_xml("", rows, header, 2, {})
    sheet = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{NS_MAIN}">'
             f'<dimension ref="A1:{_col_letter(len(COLUMNS) - 1)}{len(rows) + 1}"/><sheetData>{body}</sheetData>'
             "</worksheet>").encode()
    rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8")
    ids = {int(i) for i in re.findall(r'Id="rId(\d+)"', rels)}
    rid = f"rId{max(ids, default=0) + 1}"
    while f'Id="{rid}"' in rels:
        rid += "x"
    rels = re.sub(r"(</(?:\w+:)?Relationships>)",
                  lambda m: f'<Relationship Id="{rid}" Type="{WORKSHEET_TYPE}" Target="worksheets/sheet{n}.xml"/>'
                  + m.group(1), rels, count=1)
    wb = zf.read("xl/workbook.xml").decode("utf-8")
    ids = [int(i) for i in re.findall(r'<(?:\w+:)?sheet\b[^>]*\bsheetId="(\d+)"', wb)]
    pm = re.search(r'xmlns:(\w+)="' + re.escape(NS_REL) + '"', wb)
    ns = "" if pm else f' xmlns:r="{NS_REL}"'
    rp = pm.group(1) if pm else "r"
    sp = re.search(r"<(\w+:)?sheets\b", wb)
    if sp is None:
        raise SheetEditError("the workbook lists no sheets (damaged file?)")
    prefix = sp.group(1) or ""
    entry = f'<{prefix}sheet name="{SHEET}" sheetId="{max(ids, default=0) + 1}" {rp}:id="{rid}"{ns}/>'
    wb = wb.replace(f"</{prefix}sheets>", entry + f"</{prefix}sheets>", 1)
    ct = zf.read("[Content_Types].xml").decode("utf-8")
    ct = re.sub(r"(</(?:\w+:)?Types>)", lambda m: f'<Override PartName="/{part}" ContentType="{WORKSHEET_CT}"/>'
                + m.group(1), ct, count=1)
    return ({"xl/_rels/workbook.xml.rels": rels.encode("utf-8"), "xl/workbook.xml": wb.encode("utf-8"),
             "[Content_Types].xml": ct.encode("utf-8")}, {part: sheet})


def append_scenario(source: Path, target: Path, rows: list[dict[str, Any]], inputs: tuple[Path, ...] = ()) -> Path:
    """Write ``source`` with ``rows`` (dicts of the Scenarios columns, one scenario) appended to ``target``.

    ``target`` may be ``source`` itself (the caller has the user's confirmation); ``inputs`` are paths never to
    be overwritten. Raises :class:`SheetEditError` (nothing written) when the result would not be valid.
    """
    from planner.io.load import load_plan
    from planner.io.problems import ValidationFailed
    from planner.io.reader import ReadError
    from planner.io.scenarios import edits_from_sheet

    if not rows or len({r["scenario"] for r in rows}) != 1:
        raise SheetEditError("append_scenario takes the rows of exactly one scenario")
    name = rows[0]["scenario"]
    for r in rows:
        for k, v in r.items():
            if isinstance(v, str) and _NOT_XML.search(v):
                raise SheetEditError(f"the {k} {v!r} contains a control character, which a workbook cannot hold")
    source = Path(source)
    try:
        zf = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SheetEditError(f"cannot read {source}: {exc}") from exc
    with zf:
        try:
            part = _sheet_part(zf, SHEET)
            if part is not None:
                new_xml, old_last, new_last = _append_rows(zf.read(part), rows, _shared_strings(zf))
                replace = {part: new_xml, **_grow_tables(zf, part, old_last, new_last)}
                add: dict[str, bytes] = {}
            else:
                replace, add = _add_sheet(zf, rows)
        except (KeyError, DET.ParseError, ValueError) as exc:  # missing parts, bad XML: not a normal workbook
            raise SheetEditError(f"cannot edit the {SHEET} sheet of {source.name}: {type(exc).__name__}: {exc}") from exc

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            for info in zf.infolist():
                out.writestr(info, replace.get(info.filename, None) or zf.read(info.filename))
            for p, data in add.items():
                out.writestr(zipfile.ZipInfo(p, date_time=(2024, 1, 1, 0, 0, 0)), data,
                             compress_type=zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    with tempfile.TemporaryDirectory(prefix="planner-scenario-") as d:
        check = Path(d) / source.name
        check.write_bytes(data)
        try:  # read back as the planner will: the new scenario must be there and apply
            got = edits_from_sheet(load_plan(check), name)
        except (ValidationFailed, ReadError) as exc:
            problems = exc.problems if isinstance(exc, ValidationFailed) else [exc.problem]
            raise SheetEditError("the workbook with this scenario would not be valid: " + "; ".join(
                p.render() for p in problems if p.severity == "error")) from exc
    if len(got) != len(rows):
        raise SheetEditError(f"wrote {len(rows)} rows but read back {len(got)} for scenario {name!r}")
    return atomic_write(Path(target), lambda tmp: tmp.write_bytes(data), inputs)
