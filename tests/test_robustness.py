"""Hostile files, interruptions, numerical edge cases and solver faults (issue 9)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest
from builders import frames, plan
from click.testing import CliRunner
from conftest import EXAMPLE

from planner import api
from planner.cli import main
from planner.io.problems import Code
from planner.io.reader import Limits, ReadError, read_workbook
from planner.report.template import write_input_workbook

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c></row></sheetData></worksheet>"""


def replace_member(src: Path, dst: Path, member: str, content: str) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = content.encode() if item.filename == member else zin.read(item.filename)
            zout.writestr(item, data)
    return dst


def first_sheet_member(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return sorted(n for n in z.namelist() if n.startswith("xl/worksheets/sheet"))[0]


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_xml_entity_attacks_are_refused(tmp_path, payload):
    bad = replace_member(EXAMPLE, tmp_path / "evil.xlsx", first_sheet_member(EXAMPLE), payload)
    t = time.perf_counter()
    with pytest.raises(ReadError) as exc:
        read_workbook(bad)
    assert exc.value.problem.code == Code.UNSAFE_XML
    assert time.perf_counter() - t < 10
    res = CliRunner().invoke(main, ["validate", str(bad)])
    assert res.exit_code == 1 and "refuses to parse" in res.output


def test_entity_in_workbook_xml_is_refused(tmp_path):
    evil_wb = BILLION_LAUGHS.replace("worksheet", "workbook")
    bad = replace_member(EXAMPLE, tmp_path / "evil.xlsx", "xl/workbook.xml", evil_wb)
    with pytest.raises(ReadError) as exc:
        read_workbook(bad)
    assert exc.value.problem.code in (Code.UNSAFE_XML, Code.CORRUPT_FILE)


def test_huge_declared_range_with_few_cells(tmp_path):
    """A cell at XFD1048576: the declared used range is 1,048,576 × 16,384; reading stays bounded."""
    src = write_input_workbook(tmp_path / "h.xlsx", frames())
    wb = openpyxl.load_workbook(src)
    wb["Fabs"]["XFD1048576"] = "x"
    wb.save(src)
    t = time.perf_counter()
    plan_ = api.load_workbook(src)
    assert time.perf_counter() - t < 30
    assert len(plan_.fabs) == 1


def test_ods_xlsb_xls_csv_are_refused_with_advice(tmp_path):
    ods = tmp_path / "p.ods"
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", "<x/>")
    xlsb = tmp_path / "p.xlsb"
    with zipfile.ZipFile(xlsb, "w") as z:
        z.writestr("xl/workbook.bin", b"\0")
    xls = tmp_path / "p.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    csv = tmp_path / "p.csv"
    csv.write_text("platform,period,units\nX,2026Q1,5\n")
    for f, word in ((ods, "OpenDocument"), (xlsb, ".xlsb"), (xls, "legacy .xls"), (csv, "CSV")):
        res = CliRunner().invoke(main, ["validate", str(f)])
        assert res.exit_code == 1 and word in res.output and "save" in res.output, res.output


def test_200_mb_file_is_refused_without_reading_it(tmp_path):
    big = tmp_path / "big.xlsx"
    with open(big, "wb") as fh:
        fh.truncate(200 * 2**20)  # sparse: no disk used, no time spent
    t = time.perf_counter()
    with pytest.raises(ReadError) as exc:
        read_workbook(big)
    assert exc.value.problem.code == Code.FILE_TOO_LARGE and time.perf_counter() - t < 1


def test_row_limit_is_configurable(tmp_path):
    src = write_input_workbook(tmp_path / "r.xlsx", frames())
    with pytest.raises(ReadError) as exc:
        read_workbook(src, Limits(max_rows=1, max_file_bytes=10**9, max_uncompressed_bytes=10**10))
    assert exc.value.problem.code == Code.TOO_MANY_ROWS
    env = {**os.environ, "PLANNER_MAX_FILE_MB": "0"}
    proc = subprocess.run([sys.executable, "-m", "planner", "validate", str(src)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1 and "PLANNER_MAX_FILE_MB" in proc.stderr


# ---- interruptions ---------------------------------------------------------------------------------------------------
def test_ctrl_c_during_solve_leaves_previous_report(tmp_path, monkeypatch):
    out = tmp_path / "r.xlsx"
    assert CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out), "--no-insights"]).exit_code == 0
    before = out.read_bytes()
    import planner.pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(planner.pipeline, "solve_model", interrupted)
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out)])
    assert res.exit_code == 130 and "no report written" in res.output
    assert out.read_bytes() == before


def test_kill_during_solve_or_write_never_truncates(tmp_path):
    """SIGKILL a real `planner solve` at several moments: the report is the previous one or a complete new one."""
    src = tmp_path / "g.xlsx"
    subprocess.run([sys.executable, "-m", "planner", "generate", "--platforms", "80", "--products", "80", "--fabs", "8",
                    "--quarters", "16", "-o", str(src)], check=True, capture_output=True, timeout=120)
    out = tmp_path / "g-report.xlsx"
    subprocess.run([sys.executable, "-m", "planner", "solve", str(src), "--no-insights", "--no-explain"], check=True,
                   capture_output=True, timeout=300)
    previous = out.read_bytes()
    killed_mid_run = 0
    for delay in (0.5, 1.0, 1.5, 2.0, 3.0):
        proc = subprocess.Popen([sys.executable, "-m", "planner", "solve", str(src), "--no-insights", "--no-explain"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        data = out.read_bytes()
        if proc.returncode == -signal.SIGKILL and data == previous:  # killed before its rename: report untouched
            killed_mid_run += 1
        # whatever happened (killed before or after the atomic rename), the report is a complete workbook
        wb = openpyxl.load_workbook(out, read_only=True)
        assert "Summary" in wb.sheetnames
        wb.close()
        previous = data
    assert killed_mid_run, "every run finished before its kill: the test did not exercise a kill (plan too small?)"


# ---- numerical robustness -----------------------------------------------------------------------------------------------
def test_badly_scaled_data_solves_and_checks(tmp_path):
    """Capacities of 1e9 wafers next to yields of 1e-3."""
    p = plan(quarters=2, products=[{"die_yield": 0.001, "gross_dies_per_wafer": 1000, "dies_per_unit": 1}],
             fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 1e9, "wafer_cost": 0.001}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 5e8}])
    run = api.run(p)
    s = run.results.summary
    assert s["status"] == "optimal" and s["feasibility_check"] == "passed"
    assert s["served_units"] == pytest.approx(5e8, rel=1e-6)


@pytest.mark.parametrize("case", ["no_demand", "no_capacity", "all_gated"])
def test_degenerate_plans_solve_or_are_explained(tmp_path, case):
    kw: dict = {"quarters": 2}
    if case == "no_demand":
        kw["demand"] = [{"platform": "X", "period": "2026Q1", "units": 0}]
    elif case == "no_capacity":
        kw["fabs"] = [{"fab": "F", "node": "n1", "wafers_per_quarter": 0, "wafer_cost": 20}]
    else:
        kw["products"] = [{"program": "G"}]
        kw["programs"] = [{"program": "G", "start_period": "2026Q1", "development_quarters": 5,
                           "qualification_quarters": 3}]
    src = write_input_workbook(tmp_path / f"{case}.xlsx", frames(**kw))
    res = CliRunner().invoke(main, ["solve", str(src)])
    assert res.exit_code == 0, res.output
    if case == "no_demand":
        assert "no demand" in res.output
    elif case == "no_capacity":
        assert "100% F/n1 wafers" in res.output
    else:
        assert "100% G qualification (ready after the horizon)" in res.output or "G qualification" in res.output


def test_feasibility_violation_is_reported_not_hidden(tmp_path, monkeypatch):
    import planner.pipeline
    from planner.solve.policy import solve_model as real

    def tampered(model, **kw):
        sol = real(model, **kw)
        sol.x = sol.x.copy()
        sol.x[model.w["col"].to_numpy()] *= 3  # three times the wafers a fab can start
        from planner.solve.policy import check_feasibility

        sol.max_violation, sol.violations = check_feasibility(model.lp, sol.x)
        return sol

    monkeypatch.setattr(planner.pipeline, "solve_model", tampered)
    out = tmp_path / "r.xlsx"
    src = write_input_workbook(tmp_path / "p.xlsx", frames(quarters=1))
    res = CliRunner().invoke(main, ["solve", str(src), "-o", str(out), "--no-explain", "--no-insights"])
    assert res.exit_code == 1 and "failed its feasibility check" in res.output
    summary = {r[0]: r[1] for r in openpyxl.load_workbook(out, read_only=True)["Summary"].iter_rows(values_only=True)}
    assert "fab_capacity" in summary["feasibility_check"] and "used" in summary["feasibility_check"]


# ---- solver faults ----------------------------------------------------------------------------------------------------
def test_time_limit_is_reported(tmp_path):
    src = tmp_path / "g.xlsx"
    subprocess.run([sys.executable, "-m", "planner", "generate", "--platforms", "150", "--products", "200", "--fabs",
                    "16", "--quarters", "24", "-o", str(src)], check=True, capture_output=True, timeout=120)
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(src), "--time-limit", "0.05", "-o", str(out)])
    assert res.exit_code == 1 and "time_limit" in res.output
    summary = {r[0]: r[1] for r in openpyxl.load_workbook(out, read_only=True)["Summary"].iter_rows(values_only=True)}
    assert summary["status"] == "time_limit"


def test_highs_missing_names_cbc(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "highspy", None)
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "r.xlsx")])
    assert res.exit_code == 1 and "highspy" in res.output and "cbc" in res.output
    ok = CliRunner().invoke(main, ["solve", str(EXAMPLE), "--solver", "cbc", "--no-insights", "--no-explain",
                                   "-o", str(tmp_path / "r.xlsx")])
    assert ok.exit_code == 0, ok.output


def test_highs_crash_names_cbc(tmp_path, monkeypatch):
    import highspy

    def crash(self):
        raise RuntimeError("simulated solver crash")

    monkeypatch.setattr(highspy.Highs, "run", crash)
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "r.xlsx")])
    assert res.exit_code == 1 and "HiGHS failed" in res.output and "--solver cbc" in res.output


def test_cbc_missing_names_highs(tmp_path, monkeypatch):
    import pulp

    monkeypatch.setattr(pulp.PULP_CBC_CMD, "available", lambda self: False)
    monkeypatch.setattr(pulp.COIN_CMD, "available", lambda self: False)
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "--solver", "cbc", "-o", str(tmp_path / "r.xlsx")])
    assert res.exit_code == 1 and "solver = highs" in res.output


def test_example_copy_untouched_by_every_command(tmp_path):
    import hashlib

    src = tmp_path / "ex.xlsx"
    shutil.copy(EXAMPLE, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    runner = CliRunner()
    for args in (["validate"], ["solve", "--no-insights"], ["explain"], ["compare", "--all-scenarios", "--workers", "1"],
                 ["sweep", "--param", "Backend[TSV-1].units_per_quarter", "--values", "5000000", "--workers", "1"],
                 ["montecarlo", "--samples", "2", "--workers", "1"]):
        res = runner.invoke(main, [args[0], str(src), *args[1:]])
        assert res.exit_code == 0, (args, res.output)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


def test_valid_numbers_that_combine_out_of_scale_are_named(tmp_path):
    """gross 1e12 dies per wafer over 1e-9 dies per unit: each cell is in range, the product (1e21 units per
    wafer) is not; the error names the product's row instead of letting the solver fail."""
    src = write_input_workbook(tmp_path / "s.xlsx", frames(products=[{"gross_dies_per_wafer": 1e12,
                                                                      "dies_per_unit": 1e-9}]))
    res = CliRunner().invoke(main, ["solve", str(src)])
    assert res.exit_code == 1 and "Products row 2" in res.output and "good units per wafer" in res.output
    assert "Traceback" not in res.output
