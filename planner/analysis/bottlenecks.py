"""What a planner reads first: the binding constraints, ranked by shadow price, in plain words.

Bottlenecks come from the duals of the final solve (``Capacity.shadow_price``); the platforms named are those
short in the quarters the resource feeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.analysis.results import Results
from planner.io.validate import PlanData
from planner.periods import index_label, period_index
from planner.report.fmt import money

SHADOW_TOL = 1e-6


def _affected_platforms(plan: PlanData, res: Results, kind: str, resource: str, period: str) -> list[str]:
    """Platforms short in the quarter(s) this resource feeds: fab wafers land cycle quarters later."""
    prods = plan.products
    if kind == "fab":
        fab, node = resource.split("/", 1)
        using = prods[prods["node"] == node]
        t = period_index(period, plan.settings.first_period)
        lands = {index_label(t + int(c), plan.settings.first_period) for c in using["cycle_quarters"]}
    else:
        using = prods[prods["backend"] == resource]
        lands = {period}
    plats = set(plan.bom.loc[plan.bom["product"].isin(using["product"]), "platform"])
    svc = res.service
    short = svc[svc["platform"].isin(plats) & svc["period"].isin(lands) & (svc["shortfall"] > 1e-6)]
    return sorted(short["platform"].unique())


def bottlenecks(plan: PlanData, res: Results) -> pd.DataFrame:
    """Binding capacity rows ranked by shadow price, each with a sentence and the platforms that fall short.

    A shadow price is the change of the LP's objective — margin less shortfall penalties — per extra unit of
    capacity, so the sentence says objective: with penalties, one more wafer raises the margin by less.
    """
    cur = plan.settings.currency
    cap = res.capacity
    b = cap[cap["shadow_price"] > SHADOW_TOL].copy()
    cols = ["rank", "resource", "kind", "period", "shadow_price", "utilisation", "capacity", "used",
            "platforms_short", "explanation"]
    if b.empty:
        return pd.DataFrame(columns=cols)
    b = b.sort_values(["shadow_price", "period"], ascending=[False, True]).reset_index(drop=True)
    b["rank"] = np.arange(1, len(b) + 1)
    b["platforms_short"] = [", ".join(_affected_platforms(plan, res, k, r, p))
                            for k, r, p in zip(b["kind"], b["resource"], b["period"], strict=True)]
    sentences = []
    for r in b.itertuples():
        what = "wafer start per quarter at" if r.kind == "fab" else "unit of back-end capacity on"
        s = (f"One more {what} {r.resource} in {r.period} would raise the objective (margin less shortfall "
             f"penalties) by {money(r.shadow_price, cur)}")
        if r.platforms_short:
            s += f"; short there: {r.platforms_short}"
        sentences.append(s + ".")
    b["explanation"] = sentences
    return b[cols]
