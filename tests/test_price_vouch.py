"""`HighsSession.one_unit_vouched`: where it says the final basis stays feasible one unit up or down, a re-solve
with the capacity moved by that unit changes the objective by exactly the row's dual (checked by re-solving from
scratch, an independent method). Plans from ``benchmarks/indep_plan.py`` and the example."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import indep_plan  # noqa: E402

from planner import api  # noqa: E402
from planner.model.build import build_model  # noqa: E402
from planner.solve.policy import price_candidates  # noqa: E402
from planner.solve.sessions import HighsSession  # noqa: E402


def _check(path: Path, method: str) -> int:
    model = build_model(api.load_workbook(path))
    lp = model.lp
    s = HighsSession(lp, method=method)
    res = s.run()
    assert res.status == "optimal"
    talk, _ = price_candidates(model, res.x, res.row_dual)
    up, down = s.one_unit_vouched(talk)
    _, _, rl, ru = lp.bounds()
    checked = 0
    rng = np.random.default_rng(0)
    picks = rng.permutation(len(talk))[:12]
    for k in picks:
        r = int(talk[k])
        for step, ok in ((1.0, up[k]), (-1.0, down[k])):
            if not ok or ru[r] + step < 0:
                continue
            fresh = HighsSession(lp, method="simplex")
            fresh.set_row_bounds(r, rl[r], ru[r] + step)
            again = fresh.run()
            assert again.status == "optimal"
            want = res.objective + step * res.row_dual[r]
            assert abs(again.objective - want) <= 1e-9 * max(1.0, abs(res.objective)), (r, step)
            checked += 1
    return checked


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vouched_sides_match_resolves(tmp_path: Path, seed: int) -> None:
    path = tmp_path / f"v{seed}.xlsx"
    indep_plan.write_plan(path, indep_plan.make_plan(30, 40, 6, 10, seed=seed))
    assert _check(path, "simplex") > 0  # a run that vouches for nothing checks nothing: fail, not pass


def test_vouched_sides_match_resolves_example_ipm() -> None:
    assert _check(ROOT / "inputs" / "example.xlsx", "ipm") > 0
