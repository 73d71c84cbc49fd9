"""The library API that the CLI wraps and notebooks call: ``load_workbook → build → solve → results``.

Example::

    from planner import api
    plan = api.load_workbook("inputs/example.xlsx")
    model = api.build(plan)
    solution = api.solve(model)
    res = api.results(model, solution)
    res.service.head()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from planner.analysis.infeasibility import explain_infeasible, iis_requirements
from planner.analysis.results import Results, extract
from planner.io.load import load_plan, plan_from_frames
from planner.io.problems import ValidationFailed
from planner.io.reader import Limits
from planner.io.validate import PlanData
from planner.model.build import Model, build_model, check_scale
from planner.solve.policy import Solution, solve_model

__all__ = ["PlanData", "Model", "Solution", "Results", "Run", "load_workbook", "plan_from_frames", "build",
           "solve", "results", "run"]


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


def finish(plan: PlanData, model: Model, sol: Solution, t0: float | None = None) -> Run:
    """Extract results (and diagnose infeasibility) for a solution obtained elsewhere (warm re-solves)."""
    t = time.perf_counter()
    res = extract(model, sol)
    diag = iis = None
    if sol.status == "infeasible":
        diag = explain_infeasible(model)
        iis = iis_requirements(plan)
    return Run(plan, model, sol, res, diag, iis, {"solve": sol.seconds, "extract": time.perf_counter() - t})


def run(plan: PlanData, solver: str | None = None, time_limit: float | None = None,
        method: str | None = None, progress: Callable[[str], None] | None = None) -> Run:
    """Build, solve, extract and (when infeasible) diagnose one plan; ``progress`` hears each stage."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    say("building the LP")
    model = build_model(plan)
    problems = check_scale(model)
    if problems:
        raise ValidationFailed(problems)
    t1 = time.perf_counter()
    size = model.lp.size
    say(f"solving: {size['columns']:,} columns, {size['rows']:,} rows with {solver or plan.settings.solver}")
    sol = solve_model(model, solver=solver, time_limit=time_limit, method=method)
    t2 = time.perf_counter()
    res = extract(model, sol)
    t3 = time.perf_counter()
    diag = iis = None
    if sol.status == "infeasible":
        diag = explain_infeasible(model)
        iis = iis_requirements(plan)
    timings = {"build": t1 - t0, "solve": t2 - t1, "extract": t3 - t2}
    return Run(plan, model, sol, res, diag, iis, timings)
