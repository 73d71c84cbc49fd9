"""Money per platform: revenue, memory cost, margin and shortfall penalty per platform and quarter (and year), with
totals equal to the Summary's (``models/pnl.md`` is the rule).

Memory cost is attributed by the memory units shipped to each platform, at each product's *average cost of that
quarter*: weighted-average inventory costing over the plan's own numbers. A product's cost pool in quarter t is the
value of its inventory carried in plus what its output landing in t cost (wafer cost of those starts, unit cost, and
their share of any expansion they ran on); the average cost is the pool over the units available (carried + landed);
shipped units leave at that cost, the rest is carried on (plus its holding cost). What is still in stock at the
horizon's end, and expansions no start ever used, are costs of no platform: they appear as their own rows, so that
every cost the Summary counts is in the table exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.analysis.results import Results
from planner.io.validate import PlanData

END_INVENTORY = "(end inventory)"
UNUSED_EXPANSION = "(unused expansion)"
COLUMNS = ["platform", "year", "revenue", "memory_cost", "margin", "shortfall_penalty"]


@dataclass
class PnL:
    by_year: pd.DataFrame  # platform, year, revenue, memory_cost, margin, shortfall_penalty (the PnL sheet)
    by_quarter: pd.DataFrame  # platform, period, revenue, memory_cost, margin, shortfall_penalty
    unit_cost: pd.DataFrame  # product, period: output, production cost, pool, average cost, shipped, carried value

    def totals(self) -> dict[str, float]:
        t = self.by_year[["revenue", "memory_cost", "margin", "shortfall_penalty"]].sum()
        return {k: float(v) for k, v in t.items()}


def _expansion_shares(plan: PlanData, res: Results) -> tuple[pd.DataFrame, list[dict]]:
    """Each bought expansion's cost spread over the wafers started at its fab/node from the quarter it is usable
    on, in proportion to wafers (into the cost of the quarter those wafers land). Returns per-start costs and the
    expansions no start used."""
    ws = res.wafer_starts
    share = np.zeros(len(ws))
    unused = []
    pos = {p: i for i, p in enumerate(plan.periods)}
    t = ws["period"].map(pos).to_numpy()
    wafers = ws["wafers"].to_numpy(dtype=float)
    line = (ws["fab"] + "/" + ws["node"]).to_numpy() if len(ws) else np.array([], dtype=object)
    for e in res.expansions.itertuples():
        if e.cost <= 0:
            continue
        sel = (line == f"{e.fab}/{e.node}") & (t >= pos[e.available_from]) & (wafers > 0)
        total = float(wafers[sel].sum())
        if total <= 0:
            unused.append({"period": e.decided, "cost": float(e.cost)})
            continue
        share[sel] += float(e.cost) * wafers[sel] / total
    return ws.assign(expansion_cost=share), unused


def _grid(df: pd.DataFrame, col: str, products: list[str], periods: list[str]) -> np.ndarray:
    return (df.pivot_table(index="product", columns="period", values=col, aggfunc="sum")
            .reindex(index=products, columns=periods).fillna(0.0).to_numpy(dtype=float)) if len(df) else \
        np.zeros((len(products), len(periods)))


def pnl(plan: PlanData, res: Results) -> PnL:
    """The P&L tables of a solved plan (see the module docstring for the attribution rule)."""
    periods = plan.periods
    T = len(periods)
    t_of = {p: i for i, p in enumerate(periods)}
    products = list(plan.products["product"])
    M = len(products)
    fab_cost = {(f, n): float(c) for f, n, c in zip(plan.fabs["fab"], plan.fabs["node"], plan.fabs["wafer_cost"],
                                                   strict=True)}
    ws, unused = _expansion_shares(plan, res)
    ws = ws.assign(cost=[w * fab_cost[(f, n)] for f, n, w in zip(ws["fab"], ws["node"], ws["wafers"], strict=True)],
                   period=ws["lands"])  # a start's costs belong to the quarter its output lands
    wafer = _grid(ws, "cost", products, periods)
    exp = _grid(ws, "expansion_cost", products, periods)
    sup = res.supply
    out, shipped, inv = (_grid(sup, c, products, periods) for c in ("output_units", "shipped_units", "inventory_end"))
    uc = plan.products["unit_cost"].fillna(0.0).to_numpy(dtype=float)
    hc = plan.products["holding_cost"].fillna(0.0).to_numpy(dtype=float)
    unit = uc[:, None] * out
    holding = hc[:, None] * inv
    avg = np.zeros((M, T))
    value_in, carried_in = np.zeros((M, T)), np.zeros((M, T))
    value = np.zeros(M)  # initial inventory is sunk: the objective never counted its cost
    carried = inv[:, 0] - out[:, 0] + shipped[:, 0] if T else np.zeros(M)
    for t in range(T):
        value_in[:, t], carried_in[:, t] = value, carried
        available = carried + out[:, t]
        pool = value + wafer[:, t] + exp[:, t] + unit[:, t]
        with np.errstate(invalid="ignore", divide="ignore"):
            avg[:, t] = np.where(available > 1e-9, pool / available, 0.0)
        value = avg[:, t] * inv[:, t] + holding[:, t]
        carried = inv[:, t]
    end_value = float(value.sum())
    unit_cost = pd.DataFrame({
        "product": np.repeat(products, T), "period": periods * M, "carried_in_units": carried_in.ravel(),
        "carried_in_value": value_in.ravel(), "output_units": out.ravel(), "wafer_cost": wafer.ravel(),
        "unit_cost": unit.ravel(), "expansion_cost": exp.ravel(), "average_cost": avg.ravel(),
        "shipped_units": shipped.ravel(), "shipped_cost": (avg * shipped).ravel(), "inventory_end": inv.ravel(),
        "holding_cost": holding.ravel(), "carried_out_value": (avg * inv + holding).ravel()})

    alloc = res.allocation
    m_of = {m: i for i, m in enumerate(products)}
    if len(alloc):
        a = alloc.assign(c=avg[alloc["product"].map(m_of).to_numpy(), alloc["period"].map(t_of).to_numpy()]
                         * alloc["memory_units"].to_numpy(dtype=float))
        rev = a.groupby(["platform", "period"])["revenue"].sum()
        cost = a.groupby(["platform", "period"])["c"].sum()
    else:
        rev = cost = pd.Series(dtype=float)
    svc = res.service
    pen_of = dict(zip(plan.platforms["platform"], plan.platforms["shortfall_penalty"], strict=True))
    pen = (svc.assign(v=svc["shortfall"] * svc["platform"].map(pen_of)).groupby(["platform", "period"])["v"].sum()
           if len(svc) else pd.Series(dtype=float))
    order = {p: i for i, p in enumerate(plan.platforms["platform"])}
    keys = sorted(set(rev.index) | set(cost.index) | set(pen.index), key=lambda k: (order[k[0]], t_of[k[1]]))
    at = pd.MultiIndex.from_tuples(keys) if keys else None

    def on_keys(s: pd.Series) -> np.ndarray:  # the series' value at each key, 0 where it has none (a lookup
        # per key and series took 0.2 s at 416k LP columns)
        return s.reindex(at, fill_value=0.0).to_numpy(dtype=float) if len(s) else np.zeros(len(keys))

    q = pd.DataFrame({"platform": [k[0] for k in keys], "period": [k[1] for k in keys], "revenue": on_keys(rev),
                      "memory_cost": on_keys(cost), "shortfall_penalty": on_keys(pen)},
                     columns=["platform", "period", "revenue", "memory_cost", "shortfall_penalty"]) if keys else \
        pd.DataFrame(columns=["platform", "period", "revenue", "memory_cost", "shortfall_penalty"])  # text columns
    extra = []
    if end_value > 1e-9:
        extra.append({"platform": END_INVENTORY, "period": periods[-1], "revenue": 0.0, "memory_cost": end_value,
                      "shortfall_penalty": 0.0})
    for u in unused:
        extra.append({"platform": UNUSED_EXPANSION, "period": u["period"], "revenue": 0.0, "memory_cost": u["cost"],
                      "shortfall_penalty": 0.0})
    if extra:
        q = pd.concat([q, pd.DataFrame(extra)], ignore_index=True)
        q = q.groupby(["platform", "period"], sort=False, as_index=False).sum()
    q["margin"] = q["revenue"] - q["memory_cost"]
    q = q[["platform", "period", "revenue", "memory_cost", "margin", "shortfall_penalty"]]
    y = q.assign(year=q["period"].str[:4].astype(int))
    by_year = (y.groupby(["platform", "year"], sort=False, as_index=False)
               [["revenue", "memory_cost", "margin", "shortfall_penalty"]].sum())
    return PnL(by_year=by_year[COLUMNS], by_quarter=q.reset_index(drop=True), unit_cost=unit_cost)


def weeks_of_supply(res: Results, weeks_per_quarter: float = 13.0) -> pd.DataFrame:
    """Inventory at each quarter's end as weeks of the next quarter's shipments (the last quarter: its own), per
    product; NaN where nothing ships in that window (cover is then unbounded, or there is no stock to cover)."""
    sup = res.supply
    rows = []
    for product, g in sup.groupby("product", sort=False):
        inv = g["inventory_end"].to_numpy(dtype=float)
        ship = g["shipped_units"].to_numpy(dtype=float)
        nxt = np.append(ship[1:], ship[-1:]) if len(ship) else ship
        with np.errstate(invalid="ignore", divide="ignore"):
            wos = np.where(nxt > 1e-9, inv / (nxt / weeks_per_quarter), np.nan)
        rows += [{"product": product, "period": p, "weeks": w} for p, w in zip(g["period"], wos, strict=True)]
    df = pd.DataFrame(rows, columns=["product", "period", "weeks"])
    return df
