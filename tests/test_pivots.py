"""The capacity price checks' one dual simplex pivot (`planner.solve.pivots`) against HiGHS re-solving the
same LP with the bound moved, on solved plans under every policy (the final stage's session, the policy's holds
in place), and on a hand-solved degenerate plan."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from planner import api
from planner.model.build import build_model
from planner.solve import pivots, policy
from planner.solve.policy import solve_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import indep_plan  # noqa: E402


def _plans(tmp_path: Path) -> list:
    """Plans with capacity sides the final basis cannot carry a whole unit, under each policy (seeds found by
    scanning: most small plans have none under 'margin', the hand-built degenerate one has one)."""
    from tests.test_policies import _fab_plan

    out = [(_fab_plan(1000), "margin")]
    for seed, policy_name in ((1, "priority"), (2, "priority"), (5, "priority"), (4, "fair_share"),
                              (5, "fair_share")):
        path = tmp_path / f"i{seed}{policy_name}.xlsx"
        indep_plan.write_plan(path, indep_plan.make_plan(40, 50, 6, 12, seed=seed, policy=policy_name))
        out.append((api.load_workbook(path), policy_name))
    return out


def _spy(monkeypatch) -> list[tuple[int, float, float | None]]:
    """Record every side the pivots were asked for, with their answer."""
    asked: list[tuple[int, float, float | None]] = []
    real = pivots.PivotPricer.change

    def change(self, row, step):
        got = real(self, row, step)
        asked.append((int(row), float(step), got))
        return got

    monkeypatch.setattr(pivots.PivotPricer, "change", change)
    return asked


def test_one_pivot_equals_a_re_solve(tmp_path: Path, monkeypatch) -> None:
    """Every side a pivot prices equals HiGHS's warm re-solve of the LP with the capacity moved one unit (the
    objective there less the objective at the final bounds), on generated plans under all three policies;
    where the pivot cannot prove its answer it gives none, and the row is re-solved as before."""
    asked = _spy(monkeypatch)
    real = policy.resolve_prices
    compared: list[tuple[str, float, float, float]] = []

    def resolve_then_compare(session, model, sol, margin, vouched, todo, stop=None, pivot=None):
        start = len(asked)
        out = real(session, model, sol, margin, vouched, todo, stop, pivot)
        _, _, rl, ru = model.lp.bounds()
        assert session.run(values=False).status == "optimal"  # the final bounds again (the re-solves reset them)
        base = session.objective_now()
        for row, step, got in asked[start:]:
            if got is None:
                continue
            session.set_row_bounds(row, rl[row], ru[row] + step)
            res = session.run(values=False)
            session.set_row_bounds(row, rl[row], ru[row])
            assert res.status == "optimal"
            compared.append((model.settings.policy, got, res.objective - base, base))
            if row in out:  # (not where the other side was left to a re-solve past MAX_PRICE_CHECKS)
                assert (out[row][0] if step > 0 else -out[row][1]) == got  # the report gets the pivot's answer
        return out

    monkeypatch.setattr(policy, "resolve_prices", resolve_then_compare)
    for plan, policy_name in _plans(tmp_path):
        sol = solve_model(build_model(plan), solver="highs", policy=policy_name)
        assert sol.status == "optimal"
    # a comparison on nothing proves nothing: sides were priced by a pivot under every policy
    assert {p for p, *_ in compared} == {"margin", "priority", "fair_share"}, compared
    assert len(compared) >= 20, len(compared)
    for name, got, want, base in compared:
        assert abs(got - want) <= 1e-7 * max(1.0, abs(want)) + 1e-9 * abs(base), (name, got, want)
    # and sides the pivots could not prove occur too (the re-solves price them, as before)
    assert any(got is None for *_, got in asked)


def test_the_degenerate_wafer_is_priced_by_pivots(monkeypatch) -> None:
    """Demand 1,000 = exactly what 100 wafers make (tests/test_policies.py): HiGHS's basis has the wafer's dual
    0 and cannot carry one wafer less (the shortfall variable is basic at 0); one pivot brings the shortfall in
    and prices one wafer less at 10 units × $10 − $20 = $80, exactly."""
    from tests.test_policies import _fab_plan

    asked = _spy(monkeypatch)
    cap = api.run(_fab_plan(1000)).results.capacity.iloc[0]
    assert asked and asked[-1][1] == -1.0 and asked[-1][2] == pytest.approx(-80.0, abs=1e-9)
    assert (cap["value_of_one_more"], cap["cost_of_one_less"]) == pytest.approx((0.0, 80.0), abs=1e-9)


def test_an_unproved_side_is_re_solved(monkeypatch) -> None:
    """Where the pivot gives no answer (here: every one refused), the same rows are re-solved, and the prices
    are the ones the pivots give."""
    from tests.test_policies import _fab_plan

    with_pivot = api.run(_fab_plan(1000)).results.capacity.iloc[0]
    monkeypatch.setattr(pivots.PivotPricer, "change", lambda self, row, step: None)
    without = api.run(_fab_plan(1000)).results.capacity.iloc[0]
    assert with_pivot["cost_of_one_less"] == pytest.approx(without["cost_of_one_less"], abs=1e-6)
    assert np.isfinite(without["cost_of_one_less"])


def _degenerate_at_a_large_bound(big: float, eps: float):
    """max x s.t. x ≤ 1 (the capacity, row 0) and y − eps·x = big − eps (row 1), 0 ≤ y ≤ big: y = big + eps(x − 1)
    reaches its bound exactly at x = 1, so x ≤ 1 whatever the capacity. By hand: one more unit of capacity is
    worth 0, though the capacity's dual in the basis {x, y} is 1."""
    import pandas as pd

    from planner.model.lp import LinearProgram

    lp = LinearProgram()
    one = pd.DataFrame({"i": [0]})
    x = lp.add_cols("x", one)
    y = lp.add_cols("y", one, 0.0, big)
    lp.add_rows("cap", one, np.array([0]), x, np.array([1.0]), upper=1.0)
    lp.add_rows("link", one, np.array([0, 0]), np.concatenate([y, x]), np.array([1.0, -eps]), big - eps, big - eps)
    lp.add_term("margin", x, np.array([1.0]), 1.0)
    return lp


@pytest.mark.parametrize("big, eps", [(1e6, 1e-4), (1e7, 1e-3), (1e8, 1e-2), (1e3, 1e-7)])
def test_a_variable_degenerate_at_a_large_bound_blocks_the_unit(big: float, eps: float) -> None:
    """The basis {x, y} (y basic at its bound ``big``) moves y by ``eps`` per unit of the capacity: over one more
    unit it ends ``eps`` past its bound. Measured as 1e-9 *of the bound* (10⁻³ at 10⁶), that was within it: the
    basis vouched for one more unit at the dual, 1, and the pivots priced it at 1, where it is worth 0 (by hand,
    :func:`_degenerate_at_a_large_bound`; and HiGHS re-solving with the capacity at 2, from scratch)."""
    from planner.solve.sessions import HighsSession

    lp = _degenerate_at_a_large_bound(big, eps)
    s = HighsSession(lp, method="simplex")
    assert s.run().status == "optimal"
    # the degenerate basis under test, whichever optimal basis HiGHS found: x, y basic; the capacity at its bound
    assert s.set_basis((np.array([1, 1]), np.array([2, 0])))
    res = s.run()
    assert res.status == "optimal" and res.objective == pytest.approx(1.0)
    assert sorted(np.asarray(s.h.getBasicVariables()[1]).tolist()) == [0, 1]
    assert res.row_dual[0] == pytest.approx(1.0)  # the dual the old tolerance vouched for
    up, _ = s.one_unit_vouched(np.array([0]))
    assert not up[0]
    # the pivots: y leaves at its bound (at once: it is at it), the capacity row's own activity enters (pivot
    # element eps), and the rest of the unit is free: exactly 0; with eps at PIVOT_TOL, no answer (re-solved)
    pricer = pivots.PivotPricer(s.h)
    got = pricer.change(0, 1.0)
    if eps > pivots.PIVOT_TOL:
        assert got == pytest.approx(0.0, abs=1e-12), pricer.why
    else:
        assert got is None
    fresh = HighsSession(lp, method="simplex")
    fresh.set_row_bounds(0, -np.inf, 2.0)
    assert fresh.run().objective == pytest.approx(1.0, abs=1e-6)  # the re-solve: one more unit adds nothing


def test_an_lp_without_matrix_entries_asks_nothing_of_the_basis() -> None:
    """max x, x ≤ 5, with one row that holds no entry (0 ≤ 1): HiGHS solves an LP without matrix entries without
    its simplex, so it holds no basis matrix; asking for its basic variables crashed the process (segmentation
    fault). The price checks get no basis to work from (None), and re-solve instead."""
    import pandas as pd

    from planner.model.lp import LinearProgram
    from planner.solve.sessions import HighsSession

    lp = LinearProgram()
    one = pd.DataFrame({"i": [0]})
    x = lp.add_cols("x", one, 0.0, 5.0)
    lp.add_rows("cap", one, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), upper=1.0)
    lp.add_term("margin", x, np.array([1.0]), 1.0)
    s = HighsSession(lp, method="simplex")
    res = s.run()
    assert res.status == "optimal" and res.objective == pytest.approx(5.0)  # x at its bound, by hand
    assert s.h.getBasis().valid  # HiGHS says it has a basis …
    assert s.pivot_pricer() is None and s.one_unit_vouched(np.array([0])) is None  # … but none to solve with


def test_the_pivot_budget_bounds_the_work_and_keeps_the_prices(tmp_path: Path, monkeypatch) -> None:
    """With the budget at 3 pivots, no more than 3 are made; the sides past it are re-solved (as far as
    MAX_PRICE_CHECKS goes), and every price given is the one an unlimited budget gives."""
    path = tmp_path / "p.xlsx"
    indep_plan.write_plan(path, indep_plan.make_plan(40, 50, 6, 12, seed=2, policy="priority"))
    model = build_model(api.load_workbook(path))
    free = solve_model(model, policy="priority").prices
    made = []
    real = pivots.PivotPricer.change

    def counted(self, row, step):
        got = real(self, row, step)
        made.append(self.pivots)
        return got

    monkeypatch.setattr(pivots, "PIVOT_BUDGET", 3)
    monkeypatch.setattr(pivots.PivotPricer, "change", counted)
    capped = solve_model(model, policy="priority").prices
    assert max(made) == 3
    assert set(capped) <= set(free) and len(capped) > 0
    for row, (up, down) in capped.items():
        assert up == pytest.approx(free[row][0], rel=1e-7, abs=1e-6)
        assert down == pytest.approx(free[row][1], rel=1e-7, abs=1e-6, nan_ok=True)
