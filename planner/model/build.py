"""Assemble the capacity-allocation LP of ``models/formulation.md`` from :class:`ModelSets`.

One function per variable or constraint family, each named after the formulation's label and building all of
its rows in one vectorised pass (numpy/pandas; no per-term Python objects). The result is solver-independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.io.validate import PlanData, Settings
from planner.model.lp import INF, LinearProgram
from planner.model.sets import ModelSets, derive_sets


@dataclass
class Model:
    """The built LP plus the sets and settings it came from (solving and results need them, never the workbook)."""

    lp: LinearProgram
    sets: ModelSets
    w: pd.DataFrame  # wafer columns: fab, node, product, fn, m, s, land, g, col
    y: pd.DataFrame  # platform-option-quarter columns: p, po, t, col
    settings: Settings  # policy, backlog, solver, currency: what the model was built and is solved under
    inventory_rows: np.ndarray  # (M, T) row of `inventory_balance` for product m in quarter t
    backend_rows: np.ndarray  # (R, T) row of `backend_capacity` for line r in quarter t
    input_sha256: str = ""  # identity of the data it was built from, for the report
    wip: pd.DataFrame | None = None  # in-flight output columns (`wip_in_flight`): sets.wip_in_flight + col


def _wafer_candidates(ms: ModelSets) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (fab/node, product, start quarter) whose node matches: the domain before `horizon_end` and `rd_gate`.

    Returned lean, as the product-fab pairs and one row per pair and quarter (``i`` the pair, ``s``, and the
    product's start window): the domain filters read only those, and :func:`add_wafer_starts` joins the pairs'
    other columns to the columns that remain (at 416k LP columns, repeating and filtering every column of the
    538k candidates took 0.05 s more)."""
    pf = ms.products[["m", "product", "node", "start_lo", "start_hi", "cycle_quarters", "r", "backend_use",
                      "unit_cost", "g_base"]].merge(ms.fabs[["fab", "node", "fn", "wafer_cost"]], on="node")
    i = np.repeat(np.arange(len(pf)), ms.T)
    rep = pd.DataFrame({"i": i, "s": np.tile(np.arange(ms.T), len(pf)).astype(int),
                        "start_lo": pf["start_lo"].to_numpy()[i], "start_hi": pf["start_hi"].to_numpy()[i]})
    return pf, rep


def add_horizon_end(ms: ModelSets, w: pd.DataFrame) -> pd.DataFrame:
    """`horizon_end` (domain): w_{fms} exists only for s + c_m ≤ T − 1 — output beyond the horizon is not modelled."""
    return w[w["s"] <= w["start_hi"]].reset_index(drop=True)


def add_rd_gate(ms: ModelSets, w: pd.DataFrame, gates_as_bounds: bool = False) -> pd.DataFrame:
    """`rd_gate` (domain): w_{fms} = 0 for s < ready_m (s < ready_m − c_m with `risk_starts`).

    Normally those columns are simply not created. With ``gates_as_bounds`` they exist, flagged ``gated`` (upper
    bound 0): the same LP, in a form where the gate can be lifted by changing a bound (to explain shortfalls).
    """
    w = w.assign(gated=w["s"] < w["start_lo"])
    if not gates_as_bounds:
        w = w[~w["gated"]].reset_index(drop=True)
    return w


def add_wafer_starts(lp: LinearProgram, ms: ModelSets, gates_as_bounds: bool = False) -> pd.DataFrame:
    """Columns w_{fms} over the domain `horizon_end` ∩ `rd_gate` leave; objective terms wafer cost and unit cost
    (μ_m · g_ms per wafer)."""
    pf, cand = _wafer_candidates(ms)
    keep = add_rd_gate(ms, add_horizon_end(ms, cand), gates_as_bounds)
    w = pf.take(keep["i"].to_numpy()).reset_index(drop=True)
    w["s"], w["gated"] = keep["s"].to_numpy(), keep["gated"].to_numpy()
    w["land"] = w["s"] + w["cycle_quarters"]
    w["g"] = ms.good_units_per_wafer(w["m"].to_numpy(), w["s"].to_numpy())
    w["col"] = lp.add_cols("wafers", w[["fab", "node", "product", "s"]], upper=np.where(w["gated"], 0.0, INF))
    lp.add_term("wafer_cost", w["col"].to_numpy(), w["wafer_cost"].to_numpy(), -1.0)
    lp.add_term("unit_cost", w["col"].to_numpy(), (w["unit_cost"] * w["g"]).to_numpy(), -1.0)
    return w


def add_wip_in_flight(lp: LinearProgram, ms: ModelSets) -> pd.DataFrame:
    """`wip_in_flight`: columns V_{fms} (s < 0) fixed at the good units of wafers already in the fab,
    V = W^wip g_{ms} (ramp factor of the start quarter), landing in s + c_m; the `unit_cost` term μ_m V (the wafer
    cost is sunk). They enter `inventory_balance` and `backend_capacity` like output, and no fab row."""
    f = ms.wip_in_flight.copy()
    units = f["units"].to_numpy(dtype=float)
    f["col"] = lp.add_cols("wip_output", f[["fab", "node", "product", "s"]], lower=units, upper=units)
    lp.add_term("unit_cost", f["col"].to_numpy(), f["unit_cost"].to_numpy(dtype=float), -1.0)
    return f


def add_wip_committed(lp: LinearProgram, ms: ModelSets, w: pd.DataFrame) -> None:
    """Rows `wip_committed`: w_{fms} ≥ W^wip_{fms} for every start committed inside the horizon (WIP sheet).

    A commitment the model has no column for (a scenario moved the product's gate past it) is a row with no
    terms and a positive bound: the plan is infeasible, and the diagnosis names the commitment."""
    c = ms.wip_committed
    idx = c[["fab", "node", "product", "s"]].rename(columns={"s": "t"})
    hit = c.reset_index(drop=True).reset_index().merge(w[["fn", "m", "s", "col"]], on=["fn", "m", "s"])
    lp.add_rows("wip_committed", idx, hit["index"].to_numpy(), hit["col"].to_numpy(), np.ones(len(hit)),
                lower=c["wafers"].to_numpy(dtype=float))


def add_frozen_zone(lp: LinearProgram, ms: ModelSets, w: pd.DataFrame) -> None:
    """Rows `frozen_zone`: w_{fms} = w̄_{fms} for s in the frozen quarters — the baseline report's starts, zero
    where it started nothing. A baseline start the model has no column for (the product is gated now, or its
    output would land after the horizon) is a row with no terms and a positive bound: infeasible, and named."""
    if not ms.frozen_quarters:
        lp.add_rows("frozen_zone", pd.DataFrame(columns=["fab", "node", "product", "t"]), [], [], [])
        return
    cols = w.loc[w["s"].isin(ms.frozen_quarters), ["fab", "node", "product", "fn", "m", "s", "col"]]
    base = ms.frozen[["fab", "node", "product", "fn", "m", "s", "wafers"]]
    both = cols.merge(base, on=["fab", "node", "product", "fn", "m", "s"], how="outer")
    both["wafers"] = both["wafers"].fillna(0.0)
    both = both.sort_values(["s", "fn", "m"]).reset_index(drop=True)
    has = both["col"].notna().to_numpy()
    lp.add_rows("frozen_zone", both[["fab", "node", "product", "s"]].rename(columns={"s": "t"}),
                np.nonzero(has)[0], both.loc[has, "col"].to_numpy(dtype=np.int64), np.ones(int(has.sum())),
                lower=both["wafers"].to_numpy(dtype=float), upper=both["wafers"].to_numpy(dtype=float))


def add_expansions(lp: LinearProgram, ms: ModelSets) -> pd.DataFrame:
    """Columns x_{eτ} ≥ 0 (capacity added by option e, decided in quarter τ) with the `expansion_cost` term."""
    e = ms.expansions
    T = ms.T
    recs = [(int(ei), int(fn), tau, int(lead)) for ei, fn, lead, lo in
            zip(e["e"], e["fn"], e["lead_quarters"], e["earliest"], strict=True) for tau in range(int(lo), T - int(lead))]
    x = pd.DataFrame(recs, columns=["e", "fn", "tau", "lead"])
    x["col"] = lp.add_cols("expansion", x[["e", "tau"]])
    lp.add_term("expansion_cost", x["col"].to_numpy(), e["cost_per_wafer"].to_numpy()[x["e"].to_numpy()]
                if len(x) else np.zeros(0), -1.0)
    return x


def add_expansion_limit(lp: LinearProgram, ms: ModelSets, x: pd.DataFrame) -> None:
    """Rows `expansion_limit`: Σ_τ x_{eτ} ≤ X̄_e, one per Expansions row (its most over the horizon)."""
    e = ms.expansions
    if e.empty:
        return
    lp.add_rows("expansion_limit", e[["fab", "node", "e"]], x["e"].to_numpy(), x["col"].to_numpy(),
                np.ones(len(x)), upper=e["max_wafers_per_quarter"].to_numpy())


def add_fab_capacity(lp: LinearProgram, ms: ModelSets, w: pd.DataFrame, x: pd.DataFrame) -> None:
    """Rows `fab_capacity`: Σ_m w_{fmt} − Σ_{e, τ+L_e ≤ t} x_{eτ} ≤ K_{fnt}, one per fab/node and quarter."""
    T = ms.T
    idx = pd.DataFrame({"fn": np.repeat(ms.fabs["fn"].to_numpy(), T), "t": np.tile(np.arange(T), len(ms.fabs))})
    idx["fab"] = ms.fabs["fab"].to_numpy()[idx["fn"]]
    idx["node"] = ms.fabs["node"].to_numpy()[idx["fn"]]
    rows_w = w["fn"].to_numpy() * T + w["s"].to_numpy()
    # each expansion decision counts in every quarter from τ + L on
    if len(x):
        span = (T - (x["tau"] + x["lead"])).clip(lower=0).to_numpy()
        xr = x.loc[x.index.repeat(span)]
        t_eff = xr["tau"].to_numpy() + xr["lead"].to_numpy() + np.concatenate([np.arange(k) for k in span])
        rows_x, cols_x = xr["fn"].to_numpy() * T + t_eff, xr["col"].to_numpy()
    else:
        rows_x = cols_x = np.zeros(0, dtype=np.int64)
    lp.add_rows("fab_capacity", idx[["fab", "node", "t"]],
                np.concatenate([rows_w, rows_x]), np.concatenate([w["col"].to_numpy(), cols_x]),
                np.concatenate([np.ones(len(w)), -np.ones(len(rows_x))]), upper=ms.fab_cap.ravel())


def add_backend_capacity(lp: LinearProgram, ms: ModelSets, w: pd.DataFrame,
                         wip: pd.DataFrame | None = None) -> np.ndarray:
    """Rows `backend_capacity`: Σ_{m on r} β_m (O_{mt} + V_{mt}) ≤ B_{rt} (output, and in-flight WIP output
    `wip_in_flight`, counted in its landing quarter).

    Returns the row positions as an (R, T) array, so analyses never re-derive the block's row order."""
    T = ms.T
    nb = len(ms.backend)
    idx = pd.DataFrame({"r": np.repeat(np.arange(nb), T), "t": np.tile(np.arange(T), nb)})
    idx["resource"] = ms.backend["resource"].to_numpy()[idx["r"]] if nb else []
    on = w[w["r"] >= 0]
    rows = [on["r"].to_numpy() * T + on["land"].to_numpy()]
    cols = [on["col"].to_numpy()]
    vals = [(on["backend_use"] * on["g"]).to_numpy()]
    if wip is not None and len(wip):
        fly = wip[wip["r"] >= 0]
        rows.append(fly["r"].to_numpy(dtype=np.int64) * T + fly["land"].to_numpy(dtype=np.int64))
        cols.append(fly["col"].to_numpy())
        vals.append(fly["backend_use"].to_numpy(dtype=float))
    pos = lp.add_rows("backend_capacity", idx[["resource", "t"]], np.concatenate(rows), np.concatenate(cols),
                      np.concatenate(vals), upper=ms.backend_cap.ravel())
    return pos.reshape(nb, T)


def add_inventory(lp: LinearProgram, ms: ModelSets) -> np.ndarray:
    """Columns I_{mt} ≥ 0 with the holding-cost term; returns their positions as an (M, T) array."""
    M, T = len(ms.products), ms.T
    idx = pd.DataFrame({"product": np.repeat(ms.products["product"].to_numpy(), T), "t": np.tile(np.arange(T), M)})
    cols = lp.add_cols("inventory", idx)
    lp.add_term("holding_cost", cols, np.repeat(ms.products["holding_cost"].to_numpy(), T), -1.0)
    return cols.reshape(M, T)


def _service_domain(ms: ModelSets, backlog: bool) -> np.ndarray:
    d = ms.demand
    return (np.cumsum(d, axis=1) > 0) if backlog else (d > 0)


def add_platform_flows(lp: LinearProgram, ms: ModelSets, backlog: bool) -> pd.DataFrame:
    """Columns y_{pot} (platform units built with option o) and the revenue term."""
    active = _service_domain(ms, backlog)
    opts = ms.options
    T = ms.T
    y = pd.DataFrame({"po": np.repeat(opts["po"].to_numpy(), T), "t": np.tile(np.arange(T), len(opts))})
    y["p"] = opts["p"].to_numpy()[y["po"]]
    y = y[active[y["p"].to_numpy(), y["t"].to_numpy()]].reset_index(drop=True)
    y["platform"] = opts["platform"].to_numpy()[y["po"]]
    y["option"] = opts["option"].to_numpy()[y["po"]]
    y["col"] = lp.add_cols("platform_units", y[["platform", "option", "t"]])
    lp.add_term("revenue", y["col"].to_numpy(), opts["revenue"].to_numpy()[y["po"]], +1.0)
    return y


def add_inventory_balance(lp: LinearProgram, ms: ModelSets, w: pd.DataFrame, inv: np.ndarray,
                          y: pd.DataFrame, wip: pd.DataFrame | None = None) -> np.ndarray:
    """Rows `inventory_balance`: I_{mt} − I_{m,t−1} − O_{mt} − V_{mt} + Q_{mt} = I⁰_m [t = 0] (V: in-flight WIP).

    Returns the row positions as an (M, T) array."""
    M, T = inv.shape
    idx = pd.DataFrame({"product": np.repeat(ms.products["product"].to_numpy(), T), "t": np.tile(np.arange(T), M)})
    m_all, t_all = np.repeat(np.arange(M), T), np.tile(np.arange(T), M)
    rows = [m_all * T + t_all]
    cols = [inv.ravel()]
    vals = [np.ones(M * T)]
    prev = t_all >= 1
    rows.append((m_all * T + t_all)[prev])
    cols.append(inv[m_all[prev], t_all[prev] - 1])
    vals.append(-np.ones(int(prev.sum())))
    rows.append(w["m"].to_numpy() * T + w["land"].to_numpy())
    cols.append(w["col"].to_numpy())
    vals.append(-w["g"].to_numpy())
    if wip is not None and len(wip):
        rows.append(wip["m"].to_numpy(dtype=np.int64) * T + wip["land"].to_numpy(dtype=np.int64))
        cols.append(wip["col"].to_numpy())
        vals.append(-np.ones(len(wip)))
    # shipped: each y_{pot} uses u_{pom} of every product m in its option
    use = y[["po", "t", "col"]].merge(ms.bom[["po", "m", "units_per_platform"]], on="po")
    rows.append(use["m"].to_numpy() * T + use["t"].to_numpy())
    cols.append(use["col"].to_numpy())
    vals.append(use["units_per_platform"].to_numpy())
    rhs = np.zeros(M * T)
    rhs[np.arange(M) * T] = ms.products["initial_inventory"].to_numpy()
    pos = lp.add_rows("inventory_balance", idx, np.concatenate(rows), np.concatenate(cols), np.concatenate(vals),
                      lower=rhs, upper=rhs)
    return pos.reshape(M, T)


def add_demand_balance(lp: LinearProgram, ms: ModelSets, y: pd.DataFrame, backlog: bool) -> pd.DataFrame:
    """Columns S_{pt} (shortfall or backlog, penalised) and rows `demand_balance`."""
    active = _service_domain(ms, backlog)
    p_idx, t_idx = np.nonzero(active)
    svc = pd.DataFrame({"p": p_idx, "t": t_idx})
    svc["platform"] = ms.platforms["platform"].to_numpy()[svc["p"]]
    svc["row"] = np.arange(len(svc))
    svc["col"] = lp.add_cols("backlog" if backlog else "shortfall", svc[["platform", "t"]])
    lp.add_term("shortfall_penalty", svc["col"].to_numpy(),
                ms.platforms["shortfall_penalty"].to_numpy()[svc["p"]], -1.0)
    row_pos = np.full(active.shape, -1, dtype=np.int64)
    row_pos[p_idx, t_idx] = svc["row"].to_numpy()
    rows = [row_pos[y["p"].to_numpy(), y["t"].to_numpy()], svc["row"].to_numpy()]
    cols = [y["col"].to_numpy(), svc["col"].to_numpy()]
    vals = [np.ones(len(y)), np.ones(len(svc))]
    if backlog:
        col_pos = np.full(active.shape, -1, dtype=np.int64)
        col_pos[p_idx, t_idx] = svc["col"].to_numpy()
        prev_col = np.where(t_idx >= 1, col_pos[p_idx, np.maximum(t_idx - 1, 0)], -1)
        has = prev_col >= 0
        rows.append(svc["row"].to_numpy()[has])
        cols.append(prev_col[has])
        vals.append(-np.ones(int(has.sum())))
    rhs = ms.demand[svc["p"].to_numpy(), svc["t"].to_numpy()]
    lp.add_rows("demand_balance", svc[["platform", "t"]], np.concatenate(rows), np.concatenate(cols),
                np.concatenate(vals), lower=rhs, upper=rhs)
    return svc


def add_min_fill(lp: LinearProgram, ms: ModelSets, y: pd.DataFrame) -> None:
    """Rows `min_fill`: Y_{pt} ≥ θ_p D_{pt} where that is positive."""
    need = ms.platforms["min_fill"].to_numpy()[:, None] * ms.demand
    p_idx, t_idx = np.nonzero(need > 0)
    idx = pd.DataFrame({"p": p_idx, "t": t_idx})
    idx["platform"] = ms.platforms["platform"].to_numpy()[idx["p"]]
    row_pos = np.full(need.shape, -1, dtype=np.int64)
    row_pos[p_idx, t_idx] = np.arange(len(p_idx))
    r = row_pos[y["p"].to_numpy(), y["t"].to_numpy()]
    arr = np.column_stack([r, y["col"].to_numpy()])[r >= 0]
    lp.add_rows("min_fill", idx[["platform", "t"]], arr[:, 0], arr[:, 1], np.ones(len(arr)),
                lower=need[p_idx, t_idx])


COEF_MAX = 1e13  # |coefficient| above this (or a nonzero one below COEF_MIN) and HiGHS refuses or misreads the LP
COEF_MIN = 1e-10


def check_scale(model: Model) -> list:
    """Derived coefficients out of scale, named by the input rows that produced them.

    Every cell is range-checked, but products of cells are not: 100 gross dies over 1e-9 dies per unit is
    1e11 units per wafer, and the model would carry it into every balance row. Returns Problems.
    """
    from planner.io.problems import Problem

    out = []
    w = model.w
    prods = model.sets.products
    row_of = dict(zip(prods["product"], prods["_row"], strict=True))
    for prod, g in w.groupby("product")["g"].agg(["min", "max"]).iterrows():
        bad = g["max"] > COEF_MAX or 0 < g["min"] < COEF_MIN
        if bad:
            out.append(Problem(code="out_of_scale", sheet="Products", row=int(row_of[prod]),
                               column="dies_per_unit",
                               message=f"product {prod!r} yields {g['max']:.3g} good units per wafer "
                                       "(gross_dies_per_wafer × die_yield × ramp × assembly_yield / dies_per_unit)",
                               expected=f"between {COEF_MIN:g} and {COEF_MAX:g} units per wafer",
                               found=f"{g['max']:.3g}"))
    opts = model.sets.options
    plats = model.sets.platforms
    prow = dict(zip(plats["platform"], plats["_row"], strict=True))
    for r in opts.itertuples():
        if abs(r.revenue) > COEF_MAX:
            out.append(Problem(code="out_of_scale", sheet="BOM", row=None, column="price",
                               message=f"platform {r.platform!r} option {r.option!r} earns {r.revenue:.3g} per "
                                       "platform unit (price × units_per_platform)",
                               expected=f"at most {COEF_MAX:g}", found=f"{r.revenue:.3g}",
                               hint=f"see Platforms row {prow.get(r.platform)}"))
    return out + check_wip_fit(model)


def check_wip_fit(model: Model) -> list:
    """WIP that no plan can process: in-flight output (fixed) plus the least output of committed starts landing on
    a back-end line in one quarter, above that line's capacity. The LP would only say "infeasible"; the data say
    which WIP rows and which line. Returns Problems (sheet WIP)."""
    from planner.io.problems import Problem

    ms = model.sets
    fly, com = ms.wip_in_flight, ms.wip_committed
    if not len(fly) and not len(com):
        return []
    prods = ms.products.set_index("m")
    parts = []
    if len(fly):
        parts.append(fly[["r", "land", "units", "backend_use", "rows"]])
    if len(com):
        c = com.merge(model.w[["fn", "m", "s", "g", "land"]], on=["fn", "m", "s"])
        c["r"] = prods.loc[c["m"], "r"].to_numpy()
        c["backend_use"] = prods.loc[c["m"], "backend_use"].to_numpy()
        c["units"] = c["wafers"] * c["g"]
        parts.append(c[["r", "land", "units", "backend_use", "rows"]])
    need = pd.concat(parts, ignore_index=True)
    need = need[need["r"] >= 0]
    need["use"] = need["units"] * need["backend_use"]
    out = []
    for (r, t), g in need.groupby(["r", "land"]):
        cap = float(ms.backend_cap[int(r), int(t)])
        used = float(g["use"].sum())
        if used > cap * (1 + 1e-9) + 1e-6:
            line = ms.backend["resource"].iloc[int(r)]
            rows = ", ".join(sorted(set(", ".join(g["rows"]).split(", ")), key=int))
            out.append(Problem(code="wip_above_backend", sheet="WIP", row=int(rows.split(", ")[0]), column="wafers",
                               message=f"work in progress (rows {rows}) lands {used:,.0f} units of back-end work on "
                                       f"{line} in {ms.periods[int(t)]}, more than the line can finish",
                               expected=f"at most {cap:,.0f} (Backend/BackendCapacity {line})",
                               found=f"{used:,.0f}", hint="check the WIP rows or the line's capacity that quarter"))
    return out


def build_model(plan: PlanData, sets: ModelSets | None = None, gates_as_bounds: bool = False) -> Model:
    """Build the LP for a validated plan (all families of ``models/formulation.md``)."""
    ms = sets or derive_sets(plan)
    backlog = plan.settings.backlog
    lp = LinearProgram()
    w = add_wafer_starts(lp, ms, gates_as_bounds)
    wip = add_wip_in_flight(lp, ms)
    x = add_expansions(lp, ms)
    add_expansion_limit(lp, ms, x)
    inv = add_inventory(lp, ms)
    y = add_platform_flows(lp, ms, backlog)
    add_demand_balance(lp, ms, y, backlog)
    add_fab_capacity(lp, ms, w, x)
    be_rows = add_backend_capacity(lp, ms, w, wip)
    inv_rows = add_inventory_balance(lp, ms, w, inv, y, wip)
    add_min_fill(lp, ms, y)
    add_wip_committed(lp, ms, w)
    add_frozen_zone(lp, ms, w)
    return Model(lp=lp, sets=ms, w=w, y=y, settings=plan.settings, inventory_rows=inv_rows, backend_rows=be_rows,
                 input_sha256=plan.sha256, wip=wip)


__all__ = ["INF", "Model", "build_model"]
