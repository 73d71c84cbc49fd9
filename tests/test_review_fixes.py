"""Regressions found by the adversarial review after issues 14–20 were merged: each was a wrong number or a lost
fact where two branches met (whole-wafer display vs the frozen zone, the printed Inputs blocks vs the baseline
reader), or a generator/validator gap."""

from __future__ import annotations

import openpyxl
import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.io.problems import Code


def run(*args: str):
    res = CliRunner().invoke(main, list(args))
    return res


@pytest.fixture
def generated(tmp_path):
    src = tmp_path / "g1.xlsx"
    assert run("generate", "--platforms", "8", "--products", "12", "--fabs", "3", "--quarters", "10", "--seed", "1",
               "--wip", "-o", str(src)).exit_code == 0
    return src


def test_frozen_zone_holds_the_lp_starts_not_the_rounded_ones(tmp_path, generated):
    """The same plan re-solved against its own report with the first two quarters frozen: the frozen starts are
    the LP's (WaferStarts.wafers_lp), so the plan is feasible and nothing moves — and the unchanged inputs are
    reported unchanged (the Inputs sheet's column blocks are read back whole)."""
    base = tmp_path / "base.xlsx"
    assert run("solve", str(generated), "-o", str(base), "--no-insights").exit_code == 0
    out = tmp_path / "same.xlsx"
    res = run("solve", str(generated), "--set", "Settings.frozen_quarters=2", "--baseline", str(base), "-o", str(out),
              "--no-insights")
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert "no platform's service changed" in first, first
    assert "1 input change" in first and "frozen_quarters" in first, first
    a = {r[0]: r[1] for r in openpyxl.load_workbook(base, read_only=True)["Summary"].iter_rows(values_only=True)}
    b = {r[0]: r[1] for r in openpyxl.load_workbook(out, read_only=True)["Summary"].iter_rows(values_only=True)}
    assert b["objective"] == pytest.approx(a["objective"], rel=1e-7)


def test_unchanged_inputs_are_not_reported_as_added_rows(tmp_path, generated):
    base = tmp_path / "base.xlsx"
    assert run("solve", str(generated), "-o", str(base), "--no-insights", "--no-explain").exit_code == 0
    out = tmp_path / "again.xlsx"
    res = run("solve", str(generated), "--baseline", str(base), "-o", str(out), "--no-insights", "--no-explain")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].endswith("No input changed."), res.output.splitlines()[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generate_with_one_fab_passes_its_own_validation(tmp_path, seed):
    src = tmp_path / f"one-fab-{seed}.xlsx"
    assert run("generate", "--platforms", "3", "--products", "4", "--fabs", "1", "--quarters", "4", "--seed",
               str(seed), "-o", str(src)).exit_code == 0
    res = run("validate", str(src))
    assert res.exit_code == 0, res.output


def test_a_comma_read_as_thousands_separator_is_never_silent(tmp_path):
    """'12,345' typed as text is read as 12345 — and says so, since in a decimal-comma locale it is 12.345."""
    from planner.io.load import load_plan

    src = tmp_path / "t.xlsx"
    assert run("generate", "--platforms", "3", "--products", "4", "--fabs", "2", "--quarters", "4", "--seed", "1",
               "-o", str(src)).exit_code == 0
    wb = openpyxl.load_workbook(src)
    wb["Demand"]["C2"].value = "12,345"
    edited = tmp_path / "t2.xlsx"
    wb.save(edited)
    plan = load_plan(edited)
    (w,) = [p for p in plan.warnings if p.code == Code.THOUSANDS_SEPARATOR]
    assert w.cell == "C2" and "12345" in w.message
