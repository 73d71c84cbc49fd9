"""One plan through the solve stage: build → check scale → solve → extract → (infeasible: diagnose).

The library API (:mod:`planner.api`), batches (:mod:`planner.batch`) and the analyses that re-solve variants of
a plan (R&D impact, "what would help") all run a plan through this one function, so a re-solve is exactly a
solve. It decides nothing about which analyses run: that is :func:`planner.api.analyse`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from planner.analysis.infeasibility import explain_infeasible, iis_requirements
from planner.analysis.results import Results, add_prices, extract
from planner.io.problems import ValidationFailed
from planner.io.validate import PlanData
from planner.model.build import Model, build_model, check_scale
from planner.solve.policy import Solution, solve_model

AUTO_ANALYSIS_MAX_COLS = 20_000  # 'auto' explanation and R&D impact: on below this many LP columns


@dataclass
class Run:
    """Everything one solve produced, with stage timings (seconds) for benchmarks and the report."""

    plan: PlanData
    model: Model
    solution: Solution
    results: Results
    infeasibility: pd.DataFrame | None = None
    iis: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def settle_prices(self) -> None:
        """Wait for the capacity price checks still running (``run_plan(prices_later=True)``) and add their
        columns to ``results.capacity``; nothing to do when they ran inside the solve."""
        if self.solution.pending_prices is not None:
            t = time.perf_counter()
            self.solution.settle_prices()
            add_prices(self.results, self.model, self.solution)
            self.timings["prices_wait"] = time.perf_counter() - t

    def cancel_prices(self) -> None:
        """Stop the capacity price checks still running, if any (Ctrl-C, an error while writing the report)."""
        self.solution.cancel_prices()


def finish_run(plan: PlanData, model: Model, sol: Solution, timings: dict[str, float] | None = None) -> Run:
    """Extract results (and diagnose infeasibility) for a solution, however it was obtained (warm re-solves)."""
    t = time.perf_counter()
    res = extract(model, sol)
    t_extract = time.perf_counter() - t
    diag = iis = None
    if sol.status == "infeasible":
        diag = explain_infeasible(model)
        iis = iis_requirements(plan)
    return Run(plan, model, sol, res, diag, iis, {**(timings or {"solve": sol.seconds}), "extract": t_extract})


def run_plan(plan: PlanData, solver: str | None = None, time_limit: float | None = None,
             method: str | None = None, progress: Callable[[str], None] | None = None, prices: bool = True,
             before_solve: Callable[[Model], None] | None = None, prices_later: bool = False) -> Run:
    """Build, solve, extract and (when infeasible) diagnose one plan; ``progress`` hears each stage.

    ``prices``: check the binding capacity rows' shadow prices by ±1 re-solves (the Capacity sheet's
    ``value_of_one_more`` / ``cost_of_one_less``); re-solves that read only margins and service skip it.
    ``before_solve(model)`` is called once the model is built, before the solve (the explanation starts the
    lifts that need nothing of the solution there: :class:`planner.analysis.explain.Prefetch`).
    ``prices_later``: the checks run on a thread of their own while the caller goes on (extract, the report's
    other sheets); ``Run.settle_prices`` waits for them and completes ``results.capacity``."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    say("building the LP")
    model = build_model(plan)
    problems = check_scale(model)
    if problems:
        raise ValidationFailed(problems)
    t1 = time.perf_counter()
    size = model.lp.size
    if before_solve is not None:
        before_solve(model)
    say(f"solving: {size['columns']:,} columns, {size['rows']:,} rows with {solver or plan.settings.solver}")
    sol = solve_model(model, solver=solver, time_limit=time_limit, method=method, prices=prices,
                      prices_later=prices_later)
    t2 = time.perf_counter()
    try:
        return finish_run(plan, model, sol, {"build": t1 - t0, "solve": t2 - t1})
    except BaseException:  # Ctrl-C or an error while extracting: the checks have no one left to wait for them
        sol.cancel_prices()
        raise
