"""Explaining infeasible plans (``models/formulation.md``, "Infeasible plans").

Only ``min_fill`` can make the LP infeasible. We re-solve with a penalised slack on every ``min_fill`` row,
minimising total slack, and name each platform and quarter whose minimum cannot be met, with the reason in
the user's words: an R&D gate (no BOM option has all its products ready), or the capacity that binds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.model.build import Model
from planner.solve.sessions import make_session


def explain_infeasible(model: Model) -> pd.DataFrame:
    """One row per (platform, period) whose `min_fill` cannot hold, with required, achievable and why.

    Always on HiGHS (a base dependency), whatever solver found the plan infeasible: the slack re-solve is small
    and HiGHS gives the duals the reasons need."""
    lp, ms = model.lp, model.sets
    block = lp.row_blocks.get("min_fill")
    cols = ["platform", "period", "required", "achievable", "missing", "reason"]
    if block is None or block.size == 0:
        return pd.DataFrame(columns=cols)
    session = make_session(lp, "highs")
    slack_cols = [session.add_col(0.0, 0.0, np.inf, np.array([r]), np.ones(1)) for r in block.positions]
    c = np.zeros(lp.n_cols + len(slack_cols))
    c[slack_cols] = -1.0  # maximise −Σσ
    session.set_objective(c)
    res = session.run()
    if res.x is None:
        return pd.DataFrame([{"platform": "", "period": "", "required": np.nan, "achievable": np.nan,
                              "missing": np.nan, "reason": f"diagnosis did not solve ({res.status})"}], columns=cols)
    slack = res.x[slack_cols]
    req = lp.bounds()[2][block.positions]
    idx = block.index
    ready = dict(zip(ms.products["product"], ms.products["ready"], strict=True))
    cycle = dict(zip(ms.products["product"], ms.products["cycle_quarters"], strict=True))
    out = []
    for i in np.nonzero(slack > 1e-6 * np.maximum(1, req))[0]:
        plat, t = idx["platform"].iloc[i], int(idx["t"].iloc[i])
        options = ms.bom[ms.bom["platform"] == plat].groupby("option")["product"].apply(list)
        gated = []
        for prods in options:
            late = [p for p in prods if ready[p] + cycle[p] > t]
            if late:
                gated.append(late)
        if len(gated) == len(options):
            names = sorted({p for g in gated for p in g})
            programs = ms.products.set_index("product").loc[names, "program"]
            first_out = {p: ms.periods[ready[p] + cycle[p]] if 0 <= ready[p] + cycle[p] < ms.T else "after the horizon"
                         for p in names}
            reason = ("R&D gate: " + "; ".join(f"{p} (program {programs[p]}) has no output before {first_out[p]}"
                                               for p in names) + ", and initial inventory does not cover it")
        else:
            reason = ("capacity: not enough wafers, back-end capacity or inventory for this platform's memory by "
                      f"{ms.periods[t]}, after other platforms' minimums")
        out.append({"platform": plat, "period": ms.periods[t], "required": req[i], "achievable": req[i] - slack[i],
                    "missing": slack[i], "reason": reason})
    return pd.DataFrame(out, columns=cols)


def iis_requirements(plan) -> pd.DataFrame:
    """The smallest set of requirements that cannot hold together (HiGHS IIS), in the user's words.

    The IIS is computed on the model with R&D gates as column bounds, so a gate shows up as a requirement
    ("no HBM4 wafers before 2026Q3") rather than as a missing column. Non-negativity bounds are left out.
    """
    from planner.model.build import build_model
    from planner.periods import index_label
    from planner.solve.sessions import HighsSession

    cols = ["sheet", "row", "period", "requirement"]
    model = build_model(plan, gates_as_bounds=True)
    lp, ms = model.lp, model.sets
    session = HighsSession(lp, method="simplex")
    session.h.setOptionValue("iis_strategy", 2)
    if session.run().status != "infeasible":
        return pd.DataFrame(columns=cols)
    status, iis = session.h.getIis()
    if not iis.valid_:
        return pd.DataFrame(columns=cols)
    first = plan.settings.first_period
    _, _, rl, ru = lp.bounds()
    rows_of = {
        "Fabs": dict(zip(zip(plan.fabs["fab"], plan.fabs["node"], strict=True), plan.fabs["_row"], strict=True)),
        "Backend": dict(zip(plan.backend["resource"], plan.backend["_row"], strict=True)),
        "Products": dict(zip(plan.products["product"], plan.products["_row"], strict=True)),
        "Platforms": dict(zip(plan.platforms["platform"], plan.platforms["_row"], strict=True)),
        "Programs": dict(zip(plan.programs["program"], plan.programs["_row"], strict=True)),
    }
    demand_rows = {(p, q): r for p, q, r in zip(plan.demand["platform"], plan.demand["period"], plan.demand["_row"],
                                                strict=True)}
    out = []
    for r in iis.row_index_:
        label, block = next((lab, b) for lab, b in lp.row_blocks.items() if b.start <= r < b.start + b.size)
        rec = block.index.iloc[r - block.start]
        q = index_label(int(rec["t"]), first) if "t" in rec else ""
        if label == "fab_capacity":
            out.append(("Fabs", rows_of["Fabs"].get((rec["fab"], rec["node"])), q,
                        f"{rec['fab']}/{rec['node']} starts at most {ru[r]:,.0f} wafers in {q}"))
        elif label == "backend_capacity":
            out.append(("Backend", rows_of["Backend"].get(rec["resource"]), q,
                        f"back-end line {rec['resource']} finishes at most {ru[r]:,.0f} units in {q}"))
        elif label == "inventory_balance":
            out.append(("Products", rows_of["Products"].get(rec["product"]), q,
                        f"{rec['product']} shipped by {q} must have been made or on hand"))
        elif label == "min_fill":
            out.append(("Platforms", rows_of["Platforms"].get(rec["platform"]), q,
                        f"{rec['platform']} must be served at least {rl[r]:,.0f} units in {q} (min_fill)"))
        elif label == "demand_balance":
            out.append(("Demand", demand_rows.get((rec["platform"], q)), q,
                        f"{rec['platform']} demand in {q} is {rl[r]:,.0f} units"))
        elif label == "expansion_limit":
            out.append(("Expansions", None, "", f"{rec['fab']}/{rec['node']} expansion adds at most {ru[r]:,.0f} "
                                                "wafers/quarter"))
    gated = set(model.w.loc[model.w["gated"], "col"])
    w_by_col = model.w.set_index("col")
    prods = ms.products.set_index("product")
    seen = set()
    for c in iis.col_index_:
        if c in gated:
            prod = w_by_col.loc[c, "product"]
            prog = prods.loc[prod, "program"]
            if (prod, prog) in seen:
                continue
            seen.add((prod, prog))
            ready = index_label(int(prods.loc[prod, "ready"]), first)
            out.append(("Programs", rows_of["Programs"].get(prog), ready,
                        f"program {prog} is ready in {ready}: no {prod} wafers start before (R&D gate)"))
    df = pd.DataFrame(out, columns=cols)
    df["row"] = df["row"].astype("Int64")
    return df.drop_duplicates().reset_index(drop=True)
