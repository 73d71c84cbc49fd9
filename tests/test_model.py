"""The LP against optima derived by hand (one test per constraint family), and properties on random plans.

Unless a test says otherwise the plan is the builders' default: one fab F running node n1 with 100 wafers per
quarter at $20 per wafer; product P yields 100 dies × 1.0 × 1.0 / 10 dies per unit = 10 units per wafer, no
cycle time, sells at $10; platform X needs 1 P per unit, penalty 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import frames, plan

from planner import api
from planner.analysis.rd_impact import shift_program
from planner.io.load import plan_from_frames

SOLVERS = ["highs", "cbc"]
PATH = {"solver": "highs"}


@pytest.fixture(autouse=True, params=SOLVERS)
def every_path(request):
    """Every test in this module runs on both paths: HiGHS fed with arrays, and the PuLP model solved by CBC."""
    PATH["solver"] = request.param
    yield request.param
    PATH["solver"] = "highs"


def solve(p, solver=None, **kw):
    return api.run(p, solver=solver or PATH["solver"], **kw)


def served(run, period=None, platform=None) -> float:
    s = run.results.service
    if period is not None:
        s = s[s["period"] == period]
    if platform is not None:
        s = s[s["platform"] == platform]
    return float(s["served"].sum())


@pytest.mark.parametrize("solver", SOLVERS)
def test_basic_capacity_and_shadow_price(solver):
    """100 wafers × 10 units = 1000 units of 2000 wanted. Margin = 1000·10 − 100·20 = 8000.
    One more wafer adds 10 units · $10 − $20 = $80: the fab row's shadow price."""
    run = solve(plan(quarters=1), solver)
    s = run.results.summary
    assert s["status"] == "optimal"
    assert s["objective"] == pytest.approx(8000)
    assert s["revenue"] == pytest.approx(10000) and s["cost"] == pytest.approx(2000)
    assert s["fill_rate"] == pytest.approx(0.5)
    cap = run.results.capacity.set_index("resource")
    assert cap.loc["F/n1", "shadow_price"] == pytest.approx(80)
    assert cap.loc["F/n1", "utilisation"] == pytest.approx(1.0)


def test_shadow_price_sign():
    """The reported dual is the objective gain of one more unit of capacity, checked by re-solving."""
    base = solve(plan(quarters=1)).results.summary["objective"]
    more = solve(plan(quarters=1, fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 101,
                                         "wafer_cost": 20}])).results.summary["objective"]
    assert more - base == pytest.approx(80)


def test_good_units_per_wafer_formula():
    """gross 100 × die 0.8 × assembly 0.5 / 4 dies per unit = 10 units per wafer → 1000 units from 100 wafers."""
    run = solve(plan(quarters=1, products=[{"die_yield": 0.8, "assembly_yield": 0.5, "dies_per_unit": 4}],
                     demand=[{"platform": "X", "period": "2026Q1", "units": 5000}]))
    assert served(run) == pytest.approx(1000)


def test_rd_gate_blocks_output_before_ready():
    """Program G starts 2026Q1 with 1 + 1 quarters → ready in quarter 2 (2026Q3). Demand 500 per quarter:
    nothing before 2026Q3, 500 in 2026Q3. Margin = 500·10 − 50·20 = 4000."""
    p = plan(quarters=3, products=[{"program": "G"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                        "qualification_quarters": 1}],
             demand=[{"platform": "X", "period": q, "units": 500} for q in ("2026Q1", "2026Q2", "2026Q3")])
    run = solve(p)
    assert [served(run, q) for q in ("2026Q1", "2026Q2", "2026Q3")] == pytest.approx([0, 0, 500])
    assert run.results.summary["objective"] == pytest.approx(4000)
    assert run.results.wafer_starts["period"].unique().tolist() == ["2026Q3"]


def test_cycle_time_shifts_output():
    """Cycle 1: a start in 2026Q1 lands in 2026Q2; a start in 2026Q2 would land after the horizon, so it is not
    allowed. Demand 500 in each quarter: 0 served in Q1, 500 in Q2, from 50 wafers started in Q1."""
    p = plan(quarters=2, products=[{"cycle_quarters": 1}],
             demand=[{"platform": "X", "period": q, "units": 500} for q in ("2026Q1", "2026Q2")])
    run = solve(p)
    assert [served(run, "2026Q1"), served(run, "2026Q2")] == pytest.approx([0, 500])
    ws = run.results.wafer_starts
    assert ws[["period", "lands"]].values.tolist() == [["2026Q1", "2026Q2"]]
    assert ws["wafers"].sum() == pytest.approx(50)


def test_risk_starts_land_on_the_ready_quarter():
    """Ready in quarter 1, cycle 1, demand 500 in quarter 1. Without risk starts a start must wait for quarter
    1 and would land in quarter 2 (outside): nothing served. With risk starts it starts in quarter 0."""
    kw = dict(quarters=2, products=[{"program": "G", "cycle_quarters": 1}],
              programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                         "qualification_quarters": 0}],
              demand=[{"platform": "X", "period": "2026Q2", "units": 500}])
    assert served(solve(plan(**kw))) == 0
    assert served(solve(plan(settings={"risk_starts": "true"}, **kw))) == pytest.approx(500)


def test_yield_ramp_taken_at_start_quarter():
    """Ready in quarter 0 with ramp [0.5, 1.0]: 100 wafers give 500 units in Q1 and 1000 in Q2 (each wafer
    earns at least 5·10 − 20 > 0, so all are started). Margin = 1500·10 − 200·20 = 11000. (When the Q1 units
    ship is not unique: with no holding cost, serving them in Q2 is as good.)"""
    p = plan(quarters=2, products=[{"program": "G"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 0,
                        "qualification_quarters": 0}],
             ramp=[{"product": "P", "quarter": 0, "factor": 0.5}, {"product": "P", "quarter": 1, "factor": 1.0}],
             demand=[{"platform": "X", "period": q, "units": 2000} for q in ("2026Q1", "2026Q2")])
    run = solve(p)
    assert run.results.supply["output_units"].tolist() == pytest.approx([500, 1000])
    assert served(run) == pytest.approx(1500)
    assert run.results.summary["objective"] == pytest.approx(11000)


def test_ramp_factors_by_hand_gaps_before_first_and_after_last():
    """Two ramped products and one mature, 8 quarters, programs ready in quarter 2 (Q) and 0 (R). Q lists quarters
    1 → 0.5 and 3 → 0.8 (not 0 nor 2): quarter 0 takes the first listed factor (0.5), 2 holds 0.5, 3 on is 0.8.
    R lists 0 → 0.25 only. Per start quarter s (factor at s − ready, clipped to the curve; P 10 units/wafer):
    Q: s=2..4 → 0.5, 0.5, 0.5; s=5.. → 0.8. R: 0.25 everywhere. P (no program): 1.0. With risk starts Q (a 2-quarter
    cycle) may start from quarter 0, before it is ready: clipped to curve quarter 0, 0.5; its last start is 5 (0.8)."""
    from planner.model.build import build_model
    from planner.model.sets import derive_sets

    prog = {"start_period": "2026Q1", "qualification_quarters": 0}
    kw = dict(quarters=8, products=[{}, {"product": "Q", "program": "GQ", "cycle_quarters": 2}, {"product": "R", "program": "GR"}],
              programs=[{"program": "GQ", "development_quarters": 2, **prog},
                        {"program": "GR", "development_quarters": 0, **prog}],
              ramp=[{"product": "Q", "quarter": 3, "factor": 0.8}, {"product": "Q", "quarter": 1, "factor": 0.5},
                    {"product": "R", "quarter": 0, "factor": 0.25}],
              bom=[{"platform": "X", "option": "o", "product": m, "units_per_platform": 1} for m in "PQR"])
    ms = derive_sets(plan(**kw))
    q, r = (int(ms.products.loc[ms.products["product"] == n, "m"].iloc[0]) for n in "QR")
    assert ms.products.loc[q, "ready"] == 2 and ms.products.loc[r, "ready"] == 0
    assert ms.ramp[q].tolist() == [0.5, 0.5, 0.5, 0.8] and ms.ramp[r].tolist() == [0.25]
    s = np.arange(8)
    for m, factors in ((0, [1.0] * 8), (q, [0.5, 0.5, 0.5, 0.5, 0.5, 0.8, 0.8, 0.8]), (r, [0.25] * 8)):
        assert ms.good_units_per_wafer(np.full(8, m), s).tolist() == [10.0 * f for f in factors], m
    mixed = np.array([q, 0, r, q, q])  # interleaved products, in no order, as the LP's wafer columns are
    assert ms.good_units_per_wafer(mixed, np.array([7, 3, 5, 2, 4])).tolist() == [8.0, 10.0, 2.5, 5.0, 5.0]
    w = build_model(plan(settings={"risk_starts": "true"}, **kw)).w
    g = {(p_, int(s_)): g_ for p_, s_, g_ in zip(w["product"], w["s"], w["g"], strict=True)}
    assert g[("Q", 0)] == 5.0 and g[("Q", 5)] == 8.0 and g[("R", 7)] == 2.5 and g[("P", 4)] == 10.0


def test_expansion_arrives_after_lead_time():
    """10 wafers/quarter base; an option adds up to 50, lead 2, $30 per wafer/quarter. Decided in Q1 (the only
    quarter with τ + 2 inside a 3-quarter horizon) it is usable from Q3 only. One quarter of use earns
    $80 per wafer > $30, so all 50 are added: served 100, 100, 600 (a holding cost of $0.5 makes serving in
    the quarter made strictly best; nothing is held). Margin = 800·10 − 80·20 − 50·30 = 4900."""
    p = plan(quarters=3, products=[{"holding_cost": 0.5}], fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 10, "wafer_cost": 20}],
             expansions=[{"fab": "F", "node": "n1", "lead_quarters": 2, "max_wafers_per_quarter": 50,
                          "cost_per_wafer": 30, "earliest_period": "2026Q1"}],
             demand=[{"platform": "X", "period": q, "units": 1000} for q in ("2026Q1", "2026Q2", "2026Q3")])
    run = solve(p)
    assert [served(run, q) for q in ("2026Q1", "2026Q2", "2026Q3")] == pytest.approx([100, 100, 600])
    assert run.results.summary["objective"] == pytest.approx(4900)
    ex = run.results.expansions
    assert ex[["decided", "available_from"]].values.tolist() == [["2026Q1", "2026Q3"]]
    cap = run.results.capacity
    assert cap.loc[cap["resource"] == "F/n1", "capacity"].tolist() == [10, 10, 60]


def test_backend_capacity_limits_output():
    """Back-end line TSV holds 300 units/quarter; each unit uses 2 → 150 units. Margin = 1500 − 15·20 = 1200.
    One more unit of TSV capacity makes 0.5 units worth $10 − $2 = $8 each: shadow price $4."""
    p = plan(quarters=1, products=[{"backend": "TSV", "backend_use": 2}],
             backend=[{"resource": "TSV", "units_per_quarter": 300}])
    run = solve(p)
    assert served(run) == pytest.approx(150)
    assert run.results.summary["objective"] == pytest.approx(1200)
    cap = run.results.capacity.set_index("resource")
    assert cap.loc["TSV", "shadow_price"] == pytest.approx(4)
    assert cap.loc["F/n1", "shadow_price"] == pytest.approx(0)


def test_inventory_carries_with_holding_cost():
    """Capacity only in Q1 (Q2 override 0), demand 500 only in Q2, holding $1/unit/quarter: 50 wafers in Q1,
    500 units held at the end of Q1. Margin = 5000 − 1000 − 500 = 3500."""
    p = plan(quarters=2, products=[{"holding_cost": 1}],
             fab_capacity=[{"fab": "F", "node": "n1", "period": "2026Q2", "wafers": 0}],
             demand=[{"platform": "X", "period": "2026Q2", "units": 500}])
    run = solve(p)
    sup = run.results.supply.set_index("period")
    assert sup.loc["2026Q1", "inventory_end"] == pytest.approx(500)
    assert run.results.summary["objective"] == pytest.approx(3500)


def test_initial_inventory_ships_without_cost():
    """No capacity, 200 units on hand, demand 300: serve 200; margin 2000."""
    p = plan(quarters=1, products=[{"initial_inventory": 200}],
             fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 0, "wafer_cost": 20}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 300}])
    run = solve(p)
    assert served(run) == pytest.approx(200)
    assert run.results.summary["objective"] == pytest.approx(2000)


@pytest.mark.parametrize("backlog, objective, q2", [("false", 3100, 0), ("true", 5500, 300)])
def test_lost_sales_versus_backlog(backlog, objective, q2):
    """500 units/quarter of capacity, demand 800 in Q1 only, penalty $3 per unit short per quarter.
    Lost sales: serve 500, lose 300: 5000 − 50·20 − 3·300 = 3100.
    Backlog: 300 wait one quarter (penalty 900) and ship in Q2: 8000 − 80·20 − 900 = 5500."""
    p = plan(quarters=2, settings={"backlog": backlog},
             fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 50, "wafer_cost": 20}],
             platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 3}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 800}])
    run = solve(p)
    assert run.results.summary["objective"] == pytest.approx(objective)
    assert served(run, "2026Q2") == pytest.approx(q2)
    assert run.results.summary["shortfall_penalty"] == pytest.approx(900)


def test_bom_options_mix_by_margin():
    """X can use one A (node n1, $20 wafers) or one B (node n2, $50 wafers); each fab makes 100 units.
    Margin per unit: A 10 − 2 = 8, B 10 − 5 = 5. Demand 150: 100 via A, 50 via B. Margin = 800 + 250 = 1050."""
    p = plan(quarters=1, products=[{"product": "A"}, {"product": "B", "node": "n2"}],
             fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 10, "wafer_cost": 20},
                   {"fab": "G", "node": "n2", "wafers_per_quarter": 10, "wafer_cost": 50}],
             bom=[{"platform": "X", "option": "oA", "product": "A", "units_per_platform": 1},
                  {"platform": "X", "option": "oB", "product": "B", "units_per_platform": 1}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 150}])
    run = solve(p)
    alloc = run.results.allocation.set_index("option")["platform_units"]
    assert alloc.to_dict() == pytest.approx({"oA": 100, "oB": 50})
    assert run.results.summary["objective"] == pytest.approx(1050)


def test_option_needing_two_products_uses_both():
    """Option needs 2 A + 1 B per platform unit; A capacity 1000 units, B 100 units → 100 platform units,
    using 200 A and 100 B."""
    p = plan(quarters=1, products=[{"product": "A"}, {"product": "B", "node": "n2"}],
             fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": 1},
                   {"fab": "G", "node": "n2", "wafers_per_quarter": 10, "wafer_cost": 1}],
             bom=[{"platform": "X", "option": "o", "product": "A", "units_per_platform": 2},
                  {"platform": "X", "option": "o", "product": "B", "units_per_platform": 1}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 1000}])
    run = solve(p)
    assert served(run) == pytest.approx(100)
    sup = run.results.supply.set_index("product")["shipped_units"]
    assert sup.to_dict() == pytest.approx({"A": 200, "B": 100})


def _two_platforms(policy: str, priorities=(1, 2), demand_l=1000, prices=(5, 15)):
    return plan(quarters=1, settings={"policy": policy},
                platforms=[{"platform": "H", "priority": priorities[0], "shortfall_penalty": 0},
                           {"platform": "L", "priority": priorities[1], "shortfall_penalty": 0}],
                bom=[{"platform": "H", "option": "o", "product": "P", "units_per_platform": 1, "price": prices[0]},
                     {"platform": "L", "option": "o", "product": "P", "units_per_platform": 1, "price": prices[1]}],
                demand=[{"platform": "H", "period": "2026Q1", "units": 1000},
                        {"platform": "L", "period": "2026Q1", "units": demand_l}])


def test_margin_versus_priority_policy():
    """1000 units for two platforms wanting 1000 each. H (tier 1) pays $5, L (tier 2) pays $15.
    margin: all to L, 15000 − 2000 = 13000. priority: all to H first, 5000 − 2000 = 3000."""
    m = solve(_two_platforms("margin"))
    assert (served(m, platform="H"), served(m, platform="L")) == pytest.approx((0, 1000))
    assert m.results.summary["objective"] == pytest.approx(13000)
    p = solve(_two_platforms("priority"))
    assert (served(p, platform="H"), served(p, platform="L")) == pytest.approx((1000, 0), abs=1e-4)
    assert p.results.summary["objective"] == pytest.approx(3000)


@pytest.mark.parametrize("solver", SOLVERS)
def test_fair_share_maximises_the_smallest_fill_rate(solver):
    """Same tier; H wants 1000 at $10, L 500 at $14; 1000 units. Max-min fill rate = 1000/1500 = 2/3, so H gets
    ≥ 666.7 and L ≥ 333.3, which uses everything. Margin = 666.67·10 + 333.33·14 − 2000 = 9333.33.
    (The margin policy would give L all 500 and H 500: fill rate 0.5 for H.)"""
    p = _two_platforms("fair_share", priorities=(1, 1), demand_l=500, prices=(10, 14))
    run = solve(p, solver)
    assert served(run, platform="H") == pytest.approx(2000 / 3, rel=1e-5)
    assert served(run, platform="L") == pytest.approx(1000 / 3, rel=1e-5)
    assert run.results.summary["objective"] == pytest.approx(28000 / 3, rel=1e-6)
    assert served(solve(_two_platforms("margin", (1, 1), 500, (10, 14))), platform="H") == pytest.approx(500)


def test_min_fill_infeasible_is_explained_by_capacity():
    """1000 units possible, 2000 wanted, min_fill 0.6 needs 1200: infeasible, 200 missing, capacity."""
    p = plan(quarters=1, platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0, "min_fill": 0.6}])
    run = solve(p)
    assert run.results.summary["status"] == "infeasible"
    (row,) = run.infeasibility.to_dict("records")
    assert (row["platform"], row["period"]) == ("X", "2026Q1")
    assert row["required"] == pytest.approx(1200) and row["missing"] == pytest.approx(200)
    assert row["reason"].startswith("capacity")


def test_min_fill_infeasible_is_explained_by_rd_gate():
    p = plan(quarters=2, products=[{"program": "G"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                        "qualification_quarters": 0}],
             platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0, "min_fill": 0.5}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 100}])
    run = solve(p)
    (row,) = run.infeasibility.to_dict("records")
    assert "R&D gate" in row["reason"] and "program G" in row["reason"]


def test_min_fill_forces_service_when_feasible():
    """Serving X loses money (price $1 < $2 of wafer per unit), but min_fill 0.3 forces 300 of 1000 units:
    margin = 300·1 − 30·20 = −300."""
    p = plan(quarters=1, products=[{"price": 1}],
             platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0, "min_fill": 0.3}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 1000}])
    run = solve(p)
    assert served(run) == pytest.approx(300)
    assert run.results.summary["objective"] == pytest.approx(-300)


# ---- properties on random plans -----------------------------------------------------------------------------------
def random_frames(seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    T = int(rng.integers(3, 7))
    nodes = ["n1", "n2"]
    n_prod = int(rng.integers(1, 5))
    programs = [{"program": f"G{i}", "start_period": "2025Q4", "development_quarters": int(rng.integers(0, 3)),
                 "qualification_quarters": int(rng.integers(0, 3))} for i in range(2)]
    products, ramp = [], []
    for i in range(n_prod):
        prog = f"G{rng.integers(0, 2)}" if rng.random() < 0.6 else None
        products.append({"product": f"P{i}", "family": "HBM" if i % 2 else "LPDDR", "program": prog,
                         "node": nodes[i % 2], "gross_dies_per_wafer": float(rng.integers(200, 900)),
                         "die_yield": float(rng.uniform(0.5, 0.95)), "assembly_yield": float(rng.uniform(0.6, 1)),
                         "dies_per_unit": float(rng.choice([1, 8, 12])), "cycle_quarters": int(rng.integers(0, 2)),
                         "backend": "B1" if rng.random() < 0.5 else None, "backend_use": float(rng.uniform(0.5, 2)),
                         "unit_cost": float(rng.uniform(0, 50)), "price": float(rng.uniform(50, 900)),
                         "initial_inventory": float(rng.choice([0, 1000])), "holding_cost": float(rng.uniform(0, 5))})
        if prog:
            ramp += [{"product": f"P{i}", "quarter": q, "factor": f} for q, f in enumerate([0.5, 0.8, 1.0])]
    fabs = [{"fab": f"F{j}", "node": nodes[j % 2], "wafers_per_quarter": float(rng.integers(50, 400)),
             "wafer_cost": float(rng.uniform(1000, 9000))} for j in range(int(rng.integers(2, 4)))]
    plats = [{"platform": f"X{k}", "priority": int(rng.integers(1, 3)),
              "shortfall_penalty": float(rng.uniform(0, 3000))} for k in range(int(rng.integers(1, 4)))]
    bom = []
    for k, pl in enumerate(plats):
        for o in range(int(rng.integers(1, 3))):
            prod = f"P{rng.integers(0, n_prod)}"
            bom.append({"platform": pl["platform"], "option": f"o{o}", "product": prod,
                        "units_per_platform": float(rng.choice([1, 4, 8]))})
        del k
    first = "2026Q1"
    from planner.periods import horizon_labels

    demand = [{"platform": pl["platform"], "period": q, "units": float(rng.integers(0, 5000))}
              for pl in plats for q in horizon_labels(first, T)]
    settings = {"backlog": "true" if rng.random() < 0.3 else "false"}
    return frames(quarters=T, settings=settings, programs=programs, products=products, ramp=ramp or None,
                  fabs=fabs, backend=[{"resource": "B1", "units_per_quarter": float(rng.integers(1000, 30000))}],
                  expansions=[{"fab": "F0", "node": "n1", "lead_quarters": 1, "max_wafers_per_quarter": 100,
                               "cost_per_wafer": float(rng.uniform(1000, 20000))}],
                  platforms=plats, bom=bom, demand=demand)


SEEDS = list(range(12))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_plan_reconciles_and_objective_is_the_sum_of_its_parts(seed):
    run = solve(plan_from_frames(random_frames(seed)))
    s = run.results.summary
    assert s["status"] == "optimal"
    assert run.results.reconciliation == [], run.results.reconciliation
    solver_value = run.solution.stages[-1]["value"]
    assert s["revenue"] - s["cost"] - s["shortfall_penalty"] == pytest.approx(solver_value, rel=1e-7, abs=1e-3)
    svc = run.results.service
    assert s["fill_rate"] == pytest.approx(svc["served"].sum() / svc["demand"].sum())
    cap = run.results.capacity
    assert (cap["used"] <= cap["capacity"] * (1 + 1e-7) + 1e-6).all()


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_pulp_model_agrees_with_the_arrays(seed, every_path):
    """PuLP remains the model's definition for other solvers: to_pulp(...) solved through PuLP (its HiGHS
    interface on one path, its CBC on the other) reaches the optimum of the arrays handed to HiGHS directly."""
    import pulp

    from planner.model.build import build_model
    from planner.solve.sessions import _cbc_command, to_pulp

    p = plan_from_frames(random_frames(seed))
    prob, _, _ = to_pulp(build_model(p).lp)
    prob.solve(pulp.HiGHS(msg=False) if every_path == "highs" else _cbc_command(msg=False))
    assert pulp.LpStatus[prob.status] == "Optimal"
    arrays = api.run(p, solver="highs").solution.stages[-1]["value"]
    assert pulp.value(prob.objective) == pytest.approx(arrays, rel=1e-7, abs=1e-2)


@pytest.mark.parametrize("seed", SEEDS)
def test_tighter_capacity_never_increases_margin(seed):
    f = random_frames(seed)
    base = solve(plan_from_frames(f)).results.summary["objective"]
    f["Fabs"]["wafers_per_quarter"] *= 0.8
    f["Backend"]["units_per_quarter"] *= 0.8
    tight = solve(plan_from_frames(f)).results.summary["objective"]
    assert tight <= base + 1e-6 * max(1, abs(base))


@pytest.mark.parametrize("seed", SEEDS)
def test_later_program_never_increases_margin(seed):
    p = plan_from_frames(random_frames(seed))
    base = solve(p).results.summary["objective"]
    for prog in p.programs["program"]:
        later = solve(shift_program(p, prog, +1)).results.summary["objective"]
        assert later <= base + 1e-6 * max(1, abs(base)), prog
