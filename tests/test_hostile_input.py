"""Input that silently meant something else (issue 18): each class of attack, one test per class.

Duplicate and hidden contract sheets, decimal commas, periods outside a sane year range, Unicode look-alike ids,
formulas without cached values in headers and ignored columns, Strict OOXML files, control characters and
overlong ids, and text that reaches chart titles, series names and number formats.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from pathlib import Path

import pytest
from builders import frames
from click.testing import CliRunner
from conftest import EXAMPLE, col_of, edit_workbook, find_row

from planner.cli import main
from planner.io.load import load_plan, plan_from_frames
from planner.io.problems import ValidationFailed
from planner.io.text import parse_number
from planner.report.template import write_input_workbook


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def problems(path: Path) -> list:
    with pytest.raises(ValidationFailed) as exc:
        load_plan(path)
    return exc.value.problems


def rename_id(wb, old: str, new: str) -> None:
    """Rename an id everywhere: cells equal to it, and the parts of Scenarios/Uncertainty keys (a|b)."""
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value == old:
                    c.value = new
                elif isinstance(c.value, str) and "|" in c.value and old in c.value.split("|"):
                    c.value = "|".join(new if part == old else part for part in c.value.split("|"))


# ---- duplicate and hidden contract sheets ---------------------------------------------------------------------------
def test_two_sheets_matching_one_contract_name_is_an_error_naming_both(tmp_path):
    def dup(wb):
        wb.copy_worksheet(wb["Demand"]).title = "DEMAND "

    out = run("validate", edit_workbook(EXAMPLE, tmp_path / "dup.xlsx", dup))
    assert out.exit_code == 1
    line = next(x for x in out.output.splitlines() if "duplicate_sheet" in x)
    assert "'Demand'" in line and "'DEMAND '" in line


def test_very_hidden_sheet_placed_before_the_visible_one_is_not_silently_planned(tmp_path):
    """The attack: a very-hidden 'Demand ' with 9M units first in the workbook, the visible 'Demand' after it."""
    def hide(wb):
        ws = wb.copy_worksheet(wb["Demand"])
        ws.title = "Demand "
        for r in range(2, ws.max_row + 1):
            ws.cell(r, col_of(ws, "units")).value = 9_000_000
        ws.sheet_state = "veryHidden"
        wb.move_sheet(ws, offset=wb.sheetnames.index("Demand") - wb.sheetnames.index("Demand "))
        assert wb.sheetnames.index("Demand ") < wb.sheetnames.index("Demand")

    bad = edit_workbook(EXAMPLE, tmp_path / "hid.xlsx", hide)
    dup = [p for p in problems(bad) if p.code == "duplicate_sheet"]
    assert len(dup) == 1 and "'Demand '" in dup[0].message and "very hidden" in dup[0].message
    assert run("solve", bad, "-o", tmp_path / "r.xlsx").exit_code == 1
    assert not (tmp_path / "r.xlsx").exists()


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_hidden_contract_sheet_is_a_warning_naming_it(tmp_path, state):
    def hide(wb):
        wb["Demand"].sheet_state = state

    path = edit_workbook(EXAMPLE, tmp_path / "h.xlsx", hide)
    plan = load_plan(path)
    warn = [p for p in plan.warnings if p.code == "hidden_sheet"]
    assert len(warn) == 1 and warn[0].sheet == "Demand" and warn[0].severity == "warning"
    assert ("very hidden" if state == "veryHidden" else "hidden") in warn[0].message
    out = run("validate", path)
    assert out.exit_code == 0 and "hidden_sheet" in out.output and "Demand" in out.output


# ---- decimal commas ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, decimal_comma_workbook, value, code", [
    ("8,5", False, 8.5, None),            # a comma not followed by three digits is only ever a decimal comma
    ("0,25", False, 0.25, None),
    ("1.234,5", False, 1234.5, None),      # dot grouping, comma decimal
    ("1,234.5", False, 1234.5, None),      # comma grouping, dot decimal
    ("1,000,000", False, 1e6, None),
    ("1,000", False, 1000.0, None),        # grouping: the workbook shows no decimal comma anywhere
    ("1,000", True, None, "ambiguous_number"),  # 1.000 or 1000? refused where decimal commas are in use
    ("1.000.000", False, 1e6, None),
    ("8,5%", False, 0.085, None),
    ("1,2,3", False, None, "not_a_number"),
    ("1.234.5", False, None, "not_a_number"),
    ("12,34,567", False, None, "not_a_number"),  # lakh grouping: not a convention planner guesses at
])
def test_number_text_with_commas(text, decimal_comma_workbook, value, code):
    got, err = parse_number(text, decimal_comma=decimal_comma_workbook)
    assert err == code
    assert got == pytest.approx(value) if value is not None else got is None


def test_decimal_comma_text_is_never_read_as_thousands(tmp_path):
    """"8,5" typed as text in units_per_platform: read as 8.5 with a warning naming the cell (it was read as 85)."""
    def edit(wb):
        ws = wb["BOM"]
        ws.cell(2, col_of(ws, "units_per_platform")).value = "8,5"

    plan = load_plan(edit_workbook(EXAMPLE, tmp_path / "c.xlsx", edit))
    row = plan.bom[plan.bom["_row"] == 2].iloc[0]
    assert row["units_per_platform"] == 8.5
    warn = [p for p in plan.warnings if p.code == "decimal_comma"]
    assert len(warn) == 1 and "BOM!D2" in warn[0].render() and "8.5" in warn[0].message


def test_decimal_comma_in_a_numeric_setting(tmp_path):
    def edit(wb):
        ws = wb["Settings"]
        ws.append(["time_limit_s", "2,5"])

    plan = load_plan(edit_workbook(EXAMPLE, tmp_path / "s.xlsx", edit))
    assert plan.settings.time_limit_s == 2.5
    assert [(p.code, p.sheet) for p in plan.warnings] == [("decimal_comma", "Settings")]


def test_ambiguous_comma_in_a_decimal_comma_workbook_is_refused(tmp_path):
    def edit(wb):
        ws = wb["BOM"]
        ws.cell(2, col_of(ws, "units_per_platform")).value = "8,5"
        ws = wb["Demand"]
        ws.cell(2, col_of(ws, "units")).value = "1,250"  # 1.25 in this workbook's convention, or 1250?

    errs = [p for p in problems(edit_workbook(EXAMPLE, tmp_path / "c.xlsx", edit)) if p.severity == "error"]
    assert [p.code for p in errs] == ["ambiguous_number"]
    assert errs[0].cell == "C2" and "BOM!D2" in errs[0].hint


# ---- periods ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["0999Q1", "0000Q1", "1899Q4", "2200Q1", "9999Q4"])
def test_periods_outside_the_year_range_are_refused(tmp_path, label):
    def edit(wb):
        ws = wb["Programs"]
        ws.cell(2, col_of(ws, "start_period")).value = label

    path = edit_workbook(EXAMPLE, tmp_path / "p.xlsx", edit)
    errs = [p for p in problems(path) if p.severity == "error"]
    assert [(p.code, p.cell) for p in errs] == [("period_out_of_range", "B2")]
    assert "1900" in errs[0].expected and "2199" in errs[0].expected
    out = run("solve", path, "-o", tmp_path / "r.xlsx")
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.output


@pytest.mark.parametrize("first, start", [("1900Q1", "1900Q1"), ("2199Q2", "1900Q1"), ("2150Q1", "2199Q4")])
def test_whatever_validate_accepts_solve_handles(tmp_path, first, start):
    """The edges of the year range, for the horizon and for a program, validate and then solve."""
    f = frames(first=first, quarters=3,
               products=[{"product": "P", "program": "G"}],
               programs=[{"program": "G", "start_period": start, "development_quarters": 1,
                          "qualification_quarters": 0}],
               demand=[{"platform": "X", "period": first, "units": 50}])
    path = write_input_workbook(tmp_path / "e.xlsx", f)
    assert run("validate", path).exit_code == 0
    out = run("solve", path, "-o", tmp_path / "r.xlsx")
    assert out.exit_code == 0, out.output


def test_a_horizon_past_the_year_range_is_refused():
    with pytest.raises(ValidationFailed) as exc:
        plan_from_frames(frames(first="2199Q3", quarters=3, demand=[{"platform": "X", "period": "2199Q3", "units": 5}]))
    errs = [p for p in exc.value.problems if p.severity == "error"]
    assert [(p.code, p.sheet) for p in errs] == [("period_out_of_range", "Settings")]
    assert "2199Q4" in errs[0].message


# ---- Unicode: normalisation and look-alikes ------------------------------------------------------------------------------
def _two_platforms(a: str, b: str) -> dict:
    return frames(platforms=[{"platform": a, "priority": 1, "shortfall_penalty": 0},
                             {"platform": b, "priority": 1, "shortfall_penalty": 0}],
                  bom=[{"platform": a, "option": "o", "product": "P", "units_per_platform": 1},
                       {"platform": b, "option": "o", "product": "P", "units_per_platform": 1}],
                  demand=[{"platform": a, "period": "2026Q1", "units": 5}])


def test_nfc_and_nfd_spellings_are_one_id():
    nfc, nfd = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")
    assert nfc != nfd
    with pytest.raises(ValidationFailed) as exc:
        plan_from_frames(_two_platforms(nfc, nfd))
    errs = [p for p in exc.value.problems if p.severity == "error"]
    assert [(p.code, p.sheet) for p in errs] == [("duplicate_id", "Platforms"), ("duplicate_id", "BOM")]
    assert "appears twice" in errs[0].message
    # a reference in one spelling finds the id defined in the other
    f = frames(platforms=[{"platform": nfc, "priority": 1, "shortfall_penalty": 0}],
               bom=[{"platform": nfd, "option": "o", "product": "P", "units_per_platform": 1}],
               demand=[{"platform": nfd, "period": "2026Q1", "units": 5}])
    plan = plan_from_frames(f)
    assert set(plan.bom["platform"]) == set(plan.platforms["platform"]) == {nfc}


@pytest.mark.parametrize("twin", ["Vera\u00a0Rubin", "Ｖera Rubin", "Vera\u3000Rubin", "V\u0435ra Rubin", "Vera Rub\u0456n"])
def test_look_alike_ids_are_refused(twin):
    with pytest.raises(ValidationFailed) as exc:
        plan_from_frames(_two_platforms("Vera Rubin", twin))
    errs = [p for p in exc.value.problems if p.severity == "error"]
    assert [(p.code, p.sheet) for p in errs] == [("duplicate_id", "Platforms"), ("duplicate_id", "BOM")]
    assert "look-alike" in errs[0].message and "U+" in errs[0].render()  # the differing characters, named


def test_a_reference_that_only_looks_like_an_id_names_the_differing_character():
    """Demand names "Vеra Rubin" with a Cyrillic е (U+0435): "did you mean "Vera Rubin"?" would show two equal
    words; the hint names the character instead."""
    f = frames(platforms=[{"platform": "Vera Rubin", "priority": 1, "shortfall_penalty": 0}],
               bom=[{"platform": "Vera Rubin", "option": "o", "product": "P", "units_per_platform": 1}],
               demand=[{"platform": "V\u0435ra Rubin", "period": "2026Q1", "units": 5}])
    with pytest.raises(ValidationFailed) as exc:
        plan_from_frames(f)
    errs = [p for p in exc.value.problems if p.severity == "error"]
    assert [(p.code, p.sheet, p.row) for p in errs] == [("unknown_platform", "Demand", 2)]
    assert 'looks like "Vera Rubin"' in errs[0].hint and "U+0435 CYRILLIC SMALL LETTER IE" in errs[0].hint


# ---- formulas without cached values ----------------------------------------------------------------------------------
def test_formula_without_value_in_a_header_is_named_at_its_cell(tmp_path):
    def edit(wb):
        wb["Demand"]["C1"] = '="units"'

    errs = [p for p in problems(edit_workbook(EXAMPLE, tmp_path / "f.xlsx", edit)) if p.severity == "error"]
    assert [(p.code, p.sheet, p.cell) for p in errs] == [("formula_without_value", "Demand", "C1")]
    assert "header" in errs[0].message


def test_formula_without_value_in_a_column_not_read_does_not_block(tmp_path):
    def edit(wb):
        ws = wb["Demand"]
        ws["E1"] = "comment"
        ws["E2"] = "=C2*2"
        ws["F3"] = "=C3*2"  # no header at all
        wb["README"]["B40"] = "=1+1"  # a sheet planner does not read

    plan = load_plan(edit_workbook(EXAMPLE, tmp_path / "f.xlsx", edit))
    assert not [p for p in plan.warnings if p.code == "formula_without_value"]


def test_formula_without_value_in_a_read_cell_still_blocks(tmp_path):
    def edit(wb):
        ws = wb["Demand"]
        ws.cell(2, col_of(ws, "units")).value = "=1000*2"

    errs = [p for p in problems(edit_workbook(EXAMPLE, tmp_path / "f.xlsx", edit)) if p.severity == "error"]
    assert [(p.code, p.cell) for p in errs] == [("formula_without_value", "C2")]


def prefixed(src: Path, dst: Path) -> Path:
    """The workbook with every worksheet's elements under a namespace prefix (``<x:c>``, ``<x:f>``), as some
    writers other than Excel save them: the same workbook to any XML reader."""
    main = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.startswith("xl/worksheets/") and item.filename.endswith(".xml"):
                assert main in data
                data = re.sub(rb"<(/?)([A-Za-z]+)([\s>/])", rb"<\1x:\2\3", data.replace(main, main.replace(
                    b"xmlns=", b"xmlns:x=")))
            zout.writestr(item, data)
    return dst


def test_formula_without_value_is_found_under_a_namespace_prefix(tmp_path):
    """The reader parses a sheet a second time (for its formulas) only when a scan of its XML finds a formula
    element; the scan must see ``<x:f>`` as well as ``<f>``, or the blank would silently read as no value."""
    def edit(wb):
        ws = wb["Demand"]
        ws.cell(2, col_of(ws, "units")).value = "=1000*2"

    src = prefixed(edit_workbook(EXAMPLE, tmp_path / "f.xlsx", edit), tmp_path / "prefixed.xlsx")
    with zipfile.ZipFile(src) as z:
        assert any(b"<x:f>" in z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
    errs = [p for p in problems(src) if p.severity == "error"]
    assert [(p.code, p.sheet, p.cell) for p in errs] == [("formula_without_value", "Demand", "C2")]
    ok = prefixed(EXAMPLE, tmp_path / "plain.xlsx")  # and a prefixed workbook without formulas reads as the original
    a, b = load_plan(EXAMPLE), load_plan(ok)
    for sheet in ("Products", "Fabs", "Platforms", "BOM", "Demand"):
        assert a.frame(sheet).equals(b.frame(sheet)), sheet


def test_formula_tag_cut_between_two_pieces_of_the_scan_is_found(tmp_path, monkeypatch):
    """The scan reads a sheet in pieces; a formula element whose tag straddles two pieces is still found, whatever
    the piece size (here: every size from 1 to 40 bytes, so the cut falls at every place in the tag)."""
    from planner.io import reader

    def edit(wb):
        ws = wb["Demand"]
        ws.cell(2, col_of(ws, "units")).value = "=1000*2"

    src = edit_workbook(EXAMPLE, tmp_path / "f.xlsx", edit)
    for size in range(1, 41):
        monkeypatch.setattr(reader, "SCAN_BYTES", size)
        errs = [p for p in problems(src) if p.severity == "error"]
        assert [(p.code, p.cell) for p in errs] == [("formula_without_value", "C2")], size


def test_a_workbook_without_formulas_is_parsed_once(monkeypatch):
    """Reading the formulas costs a second parse of every sheet (0.25 s on a 416k-column plan): a workbook with no
    formula element anywhere is opened once, with its cached values."""
    import openpyxl

    calls = []
    real = openpyxl.load_workbook
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: calls.append(k) or real(*a, **k))
    load_plan(EXAMPLE)
    assert calls == [{"read_only": True, "data_only": True}]


# ---- Strict OOXML ----------------------------------------------------------------------------------------------------
TO_STRICT = [  # ISO/IEC 29500 Strict namespaces for the Transitional ones in the example
    ("http://schemas.openxmlformats.org/spreadsheetml/2006/main", "http://purl.oclc.org/ooxml/spreadsheetml/main"),
    ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties",
     "http://purl.oclc.org/ooxml/officeDocument/relationships/extendedProperties"),
    ("http://schemas.openxmlformats.org/officeDocument/2006/relationships",
     "http://purl.oclc.org/ooxml/officeDocument/relationships"),
    ("http://schemas.openxmlformats.org/officeDocument/2006/extended-properties",
     "http://purl.oclc.org/ooxml/officeDocument/extendedProperties"),
    ("http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes",
     "http://purl.oclc.org/ooxml/officeDocument/docPropsVTypes"),
    ("http://schemas.openxmlformats.org/drawingml/2006/main", "http://purl.oclc.org/ooxml/drawingml/main"),
]


def to_strict(src: Path, dst: Path) -> Path:
    """Save a Transitional workbook as Strict OOXML, as Excel's "Strict Open XML Spreadsheet" does."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith((".xml", ".rels")):
                text = data.decode("utf-8")
                for old, new in TO_STRICT:
                    text = text.replace(old, new)
                if item.filename == "xl/workbook.xml":
                    text = re.sub(r"<workbook ", '<workbook conformance="strict" ', text, count=1)
                data = text.encode("utf-8")
            zout.writestr(item, data)
    return dst


def test_strict_ooxml_is_read_like_transitional(tmp_path):
    strict = to_strict(EXAMPLE, tmp_path / "strict.xlsx")
    with zipfile.ZipFile(strict) as z:
        assert b"purl.oclc.org/ooxml/spreadsheetml/main" in z.read("xl/workbook.xml")
    a, b = load_plan(EXAMPLE), load_plan(strict)
    for sheet in ("Products", "Fabs", "Platforms", "BOM", "Demand", "Scenarios"):
        assert a.frame(sheet).equals(b.frame(sheet)), sheet
    assert a.settings == b.settings


def test_strict_ooxml_that_cannot_be_read_is_refused_as_such(tmp_path):
    strict = to_strict(EXAMPLE, tmp_path / "strict.xlsx")
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(strict) as zin, zipfile.ZipFile(broken, "w") as zout:
        for item in zin.infolist():
            if item.filename != "xl/_rels/workbook.xml.rels":
                zout.writestr(item, zin.read(item.filename))
    out = run("validate", broken)
    assert out.exit_code == 1
    lines = [x for x in out.output.splitlines() if x.startswith("error")]
    assert len(lines) == 1 and "Strict Open XML" in lines[0] and "missing_sheet" not in out.output


# ---- control characters and length ---------------------------------------------------------------------------------
@pytest.mark.parametrize("evil", ["Vera Rubin\nerror: forged line", "Vera Rubin\x9b2J", "Vera\rRubin", "Vera\x7fRubin",
                                  "Vera Rubin\u202e", "Vera\u200bRubin", "Vera Rubin\u2028x"])
def test_control_and_invisible_characters_in_ids_are_refused_and_escaped(tmp_path, evil):
    path = edit_workbook(EXAMPLE, tmp_path / "c.xlsx", lambda wb: rename_id(wb, "Vera Rubin", evil))
    out = run("validate", path)
    assert out.exit_code == 1
    errs = [p for p in problems(path) if p.severity == "error"]
    assert errs and {p.code for p in errs} == {"control_character"}
    assert {p.sheet for p in errs} >= {"Platforms", "BOM", "Demand"}
    for line in out.output.splitlines():
        assert line.startswith(("error: ", "warning: ")) or re.match(r"\d+ error", line), line
        assert all(ch.isprintable() for ch in line), repr(line)


def test_sheet_names_with_control_characters_are_printed_escaped(tmp_path):
    def edit(wb):
        wb["Fabs"].title = "Fabs\x9b2J"

    out = run("validate", edit_workbook(EXAMPLE, tmp_path / "s.xlsx", edit))
    assert out.exit_code == 1 and "\x9b" not in out.output and "\\x9b" in out.output


def test_overlong_ids_are_refused_with_the_limit(tmp_path):
    with pytest.raises(ValidationFailed) as exc:
        plan_from_frames(_two_platforms("V" * 100_000, "W"))
    errs = [p for p in exc.value.problems if p.severity == "error"]
    assert errs and {p.code for p in errs} == {"id_too_long"} and {p.sheet for p in errs} >= {"Platforms", "BOM"}
    assert all("255" in p.expected and p.found.startswith("100,000 characters") for p in errs)
    path = edit_workbook(EXAMPLE, tmp_path / "l.xlsx", lambda wb: rename_id(wb, "Vera Rubin", "V" * 5_000))
    errs = [p for p in problems(path) if p.severity == "error"]
    assert {p.code for p in errs} == {"id_too_long"} and {p.sheet for p in errs} >= {"Platforms", "BOM", "Demand"}
    out = run("validate", path)
    assert max(len(x) for x in out.output.splitlines()) < 400  # the id is not echoed in full


# ---- text that reaches charts and number formats ---------------------------------------------------------------------
def chart_refs(xlsx: Path) -> tuple[list[str], str]:
    """Every <c:f> formula in the workbook's charts, and all chart XML."""
    with zipfile.ZipFile(xlsx) as z:
        xml = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/charts/chart"))
    return re.findall(r"<c:f>(.*?)</c:f>", xml), xml


EVIL_PLATFORM = "+1+cmd' /C calc'!A0"
EVIL_FAB = "Evil!A1"


@pytest.fixture(scope="module")
def evil_example(tmp_path_factory) -> Path:
    def edit(wb):
        rename_id(wb, "Vera Rubin", EVIL_PLATFORM)
        rename_id(wb, "FAB-A", EVIL_FAB)
        ws = wb["Settings"]
        ws.cell(find_row(ws, "key", "currency"), col_of(ws, "value")).value = 'E"UR;@'

    return edit_workbook(EXAMPLE, tmp_path_factory.mktemp("evil") / "evil.xlsx", edit)


def test_ids_in_chart_titles_are_literals(evil_example, tmp_path):
    out = tmp_path / "r.xlsx"
    res = run("solve", evil_example, "-o", out, "--no-insights")
    assert res.exit_code == 0, res.output
    refs, xml = chart_refs(out)
    assert refs and all(re.fullmatch(r"(ChartData|Histogram)!\$[A-Z]+\$\d+(:\$[A-Z]+\$\d+)?", f) for f in refs), refs
    assert "Wafer starts at Evil!A1 by product" in xml
    assert "calc&apos;!A0" in xml or "calc'!A0" in xml


def test_currency_label_is_a_literal_in_number_formats(evil_example, tmp_path):
    out = tmp_path / "r.xlsx"
    assert run("solve", evil_example, "-o", out, "--no-insights", "--no-explain").exit_code == 0
    with zipfile.ZipFile(out) as z:
        styles = z.read("xl/styles.xml").decode()
    fmts = re.findall(r'formatCode="([^"]*)"', styles)
    money = [f for f in fmts if "U" in f and "R" in f]
    assert money, fmts
    for f in money:  # every character of the label is escaped, so none can act as a format code
        assert re.search(r"\\E\\&quot;\\U\\R\\;\\@", f), f


@pytest.mark.parametrize("command", ["compare", "sweep", "montecarlo"])
def test_ids_in_batch_workbook_charts_are_literals(evil_example, tmp_path, command):
    out = tmp_path / f"{command}.xlsx"
    extra = {"compare": ["--all-scenarios"],
             "sweep": ["--param", f"Fabs[{EVIL_FAB}|1c].wafers_per_quarter", "--values", "0.9,1", "--op", "scale"],
             "montecarlo": ["--samples", "3"]}[command]
    res = run(command, evil_example, *extra, "--workers", "1", "--quiet", "-o", out)
    assert res.exit_code == 0, res.output
    refs, xml = chart_refs(out)
    assert refs and all(re.fullmatch(r"(ChartData|Histogram)!\$[A-Z]+\$\d+(:\$[A-Z]+\$\d+)?", f) for f in refs), refs
    if command == "sweep":
        assert f"<a:t>Fabs[{EVIL_FAB}|1c].wafers_per_quarter</a:t>" in xml  # the axis name, as text
