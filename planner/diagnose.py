"""Explaining infeasible plans (``models/formulation.md``, "Infeasible plans").

Only ``min_fill`` can make the LP infeasible. We re-solve with a penalised slack on every ``min_fill`` row,
minimising total slack, and name each platform and quarter whose minimum cannot be met, with the reason in
the user's words: an R&D gate (no BOM option has all its products ready), or the capacity that binds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.model.build import Model
from planner.solve import make_session


def explain_infeasible(model: Model, solver: str = "highs") -> pd.DataFrame:
    """One row per (platform, period) whose `min_fill` cannot hold, with required, achievable and why."""
    lp, ms = model.lp, model.sets
    block = lp.row_blocks.get("min_fill")
    cols = ["platform", "period", "required", "achievable", "missing", "reason"]
    if block is None or block.size == 0:
        return pd.DataFrame(columns=cols)
    session = make_session(lp, solver if solver == "highs" else "highs")
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
