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
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import pandas as pd

from planner.analysis.results import Results, _clean, service_grid
from planner.exhaustion import address_space_limited
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
_SCOPE = threading.local()  # the Scope whose tasks this thread runs, if any


class Scope:
    """The solves of one piece of work (one map of a :class:`Runner`, one prefetch thread), stopped together.

    A time limit or a prefetch no longer needed stops its own solves only: :func:`cancel_all` would also stop
    those of any other analysis in this process (``planner serve`` answers several pages at once)."""

    def __init__(self):
        self.live: set[HighsSession] = set()
        self.cancelled = threading.Event()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with the sessions it tracks in this scope (on whichever thread runs it)."""
        was = getattr(_SCOPE, "scope", None)
        _SCOPE.scope = self
        try:
            return fn(*args)
        finally:
            _SCOPE.scope = was

    def cancel(self) -> None:
        """Stop this scope's running solves; those it starts from now on stop at once."""
        self.cancelled.set()
        with _LIVE_LOCK:
            for s in list(self.live):
                s.h.cancelSolve()


def tracked(session: HighsSession) -> HighsSession:
    """Register a session so that an interrupt can stop its solve (HiGHS's user-interrupt callback)."""
    session.h.HandleUserInterrupt = True
    scope = getattr(_SCOPE, "scope", None)
    with _LIVE_LOCK:
        _LIVE.add(session)
        if scope is not None:
            scope.live.add(session)
    if CANCELLED.is_set() or (scope is not None and scope.cancelled.is_set()):
        session.h.cancelSolve()
    return session


def untracked(session: HighsSession) -> None:
    scope = getattr(_SCOPE, "scope", None)
    with _LIVE_LOCK:
        _LIVE.discard(session)
        if scope is not None:
            scope.live.discard(session)


def cancel_all() -> None:
    """Stop every registered solve of this process (they return at once without an optimum)."""
    CANCELLED.set()
    with _LIVE_LOCK:
        for s in list(_LIVE):
            s.h.cancelSolve()


# ---- runners ---------------------------------------------------------------------------------------------------
class _Overtime:
    """The result of a re-solve that the analyses' time limit left unfinished (never a number: callers say so)."""

    def __repr__(self) -> str:
        return "OVERTIME"


OVERTIME = _Overtime()


OVERTIME_TEXT = "not computed within the analyses' time limit"


RESOLVE_NOISE = 1e-9  # a re-solve's objective or margin within this × the base plan's own is the same money


def change(new: float, base: float, scale: float) -> float:
    """``new − base`` for money read from two separate solves, or 0.0 where the difference is within the
    solvers' round-off: ``RESOLVE_NOISE`` × ``scale`` (the larger of the base plan's objective and margin). Two
    optima of the same plan solved twice can differ in the last digits (seen: +$1 and +$3 on a $20.6 billion
    plan, 7·10⁻¹¹), which a report would print as a gain and rank programs by."""
    d = float(new) - float(base)
    return 0.0 if abs(d) <= RESOLVE_NOISE * max(1.0, abs(scale)) else d


def overtime(result: Any) -> bool:
    """True for a re-solve the time limit left unfinished (:data:`OVERTIME`)."""
    return result is OVERTIME


class Runner:
    """Runs independent tasks on local threads; ``progress(done, total)`` hears each one finish.

    Results come back in the order of the tasks. Where no thread can be started (a thread or address-space
    limit) the tasks run one after the other on this thread: the same numbers, more time.

    ``deadline`` (a :func:`time.monotonic` instant, settable between maps): from then on no task starts, the
    running solves are cancelled, and every task not finished by then gives :data:`OVERTIME` — the analyses'
    time limit (``planner solve --analysis-limit``) — except the first ``at_least`` tasks of a map, which always
    run to their end (R&D impact's first program). One after the other, a task under way runs to its end: the
    deadline is checked between tasks (that path exists for processes that cannot start a thread, where no
    thread could watch the clock either)."""

    def __init__(self, workers: int | None = None, progress: Callable[[int, int], None] | None = None,
                 deadline: float | None = None):
        self.workers = workers or (1 if address_space_limited() else max(1, min(4, os.cpu_count() or 1)))
        self.progress = progress
        self.deadline = deadline
        self.at_least = 0

    def _left(self, first_done: bool = True) -> float:
        if self.deadline is None or not first_done:
            return float("inf")
        return self.deadline - time.monotonic()

    def map(self, tasks: Sequence[Task], span: tuple[int, int] | None = None) -> list[Any]:
        """Run ``tasks``; ``span`` = (tasks done before these, tasks in all) when one job is several maps, so
        the progress counts the whole job."""
        if not tasks:
            return []
        out: list[Any] = [OVERTIME] * len(tasks)
        done = 0
        self._span = span or (0, len(tasks))
        if self.workers <= 1 or len(tasks) == 1:
            for i, (fn, args) in enumerate(tasks):
                if i >= self.at_least and self._left() <= 0:
                    break
                out[i] = fn(*args)
                done += 1
                self._tell(done, len(tasks))
            return out
        if self._left(self.at_least == 0) <= 0:
            return out
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(tasks)))
        scope = Scope()  # a time limit stops this map's solves, not those of another analysis in this process
        queue = list(range(len(tasks)))  # started one by one as workers free up, so none starts after the deadline
        running: dict = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers and (queue[0] < self.at_least or self._left() > 0):
                    i = queue[0]
                    try:
                        running[pool.submit(scope.run, tasks[i][0], *tasks[i][1])] = i
                    except RuntimeError as exc:  # no thread to be had: the rest one at a time, same answer
                        if "can't start new thread" not in str(exc) or not queue:
                            raise
                        if running:
                            break  # the threads already running finish first
                        pool.shutdown(wait=False, cancel_futures=True)
                        alone = Runner(1, None, self.deadline)  # the same time limit, one task after the other
                        alone.at_least = max(0, self.at_least - i)
                        rest = alone.map([tasks[j] for j in queue])
                        for j, r in zip(queue, rest, strict=True):
                            out[j] = r
                            if r is not OVERTIME:
                                done += 1
                                self._tell(done, len(tasks))
                        return out
                    queue.pop(0)
                if not running:  # the deadline passed with tasks not started: they stay OVERTIME
                    break
                left = self._left(all(i >= self.at_least for i in running.values()))
                if left <= 0:  # the time limit: stop the running solves; theirs stay OVERTIME
                    scope.cancel()
                    break
                finished, _ = wait(running, timeout=min(0.5, left), return_when=FIRST_COMPLETED)
                for f in finished:
                    out[running.pop(f)] = f.result()
                    done += 1
                    self._tell(done, len(tasks))
        except BaseException:
            scope.cancel()  # Ctrl-C (or a failed task): stop the running solves, drop the queued ones
            pool.shutdown(wait=True, cancel_futures=True)
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
            gated = build_model(run.plan, gates_as_bounds=True)
            self.start = gated_basis(run.model, sol.basis, gated)
            _BASE_MODELS.put(self.plan, gated)  # the local variant tasks embed in this model (expansion delays)


class _Arrays:
    """An LP given by its arrays (what :class:`HighsSession` reads of a :class:`LinearProgram`)."""

    def __init__(self, A, cl, cu, rl, ru, c):
        self.A, self._b, self.c = A, (cl, cu, rl, ru), c
        self.n_rows, self.n_cols = A.shape

    def matrix(self):
        return self.A

    def bounds(self):
        return self._b

    def objective(self) -> np.ndarray:
        return self.c


class PlanMemo:
    """One value per plan object in this process, thread-safe: the tasks of one analysis (on threads, or on a
    cluster worker) share what is built from their plan — its gated model, its lifter — and a task of another
    plan replaces it (one entry: a worker holds one plan's arrays at a time)."""

    def __init__(self) -> None:
        self._hit: tuple[PlanData, Any] | None = None
        self._lock = threading.Lock()

    def get(self, plan: PlanData, make: Callable[[PlanData], Any]) -> Any:
        with self._lock:
            if self._hit is None or self._hit[0] is not plan:
                self._hit = None
                self._hit = (plan, make(plan))
            return self._hit[1]

    def put(self, plan: PlanData, value: Any) -> None:
        with self._lock:
            self._hit = (plan, value)

    def clear(self) -> None:
        with self._lock:
            self._hit = None


_BASE_MODELS = PlanMemo()


def _base_model(plan: PlanData) -> Model:
    """The base plan's gated model, built once per plan object in this process (thread or cluster worker)."""
    return _BASE_MODELS.get(plan, lambda p: build_model(p, gates_as_bounds=True))


def embed(base: Model, variant: Model) -> tuple[_Arrays, np.ndarray] | None:
    """The variant's LP in the base model's columns, when it only lacks some of them (an expansion that cannot
    be decided before a later quarter has fewer decision columns): every column of the variant at its base
    position with the variant's own coefficients, bounds and cost, the base's extra columns fixed at 0 — the
    same LP, with the base's structure, so dual simplex can start from the base basis. Returns the arrays and
    each variant column's base position; None when the models differ otherwise (rows, or a column the base
    lacks)."""
    blp, vlp = base.lp, variant.lp
    if blp.n_rows != vlp.n_rows or list(blp.col_blocks) != list(vlp.col_blocks) or vlp.n_cols > blp.n_cols:
        return None
    pos = np.empty(vlp.n_cols, dtype=np.int64)
    for label, vb in vlp.col_blocks.items():
        bb = blp.col_blocks[label]
        if vb.size == bb.size:
            pos[vb.start:vb.start + vb.size] = np.arange(bb.start, bb.start + bb.size)
            continue
        keys = list(vb.index.columns)
        if list(bb.index.columns) != keys:
            return None
        at = bb.index.reset_index(drop=True).assign(_pos=np.arange(bb.start, bb.start + bb.size))
        got = vb.index.reset_index(drop=True).merge(at, on=keys, how="left")["_pos"]
        if got.isna().any() or len(got) != vb.size:
            return None
        pos[vb.start:vb.start + vb.size] = got.to_numpy(dtype=np.int64)
    if len(np.unique(pos)) != len(pos):
        return None
    import scipy.sparse as sp

    Ab, Av = blp.matrix().tocsc(), vlp.matrix().tocsc()
    missing = np.setdiff1d(np.arange(blp.n_cols), pos)
    # columns in base order: the variant's where it has them, the base's (fixed at 0) elsewhere
    cols = np.empty(blp.n_cols, dtype=np.int64)
    cols[pos] = np.arange(vlp.n_cols)
    cols[missing] = vlp.n_cols + np.arange(len(missing))
    A = sp.hstack([Av, Ab[:, missing]], format="csc")[:, cols]
    A.sort_indices()
    vcl, vcu, rl, ru = vlp.bounds()
    cl, cu, c = np.zeros(blp.n_cols), np.zeros(blp.n_cols), np.zeros(blp.n_cols)
    cl[pos], cu[pos], c[pos] = vcl, vcu, vlp.objective()
    return _Arrays(A, cl, cu, rl, ru, c), pos


def solve_variant(plan: PlanData, start: Basis | None, solver: str | None = None,
                  time_limit: float | None = None, method: str | None = None,
                  base_plan: PlanData | None = None) -> Results | None:
    """One variant of the base plan (a program shifted, a capacity scaled) re-solved, as compact Results.

    Built with gates as bounds, so that a program ready sooner or later changes bounds, not columns; under the
    margin policy it starts dual simplex from the base plan's optimal basis (``start``). Returns ``summary``
    (status, objective, margin, fill_rate, …) and the ``service`` table — what R&D impact and the levers read —
    without the other tables, whose extraction would cost more than the warm solve. None when the variant
    cannot be solved at all (the caller leaves it out)."""
    try:
        return _solve_variant(plan, start, solver, time_limit, method, base_plan)
    except Exception as exc:  # a variant the model or solver refuses is not offered; running out of memory is
        from planner.exhaustion import out_of_memory  # not a variant's fault

        if out_of_memory(exc):
            raise
        return None


def _solve_variant(plan: PlanData, start: Basis | None, solver: str | None, time_limit: float | None,
                   method: str | None, base_plan: PlanData | None) -> Results:
    from planner.solve.policy import solve_model

    model = build_model(plan, gates_as_bounds=True)
    lp = model.lp
    settings = plan.settings
    if (solver or settings.solver) != "highs":  # CBC and others: the ordinary solve
        sol = solve_model(model, solver=solver, time_limit=time_limit, method=method, prices=False)
        return compact(model, sol.x, sol.status)
    tl = time_limit if time_limit is not None else settings.time_limit_s
    arrays, pos = lp, None
    warm = settings.policy == "margin" and start is not None
    if warm and (len(start[0]) != lp.n_cols or len(start[1]) != lp.n_rows):
        fit = embed(_base_model(base_plan), model) if base_plan is not None else None
        if fit is not None and len(start[0]) == fit[0].n_cols:
            arrays, pos = fit
        else:
            warm = False
    for attempt in (True, False) if warm else (False,):
        session = tracked(HighsSession(arrays if attempt else lp, time_limit=tl,
                                       method="simplex" if attempt else (method or settings.highs_method)))
        try:
            if attempt and not session.set_basis(start):
                continue  # HiGHS refused the basis: the variant from scratch
            res = session.run() if attempt else run_policy(session, model, settings.policy, lp.objective())
        finally:
            untracked(session)
        if res.status != "optimal":
            return compact(model, None, res.status)
        return compact(model, res.x if pos is None or not attempt else res.x[pos], res.status)
    raise AssertionError("unreachable")  # pragma: no cover


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
        served, short = service_grid(model, x, _clean(x[model.y["col"].to_numpy()]))
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
    return [(solve_variant, (p, base.start, solver, time_limit, method, base.plan)) for p in plans]
