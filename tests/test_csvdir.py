"""Plans as folders of CSV files, as an ERP exports them (issue 19): the same plan as the workbook, the same quality of
error (file and line in place of sheet and cell), every plan-reading command, and ``planner convert``."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, edit_workbook, find_row

from planner.cli import main
from planner.io.load import load_plan
from planner.io.problems import Code, ValidationFailed
from planner.io.reader import ReadError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The example as a CSV folder, written by planner convert."""
    out = tmp_path / "erp"
    res = CliRunner().invoke(main, ["convert", str(EXAMPLE), str(out)])
    assert res.exit_code == 0, res.output
    return out


def objective(path: Path, tmp_path: Path, name: str) -> float:
    out = tmp_path / f"{name}.xlsx"
    res = CliRunner().invoke(main, ["solve", str(path), "-o", str(out), "--json", "--no-explain", "--no-insights"])
    assert res.exit_code == 0, res.output
    import json

    return json.loads(res.output.strip().splitlines()[-1])["objective"]


def test_folder_solves_to_the_workbooks_objective(folder, tmp_path):
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["Settings.csv", "Programs.csv", "Products.csv", "YieldRamp.csv", "Fabs.csv", "FabCapacity.csv",
         "Expansions.csv", "WIP.csv", "Backend.csv", "BackendCapacity.csv", "Platforms.csv", "BOM.csv", "Demand.csv",
         "Scenarios.csv", "Uncertainty.csv"])
    assert objective(folder, tmp_path, "csv") == pytest.approx(objective(EXAMPLE, tmp_path, "xlsx"), rel=1e-9)


def _rewrite_semicolon(path: Path, bom: bool, sep_line: bool = False) -> None:
    """Rewrite a CSV as a European-locale export: ';' separators, decimal commas, optionally a BOM and sep= line."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    if sep_line:
        out.write("sep=;\r\n")
    for r in rows:
        w.writerow([v.replace(".", ",") if re.fullmatch(r"-?\d+\.\d+", v) else v for v in r])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8"))


def test_semicolons_decimal_commas_and_bom_read_the_same(folder, tmp_path):
    """Every file rewritten with ';', decimal commas (0,82), CRLF line ends and a UTF-8 BOM (one with Excel's sep=;
    line): the same plan, the same objective."""
    base = objective(folder, tmp_path, "plain")
    for i, p in enumerate(sorted(folder.glob("*.csv"))):
        _rewrite_semicolon(p, bom=True, sep_line=(i == 0))
    assert "0,82" in (folder / "Products.csv").read_text(encoding="utf-8-sig")
    plan = load_plan(folder)
    prods = plan.products.set_index("product")
    assert prods.loc["HBM3E-12H-36GB", "die_yield"] == pytest.approx(0.82)
    assert objective(folder, tmp_path, "semi") == pytest.approx(base, rel=1e-9)


def errors(folder: Path) -> list:
    with pytest.raises((ValidationFailed, ReadError)) as exc:
        load_plan(folder)
    e = exc.value
    return [p for p in (e.problems if isinstance(e, ValidationFailed) else [e.problem]) if p.severity == "error"]


def test_bad_cell_gets_the_same_error_as_in_the_workbook(folder, tmp_path):
    """'lots' as a capacity: the workbook says Fabs!C3, the folder Fabs.csv line 3 — same code, column, expected,
    found."""
    def bad(wb):
        ws = wb["Fabs"]
        ws.cell(find_row(ws, "fab", "FAB-A") + 1, 3).value = "lots"

    (xl,) = [p for p in errors_xlsx(tmp_path, bad)]
    text = (folder / "Fabs.csv").read_text().splitlines()
    text[2] = re.sub(r"^([^,]*,[^,]*,)[^,]*", r"\1lots", text[2])
    (folder / "Fabs.csv").write_text("\n".join(text) + "\n")
    (cs,) = errors(folder)
    assert (cs.code, cs.column, cs.expected, cs.found, cs.row) == (xl.code, xl.column, xl.expected, xl.found, xl.row)
    assert xl.where == "Fabs!C3" and cs.where == "Fabs.csv line 3"
    assert cs.render().startswith("error: Fabs.csv line 3, column 'wafers_per_quarter': not a number")


def errors_xlsx(tmp_path: Path, edit) -> list:
    bad = edit_workbook(EXAMPLE, tmp_path / "bad.xlsx", edit)
    with pytest.raises(ValidationFailed) as exc:
        load_plan(bad)
    return [p for p in exc.value.problems if p.severity == "error"]


def test_unknown_reference_names_file_and_line_with_a_hint(folder):
    bom = folder / "BOM.csv"
    bom.write_text(bom.read_text().replace("LPDDR5X-16GB,8,68", "LPDDR5X-16G,8,68"))
    (p,) = errors(folder)
    assert p.code == Code.UNKNOWN_PRODUCT and p.file == "BOM.csv" and p.row == 8
    assert 'did you mean "LPDDR5X-16GB"' in p.hint


@pytest.mark.parametrize("damage, code, where, words", [
    ("tab", Code.BAD_DELIMITER, "Fabs.csv line 1", ["separated by tab", "',' or ';'"]),
    ("utf16", Code.BAD_ENCODING, "Fabs.csv line 1", ["UTF-16", "UTF-8"]),
    ("cp1252", Code.BAD_ENCODING, "Fabs.csv line 3", ["0xC9", "Windows-1252", "FAB-É"]),
    ("missing", Code.MISSING_SHEET, "Fabs.csv", ["required file 'Fabs.csv' is missing"]),
    ("ragged", Code.RAGGED_ROW, "Fabs.csv line 3", ["5 fields", "4 fields", "quote"]),
    ("renamed", Code.UNKNOWN_SHEET, "Fabz.csv", ['did you mean "Fabs.csv"']),
    ("empty", Code.EMPTY_SHEET, "Fabs.csv", ["file is empty"]),
    ("unclosed quote", Code.CORRUPT_FILE, "Fabs.csv line 3", ["never closed"]),
])
def test_bad_csv_files_get_clear_errors(folder, damage, code, where, words):
    """Each damage a hand-edited or mis-exported file can have, reported with file, line, expected and found — and
    through the CLI with exit 1 and no traceback."""
    fabs = folder / "Fabs.csv"
    text = fabs.read_text(encoding="utf-8")
    lines = text.splitlines()
    if damage == "tab":
        fabs.write_text(text.replace(",", "\t"))
    elif damage == "utf16":
        fabs.write_bytes(text.encode("utf-16"))
    elif damage == "cp1252":
        lines[2] = lines[2].replace("FAB-A", "FAB-É")
        fabs.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    elif damage == "missing":
        fabs.unlink()
    elif damage == "ragged":
        lines[2] += ",9"
        fabs.write_text("\n".join(lines) + "\n")
    elif damage == "renamed":
        fabs.rename(folder / "Fabz.csv")
    elif damage == "empty":
        fabs.write_text("")
    elif damage == "unclosed quote":
        lines[2] = lines[2].replace("FAB-A,1c,", 'FAB-A,1c,"')
        fabs.write_text("\n".join(lines) + "\n")
    errs = errors(folder)
    p = next(p for p in errs if p.code == code)
    assert p.where == where, p.render()
    for w in words:
        assert w in p.render(), p.render()
    assert p.expected or p.hint
    res = CliRunner().invoke(main, ["validate", str(folder)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"error: {where}" in res.output


def test_a_folder_without_csv_files_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    res = CliRunner().invoke(main, ["validate", str(empty)])
    assert res.exit_code == 1 and "has no .csv files" in res.output and "Products.csv" in res.output


def test_every_command_that_reads_a_plan_accepts_a_folder(folder, tmp_path):
    r = CliRunner()
    res = r.invoke(main, ["validate", str(folder)])
    assert res.exit_code == 0 and "valid" in res.output, res.output
    res = r.invoke(main, ["explain", str(folder), "--platform", "Vera Rubin", "--period", "2026Q3"])
    assert res.exit_code == 0 and "Vera Rubin" in res.output, res.output
    res = r.invoke(main, ["compare", str(folder), "--scenario", "HBM4 slips 1Q", "--workers", "1", "--quiet",
                          "--no-explain", "-o", str(tmp_path / "c.xlsx")])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["sweep", str(folder), "--param", "Backend[TSV-1].units_per_quarter", "--values",
                          "5000000,6000000", "--workers", "1", "--quiet", "-o", str(tmp_path / "s.xlsx")])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["montecarlo", str(folder), "--samples", "2", "--workers", "1", "--quiet", "-o",
                          str(tmp_path / "m.xlsx")])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["solve", str(folder), "--no-explain", "--no-insights"])
    assert res.exit_code == 0, res.output
    assert (folder.parent / "erp-report.xlsx").exists()  # beside the folder, not inside it
    assert not any(p.suffix == ".xlsx" for p in folder.iterdir())


def test_convert_round_trip_and_refuses_to_overwrite(folder, tmp_path):
    r = CliRunner()
    wb = tmp_path / "plan.xlsx"
    res = r.invoke(main, ["convert", str(folder), str(wb)])
    assert res.exit_code == 0 and "is valid" in res.output, res.output
    back = tmp_path / "back"
    assert r.invoke(main, ["convert", str(wb), str(back)]).exit_code == 0
    for p in folder.glob("*.csv"):
        assert (back / p.name).read_text() == p.read_text(), p.name
    before = wb.read_bytes()
    res = r.invoke(main, ["convert", str(folder), str(wb)])
    assert res.exit_code == 1 and "--force" in res.output and wb.read_bytes() == before
    res = r.invoke(main, ["convert", str(wb), str(back)])
    assert res.exit_code == 1 and "--force" in res.output
    assert r.invoke(main, ["convert", str(folder), str(wb), "--force"]).exit_code == 0
    res = r.invoke(main, ["convert", str(folder), str(tmp_path / "plan.csv")])
    assert res.exit_code == 1 and ".xlsx" in res.output


def test_convert_keeps_an_invalid_export_for_fixing_in_excel(folder, tmp_path):
    """An export with a bad cell still converts (to be fixed in Excel); convert says the result has errors."""
    fabs = folder / "Fabs.csv"
    lines = fabs.read_text().splitlines()
    lines[2] = re.sub(r"^([^,]*,[^,]*,)[^,]*", r"\1lots", lines[2])
    fabs.write_text("\n".join(lines) + "\n")
    wb = tmp_path / "fixme.xlsx"
    res = CliRunner().invoke(main, ["convert", str(folder), str(wb)])
    assert res.exit_code == 0 and "1 error(s)" in res.output, res.output
    ws = openpyxl.load_workbook(wb)["Fabs"]
    assert ws.cell(3, 3).value == "lots" and isinstance(ws.cell(2, 3).value, int | float)


def test_folder_identity_changes_with_its_content(folder):
    a = load_plan(folder).sha256
    d = folder / "Demand.csv"
    d.write_text(d.read_text().replace("560000", "560001"))
    assert load_plan(folder).sha256 != a


def test_csv_values_parse_like_workbook_cells(folder):
    """Text cells of a CSV are parsed by the same rules: the plan equals the workbook's, sheet by sheet."""
    a, b = load_plan(EXAMPLE), load_plan(folder)
    for sheet in ("Products", "Fabs", "Demand", "BOM", "WIP", "Expansions", "Programs", "YieldRamp"):
        fa, fb = a.frame(sheet).drop(columns=["_row"]), b.frame(sheet).drop(columns=["_row"])
        pd.testing.assert_frame_equal(fa.reset_index(drop=True), fb.reset_index(drop=True), check_dtype=False)
    assert a.settings == b.settings
