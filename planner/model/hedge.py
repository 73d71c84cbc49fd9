"""The hedged plan's LP (``models/hedge.md``): one scenario's model with the commit window widened to what any
scenario allows, and the extensive form that stacks the scenarios' models around one shared first stage.

A scenario's model is the deterministic model of ``models/formulation.md`` (:func:`planner.model.build.build_model`
on the scenario's plan), changed in three places only:

* `commit_window` — wafer starts in the first K quarters that *some* scenario's readiness allows exist in every
  scenario (the plan commits them before the outcome is known);
* `excess_output` — good units of committed starts beyond what the scenario can use may be left unassembled;
* `hold_until_ready` — where this scenario's own readiness would not have allowed such a start, its output waits
  in inventory until the program is ready.

`nonanticipativity` stacks the scenarios: the first-stage columns (commit-window starts and the expansions decided
in the window) are one column each, shared by every scenario's rows; every other column is the scenario's own.
The stacking is a column map per scenario applied to its COO triplets (one vectorised pass per scenario, no loop
over rows), so the extensive form is exactly the scenarios' own arrays side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.io.problems import ValidationFailed
from planner.io.validate import PlanData
from planner.model.build import Model, build_model, check_scale
from planner.model.lp import LinearProgram
from planner.model.sets import ModelSets, derive_sets

FIRST_STAGE_KEYS = ["kind", "fab", "node", "product", "e", "t"]


@dataclass
class ScenarioModel:
    """One scenario's LP in the hedged problem as plain arrays (cheap to ship between processes), where its
    first-stage columns are, and what its figures need (platform flows, wafer starts, demand).

    The arrays are those of the scenario's :class:`~planner.model.build.Model` after the hedge's families: the COO
    triplets of its matrix, its bounds and its objective terms, column and row positions unchanged.
    """

    name: str
    probability: float
    n_cols: int
    n_rows: int
    coo: tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, cols, values of the constraint matrix
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # column lower/upper, row lower/upper
    terms: dict[str, tuple[np.ndarray, np.ndarray, float]]  # objective term → columns, coefficients, sign
    row_labels: list[str]  # the row families present, in order (models/formulation.md, models/hedge.md)
    first: np.ndarray  # positions of the first-stage columns, in the canonical order of `keys`
    keys: pd.DataFrame  # identity of each first-stage column: kind (wafers|expansion), fab, node, product, e, t
    closed: np.ndarray  # positions of widened start columns after the window: not part of this scenario's LP
    early: np.ndarray  # positions of commit-window starts this scenario's own readiness does not allow
    platforms: np.ndarray  # platform names, in the model's order
    demand: np.ndarray  # demand per platform over the horizon (platform units)
    y: tuple[np.ndarray, np.ndarray]  # platform position and column of every y_{pot}
    wafers: dict[str, np.ndarray]  # fab, node, product, s, col of every wafer column

    def objective(self) -> np.ndarray:
        c = np.zeros(self.n_cols)
        for cols, coefs, sign in self.terms.values():
            np.add.at(c, cols, sign * coefs)
        return c

    def term_values(self, x: np.ndarray) -> dict[str, float]:
        return {name: float(np.dot(coefs, x[cols])) for name, (cols, coefs, _) in self.terms.items()}


def scenario_start_lo(plan: PlanData) -> np.ndarray:
    """s^lo_m of a plan (first allowed start quarter per product, in Products order), from the one place
    :func:`~planner.model.sets.derive_sets` writes the rule."""
    return derive_sets(plan).products["start_lo"].to_numpy().astype(int)


def add_commit_window(ms: ModelSets, commit_lo: np.ndarray, commit_quarters: int) -> np.ndarray:
    """`commit_window` (domain): w_{fms} exists for s ≥ min(s^lo_m, σ_m) where s < K, σ_m = min over scenarios of
    s^lo_m; after the window the scenario's own s^lo_m holds.

    Lowers ``start_lo`` in ``ms`` (so the builders create the widened columns) and returns the scenario's own
    ``start_lo``: widened columns with s ≥ K are closed again when the scenario's arrays are taken.
    """
    own = ms.products["start_lo"].to_numpy().astype(int).copy()
    lo = np.asarray(commit_lo, dtype=int)
    widened = np.where(lo < np.minimum(own, commit_quarters), lo, own)
    ms.products["start_lo"] = widened
    ms.products["own_start_lo"] = own
    return own


def add_excess_output(lp: LinearProgram, ms: ModelSets, w: pd.DataFrame, inventory_rows: np.ndarray,
                      backend_rows: np.ndarray) -> pd.DataFrame:
    """Columns z_{mt} ≥ 0 and rows `excess_output`: z_{mt} − Σ_{committed (f,s): s + c_m = t} g_{ms} w_{fms} ≤ 0.

    Good units of committed starts that a scenario cannot use (its yield came out higher than the back-end or the
    demand can take) are left unassembled: z leaves the `inventory_balance` row (+1) and the `backend_capacity`
    row (−β_m) of its landing quarter and saves its unit cost (+μ_m z). Without it a committed start would be
    infeasible in every scenario whose yield beats the one it was sized for. ``w`` holds the commit-window starts.
    Returns z's columns: m, t, col.
    """
    if w.empty:
        return pd.DataFrame(columns=["m", "t", "col"])
    T = ms.T
    wm, wl = w["m"].to_numpy(), w["land"].to_numpy()
    cells, wrow = np.unique(wm * T + wl, return_inverse=True)  # one z per (product, landing quarter)
    m, t = cells // T, cells % T
    prods = ms.products
    z = pd.DataFrame({"m": m, "t": t})
    z["col"] = lp.add_cols("excess_output", pd.DataFrame({"product": prods["product"].to_numpy()[m], "t": t}))
    zc = z["col"].to_numpy()
    lp.add_term("unit_cost", zc, -prods["unit_cost"].to_numpy()[m], -1.0)
    r = prods["r"].to_numpy()[m]
    on = r >= 0
    lp.add_coefficients(np.concatenate([inventory_rows[m, t], backend_rows[r[on], t[on]]]),
                        np.concatenate([zc, zc[on]]),
                        np.concatenate([np.ones(len(z)), -prods["backend_use"].to_numpy()[m][on]]))
    lp.add_rows("excess_output", pd.DataFrame({"product": prods["product"].to_numpy()[m], "t": t}),
                np.concatenate([np.arange(len(z)), wrow]), np.concatenate([zc, w["col"].to_numpy()]),
                np.concatenate([np.ones(len(z)), -w["g"].to_numpy()]), upper=0.0)
    return z


def add_hold_until_ready(lp: LinearProgram, ms: ModelSets, w: pd.DataFrame, inventory: np.ndarray,
                         z: pd.DataFrame | None = None) -> int:
    """Rows `hold_until_ready`: for product m and quarter t with ℓ_m ≤ t < ρ_m (ℓ_m the first landing quarter of an
    early start), I_{mt} + Σ_{t' ≤ t} z_{mt'} − Σ_{early (f,s): s + c_m ≤ t} g_{ms} w_{fms} ≥ 0.

    ``w`` holds the early starts only (commit-window starts this scenario's readiness does not allow), ``z`` the
    `excess_output` columns if any. Before ρ_m the only other units of m are its initial inventory, so the row lets
    shipments before ρ_m draw on that alone: the early output lands as usual (back-end, holding cost) and waits,
    or is left unassembled. Returns the number of rows added.
    """
    if w.empty:
        return 0
    ready = ms.products["ready"].to_numpy()
    first_land = w.groupby("m")["land"].min()
    m_rows = first_land.index.to_numpy()
    lo = first_land.to_numpy()
    span = np.maximum(np.minimum(ready[m_rows], ms.T) - lo, 0)  # rows for lo ≤ t < min(ready, T)
    if not span.sum():
        return 0
    m_all = np.repeat(m_rows, span)
    t_all = np.repeat(lo, span) + np.concatenate([np.arange(k) for k in span])
    idx = pd.DataFrame({"product": ms.products["product"].to_numpy()[m_all], "t": t_all})
    row_of = np.full((len(ready), ms.T), -1, dtype=np.int64)
    row_of[m_all, t_all] = np.arange(len(idx))

    def spread(m: np.ndarray, t0: np.ndarray, col: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each (m, t0) term enters the rows of m from quarter t0 on (up to ρ_m − 1)."""
        reps = np.maximum(np.minimum(ready[m], ms.T) - t0, 0)
        if not reps.sum():
            return (np.zeros(0, np.int64),) * 2 + (np.zeros(0),)
        tt = np.repeat(t0, reps) + np.concatenate([np.arange(k) for k in reps])
        r = row_of[np.repeat(m, reps), tt]
        keep = r >= 0
        return r[keep], np.repeat(col, reps)[keep], np.repeat(val, reps)[keep]

    parts = [(np.arange(len(idx)), inventory[m_all, t_all], np.ones(len(idx))),
             spread(w["m"].to_numpy(), w["land"].to_numpy(), w["col"].to_numpy(), -w["g"].to_numpy())]
    if z is not None and len(z):
        parts.append(spread(z["m"].to_numpy().astype(int), z["t"].to_numpy().astype(int),
                            z["col"].to_numpy(), np.ones(len(z))))
    rows, cols, vals = (np.concatenate([p[i] for p in parts]) for i in range(3))
    lp.add_rows("hold_until_ready", idx, rows, cols, vals, lower=0.0)
    return len(idx)


def first_stage_columns(model: Model, commit_quarters: int) -> tuple[np.ndarray, pd.DataFrame]:
    """The first-stage columns of a model — wafer starts with s < K, expansions decided in τ < K — and their keys."""
    w = model.w
    ws = w["s"].to_numpy() < commit_quarters
    xb = model.lp.col_blocks["expansion"]
    e_all = xb.index["e"].to_numpy().astype(int) if xb.size else np.zeros(0, int)
    tau = xb.index["tau"].to_numpy().astype(int) if xb.size else np.zeros(0, int)
    xs = tau < commit_quarters
    exp = model.sets.expansions
    e = e_all[xs]
    nw, nx = int(ws.sum()), int(xs.sum())
    keys = pd.DataFrame({
        "kind": np.array(["wafers"] * nw + ["expansion"] * nx, dtype=object),
        "fab": np.concatenate([w["fab"].to_numpy()[ws], exp["fab"].to_numpy()[e] if nx else []]).astype(object),
        "node": np.concatenate([w["node"].to_numpy()[ws], exp["node"].to_numpy()[e] if nx else []]).astype(object),
        "product": np.concatenate([w["product"].to_numpy()[ws], np.full(nx, "", dtype=object)]).astype(object),
        "e": np.concatenate([np.full(nw, -1), e]).astype(int),
        "t": np.concatenate([w["s"].to_numpy()[ws], tau[xs]]).astype(int)})
    cols = np.concatenate([w["col"].to_numpy()[ws], xb.start + np.nonzero(xs)[0]]).astype(np.int64)
    return cols, keys


def build_scenario_model(plan: PlanData, name: str, probability: float, commit_lo: np.ndarray,
                         commit_quarters: int, excess: bool = True) -> ScenarioModel:
    """One scenario's model: `commit_window`, `excess_output` (unless ``excess`` is off: a hedge over one
    scenario, which is then exactly the deterministic model) and `hold_until_ready` on top of the deterministic
    build."""
    ms = derive_sets(plan)
    own = add_commit_window(ms, commit_lo, commit_quarters)
    model = build_model(plan, sets=ms)
    w = model.w
    widened = w["s"].to_numpy() < own[w["m"].to_numpy()]
    in_window = w["s"].to_numpy() < commit_quarters
    early = w[widened & in_window]
    z = add_excess_output(model.lp, ms, w[in_window], model.inventory_rows, model.backend_rows) if excess else None
    add_hold_until_ready(model.lp, ms, early, model.lp.cols("inventory").reshape(len(ms.products), ms.T), z)
    problems = check_scale(model)  # a draw can push a derived coefficient out of what the solver reads
    if problems:
        raise ValidationFailed(problems)
    first, keys = first_stage_columns(model, commit_quarters)
    lp = model.lp
    A = lp.matrix().tocoo()
    terms = {n: (c, v, lp.term_sign[n]) for n, (c, v) in lp.terms.items()}
    return ScenarioModel(
        name=name, probability=float(probability), n_cols=lp.n_cols, n_rows=lp.n_rows,
        coo=(A.row.astype(np.int64), A.col.astype(np.int64), A.data), bounds=lp.bounds(), terms=terms,
        row_labels=list(lp.row_blocks), first=first, keys=keys, closed=w["col"].to_numpy()[widened & ~in_window],
        early=early["col"].to_numpy(), platforms=ms.platforms["platform"].to_numpy(), demand=ms.demand.sum(axis=1),
        y=(model.y["p"].to_numpy(), model.y["col"].to_numpy()),
        wafers={c: w[c].to_numpy() for c in ("fab", "node", "product", "s", "col")})


def add_closest_commitment(session, first: np.ndarray, target: np.ndarray, objective: np.ndarray,
                           level: float) -> np.ndarray:
    """`closest_commitment` (a stage on a solved extensive form's session): hold the expected objective,
    c·x ≥ level, and give each first-stage column j a column d_j ≥ |x_j − x̄_j| (rows x_j − d_j ≤ x̄_j and
    −x_j − d_j ≤ −x̄_j) whose sum the stage minimises.

    Among the hedged plan's optima it picks the commitment closest to the average-scenario plan's x̄, so a reported
    difference between the two is one the hedged optimum needs, not an arbitrary choice between equal optima.
    Returns the positions of the d columns."""
    nz = np.nonzero(objective)[0]
    session.add_row(nz, objective[nz], level, np.inf, name="closest_commitment_hold")
    d = np.empty(len(first), dtype=np.int64)
    for i, (j, v) in enumerate(zip(first, target, strict=True)):
        d[i] = session.add_col(0.0, 0.0, np.inf, np.zeros(0, dtype=np.int64), np.zeros(0), name=f"closest_d_{i}")
        session.add_row(np.array([j, d[i]]), np.array([1.0, -1.0]), -np.inf, float(v), name=f"closest_hi_{i}")
        session.add_row(np.array([j, d[i]]), np.array([-1.0, -1.0]), -np.inf, -float(v), name=f"closest_lo_{i}")
    return d


# ---- the extensive form --------------------------------------------------------------------------------------
@dataclass
class ExtensiveForm:
    """The stacked LP and how each scenario's columns and rows sit in it."""

    lp: LinearProgram
    colmaps: list[np.ndarray]  # per scenario: extensive-form column of each of its columns (−1: closed)
    rowstarts: np.ndarray  # first extensive-form row of each scenario
    first: np.ndarray  # extensive-form columns of the shared first stage (linked forms only)

    def scenario_x(self, k: int, x: np.ndarray) -> np.ndarray:
        """Scenario k's own column vector (closed columns at 0) from an extensive-form solution."""
        cm = self.colmaps[k]
        out = np.zeros(len(cm))
        keep = cm >= 0
        out[keep] = x[cm[keep]]
        return out


def same_first_stage(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return len(a) == len(b) and bool((a[FIRST_STAGE_KEYS].to_numpy() == b[FIRST_STAGE_KEYS].to_numpy()).all())


def add_nonanticipativity(scenarios: list[ScenarioModel], link: bool = True) -> tuple[list[np.ndarray], int]:
    """`nonanticipativity`: column maps that give every scenario's first-stage columns the same extensive-form
    column (scenario 0's), and every other open column its own. With ``link=False`` each scenario keeps its own
    copy of the first stage (perfect foresight: the same LPs, decoupled). Returns the maps and the column count.

    Scenario 0's columns come first, in its own order, so a one-scenario extensive form is its model's LP itself.
    """
    maps: list[np.ndarray] = []
    n = 0
    ref = scenarios[0]
    for k, sm in enumerate(scenarios):
        if not same_first_stage(sm.keys, ref.keys):
            raise ValueError(f"scenario {sm.name!r} has other first-stage decisions than {ref.name!r}")
        size = sm.n_cols
        cm = np.full(size, -1, dtype=np.int64)
        open_ = np.ones(size, dtype=bool)
        open_[sm.closed] = False
        if k > 0 and link:
            open_[sm.first] = False
            cm[sm.first] = maps[0][ref.first]
        cm[open_] = n + np.arange(int(open_.sum()))
        n += int(open_.sum())
        maps.append(cm)
    return maps, n


def build_extensive_form(scenarios: list[ScenarioModel], link: bool = True, fixed: np.ndarray | None = None,
                         weights: np.ndarray | None = None) -> ExtensiveForm:
    """Stack the scenarios' arrays (``models/hedge.md``): objective Σ_k p_k c_k, each scenario's rows over its
    columns mapped by `nonanticipativity`. ``fixed`` fixes the first stage (canonical order) at given values;
    ``weights`` replace the scenarios' probabilities (1 to solve one scenario on its own scale)."""
    p = [sm.probability for sm in scenarios] if weights is None else list(weights)
    maps, n_cols = add_nonanticipativity(scenarios, link)
    ef = LinearProgram()
    lower, upper = np.zeros(n_cols), np.zeros(n_cols)
    origin = np.zeros(n_cols, dtype=np.int64)
    owner = np.zeros(n_cols, dtype=np.int64)
    terms: dict[str, tuple[list, list, float]] = {}
    rowstarts = []
    for k, sm in enumerate(scenarios):
        cm = maps[k]
        cl, cu, rl, ru = sm.bounds
        mine = cm >= 0  # the columns this scenario adds (its first stage is scenario 0's when linked)
        if k > 0 and link:
            mine[sm.first] = False
        new = np.nonzero(mine)[0]
        lower[cm[new]], upper[cm[new]] = cl[new], cu[new]
        origin[cm[new]], owner[cm[new]] = new, k
        if fixed is not None:
            f = cm[sm.first]
            lower[f] = upper[f] = fixed
        r, c, v = sm.coo
        keep = cm[c] >= 0
        rowstarts.append(ef.n_rows)
        ef.add_rows(f"s{k}", pd.DataFrame({"scenario": k, "row": np.arange(sm.n_rows)}), r[keep], cm[c[keep]],
                    v[keep], lower=rl, upper=ru)
        for name, (cols, coefs, sign) in sm.terms.items():
            ok = cm[cols] >= 0
            tc, tv, _ = terms.setdefault(name, ([], [], sign))
            tc.append(cm[cols[ok]])
            tv.append(p[k] * coefs[ok])
    ef.add_cols("columns", pd.DataFrame({"scenario": owner, "col": origin}), lower=lower, upper=upper)
    for name, (c, v, sign) in terms.items():
        ef.add_term(name, np.concatenate(c), np.concatenate(v), sign)
    first = maps[0][scenarios[0].first] if link else np.zeros(0, dtype=np.int64)
    return ExtensiveForm(ef, maps, np.array(rowstarts, dtype=np.int64), first)


__all__ = ["ScenarioModel", "ExtensiveForm", "build_scenario_model", "build_extensive_form", "scenario_start_lo",
           "add_commit_window", "add_excess_output", "add_hold_until_ready", "add_closest_commitment", "add_nonanticipativity", "first_stage_columns"]
