"""What a planner reads first: the capacity that binds, ranked by what one more unit is worth, in plain words.

Bottlenecks come from the final solve: its duals (``Capacity.shadow_price``) and the ±1 re-solves that check
them (``value_of_one_more``, ``cost_of_one_less``); the platforms named are those short in the quarters the
resource feeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.analysis.results import Results
from planner.io.validate import PlanData
from planner.periods import index_label, period_index
from planner.report.fmt import money
from planner.solve.policy import MAX_PIVOT_ROWS, MAX_PRICE_CHECKS

SHADOW_TOL = 1e-6


class _Affected:
    """Platforms short in the quarter(s) a resource feeds: fab wafers land cycle quarters later.

    The lookups (platforms using a node's or line's products, platforms short per period) are built once: a
    large plan has thousands of binding capacity rows, and filtering the Service table for each took 30 s at
    400k LP columns."""

    def __init__(self, plan: PlanData, res: Results):
        self.plan = plan
        prods = plan.products
        bom_plats = plan.bom.groupby("product")["platform"].agg(set).to_dict()
        self.by_node: dict[str, tuple[set, set]] = {}
        for node, g in prods.groupby("node"):
            plats = set().union(*(bom_plats.get(p, set()) for p in g["product"]))
            self.by_node[node] = (plats, {int(c) for c in g["cycle_quarters"]})
        self.by_line: dict[str, set] = {}
        for line, g in prods.groupby("backend"):
            self.by_line[line] = set().union(*(bom_plats.get(p, set()) for p in g["product"]))
        svc = res.service
        short = svc[svc["shortfall"] > 1e-6]
        self.short = short.groupby("period")["platform"].agg(set).to_dict()

    def __call__(self, kind: str, resource: str, period: str) -> list[str]:
        first = self.plan.settings.first_period
        if kind == "fab":
            node = resource.split("/", 1)[1]
            plats, cycles = self.by_node.get(node, (set(), set()))
            t = period_index(period, first)
            lands = {index_label(t + c, first) for c in cycles}
        else:
            plats, lands = self.by_line.get(resource, set()), {period}
        short = set().union(*(self.short.get(q, set()) for q in lands))
        return sorted(plats & short)


def bottlenecks(plan: PlanData, res: Results) -> pd.DataFrame:
    """Capacity rows whose capacity matters, ranked by what one more unit is worth (then one less), each with a
    sentence computed from the Capacity columns and the platforms that fall short.

    The sentence quotes the ±1 re-solves (``value_of_one_more``, ``cost_of_one_less``), never the dual alone:
    at a degenerate optimum the dual is one of many and may be neither (``models/formulation.md``)."""
    cur = plan.settings.currency
    policy = res.summary.get("policy", "margin")
    cap = res.capacity
    checked = cap["price_check"].isin(["unique", "not unique", "one less infeasible", "less than one unit"])
    matters = (checked & ((cap["value_of_one_more"] > SHADOW_TOL) | (cap["cost_of_one_less"] > SHADOW_TOL)
                          | (cap["price_check"] == "one less infeasible"))) \
        | ((cap["price_check"] == "not checked") & (cap["shadow_price"].abs() > SHADOW_TOL))
    b = cap[matters].copy()
    cols = ["rank", "resource", "kind", "period", "value_of_one_more", "cost_of_one_less", "shadow_price",
            "price_check", "utilisation", "capacity", "used", "platforms_short", "explanation"]
    if b.empty:
        return pd.DataFrame(columns=cols)
    b["_unchecked"] = b["price_check"] == "not checked"
    b = b.sort_values(["_unchecked", "value_of_one_more", "cost_of_one_less", "shadow_price", "period"],
                      ascending=[True, False, False, False, True], na_position="last").reset_index(drop=True)
    b["rank"] = np.arange(1, len(b) + 1)
    affected = _Affected(plan, res)
    b["platforms_short"] = [", ".join(affected(k, r, p))
                            for k, r, p in zip(b["kind"], b["resource"], b["period"], strict=True)]
    b["explanation"] = [sentence(r, cur, policy) for r in b.itertuples()]
    return b[cols]


def sentence(r, currency: str, policy: str) -> str:
    """One Bottlenecks sentence from a Capacity row (``value_of_one_more``, ``cost_of_one_less``,
    ``price_check``, ``shadow_price``) and its ``platforms_short``; true by construction of those columns.

    The values are changes of the LP's objective — margin less shortfall penalties — so the sentence says
    objective: with penalties, one more wafer raises the margin by less."""
    what = "wafer start per quarter at" if r.kind == "fab" else "unit of back-end capacity on"
    unit = "wafer" if r.kind == "fab" else "unit"
    held = f", with the service the '{policy}' policy fixed held" if policy != "margin" else ""
    gain = (f"would raise the objective (margin less shortfall penalties) by {money(r.value_of_one_more, currency)}"
            if r.value_of_one_more > SHADOW_TOL else "would not raise the objective (margin less shortfall penalties)")
    if r.price_check == "unique":
        s = f"One more {what} {r.resource} in {r.period} {gain}{held}, and one less would lower it as much"
    elif r.price_check == "not unique":
        s = (f"One more {what} {r.resource} in {r.period} {gain}{held}, and one less would lower it by "
             f"{money(r.cost_of_one_less, currency)}: the shadow price is not unique here (the solver reported "
             f"{money(r.shadow_price, currency)} per {unit})")
    elif r.price_check == "one less infeasible":
        need = ("the plan's min_fill requirements could not be met" if policy == "margin" else
                f"the service the '{policy}' policy fixed (or a min_fill) could not all be held")
        s = f"One more {what} {r.resource} in {r.period} {gain}{held}; with one less, {need}"
    elif r.price_check == "less than one unit":
        s = f"One more {what} {r.resource} in {r.period} {gain}{held} (there is less than one to take away)"
    else:
        s = (f"The solver's shadow price of {r.resource} in {r.period} is {money(r.shadow_price, currency)} of "
             f"objective per {unit}{held} (not checked: the checks price the {MAX_PIVOT_ROWS} largest by one pivot and, "
             f"where a pivot does not settle it, the {MAX_PRICE_CHECKS} largest by re-solve)")
    if r.platforms_short:
        s += f"; short there: {r.platforms_short}"
    return s + "."
