"""Explaining infeasible plans (``models/formulation.md``, "Infeasible plans").

Only ``min_fill``, ``wip_committed`` and ``frozen_zone`` can make the LP infeasible. We re-solve with a penalised
slack on each of their rows, minimising total slack, and name each platform and quarter whose minimum cannot be
met, and each commitment or frozen start that cannot hold, with the reason in the user's words: an R&D gate (no
BOM option has all its products ready), or the capacity that binds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.model.build import Model
from planner.solve.sessions import make_session

COLUMNS = ["requirement", "platform", "period", "required", "achievable", "missing", "reason"]


def explain_infeasible(model: Model) -> pd.DataFrame:
    """One row per requirement that cannot hold, with required, achievable and why: each platform and quarter
    whose `min_fill` fails, each WIP commitment (`wip_committed`) and each frozen start (`frozen_zone`).

    The plan is re-solved with a slack on every such row (both ways on a frozen start), minimising the total slack;
    a row that keeps a slack cannot hold together with the others. Always on HiGHS (a base dependency), whatever
    solver found the plan infeasible: the slack re-solve is small and HiGHS gives the duals the reasons need."""
    lp, ms = model.lp, model.sets
    blocks = [(label, lp.row_blocks.get(label)) for label in ("min_fill", "wip_committed", "frozen_zone")]
    blocks = [(label, b) for label, b in blocks if b is not None and b.size]
    fly = lp.col_blocks.get("wip_output")
    if not blocks and (fly is None or not fly.size):
        return pd.DataFrame(columns=COLUMNS)
    session = make_session(lp, "highs")
    cl, cu, _, _ = lp.bounds()
    if fly is not None and fly.size:  # in-flight output may fall short of what is in the fab, at a price
        pos = fly.positions
        session.h.changeColsBounds(len(pos), pos.astype("int32"), np.zeros(len(pos)), cu[pos])
    slacks: list[tuple[str, int, int, int]] = []  # (label, position in block, column, sign)
    for label, block in blocks:
        for i, r in enumerate(block.positions):
            slacks.append((label, i, session.add_col(0.0, 0.0, np.inf, np.array([r]), np.ones(1)), +1))
            if label == "frozen_zone":
                slacks.append((label, i, session.add_col(0.0, 0.0, np.inf, np.array([r]), -np.ones(1)), -1))
    c = np.zeros(lp.n_cols + len(slacks))
    c[[s[2] for s in slacks]] = -1.0  # maximise −Σσ
    if fly is not None and fly.size:
        c[fly.positions] = 1.0  # … and the in-flight output (its shortfall is a slack too)
    session.set_objective(c)
    res = session.run()
    if res.x is None:
        return pd.DataFrame([{"requirement": "", "platform": "", "period": "", "required": np.nan,
                              "achievable": np.nan, "missing": np.nan,
                              "reason": f"diagnosis did not solve ({res.status})"}], columns=COLUMNS)
    _, _, rl, _ = lp.bounds()
    gap: dict[tuple[str, int], float] = {}
    for label, i, col, sign in slacks:
        gap[(label, i)] = gap.get((label, i), 0.0) + sign * float(res.x[col])
    out = []
    if fly is not None and fly.size:
        got = res.x[fly.positions]
        want = cl[fly.positions]
        for i in np.nonzero(want - got > 1e-6 * np.maximum(1.0, want))[0]:
            out.append(_in_flight_row(model, int(i), float(want[i]), float(got[i])))
    for label, block in blocks:
        req = rl[block.positions]
        for i in range(block.size):
            g = gap.get((label, i), 0.0)
            if abs(g) <= 1e-6 * max(1.0, abs(req[i])):
                continue
            rec = block.index.iloc[i]
            if label == "min_fill":
                out.append(_min_fill_row(ms, rec, req[i], g))
            else:
                out.append(_start_row(model, label, rec, req[i], g))
    return pd.DataFrame(out, columns=COLUMNS)


def _min_fill_row(ms, rec, required: float, slack: float) -> dict:
    plat, t = rec["platform"], int(rec["t"])
    ready = dict(zip(ms.products["product"], ms.products["ready"], strict=True))
    cycle = dict(zip(ms.products["product"], ms.products["cycle_quarters"], strict=True))
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
    return {"requirement": "min_fill", "platform": plat, "period": ms.periods[t], "required": required,
            "achievable": required - slack, "missing": slack, "reason": reason}


def _in_flight_row(model: Model, i: int, required: float, achievable: float) -> dict:
    """Wafers already in the fab whose output no back-end line can finish when it lands."""
    ms = model.sets
    rec = model.wip.iloc[i]
    t = int(rec["land"])
    r = int(rec["r"])
    line = ms.backend["resource"].iloc[r] if r >= 0 else ""
    if r >= 0:
        fly = model.wip[(model.wip["r"] == r) & (model.wip["land"] == t)]
        need = float((fly["units"] * fly["backend_use"]).sum())
        c = ms.wip_committed.merge(model.w[["fn", "m", "s", "g", "land", "r", "backend_use"]], on=["fn", "m", "s"])
        c = c[(c["r"] == r) & (c["land"] == t)]
        need += float((c["wafers"] * c["g"] * c["backend_use"]).sum())
        why = (f"back-end line {line} finishes at most {ms.backend_cap[r, t]:,.0f} units in {ms.periods[t]} and the "
               f"work in progress landing there needs {need:,.0f}")
    else:
        why = "it cannot hold together with the other requirements"
    return {"requirement": "wip_in_flight", "platform": "", "period": ms.periods[t], "required": required,
            "achievable": achievable, "missing": required - achievable,
            "reason": f"the {rec['wafers']:,.0f} {rec['product']} wafers in flight at {rec['fab']}/{rec['node']} "
                      f"(WIP rows {rec['rows']}) land as {required:,.0f} units, but {why}"}


def _start_row(model: Model, label: str, rec, required: float, gap: float) -> dict:
    """A WIP commitment or a frozen start that cannot hold, and why, in the data's words."""
    ms = model.sets
    fab, node, product, t = rec["fab"], rec["node"], rec["product"], int(rec["t"])
    period = ms.periods[t]
    what = (f"WIP commits {fab}/{node} to start at least {required:,.0f} {product} wafers in {period}"
            if label == "wip_committed" else
            f"the frozen zone holds {fab}/{node} at the baseline's {required:,.0f} {product} wafers in {period}")
    prods = ms.products.set_index("product")
    p = prods.loc[product]
    w = model.w
    col = w[(w["fab"] == fab) & (w["node"] == node) & (w["product"] == product) & (w["s"] == t)]
    if col.empty:
        if t < int(p["start_lo"]):
            ready = int(p["ready"])
            why = (f"program {p['program']} is ready only in "
                   f"{ms.periods[ready] if ready < ms.T else 'after the horizon'} (R&D gate)")
        elif t + int(p["cycle_quarters"]) > ms.T - 1:
            why = "its output would land after the horizon, which the plan does not model"
        else:
            why = f"{product} is not made on {fab}/{node}"
        return {"requirement": label, "platform": "", "period": period, "required": required, "achievable": 0.0,
                "missing": required, "reason": f"{what}, but {why}"}
    fn = int(col["fn"].iloc[0])
    # the least each start of this fab/node and quarter must be: frozen value, or committed minimum
    need = _held_starts(model, fn, t)
    most = float(ms.fab_cap[fn, t]) + _expansion_room(ms, fn, t)
    committed = ms.wip_committed
    c_here = committed[(committed["fn"] == fn) & (committed["m"] == int(p["m"])) & (committed["s"] == t)]
    if label == "frozen_zone" and len(c_here) and float(c_here["wafers"].sum()) > required:
        why = f"the WIP sheet commits at least {float(c_here['wafers'].sum()):,.0f} of them (rows {c_here['rows'].iloc[0]})"
    elif need > most * (1 + 1e-9) + 1e-6:
        why = (f"{fab}/{node} can start at most {most:,.0f} wafers in {period} (capacity, with every expansion "
               f"that could be usable), and the held starts there need {need:,.0f}")
    elif int(p["r"]) >= 0:
        line = ms.backend["resource"].iloc[int(p["r"])]
        land = t + int(p["cycle_quarters"])
        why = (f"back-end line {line} cannot finish the output in {ms.periods[land]} "
               f"({ms.backend_cap[int(p['r']), land]:,.0f} units/quarter)")
    else:
        why = "it cannot hold together with the other held starts and minimum fills"
    return {"requirement": label, "platform": "", "period": period, "required": required,
            "achievable": required - gap, "missing": abs(gap), "reason": f"{what}, but {why}"}


def _held_starts(model: Model, fn: int, t: int) -> float:
    """Wafers the frozen zone and the WIP commitments force at one fab/node in one quarter."""
    ms = model.sets
    held: dict[int, float] = {}
    if t in ms.frozen_quarters:
        fz = ms.frozen[(ms.frozen["fn"] == fn) & (ms.frozen["s"] == t)]
        for m, v in zip(fz["m"], fz["wafers"], strict=True):
            held[int(m)] = float(v)
    c = ms.wip_committed
    c = c[(c["fn"] == fn) & (c["s"] == t)]
    for m, v in zip(c["m"], c["wafers"], strict=True):
        held[int(m)] = max(held.get(int(m), 0.0), float(v))
    return sum(held.values())


def _expansion_room(ms, fn: int, t: int) -> float:
    e = ms.expansions
    if e.empty:
        return 0.0
    usable = (e["fn"] == fn) & (e["earliest"] + e["lead_quarters"] <= t)
    return float(e.loc[usable, "max_wafers_per_quarter"].sum())


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
        elif label in ("wip_committed", "frozen_zone"):
            what = "WIP commits" if label == "wip_committed" else "the frozen zone (--baseline) holds"
            sign = "at least " if label == "wip_committed" else ""
            out.append(("WIP" if label == "wip_committed" else "Settings", None, q,
                        f"{what} {rec['fab']}/{rec['node']} to {sign}{rl[r]:,.0f} {rec['product']} wafers in {q}"))
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
