"""The value of moving R&D programs: the plan re-solved with each program ready one quarter earlier and later.

A readiness change moves whole columns in and out of the LP, so no dual can price it; each shift is a re-solve
through the ``solve`` callable the caller passes (the API's own pipeline), so this module never imports it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from planner.analysis.resolves import OVERTIME_TEXT, change, overtime
from planner.analysis.results import Results
from planner.io.validate import PlanData
from planner.model.sets import ready_quarters
from planner.periods import index_label
from planner.report.fmt import signed_money, units


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


def shift_key(program: str, quarters: int) -> str:
    """Names the variant "program ready ``quarters`` later", so R&D impact and the levers solve it once."""
    return f"program {program!r} {quarters:+d}"


def rd_impact(plan: PlanData, base: Results, solve: Callable[[PlanData], Results] | None = None,
              max_programs: int = MAX_PROGRAMS,
              solve_many: Callable[[list[PlanData], list[str]], list[Results | None]] | None = None,
              prefer: list[str] | None = None) -> pd.DataFrame:
    """Margin, objective and fill-rate change with each program one quarter earlier and one later (re-solves).

    ``margin_*`` is the change of revenue − cost (the profit), ``objective_*`` the change of the objective
    (margin less shortfall penalties) that the plan maximises; rows are ranked by ``objective_earlier``. An
    earlier program can never lower the objective (it only adds options), but it can lower the margin, when the
    extra units avoid more penalty than they earn: hence both.

    Two re-solves per program, through ``solve`` one by one or all at once through ``solve_many`` (warm, on
    threads or a cluster: :mod:`planner.analysis.resolves`); on plans with many programs only the
    ``max_programs`` whose products face the most platform demand are analysed (the Overview says so) —
    after the programs in ``prefer`` (those the shortfall explanation names, whose one-quarter-earlier plan
    "what would help" then reads from the same solve).
    """
    cur = plan.settings.currency
    rows = []
    base_obj = base.summary["objective"] or 0.0
    base_margin = base.summary["margin"] or 0.0
    base_fill = base.summary["fill_rate"] or 0.0
    base_plat = base.service.groupby("platform")[["served", "demand"]].sum()
    used_by = plan.bom.merge(plan.products[["product", "program"]], on="product")
    demand_of = plan.demand.groupby("platform")["units"].sum()
    weight = used_by.drop_duplicates(["program", "platform"]).assign(
        d=lambda x: x["platform"].map(demand_of).fillna(0)).groupby("program")["d"].sum()
    first = {g: i for i, g in enumerate(prefer or [])}
    programs = plan.programs.assign(w=plan.programs["program"].map(weight).fillna(0),
                                    f=plan.programs["program"].map(first).fillna(len(first))).sort_values(
        ["f", "w"], ascending=[True, False], kind="stable").head(max_programs)
    readiness = ready_quarters(programs, plan.settings.first_period)
    shifts = (("earlier", -1), ("later", +1))
    variants = [shift_program(plan, prog, shift) for prog in programs["program"] for _, shift in shifts]
    keys = [shift_key(prog, shift) for prog in programs["program"] for _, shift in shifts]
    solved = iter(solve_many(variants, keys) if solve_many is not None else [solve(v) for v in variants])
    for prog, ready in zip(programs["program"], readiness, strict=True):
        rec = {"program": prog, "ready": index_label(ready, plan.settings.first_period),
               "platforms": ", ".join(sorted(used_by.loc[used_by["program"] == prog, "platform"].unique()))}
        for tag, _shift in shifts:
            r = next(solved)
            if overtime(r) or r is None or r.summary["objective"] is None:
                rec[f"margin_{tag}"] = rec[f"objective_{tag}"] = rec[f"fill_{tag}"] = np.nan
                rec[f"detail_{tag}"] = (OVERTIME_TEXT if overtime(r) else
                                        f"plan {r.summary['status'] if r is not None else 'not solved'}")
                continue
            scale = max(abs(base_obj), abs(base_margin))
            rec[f"margin_{tag}"] = change(r.summary["margin"], base_margin, scale)
            rec[f"objective_{tag}"] = change(r.summary["objective"], base_obj, scale)
            rec[f"fill_{tag}"] = (r.summary["fill_rate"] or 0.0) - base_fill
            plat = r.service.groupby("platform")["served"].sum()
            diffs = (plat.reindex(base_plat.index).fillna(0) - base_plat["served"])
            moved = [f"{p} {'+' if d > 0 else ''}{units(d)} units" for p, d in diffs.items() if abs(d) > 0.5]
            rec[f"detail_{tag}"] = "; ".join(moved) if moved else "no change in service"
        vals = [rec.get(k, np.nan) for k in ("margin_earlier", "objective_earlier", "margin_later", "objective_later")]
        rec["verdict"] = (f"One quarter earlier: margin {signed_money(vals[0], cur)}, objective "
                          f"{signed_money(vals[1], cur)}; one quarter later: margin {signed_money(vals[2], cur)}, "
                          f"objective {signed_money(vals[3], cur)}." if np.isfinite(vals).all() else "")
        rows.append(rec)
    cols = ["program", "ready", "platforms", "margin_earlier", "objective_earlier", "fill_earlier", "detail_earlier",
            "margin_later", "objective_later", "fill_later", "detail_later", "verdict"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values("objective_earlier", ascending=False, na_position="last").reset_index(drop=True)
