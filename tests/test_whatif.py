"""What-if analysis (issue 6): one edit grammar, comparisons, sweeps, Monte Carlo, and batches that lose nothing."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from builders import frames, plan
from click.testing import CliRunner
from conftest import EXAMPLE, edit_workbook

from planner.analysis.cases import Case, CaseResult
from planner.analysis.whatif import montecarlo_cases
from planner.batch import LocalExecutor, Progress, run_batch
from planner.cli import main
from planner.io.load import load_plan
from planner.io.problems import ValidationFailed
from planner.io.scenarios import apply_edits, edits_from_sheet, parse_override
from planner.model.build import build_model


@pytest.fixture(scope="module")
def example():
    return load_plan(EXAMPLE)


def lp_arrays(p):
    lp = build_model(p).lp
    A = lp.matrix()
    return A.toarray(), lp.bounds(), lp.objective()


def assert_same_lp(a, b):
    A1, B1, c1 = lp_arrays(a)
    A2, B2, c2 = lp_arrays(b)
    assert A1.shape == A2.shape
    np.testing.assert_allclose(A1, A2)
    for x, y in zip(B1, B2, strict=True):
        np.testing.assert_allclose(x, y)
    np.testing.assert_allclose(c1, c2)


def test_scenario_sheet_and_set_give_the_identical_model(example):
    via_sheet = apply_edits(example, edits_from_sheet(example, "HBM4 slips 1Q"))
    via_set = apply_edits(example, [parse_override("Programs[HBM4].qualification_quarters+=1")])
    assert_same_lp(via_sheet, via_set)
    rubin_sheet = apply_edits(example, edits_from_sheet(example, "Rubin demand +20%"))
    rubin_set = apply_edits(example, [parse_override("Demand[vera rubin|*].units *= 1.2")])
    assert_same_lp(rubin_sheet, rubin_set)
    assert rubin_set.demand.loc[rubin_set.demand["platform"] == "Vera Rubin", "units"].sum() == pytest.approx(
        1.2 * example.demand.loc[example.demand["platform"] == "Vera Rubin", "units"].sum())
    pol = apply_edits(example, [parse_override("Settings.policy=priority")])
    assert pol.settings.policy == "priority" and example.settings.policy == "margin"


def test_edits_never_touch_the_base_plan(example):
    before = example.programs.copy()
    apply_edits(example, [parse_override("Programs[HBM4].qualification_quarters+=3")])
    assert example.programs.equals(before)


@pytest.mark.parametrize("text, code, hint", [
    ("Progams[HBM4].qualification_quarters+=1", "unknown_sheet", 'did you mean "Programs"?'),
    ("Programs[HBM5].qualification_quarters+=1", "unknown_key", 'did you mean "HBM4"?'),
    ("Programs[HBM4].qualification_quaters+=1", "unknown_column", 'did you mean "qualification_quarters"?'),
    ("Settings.polcy=priority", "unknown_setting", 'did you mean "policy"?'),
    ("Programs[HBM4].qualification_quarters*=1.5", "not_an_integer", ""),
    ("Platforms[Vera Rubin].platform=x", "edit_of_id", ""),
    ("just words", "bad_override", "e.g. --set \"Programs[HBM4].qualification_quarters+=2\""),
])
def test_bad_overrides_are_input_errors_with_hints(example, text, code, hint):
    with pytest.raises(ValidationFailed) as exc:
        apply_edits(example, [parse_override(text)])
    (p,) = exc.value.problems
    assert p.code == code and p.hint == hint


def test_edit_out_of_range_points_at_the_cell(example):
    with pytest.raises(ValidationFailed) as exc:
        apply_edits(example, [parse_override("Products[HBM4-12H-36GB].die_yield*=2")])
    (p,) = exc.value.problems
    assert (p.code, p.sheet, p.row, p.column) == ("yield_out_of_range", "Products", 3, "die_yield")
    assert "1.6" in p.found and "die_yield*=2" in p.message


def test_set_on_a_missing_demand_pair_creates_it():
    p = plan(quarters=2)
    q = apply_edits(p, [parse_override("Demand[X|2026Q2].units=700")])
    assert q.demand.set_index("period")["units"].to_dict() == {"2026Q1": 2000, "2026Q2": 700}


def test_scenario_sheet_errors_fail_validation(tmp_path):
    def edit(wb):
        ws = wb["Scenarios"]
        ws.append(["bad one", "Programs", "HBM9", "qualification_quarters", "add", 1])

    bad = edit_workbook(EXAMPLE, tmp_path / "bad.xlsx", edit)
    res = CliRunner().invoke(main, ["validate", str(bad)])
    assert res.exit_code == 1
    assert "Scenarios row" in res.output and "HBM9" in res.output and 'did you mean "HBM4"?' in res.output


def test_solve_with_scenario_and_set(tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.xlsx"
    a = runner.invoke(main, ["solve", str(EXAMPLE), "--scenario", "HBM4 slips 1Q", "--json", "--no-insights",
                             "--no-explain", "-o", str(out)])
    b = runner.invoke(main, ["solve", str(EXAMPLE), "--set", "Programs[HBM4].qualification_quarters+=1", "--json",
                             "--no-insights", "--no-explain", "-o", str(out)])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ja, jb = json.loads(a.output), json.loads(b.output)
    assert ja["objective"] == pytest.approx(jb["objective"])
    base = json.loads(runner.invoke(main, ["solve", str(EXAMPLE), "--json", "--no-insights", "--no-explain",
                                           "-o", str(out)]).output)
    assert ja["objective"] < base["objective"]
    unknown = runner.invoke(main, ["solve", str(EXAMPLE), "--scenario", "HBM4 slip", "-o", str(out)])
    assert unknown.exit_code == 1 and 'did you mean "HBM4 slips 1Q"?' in unknown.output


def test_solve_all_scenarios_writes_one_report_each(tmp_path):
    src = tmp_path / "ex.xlsx"
    shutil.copy(EXAMPLE, src)
    res = CliRunner().invoke(main, ["solve", str(src), "--all-scenarios", "--no-insights", "--no-explain"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.glob("ex-report*.xlsx"))
    assert "ex-report.xlsx" in names and "ex-report-hbm4-slips-1q.xlsx" in names and len(names) == 7


def test_compare_base_with_itself_has_zero_deltas(tmp_path):
    out = tmp_path / "c.xlsx"
    res = CliRunner().invoke(main, ["compare", str(EXAMPLE), "--set", "Fabs[FAB-A|1b].wafer_cost*=1", "-o", str(out),
                                    "--workers", "1", "--no-explain"])
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out, read_only=True)
    rows = list(wb["KPIs"].iter_rows(values_only=True))
    delta_col = [i for i, h in enumerate(rows[0]) if str(h).startswith("Δ")]
    assert delta_col
    deltas = [r[delta_col[0]] for r in rows[2:] if r[delta_col[0]] is not None]
    assert deltas and all(abs(d) < 1e-6 * 1e10 for d in deltas)
    assert max(abs(d) for d in deltas) < 1e-3


def test_compare_all_scenarios_report(tmp_path):
    out = tmp_path / "c.xlsx"
    res = CliRunner().invoke(main, ["compare", str(EXAMPLE), "--all-scenarios", "-o", str(out), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "HBM4 slips 1Q: margin -$" in res.output
    wb = openpyxl.load_workbook(out)
    assert {"Overview", "KPIs", "Service", "Allocation", "Binding", "Changes", "Causes moved", "Charts"} <= set(
        wb.sheetnames)
    alloc = list(wb["Allocation"].iter_rows(values_only=True))
    header = alloc[0]
    slip = header.index("Δ HBM4 slips 1Q")
    rubin_2027q1 = [r for r in alloc[1:] if r[0] == "Vera Rubin" and r[1] == "2027Q1"]
    assert rubin_2027q1 and rubin_2027q1[0][slip] < 0  # the slip takes Rubin units away in 2027Q1
    assert len(wb["Charts"]._charts) == 2
    changes = list(wb["Changes"].iter_rows(values_only=True))
    assert ("HBM4 slips 1Q", "Programs", "HBM4", "qualification_quarters", 3, 4) in changes
    moved = [r for r in wb["Causes moved"].iter_rows(values_only=True) if r[0] == "HBM4 slips 1Q"]
    assert any(r[1] == "Vera Rubin" and r[2] == "rd_gate" and r[6] > 0 for r in moved)


def test_sweep_margin_never_increases_with_qualification_delay(tmp_path):
    out = tmp_path / "s.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Programs[HBM4].qualification_quarters",
                                    "--values", "0,1,2,3,4", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(openpyxl.load_workbook(out, read_only=True)["Points"].iter_rows(values_only=True))
    header = rows[0]
    q = header.index("Programs[HBM4].qualification_quarters")
    m = header.index("objective")
    points = sorted((r[q], r[m]) for r in rows[1:])
    assert [p[0] for p in points] == [0, 1, 2, 3, 4]
    margins = [p[1] for p in points]
    assert all(b <= a + 1e-6 * abs(a) for a, b in zip(margins, margins[1:], strict=False))


def test_sweep_range_and_grid(tmp_path):
    out = tmp_path / "g.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Backend[TSV-1].units_per_quarter",
                                    "--range", "0.9:1.1:0.1", "--op", "scale", "--param2",
                                    "Programs[HBM4].qualification_quarters", "--values2", "2,3", "-o", str(out),
                                    "--workers", "1"])
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out, read_only=True)
    grid = list(wb["Grid objective"].iter_rows(values_only=True))
    assert len(grid) == 2 + 3 and len(grid[1]) == 3  # title, header, 3 rows × (label + 2 values)
    # rows are the capacities solved (TSV-1 is 5,400,000 units a quarter), not the factors 0.9, 1.0, 1.1
    assert [r[0] for r in grid[2:]] == pytest.approx([4_860_000, 5_400_000, 5_940_000])
    assert {"Grid margin", "Grid fill_rate"} <= set(wb.sheetnames)
    bad = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Backend[TSV1].units_per_quarter",
                                    "--values", "1", "-o", str(out)])
    assert bad.exit_code == 1 and 'did you mean "TSV-1"?' in bad.output


def test_break_points_name_the_bottleneck_change(tmp_path):
    """Scaling TSV-1 from 0.5× to 3×: at some point TSV-1 stops binding."""
    out = tmp_path / "b.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Backend[TSV-1].units_per_quarter",
                                    "--values", "2700000,5400000,20000000", "-o", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    rows = list(openpyxl.load_workbook(out, read_only=True)["Break points"].iter_rows(values_only=True))
    assert any("TSV-1 stops binding" in str(r[2]) for r in rows[1:])


def test_montecarlo_is_reproducible_by_seed(example):
    a = montecarlo_cases(example, 5, seed=7)
    b = montecarlo_cases(example, 5, seed=7)
    c = montecarlo_cases(example, 5, seed=8)
    assert [x.params for x in a] == [x.params for x in b]
    assert [x.params for x in a] != [x.params for x in c]
    ra = run_batch(example, a, executor=LocalExecutor(1), quiet=True).results
    rb = run_batch(example, b, executor=LocalExecutor(2), quiet=True).results
    assert [r.kpis["objective"] for r in ra] == pytest.approx([r.kpis["objective"] for r in rb], rel=1e-9)


def test_montecarlo_report(tmp_path):
    out = tmp_path / "mc.xlsx"
    res = CliRunner().invoke(main, ["montecarlo", str(EXAMPLE), "--samples", "12", "--seed", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out)
    stats = {r[0]: r for r in wb["Statistics"].iter_rows(values_only=True)}
    p10, p50, p90 = stats["margin"][1:4]
    assert p10 <= p50 <= p90
    assert "fill_rate[Vera Rubin]" in stats
    assert 0 <= stats["fill_rate[Vera Rubin]"][5] <= 1
    assert len(wb["Histogram"]._charts) == 1


def test_montecarlo_without_uncertainty_sheet_is_an_input_error(tmp_path):
    from planner.report.template import write_input_workbook

    src = write_input_workbook(tmp_path / "p.xlsx", frames())
    res = CliRunner().invoke(main, ["montecarlo", str(src), "--samples", "3"])
    assert res.exit_code == 1 and "Uncertainty" in res.output


def test_failed_case_never_aborts_the_others(example):
    cases = [Case("ok 1"), Case("bad", [parse_override("Programs[HBM4].qualification_quarters*=1.5")]),
             Case("ok 2", [parse_override("Backend[TSV-1].units_per_quarter*=1.1")])]
    out = run_batch(example, cases, executor=LocalExecutor(1), quiet=True)
    assert [r.status for r in out.results] == ["optimal", "failed", "optimal"]
    assert "not_an_integer" in out.results[1].error


class _InterruptAfter:
    """An executor that finishes ``n`` cases and then behaves as if the user pressed Ctrl-C."""

    def __init__(self, n: int):
        self.n = n

    def map_unordered(self, base, cases, **kw):
        for i, case in enumerate(cases):
            if i == self.n:
                raise KeyboardInterrupt
            yield LocalExecutor(1).map_unordered(base, [case], **kw).__next__()


def test_interrupted_batch_keeps_finished_results(example, tmp_path):
    journal = tmp_path / "j.jsonl"
    cases = [Case(f"c{i}", [parse_override(f"Backend[TSV-1].units_per_quarter*={1 + i / 10}")]) for i in range(5)]
    out = run_batch(example, cases, executor=_InterruptAfter(2), journal=journal, quiet=True)
    assert out.interrupted
    assert [r.status for r in out.results] == ["optimal", "optimal", "interrupted", "interrupted", "interrupted"]
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert [x["name"] for x in lines] == ["c0", "c1"] and lines[0]["kpis"]["objective"] > 0


def test_interrupted_sweep_writes_what_finished(tmp_path, monkeypatch):
    import planner.cli as cli

    monkeypatch.setattr(cli, "_executor", lambda workers, scheduler: _InterruptAfter(2))
    out = tmp_path / "s.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Programs[HBM4].qualification_quarters",
                                    "--values", "0,1,2,3", "-o", str(out)])
    assert res.exit_code == 130
    assert "interrupted: 2 of 4 points finished" in res.output
    rows = list(openpyxl.load_workbook(out, read_only=True)["Points"].iter_rows(values_only=True))
    status = [r[1] for r in rows[1:]]
    assert status == ["optimal", "optimal", "interrupted", "interrupted"]
    assert Path(str(out) + ".journal.jsonl").exists()


def test_progress_bar_shows_count_rate_and_eta():
    stream = io.StringIO()
    bar = Progress(4, enabled=True, stream=stream)
    for i in range(4):
        bar.update(CaseResult(f"c{i}", "optimal" if i else "failed"))
    bar.close()
    text = stream.getvalue()
    assert "4/4 scenarios" in text and "/s" in text and "ETA" in text and "1 failed" in text
    quiet = io.StringIO()
    b2 = Progress(3, stream=quiet)  # StringIO is not a terminal: no bar
    b2.update(CaseResult("x", "optimal"))
    assert quiet.getvalue() == ""


EDITS = ["Demand[*|*].units*=1.15", "Fabs[F0|n1].wafers_per_quarter*=0.7", "Products[P0].price*=1.3",
         "Products[P0].die_yield*=0.9", "Backend[B1].units_per_quarter*=0.8", "Platforms[X0].shortfall_penalty+=500",
         "Programs[G0].qualification_quarters+=1", "Settings.backlog=true"]


@pytest.mark.parametrize("seed", range(4))
def test_fast_edit_path_equals_full_revalidation(seed):
    from test_model import random_frames

    from planner.io.load import plan_from_frames

    p = plan_from_frames(random_frames(seed))
    for text in EDITS[:6]:
        assert_same_lp(apply_edits(p, [parse_override(text)]), apply_edits(p, [parse_override(text)], revalidate=True))


@pytest.mark.parametrize("seed", range(4))
def test_warm_resolves_match_cold_solves(seed):
    """The kept-model path (bounds, costs, coefficients changed in place) gives the cold solve's optimum,
    case after case, including structural edits that force a rebuild."""
    from test_model import random_frames

    from planner import api
    from planner.io.load import plan_from_frames
    from planner.solve.warm import WarmStarter

    p = plan_from_frames(random_frames(seed))
    inc = WarmStarter(p)
    for text in EDITS + EDITS[:3]:
        q = apply_edits(p, [parse_override(text)])
        _, warm = inc.solve(q)
        cold = api.run(q).solution
        assert warm.status == cold.status
        assert warm.objective == pytest.approx(cold.objective, rel=1e-7, abs=1e-3), text
    assert inc.warm >= 4


def test_warm_results_do_not_depend_on_case_order(example):
    """Each warm solve starts from the base basis, so the order of cases (which differs between local
    processes and a cluster) cannot change any number."""
    from planner.solve.warm import WarmStarter

    edits = [parse_override(t) for t in ("Backend[TSV-1].units_per_quarter*=0.9", "Demand[*|*].units*=1.1",
                                         "Products[HBM4-12H-36GB].die_yield*=0.95")]
    plans = [apply_edits(example, [e]) for e in edits]

    def served(order):
        inc = WarmStarter(example)
        out = {}
        for i in order:
            model, sol = inc.solve(plans[i])
            out[i] = sol.x[model.y["col"].to_numpy()].tobytes()
        return out

    assert served([0, 1, 2]) == served([2, 0, 1])
