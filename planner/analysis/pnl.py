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
    share = pd.Series(0.0, index=ws.index)
    unused = []
    periods = plan.periods
    pos = {p: i for i, p in enumerate(periods)}
    for e in res.expansions.itertuples():
        if e.cost <= 0:
            continue
        sel = ((ws["fab"] == e.fab) & (ws["node"] == e.node)
               & (ws["period"].map(pos) >= pos[e.available_from]) & (ws["wafers"] > 0))
        total = float(ws.loc[sel, "wafers"].sum())
        if total <= 0:
            unused.append({"period": e.decided, "cost": float(e.cost)})
            continue
        share[sel] += float(e.cost) * ws.loc[sel, "wafers"] / total
    return ws.assign(expansion_cost=share), unused


def pnl(plan: PlanData, res: Results) -> PnL:
    """The P&L tables of a solved plan (see the module docstring for the attribution rule)."""
    periods = plan.periods
    T = len(periods)
    t_of = {p: i for i, p in enumerate(periods)}
    prods = plan.products.set_index("product")
    fab_cost = {(f, n): float(c) for f, n, c in zip(plan.fabs["fab"], plan.fabs["node"], plan.fabs["wafer_cost"],
                                                   strict=True)}
    ws, unused = _expansion_shares(plan, res)
    ws = ws.assign(cost=[w * fab_cost[(f, n)] for f, n, w in zip(ws["fab"], ws["node"], ws["wafers"], strict=True)])
    landed = (ws.assign(t=ws["lands"].map(t_of)).groupby(["product", "t"])[["cost", "expansion_cost"]].sum())

    sup = res.supply
    unit_rows = []
    avg: dict[tuple[str, int], float] = {}
    end_value = 0.0
    for product, g in sup.groupby("product", sort=False):
        g = g.set_index(g["period"].map(t_of)).sort_index()
        uc = float(prods.loc[product, "unit_cost"] or 0.0)
        hc = float(prods.loc[product, "holding_cost"] or 0.0)
        value = 0.0  # initial inventory is sunk: the objective never counted its cost
        carried = float(g["inventory_end"].iloc[0] - g["output_units"].iloc[0] + g["shipped_units"].iloc[0])
        for t in range(T):
            out, shipped, inv = (float(g.at[t, c]) for c in ("output_units", "shipped_units", "inventory_end"))
            wafer = float(landed["cost"].get((product, t), 0.0))
            exp = float(landed["expansion_cost"].get((product, t), 0.0))
            production = wafer + exp + uc * out
            pool = value + production
            available = carried + out
            a = pool / available if available > 1e-9 else 0.0
            avg[(product, t)] = a
            holding = hc * inv
            unit_rows.append({"product": product, "period": periods[t], "carried_in_units": carried,
                              "carried_in_value": value, "output_units": out, "wafer_cost": wafer,
                              "unit_cost": uc * out, "expansion_cost": exp, "average_cost": a,
                              "shipped_units": shipped, "shipped_cost": a * shipped, "inventory_end": inv,
                              "holding_cost": holding, "carried_out_value": a * inv + holding})
            value = a * inv + holding
            carried = inv
        end_value += value

    alloc = res.allocation
    rev = alloc.groupby(["platform", "period"])["revenue"].sum() if len(alloc) else pd.Series(dtype=float)
    cost = (alloc.assign(c=[avg[(m, t_of[p])] * u for m, p, u in
                            zip(alloc["product"], alloc["period"], alloc["memory_units"], strict=True)])
            .groupby(["platform", "period"])["c"].sum()) if len(alloc) else pd.Series(dtype=float)
    svc = res.service
    pen_of = dict(zip(plan.platforms["platform"], plan.platforms["shortfall_penalty"], strict=True))
    pen = (svc.assign(v=svc["shortfall"] * svc["platform"].map(pen_of)).groupby(["platform", "period"])["v"].sum()
           if len(svc) else pd.Series(dtype=float))
    keys = sorted(set(rev.index) | set(cost.index) | set(pen.index),
                  key=lambda k: (list(plan.platforms["platform"]).index(k[0]), t_of[k[1]]))
    q = pd.DataFrame([{"platform": p, "period": per, "revenue": float(rev.get((p, per), 0.0)),
                       "memory_cost": float(cost.get((p, per), 0.0)),
                       "shortfall_penalty": float(pen.get((p, per), 0.0))} for p, per in keys],
                     columns=["platform", "period", "revenue", "memory_cost", "shortfall_penalty"])
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
    return PnL(by_year=by_year[COLUMNS], by_quarter=q.reset_index(drop=True),
               unit_cost=pd.DataFrame(unit_rows))


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
