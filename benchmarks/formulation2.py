"""A second formulation of the workbook contract, written from ``shared/spec/workbook.md`` alone.

It shares no code with ``planner`` (it reads the workbook itself with pandas and builds HiGHS arrays itself), so it
is both the benchmark's yardstick — "the fastest HiGHS run on any correct formulation of the plan" — and an
independent check of the planner's model (``tests/test_second_formulation.py`` compares optimal objectives).

Where the planner puts every term into the balance rows, this reading names the flows (policy ``margin`` only):

| variable | meaning |
|---|---|
| ``w[f,n,m,s] ≥ commit`` | wafers of m started at fab/node in s (only where the spec allows a start) |
| ``P[m,t]`` | good units of m finishing in t (``make`` rows: P − Σ g·w = in-flight WIP output) |
| ``A[e,t] ≤ X_e`` | capacity option e has added by quarter t (``grow``: A[t] − A[t−1] − x[t−L] = 0) |
| ``x[e,τ]`` | capacity decided in τ (its cost) |
| ``Q[m,t]`` | units of m shipped (``ship``: Q − Σ u·y = 0) |
| ``I[m,t]`` | inventory (``stock``: I[t] − I[t−1] − P + Q = I⁰[t=0]) |
| ``y[p,o,t]`` | platform units built with option o |
| ``Y[p,t] ≥ min_fill·D`` | platform units served (``serve``: Y − Σ_o y = 0) |
| ``S[p,t]`` | shortfall, or backlog level (``demand``: Y + S − S[t−1]·backlog = D) |

plus ``fab`` rows Σ_m w − Σ_e A ≤ K and ``line`` rows Σ β·P ≤ B (P counts in-flight output too). Objective: revenue on y,
wafer cost on w, unit cost on P (in-flight output included), holding on I, expansion cost on x, penalty on S.

    python benchmarks/formulation2.py PLAN.xlsx [--option solver=ipm ...]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _q(label: str) -> int:
    m = re.fullmatch(r"\s*(\d{4})\s*Q([1-4])\s*", str(label))
    if not m:
        raise ValueError(f"not a quarter: {label!r}")
    return int(m.group(1)) * 4 + int(m.group(2)) - 1


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())


def read_sheets(path: str) -> dict[str, pd.DataFrame]:
    """Every sheet by lower-case name, headers lower-cased and stripped, blank rows dropped."""
    raw = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    out = {}
    for name, df in raw.items():
        df = df.rename(columns=lambda c: str(c).strip().lower()).dropna(how="all")
        out[name.strip().lower()] = df.reset_index(drop=True)
    return out


@dataclass
class Built:
    lp: object  # highspy.HighsLp
    n_cols: int
    n_rows: int
    nnz: int
    offset: float  # objective constant (none today; kept for clarity)


def build(path: str):
    """The LP of this reading as a ``highspy.HighsLp`` (maximise)."""
    import highspy
    import scipy.sparse as sp

    sh = read_sheets(path)
    st = {str(k).strip().lower(): v for k, v in zip(sh["settings"]["key"], sh["settings"]["value"], strict=True)}
    truthy = lambda v: str(v).strip().lower() in ("true", "1", "yes")  # noqa: E731
    first, T = _q(st["first_period"]), int(st["horizon_quarters"])
    backlog = truthy(st.get("backlog", False)) if not _blank(st.get("backlog")) else False
    risk = truthy(st.get("risk_starts", False)) if not _blank(st.get("risk_starts")) else False
    policy = str(st.get("policy", "margin")).strip().lower() if not _blank(st.get("policy")) else "margin"
    if policy != "margin":
        raise ValueError("the second formulation models the margin policy only")
    idx = lambda lab: _q(lab) - first  # noqa: E731

    progs = sh["programs"]
    ready_of = {str(r.program).strip(): idx(r.start_period) + int(r.development_quarters)
                + int(r.qualification_quarters) for r in progs.itertuples()}
    prods = sh["products"]
    M = len(prods)
    pname = [str(p).strip() for p in prods["product"]]
    mpos = {p: i for i, p in enumerate(pname)}
    col = lambda df, c, d: df[c] if c in df else pd.Series([d] * len(df))  # noqa: E731
    cyc = prods["cycle_quarters"].astype(int).to_numpy()
    ready = np.array([ready_of[str(p).strip()] if not _blank(p) else -10**6
                      for p in col(prods, "program", None)])
    gbase = (prods["gross_dies_per_wafer"] * prods["die_yield"] * prods["assembly_yield"]
             / prods["dies_per_unit"]).to_numpy(dtype=float)
    mu = col(prods, "unit_cost", 0.0).fillna(0.0).to_numpy(dtype=float)
    hold = col(prods, "holding_cost", 0.0).fillna(0.0).to_numpy(dtype=float)
    inv0 = col(prods, "initial_inventory", 0.0).fillna(0.0).to_numpy(dtype=float)
    beta = col(prods, "backend_use", 1.0).fillna(1.0).to_numpy(dtype=float)
    price = prods["price"].to_numpy(dtype=float)
    node = [str(n).strip() for n in prods["node"]]

    ramp = {}
    if "yieldramp" in sh and len(sh["yieldramp"]):
        for prod, g in sh["yieldramp"].groupby(sh["yieldramp"]["product"].astype(str).str.strip()):
            listed = dict(zip(g["quarter"].astype(int), g["factor"].astype(float), strict=True))
            cur, curve = listed[min(listed)], []
            for k in range(max(listed) + 1):
                cur = listed.get(k, cur)
                curve.append(cur)
            ramp[mpos[prod]] = np.array(curve)

    def g_of(m: int, s: int) -> float:
        if m not in ramp:
            return gbase[m]
        c = ramp[m]
        return gbase[m] * c[min(max(s - ready[m], 0), len(c) - 1)]

    # back-end lines
    be = sh.get("backend", pd.DataFrame(columns=["resource", "units_per_quarter"]))
    lines = [str(r).strip() for r in be["resource"]]
    lpos = {r: i for i, r in enumerate(lines)}
    B = np.repeat(be["units_per_quarter"].to_numpy(dtype=float)[:, None], T, axis=1) if len(be) else np.zeros((0, T))
    if "backendcapacity" in sh:
        for r in sh["backendcapacity"].itertuples():
            t = idx(r.period)
            if 0 <= t < T:
                B[lpos[str(r.resource).strip()], t] = float(r.units)
    line_of = np.array([lpos[str(b).strip()] if not _blank(b) else -1 for b in col(prods, "backend", None)])

    # fabs
    fabs = sh["fabs"]
    fn = [(str(f).strip(), str(n).strip()) for f, n in zip(fabs["fab"], fabs["node"], strict=True)]
    fpos = {k: i for i, k in enumerate(fn)}
    K = np.repeat(fabs["wafers_per_quarter"].to_numpy(dtype=float)[:, None], T, axis=1)
    if "fabcapacity" in sh:
        for r in sh["fabcapacity"].itertuples():
            t = idx(r.period)
            if 0 <= t < T:
                K[fpos[(str(r.fab).strip(), str(r.node).strip())], t] = float(r.wafers)
    omega = fabs["wafer_cost"].to_numpy(dtype=float)

    # WIP: in flight (s < 0) is output on the rows' right-hand sides; committed (s ≥ 0) is a lower bound
    wip_out = np.zeros((M, T))
    commit: dict[tuple[int, int, int], float] = {}
    if "wip" in sh and len(sh["wip"]):
        for r in sh["wip"].itertuples():
            prod = str(r.product).strip()
            if prod not in mpos or not float(r.wafers) > 0:
                continue
            m, s = mpos[prod], idx(r.start_period)
            if s < 0:
                land = s + cyc[m]
                if 0 <= land < T:
                    wip_out[m, land] += float(r.wafers) * g_of(m, s)
            elif s < T:
                key = (fpos[(str(r.fab).strip(), str(r.node).strip())], m, s)
                commit[key] = commit.get(key, 0.0) + float(r.wafers)

    # platforms, options, demand
    plats = sh["platforms"]
    P = len(plats)
    ppos = {str(p).strip(): i for i, p in enumerate(plats["platform"])}
    phi = plats["shortfall_penalty"].to_numpy(dtype=float)
    theta = col(plats, "min_fill", 0.0).fillna(0.0).to_numpy(dtype=float)
    D = np.zeros((P, T))
    for r in sh["demand"].itertuples():
        t = idx(r.period)
        if 0 <= t < T:
            D[ppos[str(r.platform).strip()], t] += float(r.units)
    bom = sh["bom"]
    opts: dict[tuple[int, str], list[tuple[int, float, float]]] = {}
    for r in bom.itertuples():
        m = mpos[str(r.product).strip()]
        pr = getattr(r, "price", np.nan)
        pr = price[m] if _blank(pr) else float(pr)
        opts.setdefault((ppos[str(r.platform).strip()], str(r.option).strip()), []).append(
            (m, float(r.units_per_platform), pr))
    active = (np.cumsum(D, axis=1) > 0) if backlog else (D > 0)

    # ---- columns ------------------------------------------------------------------------------------------
    lo, hi, cost = [], [], []
    trip_r, trip_c, trip_v = [], [], []

    def new_cols(n: int, lower, upper, c) -> np.ndarray:
        start = sum(len(a) for a in lo)
        lo.append(np.broadcast_to(np.asarray(lower, float), (n,)).copy())
        hi.append(np.broadcast_to(np.asarray(upper, float), (n,)).copy())
        cost.append(np.broadcast_to(np.asarray(c, float), (n,)).copy())
        return np.arange(start, start + n)

    row_lo, row_hi = [], []

    def new_rows(lower, upper) -> np.ndarray:
        lower, upper = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
        start = sum(len(a) for a in row_lo)
        row_lo.append(lower)
        row_hi.append(upper)
        return np.arange(start, start + len(lower))

    def put(r, c, v) -> None:
        trip_r.append(np.asarray(r, np.int64))
        trip_c.append(np.asarray(c, np.int64))
        trip_v.append(np.broadcast_to(np.asarray(v, float), (len(trip_r[-1]),)).copy())

    # wafer starts
    wf, wm, ws, wg = [], [], [], []
    by_node: dict[str, list[int]] = {}
    for i, (_, n) in enumerate(fn):
        by_node.setdefault(n, []).append(i)
    for m in range(M):
        lo_s = max(0, ready[m] - (cyc[m] if risk else 0))
        for s in range(lo_s, T - cyc[m]):
            g = g_of(m, s)
            for f in by_node.get(node[m], []):
                wf.append(f)
                wm.append(m)
                ws.append(s)
                wg.append(g)
    wf, wm, ws, wg = (np.array(a, dtype=t) for a, t in ((wf, np.int64), (wm, np.int64), (ws, np.int64),
                                                         (wg, float)))
    wlow = np.array([commit.get((f, m, s), 0.0) for f, m, s in zip(wf, wm, ws, strict=True)])
    if commit and sum(commit.values()) > wlow.sum() + 1e-9:
        raise ValueError("a committed start has no column (gated or past the horizon): infeasible")
    w = new_cols(len(wf), wlow, np.inf, -omega[wf])
    Pc = new_cols(M * T, 0.0, np.inf, -np.repeat(mu, T))  # P[m,t] at m*T+t
    Ic = new_cols(M * T, 0.0, np.inf, -np.repeat(hold, T))
    Qc = new_cols(M * T, 0.0, np.inf, 0.0)
    # expansions
    ex = sh.get("expansions", pd.DataFrame())
    xs, As = [], []
    for r in ex.itertuples():
        e_fn = fpos[(str(r.fab).strip(), str(r.node).strip())]
        L = int(r.lead_quarters)
        earliest = getattr(r, "earliest_period", None)
        e0 = 0 if _blank(earliest) else max(0, idx(earliest))
        taus = np.arange(e0, T - L)
        xcol = new_cols(len(taus), 0.0, np.inf, -float(r.cost_per_wafer))
        acol = new_cols(T, 0.0, float(r.max_wafers_per_quarter), 0.0)
        xs.append((e_fn, L, taus, xcol))
        As.append((e_fn, acol))
    # platform flows
    okeys = list(opts)
    ys = []
    for k, (p, _) in enumerate(okeys):
        ts = np.nonzero(active[p])[0]
        rev = sum(pr * u for _, u, pr in opts[okeys[k]])
        ys.append((p, k, ts, new_cols(len(ts), 0.0, np.inf, rev)))
    ap, at = np.nonzero(active)
    Yc = new_cols(len(ap), theta[ap] * D[ap, at], np.inf, 0.0)
    Sc = new_cols(len(ap), 0.0, np.inf, -phi[ap])
    svc_pos = -np.ones((P, T), dtype=np.int64)
    svc_pos[ap, at] = np.arange(len(ap))

    # ---- rows --------------------------------------------------------------------------------------------
    mt = lambda m, t: m * T + t  # noqa: E731
    make = new_rows(wip_out.ravel(), wip_out.ravel())
    put(make, Pc, 1.0)
    put(make[mt(wm, ws + cyc[wm])], w, -wg)
    ship = new_rows(np.zeros(M * T), np.zeros(M * T))
    put(ship, Qc, 1.0)
    rhs = np.zeros((M, T))
    rhs[:, 0] = inv0
    stock = new_rows(rhs.ravel(), rhs.ravel())
    put(stock, Ic, 1.0)
    mm, tt = np.divmod(np.arange(M * T), T)
    prev = tt > 0
    put(stock[prev], Ic[mm[prev] * T + tt[prev] - 1], -1.0)
    put(stock, Pc, -1.0)
    put(stock, Qc, 1.0)
    for _p, k, ts, ycol in ys:
        for m, u, _ in opts[okeys[k]]:
            put(ship[mt(m, ts)], ycol, -u)
    fab = new_rows(np.full(len(fn) * T, -np.inf), K.ravel())
    put(fab[wf * T + ws], w, 1.0)
    for (e_fn, acol) in As:
        put(fab[e_fn * T + np.arange(T)], acol, -1.0)
    for (_fn, L, taus, xcol), (_, acol) in zip(xs, As, strict=True):
        grow = new_rows(np.zeros(T), np.zeros(T))
        put(grow, acol, 1.0)
        put(grow[1:], acol[:-1], -1.0)
        put(grow[taus + L], xcol, -1.0)
    if len(lines):
        on = line_of >= 0
        line = new_rows(np.full(len(lines) * T, -np.inf), B.ravel())  # P includes in-flight output
        ms_ = np.nonzero(on)[0]
        for m in ms_:
            put(line[line_of[m] * T + np.arange(T)], Pc[m * T + np.arange(T)], beta[m])
    serve = new_rows(np.zeros(len(ap)), np.zeros(len(ap)))
    put(serve, Yc, 1.0)
    for p, _k, ts, ycol in ys:
        put(serve[svc_pos[p, ts]], ycol, -1.0)
    dem = new_rows(D[ap, at], D[ap, at])
    put(dem, Yc, 1.0)
    put(dem, Sc, 1.0)
    if backlog:
        has = (at > 0) & (svc_pos[ap, np.maximum(at - 1, 0)] >= 0)
        put(dem[has], Sc[svc_pos[ap[has], at[has] - 1]], -1.0)

    n = sum(len(a) for a in lo)
    nr = sum(len(a) for a in row_lo)
    A = sp.coo_matrix((np.concatenate(trip_v), (np.concatenate(trip_r), np.concatenate(trip_c))),
                      shape=(nr, n)).tocsc()
    A.eliminate_zeros()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, nr
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = np.concatenate(cost), np.concatenate(lo), np.concatenate(hi)
    lp.row_lower_, lp.row_upper_ = np.concatenate(row_lo), np.concatenate(row_hi)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data
    return Built(lp=lp, n_cols=n, n_rows=nr, nnz=A.nnz, offset=0.0)


def solve(built: Built, options: dict | None = None, log: bool = False) -> tuple[str, float | None, float]:
    """(status, objective, seconds of passModel + run) with the given HiGHS options."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(log))
    for k, v in (options or {}).items():
        h.setOptionValue(k, v)
    t = time.perf_counter()
    h.passModel(built.lp)
    h.run()
    sec = time.perf_counter() - t
    status = h.modelStatusToString(h.getModelStatus())
    obj = h.getInfo().objective_function_value + built.offset if status == "Optimal" else None
    return status, obj, sec


def parse_options(items: list[str]) -> dict:
    out = {}
    for kv in items:
        k, v = kv.split("=", 1)
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                continue
        out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan")
    ap.add_argument("--option", action="append", default=[], help="HiGHS option key=value (repeatable)")
    ap.add_argument("--log", action="store_true")
    a = ap.parse_args()
    t = time.perf_counter()
    b = build(a.plan)
    print(f"built {b.n_cols:,} columns, {b.n_rows:,} rows, {b.nnz:,} nonzeros in {time.perf_counter() - t:.2f} s",
          file=sys.stderr)
    status, obj, sec = solve(b, parse_options(a.option) or {"solver": "ipm"}, a.log)
    print(f"{status} objective {obj!r} in {sec:.2f} s")


if __name__ == "__main__":
    main()
