"""What a planner reads first: the binding constraints in plain words and the value of moving R&D programs.

Bottlenecks come from the duals of the final solve (``Capacity.shadow_price``); R&D impact re-solves the plan
with each program ready one quarter earlier and one later, since a readiness change moves whole columns in
and out of the LP and no dual can price it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from planner.analysis.results import Results
from planner.io.validate import PlanData
from planner.periods import index_label, period_index

SHADOW_TOL = 1e-6


def money(v: float, currency: str = "USD") -> str:
    sym = "$" if currency.upper() == "USD" else ""
    suffix = "" if sym else f" {currency}"
    a = abs(v)
    sign = "-" if v < 0 else ""
    if a >= 1e9:
        s = f"{a / 1e9:,.2f}B"
    elif a >= 1e6:
        s = f"{a / 1e6:,.1f}M"
    elif a >= 1e4:
        s = f"{a / 1e3:,.0f}k"
    else:
        s = f"{a:,.0f}"
    return f"{sign}{sym}{s}{suffix}"


def units(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:,.0f}k"
    return f"{v:,.0f}"


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
    """Binding capacity rows ranked by shadow price, each with a sentence and the platforms that fall short."""
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
        s = f"One more {what} {r.resource} in {r.period} would add {money(r.shadow_price, cur)} of margin"
        if r.platforms_short:
            s += f"; short there: {r.platforms_short}"
        sentences.append(s + ".")
    b["explanation"] = sentences
    return b[cols]


def shift_program(plan: PlanData, program: str, quarters: int) -> PlanData:
    """A copy of the plan with one program ready ``quarters`` later (negative: earlier)."""
    new = plan.copy()
    sel = new.programs["program"] == program
    q = new.programs.loc[sel, "qualification_quarters"].astype(int)
    d = new.programs.loc[sel, "development_quarters"].astype(int)
    # take the change from qualification first, then development; past zero, move the start
    q_new = np.maximum(q + quarters, 0)
    rest = (q + quarters) - q_new
    d_new = np.maximum(d + rest, 0)
    rest2 = (d + rest) - d_new
    new.programs.loc[sel, "qualification_quarters"] = q_new
    new.programs.loc[sel, "development_quarters"] = d_new
    if (rest2 != 0).any():
        from planner.periods import label, ordinal

        new.programs.loc[sel, "start_period"] = [label(ordinal(s) + int(r)) for s, r in
                                                 zip(new.programs.loc[sel, "start_period"], rest2, strict=True)]
    return new


MAX_PROGRAMS = 8


def rd_impact(plan: PlanData, base: Results, solve: Callable[[PlanData], Results],
              max_programs: int = MAX_PROGRAMS) -> pd.DataFrame:
    """Margin and fill-rate change with each program one quarter earlier and one later (re-solves).

    Two full re-solves per program; on plans with many programs only the ``max_programs`` whose products
    face the most platform demand are analysed (the sheet says so).
    """
    cur = plan.settings.currency
    rows = []
    base_obj = base.summary["objective"] or 0.0
    base_fill = base.summary["fill_rate"] or 0.0
    base_plat = base.service.groupby("platform")[["served", "demand"]].sum()
    used_by = plan.bom.merge(plan.products[["product", "program"]], on="product")
    demand_of = plan.demand.groupby("platform")["units"].sum()
    weight = used_by.drop_duplicates(["program", "platform"]).assign(
        d=lambda x: x["platform"].map(demand_of).fillna(0)).groupby("program")["d"].sum()
    programs = plan.programs.assign(w=plan.programs["program"].map(weight).fillna(0)).sort_values(
        "w", ascending=False).head(max_programs)
    for prog, start, dev, qual in zip(programs["program"], programs["start_period"],
                                      programs["development_quarters"], programs["qualification_quarters"],
                                      strict=True):
        ready = period_index(start, plan.settings.first_period) + int(dev) + int(qual)
        rec = {"program": prog, "ready": index_label(ready, plan.settings.first_period),
               "platforms": ", ".join(sorted(used_by.loc[used_by["program"] == prog, "platform"].unique()))}
        for tag, shift in (("earlier", -1), ("later", +1)):
            r = solve(shift_program(plan, prog, shift))
            if r.summary["objective"] is None:
                rec[f"margin_{tag}"] = np.nan
                rec[f"fill_{tag}"] = np.nan
                rec[f"detail_{tag}"] = f"plan {r.summary['status']}"
                continue
            rec[f"margin_{tag}"] = r.summary["objective"] - base_obj
            rec[f"fill_{tag}"] = (r.summary["fill_rate"] or 0.0) - base_fill
            plat = r.service.groupby("platform")["served"].sum()
            diffs = (plat.reindex(base_plat.index).fillna(0) - base_plat["served"])
            moved = [f"{p} {'+' if d > 0 else ''}{units(d)} units" for p, d in diffs.items() if abs(d) > 0.5]
            rec[f"detail_{tag}"] = "; ".join(moved) if moved else "no change in service"
        e, lt = rec.get("margin_earlier", np.nan), rec.get("margin_later", np.nan)
        rec["verdict"] = (f"One quarter earlier is worth {money(e, cur)}; one quarter later costs "
                          f"{money(-lt, cur)}." if np.isfinite(e) and np.isfinite(lt) else "")
        rows.append(rec)
    cols = ["program", "ready", "platforms", "margin_earlier", "fill_earlier", "detail_earlier", "margin_later",
            "fill_later", "detail_later", "verdict"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values("margin_earlier", ascending=False, na_position="last").reset_index(drop=True)
