"""Solution → tidy frames: the contract's report tables (Summary, Allocation, Service, WaferStarts, Supply,
Capacity) plus Expansions, with names and periods in the user's words.

Also the reconciliation a reader of the report relies on: allocated ≤ made + on hand, made ≤ what capacity
allowed, served ≤ demand. :func:`reconcile` checks it on the frames themselves, so a mistake anywhere between
the LP and the sheet is caught, not only inside the solver.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from planner.model.build import Model
from planner.solve.policy import SOLVER_TOL, Solution, price_candidates

EPS = 1e-6
PRICE_REL = 1e-9  # ±1 margin changes below this share of the objective are round-off of two large optima


@dataclass
class Results:
    summary: dict
    allocation: pd.DataFrame
    service: pd.DataFrame
    wafer_starts: pd.DataFrame
    supply: pd.DataFrame
    capacity: pd.DataFrame
    expansions: pd.DataFrame
    terms: dict[str, float]
    reconciliation: list[str] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)
    periods: list[str] = field(default_factory=list)  # the horizon's quarters, in order

    @property
    def backlog(self) -> bool:
        return bool(self.summary.get("backlog"))

    def platform_service(self) -> pd.DataFrame:
        """Service per platform over the horizon (:func:`platform_service`)."""
        return platform_service(self.service, self.backlog, self.periods)

    def kpis(self) -> dict:
        """Compact numbers for comparisons and batches.

        Per platform: ``fill_rate[p]``, ``unserved[p]`` (demand never served within the horizon) and, with
        backlog, ``backlog_unit_quarters[p]`` — never the backlog levels added up as units.
        """
        k = {key: self.summary[key] for key in ("status", "objective", "margin", "revenue", "cost",
                                                "shortfall_penalty", "fill_rate")}
        for r in self.platform_service().itertuples(index=False):
            k[f"fill_rate[{r.platform}]"] = r.fill_rate
            k[f"unserved[{r.platform}]"] = r.unserved
            if self.backlog:
                k[f"backlog_unit_quarters[{r.platform}]"] = r.backlog_unit_quarters
        return k


def platform_service(service: pd.DataFrame, backlog: bool, periods: list[str] | None = None) -> pd.DataFrame:
    """Service per platform over the horizon, counting every unit of demand once.

    Columns ``platform, demand, served, unserved, fill_rate``; ``unserved`` is demand never served within the
    horizon: the lost sales (``backlog = false``) or the last quarter's backlog (``backlog = true``; it equals
    demand − served, since backlog carries every unserved unit forward). With backlog also:

    - ``backlog_unit_quarters`` = Σ_t backlog[t]: one unit waiting at the end of one quarter is one unit-quarter
      (the quantity the backlog penalty is charged on; the contract's per-quarter ``shortfall`` column summed);
    - ``served_late`` and ``avg_delay_quarters``, with the oldest orders served first: in quarter t the first
      ``min(served[t], backlog[t-1])`` units served are late. The units never served are then the newest, each
      waiting from its quarter to the horizon end, and the late units waited the rest of the unit-quarters.

    The Service table's per-quarter ``shortfall`` under backlog is a *level*; adding levels over quarters counts
    a unit once for every quarter it waits, which is why no total here does that.
    """
    cols = ["platform", "demand", "served", "unserved", "fill_rate"]
    if backlog:
        cols += ["served_late", "avg_delay_quarters", "backlog_unit_quarters"]
    if service.empty:
        return pd.DataFrame(columns=cols)
    periods = list(periods) if periods else sorted(service["period"].unique())
    plats = pd.unique(service["platform"])
    p = pd.Categorical(service["platform"], categories=plats).codes
    t = service["period"].map({q: i for i, q in enumerate(periods)}).to_numpy()
    P, T = len(plats), len(periods)
    D, S, B = (np.zeros((P, T)) for _ in range(3))
    for arr, col in ((D, "demand"), (S, "served"), (B, "shortfall")):
        np.add.at(arr, (p, t), service[col].to_numpy(dtype=float))
    out = pd.DataFrame({"platform": plats, "demand": D.sum(axis=1), "served": S.sum(axis=1)})
    with np.errstate(invalid="ignore", divide="ignore"):
        out["fill_rate"] = np.where(out["demand"] > 0, out["served"] / out["demand"], np.nan)
    if not backlog:
        out["unserved"] = B.sum(axis=1)
        return out[cols]
    before = np.hstack([np.zeros((P, 1)), B[:, :-1]])
    late = np.minimum(S, before).sum(axis=1)
    unserved = B[:, -1]
    # the never-served units are the newest demand: quarter t holds min(D_t, what is left after later quarters)
    after = np.cumsum(D[:, ::-1], axis=1)[:, ::-1] - D
    take = np.minimum(D, np.maximum(unserved[:, None] - after, 0.0))
    waiting = (take * (T - np.arange(T))[None, :]).sum(axis=1)
    unit_quarters = B.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        delay = np.where(late > EPS, (unit_quarters - waiting) / late, 0.0)
    out = out.assign(unserved=unserved, served_late=late, avg_delay_quarters=delay,
                     backlog_unit_quarters=unit_quarters)
    return out[cols]


def _clean(v: np.ndarray) -> np.ndarray:
    v = np.where(np.abs(v) < EPS, 0.0, v)
    return v


def _below_tolerance(demand: np.ndarray, served: np.ndarray, short: np.ndarray,
                     backlog: bool) -> tuple[np.ndarray, np.ndarray]:
    """A shortfall within the solver's tolerance of what its row owes is noise: show it as 0, and the quarter
    as served in full (``models/formulation.md``, "Reading the plan"). What was owed is the quarter's demand,
    plus the backlog carried into it."""
    owed = demand.copy()
    if backlog:
        owed[:, 1:] += short[:, :-1]
    tiny = (short != 0) & (np.abs(short) <= SOLVER_TOL * np.maximum(1.0, owed))
    return np.where(tiny, owed, served), np.where(tiny, 0.0, short)


def _prices(model: Model, sol: Solution, rows: np.ndarray, shadow: np.ndarray):
    """Capacity columns value_of_one_more, cost_of_one_less, price_check (``models/formulation.md``, "When the
    shadow price is not unique"), from the solve's ±1 re-solves."""
    n = len(rows)
    more, less = np.zeros(n), np.zeros(n)
    check = np.array([""] * n, dtype=object)
    if sol.x is None:
        return np.full(n, np.nan), np.full(n, np.nan), check
    talk, _ = price_candidates(model, sol.x, sol.row_dual)
    talk = set(talk.tolist())
    bound = model.lp.bounds()[3][rows]
    scale = PRICE_REL * max(1.0, abs(sol.objective or 0.0))
    for i, r in enumerate(rows.tolist()):
        if r not in talk:
            continue  # a unit of slack or more and a zero dual: one unit either way changes nothing
        if r not in sol.prices:
            more[i] = less[i] = np.nan
            check[i] = "not checked"
            continue
        up, down = sol.prices[r]
        # a difference of two re-solved objectives within PRICE_REL of the objective is round-off: 0; a side the
        # basis vouched for is the dual itself, exactly (no difference was taken), and stays what it is — else a
        # $6 dual on a $10B plan read "one more: $0, unique" beside a shadow price of $6
        more[i] = up if up == shadow[i] or abs(up) > scale else 0.0
        less[i] = down if np.isnan(down) or down == shadow[i] or abs(down) > scale else 0.0
        if bound[i] < 1.0:
            check[i] = "less than one unit"  # nothing to take away: only one more is meaningful
        elif np.isnan(down):
            check[i] = "one less infeasible"
        elif abs(more[i] - shadow[i]) <= scale + 1e-6 * abs(shadow[i]) and \
                abs(less[i] - shadow[i]) <= scale + 1e-6 * abs(shadow[i]):
            check[i] = "unique"
        else:
            check[i] = "not unique"
    return more, less, check


def add_prices(res: Results, model: Model, sol: Solution) -> None:
    """Capacity's value_of_one_more, cost_of_one_less and price_check, from the solve's ±1 checks: part of
    :func:`extract`, or, when the checks ran on a thread of their own (``solve_model(prices_later=True)``),
    added once they are done (``sol.settle_prices()`` first)."""
    lp = model.lp
    rows = np.concatenate([lp.row_blocks["fab_capacity"].positions, lp.row_blocks["backend_capacity"].positions])
    cap = res.capacity
    cap["value_of_one_more"], cap["cost_of_one_less"], cap["price_check"] = _prices(
        model, sol, rows, cap["shadow_price"].to_numpy())


def service_grid(model: Model, x: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Served and short platform units per (platform, quarter) of solution ``x``, with differences below the
    solver's tolerance cleaned (a fully served platform reads fully served). ``units`` are the platform units of
    the model's served columns (``model.y``'s rows, in order)."""
    ms, lp = model.sets, model.lp
    served = np.zeros((len(ms.platforms), ms.T))
    np.add.at(served, (model.y["p"].to_numpy(), model.y["t"].to_numpy()), units)
    short = np.zeros_like(served)
    sblock = lp.col_blocks["backlog" if model.settings.backlog else "shortfall"]
    if sblock.size:
        sidx = sblock.index
        p_of = dict(zip(ms.platforms["platform"], ms.platforms["p"], strict=True))
        short[sidx["platform"].map(p_of).to_numpy(), sidx["t"].to_numpy()] = _clean(x[sblock.positions])
    return _below_tolerance(ms.demand, served, short, model.settings.backlog)


def extract(model: Model, sol: Solution) -> Results:
    ms = model.sets
    lp = model.lp
    periods = ms.periods
    T = ms.T
    x = sol.x if sol.x is not None else np.zeros(lp.n_cols)
    dual = sol.row_dual if sol.row_dual is not None else np.zeros(lp.n_rows)
    currency = model.settings.currency

    # Allocation: one row per non-zero (platform, option, product, quarter)
    y = model.y.copy()
    y["platform_units"] = _clean(x[y["col"].to_numpy()])
    alloc = y[y["platform_units"] > 0].merge(ms.bom[["po", "product", "units_per_platform", "price"]], on="po")
    alloc["memory_units"] = alloc["platform_units"] * alloc["units_per_platform"]
    alloc["revenue"] = alloc["memory_units"] * alloc["price"]
    alloc["period"] = [periods[t] for t in alloc["t"]]
    allocation = alloc[["platform", "period", "option", "product", "platform_units", "memory_units", "revenue"]]
    allocation = allocation.sort_values(["platform", "period", "option", "product"]).reset_index(drop=True)

    # Service
    served, short = service_grid(model, x, y["platform_units"].to_numpy())
    p_grid, t_grid = np.meshgrid(np.arange(len(ms.platforms)), np.arange(T), indexing="ij")
    svc = pd.DataFrame({"platform": ms.platforms["platform"].to_numpy()[p_grid.ravel()],
                        "period": [periods[t] for t in t_grid.ravel()],
                        "demand": ms.demand.ravel(), "served": served.ravel(), "shortfall": short.ravel()})
    svc = svc[(svc["demand"] > 0) | (svc["served"] > 0) | (svc["shortfall"] > 0)].reset_index(drop=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        svc["fill_rate"] = np.where(svc["demand"] > 0, svc["served"] / svc["demand"], np.nan)

    # Wafer starts
    # on the model's columns as arrays: a copy of the 386k-row frame took 0.1 s at 416k LP columns
    w = model.w
    w_wafers = _clean(x[w["col"].to_numpy()])
    w_units = w_wafers * w["g"].to_numpy()
    started = w_wafers > 0
    ws = w.loc[started, ["fab", "node", "product", "fn", "m", "s", "land"]].assign(
        wafers=w_wafers[started], output_units=w_units[started])
    ws["period"] = [periods[s] for s in ws["s"]]
    ws["lands"] = [periods[t] for t in ws["land"]]
    com = ms.wip_committed
    if len(com):  # the WIP commitment behind each start (`wip_committed`), 0 where none
        ws = ws.merge(com[["fn", "m", "s", "wafers"]].rename(columns={"wafers": "committed"}), on=["fn", "m", "s"],
                      how="left")
    else:
        ws = ws.assign(committed=np.nan)
    ws["committed"] = ws["committed"].fillna(0.0)
    wafer_starts = ws[["fab", "node", "product", "period", "wafers", "output_units", "lands", "committed"]].rename(
        columns={"output_units": "good_units"}).reset_index(drop=True)

    # Supply
    M = len(ms.products)
    output = np.zeros((M, T))
    np.add.at(output, (w["m"].to_numpy(), w["land"].to_numpy()), w_units)
    wip_out = np.zeros((M, T))  # in-flight WIP landing (`wip_in_flight`): part of the output
    fly = model.wip if model.wip is not None else pd.DataFrame(columns=["m", "land", "col", "r", "backend_use"])
    if len(fly):
        np.add.at(wip_out, (fly["m"].to_numpy(dtype=np.int64), fly["land"].to_numpy(dtype=np.int64)),
                  x[fly["col"].to_numpy(dtype=np.int64)])
    output += wip_out
    shipped = np.zeros((M, T))
    use = y[["po", "t", "platform_units"]].merge(ms.bom[["po", "m", "units_per_platform"]], on="po")
    np.add.at(shipped, (use["m"].to_numpy(), use["t"].to_numpy()),
              (use["platform_units"] * use["units_per_platform"]).to_numpy())
    inv = _clean(x[lp.cols("inventory")]).reshape(M, T)
    supply = pd.DataFrame({"product": np.repeat(ms.products["product"].to_numpy(), T),
                           "period": periods * M, "output_units": _clean(output.ravel()),
                           "shipped_units": _clean(shipped.ravel()), "inventory_end": inv.ravel(),
                           "wip_units": _clean(wip_out.ravel())})
    supply.insert(1, "family", np.repeat(ms.products["family"].to_numpy(), T))

    # Expansions decided
    xb = lp.col_blocks["expansion"]
    xe = xb.index.copy()
    xe["wafers"] = _clean(x[xb.positions]) if xb.size else []
    xe = xe[xe["wafers"] > 0]
    e = ms.expansions
    expansions = pd.DataFrame({
        "fab": e["fab"].to_numpy()[xe["e"].to_numpy()] if len(xe) else [],
        "node": e["node"].to_numpy()[xe["e"].to_numpy()] if len(xe) else [],
        "decided": [periods[t] for t in xe["tau"]],
        "available_from": [periods[t + int(e["lead_quarters"].iloc[i])] for t, i in zip(xe["tau"], xe["e"],
                                                                                          strict=True)],
        "wafers_per_quarter": xe["wafers"].to_numpy(),
        "cost": xe["wafers"].to_numpy() * (e["cost_per_wafer"].to_numpy()[xe["e"].to_numpy()] if len(xe) else 0),
        "row": e["_row"].to_numpy()[xe["e"].to_numpy()] if len(xe) else [],  # the option's Expansions row
    })

    # Capacity: fab/node (base + expansions in effect) and back-end lines
    fab_rows = lp.row_blocks["fab_capacity"]
    added = np.zeros((len(ms.fabs), T))
    for fn, tau, wafers, lead in zip(xe.merge(e[["e", "fn", "lead_quarters"]], on="e")["fn"],
                                     xe["tau"], xe["wafers"], e["lead_quarters"].to_numpy()[xe["e"].to_numpy()]
                                     if len(xe) else [], strict=True):
        added[fn, tau + lead:] += wafers
    wafers_used = np.zeros((len(ms.fabs), T))
    np.add.at(wafers_used, (w["fn"].to_numpy(), w["s"].to_numpy()), w_wafers)
    fab_cap = pd.DataFrame({
        "resource": [f"{f}/{n}" for f, n in zip(fab_rows.index["fab"], fab_rows.index["node"], strict=True)],
        "kind": "fab", "unit": "wafers", "period": [periods[t] for t in fab_rows.index["t"]],
        "capacity": (ms.fab_cap + added).ravel(), "used": wafers_used.ravel(),
        "shadow_price": dual[fab_rows.positions]})
    be_rows = lp.row_blocks["backend_capacity"]
    be_used = np.zeros((len(ms.backend), T))
    r = w["r"].to_numpy()
    on = r >= 0
    np.add.at(be_used, (r[on], w["land"].to_numpy()[on]), w_units[on] * w["backend_use"].to_numpy()[on])
    fly_be = fly[fly["r"] >= 0] if len(fly) else fly
    if len(fly_be):
        np.add.at(be_used, (fly_be["r"].to_numpy(dtype=np.int64), fly_be["land"].to_numpy(dtype=np.int64)),
                  x[fly_be["col"].to_numpy(dtype=np.int64)] * fly_be["backend_use"].to_numpy(dtype=float))
    be_cap = pd.DataFrame({"resource": be_rows.index["resource"].to_numpy(), "kind": "backend", "unit": "units",
                           "period": [periods[t] for t in be_rows.index["t"]],
                           "capacity": ms.backend_cap.ravel(), "used": be_used.ravel(),
                           "shadow_price": dual[be_rows.positions]})
    capacity = pd.concat([fab_cap, be_cap], ignore_index=True)
    capacity["used"] = _clean(capacity["used"].to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        capacity["utilisation"] = np.where(capacity["capacity"] > 0, capacity["used"] / capacity["capacity"],
                                           np.nan)
    capacity["shadow_price"] = _clean(capacity["shadow_price"].to_numpy().astype(float))
    capacity = capacity[["resource", "kind", "unit", "period", "capacity", "used", "utilisation", "shadow_price"]]

    terms = lp.term_values(x) if sol.x is not None else {k: 0.0 for k in lp.terms}
    revenue = terms.get("revenue", 0.0)
    cost = sum(terms.get(k, 0.0) for k in ("wafer_cost", "unit_cost", "holding_cost", "expansion_cost"))
    penalty = terms.get("shortfall_penalty", 0.0)
    total_demand = float(ms.demand.sum())
    summary = {
        "status": sol.status,
        "objective": revenue - cost - penalty if sol.x is not None else None,
        "margin": revenue - cost if sol.x is not None else None,  # the profit; the objective also counts penalties
        "revenue": revenue, "cost": cost, "shortfall_penalty": penalty,
        "fill_rate": float(served.sum() / total_demand) if total_demand > 0 else None,
        "wafer_cost": terms.get("wafer_cost", 0.0), "unit_cost": terms.get("unit_cost", 0.0),
        "holding_cost": terms.get("holding_cost", 0.0), "expansion_cost": terms.get("expansion_cost", 0.0),
        "demand_units": total_demand, "served_units": float(served.sum()),
        "policy": model.settings.policy, "backlog": model.settings.backlog,
        "solver": sol.solver, "method": sol.method, "solve_seconds": sol.seconds,
        "lp_columns": lp.n_cols, "lp_rows": lp.n_rows, "max_violation": sol.max_violation,
        "currency": currency, "input_sha256": model.input_sha256, "message": sol.message,
    }
    res = Results(summary=summary, allocation=allocation, service=svc, wafer_starts=wafer_starts, supply=supply,
                  capacity=capacity, expansions=expansions, terms=terms, stages=sol.stages,
                  periods=list(periods))
    if sol.pending_prices is None:  # else the caller adds them once the checks are done (add_prices)
        add_prices(res, model, sol)
    if sol.x is not None:
        res.reconciliation = reconcile(res, model.settings.backlog) + [f"LP residual: {v}" for v in
                                                                        sol.violations]
    summary["feasibility_check"] = "passed" if not res.reconciliation else "; ".join(res.reconciliation)
    return res


def _groups(keys: pd.Series, sort: bool) -> Iterator[tuple[Any, np.ndarray]]:
    """(key, row positions) per group, in ``keys.groupby(keys, sort=sort)``'s order (missing keys dropped)."""
    codes, names = pd.factorize(keys, sort=sort)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for k, name in enumerate(names):
        yield name, order[bounds[k]:bounds[k + 1]]


def _cumsum(v: np.ndarray) -> np.ndarray:
    """``pd.Series.cumsum``'s numbers: a plain running sum (no compensation, as groupby's has), NaN kept."""
    nan = np.isnan(v)
    out = np.cumsum(np.where(nan, 0.0, v))
    out[nan] = np.nan
    return out


def reconcile(res: Results, backlog: bool, tol: float = 1e-6) -> list[str]:
    """Check the report's own tables: what was allocated ≤ what was made ≤ what capacity allowed.

    On arrays, not group by group in pandas: at 416k LP columns that took 0.2 s of the run. The numbers compared
    (running sums included) and the messages, in their order, are the same."""
    issues: list[str] = []
    sup = res.supply
    out, ship, inv = (sup[c].to_numpy(dtype=float) for c in ("output_units", "shipped_units", "inventory_end"))
    for prod, at in _groups(sup["product"], sort=False):
        o, s, i = out[at], ship[at], inv[at]
        cum_avail = (i[0] - o[0] + s[0]) + _cumsum(o)
        if (_cumsum(s) > cum_avail + tol * np.maximum(1, cum_avail)).any():
            issues.append(f"{prod}: shipped more than made plus on hand")
        if (i < -tol).any():
            issues.append(f"{prod}: negative inventory")
    alloc_mem = res.allocation.groupby(["product", "period"])["memory_units"].sum()
    if len(alloc_mem):
        have = sup.set_index(["product", "period"])["shipped_units"].reindex(alloc_mem.index, fill_value=0.0)
        v, b = alloc_mem.to_numpy(dtype=float), have.to_numpy(dtype=float)
        far = ~(np.abs(v - b) <= tol * np.maximum(np.maximum(1.0, np.abs(v)), np.abs(b)))
        issues += [f"{key}: allocation {x:,.0f} ≠ shipped {y:,.0f}"
                   for key, x, y in zip(alloc_mem.index[far], v[far].tolist(), b[far].tolist(), strict=True)]
    cap = res.capacity
    over = cap[cap["used"] > cap["capacity"] + tol * np.maximum(1.0, cap["capacity"])]
    issues += [f"{r.resource} {r.period}: used {r.used:,.0f} > capacity {r.capacity:,.0f}" for r in over.itertuples()]
    svc = res.service
    if not backlog:
        bad = svc[svc["served"] > svc["demand"] + tol * np.maximum(1.0, svc["demand"])]
        issues += [f"{r.platform} {r.period}: served more than demand" for r in bad.itertuples()]
        bad = svc[~np.isclose(svc["served"] + svc["shortfall"], svc["demand"], rtol=tol, atol=1e-3)]
        issues += [f"{r.platform} {r.period}: served + shortfall ≠ demand" for r in bad.itertuples()]
    else:
        served, demand = svc["served"].to_numpy(dtype=float), svc["demand"].to_numpy(dtype=float)
        for plat, at in _groups(svc["platform"], sort=True):
            if (_cumsum(served[at]) > _cumsum(demand[at]) * (1 + tol) + 1e-3).any():
                issues.append(f"{plat}: cumulative served exceeds cumulative demand")
    return issues


WHOLE_WAFERS_NOTE = ("Wafer starts are shown in whole wafers: each fab, node and quarter adds up to its own total "
                     "rounded (never above capacity), split by largest remainder. The LP plans wafers continuously; "
                     "good units, supply, costs and margin come from the unrounded plan.")


def whole_wafers(wafer_starts: pd.DataFrame, capacity: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wafer starts in whole wafers for reading, and the fab rows of Capacity recomputed from them.

    A fab starts whole wafers; the LP's continuous starts (123,456.37) would read as false precision and their
    sum would not match the rounded numbers beside it. Within each fab, node and quarter the starts are rounded
    by largest remainder to the group's rounded total (at most the capacity, rounded down), so every total
    shown — Capacity.used, wafers per fab in a comparison, the chart stacks — is the sum of what is shown.
    Good units stay the LP's (units are what was planned, not re-derived from rounded wafers), and the LP's own
    starts are kept beside them as ``wafers_lp``: wafer cost, and so margin, are charged on those, so a reader
    can recompute every money figure from the sheet.
    """
    ws = wafer_starts.copy()
    cap = capacity.copy()
    if ws.empty:
        return ws, cap
    exact = ws["wafers"].to_numpy(dtype=float)
    floor = np.floor(exact + 1e-9)
    ws["_floor"], ws["_frac"] = floor, exact - floor
    ws["_resource"] = ws["fab"].astype(str) + "/" + ws["node"].astype(str)
    limit = cap[cap["kind"] == "fab"].set_index(["resource", "period"])["capacity"]
    groups = ws.groupby(["_resource", "period"], sort=False)
    total = groups["wafers"].transform("sum").to_numpy()
    cap_of = pd.MultiIndex.from_arrays([ws["_resource"], ws["period"]]).map(limit.to_dict()).to_numpy(dtype=float)
    target = np.round(total)
    known = ~np.isnan(cap_of)
    target[known] = np.minimum(target[known], np.floor(cap_of[known] + 1e-9))
    extra = target - groups["_floor"].transform("sum").to_numpy()
    rank = groups["_frac"].rank(method="first", ascending=False).to_numpy() - 1
    ws["wafers"] = floor + (rank < extra).astype(float)
    ws.insert(ws.columns.get_loc("wafers") + 1, "wafers_lp", exact)
    used = ws.groupby(["_resource", "period"])["wafers"].sum()
    fab = cap["kind"] == "fab"
    keys = pd.MultiIndex.from_arrays([cap.loc[fab, "resource"], cap.loc[fab, "period"]])
    cap.loc[fab, "used"] = keys.map(used.to_dict()).fillna(0.0).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = cap.loc[fab, "capacity"].to_numpy(dtype=float)
        shown = cap.loc[fab, "used"].to_numpy(dtype=float)
        cap.loc[fab, "utilisation"] = np.where(c > 0, shown / np.where(c > 0, c, 1.0), np.nan)
    return ws.drop(columns=["_floor", "_frac", "_resource"]), cap
