"""The hedged plan (issue 21, ``models/hedge.md``): one plan to commit now that is good across the outcomes of the
Uncertainty sheet, what it is expected to earn, and what planning for the uncertainty (VSS) and better forecasts
(EVPI) are worth.

The stages, each handing plain data to the next:

1. :func:`scenario_set` turns the Uncertainty sheet into scenarios with probabilities: the cartesian product of the
   rows when every row is ``discrete`` and the product is small (exact), else ``samples`` draws with equal weights
   (identical draws merged); and the average scenario (each input at its expected value).
2. :func:`solve_hedge` builds each scenario's model (:mod:`planner.model.hedge`), stacks them into the extensive
   form, solves it (the hedged plan, "RP"), solves the average scenario's deterministic plan ("EV") and evaluates
   its first stage in every scenario ("EEV"), and solves every scenario with its own first stage ("WS", perfect
   foresight). VSS = RP − EEV, EVPI = WS − RP.
3. The tables (:class:`HedgeResult`): Summary, Commit, Expansions, Differences, Statistics, Scenarios,
   ExpectedStarts — everything :mod:`planner.report.hedge` writes and its sentences are computed from.

When the extensive form would exceed ``ef_max_columns``, the plan is optimised over a subsample of the scenarios
and every scenario's recourse is evaluated one LP each — as a batch, on local processes or a Dask cluster, through
the ``evaluate`` callable the caller supplies (analysis never imports the batch engine).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from planner.analysis.cases import Case, CaseResult
from planner.exhaustion import out_of_memory
from planner.io.problems import Problem, ValidationFailed
from planner.io.scenarios import Edit, apply_edits
from planner.io.uncertainty import check_uncertainty, draw, fit_draw
from planner.io.validate import PlanData
from planner.model.build import build_model, check_scale
from planner.model.hedge import (
    ScenarioModel,
    add_closest_commitment,
    build_extensive_form,
    build_scenario_model,
    first_stage_columns,
    same_first_stage,
)
from planner.model.sets import derive_sets
from planner.solve.policy import check_feasibility, solve_model
from planner.solve.sessions import IPM_THRESHOLD_COLS, HighsSession, RunResult, make_session

# above this the extensive form is solved over a subsample: on the 10k generated plan 322k columns took 54 s and
# 644k columns 154 s (interior point), ten to fourteen times the same scenarios one LP each, and the gap grows
# with the scenarios (benchmarks/results.md, "Hedged plan")
EF_MAX_COLUMNS = 400_000
TOL = 0.5  # wafers (or wafers/quarter): smaller first-stage differences are round-off, not decisions
REL_TOL = 1e-3  # nor is a difference below 0.1 % of the quantity: the report names decisions, not solver noise


def differs(h: float, a: float) -> bool:
    """Whether two first-stage quantities differ by a decision's worth (more than 0.5 and more than 0.1 %)."""
    return abs(h - a) > max(TOL, REL_TOL * max(abs(h), abs(a)))
COST_TERMS = ("wafer_cost", "unit_cost", "holding_cost", "expansion_cost")
# inputs that change which start quarters or expansion decisions exist: one commit plan cannot span them
STRUCTURAL = {("products", "cycle_quarters"), ("products", "node"), ("expansions", "lead_quarters"),
              ("expansions", "earliest_period")}


class HedgeError(Exception):
    """The plan cannot be hedged as asked (policy, commit window): the message says what to change."""


# ---- 1. scenarios ------------------------------------------------------------------------------------------------
@dataclass
class ScenarioSet:
    cases: list[Case]  # one per scenario: its edits on the base plan; params = the uncertain inputs' values
    probabilities: np.ndarray
    mode: str  # exact | sampled
    inputs: list[str]  # names of the uncertain inputs (Uncertainty rows)
    average: Case  # every input at its expected value over the scenarios
    samples: int = 0
    seed: int | None = None
    draws: int = 0  # sampled: draws before identical ones were merged

    def describe(self) -> str:
        n = len(self.cases)
        if self.mode == "exact":
            return (f"{n} scenario{'s' if n != 1 else ''}, every combination of the discrete rows with its "
                    "probability")
        merged = f", {self.draws - n} identical draws merged" if self.draws > n else ""
        return f"{n} scenario{'s' if n != 1 else ''} from {self.draws} equally likely draws (seed {self.seed}{merged})"


def _name(row: dict) -> str:
    return row["name"] or f"{row['sheet']}[{row['key']}].{row['column']}"


def _value_text(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:.4g}"


def _int_column(row: dict) -> bool:
    """Whether the row's target column holds whole numbers (its expected value is rounded, half up)."""
    return isinstance(fit_draw(row, 0.4), int)


def check_hedgeable(plan: PlanData) -> list[Problem]:
    """Uncertainty rows a hedged plan cannot span: ones that change which start quarters or expansion decisions
    exist (cycle times, nodes, lead times, earliest periods) or the settings themselves."""
    out = []
    for r in plan.uncertainty.to_dict("records"):
        sheet, col = str(r["sheet"]).strip().casefold(), str(r["column"]).strip().casefold()
        if sheet == "settings" or (sheet, col) in STRUCTURAL:
            what = f"Settings.{r['key']}" if sheet == "settings" else f"{r['sheet']}.{r['column']}"
            out.append(Problem(
                "structural_uncertainty", f"{_name(r)!r} varies {what}, which changes which wafer starts or expansion "
                "decisions exist; one plan to commit cannot be shared across such scenarios", sheet="Uncertainty",
                row=r["_row"], column="column", expected="an uncertain yield, readiness, demand, capacity, cost or "
                "price", found=what, hint="use planner montecarlo for the spread of outcomes over this input"))
    return out


def scenario_set(plan: PlanData, samples: int = 200, seed: int = 1) -> ScenarioSet:
    """The scenarios of the Uncertainty sheet (see the module docstring), checked first."""
    if plan.uncertainty.empty:
        raise ValidationFailed([Problem("missing_sheet", "planner hedge needs an 'Uncertainty' sheet with at least "
                                        "one row", sheet="Uncertainty", expected="rows: sheet, key, column, "
                                        "distribution, op, p1..p3 / values, probabilities", found="none")])
    problems = check_uncertainty(plan) + check_hedgeable(plan)
    if problems:
        raise ValidationFailed(problems)
    rows = plan.uncertainty.to_dict("records")
    names = [_name(r) for r in rows]
    discrete = all(r["distribution"] == "discrete" for r in rows)
    if discrete:
        opts = [(np.array([float(v) for v in str(r["values"]).split(",")]),
                 np.array([float(p) for p in str(r["probabilities"]).split(",")])) for r in rows]
        size = math.prod(len(v) for v, _ in opts)
    if discrete and size <= samples:
        mode, draws_n = "exact", size
        combos = np.array(list(itertools.product(*[range(len(v)) for v, _ in opts])), dtype=int).reshape(size, -1)
        values = np.column_stack([opts[j][0][combos[:, j]] for j in range(len(rows))])
        weights = np.prod(np.column_stack([opts[j][1][combos[:, j]] / opts[j][1].sum() for j in range(len(rows))]),
                          axis=1)
    else:
        mode, draws_n = "sampled", samples
        rng = np.random.default_rng(seed)
        values = np.column_stack([draw(r, samples, rng) for r in rows])
        weights = np.full(samples, 1.0 / samples)
    fitted = np.array([[fit_draw(r, v) for r, v in zip(rows, vals, strict=True)] for vals in values], dtype=float)
    # identical scenarios (the same cell values) are one scenario with their weights summed
    frame = pd.DataFrame(fitted, columns=range(len(rows)))
    frame["w"] = weights
    grouped = frame.groupby(list(range(len(rows))), sort=False, as_index=False)["w"].sum()
    grouped = grouped[grouped["w"] > 0].reset_index(drop=True)
    cases = []
    for i, rec in enumerate(grouped.itertuples(index=False)):
        vals = list(rec)[:-1]
        edits = [Edit(r["sheet"], str(r["key"]), r["column"], r["op"], fit_draw(r, v),
                      source=f"Uncertainty row {r['_row']} ({names[j]})", clip=True) for j, (r, v) in enumerate(zip(rows, vals,
                                                                                                     strict=True))]
        label = ("; ".join(f"{n}={_value_text(v)}" for n, v in zip(names, vals, strict=True)) if mode == "exact"
                 else f"sample {i + 1}")
        cases.append(Case(label, edits, params=dict(zip(names, map(float, vals), strict=True))))
    probs = grouped["w"].to_numpy() / grouped["w"].sum()
    avg_vals = []
    for j, r in enumerate(rows):
        mean = float(np.dot(probs, grouped[j].to_numpy()))
        avg_vals.append(fit_draw(r, math.floor(mean + 0.5) if _int_column(r) else mean))
    average = Case("average scenario", [Edit(r["sheet"], str(r["key"]), r["column"], r["op"], v,
                                             source=f"Uncertainty row {r['_row']} ({names[j]})", clip=True)
                                        for j, (r, v) in enumerate(zip(rows, avg_vals, strict=True))],
                   params=dict(zip(names, map(float, avg_vals), strict=True)))
    return ScenarioSet(cases, probs, mode, names, average, samples=samples, seed=None if mode == "exact" else seed,
                       draws=draws_n)


def default_commit_quarters(plan: PlanData) -> int:
    """K: the longest cycle time (a start made now lands no later than that), at least 1, at most the horizon."""
    c = int(plan.products["cycle_quarters"].max()) if len(plan.products) else 0
    return max(1, min(c, plan.settings.horizon_quarters))


# ---- 2. solving --------------------------------------------------------------------------------------------------
@dataclass
class SolveOptions:
    solver: str = "highs"
    method: str = "auto"
    time_limit: float | None = None


def _readiness(plan: PlanData) -> tuple[np.ndarray, np.ndarray]:
    ms = derive_sets(plan)
    return ms.products["start_lo"].to_numpy().astype(int), ms.products["ready"].to_numpy().astype(int)


def readiness_by_scenario(base: PlanData, cases: Sequence[Case]) -> tuple[np.ndarray, np.ndarray]:
    """(start_lo, ready) per scenario and product. Only edits of Programs and Products.program move readiness, so
    scenarios that share those edits share the answer (computed once each)."""
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    lo, ready = [], []
    for case in cases:
        rel = [e for e in case.edits if e.sheet.strip().casefold() == "programs"
               or (e.sheet.strip().casefold() == "products" and e.column.strip().casefold() == "program")]
        key = tuple((e.sheet, e.key, e.column, e.op, str(e.value)) for e in rel)
        if key not in cache:
            cache[key] = _readiness(apply_edits(base, rel, label=case.name) if rel else base)
        lo.append(cache[key][0])
        ready.append(cache[key][1])
    return np.array(lo), np.array(ready)


def ef_method(method: str, scenario_columns: int) -> str:
    """HiGHS method for the extensive form: 'auto' follows the size of one scenario's model, not of the whole.
    Measured (benchmarks/results.md, "Hedged plan"): with the example's ~300-column scenarios dual simplex solved
    300 of them stacked 3.5x faster than interior point; with 6,500-column scenarios interior point was 3x faster
    already at 10 — the same crossover as for one plan (``IPM_THRESHOLD_COLS``)."""
    if method != "auto":
        return method
    return "ipm" if scenario_columns >= IPM_THRESHOLD_COLS else "simplex"


def _run(lp, opts: SolveOptions):
    session = make_session(lp, opts.solver, opts.time_limit, opts.method)
    session.set_objective(lp.objective())
    return session, session.run()


def scenario_kpis(sm: ScenarioModel, x: np.ndarray) -> dict:
    """One scenario's figures under a solution of its columns: objective, margin (revenue − cost), the terms, and
    fill rates (overall and per platform, served / demanded over the horizon)."""
    terms = sm.term_values(x)
    revenue = terms.get("revenue", 0.0)
    cost = sum(terms.get(k, 0.0) for k in COST_TERMS)
    penalty = terms.get("shortfall_penalty", 0.0)
    yp, ycol = sm.y
    served = np.bincount(yp, weights=x[ycol], minlength=len(sm.platforms))
    demand = sm.demand
    out = {"objective": revenue - cost - penalty, "margin": revenue - cost, "revenue": revenue, "cost": cost,
           "shortfall_penalty": penalty,
           "fill_rate": float(served.sum() / demand.sum()) if demand.sum() > 0 else np.nan}
    for p, s, d in zip(sm.platforms, served, demand, strict=True):
        out[f"fill_rate[{p}]"] = float(s / d) if d > 0 else np.nan
    return out


def scenario_starts(sm: ScenarioModel, x: np.ndarray) -> pd.DataFrame:
    w = sm.wafers
    v = x[w["col"]]
    keep = v > 1e-6
    return pd.DataFrame({"fab": w["fab"][keep], "node": w["node"][keep], "product": w["product"][keep],
                         "t": w["s"][keep], "wafers": v[keep]})


@dataclass
class HedgeCaseResult(CaseResult):
    """A scenario's recourse under each first stage: ``kpis`` holds the hedged plan's figures and
    ``average_plan_objective`` / ``perfect_foresight_objective`` (with their statuses); ``starts`` the hedged plan's
    wafer starts in this scenario; ``model`` the scenario's arrays when the caller stacks them."""

    starts: pd.DataFrame | None = None
    model: ScenarioModel | None = None


def evaluate_scenario(sm: ScenarioModel, fixed: dict[str, np.ndarray | None], opts: SolveOptions) -> dict:
    """Solve one scenario's model once per entry of ``fixed``: its first stage fixed at the given values, or free
    (``None``: perfect foresight). Returns per entry (status, column vector or None).

    HiGHS keeps the model between the entries and only the first stage's bounds change, so each re-solve starts
    from the previous basis; other solvers get the model again with the bounds in it."""
    if not fixed:
        return {}
    ef = build_extensive_form([sm], weights=np.ones(1))
    cl, cu, _, _ = ef.lp.bounds()
    first = ef.first
    session = None
    out = {}
    for name, values in fixed.items():
        lo, hi = (cl[first], cu[first]) if values is None else (values, values)
        if isinstance(session, HighsSession):
            session.use_simplex()
            session.h.changeColsBounds(len(first), first.astype(np.int32), np.asarray(lo, float),
                                       np.asarray(hi, float))
            res = session.run()
        else:
            lp = ef.lp if values is None else build_extensive_form([sm], fixed=values, weights=np.ones(1)).lp
            session, res = _run(lp, opts)
        ok = res.status == "optimal" or (res.status == "time_limit" and res.x is not None)
        out[name] = (res.status, ef.scenario_x(0, res.x) if ok else None)
    return out


def run_hedge_case(base: PlanData, case: Case, *, commit_lo: np.ndarray, commit_quarters: int, keys: pd.DataFrame,
                   fixed: dict[str, np.ndarray | None], opts: SolveOptions, excess: bool = True,
                   keep_model: bool = False) -> HedgeCaseResult:
    """A batch task (:func:`planner.batch.run_batch` with ``runner=run_hedge_case``): build one scenario's model and
    solve it under each entry of ``fixed`` (the hedged or the average plan's first stage, or free: perfect
    foresight); with ``keep_model`` its arrays come back for the extensive form. Never raises for a problem of the
    scenario itself: it comes back failed, with the reason."""
    t0 = time.perf_counter()
    try:
        plan = apply_edits(base, case.edits, label=case.name)
        sm = build_scenario_model(plan, case.name, 1.0, commit_lo, commit_quarters, excess)
        if not same_first_stage(sm.keys, keys):
            raise ValueError("its first-stage decisions differ from the base plan's (an Uncertainty row changes which "
                             "starts or expansions exist)")
        got = evaluate_scenario(sm, fixed, opts)
    except ValidationFailed as exc:
        msg = "; ".join(p.render() for p in exc.problems if p.severity == "error")
        return HedgeCaseResult(case.name, "failed", error=f"invalid: {msg}", params=case.params,
                               seconds=time.perf_counter() - t0)
    except Exception as exc:  # one scenario's failure must not stop the batch (no memory stops them all)
        if out_of_memory(exc):
            raise
        return HedgeCaseResult(case.name, "failed", error=f"{type(exc).__name__}: {exc}", params=case.params,
                               seconds=time.perf_counter() - t0)
    r = HedgeCaseResult(case.name, "optimal", params=case.params, seconds=time.perf_counter() - t0,
                        model=sm if keep_model else None)
    for name, (st, x) in got.items():
        _record(r, sm, name, st, x)
    return r


def _record(r: HedgeCaseResult, sm: ScenarioModel, name: str, status: str, x: np.ndarray | None) -> None:
    """One plan's outcome in a scenario into its result: the hedged plan's full figures, the others' objective."""
    if name == "hedged":
        r.status = status
        if x is not None:
            r.kpis.update(scenario_kpis(sm, x))
            r.starts = scenario_starts(sm, x)
        else:
            r.error = f"the hedged plan is {status} in this scenario"
        return
    r.kpis[f"{name}_status"] = status
    r.kpis[f"{name}_objective"] = scenario_kpis(sm, x)["objective"] if x is not None else None


Evaluate = Callable[[list[Case], dict], list[HedgeCaseResult]]


@dataclass
class HedgeResult:
    """Everything the hedge report shows, as tables (:mod:`planner.report.hedge` writes them)."""

    plan: PlanData
    scenarios: ScenarioSet
    commit_quarters: int
    summary: dict
    commit: pd.DataFrame  # fab, node, product, period, wafers, lands, risk_probability
    expansions: pd.DataFrame  # fab, node, option, decided, available_from, wafers_per_quarter, cost
    differences: pd.DataFrame  # kind, item, period, hedged, average_plan, difference, unit, ..., sentence
    statistics: pd.DataFrame  # metric, expected, P10, P50, P90, min, max, P(below threshold)
    table: pd.DataFrame  # one row per scenario: probability, inputs, status, figures under each plan
    expected_starts: pd.DataFrame  # fab, node, product, period, expected_wafers, min_wafers, max_wafers, committed
    threshold: float = 0.9
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["scenario", "status", "reason"]))
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (benchmarks)

    @property
    def ok(self) -> bool:
        return self.summary["status"] in ("optimal", "time_limit") and self.summary["expected_objective"] is not None


def _first_values(model, keys: pd.DataFrame, x: np.ndarray, commit_quarters: int) -> np.ndarray:
    """A deterministic solution's first stage in the canonical order of ``keys`` (missing columns are 0)."""
    cols, own = first_stage_columns(model, commit_quarters)
    own = own.assign(v=x[cols])
    merged = keys.merge(own, on=["kind", "fab", "node", "product", "e", "t"], how="left")
    if len(own) and merged["v"].notna().sum() != len(own):
        raise ValueError("the average-scenario plan starts where no scenario allows it")
    return merged["v"].fillna(0.0).to_numpy()


def solve_hedge(base: PlanData, scen: ScenarioSet, commit_quarters: int | None = None,
                opts: SolveOptions | None = None, threshold: float = 0.9, ef_max_columns: int = EF_MAX_COLUMNS,
                evaluate: Evaluate | None = None, progress: Callable[[str], None] | None = None) -> HedgeResult:
    """The hedged plan and its evaluation (module docstring).

    ``evaluate(cases, keywords)`` runs :func:`run_hedge_case` for each case — as a batch on local processes or a
    Dask cluster when the caller supplies it (:func:`planner.api.hedge`), one after another in this process
    otherwise. Each scenario is built once: its model comes back for the extensive form together with its
    perfect-foresight and average-plan solutions.
    """
    say = progress or (lambda _m: None)
    s = base.settings
    if s.policy != "margin":
        raise HedgeError(f"planner hedge maximises the expected objective of the 'margin' policy; this plan's "
                         f"Settings policy is {s.policy!r}. Set policy to margin to hedge it (planner montecarlo "
                         f"shows the spread of outcomes under {s.policy!r}).")
    K = default_commit_quarters(base) if commit_quarters is None else int(commit_quarters)
    if not 1 <= K <= s.horizon_quarters:
        raise HedgeError(f"--commit-quarters must be between 1 and the horizon ({s.horizon_quarters} quarters); "
                         f"got {K}")
    opts = opts or SolveOptions(s.solver, s.highs_method, s.time_limit_s)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    mark = [t0]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - mark[0]
        mark[0] = now

    def inline(cs: list[Case], kw: dict) -> list[HedgeCaseResult]:
        return [run_hedge_case(base, c, **kw) for c in cs]

    run = evaluate or inline
    cases, probs = scen.cases, scen.probabilities
    say(f"readiness of {len(cases)} scenarios")
    start_lo, ready = readiness_by_scenario(base, cases)
    commit_lo = start_lo.min(axis=0)
    lap("readiness")

    # the average scenario's deterministic plan (EV) and its first stage
    say("the plan for the average scenario")
    avg_model = build_model(apply_edits(base, scen.average.edits, label="the average scenario"))
    scale = check_scale(avg_model)
    if scale:
        raise ValidationFailed(scale)
    avg_sol = solve_model(avg_model, solver=opts.solver, time_limit=opts.time_limit, method=opts.method,
                          policy="margin")
    excess = len(cases) > 1  # one scenario: exactly the deterministic model (models/hedge.md)
    # the first stage's columns from a scenario, never the base: the base's own readiness may be earlier than
    # every scenario's (a certain slip), and its commit window would then hold starts no scenario has
    ref = build_scenario_model(apply_edits(base, cases[0].edits, label=cases[0].name), "reference", 1.0, commit_lo,
                               K, excess)
    avg_first = _first_values(avg_model, ref.keys, avg_sol.x, K) if avg_sol.x is not None else None
    fixed: dict[str, np.ndarray | None] = {"perfect_foresight": None}
    if avg_first is not None:
        fixed["average_plan"] = avg_first
    lap("average_plan")

    # every scenario's model (and its EEV and WS), or a subsample's when the extensive form would be too large
    kw = {"commit_lo": commit_lo, "commit_quarters": K, "keys": ref.keys, "opts": opts, "excess": excess}
    per = ref.n_cols
    fits = max(1, ef_max_columns // max(per, 1))
    full = len(cases) <= fits
    if full:
        chosen = np.arange(len(cases))
        say(f"building {len(cases)} scenario models, each solved with perfect foresight and with the average "
            "plan's first stage")
        results = run(cases, {**kw, "fixed": fixed, "keep_model": True})
        built = results
    else:
        order = np.argsort(-probs, kind="stable") if scen.mode == "exact" else np.arange(len(cases))
        chosen = np.sort(order[:max(2, fits)])
        say(f"building {len(chosen)} of {len(cases)} scenario models for the extensive form")
        built = run([cases[i] for i in chosen], {**kw, "fixed": {}, "keep_model": True})
    bad = [r for r in built if getattr(r, "model", None) is None]  # a dead worker returns a plain CaseResult
    if bad:
        raise HedgeError(f"scenario {bad[0].name!r} cannot be built: {bad[0].error}"
                         + (f" ({len(bad) - 1} more scenarios too)" if len(bad) > 1 else ""))
    weights = probs[chosen] / probs[chosen].sum()
    models = [r.model for r in built]  # type: ignore[attr-defined]
    for sm, p in zip(models, weights, strict=True):
        sm.probability = float(p)
    lap("build_scenarios")
    ef = build_extensive_form(models)
    size = ef.lp.size
    lap("build_extensive_form")
    say(f"solving the extensive form: {size['columns']:,} columns, {size['rows']:,} rows")
    ef_opts = SolveOptions(opts.solver, ef_method(opts.method, per), opts.time_limit)
    session, res = _run(ef.lp, ef_opts)
    lap("solve_extensive_form")
    if res.status == "optimal" and avg_first is not None:
        res = _closest_commitment(session, ef, res, avg_first)
        lap("closest_commitment")
    have = res.x is not None
    worst, violations = check_feasibility(ef.lp, res.x) if have else (0.0, [])
    hedged_first = np.where(np.abs(res.x[ef.first]) < 1e-9, 0.0, res.x[ef.first]) if have else None

    if full:  # the hedged plan's recourse is the extensive form's own solution
        for k, (r, sm) in enumerate(zip(results, models, strict=True)):
            _record(r, sm, "hedged", res.status, ef.scenario_x(k, res.x) if have else None)
            if not have:
                r.error = f"no hedged plan: the extensive form over all scenarios is {res.status}"
            r.model = None
    else:
        for r in built:
            r.model = None
        say(f"evaluating the plan in all {len(cases)} scenarios, one LP each")
        results = run(cases, {**kw, "fixed": {**fixed, **({"hedged": hedged_first} if have else {})},
                              "keep_model": False})
        if not have:
            for r in results:
                r.status, r.error = res.status, f"no hedged plan: the extensive form is {res.status}"
    lap("evaluate")
    out = _tables(base, scen, K, opts, res.status, res.message, results, hedged_first, avg_first, avg_sol,
                  ref.keys, derive_sets(base), ready, threshold,
                  {"solve_seconds": timings["solve_extensive_form"], "lp_columns": size["columns"],
                   "lp_rows": size["rows"], "max_violation": worst, "violations": violations,
                   "ef_scenarios": len(chosen), "method": getattr(session, "method", ""),
                   "full_columns": per * len(cases), "max_columns": ef_max_columns})
    lap("tables")
    out.timings = timings
    out.summary["seconds"] = time.perf_counter() - t0
    return out


def _closest_commitment(session, ef, res: RunResult, avg_first: np.ndarray) -> RunResult:
    """Among the extensive form's optima, the one whose first stage is closest to the average-scenario plan's
    (`closest_commitment`, models/hedge.md); the solution as solved when the two already agree or the stage fails."""
    first = res.x[ef.first]
    if not (np.abs(first - avg_first) > np.maximum(TOL, REL_TOL * np.maximum(abs(first), abs(avg_first)))).any():
        return res  # no difference the report would name
    c = ef.lp.objective()
    value = float(c @ res.x)
    n = ef.lp.n_cols
    d = add_closest_commitment(session, ef.first, avg_first, c, value - (1e-9 * abs(value) + 1e-6))
    cost = np.zeros(int(d.max()) + 1)
    cost[d] = -1.0  # maximise −Σ d: the smallest total move away from the average plan's commitment
    session.set_objective(cost)
    tie = session.run()
    if tie.status != "optimal" or tie.x is None:
        return res
    x = tie.x[:n]
    return RunResult(res.status, float(c @ x), x, None if tie.row_dual is None else tie.row_dual[:ef.lp.n_rows],
                     res.message)


# ---- 3. tables ---------------------------------------------------------------------------------------------------
def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value with at least ``q`` of the probability at or below it (inverse distribution function)."""
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    ok = ~np.isnan(v)
    v, w = v[ok], w[ok]
    if not len(v):
        return np.nan
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order]) / w.sum()
    return float(v[order][min(int(np.searchsorted(cw, q - 1e-12, side="left")), len(v) - 1)])


def _stat_row(metric: str, values: np.ndarray, probs: np.ndarray, threshold: float | None) -> dict:
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    if not ok.any():
        return {"metric": metric}
    w = probs[ok] / probs[ok].sum()
    row = {"metric": metric, "expected": float(np.dot(w, v[ok])), "P10": weighted_quantile(v, probs, 0.1),
           "P50": weighted_quantile(v, probs, 0.5), "P90": weighted_quantile(v, probs, 0.9),
           "min": float(v[ok].min()), "max": float(v[ok].max())}
    if threshold is not None:
        row["P(below threshold)"] = float(np.dot(w, v[ok] < threshold - 1e-12))
    return row


DIFF_COLUMNS = ["kind", "item", "period", "average_period", "hedged", "average_plan", "difference", "unit",
                "risk_probability", "available_from", "average_available_from", "cost_difference", "hedged_decisions",
                "average_decisions"]
STAT_COLUMNS = ["metric", "expected", "P10", "P50", "P90", "min", "max", "P(below threshold)"]


def _tables(base: PlanData, scen: ScenarioSet, K: int, opts: SolveOptions, status: str, message: str,
            results: list[HedgeCaseResult], hedged_first, avg_first, avg_sol, keys: pd.DataFrame, sets,
            ready: np.ndarray, threshold: float, info: dict) -> HedgeResult:
    periods = base.periods
    probs = scen.probabilities
    plats = list(base.platforms["platform"])
    rows = []
    for case, p, r in zip(scen.cases, probs, results, strict=True):
        k = r.kpis
        row = {"scenario": case.name, "probability": float(p), **case.params, "status": r.status}
        for col in ("objective", "margin", "revenue", "cost", "shortfall_penalty", "fill_rate"):
            row[col] = k.get(col)
        for pl in plats:
            row[f"fill_rate[{pl}]"] = k.get(f"fill_rate[{pl}]")
        row["average_plan_objective"] = k.get("average_plan_objective")
        row["average_plan_status"] = k.get("average_plan_status", "not run")
        row["perfect_foresight_objective"] = k.get("perfect_foresight_objective")
        row["perfect_foresight_status"] = k.get("perfect_foresight_status")
        rows.append(row)
    table = pd.DataFrame(rows)
    failed = [{"scenario": r.name, "status": r.status, "reason": r.error} for r in results
              if r.status not in ("optimal", "time_limit") or r.error]
    failed += [{"scenario": r.name, "status": f"{plan}: {r.kpis[f'{plan}_status']}", "reason": why}
               for r in results for plan, why in (
                   ("average_plan", "the average-scenario plan's commitments cannot be carried out in this scenario"),
                   ("perfect_foresight", "the scenario cannot be planned even knowing its outcome"))
               if r.kpis.get(f"{plan}_status", "optimal") not in ("optimal", "time_limit")]
    failed = pd.DataFrame(failed, columns=["scenario", "status", "reason"])
    hedged_ok = (table["status"].isin(["optimal", "time_limit"]) & table["objective"].notna()).all()

    def expect(col: str) -> float | None:
        v = table[col]
        return float(np.dot(probs, v.astype(float))) if v.notna().all() and len(v) else None

    rp = expect("objective") if hedged_ok else None
    ws_ok = (table["perfect_foresight_status"] == "optimal").all()
    ws = expect("perfect_foresight_objective") if ws_ok else None
    avg_bad = table[table["average_plan_status"] != "optimal"]
    eev = expect("average_plan_objective") if avg_first is not None and avg_bad.empty else None
    vss = (rp - eev if eev is not None else (math.inf if avg_first is not None and rp is not None else None)) \
        if rp is not None else None
    evpi = ws - rp if ws is not None and rp is not None else None
    # the here-and-now plan
    commit = pd.DataFrame(columns=["fab", "node", "product", "period", "wafers", "lands", "risk_probability"])
    expansions = pd.DataFrame(columns=["fab", "node", "option", "decided", "available_from", "wafers_per_quarter",
                                       "cost"])
    differences = pd.DataFrame(columns=DIFF_COLUMNS)
    prods = sets.products
    m_of = dict(zip(prods["product"], prods["m"], strict=True))
    cyc = dict(zip(prods["product"], prods["cycle_quarters"], strict=True))
    exp = sets.expansions

    def risk(product: str, t: int) -> float:
        """Probability that the product's program is not ready when a wafer starts in quarter t."""
        return float(np.dot(probs, ready[:, m_of[product]] > t))

    if hedged_first is not None:
        k = keys.assign(v=hedged_first, avg=avg_first if avg_first is not None else np.nan)
        wk = k[(k["kind"] == "wafers") & (k["v"] > 1e-6)]
        commit = pd.DataFrame({"fab": wk["fab"], "node": wk["node"], "product": wk["product"],
                               "period": [periods[t] for t in wk["t"]], "wafers": wk["v"],
                               "lands": [periods[t + cyc[p]] for t, p in zip(wk["t"], wk["product"], strict=True)],
                               "risk_probability": [risk(p, t) for p, t in zip(wk["product"], wk["t"],
                                                                               strict=True)]}).reset_index(drop=True)
        xk = k[(k["kind"] == "expansion") & (k["v"] > 1e-6)]
        lead = exp["lead_quarters"].to_numpy() if len(exp) else np.zeros(0, int)
        expansions = pd.DataFrame({
            "fab": xk["fab"], "node": xk["node"], "option": [int(exp["_row"].iloc[e]) for e in xk["e"]],
            "decided": [periods[t] for t in xk["t"]],
            "available_from": [periods[t + int(lead[e])] for t, e in zip(xk["t"], xk["e"], strict=True)],
            "wafers_per_quarter": xk["v"],
            "cost": [v * float(exp["cost_per_wafer"].iloc[e]) for v, e in zip(xk["v"], xk["e"], strict=True)],
        }).reset_index(drop=True)
        if avg_first is not None:
            differences = _differences(k, periods, exp, lead, risk)

    # statistics under the hedged plan (and the objective under the others, to compare)
    stats = []
    if rp is not None:
        stats.append(_stat_row("objective", table["objective"].to_numpy(float), probs, None))
        stats.append(_stat_row("margin", table["margin"].to_numpy(float), probs, None))
        stats.append(_stat_row("fill_rate", table["fill_rate"].to_numpy(float), probs, threshold))
        for pl in plats:
            col = table[f"fill_rate[{pl}]"].to_numpy(float)
            if (~np.isnan(col)).any():
                stats.append(_stat_row(f"fill_rate[{pl}]", col, probs, threshold))
    if eev is not None:
        stats.append(_stat_row("objective (average-scenario plan)", table["average_plan_objective"].to_numpy(float),
                               probs, None))
    if ws is not None:
        stats.append(_stat_row("objective (perfect foresight)",
                               table["perfect_foresight_objective"].to_numpy(float), probs, None))
    statistics = pd.DataFrame(stats, columns=STAT_COLUMNS)

    # expected wafer starts over the whole horizon under the hedged plan
    parts = [r.starts.assign(p=p) for r, p in zip(results, probs, strict=True)
             if isinstance(r, HedgeCaseResult) and r.starts is not None]
    if parts and hedged_ok:
        st = pd.concat(parts, ignore_index=True)
        st["pw"] = st["p"] * st["wafers"]
        g = st.groupby(["fab", "node", "product", "t"], sort=True)
        exp_starts = pd.DataFrame({"expected_wafers": g["pw"].sum(),
                                   "max_wafers": g["wafers"].max(), "scenarios_starting": g["p"].sum()}).reset_index()
        exp_starts["min_wafers"] = np.where(exp_starts["scenarios_starting"] >= 1 - 1e-9,
                                            g["wafers"].min().to_numpy(), 0.0)
        exp_starts["committed"] = exp_starts["t"] < K
        exp_starts["period"] = [periods[t] for t in exp_starts["t"]]
        exp_starts = exp_starts.rename(columns={"scenarios_starting": "probability_started"})[
            ["fab", "node", "product", "period", "expected_wafers", "min_wafers", "max_wafers", "probability_started",
             "committed"]]
    else:
        exp_starts = pd.DataFrame(columns=["fab", "node", "product", "period", "expected_wafers", "min_wafers",
                                           "max_wafers", "probability_started", "committed"])

    overall = status if status != "optimal" or hedged_ok else "failed"
    summary = {
        "status": overall, "expected_objective": rp, "expected_margin": expect("margin") if hedged_ok else None,
        "expected_revenue": expect("revenue") if hedged_ok else None,
        "expected_cost": expect("cost") if hedged_ok else None,
        "expected_shortfall_penalty": expect("shortfall_penalty") if hedged_ok else None,
        "expected_fill_rate": expect("fill_rate") if hedged_ok and table["fill_rate"].notna().all() else None,
        "vss": vss, "evpi": evpi, "average_plan_objective": eev, "perfect_foresight_objective": ws,
        "average_scenario_objective": avg_sol.objective if avg_sol.x is not None else None,
        "average_plan_infeasible_scenarios": len(avg_bad) if avg_first is not None else None,
        "scenarios": len(scen.cases), "scenario_mode": scen.mode, "samples": scen.samples if scen.mode == "sampled"
        else None, "seed": scen.seed, "commit_quarters": K,
        "commit_window": f"{periods[0]}–{periods[K - 1]}" if K > 1 else periods[0], "threshold": threshold,
        "solver": opts.solver, "method": info["method"], "solve_seconds": info["solve_seconds"],
        "seconds": None, "lp_columns": info["lp_columns"], "lp_rows": info["lp_rows"],
        "extensive_form_scenarios": info["ef_scenarios"], "max_columns": info["max_columns"],
        "full_extensive_form_columns": info["full_columns"], "average_scenario_status": avg_sol.status,
        "feasibility_check": "passed" if not info["violations"] else "; ".join(info["violations"]),
        "max_violation": info["max_violation"], "policy": base.settings.policy, "backlog": base.settings.backlog,
        "risk_starts": base.settings.risk_starts, "currency": base.settings.currency,
        "input_sha256": base.sha256, "message": message,
    }
    return HedgeResult(base, scen, K, summary, commit, expansions, differences, statistics, table, exp_starts,
                       threshold, failed)


def _decisions(periods: list[str], taus: np.ndarray, amounts: np.ndarray) -> str:
    """An option's decisions as text: "22,000 in 2026Q2", or "21,486 in 2026Q2 and 360 in 2026Q4"."""
    return " and ".join(f"{a:,.0f} in {periods[int(t)]}" for t, a in zip(taus, amounts, strict=True))


def _differences(k: pd.DataFrame, periods: list[str], exp: pd.DataFrame, lead: np.ndarray, risk) -> pd.DataFrame:
    """First-stage decisions where the hedged and the average-scenario plan differ by more than round-off: wafer
    starts per product and quarter (summed over fabs); expansions per option (what each plan orders in the window,
    and when)."""
    rows = []

    w = k[k["kind"] == "wafers"].groupby(["product", "t"], sort=True)[["v", "avg"]].sum().reset_index()
    for r in w.itertuples(index=False):
        if differs(r.v, r.avg):
            rows.append({"kind": "wafers", "item": r.product, "period": periods[r.t], "average_period": periods[r.t],
                         "hedged": r.v, "average_plan": r.avg, "difference": r.v - r.avg, "unit": "wafers",
                         "risk_probability": risk(r.product, r.t)})
    x = k[k["kind"] == "expansion"]
    dup = exp.groupby(["fab", "node"])["e"].transform("size").to_numpy() if len(exp) else np.zeros(0)
    for e, g in x.groupby("e", sort=True):
        if not any(differs(h, a) for h, a in zip(g["v"], g["avg"], strict=True)):
            continue
        h_on, a_on = g[g["v"] > TOL], g[g["avg"] > TOL]
        h, a = float(g["v"].sum()), float(g["avg"].sum())
        r0 = g.iloc[0]
        item = f"{r0['fab']}/{r0['node']}" + (f" (Expansions row {int(exp['_row'].iloc[e])})" if dup[e] > 1 else "")
        first_h = int(h_on["t"].min()) if len(h_on) else None
        first_a = int(a_on["t"].min()) if len(a_on) else None
        rows.append({"kind": "expansion", "item": item,
                     "period": ", ".join(periods[int(t)] for t in h_on["t"]),
                     "average_period": ", ".join(periods[int(t)] for t in a_on["t"]),
                     "hedged_decisions": _decisions(periods, h_on["t"].to_numpy(), h_on["v"].to_numpy()),
                     "average_decisions": _decisions(periods, a_on["t"].to_numpy(), a_on["avg"].to_numpy()),
                     "hedged": h, "average_plan": a, "difference": h - a, "unit": "wafers/quarter",
                     "available_from": periods[first_h + int(lead[e])] if first_h is not None else "",
                     "average_available_from": periods[first_a + int(lead[e])] if first_a is not None else "",
                     "cost_difference": (h - a) * float(exp["cost_per_wafer"].iloc[e])})
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)
