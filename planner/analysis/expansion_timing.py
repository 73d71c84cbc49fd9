"""Expansions with dates to act on: for each expansion option the plan buys, the last quarter the decision can be
taken and still be usable when the plan needs it, and what waiting one quarter longer would cost.

*Needed from* is the first quarter, from when the option is usable, in which its fab/node starts more wafers than
it could without the option (capacity with every expansion in effect, less this option's added wafers).
*Decide by* is that quarter minus the option's lead time: any decision up to then arrives in time (the LP is
indifferent between such quarters, since an expansion costs the same whenever it is decided). *Waiting one quarter*
is a re-solve of the whole plan in which the option cannot be decided before the quarter after *decide by*; its
change of objective and of margin is the cost of missing the date. Each re-solve goes through the ``solve``
callable the caller passes (the API's own pipeline), so this module never imports it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from planner.analysis.resolves import OVERTIME_TEXT, change, overtime
from planner.analysis.results import Results
from planner.io.validate import PlanData
from planner.periods import index_label, period_index

COLUMNS = ["fab", "node", "row", "decided", "available_from", "wafers_per_quarter", "cost", "needed_from",
           "decide_by", "objective_if_later", "margin_if_later", "served_if_later", "sentence"]
MAX_OPTIONS = 10  # re-solves: one per bought option


def delay_option(plan: PlanData, row: int, earliest: str) -> PlanData:
    """A copy of the plan in which the expansion option on Expansions row ``row`` cannot be decided before
    ``earliest``."""
    new = plan.copy()
    sel = new.expansions["_row"] == row
    new.expansions.loc[sel, "earliest_period"] = earliest
    return new


def expansion_timing(plan: PlanData, res: Results, solve: Callable[[PlanData], Results] | None,
                     max_options: int = MAX_OPTIONS,
                     solve_many: Callable[[list[PlanData], list[str]], list[Results | None]] | None = None
                     ) -> pd.DataFrame:
    """One row per expansion option the plan buys (see the module docstring); ``solve=None`` (and no
    ``solve_many``) skips the re-solves. ``solve_many`` solves all the delayed plans at once (warm, on threads or
    a cluster: :mod:`planner.analysis.resolves`)."""
    from planner.report.fmt import money, units

    ex = res.expansions
    if ex.empty:
        return pd.DataFrame(columns=COLUMNS)
    first = plan.settings.first_period
    T = plan.settings.horizon_quarters
    cur = plan.settings.currency
    lead_of = dict(zip(plan.expansions["_row"], plan.expansions["lead_quarters"], strict=True))
    cap = res.capacity[res.capacity["kind"] == "fab"].set_index(["resource", "period"])
    base_obj = res.summary["objective"] or 0.0
    base_margin = res.summary["revenue"] - res.summary["cost"]
    base_served = float(res.service["served"].sum())
    rows = []
    later: list[tuple[dict, int, PlanData]] = []  # (row record, quarter after decide-by, the delayed plan)
    for (fab, node, row), g in ex.groupby(["fab", "node", "row"], sort=False):
        lead = int(lead_of[row])
        taus = sorted(period_index(d, first) for d in g["decided"])
        added = np.zeros(T)  # this option's wafers per quarter in effect
        for tau, amount in zip((period_index(d, first) for d in g["decided"]), g["wafers_per_quarter"], strict=True):
            added[tau + lead:] += amount
        usable = taus[0] + lead
        needed = None
        for t in range(usable, T):
            c = cap.loc[(f"{fab}/{node}", index_label(t, first))]
            if c["used"] > c["capacity"] - added[t] + 1e-6 * max(1.0, c["capacity"]):
                needed = t
                break
        decide_by = needed - lead if needed is not None else taus[0]
        rec = {"fab": fab, "node": node, "row": int(row), "decided": index_label(taus[0], first),
               "available_from": index_label(usable, first), "wafers_per_quarter": float(g["wafers_per_quarter"].sum()),
               "cost": float(g["cost"].sum()), "needed_from": index_label(needed, first) if needed is not None else "",
               "decide_by": index_label(decide_by, first), "objective_if_later": np.nan, "margin_if_later": np.nan,
               "served_if_later": np.nan, "sentence": ""}
        if (solve is not None or solve_many is not None) and len(rows) < max_options:
            later.append((rec, decide_by + 1, delay_option(plan, int(row), index_label(decide_by + 1, first))))
        when = (f"needed from {rec['needed_from']}" if needed is not None
                else "its capacity is never used beyond the rest (the plan buys it without needing it)")
        rec["sentence"] = (f"{fab}/{node} expansion (Expansions row {int(row)}, {units(rec['wafers_per_quarter'])} "
                           f"wafers/quarter, lead {lead} quarter{'s' if lead != 1 else ''}): {when}; decide by "
                           f"{rec['decide_by']}")
        rows.append(rec)
    plans = [p for _, _, p in later]
    keys = [f"expansion row {rec['row']} from {q}" for rec, q, _ in later]
    solved = solve_many(plans, keys) if solve_many is not None else [solve(p) for p in plans]
    for (rec, q, _), r in zip(later, solved, strict=True):
        if overtime(r):
            rec["sentence"] += f"; deciding in {index_label(q, first)} instead: {OVERTIME_TEXT}"
            continue
        if r is not None and r.summary["objective"] is not None:
            scale = max(abs(base_obj), abs(base_margin))
            rec["objective_if_later"] = change(r.summary["objective"], base_obj, scale)
            rec["margin_if_later"] = change(r.summary["revenue"] - r.summary["cost"], base_margin, scale)
            rec["served_if_later"] = float(r.service["served"].sum()) - base_served
        sentence = rec["sentence"]
        if np.isfinite(rec["objective_if_later"]):
            d = rec["objective_if_later"]
            ds = rec["served_if_later"]
            served = ("service unchanged" if abs(ds) < 0.5 else
                      f"{'+' if ds > 0 else '−'}{units(abs(ds))} platform units served")
            sentence += (f"; deciding in {index_label(q, first)} instead changes the objective by "
                         f"{'+' if d >= 0 else ''}{money(d, cur)} ({served})")
        rec["sentence"] = sentence
    for rec in rows:
        rec["sentence"] += "."
    return pd.DataFrame(rows, columns=COLUMNS)
