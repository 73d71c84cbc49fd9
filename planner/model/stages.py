"""Policy stages of ``models/formulation.md`` ("Policies as sequences of LPs"): the rows and objectives the
``priority`` and ``fair_share`` policies add to the margin LP, one builder per formulation label.

The builders add to a *target* — any solver session with ``add_row``/``add_col`` (:mod:`planner.solve.sessions`)
— so the HiGHS and PuLP/CBC paths get the very same rows under the same names (``priority_hold_<tier>_<i>_<t>``,
``priority_tie_<tier>``, ``fair_share_<tier>_<i>``, ``fair_share_hold_<tier>_<i>``, column ``fair_share_level``; ``i`` is the member's
position in the tier, ``t`` the quarter's index, names stay ``[A-Za-z0-9_]`` for LP files). Which stage runs when, and what is held after
it, is :mod:`planner.solve.policy`'s job; here is what each stage *is*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from planner.model.build import Model

INF = np.inf


class StageTarget(Protocol):
    """Where stage rows and columns go: a solver session."""

    def add_row(self, cols: np.ndarray, vals: np.ndarray, lower: float, upper: float, name: str = "") -> int: ...
    def add_col(self, cost: float, lower: float, upper: float, rows: np.ndarray, vals: np.ndarray,
                name: str = "") -> int: ...


@dataclass
class Tier:
    """One priority tier: its ``priority`` value and its platforms with demand over the horizon."""

    priority: int
    platforms: list[str]


@dataclass
class Hold:
    """Stage results held as rows ``a_i·x ≥ target_i − tol·scale_i``: one row (a fair-share level) or a set (a
    tier's service, platform by platform and quarter by quarter).

    ``scales`` are the magnitudes of the held quantities (Σ|a_j x_j| for a sum of units, the tier's Z for a fill
    rate held as Z·f), so the tolerance is relative to each row's own scale, never an absolute number of units or
    dollars."""

    rows: np.ndarray
    names: list[str]
    targets: np.ndarray
    scales: np.ndarray


def tiers(model: Model) -> list[Tier]:
    """Tiers in ascending ``priority`` (1 first), each with its platforms that have demand; empty tiers dropped."""
    plats = model.sets.platforms
    demand = model.sets.demand.sum(axis=1)
    out = []
    for k, g in plats.assign(_d=demand).groupby("priority", sort=True):
        members = g.loc[g["_d"] > 0, "platform"].tolist()
        if members:
            out.append(Tier(int(k), members))
    return out


def _service_columns(model: Model, platforms: list[str]) -> np.ndarray:
    """The y (platform units) and shortfall/backlog columns of these platforms."""
    lp = model.lp
    block = lp.col_blocks["backlog" if model.settings.backlog else "shortfall"]
    y = model.y
    return np.concatenate([y.loc[y["platform"].isin(platforms), "col"].to_numpy(),
                           block.positions[block.index["platform"].isin(platforms).to_numpy()]])


def priority_objective(model: Model, margin: np.ndarray, lower: list[Tier]) -> np.ndarray:
    """Objective of priority stage k: the margin with the revenue and penalties of the tiers below k left
    out (``lower``), so the stage serves tiers ≤ k exactly as the margin policy would if the lower tiers did
    not exist. Production costs stay: a tier is served only where its service is worth what it costs."""
    c = margin.copy()
    if lower:
        c[_service_columns(model, [p for t in lower for p in t.platforms])] = 0.0
    return c


def add_priority_tie(target: StageTarget, tier: Tier, c: np.ndarray, x: np.ndarray) -> Hold:
    """Row `priority_tie`: c_k·x ≥ c_k·x*_k, stage k's objective kept at its optimum while the next tier's
    objective picks, among stage k's optima, the one whose tier-k service leaves lower tiers the most. Without
    it the solver's arbitrary pick among tied splits is held (two tier-1 platforms earning the same per unit of
    the scarce memory, one of which also uses what tier 2 needs) and tier 2 loses supply no tier-1 platform
    needed. Scale Σ_j|c_kj x*_kj|, for the same relative tolerances as the other holds."""
    cols = np.flatnonzero(c)
    value = float(c[cols] @ x[cols])
    name = f"priority_tie_{tier.priority}"
    row = target.add_row(cols, c[cols], value, INF, name=name)
    return Hold(np.array([row]), [name], np.array([value]),
                np.array([max(1.0, float(np.abs(c[cols] * x[cols]).sum()))]))


def add_priority_hold(target: StageTarget, model: Model, tier: Tier, x: np.ndarray) -> Hold | None:
    """Rows `priority_hold`: Σ_{t'≤t} Y_pt'(x) ≥ Σ_{t'≤t} Y_pt'(x*_k) for every platform p of tier k and every
    quarter t in which stage k served p (Y_pt = Σ_o y_pot, platform units by any option), x*_k the stage's optimum.

    Each platform of the tier keeps, by every quarter, at least the units its stage served it by then: it is never
    served less or later, so a lower tier gets nothing a tier-k platform had at its stage. What is held counts
    platform units, whatever BOM option, fab or route serves them, so later stages may still serve tier k more
    cheaply (a memory-light option, another fab) and give what that frees to lower tiers. A quarter the stage
    did not serve p in needs no row: its cumulative target is the previous quarter's, already held (y ≥ 0).
    None when the stage served the tier nothing.
    """
    y = model.y
    rows, names, targets = [], [], []
    for i, p in enumerate(tier.platforms):
        yp = y.loc[y["platform"] == p, ["col", "t"]]
        cols, ts = yp["col"].to_numpy(), yp["t"].to_numpy()
        per_t = np.bincount(ts, weights=x[cols], minlength=model.sets.T)
        cum = np.cumsum(per_t)
        for t in np.flatnonzero(per_t > 0):
            sel = ts <= t
            name = f"priority_hold_{tier.priority}_{i}_{t}"
            rows.append(target.add_row(cols[sel], np.ones(int(sel.sum())), float(cum[t]), INF, name=name))
            names.append(name)
            targets.append(float(cum[t]))
    if not rows:
        return None
    targets_a = np.array(targets)
    return Hold(np.array(rows, dtype=np.int64), names, targets_a, np.maximum(targets_a, 1.0))


def fill_rate(model: Model, platform: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """scale · f_p as (columns, coefficients): f_p = Σ_t Y_pt / D_p, the platform's horizon fill rate."""
    ms = model.sets
    p = int(np.flatnonzero(ms.platforms["platform"].to_numpy() == platform)[0])
    y = model.y
    cols = y.loc[y["platform"] == platform, "col"].to_numpy()
    return cols, np.full(len(cols), scale / float(ms.demand[p].sum()))


@dataclass
class FairShare:
    """One tier's fair-share stage: the level column u, one `fair_share` row per member, and the tier's scale
    Z (its largest horizon demand): a fill rate f is u = Z·f in these rows."""

    tier: Tier
    level_col: int
    scale: float
    rows: dict[str, int]
    names: dict[str, str]
    terms: dict[str, tuple[np.ndarray, np.ndarray]]  # f_p as (columns, 1/D_p coefficients), derived once

    def level(self, x: np.ndarray) -> float:
        """The level z = u / Z at a solution."""
        return float(x[self.level_col]) / self.scale

    def fill(self, platform: str, x: np.ndarray) -> float:
        """f_p at a solution."""
        cols, vals = self.terms[platform]
        return float(vals @ x[cols])


def add_fair_share(target: StageTarget, model: Model, tier: Tier, level_col: int | None = None) -> FairShare:
    """Rows `fair_share`: Z·f_p − u ≥ 0 for every member p of the tier, i.e. f_p ≥ z with z = u/Z the level every
    member must reach (u: column ``fair_share_level``, free) and Z the tier's largest horizon demand.

    Why Z: in plain fill-rate terms (coefficients 1/D_p, objective z) one platform unit moves the objective by
    ~1/D_p — 2e-8 at 50M units, below the solver's dual feasibility tolerance (1e-7), so it stops early
    (measured: 68.5 % where 80.2 % was reachable) — and at 1e9 units HiGHS drops the coefficients altogether
    (|a| ≤ 1e-9 counts as zero). Scaled by Z every coefficient is Z/D_p ≥ 1 (a ratio of demands, unchanged
    when the whole plan is scaled), and a unit of the largest member moves the objective by its dual share,
    as a unit of margin does in the margin LP. ``level_col`` reuses an earlier tier's column (its rows are
    relaxed by then)."""
    if level_col is None:
        level_col = target.add_col(0.0, -INF, INF, np.zeros(0, dtype=np.int64), np.zeros(0),
                                   name="fair_share_level")
    ms = model.sets
    demand = dict(zip(ms.platforms["platform"], ms.demand.sum(axis=1), strict=True))
    scale = max(float(demand[p]) for p in tier.platforms)
    rows, names, terms = {}, {}, {}
    for i, p in enumerate(tier.platforms):
        cols, vals = fill_rate(model, p)
        terms[p] = (cols, vals)
        name = f"fair_share_{tier.priority}_{i}"
        rows[p] = target.add_row(np.append(cols, level_col), np.append(vals * scale, -1.0), 0.0, INF, name=name)
        names[p] = name
    return FairShare(tier, level_col, scale, rows, names, terms)


def add_fair_share_hold(target: StageTarget, model: Model, stage: FairShare, platform: str, level: float) -> Hold:
    """Row `fair_share_hold`: Z·f_p ≥ Z·ℓ_p, the level at which progressive filling fixed member p (it cannot do
    better without taking from a member at or below that level). Same scale as the `fair_share` rows."""
    cols, vals = stage.terms[platform]
    vals = vals * stage.scale
    i = stage.tier.platforms.index(platform)
    name = f"fair_share_hold_{stage.tier.priority}_{i}"
    row = target.add_row(cols, vals, stage.scale * level, INF, name=name)
    return Hold(np.array([row]), [name], np.array([stage.scale * level]), np.array([stage.scale]))


def fair_share_objective(n_cols: int, stage: FairShare) -> np.ndarray:
    """Objective of a fair-share round: maximise u (= Z·z, the level in units of the tier's largest demand)."""
    c = np.zeros(n_cols)
    c[stage.level_col] = 1.0
    return c
