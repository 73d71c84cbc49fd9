"""Warm re-solves for scenario batches: reuse the base plan's optimal basis instead of solving from scratch.

Building the LP arrays is cheap (vectorised; 0.08 s at 86k columns) and so is handing them to HiGHS; finding
the optimal basis is what costs. :class:`WarmStarter` solves the *base* plan once and keeps its basis.
For a scenario whose LP has the same structure (dimensions and sparsity pattern) and differs in few places —
a capacity, a price, a yield, one platform's demand — it passes the scenario's arrays to HiGHS and starts dual
simplex from the base basis, a few pivots from the new optimum.

Each warm solve gets a fresh HiGHS instance fed with the scenario's arrays and the base basis, and nothing
else. A scenario's numbers are therefore a function of the base plan and the scenario alone — not of which
scenarios the process solved before (an instance edited in place keeps internal state that changed results in
the last bits). That is what makes a batch give identical numbers on 1 or 2 local processes or on a Dask
cluster, where the order of cases differs from run to run.

Solved cold instead (deterministic as well): a scenario that changes the structure (a program slip moves wafer
columns in or out of the horizon); one that changes more than 2 % of rows and columns (all demand +10 %:
interior point from scratch beats many dual simplex iterations from the base basis, measured at 86k columns);
and plans under the ``priority`` / ``fair_share`` policies.
"""

from __future__ import annotations

import time

import numpy as np

from planner.io.validate import PlanData
from planner.model.build import Model, build_model
from planner.solve.policy import Solution, finish_solution, run_policy
from planner.solve.sessions import HighsSession

WARM_MAX_CHANGES = 0.02  # share of rows + columns a scenario may change and still start from the base basis


class _State:
    def __init__(self, model: Model):
        lp = model.lp
        self.A = lp.matrix()
        self.cl, self.cu, self.rl, self.ru = lp.bounds()
        self.c = lp.objective()
        self.shape = (lp.n_rows, lp.n_cols)

    def same_structure(self, other: _State) -> bool:
        return (self.shape == other.shape and np.array_equal(self.A.indptr, other.A.indptr)
                and np.array_equal(self.A.indices, other.A.indices))

    def changes(self, other: _State) -> int:
        return int(((self.cl != other.cl) | (self.cu != other.cu)).sum()
                   + ((self.rl != other.rl) | (self.ru != other.ru)).sum()
                   + (self.c != other.c).sum() + (self.A.data != other.A.data).sum())


class WarmStarter:
    """Solve many variants of one base plan, starting small changes from the base plan's optimal basis."""

    def __init__(self, base: PlanData, time_limit: float | None = None):
        self.base = base
        self.time_limit = time_limit
        self.state: _State | None = None
        self.basis = None
        self.tried = False
        self.warm = 0
        self.cold = 0

    def _ensure_base(self) -> bool:
        """Solve the base plan once (margin policy); False when warm starts do not apply."""
        if not self.tried:
            self.tried = True
            if self.base.settings.policy == "margin":
                model = build_model(self.base)
                session = HighsSession(model.lp, time_limit=self.time_limit, method="auto")
                if session.run().status == "optimal":
                    self.state, self.basis = _State(model), session.h.getBasis()
        return self.basis is not None

    def solve(self, plan: PlanData) -> tuple[Model, Solution]:
        t0 = time.perf_counter()
        model = build_model(plan)
        new = _State(model)
        lp = model.lp
        stages: list[dict] = []
        warm = (plan.settings.policy == "margin" and self._ensure_base() and self.state.same_structure(new)
                and self.state.changes(new) <= max(50, WARM_MAX_CHANGES * sum(new.shape)))
        if warm:
            session = HighsSession(lp, time_limit=self.time_limit, method="simplex")
            session.h.setBasis(self.basis)
            res = session.run()
            stages.append({"stage": "margin", "value": res.objective})
            self.warm += 1
        else:
            session = HighsSession(lp, time_limit=self.time_limit, method="auto")
            res = run_policy(session, model, plan.settings.policy, new.c.copy(), stages)
            self.cold += 1
        return model, finish_solution(lp, res, session, t0, stages)


# ---- warm starts for the analyses' re-solves (explanation lifts, R&D shifts, levers) ---------------------------
Basis = tuple[np.ndarray, np.ndarray]  # HiGHS column and row status codes (HighsSession.basis)
LOWER = 0  # HighsBasisStatus.kLower


def gated_basis(model: Model, basis: Basis | None, gated: Model) -> Basis | None:
    """The base plan's optimal basis carried over to the same plan's model built with gates as bounds.

    The gated model has the same rows and columns plus one wafer column per gated start (bound 0); those are
    nonbasic at 0 and every other column and row keeps its status, so the basis stays optimal and the
    analyses' variants (a program ready sooner or later, a capacity +10 %, a family lifted) start from it. None
    when the two models do not line up (then the variants are solved cold)."""
    if basis is None or model.lp.n_rows != gated.lp.n_rows or len(basis[0]) != model.lp.n_cols:
        return None
    cols = np.full(gated.lp.n_cols, LOWER, dtype=np.int8)
    src, dst = model.lp.col_blocks, gated.lp.col_blocks
    if list(src) != list(dst):
        return None
    for label, b in dst.items():
        a = src[label]
        if label == "wafers":
            keep = ~gated.w["gated"].to_numpy()
            if int(keep.sum()) != a.size:
                return None
            cols[gated.w["col"].to_numpy()[keep]] = basis[0][model.w["col"].to_numpy()]
        elif a.size != b.size:
            return None
        else:
            cols[b.start:b.start + b.size] = basis[0][a.start:a.start + a.size]
    return cols, basis[1].copy()
