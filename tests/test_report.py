"""`planner solve` end to end: the report's contract sheets, its integrity guarantees, and a real office suite."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from builders import frames
from click.testing import CliRunner
from conftest import EXAMPLE

from planner.cli import main
from planner.report.template import write_input_workbook

CONTRACT = {
    "Summary": ["metric", "value"],
    "Allocation": ["platform", "period", "option", "product", "platform_units", "memory_units"],
    "Service": ["platform", "period", "demand", "served", "shortfall", "fill_rate"],
    "WaferStarts": ["fab", "node", "product", "period", "wafers"],
    "Supply": ["product", "period", "output_units", "shipped_units", "inventory_end"],
    "Capacity": ["resource", "period", "capacity", "used", "utilisation", "shadow_price"],
}
SUMMARY_ROWS = {"status", "objective", "margin", "revenue", "cost", "shortfall_penalty", "fill_rate", "solver", "solve_seconds",
                "input_sha256"}


def sheet_rows(path: Path, sheet: str) -> list[dict]:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb[sheet].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


@pytest.fixture(scope="module")
def example_report(tmp_path_factory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("rep")
    src = d / "example.xlsx"
    shutil.copy(EXAMPLE, src)
    res = CliRunner().invoke(main, ["solve", str(src)])
    return d / "example-report.xlsx", res


def test_solve_example_writes_contract_sheets(example_report):
    path, res = example_report
    assert res.exit_code == 0, res.output
    assert "Margin $" in res.output and "report:" in res.output
    wb = openpyxl.load_workbook(path, read_only=True)
    assert wb.sheetnames[0] == "Overview"
    for sheet, cols in CONTRACT.items():
        header = next(wb[sheet].iter_rows(values_only=True))
        assert list(header[: len(cols)]) == cols, sheet
    for sheet in ("Bottlenecks", "R&D impact", "Inputs", "Charts", "ChartData"):
        assert sheet in wb.sheetnames
    summary = {r["metric"]: r["value"] for r in sheet_rows(path, "Summary")}
    assert set(summary) >= SUMMARY_ROWS
    assert summary["status"] == "optimal"
    assert summary["input_sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert summary["objective"] == pytest.approx(summary["revenue"] - summary["cost"] - summary["shortfall_penalty"])
    assert summary["margin"] == pytest.approx(summary["revenue"] - summary["cost"])


def test_report_reconciles(example_report):
    """Allocated ≤ made + on hand ≤ capacity allowed, read back from the written sheets."""
    path, _ = example_report
    svc = sheet_rows(path, "Service")
    assert all(r["served"] <= r["demand"] + 1e-6 for r in svc)
    assert all(abs(r["served"] + r["shortfall"] - r["demand"]) < 1e-3 for r in svc)
    cap = sheet_rows(path, "Capacity")
    assert all(r["used"] <= r["capacity"] * (1 + 1e-9) + 1e-6 for r in cap)
    alloc = sheet_rows(path, "Allocation")
    supply = {(r["product"], r["period"]): r for r in sheet_rows(path, "Supply")}
    shipped: dict = {}
    for r in alloc:
        shipped[(r["product"], r["period"])] = shipped.get((r["product"], r["period"]), 0) + r["memory_units"]
    for key, v in shipped.items():
        assert v == pytest.approx(supply[key]["shipped_units"], rel=1e-9)
    summary = {r["metric"]: r["value"] for r in sheet_rows(path, "Summary")}
    assert summary["fill_rate"] == pytest.approx(sum(r["served"] for r in svc) / sum(r["demand"] for r in svc))
    assert summary["feasibility_check"] == "passed"


def test_overview_and_bottlenecks_speak_plainly(example_report):
    path, _ = example_report
    wb = openpyxl.load_workbook(path, read_only=True)
    overview = " ".join(str(c) for row in wb["Overview"].iter_rows(values_only=True) for c in row if c)
    assert "HYPOTHETICAL" in overview and "example.xlsx" in overview and "What binds" in overview
    b = sheet_rows(path, "Bottlenecks")
    assert b and b[0]["explanation"].startswith("One more ")
    prices = [r["shadow_price"] for r in b]
    assert prices == sorted(prices, reverse=True)
    rd = sheet_rows(path, "R&D impact")
    assert {r["program"] for r in rd} == {"HBM4", "HBM4E", "SOCAMM2"}
    # a program ready later can never raise the objective (monotonicity), earlier can never lower it; the margin
    # (revenue − cost) has no such promise: extra units may avoid more penalty than they earn
    assert all(r["objective_later"] <= 1e-3 and r["objective_earlier"] >= -1e-3 for r in rd)


def test_json_summary_on_stdout(tmp_path):
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "--json", "--no-insights", "-o", str(out)])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["status"] == "optimal" and data["report"] == str(out.resolve())


def test_json_stdout_is_clean_in_a_real_process(tmp_path):
    """HiGHS prints a banner from C on construction; --json stdout must still be one JSON object."""
    out = tmp_path / "r.xlsx"
    proc = subprocess.run([sys.executable, "-m", "planner", "solve", str(EXAMPLE), "--json", "--no-insights",
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "optimal"


def test_infeasible_plan_exits_1_with_explanation(tmp_path):
    f = frames(quarters=1, platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0, "min_fill": 0.6}])
    src = write_input_workbook(tmp_path / "inf.xlsx", f)
    res = CliRunner().invoke(main, ["solve", str(src)])
    assert res.exit_code == 1
    assert "infeasible" in res.output
    report = tmp_path / "inf-report.xlsx"
    summary = {r["metric"]: r["value"] for r in sheet_rows(report, "Summary")}
    assert summary["status"] == "infeasible"
    rows = sheet_rows(report, "Infeasibility")
    (row,) = [r for r in rows if r["platform"] == "X"]
    assert row["missing"] == pytest.approx(200)
    text = " ".join(str(v) for r in rows for v in r.values() if v)
    assert "cannot all hold together" in text and "F/n1 starts at most 100 wafers in 2026Q1" in text


def test_formula_injection_is_written_as_text(tmp_path):
    hostile = {"X": "=HYPERLINK(\"http://evil\",\"x\")", "P": "+cmd|' /C calc'!A0", "o": "@SUM(1+1)"}
    f = frames(quarters=1, products=[{"product": hostile["P"]}],
               platforms=[{"platform": hostile["X"], "priority": 1, "shortfall_penalty": 0}],
               bom=[{"platform": hostile["X"], "option": hostile["o"], "product": hostile["P"],
                     "units_per_platform": 1}],
               demand=[{"platform": hostile["X"], "period": "2026Q1", "units": 10}])
    src = write_input_workbook(tmp_path / "evil.xlsx", f)
    # the input writer must not have created formulas either
    wb_in = openpyxl.load_workbook(src)
    assert wb_in["Platforms"]["A2"].data_type == "s"
    res = CliRunner().invoke(main, ["solve", str(src), "-o", str(tmp_path / "out.xlsx")])
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(tmp_path / "out.xlsx")
    seen = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value in hostile.values():
                    assert cell.data_type == "s", (ws.title, cell.coordinate)
                    seen += 1
                assert cell.data_type != "f" or not any(h in str(cell.value) for h in hostile.values())
    assert seen >= 5


def test_output_path_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "no" / "such" / "dir.xlsx")])
    assert res.exit_code == 1 and "does not exist" in res.output
    src = tmp_path / "in.xlsx"
    shutil.copy(EXAMPLE, src)
    res = runner.invoke(main, ["solve", str(src), "-o", str(src)])
    assert res.exit_code == 1 and "input" in res.output


def test_unwritable_directory(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("running as root: directory permissions do not apply")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(locked / "r.xlsx")])
    assert res.exit_code == 1 and "permission" in res.output


def test_failed_write_keeps_previous_report(tmp_path, monkeypatch):
    """A crash while writing leaves the earlier report byte for byte, and no temporary file behind."""
    out = tmp_path / "r.xlsx"
    runner = CliRunner()
    assert runner.invoke(main, ["solve", str(EXAMPLE), "--no-insights", "-o", str(out)]).exit_code == 0
    before = out.read_bytes()

    import planner.report.writer as w

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(w, "_write_inputs", boom)
    res = runner.invoke(main, ["solve", str(EXAMPLE), "--no-insights", "-o", str(out)])
    assert res.exit_code == 130
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.xlsx"]


def test_input_is_never_modified(tmp_path):
    src = tmp_path / "in.xlsx"
    shutil.copy(EXAMPLE, src)
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    assert CliRunner().invoke(main, ["solve", str(src), "--no-insights"]).exit_code == 0
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before


# ---- a real office suite -------------------------------------------------------------------------------------------
def _soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.office
def test_libreoffice_opens_and_converts_the_report(example_report, tmp_path):
    soffice = _soffice()
    if soffice is None:
        pytest.skip("LibreOffice (soffice) is not installed; .ci/run installs it with apt-get")
    path, _ = example_report
    profile = tmp_path / "lo-profile"
    base = [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore"]
    pdf = subprocess.run([*base, "--convert-to", "pdf", "--outdir", str(tmp_path), str(path)],
                         capture_output=True, text=True, timeout=240)
    assert pdf.returncode == 0, pdf.stderr
    pdf_path = tmp_path / (path.stem + ".pdf")
    assert pdf_path.exists() and pdf_path.read_bytes()[:4] == b"%PDF" and pdf_path.stat().st_size > 50_000
    # LibreOffice re-saves the workbook; every sheet must survive and be readable again
    resaved_dir = tmp_path / "resaved"
    resaved_dir.mkdir()
    xlsx = subprocess.run([*base, "--convert-to", "xlsx", "--outdir", str(resaved_dir), str(path)],
                          capture_output=True, text=True, timeout=240)
    assert xlsx.returncode == 0, xlsx.stderr
    original = openpyxl.load_workbook(path, read_only=True).sheetnames
    again = openpyxl.load_workbook(resaved_dir / path.name)
    assert again.sheetnames == original
    charts = again["Charts"]._charts
    assert len(charts) >= 8  # native charts survive the round trip


def test_unwritable_directory_message_even_as_root(tmp_path, monkeypatch):
    """Root ignores directory permissions, so simulate the check failing the way a normal user would see it."""
    import planner.report.atomic

    real_access = planner.report.atomic.os.access
    monkeypatch.setattr(planner.report.atomic.os, "access",
                        lambda p, mode: False if mode == planner.report.atomic.os.W_OK else real_access(p, mode))
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "r.xlsx")])
    assert res.exit_code == 1 and "no permission" in res.output
