"""The allocation policies as sequences of LPs on a solver session (``models/formulation.md``, "Policies").

``solve_model`` is the one entry point: it opens a :mod:`planner.solve.sessions` session over the built model,
runs the policy's stages, and returns a :class:`Solution` over the model's own columns and rows, checked for
feasibility.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from planner.model.build import Model
from planner.model.lp import LinearProgram
from planner.model.stages import add_fair_share, add_priority_hold, served_columns
from planner.solve.sessions import RunResult, Session, make_session


@dataclass
class Solution:
    status: str
    x: np.ndarray | None
    row_dual: np.ndarray | None
    objective: float | None
    solver: str
    method: str
    seconds: float
    stages: list[dict] = field(default_factory=list)
    message: str = ""
    max_violation: float = 0.0
    violations: list[str] = field(default_factory=list)

    @property
    def has_solution(self) -> bool:
        return self.x is not None


# ---- policies ------------------------------------------------------------------------------------------------
def _hold(v: float) -> float:
    return v - (1e-9 * abs(v) + 1e-6)


def _tiers(model: Model) -> list[tuple[int, list[str]]]:
    plats = model.sets.platforms
    return [(int(k), list(g["platform"])) for k, g in plats.groupby("priority", sort=True)]


def run_policy(session: Session, model: Model, policy: str, margin: np.ndarray,
               stages: list[dict] | None = None) -> RunResult:
    """The policy's sequence of LPs on a session; returns the final (margin) stage's result.

    ``margin`` is the margin objective over the model's columns. Stage rows and columns stay in the session;
    callers that re-use a session remove them with ``reset``.
    """
    stages = stages if stages is not None else []
    if policy in ("priority", "fair_share"):
        demand_by_platform = dict(zip(model.sets.platforms["platform"], model.sets.demand.sum(axis=1), strict=True))
        for tier, plats in _tiers(model):
            plats = [p for p in plats if demand_by_platform[p] > 0]
            if not plats:
                continue
            if policy == "priority":
                c = np.zeros(model.lp.n_cols)
                c[served_columns(model, plats)] = 1.0
                session.set_objective(c)
                res = session.run()
                if res.status != "optimal":
                    return res
                add_priority_hold(session, model, tier, plats, _hold(res.objective))
                stages.append({"stage": f"priority tier {tier}", "platforms": plats, "value": res.objective})
            else:
                z = add_fair_share(session, model, tier, plats, demand_by_platform)
                c = np.zeros(z + 1)
                c[z] = 1.0
                session.set_objective(c)
                res = session.run()
                if res.status != "optimal":
                    return res
                session.add_row(np.array([z]), np.ones(1), _hold(res.objective), np.inf, name=f"fair_share_hold_{tier}")
                stages.append({"stage": f"fair_share tier {tier}", "platforms": plats, "value": res.objective})
                margin = np.append(margin, 0.0)
    session.set_objective(margin)
    res = session.run()
    stages.append({"stage": "margin", "value": res.objective})
    return res


def finish_solution(lp: LinearProgram, res: RunResult, session: Session, t0: float,
                    stages: list[dict]) -> Solution:
    """A run's result as a Solution over the model's own columns and rows (stage rows and columns dropped),
    checked for feasibility, with the objective recomputed from the model's margin."""
    sol = Solution(status=res.status, x=None if res.x is None else res.x[: lp.n_cols],
                   row_dual=None if res.row_dual is None else res.row_dual[: lp.n_rows],
                   objective=res.objective, solver=session.name, method=session.method,
                   seconds=time.perf_counter() - t0, stages=stages, message=res.message)
    if sol.x is not None:
        sol.max_violation, sol.violations = check_feasibility(lp, sol.x)
        sol.objective = float(lp.objective() @ sol.x)
    return sol


def solve_model(model: Model, solver: str | None = None, time_limit: float | None = None,
                method: str | None = None, policy: str | None = None) -> Solution:
    """Solve under the plan's policy (``models/formulation.md``, "Policies as sequences of LPs")."""
    settings = model.settings
    solver = solver or settings.solver
    policy = policy or settings.policy
    method = method or settings.highs_method
    time_limit = time_limit if time_limit is not None else settings.time_limit_s
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        # 0, a negative or NaN limit reached the solvers as "no limit": refused like Settings.time_limit_s
        raise ValueError(f"time limit must be a number of seconds > 0, not {time_limit!r}")
    t0 = time.perf_counter()
    lp = model.lp
    session = make_session(lp, solver, time_limit, method)
    stages: list[dict] = []
    res = run_policy(session, model, policy, lp.objective(), stages)
    return finish_solution(lp, res, session, t0, stages)


def check_feasibility(lp: LinearProgram, x: np.ndarray, rel_tol: float = 1e-6) -> tuple[float, list[str]]:
    """Largest scaled bound violation of rows and columns, and the labels of violated rows (post-solve check)."""
    A = lp.matrix()
    act = A @ x
    cl, cu, rl, ru = lp.bounds()
    # relative to the row's own magnitude: a balance row with zero right-hand side sums terms in the millions
    magnitude = abs(A) @ np.abs(x)
    scale_r = np.maximum.reduce([np.ones_like(act), np.abs(np.nan_to_num(rl, posinf=0, neginf=0)),
                                 np.abs(np.nan_to_num(ru, posinf=0, neginf=0)), magnitude])
    viol_r = np.maximum(np.maximum(rl - act, act - ru), 0) / scale_r
    viol_c = np.maximum(np.maximum(cl - x, x - cu), 0) / np.maximum(1.0, np.abs(x))
    worst = float(max(viol_r.max(initial=0.0), viol_c.max(initial=0.0)))
    bad: list[str] = []
    if worst > rel_tol:
        for label, block in lp.row_blocks.items():
            v = viol_r[block.start: block.start + block.size]
            if (v > rel_tol).any():
                bad.append(f"{label}: {int((v > rel_tol).sum())} row(s), worst {v.max():.2e}")
        if (viol_c > rel_tol).any():
            bad.append(f"column bounds: {int((viol_c > rel_tol).sum())} column(s)")
    return worst, bad
