"""HiGHS runs that would not end are handed on (`HighsSession._run_once`): interior point stuck short of its
tolerance goes on as the simplex; an unperturbed warm simplex stalled at a degenerate vertex goes on perturbed.
The answers are the ones an ordinary run gives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from planner import api
from planner.model.build import build_model
from planner.solve import sessions
from planner.solve.policy import solve_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import indep_plan  # noqa: E402


def _plan(tmp_path: Path, policy: str, **kw):
    path = tmp_path / f"p-{policy}.xlsx"
    indep_plan.write_plan(path, indep_plan.make_plan(40, 50, 6, 12, policy=policy, **kw))
    return api.load_workbook(path)


def _count_limits(monkeypatch) -> list[str]:
    """Record the model status of every first run that hit an iteration limit."""
    hit: list[str] = []
    real = sessions.HighsSession._call_run

    def call(self):
        real(self)
        if self.h.getModelStatus() == self._hs.HighsModelStatus.kIterationLimit:
            hit.append(self.h.getOptionValue("solver")[1])

    monkeypatch.setattr(sessions.HighsSession, "_call_run", call)
    return hit


def test_a_stuck_interior_point_hands_over_to_the_simplex(tmp_path, monkeypatch) -> None:
    model = build_model(_plan(tmp_path, "margin", seed=3))
    assert model.lp.n_cols >= sessions.IPM_THRESHOLD_COLS  # 'auto' solves it by interior point
    want = solve_model(model)
    hit = _count_limits(monkeypatch)
    monkeypatch.setattr(sessions, "IPM_ITERATION_LIMIT", 2)
    got = solve_model(model)
    assert "ipm" in hit  # the limit was reached, and the simplex took over
    assert got.status == "optimal" and got.objective == pytest.approx(want.objective, rel=1e-9)


def test_a_stalled_warm_simplex_goes_on_perturbed(tmp_path, monkeypatch) -> None:
    """Fair share's stages are warm runs without perturbation: with the stall limit at one pivot every one of
    them that pivots is handed on, and the policy's answer is the same."""
    model = build_model(_plan(tmp_path, "fair_share", seed=2))
    want = solve_model(model)
    hit = _count_limits(monkeypatch)
    monkeypatch.setattr(sessions.HighsSession, "_stall_pivots", lambda self: 1)
    got = solve_model(model)
    assert "simplex" in hit
    assert got.status == "optimal" and got.objective == pytest.approx(want.objective, rel=1e-7)


def test_the_plan_whose_explanation_never_ended(tmp_path) -> None:
    """Found by review (2026-11-29): `planner solve` with the defaults on this plan under fair share printed
    nothing for 21 minutes — an explanation's lifted plan had a fair-share stage whose interior point never
    met its tolerance. Now the whole analysis ends, with causes."""
    plan = _plan(tmp_path, "fair_share", seed=4, backlog=True, risk_starts=True)
    run, rep = api.analyse(plan)
    assert run.solution.status == "optimal"
    assert rep.causes is not None and len(rep.causes) > 0


def test_after_interior_point_the_simplex_starts_from_scratch(tmp_path, monkeypatch) -> None:
    """models/explain.md says interior point stopped at its limit leaves no basis, so the simplex that takes over
    starts from scratch (not "from where it stopped", as the first version said): HiGHS holds no valid basis
    there, and the hand-over's simplex takes as many pivots as a simplex from scratch on the same LP."""
    model = build_model(_plan(tmp_path, "margin", seed=3))
    monkeypatch.setattr(sessions, "IPM_ITERATION_LIMIT", 2)
    pivots: list[int] = []
    valid: list[bool] = []
    real = sessions.HighsSession._call_run

    def call(self):
        real(self)
        valid.append(bool(self.h.getBasis().valid))
        pivots.append(int(self.h.getInfo().simplex_iteration_count))

    monkeypatch.setattr(sessions.HighsSession, "_call_run", call)
    s = sessions.HighsSession(model.lp, method="ipm")
    assert s.run().status == "optimal"
    assert valid[0] is False and len(pivots) == 2  # stopped without a basis, then handed over once
    scratch = sessions.HighsSession(model.lp, method="simplex")
    scratch._perturb(1.0)
    scratch._call_run()
    assert pivots[1] == pivots[2] > 0  # the hand-over took the pivots a simplex from scratch takes


def test_without_a_basis_a_warm_primal_stage_runs_the_sessions_own_method(tmp_path, monkeypatch) -> None:
    """Found by review: `planner solve` on indep_plan 120×80×8×12 seed 33 (fair share, risk starts) ran over 20×
    its --no-explain time — a fair-share stage of an explanation's lifted plan (7,448 columns) ran HiGHS's primal
    simplex (warm_primal) from scratch, no basis held, still pivoting after 200 s. Without a basis the stage runs
    the session's own method (here interior point, 'auto' from 2,000 columns), and the primal setting is back
    for the next stage; the answer is the ordinary one."""
    model = build_model(_plan(tmp_path, "margin", seed=3))
    want = sessions.HighsSession(model.lp).run()
    seen: list[tuple[str, int]] = []
    real = sessions.HighsSession._call_run

    def call(self):
        seen.append((self.h.getOptionValue("solver")[1], self.h.getOptionValue("simplex_strategy")[1]))
        real(self)

    monkeypatch.setattr(sessions.HighsSession, "_call_run", call)
    s = sessions.HighsSession(model.lp)
    assert s.method == "ipm"
    s.warm_primal(True)
    assert not s.h.getBasis().valid  # no basis: the premise of the primal stage does not hold
    got = s.run()
    assert seen[0] == ("ipm", 1), seen  # not ("simplex", 4): the primal simplex from scratch
    assert (s.h.getOptionValue("solver")[1], s.h.getOptionValue("simplex_strategy")[1]) == ("simplex", 4)
    assert got.status == "optimal" and got.objective == pytest.approx(want.objective, rel=1e-9)
