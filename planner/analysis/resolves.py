"""The analyses' re-solves — explanation lifts, R&D shifts, "what would help" levers — as independent tasks.

Each re-solve is a top-level function of picklable arguments (a plan, a few names, the base basis as two int
arrays) returning a small result, so the same task runs on a local thread (HiGHS releases the GIL: two
threads solve two LPs in the time of one on two cores) or on a Dask worker (``planner solve --scheduler``).
A :class:`Runner` maps tasks; the API passes one that shows a progress bar and runs on the cluster when there
is one (:mod:`planner.api`), and the default here is a local thread pool.

Interrupting (Ctrl-C) cancels the running HiGHS solves (``cancelSolve``) and drops the queued ones, then
re-raises, so the caller can mark the analysis "not computed (interrupted)" and keep everything else.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import pandas as pd

from planner.analysis.results import Results, _below_tolerance, _clean
from planner.io.validate import PlanData
from planner.model.build import Model, build_model
from planner.solve.policy import run_policy
from planner.solve.sessions import HighsSession
from planner.solve.warm import Basis, gated_basis

Task = tuple[Callable[..., Any], tuple]


# ---- cancellation of running solves ----------------------------------------------------------------------------
_LIVE: set[HighsSession] = set()
_LIVE_LOCK = threading.Lock()
CANCELLED = threading.Event()  # set while an interrupted runner drains: new sessions stop at once


def tracked(session: HighsSession) -> HighsSession:
    """Register a session so that an interrupt can stop its solve (HiGHS's user-interrupt callback)."""
    session.h.HandleUserInterrupt = True
    with _LIVE_LOCK:
        _LIVE.add(session)
    if CANCELLED.is_set():
        session.h.cancelSolve()
    return session


def untracked(session: HighsSession) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(session)


def cancel_all() -> None:
    """Stop every registered solve of this process (they return at once without an optimum)."""
    CANCELLED.set()
    with _LIVE_LOCK:
        for s in list(_LIVE):
            s.h.cancelSolve()


# ---- runners ---------------------------------------------------------------------------------------------------
class Runner:
    """Runs independent tasks on local threads; ``progress(done, total)`` hears each one finish.

    Results come back in the order of the tasks. Where no thread can be started (a thread or address-space
    limit) the tasks run one after the other on this thread: the same numbers, more time."""

    def __init__(self, workers: int | None = None, progress: Callable[[int, int], None] | None = None):
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.progress = progress

    def map(self, tasks: Sequence[Task], span: tuple[int, int] | None = None) -> list[Any]:
        """Run ``tasks``; ``span`` = (tasks done before these, tasks in all) when one job is several maps, so
        the progress counts the whole job."""
        if not tasks:
            return []
        out: list[Any] = [None] * len(tasks)
        done = 0
        self._span = span or (0, len(tasks))
        if self.workers <= 1 or len(tasks) == 1:
            for i, (fn, args) in enumerate(tasks):
                out[i] = fn(*args)
                done += 1
                self._tell(done, len(tasks))
            return out
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(tasks)))
        try:
            try:
                futures = {pool.submit(fn, *args): i for i, (fn, args) in enumerate(tasks)}
            except RuntimeError as exc:  # no thread to be had: one at a time, same answer
                if "can't start new thread" not in str(exc):
                    raise
                pool.shutdown(wait=False, cancel_futures=True)
                return Runner(1, self.progress).map(tasks, span)
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in finished:
                    out[futures[f]] = f.result()
                    done += 1
                    self._tell(done, len(tasks))
        except BaseException:
            cancel_all()  # Ctrl-C (or a failed task): stop the running solves, drop the queued ones
            pool.shutdown(wait=True, cancel_futures=True)
            CANCELLED.clear()
            raise
        pool.shutdown(wait=True)
        return out

    def _tell(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(self._span[0] + done, self._span[1])


# ---- the base plan's facts every variant task needs -------------------------------------------------------------
class Base:
    """What a variant re-solve needs of the base plan: the plan, and its optimal basis on the gated model."""

    def __init__(self, run):
        self.plan: PlanData = run.plan
        self.start: Basis | None = None
        sol = run.solution
        if getattr(sol, "basis", None) is not None and run.plan.settings.solver == "highs":
            self.start = gated_basis(run.model, sol.basis, build_model(run.plan, gates_as_bounds=True))


def solve_variant(plan: PlanData, start: Basis | None, solver: str | None = None,
                  time_limit: float | None = None, method: str | None = None) -> Results | None:
    """One variant of the base plan (a program shifted, a capacity scaled) re-solved, as compact Results.

    Built with gates as bounds, so that a program ready sooner or later changes bounds, not columns; under the
    margin policy it starts dual simplex from the base plan's optimal basis (``start``). Returns ``summary``
    (status, objective, margin, fill_rate, …) and the ``service`` table — what R&D impact and the levers read —
    without the other tables, whose extraction would cost more than the warm solve. None when the variant
    cannot be solved at all (the caller leaves it out)."""
    try:
        return _solve_variant(plan, start, solver, time_limit, method)
    except Exception as exc:  # a variant the model or solver refuses is not offered; running out of memory is
        from planner.exhaustion import out_of_memory  # not a variant's fault

        if out_of_memory(exc):
            raise
        return None


def _solve_variant(plan: PlanData, start: Basis | None, solver: str | None, time_limit: float | None,
                   method: str | None) -> Results:
    from planner.solve.policy import solve_model

    model = build_model(plan, gates_as_bounds=True)
    lp = model.lp
    settings = plan.settings
    if (solver or settings.solver) != "highs":  # CBC and others: the ordinary solve
        sol = solve_model(model, solver=solver, time_limit=time_limit, method=method, prices=False)
        return compact(model, sol.x, sol.status)
    tl = time_limit if time_limit is not None else settings.time_limit_s
    warm = (settings.policy == "margin" and start is not None and len(start[0]) == lp.n_cols
            and len(start[1]) == lp.n_rows)
    session = tracked(HighsSession(lp, time_limit=tl, method="simplex" if warm else (method or
                                                                                     settings.highs_method)))
    try:
        if warm and not session.set_basis(start):
            session = tracked(HighsSession(lp, time_limit=tl, method=method or settings.highs_method))
            warm = False
        res = session.run() if warm else run_policy(session, model, settings.policy, lp.objective())
    finally:
        untracked(session)
    if res.status != "optimal":
        return compact(model, None, res.status)
    return compact(model, res.x, res.status)


def compact(model: Model, x: np.ndarray | None, status: str) -> Results:
    """Summary and Service of a solution, computed the way :func:`planner.analysis.results.extract` does."""
    lp, ms = model.lp, model.sets
    summary: dict = {"status": status, "objective": None, "margin": None, "revenue": None, "cost": None,
                     "shortfall_penalty": None, "fill_rate": None, "backlog": model.settings.backlog}
    empty = pd.DataFrame()
    svc = pd.DataFrame(columns=["platform", "period", "demand", "served", "shortfall"])
    if x is not None:
        terms = lp.term_values(x)
        revenue = terms.get("revenue", 0.0)
        cost = sum(terms.get(k, 0.0) for k in ("wafer_cost", "unit_cost", "holding_cost", "expansion_cost"))
        penalty = terms.get("shortfall_penalty", 0.0)
        served = np.zeros((len(ms.platforms), ms.T))
        y = model.y
        np.add.at(served, (y["p"].to_numpy(), y["t"].to_numpy()), _clean(x[y["col"].to_numpy()]))
        short = np.zeros_like(served)
        sblock = lp.col_blocks["backlog" if model.settings.backlog else "shortfall"]
        if sblock.size:
            sidx = sblock.index
            p_of = dict(zip(ms.platforms["platform"], ms.platforms["p"], strict=True))
            short[sidx["platform"].map(p_of).to_numpy(), sidx["t"].to_numpy()] = _clean(x[sblock.positions])
        served, short = _below_tolerance(ms.demand, served, short, model.settings.backlog)
        total = float(ms.demand.sum())
        summary.update(objective=revenue - cost - penalty, margin=revenue - cost, revenue=revenue, cost=cost,
                       shortfall_penalty=penalty, fill_rate=float(served.sum() / total) if total > 0 else None)
        P, T = served.shape
        svc = pd.DataFrame({"platform": np.repeat(ms.platforms["platform"].to_numpy(), T),
                            "period": np.tile(np.asarray(ms.periods, dtype=object), P),
                            "demand": ms.demand.ravel(), "served": served.ravel(), "shortfall": short.ravel()})
        svc = svc[(svc["demand"] > 0) | (svc["served"] > 0) | (svc["shortfall"] > 0)].reset_index(drop=True)
    return Results(summary=summary, allocation=empty, service=svc, wafer_starts=empty, supply=empty,
                   capacity=empty, expansions=empty, terms={}, periods=list(ms.periods))


def variant_tasks(base: Base, plans: Sequence[PlanData], solver: str | None = None,
                  time_limit: float | None = None, method: str | None = None) -> list[Task]:
    return [(solve_variant, (p, base.start, solver, time_limit, method)) for p in plans]
