"""The hedged plan (issue 21): a two-stage stochastic LP over the Uncertainty scenarios, its value (VSS, EVPI) and
its workbook. Answers derived by hand in the docstrings; properties on generated plans; every Overview sentence
recomputed from the workbook's own tables."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from builders import frames
from click.testing import CliRunner
from conftest import EXAMPLE, ROOT

from planner import api
from planner.analysis.hedge import (
    EF_MAX_COLUMNS,
    HedgeError,
    SolveOptions,
    evaluate_scenario,
    readiness_by_scenario,
    scenario_set,
    solve_hedge,
    weighted_quantile,
)
from planner.cli import main
from planner.io.generate import generate_frames
from planner.io.load import load_plan, plan_from_frames
from planner.io.problems import Code, ValidationFailed
from planner.io.scenarios import apply_edits
from planner.model.hedge import build_extensive_form, build_scenario_model
from planner.model.sets import derive_sets
from planner.pipeline import run_plan
from planner.report.hedge import difference_sentence, overview_sentences

TOL = 1e-6


def slip_rows(values: str = "0,1", probabilities: str = "0.5,0.5") -> pd.DataFrame:
    return pd.DataFrame([{"name": "R slip", "sheet": "Programs", "key": "R", "column": "qualification_quarters",
                          "distribution": "discrete", "op": "add", "values": values, "probabilities": probabilities}])


def risk_start_frames(price: float = 10.0, unit_cost: float = 1.0, wafer_cost: float = 20.0, demand: float = 600.0,
                      development: int = 1) -> dict:
    """The plan of :func:`risk_start_plan` without its Uncertainty sheet; ``development`` quarters of program R."""
    return frames(quarters=3, settings={"risk_starts": True},
                  programs=[{"program": "R", "start_period": "2026Q1", "development_quarters": development,
                             "qualification_quarters": 0}],
                  products=[{"program": "R", "cycle_quarters": 1, "price": price, "unit_cost": unit_cost}],
                  fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": wafer_cost}],
                  fab_capacity=[{"fab": "F", "node": "n1", "period": "2026Q2", "wafers": 0}],
                  demand=[{"platform": "X", "period": "2026Q2", "units": demand}])


def risk_start_plan(price: float = 10.0, unit_cost: float = 1.0, wafer_cost: float = 20.0, demand: float = 600.0):
    """Program R is ready in quarter 1 (2026Q2) or quarter 2 (2026Q3), probability ½ each; risk starts allowed.

    Product P: cycle 1 quarter, g = 10 good units per wafer, price π, unit cost μ, wafer cost ω, no holding cost.
    Fab F: 100 wafers per quarter, but none in 2026Q2. Platform X (1 unit of P each) wants D units in 2026Q2 only.
    Horizon 3 quarters; commit window K = 1 (the longest cycle time): the 2026Q1 starts are the first stage.

    - Ready in Q1 (A): a 2026Q1 start is a risk start (ready − cycle = 0); it lands in 2026Q2 and ships:
      each wafer earns g(π − μ) − ω.
    - Ready in Q2 (B): a 2026Q1 start is early (its own first start is 2026Q2); it lands in 2026Q2 and may not ship
      before 2026Q3 (`hold_until_ready`), when nobody wants it: it is left unassembled (`excess_output`, unit cost
      not spent) and each wafer costs ω.
    - No recourse helps: 2026Q2 has no capacity and a 2026Q3 start would land after the horizon.

    So each of the first D/g wafers is worth ½ g(π − μ) − ω in expectation, every further one −ω in both:
    w* = D/g if ½ g(π − μ) > ω, else 0; RP = w* (½ g(π − μ) − ω).
    The average scenario (slip ½, rounded half up to 1) is ready in Q2: its plan cannot start in 2026Q1 and
    2026Q2 has no capacity, so it starts nothing: EEV = 0, VSS = RP.
    Perfect foresight: A starts D/g wafers (D/g · (g(π − μ) − ω) if positive), B none: WS = ½ max(0, D(π − μ) − ω D/g).
    """
    f = risk_start_frames(price, unit_cost, wafer_cost, demand)
    f["Uncertainty"] = slip_rows()
    return plan_from_frames(f)


def hedge(plan, **kw):
    samples, seed = kw.pop("samples", 200), kw.pop("seed", 1)
    return solve_hedge(plan, scenario_set(plan, samples, seed), **kw)


# ---- hand-solved -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_risk_starts_hedged_quantity_in_closed_form(solver):
    """π = 10, μ = 1, ω = 20, D = 600: ½·10·9 = 45 > 20, so w* = 60 wafers; RP = 60·25 = 1,500; EEV = 0 so
    VSS = 1,500; WS = ½·(600·9 − 20·60) = 2,100, EVPI = 600. HiGHS and CBC (through PuLP) agree."""
    res = hedge(risk_start_plan(), opts=SolveOptions(solver))
    assert res.summary["solver"] == solver
    s = res.summary
    assert s["status"] == "optimal" and s["scenarios"] == 2 and s["scenario_mode"] == "exact"
    assert res.commit[["fab", "product", "period"]].values.tolist() == [["F", "P", "2026Q1"]]
    assert res.commit["wafers"].iloc[0] == pytest.approx(60)
    assert res.commit["risk_probability"].iloc[0] == pytest.approx(1.0)  # ready in Q1 or Q2, both after Q1
    assert s["expected_objective"] == pytest.approx(1500)
    assert s["average_plan_objective"] == pytest.approx(0)
    assert s["vss"] == pytest.approx(1500) and s["vss"] > 0
    assert s["perfect_foresight_objective"] == pytest.approx(2100)
    assert s["evpi"] == pytest.approx(600)
    tab = res.table.set_index("scenario")
    # A ships all 600 in 2026Q2; B's early output waits and is never shipped
    assert tab.loc["R slip=0", "objective"] == pytest.approx(60 * (10 * 9 - 20))
    assert tab.loc["R slip=1", "objective"] == pytest.approx(-60 * 20)
    assert tab.loc["R slip=0", "fill_rate"] == pytest.approx(1.0)
    assert tab.loc["R slip=1", "fill_rate"] == pytest.approx(0.0)
    d = res.differences
    assert d[["kind", "item", "period"]].values.tolist() == [["wafers", "P", "2026Q1"]]
    assert d["difference"].iloc[0] == pytest.approx(60)


def test_no_scenario_as_ready_as_the_base():
    """The same closed form when the base plan's program is ready in Q0 and the Uncertainty row slips it by 1 or
    2 quarters (the issue's headline case: every outcome later than the data say). Found by review: the first
    stage was built from the base plan, whose commit window has a start no scenario allows."""
    fr = risk_start_frames(development=0)
    fr["Uncertainty"] = slip_rows("1,2")
    s = hedge(plan_from_frames(fr)).summary
    assert s["status"] == "optimal" and s["scenarios"] == 2
    assert s["expected_objective"] == pytest.approx(1500)
    assert s["vss"] == pytest.approx(1500) and s["evpi"] == pytest.approx(600)
    fr["Uncertainty"] = slip_rows("1", "1")  # a certain slip: one scenario, nothing to hedge
    s = hedge(plan_from_frames(fr)).summary
    assert s["status"] == "optimal" and s["scenarios"] == 1
    assert s["vss"] == pytest.approx(0, abs=TOL) and s["evpi"] == pytest.approx(0, abs=TOL)


def test_a_draw_that_adds_below_the_column_minimum_is_kept_in_range():
    """A slip of −2 or 0 quarters added to a development of 1 quarter: the −2 draw means 0 quarters (the column's
    minimum), not an invalid plan that stops the hedge (found by review). Then R is ready in Q0 or Q1; with risk
    starts a 2026Q1 start lands in 2026Q2 and ships in both, so each scenario starts D/g = 60 wafers and earns
    60·(10·9 − 20) = 4,200, and so does the hedged plan: VSS = EVPI = 0. Monte Carlo draws are kept in range alike."""
    fr = risk_start_frames(development=1)
    fr["Uncertainty"] = pd.DataFrame([{"name": "R early", "sheet": "Programs", "key": "R",
                                       "column": "development_quarters", "distribution": "discrete", "op": "add",
                                       "values": "-2,0", "probabilities": "0.5,0.5"}])
    plan = plan_from_frames(fr)
    s = hedge(plan).summary
    assert s["status"] == "optimal" and s["scenarios"] == 2
    assert s["expected_objective"] == pytest.approx(4200)
    assert s["vss"] == pytest.approx(0, abs=TOL) and s["evpi"] == pytest.approx(0, abs=TOL)
    from planner.analysis.whatif import montecarlo_cases

    cases = montecarlo_cases(plan, 20, seed=1)
    assert {c.params["R early"] for c in cases} == {-2.0, 0.0}  # the draws themselves are reported as drawn
    for c in cases:
        edited = apply_edits(plan, c.edits)
        assert edited.programs["development_quarters"].iloc[0] == (0 if c.params["R early"] < 0 else 1)


def test_risk_starts_not_worth_it_below_the_threshold():
    """π = 4.5: ½·10·3.5 = 17.5 < ω = 20, so w* = 0 and RP = 0 = EEV (VSS = 0); perfect foresight still starts
    60 wafers when ready in Q1: WS = ½·(600·3.5 − 20·60) = 450 = EVPI."""
    res = hedge(risk_start_plan(price=4.5))
    s = res.summary
    assert res.commit.empty
    assert s["expected_objective"] == pytest.approx(0, abs=TOL)
    assert s["vss"] == pytest.approx(0, abs=TOL)
    assert s["evpi"] == pytest.approx(450)
    assert res.differences.empty


def test_a_scenario_infeasible_on_its_own_is_named(tmp_path):
    """min_fill = 1 on X: when R is ready only in 2026Q3 nothing can serve X's 2026Q2 demand, so that scenario is
    infeasible even knowing its outcome, and no plan serves both. The workbook says so; exit 1."""
    from planner.report.template import write_input_workbook

    f = frames(quarters=3, settings={"risk_starts": True},
               programs=[{"program": "R", "start_period": "2026Q1", "development_quarters": 1,
                          "qualification_quarters": 0}],
               products=[{"program": "R", "cycle_quarters": 1, "price": 10, "unit_cost": 1}],
               platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0, "min_fill": 1.0}],
               fab_capacity=[{"fab": "F", "node": "n1", "period": "2026Q2", "wafers": 0}],
               demand=[{"platform": "X", "period": "2026Q2", "units": 600}])
    f["Uncertainty"] = slip_rows()
    src = write_input_workbook(tmp_path / "minfill.xlsx", f)
    out = tmp_path / "minfill-hedge.xlsx"
    r = CliRunner().invoke(main, ["hedge", str(src), "-o", str(out)])
    assert r.exit_code == 1, r.output
    assert "No plan to commit was found (solver status of the hedged problem: infeasible)." in r.output
    assert "1 of 2 scenarios are infeasible on their own (even knowing the outcome): R slip=1." in r.output
    got = read_back(out)
    summary = dict(zip(got["Summary"]["metric"], got["Summary"]["value"], strict=True))
    assert summary["status"] == "infeasible" and summary["expected_objective"] is None
    assert got["overview"] == overview_sentences(summary, got["Statistics"], pd.DataFrame(columns=["sentence"]),
                                                 got["Scenarios"])
    assert "The average scenario on its own is infeasible" not in r.output  # VSS is moot when nothing is feasible


def test_average_plan_that_cannot_be_carried_out_makes_vss_infinite(tmp_path):
    """R is ready in 2026Q2 for sure; fab F has 100 or 50 wafers per quarter (probability ½ each). The average
    scenario (75 wafers) starts D/g = 60 wafers in 2026Q1: more than F has in the 50-wafer scenario, so the
    average plan cannot be carried out there (EEV = −∞, VSS infinite). The hedged plan starts 50: RP = 50·70 =
    3,500; perfect foresight 60·70 or 50·70: WS = 3,850, EVPI = 350."""
    from planner.report.template import write_input_workbook

    f = risk_start_frames(development=1)
    f["Uncertainty"] = pd.DataFrame([{"name": "F capacity", "sheet": "Fabs", "key": "F|n1",
                                      "column": "wafers_per_quarter", "distribution": "discrete", "op": "scale",
                                      "values": "1,0.5", "probabilities": "0.5,0.5"}])
    res = hedge(plan_from_frames(f))
    s = res.summary
    assert res.commit["wafers"].sum() == pytest.approx(50)
    assert s["expected_objective"] == pytest.approx(3500) and s["evpi"] == pytest.approx(350)
    assert math.isinf(s["vss"]) and s["average_plan_infeasible_scenarios"] == 1
    assert res.failed["status"].tolist() == ["average_plan: infeasible"]
    src = write_input_workbook(tmp_path / "cap.xlsx", f)
    out = tmp_path / "cap-hedge.xlsx"
    r = CliRunner().invoke(main, ["hedge", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert ("The plan made for the average scenario cannot be carried out in 1 of 2 scenarios (its committed starts "
            "or expansions break a capacity or min_fill requirement there)") in r.output
    got = check_workbook(out)
    assert "Failed" in got["sheetnames"]


def test_early_output_cannot_ship_before_ready():
    """With the commit-window start fixed at 60 wafers, scenario B (ready 2026Q3) ships nothing in 2026Q2 although
    the output lands there: its inventory at the end of 2026Q2 covers all 600 units or they are left unassembled."""
    plan = risk_start_plan()
    scen = scenario_set(plan)
    lo, _ = readiness_by_scenario(plan, scen.cases)
    b = build_scenario_model(apply_edits(plan, scen.cases[1].edits), "B", 0.5, lo.min(axis=0), 1)
    assert "hold_until_ready" in b.row_labels and len(b.early) == 1
    got = evaluate_scenario(b, {"fixed": np.array([60.0])}, SolveOptions())
    status, x = got["fixed"]
    assert status == "optimal"
    shipped = x[b.y[1]].sum()
    assert shipped == pytest.approx(0, abs=TOL)


def test_closest_commitment_picks_the_optimum_nearest_the_average_plan():
    """Two fabs with the same node and wafer cost are perfect substitutes: 60 wafers at F1 or at F2 (or any split)
    are all optimal. Whatever split the solver returns, the stage moves to the optimum closest to a target split
    (the mirror image), keeping the objective: a difference the report names is never a free choice."""
    from planner.analysis.hedge import _closest_commitment, _run

    f = frames(quarters=3, settings={"risk_starts": True},
               programs=[{"program": "R", "start_period": "2026Q1", "development_quarters": 1,
                          "qualification_quarters": 0}],
               products=[{"program": "R", "cycle_quarters": 1, "price": 10, "unit_cost": 1}],
               fabs=[{"fab": "F1", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": 20},
                     {"fab": "F2", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": 20}],
               fab_capacity=[{"fab": fab, "node": "n1", "period": "2026Q2", "wafers": 0} for fab in ("F1", "F2")],
               demand=[{"platform": "X", "period": "2026Q2", "units": 600}])
    f["Uncertainty"] = slip_rows()
    plan = plan_from_frames(f)
    scen = scenario_set(plan)
    lo, _ = readiness_by_scenario(plan, scen.cases)
    models = [build_scenario_model(apply_edits(plan, c.edits), c.name, p, lo.min(axis=0), 1)
              for c, p in zip(scen.cases, scen.probabilities, strict=True)]
    ef = build_extensive_form(models)
    session, res = _run(ef.lp, SolveOptions(method="simplex"))
    first = res.x[ef.first]
    assert list(models[0].keys["fab"]) == ["F1", "F2"] and first.sum() == pytest.approx(60)
    target = first[::-1].copy() if abs(first[0] - first[1]) > 1 else np.array([45.0, 15.0])
    tie = _closest_commitment(session, ef, res, target)
    np.testing.assert_allclose(tie.x[ef.first], target, atol=1e-6)
    assert tie.objective == pytest.approx(res.objective, rel=1e-9)


# ---- no uncertainty, one scenario --------------------------------------------------------------------------------
def _single_scenario(f: dict) -> dict:
    """The plan with an Uncertainty sheet whose only row cannot change anything (value 0 added, probability 1)."""
    prog = f["Programs"]["program"].iloc[0]
    f = dict(f)
    f["Uncertainty"] = pd.DataFrame([{"name": "no slip", "sheet": "Programs", "key": prog,
                                      "column": "qualification_quarters", "distribution": "discrete", "op": "add",
                                      "values": "0", "probabilities": "1"}])
    return f


def _solve_vs_hedge(plan, commit_quarters=None):
    run = run_plan(plan)
    res = hedge(plan, commit_quarters=commit_quarters)
    return run, res


def test_no_uncertainty_hedged_equals_deterministic(example_frames):
    """One scenario: the hedged plan is `planner solve`'s plan, VSS = EVPI = 0 (every plan is the same plan)."""
    plan = plan_from_frames(_single_scenario(example_frames))
    run, res = _solve_vs_hedge(plan, commit_quarters=4)
    s = res.summary
    assert s["scenarios"] == 1
    assert s["expected_objective"] == pytest.approx(run.results.summary["objective"], rel=1e-9)
    assert s["vss"] == pytest.approx(0, abs=1e-6 * abs(s["expected_objective"]))
    assert s["evpi"] == pytest.approx(0, abs=1e-6 * abs(s["expected_objective"]))
    assert res.differences.empty


def test_identical_draws_merge_into_one_scenario(example_frames):
    """A triangular(1, 1, 1) scale draws the same number every time: 20 draws are one scenario of probability 1."""
    f = dict(example_frames)
    f["Uncertainty"] = pd.DataFrame([{"name": "demand", "sheet": "Demand", "key": "Vera Rubin|*", "column": "units",
                                      "distribution": "triangular", "op": "scale", "p1": 1, "p2": 1, "p3": 1}])
    scen = scenario_set(plan_from_frames(f), samples=20, seed=3)
    assert scen.mode == "sampled" and len(scen.cases) == 1 and scen.draws == 20
    assert scen.probabilities.tolist() == [1.0]
    assert "19 identical draws merged" in scen.describe()


@pytest.mark.parametrize("seed,K", [(1, None), (2, 3), (3, 1), (4, 5)])
def test_one_scenario_equals_planner_solve_on_generated_plans(seed, K):
    """Property: with one scenario the extensive form is the deterministic LP itself (same columns and rows in the
    same order), so the objective and every wafer start equal `planner solve`'s."""
    plan = plan_from_frames(_single_scenario(generate_frames(8, 10, 3, 8, seed=seed)))
    run, res = _solve_vs_hedge(plan, commit_quarters=K)
    assert res.summary["expected_objective"] == pytest.approx(run.results.summary["objective"], rel=1e-9)
    solve_ws = run.results.wafer_starts.set_index(["fab", "node", "product", "period"])["wafers"].sort_index()
    hedge_ws = res.expected_starts.set_index(["fab", "node", "product", "period"])["expected_wafers"].sort_index()
    assert len(solve_ws) > 0
    pd.testing.assert_series_equal(solve_ws, hedge_ws, check_names=False, check_index_type=False, rtol=1e-9)
    window = set(plan.periods[:res.commit_quarters])
    in_window = solve_ws[solve_ws.index.get_level_values("period").isin(window)]
    commit = res.commit.set_index(["fab", "node", "product", "period"])["wafers"].sort_index()
    pd.testing.assert_series_equal(in_window, commit, check_names=False, check_index_type=False, rtol=1e-9)


def test_one_scenario_lp_is_the_deterministic_lp(example, example_frames):
    """The arrays themselves: one-scenario extensive form = build_model's LP (matrix, bounds, objective)."""
    from planner.model.build import build_model

    scen = scenario_set(plan_from_frames(_single_scenario(example_frames)))
    lo, _ = readiness_by_scenario(example, scen.cases)
    sm = build_scenario_model(example, "only", 1.0, lo.min(axis=0), 4, excess=False)
    ef = build_extensive_form([sm]).lp
    lp = build_model(example).lp
    assert (ef.matrix() != lp.matrix()).nnz == 0
    for a, b in zip(ef.bounds(), lp.bounds(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ef.objective(), lp.objective())


# ---- properties on random plans ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,K", [(11, 2), (12, 3), (13, 1), (14, 4), (15, 2), (16, 3)])
def test_vss_and_evpi_are_never_negative(seed, K):
    """Properties on generated plans (their Uncertainty: normal demand, a discrete slip): VSS ≥ 0, EVPI ≥ 0, every
    scenario's perfect-foresight objective ≥ its objective under the hedged plan, and the hedged first stage
    evaluated in each scenario on its own adds up to the extensive form's optimum (an independent decomposition)."""
    plan = plan_from_frames(generate_frames(6, 8, 3, 8, seed=seed))
    res = hedge(plan, samples=8, seed=seed, commit_quarters=K)
    s = res.summary
    scale = 1e-7 * max(1.0, abs(s["expected_objective"]))
    assert s["status"] == "optimal" and s["scenarios"] > 1
    assert s["vss"] is not None and np.isfinite(s["vss"]), "the average plan must be feasible here: pick another case"
    assert s["vss"] >= -scale, s["vss"]
    assert s["evpi"] >= -scale, s["evpi"]
    tab = res.table
    assert (tab["perfect_foresight_objective"] >= tab["objective"] - scale).all()
    # decomposition: fix the hedged first stage, solve each scenario alone, weight by probability
    scen = res.scenarios
    lo, _ = readiness_by_scenario(plan, scen.cases)
    first = _hedged_first(res, plan, scen, lo.min(axis=0), K)
    total = 0.0
    for case, p in zip(scen.cases, scen.probabilities, strict=True):
        sm = build_scenario_model(apply_edits(plan, case.edits), case.name, p, lo.min(axis=0), K)
        st, x = evaluate_scenario(sm, {"h": first}, SolveOptions())["h"]
        assert st == "optimal"
        total += p * (sm.objective() @ x)
    assert total == pytest.approx(s["expected_objective"], rel=1e-6)


def _hedged_first(res, plan, scen, commit_lo, K):
    """The hedged first stage in canonical order, rebuilt from the Commit and Expansions tables."""
    sm = build_scenario_model(plan, "ref", 1.0, commit_lo, K)
    keys = sm.keys.copy()
    periods = plan.periods
    c = res.commit.assign(t=[periods.index(p) for p in res.commit["period"]], kind="wafers")
    e = res.expansions.assign(t=[periods.index(p) for p in res.expansions["decided"]], kind="expansion")
    exp = derive_sets(plan).expansions
    e["e"] = [int(exp.index[exp["_row"] == o][0]) for o in e["option"]]
    v = np.zeros(len(keys))
    for i, k in enumerate(keys.itertuples()):
        if k.kind == "wafers":
            m = c[(c["fab"] == k.fab) & (c["node"] == k.node) & (c["product"] == k.product) & (c["t"] == k.t)]
            v[i] = m["wafers"].sum()
        else:
            m = e[(e["e"] == k.e) & (e["t"] == k.t)]
            v[i] = m["wafers_per_quarter"].sum()
    return v


# ---- scenarios ----------------------------------------------------------------------------------------------------
def test_exact_scenarios_are_the_cartesian_product():
    """Two independent discrete rows (2 and 3 values) give 6 scenarios with product probabilities; the average
    scenario uses the expected values, rounded half up for whole-number columns."""
    plan = risk_start_plan()
    rows = pd.concat([slip_rows("0,1", "0.3,0.7"),
                      pd.DataFrame([{"name": "demand", "sheet": "Demand", "key": "X|2026Q2", "column": "units",
                                     "distribution": "discrete", "op": "scale", "values": "0.5,1,1.5",
                                     "probabilities": "0.2,0.5,0.3"}])], ignore_index=True)
    plan.uncertainty = rows.assign(_row=[2, 3], p1=np.nan, p2=np.nan, p3=np.nan)
    scen = scenario_set(plan, samples=6)
    assert scen.mode == "exact" and len(scen.cases) == 6
    probs = dict(zip([c.name for c in scen.cases], scen.probabilities, strict=True))
    assert probs["R slip=1; demand=1.5"] == pytest.approx(0.7 * 0.3)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert scen.average.params["R slip"] == 1  # 0.7 → 1
    assert scen.average.params["demand"] == pytest.approx(0.2 * 0.5 + 0.5 + 0.3 * 1.5)
    sampled = scenario_set(plan, samples=5, seed=2)  # 6 combinations > 5: drawn instead
    assert sampled.mode == "sampled" and sampled.draws == 5


def test_triangular_with_low_equal_high_draws_that_value():
    """Regression: validation allows triangular(1, 1, 1) (a fixed value) but numpy refuses left == right; Monte
    Carlo and the hedge crashed with a traceback."""
    from planner.io.uncertainty import draw

    row = {"distribution": "triangular", "p1": 1.0, "p2": 1.0, "p3": 1.0}
    assert draw(row, 4, np.random.default_rng(0)).tolist() == [1.0] * 4


def test_weighted_quantile_is_the_inverse_distribution():
    """Values 1, 2, 3 with probabilities 0.05, 0.5, 0.45: P10 = 2 (0.05 < 0.1 ≤ 0.55), P50 = 2, P90 = 3."""
    v, p = np.array([3.0, 1.0, 2.0]), np.array([0.45, 0.05, 0.5])
    assert [weighted_quantile(v, p, q) for q in (0.1, 0.5, 0.9)] == [2.0, 2.0, 3.0]


# ---- refusals -----------------------------------------------------------------------------------------------------
def test_structural_uncertainty_is_refused_by_row(example_frames):
    f = dict(example_frames)
    f["Uncertainty"] = pd.DataFrame([{"name": "cycle", "sheet": "Products", "key": "HBM4-12H-36GB",
                                      "column": "cycle_quarters", "distribution": "discrete", "op": "add",
                                      "values": "0,1", "probabilities": "0.5,0.5"}])
    plan = plan_from_frames(f)
    with pytest.raises(ValidationFailed) as exc:
        scenario_set(plan)
    (p,) = exc.value.problems
    assert p.code == Code.STRUCTURAL_UNCERTAINTY and p.sheet == "Uncertainty" and p.row == 2
    assert "Products.cycle_quarters" in p.found


def test_cli_refuses_other_policies_and_missing_uncertainty(tmp_path, example_frames):
    from planner.report.template import write_input_workbook

    f = dict(example_frames)
    f["Settings"] = pd.concat([f["Settings"][f["Settings"]["key"] != "policy"],
                               pd.DataFrame([{"key": "policy", "value": "priority"}])], ignore_index=True)
    src = write_input_workbook(tmp_path / "prio.xlsx", f)
    r = CliRunner().invoke(main, ["hedge", str(src), "--samples", "4"])
    assert r.exit_code == 1
    assert "error: planner hedge maximises the expected objective of the 'margin' policy" in r.output
    assert "Traceback" not in r.output
    g = dict(example_frames)
    del g["Uncertainty"]
    src = write_input_workbook(tmp_path / "none.xlsx", g)
    r = CliRunner().invoke(main, ["hedge", str(src)])
    assert r.exit_code == 1 and "[missing_sheet]" in r.output and "Uncertainty" in r.output
    r = CliRunner().invoke(main, ["hedge", str(EXAMPLE), "--commit-quarters", "13", "-o", str(tmp_path / "x.xlsx")])
    assert r.exit_code == 1 and "between 1 and the horizon (12 quarters)" in r.output


def test_hedge_error_for_commit_window_beyond_horizon():
    with pytest.raises(HedgeError, match="between 1 and the horizon"):
        hedge(risk_start_plan(), commit_quarters=4)


# ---- the workbook: every sentence from the written tables --------------------------------------------------------
def read_back(path: Path) -> dict:
    wb = openpyxl.load_workbook(path, read_only=True)

    def frame(name: str) -> pd.DataFrame:
        rows = list(wb[name].iter_rows(values_only=True))
        return pd.DataFrame(rows[1:], columns=rows[0]) if rows and rows[0][0] is not None else pd.DataFrame()

    out = {name: frame(name) for name in ("Summary", "Commit", "Expansions", "Differences", "Statistics",
                                          "Scenarios", "ExpectedStarts")}
    ws = wb["Overview"]
    texts = [r[0] for r in ws.iter_rows(min_row=5, max_col=1, values_only=True)]
    out["overview"] = texts[:texts.index(None)]
    out["sheetnames"] = wb.sheetnames
    return out


def check_workbook(path: Path) -> dict:
    """Contract rows and columns, then every Overview sentence and figure recomputed from the written tables."""
    got = read_back(path)
    summary = dict(zip(got["Summary"]["metric"], got["Summary"]["value"], strict=True))
    for row in ("expected_objective", "expected_margin", "vss", "evpi", "scenarios", "status", "solver",
                "input_sha256"):
        assert row in summary, row
    assert list(got["Commit"].columns[:5]) == ["fab", "node", "product", "period", "wafers"]
    tab, stats, diffs = got["Scenarios"], got["Statistics"], got["Differences"]
    if diffs.empty or "sentence" not in diffs:
        diffs = pd.DataFrame(columns=["sentence"])
    p = tab["probability"].astype(float)
    assert p.sum() == pytest.approx(1.0)
    eo = float(summary["expected_objective"])
    assert eo == pytest.approx((p * tab["objective"]).sum(), rel=1e-9)
    assert float(summary["expected_margin"]) == pytest.approx((p * (tab["revenue"] - tab["cost"])).sum(), rel=1e-9)
    cannot = tab["average_plan_status"] != "optimal"
    if cannot.any():  # the average plan cannot be carried out in some scenario: EEV = −∞
        assert math.isinf(float(summary["vss"])) and int(summary["average_plan_infeasible_scenarios"]) == cannot.sum()
    else:
        assert float(summary["vss"]) == pytest.approx(eo - (p * tab["average_plan_objective"]).sum(), rel=1e-9,
                                                      abs=1e-6 * abs(eo))
    assert float(summary["evpi"]) == pytest.approx((p * tab["perfect_foresight_objective"]).sum() - eo, rel=1e-9,
                                                   abs=1e-6 * abs(eo))
    st = stats.set_index("metric")
    thr = float(summary["threshold"])
    for col in [c for c in tab.columns if str(c).startswith("fill_rate[")]:
        v = tab[col].astype(float)
        ok = v.notna()
        if col in st.index:
            w = p[ok] / p[ok].sum()
            assert float(st.loc[col, "expected"]) == pytest.approx((w * v[ok]).sum(), rel=1e-9)
            assert float(st.loc[col, "P(below threshold)"]) == pytest.approx((w * (v[ok] < thr - 1e-12)).sum())
    assert float(st.loc["objective", "P50"]) == pytest.approx(weighted_quantile(tab["objective"].to_numpy(float),
                                                                                p.to_numpy(), 0.5))
    # the sentences, from the tables only: each Differences row's own, then the Overview's
    first, cur = str(summary["commit_window"]).split("–")[0], str(summary["currency"])
    for row in diffs.to_dict("records"):
        assert row["sentence"] == difference_sentence(row, first, cur)
    expected = overview_sentences(summary, stats, diffs, tab)
    assert got["overview"][:len(expected)] == expected
    return got


@pytest.fixture(scope="module")
def example_hedge(tmp_path_factory):
    d = tmp_path_factory.mktemp("hedge")
    src = d / "example.xlsx"
    shutil.copy(EXAMPLE, src)
    before = src.read_bytes()
    out = d / "hedge.xlsx"
    r = CliRunner().invoke(main, ["hedge", str(src), "--commit-quarters", "4", "--samples", "30", "--seed", "5",
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert src.read_bytes() == before  # the input is never modified
    return out, r.output


def test_example_workbook_sentences_recomputed(example_hedge):
    out, stdout = example_hedge
    got = check_workbook(out)
    assert {"Overview", "Summary", "Commit", "Expansions", "Differences", "Statistics", "Scenarios",
            "ExpectedStarts", "Charts", "Inputs"} <= set(got["sheetnames"])
    summary = dict(zip(got["Summary"]["metric"], got["Summary"]["value"], strict=True))
    assert summary["status"] == "optimal" and summary["scenarios"] == 30
    # margin is revenue − cost, not the objective: the example has shortfall penalties
    assert float(summary["expected_margin"]) - float(summary["expected_objective"]) == pytest.approx(
        float(summary["expected_shortfall_penalty"]), rel=1e-9)
    assert float(summary["expected_shortfall_penalty"]) > 0
    for line in got["overview"]:
        assert line in stdout
    assert not got["Commit"].empty and {"HBM3E-12H-36GB", "LPDDR5X-16GB"} <= set(got["Commit"]["product"])


@pytest.mark.parametrize("seed", [21, 22])
def test_generated_plan_workbook_sentences_recomputed(tmp_path, seed):
    """The same recomputation on generated plans (other names, sizes, expansions)."""
    from planner.report.template import write_input_workbook

    src = write_input_workbook(tmp_path / "gen.xlsx", generate_frames(7, 9, 4, 10, seed=seed))
    out = tmp_path / "gen-hedge.xlsx"
    r = CliRunner().invoke(main, ["hedge", str(src), "--commit-quarters", "3", "--samples", "12", "-o", str(out)])
    assert r.exit_code == 0, r.output
    check_workbook(out)


def test_json_summary(tmp_path):
    import json

    r = CliRunner().invoke(main, ["hedge", str(EXAMPLE), "--samples", "6", "--json", "-o", str(tmp_path / "h.xlsx")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["scenarios"] >= 1 and s["status"] == "optimal" and s["report"].endswith("h.xlsx")


# ---- plans too large for one extensive form ----------------------------------------------------------------------
def test_subsample_then_batch_evaluation(example):
    """With a column limit that fits 3 of 12 scenarios, the plan is optimised over 3 and evaluated in all 12:
    every scenario has figures under all three plans, EVPI ≥ 0 scenario by scenario, and the note says so."""
    per = build_scenario_model(example, "b", 1.0, np.zeros(len(example.products), int), 2).n_cols
    res = hedge(example, samples=12, seed=4, commit_quarters=2, ef_max_columns=3 * per + 10)
    s = res.summary
    assert s["status"] == "optimal" and s["extensive_form_scenarios"] == 3 and s["scenarios"] == 12
    assert res.table["objective"].notna().all() and res.table["average_plan_objective"].notna().all()
    assert (res.table["perfect_foresight_objective"] >= res.table["objective"] - 1e-6 * abs(
        s["expected_objective"])).all()
    from planner.report.hedge import headline

    assert any("the plan was optimised over 3 of them (the first draws" in n for n in headline(res))


def test_batch_on_worker_processes_equals_inline(example):
    """The per-scenario evaluation on two local worker processes gives the same numbers as inline."""
    from planner.batch import LocalExecutor

    kw = {"samples": 6, "seed": 9, "commit_quarters": 2, "ef_max_columns": 1_000}
    inline = api.hedge(example, executor=LocalExecutor(1), **kw)
    pool = api.hedge(example, executor=LocalExecutor(2), **kw)
    cols = ["scenario", "objective", "average_plan_objective", "perfect_foresight_objective"]
    pd.testing.assert_frame_equal(inline.table[cols], pool.table[cols])


# ---- docs and structure -------------------------------------------------------------------------------------------
def test_every_hedge_label_has_its_builder():
    """Each bold label of models/hedge.md is a `def add_<label>` in planner/model/hedge.py."""
    labels = set(re.findall(r"\*\*`([a-z_]+)`\*\*", (ROOT / "models" / "hedge.md").read_text()))
    assert {"commit_window", "excess_output", "hold_until_ready", "nonanticipativity", "closest_commitment"} <= labels
    source = (ROOT / "planner" / "model" / "hedge.py").read_text()
    missing = sorted(lab for lab in labels if not re.search(rf"^def add_{lab}\(", source, re.M))
    assert not missing, missing


def test_cli_help_shows_a_real_example_and_the_column_limit():
    out = CliRunner().invoke(main, ["hedge", "--help"], terminal_width=100).output
    assert "planner hedge inputs/example.xlsx --commit-quarters 4" in out
    assert f"{EF_MAX_COLUMNS:,}" in out


# ---- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example():
    return load_plan(EXAMPLE)


@pytest.fixture
def example_frames():
    from planner.io.example import example_frames as frames_of_the_example

    return frames_of_the_example()
