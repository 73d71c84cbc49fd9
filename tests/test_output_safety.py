"""No command loses an analyst's work (issue 17): what may be replaced, what is refused, and that every path and
option is checked before any solving.

Policy under test (planner/report/outputs.py, README "What planner promises"): input workbooks (template,
example, generate) never replace an existing file without --force; reports replace only an untouched report
planner wrote (recognised by its document property and archive fingerprint); a wrong extension is a usage
error (exit 2); a scenario or --set run without -o never writes the base report.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, edit_workbook

from planner.cli import main
from planner.report.outputs import PROPERTY, read_mark

FAST = ["--no-insights", "--no-explain"]
SWEEP = ["--param", "Backend[TSV-1].units_per_quarter", "--values", "5000000,6000000", "--workers", "1"]


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def src(tmp_path: Path) -> Path:
    dst = tmp_path / "my.xlsx"
    shutil.copy(EXAMPLE, dst)
    return dst


@pytest.fixture
def no_solving(monkeypatch):
    """Any LP solve fails the test: proves a command stopped before the work (batches run with --workers 1,
    in this process, so the patch reaches them)."""
    import highspy

    calls = []

    def boom(self, *a, **k):
        calls.append(1)
        raise AssertionError("the command solved an LP although it should have stopped before any work")

    monkeypatch.setattr(highspy.Highs, "run", boom)
    return calls


def foreign(path: Path, text: str = "an analyst's notes, not a planner report\n") -> str:
    path.write_text(text)
    return digest(path)


# ---- input workbooks: template, example, generate -------------------------------------------------------------
INPUT_COMMANDS = {
    "template": lambda out: ["template", out],
    "example": lambda out: ["example", out],
    "generate": lambda out: ["generate", "--platforms", "2", "--products", "2", "--fabs", "1", "--quarters", "2",
                             "-o", out],
}


@pytest.mark.parametrize("command", sorted(INPUT_COMMANDS))
def test_input_workbook_never_replaces_an_existing_file(tmp_path, command):
    keep = tmp_path / "keep.xlsx"
    shutil.copy(EXAMPLE, keep)  # a filled-in plan
    before = digest(keep)
    res = run(*INPUT_COMMANDS[command](keep))
    assert res.exit_code == 1, res.output
    assert "--force" in res.output and "keep.xlsx" in res.output
    assert digest(keep) == before, f"planner {command} changed an existing file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.xlsx"], "a temporary file was left behind"


@pytest.mark.parametrize("command", sorted(INPUT_COMMANDS))
def test_input_workbook_replaces_with_force_and_writes_new_files(tmp_path, command):
    keep = tmp_path / "keep.xlsx"
    foreign(keep)
    res = run(*INPUT_COMMANDS[command](keep), "--force")
    assert res.exit_code == 0, res.output
    assert read_mark(keep).kind == {"template": "template", "example": "example", "generate": "generated"}[command]
    new = tmp_path / "new.xlsx"
    assert run(*INPUT_COMMANDS[command](new)).exit_code == 0 and new.exists()
    # planner's own input workbook is no exception: it may have been filled in since
    res = run(*INPUT_COMMANDS[command](new))
    assert res.exit_code == 1 and "--force" in res.output


def test_example_default_path_is_not_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inputs").mkdir()
    mine = tmp_path / "inputs" / "example.xlsx"
    before = foreign(mine, "my edited example\n")
    res = run("example")
    assert res.exit_code == 1 and "--force" in res.output
    assert digest(mine) == before


# ---- the extension matches what is written ---------------------------------------------------------------------
WRITERS = {
    "solve": lambda i, o: ["solve", i, "-o", o, *FAST],
    "compare": lambda i, o: ["compare", i, "--all-scenarios", "--workers", "1", "-o", o],
    "sweep": lambda i, o: ["sweep", i, *SWEEP, "-o", o],
    "montecarlo": lambda i, o: ["montecarlo", i, "--samples", "2", "--workers", "1", "-o", o],
    "template": lambda i, o: ["template", o],
    "example": lambda i, o: ["example", o],
    "generate": lambda i, o: ["generate", "--platforms", "2", "--products", "2", "--fabs", "1", "--quarters", "2",
                              "-o", o],
}


@pytest.mark.parametrize("command", sorted(WRITERS))
@pytest.mark.parametrize("name", ["out.csv", "out", "out.xls", "out.xlsx.tmp", "out.ods"])
def test_wrong_extension_is_a_usage_error_before_any_work(tmp_path, src, no_solving, command, name):
    out = tmp_path / name
    res = run(*WRITERS[command](src, out))
    assert res.exit_code == 2, (command, name, res.output)
    assert ".xlsx" in res.output
    assert not out.exists() and not no_solving
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.xlsx"]


def test_upper_case_extension_is_fine(tmp_path, src):
    out = tmp_path / "OUT.XLSX"
    res = run("solve", src, "-o", out, *FAST)
    assert res.exit_code == 0, res.output
    assert read_mark(out).kind == "report"


# ---- reports: replace planner's own, refuse anything else --------------------------------------------------------
def test_solve_replaces_its_own_report(tmp_path, src):
    out = tmp_path / "r.xlsx"
    assert run("solve", src, "-o", out, *FAST).exit_code == 0
    mark = read_mark(out)
    assert mark.kind == "report" and mark.untouched
    assert openpyxl.load_workbook(out, read_only=True).custom_doc_props[PROPERTY].value == "report"
    res = run("solve", src, "-o", out, *FAST)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("command", ["solve", "compare", "sweep", "montecarlo"])
def test_a_file_planner_did_not_write_is_refused_before_solving(tmp_path, src, no_solving, command):
    out = tmp_path / "out.xlsx"
    before = foreign(out)
    res = run(*WRITERS[command](src, out))
    assert res.exit_code == 1, res.output
    assert "not a report planner wrote" in res.output and "--force" in res.output
    assert digest(out) == before and not no_solving


@pytest.mark.parametrize("command", ["solve", "compare", "sweep", "montecarlo"])
def test_force_replaces_a_foreign_file(tmp_path, src, command):
    out = tmp_path / "out.xlsx"
    foreign(out)
    res = run(*WRITERS[command](src, out), "--force")
    assert res.exit_code == 0, res.output
    assert read_mark(out).kind == {"solve": "report"}.get(command, command)


def test_another_spreadsheet_at_the_output_is_refused(tmp_path, src):
    """A real workbook (the example itself, copied) is not a report: refused, kept byte for byte."""
    out = tmp_path / "other.xlsx"
    shutil.copy(EXAMPLE, out)
    before = digest(out)
    res = run("solve", src, "-o", out, *FAST)
    assert res.exit_code == 1 and digest(out) == before


def test_a_report_someone_saved_since_is_refused(tmp_path, src):
    out = tmp_path / "r.xlsx"
    assert run("solve", src, "-o", out, *FAST).exit_code == 0

    def annotate(wb):
        wb["Overview"]["J1"] = "my notes for the director"

    edit_workbook(out, out, annotate)
    before = digest(out)
    res = run("solve", src, "-o", out, *FAST)
    assert res.exit_code == 1, res.output
    assert "saved since" in res.output and "--force" in res.output
    assert digest(out) == before


def test_a_planner_template_is_not_a_report(tmp_path, src):
    plan = tmp_path / "plan.xlsx"
    assert run("template", plan).exit_code == 0
    before = digest(plan)
    res = run("solve", src, "-o", plan, *FAST)
    assert res.exit_code == 1 and "input" in res.output and digest(plan) == before


def test_reports_replace_each_other(tmp_path, src):
    """A compare workbook over an untouched solve report is a planner report replacing another: allowed."""
    out = tmp_path / "r.xlsx"
    assert run("solve", src, "-o", out, *FAST).exit_code == 0
    res = run("compare", src, "--set", "Backend[TSV-1].units_per_quarter*=1.1", "--workers", "1", "-o", out)
    assert res.exit_code == 0, res.output
    assert read_mark(out).kind == "compare"


def test_input_is_never_replaced_even_with_force(tmp_path, src):
    before = digest(src)
    res = run("solve", src, "-o", src, "--force", *FAST)
    assert res.exit_code == 1 and digest(src) == before
    link = tmp_path / "link.xlsx"
    os.link(src, link)
    res = run("solve", src, "-o", link, "--force", *FAST)
    assert res.exit_code == 1 and "input" in res.output and digest(src) == before


def test_a_file_that_appears_during_the_solve_is_not_replaced(tmp_path, src, monkeypatch):
    """The check runs again just before writing: a file saved there during a long run is kept."""
    out = tmp_path / "r.xlsx"
    import highspy

    real = highspy.Highs.run

    def solve_then_someone_saves(self, *a, **k):
        if not out.exists():
            out.write_text("saved by someone during the run\n")
        return real(self, *a, **k)

    monkeypatch.setattr(highspy.Highs, "run", solve_then_someone_saves)
    res = run("solve", src, "-o", out, *FAST)
    assert res.exit_code == 1, res.output
    assert out.read_text() == "saved by someone during the run\n"


# ---- scenario and --set runs never write the base report ----------------------------------------------------------
def test_scenario_run_without_o_writes_its_own_report(tmp_path, src):
    base = tmp_path / "my-report.xlsx"
    assert run("solve", src, *FAST).exit_code == 0
    before = digest(base)
    res = run("solve", src, "--scenario", "HBM4 slips 1Q", *FAST)
    assert res.exit_code == 0, res.output
    assert digest(base) == before, "a scenario run rewrote the base report"
    scen = tmp_path / "my-report-hbm4-slips-1q.xlsx"
    assert scen.exists() and f"report: {scen.name}" in res.output.replace(str(tmp_path) + os.sep, "")
    overview = openpyxl.load_workbook(scen, read_only=True)["Overview"]
    assert "HBM4 slips 1Q" in str(next(overview.iter_rows(max_row=1, values_only=True))[0])


def test_set_run_without_o_writes_a_slugged_report(tmp_path, src):
    res = run("solve", src, "--set", "Programs[HBM4].qualification_quarters+=1", *FAST)
    assert res.exit_code == 0, res.output
    res2 = run("solve", src, "--set", "Programs[HBM4].qualification_quarters=1", *FAST)
    assert res2.exit_code == 0, res2.output
    names = sorted(p.name for p in tmp_path.glob("my-report*.xlsx"))
    assert "my-report.xlsx" not in names
    assert len(names) == 2, f"'+=1' and '=1' are different runs and must not share a report: {names}"
    assert all(n.startswith("my-report-programs-hbm4-qualification-quarters") for n in names)


def test_scenario_and_set_slugs_are_combined_and_bounded(tmp_path, src):
    sets = [f"Demand[Vera Rubin|2027Q{q}].units*=1.0{q}" for q in range(1, 5)]
    args = ["solve", src, "--scenario", "HBM4 slips 1Q", *[x for s in sets for x in ("--set", s)], *FAST]
    res = run(*args)
    assert res.exit_code == 0, res.output
    (written,) = [p for p in tmp_path.glob("my-report-*.xlsx")]
    assert written.name.startswith("my-report-hbm4-slips-1q-") and len(written.name) <= 120


def test_scenario_names_that_slug_alike_get_distinct_reports(tmp_path):
    def add(wb):
        ws = wb["Scenarios"]
        ws.append(["TSV-1: +10%", "Backend", "TSV-1", "units_per_quarter", "scale", 1.1])

    src = edit_workbook(EXAMPLE, tmp_path / "ex.xlsx", add)  # "TSV-1 +10%" is in the example already
    res = run("solve", src, "--all-scenarios", *FAST)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.glob("ex-report*.xlsx"))
    from planner.io.load import load_plan
    from planner.io.scenarios import scenario_names

    assert len(names) == 1 + len(scenario_names(load_plan(src))), names


# ---- everything is checked before the first solve -----------------------------------------------------------------
def test_all_scenarios_checks_every_target_before_solving(tmp_path, src, no_solving):
    blocked = tmp_path / "my-report-tsv-1-10.xlsx"
    blocked.mkdir()
    res = run("solve", src, "--all-scenarios", *FAST)
    assert res.exit_code == 1, res.output
    assert "my-report-tsv-1-10.xlsx" in res.output and not no_solving
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-report-tsv-1-10.xlsx", "my.xlsx"]


def test_all_scenarios_foreign_file_at_one_target(tmp_path, src, no_solving):
    theirs = tmp_path / "my-report-hbm4-slips-1q.xlsx"
    before = foreign(theirs)
    res = run("solve", src, "--all-scenarios", *FAST)
    assert res.exit_code == 1 and "--force" in res.output and not no_solving
    assert digest(theirs) == before


@pytest.mark.parametrize("args", [
    ["solve", "{src}", "--time-limit", "-1"],
    ["solve", "{src}", "--time-limit", "0"],
    ["compare", "{src}", "--all-scenarios", "--workers", "0"],
    ["sweep", "{src}", "--param", "Backend[TSV-1].units_per_quarter", "--values", "1", "--workers", "-2"],
    ["montecarlo", "{src}", "--workers", "0"],
])
def test_bad_options_are_usage_errors_before_solving(src, no_solving, args):
    res = run(*[a.format(src=src) for a in args])
    assert res.exit_code == 2, res.output
    assert not no_solving


def test_missing_output_directory_fails_before_reading(tmp_path, src, no_solving):
    for command in ("solve", "compare", "sweep", "montecarlo"):
        res = run(*WRITERS[command](src, tmp_path / "nope" / "out.xlsx"))
        assert res.exit_code == 1 and "does not exist" in res.output, (command, res.output)
    assert not no_solving
