"""Work in progress (issue 19): wafers in flight before the horizon and starts committed inside it, against optima
derived by hand, and the WIP sheet's validation rules.

Unless a test says otherwise the plan is the builders' default (``tests/builders.py``): fab F/n1 with 100 wafers per
quarter at $20; product P gives 10 good units per wafer and sells at $10; platform X needs one P per unit, no penalty.
Here P has cycle_quarters 1 (a start in quarter s lands in s + 1) and unit_cost $1.
"""

from __future__ import annotations

import pytest
from builders import frames, plan

from planner import api
from planner.io.load import plan_from_frames
from planner.io.problems import Code, ValidationFailed

CYCLE1 = [{"cycle_quarters": 1, "unit_cost": 1}]
DEMAND = [{"platform": "X", "period": "2026Q1", "units": 500}, {"platform": "X", "period": "2026Q2", "units": 500}]


def wip_row(start: str, wafers: float, **kw) -> dict:
    return {"fab": "F", "node": "n1", "product": "P", "start_period": start, "wafers": wafers, **kw}


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_in_flight_wafers_land_with_unit_cost_but_no_wafer_cost(solver):
    """30 wafers started in 2025Q4 land in 2026Q1 as 300 units (10 per wafer): Q1 serves 300 of 500 (nothing started
    inside the horizon can land in Q1). Q2 needs 50 wafers started in Q1 (each earns 10·(10 − 1) − 20 = 70 > 0).
    Objective = revenue 800·10 − wafer cost 50·20 − unit cost (300 + 500)·1 = 8000 − 1000 − 800 = 6200: the in-flight
    wafers cost their unit cost only (their wafer cost is sunk) and use no Q1 fab capacity (Q1 starts 50 ≤ 100)."""
    run = api.run(plan(quarters=2, products=CYCLE1, demand=DEMAND, wip=[wip_row("2025Q4", 30)]), solver=solver)
    res = run.results
    assert res.summary["objective"] == pytest.approx(6200)
    assert res.summary["wafer_cost"] == pytest.approx(1000) and res.summary["unit_cost"] == pytest.approx(800)
    svc = res.service.set_index("period")["served"]
    assert svc.tolist() == pytest.approx([300, 500])
    sup = res.supply.set_index("period")
    assert sup.loc["2026Q1", "output_units"] == pytest.approx(300) and sup.loc["2026Q1", "wip_units"] == pytest.approx(300)
    assert res.wafer_starts["wafers"].sum() == pytest.approx(50)  # the in-flight wafers are not plan starts
    cap = res.capacity.set_index(["resource", "period"])
    assert cap.loc[("F/n1", "2026Q1"), "used"] == pytest.approx(50)
    assert res.summary["feasibility_check"] == "passed"


def test_in_flight_output_takes_the_ramp_factor_of_its_start_quarter_and_uses_the_back_end():
    """Program G is ready in 2026Q1 (quarter 0) with ramp [0.5, 1.0]. Wafers started in 2025Q4 (k = −1: the first
    factor, 0.5) give 30·10·0.5 = 150 units in Q1, and use 150 of back-end line B's 1,000 units that quarter."""
    p = plan(quarters=2, products=[{"cycle_quarters": 1, "program": "G", "backend": "B"}], demand=DEMAND,
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 0,
                        "qualification_quarters": 0}],
             ramp=[{"product": "P", "quarter": 0, "factor": 0.5}, {"product": "P", "quarter": 1, "factor": 1.0}],
             backend=[{"resource": "B", "units_per_quarter": 1000}], wip=[wip_row("2025Q4", 30)])
    res = api.run(p).results
    assert res.service.set_index("period").loc["2026Q1", "served"] == pytest.approx(150)
    cap = res.capacity.set_index(["resource", "period"])
    assert cap.loc[("B", "2026Q1"), "used"] == pytest.approx(150)


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_committed_start_is_a_lower_bound(solver):
    """80 wafers committed in 2026Q1 although Q2's 500 units need only 50: the plan starts 80 (800 units land in Q2,
    500 ship, 300 stay). Q1 gets nothing (no stock, cycle 1). Objective = 500·10 − 80·20 − 800·1 = 2600, against
    5000 − 50·20 − 500·1 = 3500 without the commitment: holding it costs the 30 extra wafers × (20 + 10·1) = 900."""
    kw = dict(quarters=2, products=CYCLE1, demand=DEMAND)
    free = api.run(plan(**kw), solver=solver).results
    held = api.run(plan(**kw, wip=[wip_row("2026Q1", 50), wip_row("2026Q1", 30)]), solver=solver).results  # two lots
    assert free.summary["objective"] == pytest.approx(3500)
    assert held.summary["objective"] == pytest.approx(2600)
    ws = held.wafer_starts
    assert ws[["period", "wafers", "committed"]].values.tolist() == [["2026Q1", pytest.approx(80), pytest.approx(80)]]


def test_committed_start_counts_against_fab_capacity():
    """Two products on F/n1 (100 wafers/quarter, cycle 0): Q committed at 70 wafers leaves 30 for P, whose platform
    would take all 100. P's platform X is served 300 of 1,000; Q's platform Y (wants 100 units) gets its 100 and
    the other 600 Q units are made and kept."""
    p = plan(quarters=1, products=[{}, {"product": "Q"}],
             platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0},
                        {"platform": "Y", "priority": 1, "shortfall_penalty": 0}],
             bom=[{"platform": "X", "option": "o", "product": "P", "units_per_platform": 1},
                  {"platform": "Y", "option": "o", "product": "Q", "units_per_platform": 1}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 1000},
                     {"platform": "Y", "period": "2026Q1", "units": 100}],
             wip=[{"fab": "F", "node": "n1", "product": "Q", "start_period": "2026Q1", "wafers": 70}])
    res = api.run(p).results
    svc = res.service.set_index("platform")["served"]
    assert svc["X"] == pytest.approx(300) and svc["Y"] == pytest.approx(100)


def test_example_has_no_shortfall_at_the_horizon_start():
    """The example's WIP (2025Q4 lots landing in 2026Q1) covers 2026Q1 demand: no platform is short in its first
    quarter, and nothing is blamed on the horizon start."""
    from conftest import EXAMPLE

    plan_ = api.load_workbook(EXAMPLE)
    assert len(plan_.wip) and (plan_.wip["start_period"] < plan_.settings.first_period).any()
    run, rep = api.analyse(plan_, insights=False, explain=True)
    svc = run.results.service
    assert svc.loc[svc["period"] == plan_.periods[0], "shortfall"].sum() == pytest.approx(0)
    causes = rep.causes
    assert not ((causes["cause"] == "horizon_start") | (causes["resource"] == "initial inventory")).any()
    assert run.results.supply["wip_units"].sum() > 0


# ---- validation ---------------------------------------------------------------------------------------------------
def problems(**kw) -> list:
    with pytest.raises(ValidationFailed) as exc:
        plan_from_frames(frames(**kw))
    return [p for p in exc.value.problems if p.severity == "error"]


def test_unknown_fab_node_and_product_are_named_with_a_hint():
    errs = problems(quarters=2, products=[{"product": "HBM4", "cycle_quarters": 1}],
                    bom=[{"platform": "X", "option": "o", "product": "HBM4", "units_per_platform": 1}],
                    fabs=[{"fab": "FAB-A", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": 20}],
                    wip=[wip_row("2025Q4", 10, fab="FAB-X", product="HBM4"),
                         wip_row("2025Q4", 10, fab="FAB-A", product="HMB4")])
    by_code = {p.code: p for p in errs}
    assert set(by_code) == {Code.UNKNOWN_FAB, Code.UNKNOWN_PRODUCT}
    assert by_code[Code.UNKNOWN_FAB].sheet == "WIP" and by_code[Code.UNKNOWN_FAB].row == 2
    assert 'did you mean "FAB-A"' in by_code[Code.UNKNOWN_FAB].hint
    assert by_code[Code.UNKNOWN_PRODUCT].row == 3 and 'did you mean "HBM4"' in by_code[Code.UNKNOWN_PRODUCT].hint


def test_product_not_made_on_that_node():
    errs = problems(quarters=2, products=[{"cycle_quarters": 1}, {"product": "Q", "node": "n2"}],
                    fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": 20},
                          {"fab": "F", "node": "n2", "wafers_per_quarter": 100, "wafer_cost": 20}],
                    wip=[wip_row("2025Q4", 10, node="n2")])
    (p,) = errs
    assert p.code == Code.WIP_WRONG_NODE and p.column == "node" and "'n1'" in p.expected


def test_output_landing_before_the_horizon_points_to_initial_inventory():
    """Cycle 1: a 2025Q3 start landed in 2025Q4, before the horizon: it is finished stock, not WIP."""
    (p,) = problems(quarters=2, products=CYCLE1, wip=[wip_row("2025Q3", 10)])
    assert p.code == Code.WIP_LANDS_BEFORE_HORIZON and p.column == "start_period"
    assert "initial_inventory" in p.hint and "2025Q4" in p.expected


def test_committed_start_above_capacity_is_refused():
    """F/n1 starts at most 100 wafers a quarter: two lots of 60 committed in 2026Q1 cannot both start."""
    (p,) = problems(quarters=2, products=CYCLE1, wip=[wip_row("2026Q1", 60), wip_row("2026Q1", 60)])
    assert p.code == Code.WIP_ABOVE_CAPACITY and "120" in p.found and "100" in p.expected


def test_committed_start_within_a_possible_expansion_is_allowed():
    """An expansion usable from 2026Q2 (lead 1) could add 50: 130 committed in 2026Q2 fits 100 + 50."""
    p = plan_from_frames(frames(quarters=3, products=CYCLE1, wip=[wip_row("2026Q2", 130)],
                                expansions=[{"fab": "F", "node": "n1", "lead_quarters": 1, "max_wafers_per_quarter": 50,
                                             "cost_per_wafer": 1, "earliest_period": "2026Q1"}]))
    res = api.run(p).results
    assert res.wafer_starts.set_index("period").loc["2026Q2", "wafers"] == pytest.approx(130)


def test_committed_start_the_rd_gate_forbids():
    """Program G is ready in 2026Q2: a committed 2026Q1 start of P cannot be; the hint names risk starts."""
    (p,) = problems(quarters=3, products=[{"cycle_quarters": 1, "program": "G"}],
                    programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                               "qualification_quarters": 0}], wip=[wip_row("2026Q1", 10)])
    assert p.code == Code.WIP_BEFORE_READY and "2026Q2" in p.message and "risk_starts" in p.hint


def test_starts_landing_after_the_horizon_are_ignored_with_a_warning():
    p = plan_from_frames(frames(quarters=2, products=CYCLE1, wip=[wip_row("2026Q2", 10), wip_row("2027Q1", 5)]))
    warns = [w for w in p.warnings if w.sheet == "WIP"]
    assert [w.code for w in warns] == [Code.PERIOD_OUTSIDE_HORIZON] * 2
    assert api.run(p).results.wafer_starts.empty


def test_in_flight_output_above_the_back_end_line_is_an_error_before_solving():
    """300 in-flight units land on line B (250 a quarter): no plan can finish them — an input error naming the rows."""
    p = plan(quarters=2, products=[{"cycle_quarters": 1, "backend": "B"}], demand=DEMAND,
             backend=[{"resource": "B", "units_per_quarter": 250}], wip=[wip_row("2025Q4", 30)])
    with pytest.raises(ValidationFailed) as exc:
        api.run(p)
    (prob,) = exc.value.problems
    assert prob.code == Code.WIP_ABOVE_BACKEND and prob.sheet == "WIP" and prob.row == 2 and "250" in prob.expected


def test_a_scenario_that_gates_a_commitment_makes_the_plan_infeasible_and_says_why():
    """A commitment valid in the base plan, after an edit that moves the program past it (an edit of a number skips
    the full re-validation): the plan is infeasible, and the diagnosis names the commitment and the R&D gate."""
    from planner.io.scenarios import Edit, apply_edits

    base = plan(quarters=3, products=[{"cycle_quarters": 1, "program": "G"}],
                programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 0,
                           "qualification_quarters": 0}], wip=[wip_row("2026Q1", 10)],
                demand=[{"platform": "X", "period": "2026Q3", "units": 100}])
    slipped = apply_edits(base, [Edit("Programs", "G", "qualification_quarters", "add", 1)])
    run = api.run(slipped)
    assert run.results.summary["status"] == "infeasible"
    (row,) = run.infeasibility.to_dict("records")
    assert row["requirement"] == "wip_committed" and row["period"] == "2026Q1"
    assert "R&D gate" in row["reason"] and "2026Q2" in row["reason"]


def test_template_documents_the_wip_sheet(tmp_path):
    import openpyxl

    from planner.report.template import write_template

    wb = openpyxl.load_workbook(write_template(tmp_path / "t.xlsx"))
    ws = wb["WIP"]
    header = {c.value: c.comment.text for c in ws[1]}
    assert list(header) == ["fab", "node", "product", "start_period", "wafers"]
    assert "in flight" in header["start_period"] and "committed" in header["start_period"]
    settings = [r[0].value for r in wb["Settings"].iter_rows(min_row=2)]
    assert "frozen_quarters" in settings


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_plans_with_wip_reconcile(seed):
    """`planner generate --wip` plans (lots in flight and committed on every line): the report's tables reconcile,
    every commitment is met, the Supply sheet's WIP units are the in-flight wafers × their good units per wafer, and
    back-end use counts them in the quarter they land."""
    import numpy as np

    from planner.analysis.pnl import pnl
    from planner.io.generate import generate_frames
    from planner.model.build import build_model
    from planner.periods import period_index

    p = plan_from_frames(generate_frames(10, 12, 5, 8, seed=seed, wip=True))
    first = p.settings.first_period
    assert (p.wip["start_period"] < first).any() and (p.wip["start_period"] == first).any()
    res = api.run(p).results
    assert res.summary["status"] == "optimal" and res.summary["feasibility_check"] == "passed"
    ws = res.wafer_starts.groupby(["fab", "node", "product", "period"])["wafers"].sum()
    committed = p.wip[p.wip["start_period"] >= first].groupby(["fab", "node", "product", "start_period"])["wafers"].sum()
    assert len(committed)
    for key, w in committed.items():
        assert ws.get(key, 0.0) >= w * (1 - 1e-9) - 1e-6, key
    ms = build_model(p).sets
    fly = p.wip[p.wip["start_period"] < first]
    prods = ms.products.set_index("product")
    expected = {}
    for r in fly.itertuples():
        s = period_index(r.start_period, first)
        m = int(prods.loc[r.product, "m"])
        g = float(ms.good_units_per_wafer(np.array([m]), np.array([s]))[0])
        key = (r.product, ms.periods[s + int(prods.loc[r.product, "cycle_quarters"])])
        expected[key] = expected.get(key, 0.0) + r.wafers * g
    got = res.supply.set_index(["product", "period"])["wip_units"]
    assert got.sum() == pytest.approx(sum(expected.values()), rel=1e-9)
    for key, v in expected.items():
        assert got[key] == pytest.approx(v, rel=1e-9)
    p_ = pnl(p, res)
    assert p_.totals()["memory_cost"] == pytest.approx(res.summary["cost"], rel=1e-9)


def test_in_flight_output_a_line_cannot_finish_is_diagnosed_when_a_scenario_makes_it_so():
    """A batch scenario (no pre-solve check) that halves back-end line B under 300 units of in-flight output: the
    plan is infeasible and the diagnosis names the wafers in flight, the line, its capacity and what lands there."""
    from planner.analysis.infeasibility import explain_infeasible
    from planner.io.scenarios import Edit, apply_edits
    from planner.model.build import build_model
    from planner.solve.policy import solve_model

    base = plan(quarters=2, products=[{"cycle_quarters": 1, "backend": "B"}], demand=DEMAND,
                backend=[{"resource": "B", "units_per_quarter": 1000}], wip=[wip_row("2025Q4", 30)])
    half = apply_edits(base, [Edit("Backend", "B", "units_per_quarter", "set", 200)])
    model = build_model(half)
    assert solve_model(model).status == "infeasible"
    (row,) = explain_infeasible(model).to_dict("records")
    assert row["requirement"] == "wip_in_flight" and row["period"] == "2026Q1"
    assert row["required"] == pytest.approx(300) and row["achievable"] == pytest.approx(200)
    assert "back-end line B finishes at most 200 units in 2026Q1" in row["reason"] and "needs 300" in row["reason"]
