"""The what-if page's engine: one plan, one kept model, a view per lever state (no web code here).

Every lever change goes the CLI's way — the ``--set`` texts of :mod:`planner.serve.levers` parsed and applied by
:func:`~planner.io.scenarios.apply_edits` — and is re-solved from the base plan's kept optimal basis
(:class:`planner.solve.warm.WarmStarter`, the same path a batch case takes in :func:`planner.batch.run_case`):
a changed capacity, demand or price starts dual simplex a few pivots from the new optimum; a readiness shift
(which moves columns in or out of the LP) or another policy is solved cold. Views are cached per lever state,
so going back to a state costs nothing.

The analyses are split by cost, so the numbers come first:

- ``view`` (every change): solve, contract tables, key figures and deltas, served vs demand, what binds (duals);
- ``explain`` (the page asks for it right after the numbers, automatically below ``AUTO_ANALYSIS_MAX_COLS``
  columns, on a button above): shortfall causes (~0.1 s on the example: 2^n re-solves of one kept model), then
  "what would help" (each candidate lever one more solve, ~0.3 s on the example).

A plan above ``max_columns`` is not solved at all: the page composes ``--set`` expressions and offers the batch
commands instead.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planner.analysis.bottlenecks import bottlenecks
from planner.analysis.explain import explain_shortfalls, platform_sentences, what_would_close
from planner.io.problems import Problem, ValidationFailed
from planner.io.scenarios import apply_edits
from planner.io.validate import PlanData
from planner.model.build import build_model, check_scale
from planner.pipeline import AUTO_ANALYSIS_MAX_COLS, Run, finish_run, run_plan
from planner.report.writer import ReportInput, headline
from planner.serve.levers import (
    LeverError,
    LeverSet,
    cli_label,
    command_line,
    expressions,
    lever_set,
    normalise,
    parse_all,
    problem_messages,
)
from planner.solve.sessions import SolverError
from planner.solve.warm import WarmStarter

log = logging.getLogger("planner.serve")

INTERACTIVE_MAX_COLS = 50_000  # above: one solve takes seconds (6 s at 86k columns): batch commands instead
DEFAULT_TIME_LIMIT = 60.0  # seconds per solve when neither --time-limit nor Settings.time_limit_s says
CACHE_SIZE = 64
TOL = 1e-6


@dataclass
class View:
    """Everything the page shows for one lever state."""

    state: dict
    scenario: str
    sets: list[str]
    errors: list[str] = field(default_factory=list)  # the edits do not apply: the CLI's messages, no solve
    status: str = "invalid"
    message: str = ""
    run: Run | None = None
    figures: dict[str, float | None] = field(default_factory=dict)
    platforms: pd.DataFrame | None = None  # platform, demand, served, shortfall, fill_rate
    service: pd.DataFrame | None = None
    binds: pd.DataFrame | None = None  # resource, kind, quarters, first, last, top_price
    causes: pd.DataFrame | None = None
    cause_sentences: list[str] = field(default_factory=list)
    fixes: pd.DataFrame | None = None
    explained: bool = False  # causes computed
    helped: bool = False  # "what would help" computed
    lines: list[str] = field(default_factory=list)  # headline(): what `planner solve` prints
    seconds: dict[str, float] = field(default_factory=dict)
    bottleneck_rows: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.run is not None and self.run.solution.has_solution

    @property
    def pending(self) -> str:
        """The next slow step this view still lacks: 'causes', 'help' or ''."""
        if not self.ok:
            return ""
        return "causes" if not self.explained else ("help" if not self.helped else "")

    @property
    def label(self) -> str:
        return cli_label(self.scenario, self.sets)


@dataclass
class Saved:
    path: Path
    name: str
    command: str
    rows: int


class Engine:
    """One plan behind the page: the base view, a warm starter, a cache of views; thread-safe."""

    def __init__(self, path: Path, plan: PlanData, time_limit: float | None = None,
                 max_columns: int = INTERACTIVE_MAX_COLS):
        self.path = Path(path)
        self.plan = plan
        self.input_sha256 = plan.sha256  # the input as read; a save into it checks nothing else changed it
        self.levers: LeverSet = lever_set(plan)
        self.time_limit = time_limit or plan.settings.time_limit_s or DEFAULT_TIME_LIMIT
        t = time.perf_counter()
        model = build_model(plan)
        self.n_cols, self.n_rows = model.lp.n_cols, model.lp.n_rows
        self.build_seconds = time.perf_counter() - t
        self.max_columns = max_columns
        self.interactive = self.n_cols <= max_columns
        self.auto_explain = self.n_cols < AUTO_ANALYSIS_MAX_COLS
        self._cache: OrderedDict[tuple, View] = OrderedDict()
        self._lock = threading.Lock()
        self._explain_locks: dict[tuple, threading.Lock] = {}
        self.warm = WarmStarter(plan, time_limit=self.time_limit)
        self.base: View | None = None
        if self.interactive:
            self.base = self.view({})

    # ---- views ----------------------------------------------------------------------------------------------
    def view(self, raw_state: Any) -> View:
        """The view of a lever state (cached); never raises for a problem of the state or the plan."""
        try:
            state = normalise(raw_state, self.levers)
        except LeverError as exc:
            return View(state={}, scenario="", sets=[], errors=[str(exc)])
        try:
            scen, sets = expressions(state, self.plan, self.levers)
        except ValidationFailed as exc:
            return View(state=state, scenario=state.get("scenario", ""), sets=[], errors=problem_messages(exc))
        key = (state.get("scenario", ""), tuple(sets))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        v = View(state=state, scenario=state.get("scenario", ""), sets=sets)
        if self.interactive:
            self._solve_into(v, scen)
        else:  # not solved, but checked as the CLI will check it when the command is run
            try:
                self._plan_for(v, scen)
            except ValidationFailed as exc:
                v.errors = problem_messages(exc)
        if v.status in ("time_limit", "error"):  # may go otherwise next time (a busy machine): not kept
            return v
        with self._lock:
            self._cache[key] = v
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return v

    def _plan_for(self, v: View, scen) -> PlanData:
        edits = list(scen) + parse_all(v.sets)
        return apply_edits(self.plan, edits, label=v.label) if edits else self.plan

    def _solve_into(self, v: View, scen) -> None:
        t0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            plan = self._plan_for(v, scen)
        except ValidationFailed as exc:
            v.errors = problem_messages(exc)
            return
        t1 = time.perf_counter()
        try:
            if plan.settings.solver == "highs":
                model, sol = self.warm.solve(plan)
                problems = check_scale(model)
                if problems:
                    raise ValidationFailed(problems)
                run = finish_run(plan, model, sol)
            else:
                run = run_plan(plan, time_limit=self.time_limit)
        except ValidationFailed as exc:
            v.errors = problem_messages(exc)
            return
        except SolverError as exc:
            v.status, v.message = "error", str(exc)
            return
        except Exception as exc:  # a bug must cost this view, not the server
            log.error("solve failed for %s:\n%s", v.label or "base", traceback.format_exc())
            v.status, v.message = "error", f"internal error: {type(exc).__name__}: {exc}"
            return
        t2 = time.perf_counter()
        v.run = run
        s = run.results.summary
        v.status, v.message = s["status"], s.get("message") or ""
        v.seconds = {"apply": t1 - t0, "solve": t2 - t1}
        if not run.solution.has_solution:
            v.lines = headline(self._report_input(v))
            return
        v.figures = figures(s)
        v.service = run.results.service
        v.platforms = platform_table(run.results.service, plan)
        t = time.perf_counter()
        # the binding rows straight from the duals (what `bottlenecks` ranks); the platforms short behind each
        # (a search per row, ~50 ms on the example) are added with the causes, after the numbers are shown
        v.bottleneck_rows = binding_rows(run.results.capacity)
        v.binds = binding_summary(v.bottleneck_rows)
        v.seconds["binds"] = time.perf_counter() - t
        v.seconds["cpu"] = time.thread_time() - cpu0  # this thread's CPU: what the change costs on an idle core
        if not self.auto_explain:  # otherwise the words come with the causes, right after the numbers
            v.lines = headline(self._report_input(v))

    def _report_input(self, v: View) -> ReportInput:
        run = v.run
        return ReportInput(plan=run.plan, results=run.results, bottlenecks=v.bottleneck_rows,
                           infeasibility=run.infeasibility, iis=run.iis, causes=v.causes, fixes=v.fixes,
                           scenario=v.label)

    def explain(self, raw_state: Any) -> View:
        """One more step of the slow part for this state: shortfall causes first, then "what would help".

        The page asks again while ``View.pending`` names a step, so the causes show as soon as they are known
        and a lever moved meanwhile stops the sequence (the page only asks for its current state).
        """
        v = self.view(raw_state)
        if not v.ok or not v.pending:
            return v
        key = (v.scenario, tuple(v.sets))
        with self._lock:
            lock = self._explain_locks.setdefault(key, threading.Lock())
        with lock:  # two tabs asking for the same state explain it once
            try:
                run = v.run
                if not v.explained:
                    t = time.perf_counter()
                    v.bottleneck_rows = bottlenecks(run.plan, run.results)
                    v.binds = binding_summary(v.bottleneck_rows)
                    v.causes = explain_shortfalls(run, time_limit=self.time_limit)
                    v.cause_sentences = platform_sentences(v.causes, run.plan)
                    v.seconds["causes"] = time.perf_counter() - t
                    v.explained = True
                elif not v.helped:
                    t = time.perf_counter()

                    def resolve(p: PlanData):  # exactly what `planner solve` re-solves with (api.analyse)
                        return run_plan(p, time_limit=self.time_limit).results

                    v.fixes = what_would_close(run, v.causes, resolve)
                    v.seconds["fixes"] = time.perf_counter() - t
                    v.helped = True
                v.lines = headline(self._report_input(v))
            except Exception as exc:  # noqa: BLE001 - the numbers stay on the page; the failure is said
                log.error("explanation failed for %s:\n%s", v.label or "base", traceback.format_exc())
                v.message = f"the explanation failed: {type(exc).__name__}: {exc}"
                v.helped = v.explained = True
        with self._lock:
            self._explain_locks.pop(key, None)
        return v

    # ---- outputs ---------------------------------------------------------------------------------------------
    def command(self, v: View, command: str = "solve") -> str:
        return command_line(str(self.path), v.scenario, v.sets, command)

    def report(self, raw_state: Any) -> tuple[str, bytes]:
        """The workbook ``planner solve INPUT [--scenario S] --set …`` writes for this state (same analyses)."""
        from planner import api

        v = self.view(raw_state)
        if v.errors:
            raise ValidationFailed([Problem(code="bad_override", message=m) for m in v.errors])
        scen = _scenario_edits(self.plan, v.scenario)
        plan = self._plan_for(v, scen)
        _run, rep = api.analyse(plan, time_limit=self.time_limit, scenario=v.label)
        with tempfile.TemporaryDirectory(prefix="planner-serve-") as d:
            out = api.write_report(Path(d) / "report.xlsx", rep)
            data = out.read_bytes()
        suffix = "whatif-report" if (v.scenario or v.sets) else "report"
        return f"{self.path.stem}-{suffix}.xlsx", data

    def copy_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}-whatif{self.path.suffix}")

    def save_scenario(self, raw_state: Any, name: str, to_input: bool = False) -> Saved:
        """Append this state's edits as scenario ``name`` to the Scenarios sheet of a copy (or, when confirmed,
        of the input itself); atomic, validated before it replaces anything, other sheets untouched."""
        from planner.io.reader import file_sha256
        from planner.report.scenario_sheet import SheetEditError, append_scenario

        name = (name or "").strip()
        if not name:
            raise SheetEditError("give the scenario a name")
        if len(name) > 100:
            raise SheetEditError("a scenario name of at most 100 characters, please")
        v = self.view(raw_state)
        if v.errors:
            raise SheetEditError("these levers do not apply, so there is nothing valid to save: " + "; ".join(v.errors))
        edits = _scenario_edits(self.plan, v.scenario) + parse_all(v.sets)
        if not edits:
            raise SheetEditError("no lever is moved: the scenario would be the base plan")
        if to_input:
            target = source = self.path
            lock = self.path.with_name("~$" + self.path.name)
            if lock.exists():
                raise SheetEditError(f"{self.path.name} is open in Excel ({lock.name} exists): close it and save again")
            if file_sha256(self.path) != self.input_sha256:
                raise SheetEditError(f"{self.path} changed on disk since this page read it; restart `planner serve` "
                                     "so the levers apply to what is there now")
        else:
            target = self.copy_path()
            source = target if target.exists() else self.path
        rows = [{"scenario": name, "sheet": e.sheet, "key": e.key, "column": e.column, "op": e.op,
                 "value": _cell_value(e.value)} for e in edits]
        append_scenario(source, target, rows, inputs=() if to_input else (self.path,))
        if to_input:  # our own write: the sheets the levers refer to are unchanged, later saves may follow it
            self.input_sha256 = file_sha256(self.path)
        return Saved(path=target, name=name, rows=len(rows),
                     command=command_line(str(target), name, [], "solve"))


def _scenario_edits(plan: PlanData, scenario: str):
    from planner.io.scenarios import edits_from_sheet

    return edits_from_sheet(plan, scenario) if scenario else []


def _cell_value(v: Any) -> Any:
    """A scenario value as the cell should hold it: numbers as numbers (as a person types them), text as text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | np.integer | np.floating):
        x = float(v)
        return int(x) if x == int(x) else x
    s = str(v).strip()
    try:
        x = float(s)
    except ValueError:
        return s
    if not np.isfinite(x) or s.lower() in ("nan", "inf", "-inf", "infinity"):
        return s
    return int(x) if x == int(x) and "." not in s and "e" not in s.lower() else x


def figures(s: dict) -> dict[str, float | None]:
    """Key figures of a Summary: margin is revenue − cost (what the business keeps); the objective also counts
    the shortfall penalty, which is a planning weight, not money."""
    rev, cost = s.get("revenue"), s.get("cost")
    margin = s.get("margin")
    if margin is None and rev is not None and cost is not None:
        margin = rev - cost
    short = None
    if s.get("demand_units") is not None and s.get("served_units") is not None:
        short = s["demand_units"] - s["served_units"]
    return {"margin": margin, "objective": s.get("objective"), "fill_rate": s.get("fill_rate"), "revenue": rev,
            "cost": cost, "shortfall_penalty": s.get("shortfall_penalty"), "served_units": s.get("served_units"),
            "demand_units": s.get("demand_units"), "shortfall_units": short}


def platform_table(service: pd.DataFrame, plan: PlanData) -> pd.DataFrame:
    """Demand, served and shortfall per platform over the horizon, in the plan's platform order."""
    g = service.groupby("platform", sort=False)[["demand", "served", "shortfall"]].sum()
    order = [p for p in plan.platforms["platform"] if p in g.index]
    g = g.reindex(order).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        g["fill_rate"] = np.where(g["demand"] > 0, g["served"] / g["demand"], np.nan)
    return g


def binding_rows(capacity: pd.DataFrame) -> pd.DataFrame:
    """Capacity rows whose constraint binds (positive shadow price), as :func:`bottlenecks` selects and ranks
    them, without its per-row search for the platforms short there."""
    from planner.analysis.bottlenecks import SHADOW_TOL

    b = capacity[capacity["shadow_price"] > SHADOW_TOL]
    b = b.sort_values(["shadow_price", "period"], ascending=[False, True]).reset_index(drop=True)
    return b[["resource", "kind", "period", "shadow_price", "utilisation", "capacity", "used"]].assign(
        platforms_short=None)


def binding_summary(b: pd.DataFrame | None) -> pd.DataFrame:
    """One row per binding resource: quarters binding, first–last, top shadow price (as the headline words it),
    and the platforms short behind it (None until :func:`bottlenecks` has searched them)."""
    cols = ["resource", "kind", "quarters", "first", "last", "top_price", "platforms"]
    if b is None or b.empty:
        return pd.DataFrame(columns=cols)
    rows = {}
    known = b["platforms_short"].notna().any()
    for r, kind, period, price, plats in zip(b["resource"], b["kind"], b["period"], b["shadow_price"],
                                             b["platforms_short"], strict=True):
        a = rows.setdefault(r, {"resource": r, "kind": kind, "quarters": 0, "first": period, "last": period,
                                "top_price": price, "platforms": set()})
        a["quarters"] += 1
        a["first"], a["last"] = min(a["first"], period), max(a["last"], period)
        a["top_price"] = max(a["top_price"], price)
        if isinstance(plats, str):
            a["platforms"] |= {x.strip() for x in plats.replace(";", ",").split(",") if x.strip()}
    out = pd.DataFrame(list(rows.values()), columns=cols)
    out["platforms"] = [", ".join(sorted(x)) if known else None for x in out["platforms"]]
    return out.sort_values("top_price", ascending=False, kind="stable").reset_index(drop=True)
