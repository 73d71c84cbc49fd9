"""The library API that the CLI wraps and notebooks call: load → build → solve → analyse → report.

:func:`analyse` decides which analyses run and returns exactly what ``planner solve`` writes, so a notebook
gets the same report as the command line::

    from planner import api
    plan = api.load_workbook("inputs/example.xlsx")
    run, report = api.analyse(plan)
    run.results.service.head()          # the tables, as DataFrames
    report.causes.head()                # why each platform is short
    api.write_report("plan.xlsx", report)

The lower steps stay available one by one (``build``, ``solve``, ``results``) for custom work.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.analysis import explain as explain_mod
from planner.analysis.baseline import compare, freeze
from planner.analysis.bottlenecks import bottlenecks
from planner.analysis.expansion_timing import expansion_timing
from planner.analysis.explain import (
    EXACT_MAX_COLS,
    ExplanationFailed,
    Prefetch,
    explain_shortfalls,
    what_would_close,
)
from planner.analysis.pnl import pnl
from planner.analysis.rd_impact import rd_impact
from planner.analysis.resolves import (
    OVERTIME_TEXT,
    Base,
    Runner,
    address_space_limited,
    overtime,
    variant_tasks,
)
from planner.analysis.results import Results, extract
from planner.io.baseline import Baseline, read_baseline
from planner.io.load import load_plan, plan_from_frames
from planner.io.reader import Limits
from planner.io.validate import PlanData
from planner.model.build import Model, build_model
from planner.pipeline import AUTO_ANALYSIS_MAX_COLS, Run, finish_run, run_plan
from planner.solve.policy import Solution, solve_model

if TYPE_CHECKING:  # imported where it is used, after the base solve (:func:`_import_writer_meanwhile`)
    from planner.report.writer import ReportInput

__all__ = ["PlanData", "Model", "Solution", "Results", "Run", "ReportInput", "load_workbook", "plan_from_frames",
           "build", "solve", "results", "run", "finish_run", "analyse", "write_report", "AUTO_ANALYSIS_MAX_COLS",
           "read_baseline", "Baseline", "hedge"]


def __getattr__(name: str) -> Any:
    """``api.ReportInput``: the report writer is imported when first needed, not with this module."""
    if name == "ReportInput":
        from planner.report.writer import ReportInput

        return ReportInput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MEANWHILE_MIN_COLS = 50_000  # from here up the base solve takes seconds: the writer's import is done long before


def _import_writer_meanwhile() -> threading.Thread | None:
    """Import the report writer (xlsxwriter and the report's modules: ~30 ms) on a thread of its own while
    the base solve runs: HiGHS releases the GIL and leaves the second core idle (issue 22: everything before and
    after the solve counts against the 1.15x target). An import changes no number. Whatever fails on that
    thread fails again where the writer is imported for use after the solve, and is raised there; no thread
    where one may not start (an address-space limit, the system's limit on threads)."""
    if address_space_limited():
        return None

    def run() -> None:
        with contextlib.suppress(Exception):  # raised again by the import after the solve
            import planner.report.writer  # noqa: F401

    thread = threading.Thread(target=run, name="planner-import-writer", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # can't start new thread: the import happens after the solve instead
        return None
    return thread


def load_workbook(path: str | Path, limits: Limits | None = None) -> PlanData:
    """Read and validate; raises ``ReadError`` or ``ValidationFailed`` (with every problem)."""
    return load_plan(path, limits)


def build(plan: PlanData) -> Model:
    return build_model(plan)


def solve(model: Model, solver: str | None = None, time_limit: float | None = None,
          method: str | None = None) -> Solution:
    return solve_model(model, solver=solver, time_limit=time_limit, method=method)


def results(model: Model, solution: Solution) -> Results:
    return extract(model, solution)


def run(plan: PlanData, solver: str | None = None, time_limit: float | None = None,
        method: str | None = None, progress: Callable[[str], None] | None = None) -> Run:
    """Build, solve, extract and (when infeasible) diagnose one plan; ``progress`` hears each stage."""
    return run_plan(plan, solver=solver, time_limit=time_limit, method=method, progress=progress)


def analyse(plan: PlanData, solver: str | None = None, time_limit: float | None = None, method: str | None = None,
            insights: bool | None = None, explain: bool | None = None,
            progress: Callable[[str], None] | None = None, scenario: str = "",
            baseline: Baseline | None = None, scheduler: str | None = None,
            analysis_limit: float | str | None = None, prices_later: bool = False) -> tuple[Run, ReportInput]:
    """Solve one plan and run the analyses its report shows; returns the run and the :class:`ReportInput`.

    ``insights`` (R&D impact, when to decide each expansion) and ``explain`` (shortfall causes, "what would
    help"): on unless False, at every size — their re-solves are independent, warm where that pays, and run
    concurrently (``models/explain.md``, "What it costs"); with ``scheduler`` (a Dask scheduler address) they
    run on the cluster. Bottlenecks come from the duals and the P&L from the solution: always on. With a
    ``baseline`` (a previous report, read by :func:`planner.io.baseline.read_baseline`) the plan's first
    ``frozen_quarters`` quarters of wafer starts are held at the baseline's, and the report compares the two
    plans.

    Ctrl-C during the analyses keeps the plan: the analysis under way and those after it are reported as "not
    computed (interrupted)" (``ReportInput.not_computed``), never as a part of a table.

    ``analysis_limit`` bounds the wall time of the analyses, counted from the end of the base solve: seconds,
    ``"auto"`` (:func:`analysis_limit_seconds`: the plan's own build and solve, at least 15 s — what
    ``planner solve`` uses) or None (no limit). The shortfall causes always complete (they are the "why", and a
    Shapley split cannot be cut short), and so does R&D impact's first program (the one the causes name most);
    R&D impact's other programs, "what would help" and expansion timing stop at the limit. Re-solves it leaves
    unfinished are said to be "not computed within the analyses' time limit" row by row, and the Overview says
    how much was computed.

    ``prices_later`` (what ``planner solve`` asks): when no analysis re-solves and no baseline follow the solve,
    the capacity price checks run on a thread of their own and the report is handed over before they end:
    ``results.capacity``'s price columns and ``bottlenecks`` wait in ``ReportInput.pending``, which
    :func:`write_report` settles after the sheets that do not need them (``pending.settle()`` does it by hand).
    Otherwise, and by default, everything is complete on return.
    """
    say = progress or (lambda _msg: None)
    notes: list[str] = []
    if baseline is not None:
        plan, notes = freeze(plan, baseline)
    elif plan.settings.frozen_quarters > 0:
        notes.append(f"Settings.frozen_quarters is {plan.settings.frozen_quarters}, but no baseline report was given "
                     "(planner solve --baseline LAST-REPORT.xlsx): nothing is frozen.")
    insights = True if insights is None else insights
    explain = True if explain is None else explain
    pre: list[Prefetch] = []
    meanwhile: list[threading.Thread] = []

    def prefetch(model: Model) -> None:  # what needs no base solution, during the base solve: the explanation's
        if explain and explain_mod.PREFETCH and model.lp.n_cols > EXACT_MAX_COLS and not address_space_limited():
            pre.append(Prefetch(plan, time_limit))  # lifts, and the report writer's import
        if model.lp.n_cols >= MEANWHILE_MIN_COLS and (thread := _import_writer_meanwhile()) is not None:
            meanwhile.append(thread)

    checks_later = prices_later and baseline is None and not explain and not insights  # nothing re-solves after them
    t0 = time.monotonic()
    r: Run | None = None
    try:
        r = run_plan(plan, solver=solver, time_limit=time_limit, method=method, progress=progress,
                     before_solve=prefetch, prices_later=checks_later)
        for thread in meanwhile:
            thread.join()
        # imported by then on a large plan; raises here whatever failed on that thread
        from planner.report.writer import ReportInput

        plan_s = time.monotonic() - t0
        limit = analysis_limit_seconds(analysis_limit, plan_s)
        deadline = None if limit is None else time.monotonic() + limit
        rep = ReportInput(plan=plan, results=r.results, infeasibility=r.infeasibility, iis=r.iis, scenario=scenario)
        rep.notes += notes
        if not insights:  # the R&D impact sheet is always there: it says why it is empty
            rep.not_computed["rd_impact"] = NOT_REQUESTED
        if not r.solution.has_solution:
            if insights:
                rep.not_computed["rd_impact"] = "not computed (the plan has no solution)"
            return r, rep
        rep.pnl = pnl(plan, r.results)
        if r.solution.pending_prices is not None:  # the sheets that need the prices are written last
            rep.pending = _Pending(r, rep)
            return r, rep
        rep.bottlenecks = bottlenecks(plan, r.results)
        solved: dict[str, Results | None] = {}  # a lever "program G one quarter earlier" is an R&D shift
        live: dict = {}  # the runner and the base plan's basis, once set up (inside the guarded region below)
        cut: dict[str, tuple[int, int]] = {}  # stage → (re-solves the time limit left unfinished, re-solves asked)

        def solve_many(plans: list[PlanData], keys: list[str] | None = None) -> list[Results | None]:
            """R&D shifts and levers: warm from the base basis, together; each variant (by key) solved once."""
            keys = keys or [f"#{id(p)}" for p in plans]
            todo = {k: p for k, p in zip(keys, plans, strict=True) if k not in solved}
            got = live["runner"].map(variant_tasks(live["base"], list(todo.values()), solver, time_limit, method))
            solved.update(zip(todo, got, strict=True))
            out = [solved[k] for k in keys]
            late = sum(map(overtime, out))
            if late:
                was = cut.get(live["stage"], (0, 0))
                cut[live["stage"]] = (was[0] + late, was[1] + len(out))
            return out

        def causes() -> None:
            try:
                rep.causes = explain_shortfalls(r, live["runner"], time_limit, pre[0] if pre else None)
                if rep.causes.attrs.get("split"):
                    rep.notes.append(rep.causes.attrs["split"])
            except ExplanationFailed as exc:  # a lift without an optimum: no causes rather than causes from a stand-in
                rep.causes = None
                rep.not_computed["causes"] = f"not computed ({exc})"
                rep.not_computed["fixes"] = "not computed (it starts from the shortfall causes, which were not)"

        stages = []
        if explain:  # first: R&D impact then analyses the programs it names, and the levers reuse those solves
            stages.append(("causes", "explaining shortfalls", causes))
        if insights and len(plan.programs):
            stages.append(("rd_impact", "R&D impact: re-solving with each program a quarter earlier and later",
                           lambda: _rd_impact(rep, plan, r.results, solve_many)))
        if explain:
            stages.append(("fixes", "looking for the change that would close each shortfall",
                           lambda: setattr(rep, "fixes", what_would_close(r, rep.causes, solve_many=solve_many)
                                           if rep.causes is not None else None)))
        if insights and len(r.results.expansions):
            stages.append(("expansion_timing", "expansions: re-solving with each decision a quarter later",
                           lambda: setattr(rep, "expansion_timing", expansion_timing(plan, r.results, None,
                                                                                     solve_many=solve_many))))
        i = 0
        try:  # the setup (connecting to the cluster, the base basis on the gated model) is guarded like the stages:
            if stages:  # Ctrl-C or a cluster gone since the pre-check there must not lose the solved plan either
                say(stages[0][1])
                with _runner(r, scheduler, progress is not None) as runner:
                    live["runner"], live["base"] = runner, Base(r)
                    for i, (key, message, stage) in enumerate(stages):
                        if i:
                            say(message)
                        live["stage"] = key
                        live["runner"].deadline = None if key == "causes" else deadline  # the causes always finish,
                        live["runner"].at_least = 2 if key == "rd_impact" else 0  # and R&D impact's first program
                        stage()
        except (KeyboardInterrupt, Exception) as exc:  # keep the plan: this analysis and those after it
            from planner.batch import BatchAborted  # are not computed (Ctrl-C, or the cluster went away)
            from planner.distributed import DistributedError

            if not isinstance(exc, KeyboardInterrupt | BatchAborted | DistributedError):
                raise
            why = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else f"not computed ({exc})"
            for later, _, _ in stages[i:]:
                setattr(rep, later, None)
                rep.not_computed[later] = why
            head = "Interrupted (Ctrl-C) " if isinstance(exc, KeyboardInterrupt) else f"Stopped ({exc}) "
            rep.notes.append(head + stages[i][1].split(":")[0].lower() + ": "
                             + ", ".join(LABELS[k] for k, _, _ in stages[i:]) + " not computed; the plan's "
                             "own tables are complete.")
        if cut:
            _say_cut(rep, cut, limit, analysis_limit, plan_s)
        if baseline is not None:
            rep.since = compare(plan, r.results, rep.pnl.by_quarter, rep.causes, baseline)
        return r, rep
    except BaseException:  # Ctrl-C or an error before the report is handed over: stop the price checks
        if r is not None:
            r.cancel_prices()
        raise
    finally:
        for p in pre:  # stopped unless the explanation took its lifts (Ctrl-C, no shortfall, no solution)
            p.close()

AUTO_LIMIT_FACTOR = 1.0  # the analyses after the base solve: at most this × the plan's own build and solve …
AUTO_LIMIT_FLOOR_S = 15.0  # … and never less than this (plans that solve in seconds get every analysis)


def analysis_limit_seconds(limit: float | str | None, plan_seconds: float) -> float | None:
    """The analyses' time limit in seconds (None: none). ``"auto"`` scales with the plan: as long as its own build
    and solve, at least 15 s, so that with every analysis on, ``planner solve`` takes about twice the run without
    them on large plans, and within 3× HiGHS alone on the same LP (issue 22; ``benchmarks/results.md``: with
    1.5× it took 3.2× at 476k columns, the limit ending the run), while plans solved in seconds get every
    analysis."""
    if limit is None or limit == "none":
        return None
    if limit == "auto":
        return max(AUTO_LIMIT_FLOOR_S, AUTO_LIMIT_FACTOR * plan_seconds)
    return float(limit)


def _say_cut(rep: ReportInput, cut: dict[str, tuple[int, int]], limit: float | None, asked,
             plan_s: float | None = None) -> None:
    """The Overview's note on what the analyses' time limit left out, and the sheets' "not computed" where a
    whole analysis was. Under ``auto`` it says which of its two terms set the limit, with the plan's own build
    and solve time (``plan_s``), which no table shows."""
    if asked != "auto":
        how = f"{limit:.3g} s"
    elif plan_s is not None and AUTO_LIMIT_FACTOR * plan_s < AUTO_LIMIT_FLOOR_S:  # the floor set it
        how = f"{limit:.0f} s, the least the auto limit gives; the plan's own build and solve took {plan_s:.1f} s"
    else:
        took = f", which took {plan_s:.1f} s" if plan_s is not None else ""
        how = f"{limit:.0f} s, as long as the plan's own build and solve{took}; at least {AUTO_LIMIT_FLOOR_S:.0f} s"
    parts = []
    if "rd_impact" in cut and rep.rd_impact is not None:
        rd = rep.rd_impact
        done = (~rd["detail_earlier"].eq(OVERTIME_TEXT)).astype(int) + (~rd["detail_later"].eq(OVERTIME_TEXT))
        full, half = int((done == 2).sum()), int((done == 1).sum())
        parts.append(f"R&D impact for {full} of {len(rd)} programs"
                     + (f", and one of the two shifts for {half} more" if half else ""))
        if full == 0 and not (rd["detail_earlier"].ne(OVERTIME_TEXT) | rd["detail_later"].ne(OVERTIME_TEXT)).any():
            rep.rd_impact = None
            rep.not_computed["rd_impact"] = OVERTIME_TEXT
    if "fixes" in cut and rep.fixes is not None:
        tried, levers = rep.fixes.attrs.get("levers", (0, 0))
        parts.append(f"what would help from {tried} of {levers} levers (each platform's line is the best of those; "
                     "one not tried may close more, and a platform without a line may have one among them)")
        if tried == 0:
            rep.fixes = None
            rep.not_computed["fixes"] = OVERTIME_TEXT
    if "expansion_timing" in cut and rep.expansion_timing is not None:
        late, asked_n = cut["expansion_timing"]
        parts.append(f"expansion timing re-solved for {asked_n - late} of {asked_n} options")
    rep.notes.append(f"The analyses stopped at their time limit ({how}): " + "; ".join(parts)
                     + ". planner solve --analysis-limit none computes them all.")


class _Pending:
    """The report's parts that wait for the capacity price checks running on their own thread."""

    def __init__(self, run: Run, rep: ReportInput):
        self.run, self.rep = run, rep

    def settle(self) -> None:
        """Wait for the checks, then complete ``results.capacity`` and the bottlenecks from them."""
        self.rep.pending = None
        self.run.settle_prices()
        self.rep.bottlenecks = bottlenecks(self.rep.plan, self.run.results)

    def cancel(self) -> None:
        self.rep.pending = None
        self.run.cancel_prices()


def _rd_impact(rep: ReportInput, plan: PlanData, results: Results, solve_many) -> None:
    named = []
    if rep.causes is not None and len(rep.causes):  # the programs the explanation names, most units first
        gate = rep.causes[rep.causes["cause"] == "rd_gate"]
        named = list(gate.groupby("resource")["units"].sum().sort_values(ascending=False).index)
    rep.rd_impact = rd_impact(plan, results, solve_many=solve_many, prefer=named)
    if len(rep.rd_impact) < len(plan.programs):
        rep.notes.append(f"R&D impact: {len(rep.rd_impact)} programs of {len(plan.programs)} — those the shortfall "
                         "causes name, then those whose products face the most platform demand (each costs two "
                         "re-solves of the plan).")


INTERRUPTED = "not computed (interrupted)"
LABELS = {"causes": "shortfall causes", "rd_impact": "R&D impact", "fixes": "what would help",
          "expansion_timing": "expansion timing"}
NOT_REQUESTED = "not computed; turn on with --insights"
PROGRESS_MIN_COLS = 2_000  # the re-solve progress bar from here up (below, the analyses take a blink)


@contextmanager
def _runner(run: Run, scheduler: str | None, show: bool) -> Iterator[Runner]:
    """Where the analyses' re-solves run: the Dask cluster at ``scheduler``, else local threads; with a progress
    bar (done/total re-solves, ETA) on a terminal for plans large enough to wait for."""
    from planner.batch import Progress

    bar: list = []

    def tell(done: int, total: int) -> None:
        if not bar or bar[0].total != total or bar[0].done >= total:
            if bar:
                bar[0].close()
            bar[:] = [Progress(total, "re-solves", enabled=None if show else False)]
        bar[0].update(_OK)
        if done >= total:
            bar[0].close()

    tell_fn = tell if show and run.model.lp.n_cols >= PROGRESS_MIN_COLS else None
    try:
        if scheduler:
            from planner.distributed import DaskExecutor, DaskRunner, quiet_dask_logs

            quiet_dask_logs()
            ex = DaskExecutor(scheduler)
            try:
                yield DaskRunner(ex, tell_fn)
            finally:
                ex.close()
        else:
            yield Runner(progress=tell_fn)
    finally:
        if bar and bar[0].done < bar[0].total:  # interrupted: end the bar's line before the next message
            bar[0].close()


class _Ok:
    ok = True


_OK = _Ok()


def write_report(path: str | Path, report: ReportInput, inputs: tuple[Path, ...] = ()) -> Path:
    """Write the report workbook atomically (never over one of ``inputs``); returns the path written."""
    from planner.report.writer import write_report as _write_report

    return _write_report(path, report, inputs=inputs)


def hedge(plan: PlanData, samples: int = 200, seed: int = 1, commit_quarters: int | None = None,
          threshold: float = 0.9, solver: str | None = None, method: str | None = None,
          time_limit: float | None = None, ef_max_columns: int | None = None, executor=None,
          journal: Path | None = None, quiet: bool = True, progress: Callable[[str], None] | None = None):
    """The hedged plan over the Uncertainty sheet's scenarios (``models/hedge.md``): what ``planner hedge`` writes.

    Returns a :class:`planner.analysis.hedge.HedgeResult` (tables as frames); write it with
    ``planner.report.hedge.write_hedge``. ``executor`` (:mod:`planner.batch`: local processes by default, or a
    Dask cluster) builds the scenarios' models and solves their perfect-foresight and average-plan LPs; above
    ``ef_max_columns`` it also evaluates the hedged plan in every scenario, one LP each.
    """
    from planner.analysis import hedge as H
    from planner.batch import Interrupted, run_batch

    scen = H.scenario_set(plan, samples, seed)
    s = plan.settings
    opts = H.SolveOptions(solver or s.solver, method or s.highs_method,
                          time_limit if time_limit is not None else s.time_limit_s)

    def evaluate(cases, kw):
        out = run_batch(plan, cases, executor=executor, journal=journal, quiet=quiet, runner=H.run_hedge_case, **kw)
        if out.interrupted and out.reason:  # the executor stopped (a lost cluster): no expectation over a part
            raise H.HedgeError(f"the scenarios could not all be run: {out.reason}")
        if out.interrupted:
            raise Interrupted(out.signal or 2)
        return out.results

    return H.solve_hedge(plan, scen, commit_quarters, opts, threshold, ef_max_columns or H.EF_MAX_COLUMNS,
                         evaluate=evaluate, progress=progress)
