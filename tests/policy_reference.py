"""Independent reference for the allocation policies, used by tests/test_policies.py.

It re-derives what each policy promises from the built LP's arrays with ``scipy.optimize.linprog`` (its own
HiGHS binding, its own row handling) and, for fair share, detects saturated members by the other standard
test: a small LP per candidate ("can this member exceed the level while the others keep it?") instead of
the planner's dual information. Agreement between the two is evidence that both do what
``models/formulation.md`` says; they share only the LP built by ``planner.model.build``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

SAT_TOL = 1e-6  # a member is saturated when its best fill rate exceeds the level by no more than this
TIGHT = {"dual_feasibility_tolerance": 1e-10}
SLACK = 1e-9  # floors are held this far below the level found, so round-off cannot make them infeasible


class RefLP:
    """The model's LP as ``min c·x`` with ``A_ub x ≤ b_ub``, ``A_eq x = b_eq``, plus extra rows and columns."""

    def __init__(self, model):
        lp = model.lp
        self.model = model
        self.n = lp.n_cols
        A = lp.matrix().tocsr()
        cl, cu, rl, ru = lp.bounds()
        eq = np.isfinite(rl) & np.isfinite(ru) & (rl == ru)
        up = np.isfinite(ru) & ~eq
        lo = np.isfinite(rl) & ~eq
        self.A_eq, self.b_eq = A[eq], rl[eq]
        self.ub_rows = [A[up], -A[lo]]
        self.ub_rhs = [ru[up], -rl[lo]]
        self.bounds = list(zip(cl, np.where(np.isinf(cu), None, cu), strict=True))
        self.margin = lp.objective()

    def solve(self, c: np.ndarray, extra_ub: list[tuple[np.ndarray, float]], extra_cols: int = 0,
              extra_bounds: list | None = None):
        """max c·x subject to the model and rows ``a·x ≤ b`` (a over model + extra columns)."""
        pad = lambda M: sp.hstack([M, sp.csr_matrix((M.shape[0], extra_cols))]) if extra_cols else M  # noqa: E731
        A_ub = sp.vstack([pad(M) for M in self.ub_rows] + ([sp.csr_matrix(np.vstack([a for a, _ in extra_ub]))]
                                                          if extra_ub else []), format="csr")
        b_ub = np.concatenate(self.ub_rhs + ([np.array([b for _, b in extra_ub])] if extra_ub else []))
        res = linprog(-c, A_ub=A_ub, b_ub=b_ub, A_eq=pad(self.A_eq), b_eq=self.b_eq,
                      bounds=self.bounds + (extra_bounds or []), method="highs", options=TIGHT)
        assert res.status == 0, res.message
        return res.x, -res.fun

    def demand(self, platform: str) -> float:
        ms = self.model.sets
        return float(ms.demand[int(ms.platforms.index[ms.platforms["platform"] == platform][0])].sum())

    def fill_vector(self, platform: str, extra_cols: int = 0) -> np.ndarray:
        """f_p(x) = Σ_t Y_pt / Σ_t D_pt as a row over the columns."""
        a = np.zeros(self.n + extra_cols)
        y = self.model.y
        a[y.loc[y["platform"] == platform, "col"].to_numpy()] = 1.0 / self.demand(platform)
        return a


def lex_maxmin(model, members: list[str], held: dict[str, float] | None = None) -> dict[str, float]:
    """Lexicographic max-min horizon fill rates of ``members`` (progressive filling, per-candidate LP test).

    ``held``: fill rates of other platforms to keep (earlier tiers). Returns each member's level.
    """
    ref = RefLP(model)
    held = dict(held or {})
    free = list(members)
    levels: dict[str, float] = {}
    while free:
        # max z s.t. f_p ≥ z (free), f_q ≥ level_q (fixed and held); z is the last column
        # objective scaled by the largest demand: one platform unit must move the objective by more than the
        # solver's dual tolerance, or it stops early (a fill rate of 1e-8 per unit is below it)
        c = np.zeros(ref.n + 1)
        c[-1] = max(ref.demand(p) for p in free)
        rows = []
        for p in free:
            a = -ref.fill_vector(p, 1)
            a[-1] = 1.0
            rows.append((a, 0.0))
        rows += [(-ref.fill_vector(q, 1), -(v - SLACK)) for q, v in {**held, **levels}.items()]
        _, z = ref.solve(c, rows, extra_cols=1, extra_bounds=[(None, None)])
        z /= c[-1]
        if z >= 1 - SAT_TOL:
            levels.update({p: 1.0 for p in free})
            break
        keep = [(-ref.fill_vector(q), -(v - SLACK)) for q, v in {**held, **levels}.items()]
        floor = [(-ref.fill_vector(p), -(z - SLACK)) for p in free]
        saturated = []
        for p in free:
            _, best = ref.solve(ref.fill_vector(p) * ref.demand(p), keep + floor)
            if best / ref.demand(p) <= z + SAT_TOL:
                saturated.append(p)
        assert saturated, "progressive filling made no progress"
        for p in saturated:
            levels[p] = z
            free.remove(p)
    return levels


def fill_rates(run) -> dict[str, float]:
    svc = run.results.service.groupby("platform")[["served", "demand"]].sum()
    svc = svc[svc["demand"] > 0]
    return (svc["served"] / svc["demand"]).to_dict()


def _cumulative_rows(model, platform: str) -> np.ndarray:
    """One row per quarter t over the columns: Σ_{t' ≤ t} Σ_o y_pot' (platform units served by t, any option)."""
    y = model.y
    yp = y[y["platform"] == platform]
    a = np.zeros((model.sets.T, model.lp.n_cols))
    for t in range(model.sets.T):
        a[t, yp.loc[yp["t"] <= t, "col"].to_numpy()] = 1.0
    return a


def priority_reference(model) -> dict:
    """The priority policy, stage by stage: for each tier k (but the last) maximise the margin of tiers ≤ k
    (lower tiers' revenue and penalties left out: their y and shortfall/backlog columns cost nothing in the
    objective), then hold every tier-k platform's cumulative platform units in every quarter (all T rows, not
    only the quarters served); finally maximise margin. Returns the final objective and, per held tier, its
    platforms' cumulative service at the stage optimum (platform → T values)."""
    ref = RefLP(model)
    margin = ref.margin
    lp = model.lp
    ms = model.sets
    sblock = lp.col_blocks["backlog" if model.settings.backlog else "shortfall"]
    dem = ms.demand.sum(axis=1)
    plats = ms.platforms.assign(_d=dem)
    plats = plats[plats["_d"] > 0]
    order = sorted(set(plats["priority"].astype(int)))
    members = {k: plats.loc[plats["priority"] == k, "platform"].tolist() for k in order}

    def service_cols(ps: list[str]) -> np.ndarray:
        return np.concatenate([model.y.loc[model.y["platform"].isin(ps), "col"].to_numpy(),
                               sblock.positions[sblock.index["platform"].isin(ps).to_numpy()]])

    holds: list[tuple[np.ndarray, float]] = []
    tiers = {}
    for i, k in enumerate(order[:-1]):
        c = margin.copy()
        c[service_cols([p for j in order[i + 1:] for p in members[j]])] = 0.0
        x, _ = ref.solve(c, holds)
        tiers[k] = {}
        for p in members[k]:
            rows = _cumulative_rows(model, p)
            v = rows @ x
            tiers[k][p] = v
            holds += [(-a, -(b - SLACK * max(1.0, b))) for a, b in zip(rows, v, strict=True)]
    x, obj = ref.solve(margin, holds)
    return {"objective": obj, "tiers": tiers, "x": x}


def cumulative_service(model, x: np.ndarray, platform: str) -> np.ndarray:
    """Σ_{t' ≤ t} Y_pt' at a solution, per quarter t."""
    return _cumulative_rows(model, platform) @ x[: model.lp.n_cols]
