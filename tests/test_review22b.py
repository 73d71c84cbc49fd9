"""Review of the re-solves without HiGHS's simplex perturbation (``sessions.WARM_PERTURBATION``): defects found by
attacking them, each with how it was found."""

from __future__ import annotations

import builders
import pytest

import planner.solve.sessions as S
from planner.solve.warm import WarmStarter


def _spy(monkeypatch) -> list[tuple[float, float]]:
    """Every HiGHS run's (dual cost, primal bound) perturbation multipliers, read back after the run."""
    seen: list[tuple[float, float]] = []
    run = S.HighsSession.run

    def spied(self, values=True):
        res = run(self, values)
        seen.append(tuple(float(self.h.getOptionValue(k)[1]) for k in (  # highspy: (status, value)
            "dual_simplex_cost_perturbation_multiplier", "primal_simplex_bound_perturbation_multiplier")))
        return res

    monkeypatch.setattr(S.HighsSession, "run", spied)
    return seen


@pytest.mark.parametrize("wafers,margin", [(110, 8800.0), (90, 7200.0)])
def test_a_batch_scenario_solved_from_the_base_basis_runs_without_perturbation(monkeypatch, wafers, margin):
    """The batches' and the what-if page's warm path (``WarmStarter.solve``) hands the base basis to HiGHS
    directly (``session.h.setBasis``), not through ``HighsSession.set_basis``, so the session's own "warm" flag
    stayed False and every warm scenario ran with HiGHS's perturbation (1.0), though the change says every
    re-solve from a basis runs without it. Found by reading the multipliers back after each run of a batch of
    capacity scenarios on a generated plan (100 platforms, 20k columns: always 1.0).

    By hand: one fab of ``wafers`` wafers × 10 good units, demand 2,000 > capacity, price 10 a unit, wafer cost
    20: margin = 10·wafers·10 − 20·wafers = 80·wafers (8,800 at 110 wafers, 7,200 at 90)."""
    seen = _spy(monkeypatch)
    ws = WarmStarter(builders.plan())
    _, sol = ws.solve(builders.plan(fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": wafers, "wafer_cost": 20}]))
    assert ws.warm == 1 and sol.status == "optimal"
    assert sol.objective == pytest.approx(margin, rel=1e-12)
    assert seen[0] == (1.0, 1.0)  # the base plan, from scratch: HiGHS's own perturbation
    assert seen[-1] == (S.WARM_PERTURBATION, S.WARM_PERTURBATION)  # the scenario, from the base basis


def test_which_runs_start_from_a_basis(monkeypatch):
    """The rule itself, run by run: a session's first run is from scratch (HiGHS's perturbation); every later
    run, and a run after a basis HiGHS took, starts from a basis (none); a basis HiGHS refuses (wrong size)
    leaves a fresh session cold. Priority with two tiers: stage 1, its tie-break, then the margin stage.

    By hand: 1,000 units (100 wafers × 10) for 600 + 600 demanded, 10 a unit less 20 a wafer: margin 8,000
    whoever gets them."""
    from planner.model.build import build_model
    from planner.solve.policy import solve_model

    seen = _spy(monkeypatch)
    two = builders.plan(settings={"policy": "priority"},
                        platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0},
                                   {"platform": "Y", "priority": 2, "shortfall_penalty": 0}],
                        bom=[{"platform": p, "option": "o", "product": "P", "units_per_platform": 1} for p in "XY"],
                        demand=[{"platform": p, "period": "2026Q1", "units": 600} for p in "XY"])
    model = build_model(two)
    sol = solve_model(model, prices=False)
    assert sol.status == "optimal" and [s["stage"] for s in sol.stages] == ["priority tier 1", "margin"]
    off = (S.WARM_PERTURBATION, S.WARM_PERTURBATION)
    assert seen == [(1.0, 1.0), off, off]  # tier 1 from scratch; the tie-break and the margin stage warm
    seen.clear()
    first = S.HighsSession(model.lp, method="simplex")
    assert first.run().status == "optimal"
    basis = first.basis()
    refused = S.HighsSession(model.lp, method="simplex")
    assert not refused.set_basis((basis[0][:-1], basis[1]))  # one column short: HiGHS says no
    took = S.HighsSession(model.lp, method="simplex")
    assert took.set_basis(basis)
    assert [refused.run().objective, took.run().objective] == pytest.approx([8000.0, 8000.0], rel=1e-12)
    assert seen == [(1.0, 1.0), (1.0, 1.0), off]


def test_money_from_two_solves_is_zero_within_round_off_and_kept_beyond():
    """R&D impact, levers and expansion timing subtract the base plan's money from a re-solve's: a difference
    of 7·10⁻¹¹ of a $20.6 billion plan (+$1.44, seen under priority) is the solvers' round-off and reads 0; a
    dollar on a $100 plan, or $100 on the $20.6 billion one (4.9·10⁻⁹), is a change and is kept."""
    from planner.analysis.resolves import change

    big = 20_600_000_000.0
    assert change(big + 1.44, big, big) == 0.0 and change(big - 3.0, big, big) == 0.0
    assert change(big + 100.0, big, big) == 100.0
    assert change(101.0, 100.0, 100.0) == 1.0
    assert change(5e-10, 0.0, 0.0) == 0.0 and change(2.0, 0.0, 0.0) == 2.0  # scale at least 1


def test_a_fair_share_stage_hiGHS_cannot_name_is_solved_with_loosened_holds():
    """generate_frames(12, 10, 3, 8, seed=17) under fair_share with back-end capacity lifted (a lift of the
    shortfall explanation): HiGHS ended the margin stage "Unknown" from the warm basis and again from scratch,
    so the explanation of that plan was "not computed" (before and after the perturbation change). The stage is
    now solved again with the holds loosened to the next tolerance, as for round-off infeasibility, and the
    whole estimate completes and adds up to each shortfall."""
    import numpy as np
    import pandas as pd

    import planner.analysis.explain as E
    from planner import api
    from planner.io.generate import generate_frames
    from planner.io.load import plan_from_frames
    from planner.solve.policy import run_policy
    from planner.solve.sessions import HighsSession

    frames = generate_frames(12, 10, 3, 8, seed=17)
    st = frames["Settings"].set_index("key")["value"].to_dict() | {"policy": "fair_share"}
    frames["Settings"] = pd.DataFrame({"key": list(st), "value": list(st.values())})
    plan = plan_from_frames(frames)
    lf = E.Lifter(plan)
    s = HighsSession(lf.model.lp, method="auto")
    cost = lf.base_cost.copy()
    lf.apply(s, cost, "backend_capacity", True)
    assert run_policy(s, lf.model, "fair_share", cost).status == "optimal"
    run = api.run(plan)
    keep = E.EXACT_MAX_COLS, E.EXACT_MAX_FAMILIES
    E.EXACT_MAX_COLS, E.EXACT_MAX_FAMILIES = 0, 0  # the estimate path, whose "each alone" lifts include it
    try:
        causes = E.explain_shortfalls(run)
    finally:
        E.EXACT_MAX_COLS, E.EXACT_MAX_FAMILIES = keep
    assert len(causes)
    per = causes.groupby(["platform", "period"]).agg(units=("units", "sum"), shortfall=("shortfall", "first"))
    assert np.allclose(per["units"], per["shortfall"], rtol=1e-9, atol=1e-6)
