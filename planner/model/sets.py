"""Index sets and parameter arrays derived once from validated data (``models/formulation.md``, "Sets" and
"Parameters"). Constraint builders look these up; nothing here depends on the solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from planner.io.validate import PlanData
from planner.periods import period_index, ready_quarters  # noqa: F401  (the ready-quarter rule, re-exported)

MATURE = -(10**6)  # ready index of a product without a program


@dataclass
class ModelSets:
    T: int
    periods: list[str]
    products: pd.DataFrame  # + ready, start_lo, start_hi, g_base, m (position)
    fabs: pd.DataFrame  # fab, node, wafer_cost, fn (position)
    fab_cap: np.ndarray  # (n_fabnodes, T) base capacity K_fnt
    backend: pd.DataFrame  # resource, r (position)
    backend_cap: np.ndarray  # (n_backend, T)
    platforms: pd.DataFrame  # platform, priority, shortfall_penalty, min_fill, p
    bom: pd.DataFrame  # platform, option, product, units_per_platform, price, p, m, po
    options: pd.DataFrame  # platform, option, p, po, revenue per platform unit
    demand: np.ndarray  # (n_platforms, T)
    expansions: pd.DataFrame  # + fn, e, earliest idx
    programs: pd.DataFrame  # program, ready
    ramp: dict[int, np.ndarray] = field(default_factory=dict)  # product position → factor by quarter since ready
    # WIP: in flight (start s < 0: fab, node, product, m, s, land, wafers, g, units, r, backend_use, unit_cost, rows)
    # and committed (0 ≤ s: fab, node, product, fn, m, s, wafers, rows); rows = the WIP sheet rows summed
    wip_in_flight: pd.DataFrame = field(default_factory=pd.DataFrame)
    wip_committed: pd.DataFrame = field(default_factory=pd.DataFrame)
    # frozen zone (--baseline): quarters held, and the baseline's starts in them (fab, node, product, fn, m, s, wafers)
    frozen_quarters: list[int] = field(default_factory=list)
    frozen: pd.DataFrame = field(default_factory=pd.DataFrame)

    def good_units_per_wafer(self, m: np.ndarray, s: np.ndarray) -> np.ndarray:
        """g_{ms}: good units per wafer of product m started in quarter s (ramp taken at the start quarter).

        The ramp factor is looked up in all the curves laid end to end, in one pass (a pass per product with a
        curve took 0.05 s on the 386k wafer columns of a 416k-column plan)."""
        prods = self.products
        base = prods["g_base"].to_numpy()[m]
        ready = prods["ready"].to_numpy()[m]
        factor = np.ones(len(m))
        if self.ramp and len(m):
            length = np.zeros(len(prods), dtype=np.int64)  # a product's curve length, 0 without one
            start = np.zeros(len(prods), dtype=np.int64)  # where its curve begins in `flat`
            flat = np.concatenate(list(self.ramp.values()))
            length[list(self.ramp)] = [len(c) for c in self.ramp.values()]
            start[list(self.ramp)] = np.cumsum([0] + [len(c) for c in self.ramp.values()])[:-1]
            has = length[m] > 0
            k = np.clip(s[has] - ready[has], 0, length[m[has]] - 1)
            factor[has] = flat[start[m[has]] + k]
        return base * factor


def _ramp_curves(plan: PlanData, product_pos: dict[str, int]) -> dict[int, np.ndarray]:
    """Ramp factors by quarters-since-ready; gaps in the listed quarters hold the previous factor, and quarters
    before the first listed one take its factor. On arrays, products in name order (a pandas group and sort per
    product took 0.03 s for 230 ramps)."""
    curves: dict[int, np.ndarray] = {}
    ramp = plan.yield_ramp
    if ramp.empty:
        return curves
    quarter = ramp["quarter"].astype(int).to_numpy()
    factor = ramp["factor"].to_numpy(dtype=float)
    codes, names = pd.factorize(ramp["product"], sort=True)
    order = np.lexsort((quarter, codes))  # by product, then quarter ((product, quarter) is the sheet's key)
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for k, prod in enumerate(names):
        at = order[bounds[k]:bounds[k + 1]]
        q, f = quarter[at], factor[at]
        listed_before = np.searchsorted(q, np.arange(q[-1] + 1), side="right") - 1  # last listed quarter ≤ each
        curves[product_pos[prod]] = f[np.maximum(listed_before, 0)]
    return curves


def derive_sets(plan: PlanData) -> ModelSets:
    s = plan.settings
    T = s.horizon_quarters
    first = s.first_period
    periods = plan.periods

    programs = plan.programs.copy()
    programs["ready"] = ready_quarters(programs, first)
    ready_of = dict(zip(programs["program"], programs["ready"], strict=True))

    prods = plan.products.copy().reset_index(drop=True)
    prods["m"] = np.arange(len(prods))
    prods["ready"] = [ready_of[p] if p is not None and not pd.isna(p) else MATURE for p in prods["program"]]
    prods["cycle_quarters"] = prods["cycle_quarters"].astype(int)
    risk = prods["cycle_quarters"] if s.risk_starts else 0
    prods["start_lo"] = np.maximum(0, prods["ready"] - risk)
    prods["start_hi"] = T - 1 - prods["cycle_quarters"]
    prods["g_base"] = (prods["gross_dies_per_wafer"] * prods["die_yield"] * prods["assembly_yield"]
                       / prods["dies_per_unit"])
    prods["backend_use"] = prods["backend_use"].fillna(1.0)
    for col in ("unit_cost", "initial_inventory", "holding_cost"):
        prods[col] = prods[col].fillna(0.0)
    product_pos = dict(zip(prods["product"], prods["m"], strict=True))

    fabs = plan.fabs.copy().reset_index(drop=True)
    fabs["fn"] = np.arange(len(fabs))
    fab_cap = np.repeat(fabs["wafers_per_quarter"].to_numpy()[:, None], T, axis=1).astype(float)
    fn_of = {(f, n): i for f, n, i in zip(fabs["fab"], fabs["node"], fabs["fn"], strict=True)}
    for f, n, p, w in zip(plan.fab_capacity["fab"], plan.fab_capacity["node"], plan.fab_capacity["period"],
                          plan.fab_capacity["wafers"], strict=True):
        fab_cap[fn_of[(f, n)], period_index(p, first)] = w

    backend = plan.backend.copy().reset_index(drop=True)
    backend["r"] = np.arange(len(backend))
    backend_cap = np.repeat(backend["units_per_quarter"].to_numpy()[:, None], T, axis=1).astype(float)
    r_of = dict(zip(backend["resource"], backend["r"], strict=True))
    for res, p, u in zip(plan.backend_capacity["resource"], plan.backend_capacity["period"],
                         plan.backend_capacity["units"], strict=True):
        backend_cap[r_of[res], period_index(p, first)] = u
    prods["r"] = [r_of.get(b, -1) if b is not None and not pd.isna(b) else -1 for b in prods["backend"]]

    plats = plan.platforms.copy().reset_index(drop=True)
    plats["p"] = np.arange(len(plats))
    plats["min_fill"] = plats["min_fill"].fillna(0.0)
    p_of = dict(zip(plats["platform"], plats["p"], strict=True))

    bom = plan.bom.copy().reset_index(drop=True)
    bom["p"] = bom["platform"].map(p_of).astype(int)
    bom["m"] = bom["product"].map(product_pos).astype(int)
    bom["revenue"] = bom["price"] * bom["units_per_platform"]
    options = (bom.groupby(["p", "platform", "option"], sort=False, as_index=False)
               .agg(revenue=("revenue", "sum")))
    options["po"] = np.arange(len(options))
    bom = bom.merge(options[["p", "option", "po"]], on=["p", "option"], how="left")

    demand = np.zeros((len(plats), T))
    if not plan.demand.empty:
        d = plan.demand.groupby(["platform", "period"], as_index=False)["units"].sum()
        for plat, per, u in zip(d["platform"], d["period"], d["units"], strict=True):
            demand[p_of[plat], period_index(per, first)] += u

    exps = plan.expansions.copy().reset_index(drop=True)
    exps["e"] = np.arange(len(exps))
    exps["fn"] = [fn_of[(f, n)] for f, n in zip(exps["fab"], exps["node"], strict=True)] if len(exps) else []
    exps["earliest"] = [max(0, period_index(p, first)) for p in exps["earliest_period"]] if len(exps) else []

    ms = ModelSets(T=T, periods=periods, products=prods, fabs=fabs, fab_cap=fab_cap, backend=backend,
                   backend_cap=backend_cap, platforms=plats, bom=bom, options=options, demand=demand,
                   expansions=exps, programs=programs, ramp=_ramp_curves(plan, product_pos))
    ms.wip_in_flight, ms.wip_committed = _wip(plan, ms, fn_of)
    ms.frozen_quarters, ms.frozen = _frozen(plan, ms, fn_of)
    return ms


_IN_FLIGHT_COLS = ["fab", "node", "product", "m", "s", "land", "wafers", "g", "units", "r", "backend_use",
                   "unit_cost", "rows"]
_COMMITTED_COLS = ["fab", "node", "product", "fn", "m", "s", "wafers", "rows"]


def _wip(plan: PlanData, ms: ModelSets, fn_of: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """WIP rows summed per fab, node, product and start quarter, split into in flight (s < 0, output landing inside
    the horizon: its good units are fixed, ramp factor of the start quarter) and committed (0 ≤ s < T)."""
    wip = plan.wip
    if wip.empty:
        return pd.DataFrame(columns=_IN_FLIGHT_COLS), pd.DataFrame(columns=_COMMITTED_COLS)
    prods = ms.products.set_index("product")
    df = wip.assign(s=[period_index(p, plan.settings.first_period) for p in wip["start_period"]],
                    rows=wip["_row"].astype(str))
    df = (df.groupby(["fab", "node", "product", "s"], as_index=False, sort=True)
          .agg(wafers=("wafers", "sum"), rows=("rows", ", ".join)))
    df = df[df["product"].isin(prods.index) & (df["wafers"] > 0)].reset_index(drop=True)
    df["m"] = prods.loc[df["product"], "m"].to_numpy().astype(int)
    df["fn"] = [fn_of.get((f, n), -1) for f, n in zip(df["fab"], df["node"], strict=True)]
    df["land"] = df["s"] + prods.loc[df["product"], "cycle_quarters"].to_numpy().astype(int)
    inside = (df["land"] >= 0) & (df["land"] <= ms.T - 1)  # validation drops the rest; edits may move cycles
    fly = df[(df["s"] < 0) & inside].reset_index(drop=True)
    fly["g"] = ms.good_units_per_wafer(fly["m"].to_numpy(), fly["s"].to_numpy())
    fly["units"] = fly["wafers"] * fly["g"]
    for col in ("r", "backend_use", "unit_cost"):
        fly[col] = prods.loc[fly["product"], col].to_numpy()
    committed = df[(df["s"] >= 0) & (df["s"] < ms.T)].reset_index(drop=True)
    return fly[_IN_FLIGHT_COLS], committed[_COMMITTED_COLS]


def _frozen(plan: PlanData, ms: ModelSets, fn_of: dict) -> tuple[list[int], pd.DataFrame]:
    """The frozen zone's quarters (indices) and the baseline's starts in them, for products and fab/nodes of this
    plan (:func:`planner.analysis.baseline.freeze` names the others)."""
    cols = ["fab", "node", "product", "fn", "m", "s", "wafers"]
    zone = plan.frozen
    if zone is None or plan.settings.frozen_quarters <= 0:
        return [], pd.DataFrame(columns=cols)
    first = plan.settings.first_period
    quarters = sorted({period_index(p, first) for p in zone.periods} & set(range(plan.settings.frozen_quarters)))
    st = zone.starts
    if st.empty or not quarters:
        return quarters, pd.DataFrame(columns=cols)
    pos = dict(zip(ms.products["product"], ms.products["m"], strict=True))
    df = st.assign(s=[period_index(p, first) for p in st["period"]])
    df = df[df["s"].isin(quarters)]
    df = df.groupby(["fab", "node", "product", "s"], as_index=False, sort=True)["wafers"].sum()
    df["m"] = df["product"].map(pos)
    df["fn"] = [fn_of.get((f, n), -1) for f, n in zip(df["fab"], df["node"], strict=True)]
    df = df[df["m"].notna() & (df["fn"] >= 0)].reset_index(drop=True)
    df["m"] = df["m"].astype(int)
    return quarters, df[cols]
