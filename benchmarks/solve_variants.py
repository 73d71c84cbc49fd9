"""Why is HiGHS slower on one formulation than another? Variants of the planner's LP and of the second
formulation (``formulation2.py``), solved with HiGHS in one process, interleaved and repeated (the machine is
shared: compare within a round). Results are JSON lines on stdout; ``models/formulation.md`` ("Solving fast")
records what paid.

    python benchmarks/solve_variants.py PLAN.xlsx --variants base,output_cols,f2 --repeat 2

Variants of *our* LP (same optimum, checked):
- ``base`` (or ``old``): the planner's LP as built, interior point with crossover (the planner's method above
  2,000 columns);
- ``output_cols``: good units landing per product and quarter as a column O_mt (row O − Σ g·w = 0), used in
  `inventory_balance` and `backend_capacity` instead of every wafer column (shorter balance and back-end rows);
- ``output_be``: the same, but O_mt enters only `backend_capacity` (the balance rows keep the wafer columns);
- ``output_bem``: ``output_be`` for starts at mature yield only (starts on the ramp stay in the back-end rows);
- ``no_presolve``, ``no_crossover``, ``bound_scale`` (user_bound_scale −2, HiGHS's own hint), ``cost_scale``
  (user_cost_scale −4), ``ipm_tol`` (ipm_optimality_tolerance 1e-7), ``simplex_scale`` (simplex_scale_strategy 4):
  option changes on ``base``;
- ``rev_order``: rows and columns in reverse order (the interior point's ordering heuristics see another matrix).
And ``f2`` / ``f2_<variant>``: the second formulation with the same options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

OPTIONS = {
    "": {},
    "no_presolve": {"presolve": "off"},
    "no_crossover": {"run_crossover": "off"},
    "bound_scale": {"user_bound_scale": -2},
    "cost_scale": {"user_cost_scale": -4},
    "ipm_tol": {"ipm_optimality_tolerance": 1e-7},
    "simplex_scale": {"simplex_scale_strategy": 4},
}


def _lp_arrays(lp):
    A = lp.matrix()
    cl, cu, rl, ru = lp.bounds()
    return A, lp.objective(), cl, cu, rl, ru


def output_cols(model, inventory: bool = True, mature_only: bool = False):
    """The planner's LP with O_mt columns: w leaves `backend_capacity` (and `inventory_balance` if ``inventory``),
    O enters them."""
    import scipy.sparse as sp

    A, c, cl, cu, rl, ru = _lp_arrays(model.lp)
    ms, w = model.sets, model.w
    M, T = model.inventory_rows.shape
    inv_rows = model.inventory_rows.ravel()
    be_rows = model.backend_rows.ravel()
    coo = A.tocoo()
    if mature_only:  # starts on the yield ramp stay in the back-end rows (the explanation lifts their coefficient)
        w = w[w["g"] >= w["g_base"] - 1e-12]
    drop = np.isin(coo.col, w["col"].to_numpy()) & ((np.isin(coo.row, inv_rows) & inventory)
                                                     | np.isin(coo.row, be_rows))
    r, k, v = coo.row[~drop], coo.col[~drop], coo.data[~drop]
    n, nr = A.shape[1], A.shape[0]
    ocol = n + np.arange(M * T)  # O_mt
    orow = nr + np.arange(M * T)  # O_mt − Σ g w = 0
    m_all = np.repeat(np.arange(M), T)
    t_all = np.tile(np.arange(T), M)
    rows = [r, inv_rows if inventory else inv_rows[:0], orow, orow[w["m"].to_numpy() * T + w["land"].to_numpy()]]
    cols = [k, ocol if inventory else ocol[:0], ocol, w["col"].to_numpy()]
    vals = [v, -np.ones(M * T if inventory else 0), np.ones(M * T), -w["g"].to_numpy()]
    on = ms.products["r"].to_numpy()[m_all] >= 0
    rows.append(model.backend_rows[ms.products["r"].to_numpy()[m_all[on]], t_all[on]])
    cols.append(ocol[on])
    vals.append(ms.products["backend_use"].to_numpy()[m_all[on]])
    A2 = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(nr + M * T, n + M * T)).tocsc()
    z = np.zeros(M * T)
    return (A2, np.concatenate([c, z]), np.concatenate([cl, z]), np.concatenate([cu, np.full(M * T, np.inf)]),
            np.concatenate([rl, z]), np.concatenate([ru, z]))


def reverse(arrays):
    A, c, cl, cu, rl, ru = arrays
    A = A[::-1, ::-1].tocsc()
    return A, c[::-1].copy(), cl[::-1].copy(), cu[::-1].copy(), rl[::-1].copy(), ru[::-1].copy()


def highs_lp(arrays):
    import highspy

    A, c, cl, cu, rl, ru = arrays
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_, lp.row_lower_, lp.row_upper_ = c, cl, cu, rl, ru
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data
    return lp


def run(lp, options: dict, log: bool = False) -> tuple[str, float | None, float, dict]:
    import highspy

    from planner.solve.sessions import _stdout_silenced

    with _stdout_silenced():
        h = highspy.Highs()
    h.setOptionValue("output_flag", log)
    h.setOptionValue("solver", "ipm")
    for k, v in options.items():
        h.setOptionValue(k, v)
    t, cpu = time.perf_counter(), time.process_time()
    h.passModel(lp)
    h.run()
    sec = time.perf_counter() - t
    cpu = time.process_time() - cpu
    info = h.getInfo()
    st = h.modelStatusToString(h.getModelStatus())
    return st, info.objective_function_value, sec, {"cpu_seconds": round(cpu, 2), "ipm_iter": info.ipm_iteration_count,
                                                    "crossover_iter": info.crossover_iteration_count}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan")
    ap.add_argument("--variants", default="base,output_cols,f2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--log", action="store_true")
    a = ap.parse_args()
    import formulation2

    from planner import api
    from planner.model.build import build_model

    plan = api.load_workbook(a.plan)
    model = old = build_model(plan)
    f2 = formulation2.build(a.plan)
    built, lps = {}, {}
    for name in a.variants.split(","):
        if name.startswith("f2"):
            key, opts = "f2", OPTIONS[name[3:]]
        elif name in ("base", "old", "output_cols", "output_be", "output_bem", "rev_order"):
            key, opts = name, {}
        else:
            key, opts = "base", OPTIONS[name]
        if key not in built:
            built[key] = (f2.lp if key == "f2" else
                        highs_lp(_lp_arrays(old.lp)) if key == "old" else
                        highs_lp(output_cols(old)) if key == "output_cols" else
                        highs_lp(output_cols(old, inventory=False)) if key == "output_be" else
                        highs_lp(output_cols(old, False, True)) if key == "output_bem" else
                        highs_lp(reverse(_lp_arrays(model.lp))) if key == "rev_order" else
                        highs_lp(_lp_arrays(model.lp)))
        lps[name] = (built[key], opts)
    for rep in range(a.repeat):
        for name in a.variants.split(","):
            lp, opts = lps[name]
            st, obj, sec, extra = run(lp, opts, a.log)
            print(json.dumps({"plan": Path(a.plan).name, "variant": name, "round": rep, "status": st,
                              "objective": obj, "seconds": round(sec, 2), "cols": lp.num_col_, "rows": lp.num_row_,
                              "load": round(os.getloadavg()[0], 1), **extra}), flush=True)


if __name__ == "__main__":
    main()
