"""The allocation policies as sequences of LPs on a solver session (``models/formulation.md``, "Policies").

``solve_model`` is the one entry point: it opens a :mod:`planner.solve.sessions` session over the built model,
runs the policy's stages, and returns a :class:`Solution` over the model's own columns and rows, checked for
feasibility.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.exhaustion import address_space_limited
from planner.model.build import Model
from planner.model.lp import LinearProgram
from planner.model.stages import (
    FairShare,
    Hold,
    add_fair_share,
    add_fair_share_hold,
    add_priority_hold,
    add_priority_tie,
    fair_share_objective,
    priority_objective,
    tiers,
)
from planner.solve.forked import Forked
from planner.solve.forked import available as forked_available
from planner.solve.sessions import RunResult, Session, Stopped, make_session


@dataclass
class Solution:
    status: str
    x: np.ndarray | None
    row_dual: np.ndarray | None
    objective: float | None
    solver: str
    method: str
    seconds: float
    stages: list[dict] = field(default_factory=list)
    message: str = ""
    max_violation: float = 0.0
    violations: list[str] = field(default_factory=list)
    # capacity row → (objective gained with one more unit, lost with one less; NaN if infeasible or the
    # capacity is below one unit), from ±1 re-solves of the final stage (:func:`check_prices`); binding rows
    # missing here were not checked
    prices: dict[int, tuple[float, float]] = field(default_factory=dict)
    # the optimal basis of the margin LP (HiGHS, margin policy), for warm re-solves of variants of the plan
    # (:mod:`planner.solve.warm`): see :attr:`basis`
    _basis: Any = field(default=None, repr=False, compare=False)
    # the price checks still running on a thread of their own (``solve_model(prices_later=True)``); until
    # :meth:`settle_prices` returns, ``prices`` is empty
    pending_prices: PendingPrices | None = field(default=None, repr=False, compare=False)

    @property
    def has_solution(self) -> bool:
        return self.x is not None

    @property
    def basis(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The optimal basis as two int arrays (HiGHS's codes; None if there is none), made from the snapshot
        the solve kept when first asked: only the analyses' warm re-solves ask, and at 416k columns making the
        arrays takes 0.1-0.3 s a plain run does not need."""
        if callable(self._basis):
            self._basis = self._basis()
        return self._basis

    @basis.setter
    def basis(self, value: tuple[np.ndarray, np.ndarray] | None) -> None:
        self._basis = value

    def __getstate__(self) -> dict:
        """Pickled with the basis as arrays (the snapshot holds a HiGHS object, which does not pickle)."""
        return {**self.__dict__, "_basis": self.basis}

    def settle_prices(self) -> None:
        """Wait for the price checks started by ``solve_model(prices_later=True)`` and keep what they found;
        their error, if any, is raised here (and a Ctrl-C while waiting stops them first)."""
        if self.pending_prices is not None:
            pending, self.pending_prices = self.pending_prices, None
            self.prices = pending.result()

    def cancel_prices(self) -> None:
        """Stop the price checks still running, if any, and wait until they have (one basis solve or one
        re-solve at most); ``prices`` stays empty."""
        if self.pending_prices is not None:
            pending, self.pending_prices = self.pending_prices, None
            pending.cancel()


# ---- policies ------------------------------------------------------------------------------------------------
HOLD_TOLERANCES = (0.0, 1e-9, 1e-7)  # relative to each hold's scale; looser only if a stage turns infeasible
DUAL_TOL = 1e-7  # a fair-share member with a dual share above this is saturated (see formulation.md)
LEVEL_TOL = 1e-9  # fill rates within this of the level count as at the level
SAT_TOL = 1e-7  # per-candidate test: a member whose best fill rate beats the level by no more is saturated
SOLVER_TOL = 1e-7  # HiGHS's primal feasibility tolerance: below it (relative to the row) a number is noise


class _Stages:
    """Runs a policy's stages on one session: the holds added so far, and their tolerance."""

    def __init__(self, session: Session, record: list[dict]):
        self.session = session
        self.holds: list[Hold] = []
        self.level = 0
        self.record = record

    def hold(self, h: Hold | None) -> None:
        if h is None:
            return
        self.holds.append(h)
        if self.level:
            self._bound(h)

    def _bound(self, h: Hold) -> None:
        lower = h.targets - HOLD_TOLERANCES[self.level] * h.scales
        for row, lo in zip(h.rows, lower, strict=True):
            self.session.set_row_bounds(int(row), float(lo), np.inf)

    def run(self, c: np.ndarray) -> RunResult:
        """Solve with objective ``c``; if the holds make it infeasible (round-off: each was met by the previous
        stage's solution), or HiGHS ends without a status it can name (seen on a fair-share margin stage whose
        holds sit at the previous optimum: "Unknown" from a warm start and from scratch), loosen them to the next
        relative tolerance and solve again."""
        s = self.session
        s.set_objective(_pad(c, s.n_cols))
        res = s.run()
        while res.status in ("infeasible", "error") and self.holds and self.level + 1 < len(HOLD_TOLERANCES):
            self.level += 1
            for h in self.holds:
                self._bound(h)
            res = s.run()
        return res

    @property
    def tolerance(self) -> float:
        return HOLD_TOLERANCES[self.level]


def _pad(c: np.ndarray, n: int) -> np.ndarray:
    return c if len(c) == n else np.concatenate([c, np.zeros(n - len(c))])


def run_policy(session: Session, model: Model, policy: str, margin: np.ndarray,
               stages: list[dict] | None = None) -> RunResult:
    """The policy's sequence of LPs on a session; returns the final (margin) stage's result.

    ``margin`` is the margin objective over the model's columns (callers may pass a modified one). Stage rows
    and columns stay in the session; callers that re-use a session remove them with ``reset``.
    """
    record = stages if stages is not None else []
    runner = _Stages(session, record)
    if policy == "priority":
        res = _priority(runner, model, margin)
    elif policy == "fair_share":
        res = _fair_share(runner, model)
    else:
        res = None
    if res is not None and res.status != "optimal":
        return res
    res = runner.run(margin)
    record.append({"stage": "margin", "value": res.objective, "hold_tolerance": runner.tolerance,
                   "rows": []})
    return res


def _priority(runner: _Stages, model: Model, margin: np.ndarray) -> RunResult | None:
    """Stage k (every tier but the lowest): maximise the objective of tiers ≤ k, break ties among its optima by
    the next stage's objective, then hold the service of each tier-k platform, quarter by quarter (cumulative
    platform units, by any option).

    The lowest tier needs no stage of its own: its stage would be the final margin stage. So one tier is
    exactly the margin policy."""
    ts = tiers(model)
    res = None
    for i, tier in enumerate(ts[:-1]):
        c = priority_objective(model, margin, ts[i + 1:])
        res = runner.run(c)
        if res.status != "optimal":
            return res
        x = _break_tie(runner, model, margin, ts, i, c, res)
        h = add_priority_hold(runner.session, model, tier, x)
        runner.hold(h)
        runner.record.append({"stage": f"priority tier {tier.priority}", "platforms": tier.platforms,
                              "value": res.objective, "rows": [] if h is None else h.names})
    return res


def _break_tie(runner: _Stages, model: Model, margin: np.ndarray, ts: list, i: int, c: np.ndarray,
               res: RunResult) -> np.ndarray:
    """Among stage i's optima (its objective held by a `priority_tie` row), the one best for the next tier's
    objective: its tier-i service is what gets held. The row is then relaxed (the `priority_hold` rows take
    over, leaving how the tier is served free). Falls back to the stage's own solution if the tie-break LP
    fails even with the row loosened like a hold (it meets the row, so only round-off can)."""
    session = runner.session
    tie = add_priority_tie(session, ts[i], _pad(c, session.n_cols), res.x)
    c_next = priority_objective(model, margin, ts[i + 2:])
    warm = getattr(session, "warm_primal", None)
    if warm is not None:  # the stage's solution meets the new row: primal simplex starts from a feasible basis
        warm(True)
    try:
        nxt = runner.run(c_next)
    finally:
        if warm is not None:
            warm(False)
    for tol in HOLD_TOLERANCES[1:]:
        if nxt.status != "infeasible":
            break
        session.set_row_bounds(int(tie.rows[0]), float(tie.targets[0] - tol * tie.scales[0]), np.inf)
        nxt = runner.run(c_next)
    session.set_row_bounds(int(tie.rows[0]), -np.inf, np.inf)
    return nxt.x if nxt.status == "optimal" else res.x


def _fair_share(runner: _Stages, model: Model) -> RunResult | None:
    """Lexicographic max-min fill rate within each tier, tier 1 first (progressive filling)."""
    session = runner.session
    warm = getattr(session, "warm_primal", None)
    try:
        return _fill_progressively(runner, model, warm)
    finally:
        if warm is not None:
            warm(False)


def _fill_progressively(runner: _Stages, model: Model, warm) -> RunResult | None:
    session = runner.session
    level_col = None
    res = None
    for tier in tiers(model):
        stage = add_fair_share(session, model, tier, level_col)
        level_col = stage.level_col
        free = list(tier.platforms)
        rnd = 0
        while free:
            rnd += 1
            if warm is not None:  # later rounds: same objective, and the last solution meets every change
                warm(rnd > 1)
            res = runner.run(fair_share_objective(session.n_cols, stage))
            if res.status != "optimal":
                return res
            z = stage.level(res.x)
            fills = {p: stage.fill(p, res.x) for p in free}
            saturated, how = _saturated(runner, stage, free, z, fills, res)
            names = []
            for p in saturated:
                session.set_row_bounds(stage.rows[p], -np.inf, np.inf)  # p leaves the max-min rows
                h = add_fair_share_hold(session, model, stage, p, min(z, fills[p]))
                runner.hold(h)
                names.extend(h.names)
                free.remove(p)
            runner.record.append({"stage": f"fair_share tier {tier.priority} round {rnd}", "value": z,
                                  "platforms": saturated, "saturation": how,
                                  "rows": ([stage.names[p] for p in tier.platforms] if rnd == 1 else []) + names})
    if level_col is not None:  # every `fair_share` row is relaxed by now: u means nothing in later stages
        session.set_col_bounds(level_col, 0.0, 0.0)
    return res


def _saturated(runner: _Stages, stage: FairShare, free: list[str], z: float,
               fills: dict[str, float], res: RunResult) -> tuple[list[str], str]:
    """Members of ``free`` that cannot exceed the level z while every other free member keeps z.

    Dual test (one LP per round): with Σ_p λ_p = 1 (the normalised duals of the `fair_share` rows), any p with
    λ_p > 0 is saturated — for every x feasible for the stage, Σ_p λ_p f_p(x) ≤ z*, so if the others with
    λ > 0 keep z*, f_p cannot exceed it. Members with λ_p = 0 may be saturated too; they are found in a later
    round at the same level. If no dual is available, or none is clearly positive (numerical trouble), one
    small LP per candidate decides instead."""
    if z >= 1.0 - LEVEL_TOL:  # nobody serves more than its demand: every member is done
        return list(free), "full"
    if res.row_dual is not None:
        duals = {p: abs(float(res.row_dual[stage.rows[p]])) for p in free}
        total = sum(duals.values())
        if total > 0:
            sat = [p for p in free if duals[p] / total > DUAL_TOL and fills[p] <= z + LEVEL_TOL]
            if sat:
                return sat, "dual"
    return _saturated_by_lp(runner, stage, free, z), "lp"


def _saturated_by_lp(runner: _Stages, stage: FairShare, free: list[str], z: float) -> list[str]:
    """For each free member: max Σ_t Y_pt with z fixed at the level; saturated if it cannot beat the level."""
    session = runner.session
    u = stage.scale * (z - LEVEL_TOL)
    session.set_col_bounds(stage.level_col, u, u)
    best = {}
    for p in free:
        cols, _ = stage.terms[p]
        c = np.zeros(session.n_cols)
        c[cols] = 1.0
        r = runner.run(c)
        best[p] = stage.fill(p, r.x) if r.status == "optimal" else z
    session.set_col_bounds(stage.level_col, -np.inf, np.inf)
    out = [p for p in free if best[p] <= z + SAT_TOL]
    # in exact arithmetic some member is saturated; with round-off, the one that can gain least
    return out or [min(free, key=best.__getitem__)]


def finish_solution(lp: LinearProgram, res: RunResult, session: Session, t0: float,
                    stages: list[dict]) -> Solution:
    """A run's result as a Solution over the model's own columns and rows (stage rows and columns dropped),
    checked for feasibility, with the objective recomputed from the model's margin."""
    sol = Solution(status=res.status, x=None if res.x is None else res.x[: lp.n_cols],
                   row_dual=None if res.row_dual is None else res.row_dual[: lp.n_rows],
                   objective=res.objective, solver=session.name, method=session.method,
                   seconds=time.perf_counter() - t0, stages=stages, message=res.message)
    if sol.x is not None:
        sol.max_violation, sol.violations = check_feasibility(lp, sol.x)
        sol.objective = float(lp.objective() @ sol.x)
    return sol


def solve_model(model: Model, solver: str | None = None, time_limit: float | None = None,
                method: str | None = None, policy: str | None = None, prices: bool = True,
                prices_later: bool = False) -> Solution:
    """Solve under the plan's policy (``models/formulation.md``, "Policies as sequences of LPs").

    ``prices``: also re-solve the final stage with each binding capacity one unit higher and lower
    (:func:`check_prices`), so the report can say what one more or one less unit is worth. Re-solves that only
    read margins and service (R&D impact, batches) leave it off.

    ``prices_later``: return as soon as the plan is solved and run the price checks on a thread of their own
    (:class:`PendingPrices`), so that the caller can extract the plan and write the parts of the report that do
    not need them meanwhile; ``Solution.settle_prices`` waits for them. The same checks on the same session:
    the same prices. Under ``ulimit -v`` they run here, before returning (see
    :func:`planner.exhaustion.address_space_limited`)."""
    settings = model.settings
    solver = solver or settings.solver
    policy = policy or settings.policy
    method = method or settings.highs_method
    time_limit = time_limit if time_limit is not None else settings.time_limit_s
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        # 0, a negative or NaN limit reached the solvers as "no limit": refused like Settings.time_limit_s
        raise ValueError(f"time limit must be a number of seconds > 0, not {time_limit!r}")
    t0 = time.perf_counter()
    lp = model.lp
    session = make_session(lp, solver, time_limit, method)
    stages: list[dict] = []
    margin = lp.objective()
    res = run_policy(session, model, policy, margin, stages)
    sol = finish_solution(lp, res, session, t0, stages)
    if sol.status == "optimal" and policy == "margin" and hasattr(session, "basis_snapshot"):
        sol._basis = session.basis_snapshot()
    if prices and sol.status == "optimal":
        if prices_later and not address_space_limited():
            sol.pending_prices = PendingPrices(session, model, sol, margin)
        else:
            sol.prices = check_prices(session, model, sol, margin)
    return sol


class PendingPrices:
    """:func:`check_prices` beside the caller, which extracts the plan and writes the report's other sheets
    meanwhile (``benchmarks/results.md``, notes).

    The basis solves of a large plan (:meth:`HighsSession.vouch_ask`, decided by block solves: ~1 s on a
    416k-column plan) run in a forked copy of this process (:mod:`planner.solve.forked`): on a thread beside the
    report's Python they took 2-2.6 s, their thousands of short numpy steps each waiting for the GIL, and on
    the caller's thread they held the report up by their whole second. The re-solves of the sides they cannot
    vouch for (:func:`resolve_prices`, ~60 ms each inside HiGHS, the GIL released) run on a thread of their own,
    which owns the session from then on. Where no fork may be had (not Linux, ``ulimit -v``) or the plan is
    small, the basis solves run here, before returning, and the thread starts only if something is left to
    re-solve. While the thread runs the interpreter hands the GIL over every ``SWITCH_S`` instead of every 5 ms
    (else each re-solve's few Python steps wait up to 5 ms each)."""

    SWITCH_S = 2e-4
    _lock = threading.Lock()
    _running = 0  # checks under way in this process; the last to end restores the switch interval
    _saved = 0.005

    def __init__(self, session: Session, model: Model, sol: Solution, margin: np.ndarray):
        self._stop = threading.Event()
        # waited on instead of Thread.join: on Python 3.11 a join interrupted by Ctrl-C marks a running thread
        # as stopped (bpo-45274's fix releases the lock the live thread holds), and a second join returns at once
        self._done = threading.Event()
        self._out: dict[int, tuple[float, float]] | None = None  # set only when the checks ended normally
        self._exc: BaseException | None = None
        self._base = (session, model, sol, margin)
        self._away: Forked | None = None
        self._split: tuple[dict[int, tuple[float, float]], Todo] | None = None
        self._start_vouches()
        self._thread: threading.Thread | None = None
        if self._split is not None and not self._split[1]:  # every row vouched for: nothing left to re-solve
            self._out = self._split[0]
            self._done.set()
            return
        self._thread = threading.Thread(
            target=self._work, name="planner-price-checks", daemon=True)
        self._fast_switch(True)
        try:
            self._thread.start()
        except RuntimeError:  # no thread to be had (a thread limit): the checks run in result(), on its thread
            self._thread = None
            self._fast_switch(False)

    def _start_vouches(self) -> None:
        """The basis solves: in a forked child where that applies (``self._away``), else here (``self._split``).
        The question is copied out of HiGHS once (``self._ask``), whoever answers it."""
        session, model, sol, _ = self._base
        if not hasattr(session, "vouch_ask") or sol.row_dual is None:
            self._split = vouch_prices(session, model, sol)
            return
        self._talk, _ = price_candidates(model, sol.x, sol.row_dual)
        self._ask = session.vouch_ask(self._talk) if len(self._talk) else None
        if self._ask is not None and self._ask.M is not None and forked_available():
            # what the child runs is imported here: an import in a forked child can wait forever on a module
            # lock another thread of this process held at the fork
            import threadpoolctl  # noqa: F401

            import planner.solve.basis_solve  # noqa: F401
            try:
                self._away = Forked(self._ask.decide, name="planner-basis-solves")
                return
            except OSError:  # no process to be had (a process or memory limit): here after all
                self._away = None
        self._split = split_vouched(self._talk, session.answer(self._ask), sol)

    def _vouched(self) -> tuple[dict[int, tuple[float, float]], Todo]:
        """The basis solves' answer: from here, or from the child (computed here after all if it gave none)."""
        if self._split is not None:
            return self._split
        session, _, sol, _ = self._base
        assert self._away is not None
        ok, value = self._away.result(self._stop.is_set)
        if self._stop.is_set():
            raise Stopped("capacity price checks stopped")
        if not ok:  # the child failed or died: the same question answered on this thread
            value = session.answer(self._ask, self._stop.is_set)
        return split_vouched(self._talk, value, sol)

    @classmethod
    def _fast_switch(cls, on: bool) -> None:
        with cls._lock:
            if on:
                if not cls._running:
                    cls._saved = sys.getswitchinterval()
                    sys.setswitchinterval(min(cls._saved, cls.SWITCH_S))
                cls._running += 1
            else:
                cls._running -= 1
                if not cls._running:
                    sys.setswitchinterval(cls._saved)

    def _work(self) -> None:
        try:
            # the pivots' copy of the LP out of HiGHS is taken while the child block-solves (the basis is still
            # the final one: nothing has re-solved)
            session = self._base[0]
            pivot = session.pivot_pricer() if self._away is not None and hasattr(session, "pivot_pricer") else None
            self._out = resolve_prices(*self._base, *self._vouched(), stop=self._stop.is_set, pivot=pivot)
        except BaseException as exc:  # handed to the thread that waits for the result
            self._exc = exc
        finally:
            self._fast_switch(False)
            self._done.set()

    def result(self) -> dict[int, tuple[float, float]]:
        """The checks' prices, once they are done; their error, raised here. Ctrl-C (or any exception) while
        waiting stops them before it goes on."""
        if self._thread is None:
            return self._out if self._out is not None else resolve_prices(*self._base, *self._vouched())
        try:
            self._done.wait()
            self._thread.join()  # the thread's last step: it has set _done
        except BaseException:
            self.cancel()
            raise
        if self._exc is not None:
            raise self._exc
        if self._out is None:  # the thread ended without an answer or an error: never report "not checked" for it
            raise RuntimeError("the capacity price checks ended without a result")
        return self._out

    def cancel(self) -> None:
        """Stop the checks (at the next row or re-solve) and wait until they have."""
        self._stop.set()
        if self._thread is not None:
            self._done.wait()
            self._thread.join()
        elif self._away is not None:  # no thread to wait on it: the child is stopped here
            self._away.cancel()


MAX_PRICE_CHECKS = 20  # capacity rows re-solved ±1 where neither the basis nor one pivot vouches for the price
MAX_PIVOT_ROWS = 500  # capacity rows priced by one pivot per side (~7 ms a side at 416k columns); the rest: "not checked"
PRICE_DUAL_TOL = 1e-9  # a capacity row with |dual| above this, or less than one unit of slack, is checked


def price_candidates(model: Model, x: np.ndarray, row_dual: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Capacity rows the report talks about — less than one unit of slack or a non-zero dual — largest |dual|
    first; and, apart, those with at least one unit of slack and a zero dual (one unit either way changes
    nothing: the optimum stays feasible at one less, and by concavity one more cannot help)."""
    lp = model.lp
    rows = np.concatenate([lp.rows("fab_capacity"), lp.rows("backend_capacity")])
    if not len(rows):
        return rows, rows
    _, _, _, ru = lp.bounds()
    slack = ru[rows] - (lp.matrix() @ x)[rows]
    dual = np.zeros(len(rows)) if row_dual is None else np.abs(row_dual[rows])
    talk = (slack < 1.0) | (dual > PRICE_DUAL_TOL)
    order = np.lexsort((slack[talk], -dual[talk]))
    return rows[talk][order], rows[~talk]


def check_prices(session: Session, model: Model, sol: Solution, margin: np.ndarray,
                 stop: Callable[[], bool] | None = None) -> dict[int, tuple[float, float]]:
    """Objective (margin less shortfall penalties) gained with one more unit and lost with one less, for the
    binding capacity rows: :func:`vouch_prices`, then :func:`resolve_prices` for the sides it could not vouch for.
    The dual alone can mislead at a degenerate optimum, where any value between these two is a valid dual and
    the solver reports one of them (seen: $100 reported, one more wafer worth $0, one less costing $1,000)."""
    vouched, todo = vouch_prices(session, model, sol, stop)
    return resolve_prices(session, model, sol, margin, vouched, todo, stop)


Todo = list[tuple[int, bool, bool]]  # (row, one more vouched for, one less vouched for)


def vouch_prices(session: Session, model: Model, sol: Solution, stop: Callable[[], bool] | None = None
                 ) -> tuple[dict[int, tuple[float, float]], Todo]:
    """The capacity rows the report talks about whose final basis stays optimal from one unit below the
    capacity to one above: both values are the dual exactly (``Session.one_unit_vouched``: HiGHS, the basis
    solves of all rows at once). Returns those prices, and every other row the report talks about — largest dual
    first — with the sides that were vouched for."""
    talk, _ = price_candidates(model, sol.x, sol.row_dual)
    vouched = (session.one_unit_vouched(talk, stop) if len(talk) and hasattr(session, "one_unit_vouched")
               and sol.row_dual is not None else None)
    return split_vouched(talk, vouched, sol)


def split_vouched(talk: np.ndarray, vouched: tuple[np.ndarray, np.ndarray] | None, sol: Solution
                  ) -> tuple[dict[int, tuple[float, float]], Todo]:
    """Prices of the rows vouched for on both sides (the dual, both ways), and the rest left to re-solve."""
    up_ok = down_ok = np.zeros(len(talk), dtype=bool)
    out: dict[int, tuple[float, float]] = {}
    if vouched is not None:  # each side the basis vouches for is the dual exactly; only the other is re-solved
        up_ok, down_ok = vouched
        for r in talk[up_ok & down_ok]:
            out[int(r)] = (float(sol.row_dual[r]), float(sol.row_dual[r]))
    todo = [(int(r), bool(u), bool(d)) for r, u, d in zip(talk, up_ok, down_ok, strict=True) if not (u and d)]
    return out, todo


def resolve_prices(session: Session, model: Model, sol: Solution, margin: np.ndarray,
                   vouched: dict[int, tuple[float, float]], todo: Todo, stop: Callable[[], bool] | None = None,
                   pivot: Any = None) -> dict[int, tuple[float, float]]:
    """``vouched`` and the rows of ``todo`` priced side by side: each side not vouched for by one dual simplex
    pivot from the final basis where that proves the value (:mod:`planner.solve.pivots`, the first
    ``MAX_PIVOT_ROWS`` rows; ``pivot``: one already made from this basis, else made here), else re-solved with the
    capacity one unit higher or lower, the policy's holds in place, warm from the final basis (the first
    ``MAX_PRICE_CHECKS`` rows the pivots left). The rest of ``todo`` stays out: "not checked"."""
    lp = model.lp
    _, _, rl, ru = lp.bounds()
    out = dict(vouched)
    n = lp.n_cols
    dual = sol.row_dual
    sides = [(r, d) for r, up_known, down_known in todo[:MAX_PIVOT_ROWS]
             for d, known in ((1.0, up_known), (-1.0, down_known)) if not known and ru[r] + d >= 0]
    if sides and pivot is None and hasattr(session, "pivot_pricer"):
        pivot = session.pivot_pricer()
    changes: dict[tuple[int, float], float] = {}
    if sides and pivot is not None:  # before any re-solve: the pivots start from the final basis
        for side in sides:
            if stop is not None and stop():
                raise Stopped("capacity price checks stopped")
            change = pivot.change(*side)
            if change is not None:
                changes[side] = change
    resolve = []
    for r, up_known, down_known in todo:
        values = []
        for d, known in ((1.0, up_known), (-1.0, down_known)):
            if known:
                values.append(float(dual[r]))
            elif ru[r] + d < 0:  # less than one unit to take away: there is no "one less"
                values.append(np.nan)
            elif (r, d) in changes:
                values.append(d * changes[(r, d)])
            else:
                break
        else:
            out[r] = (values[0], values[1])
            continue
        resolve.append((r, up_known, down_known))
    if not resolve:
        return out
    # the session's objective is the final stage's, margin itself (zero on a stage's own columns): where it can
    # tell its objective without copying the solution out, the values are read that way, base and re-solves alike
    light = hasattr(session, "objective_now")
    base = session.objective_now() if light else float(margin @ sol.x)
    if hasattr(session, "use_simplex"):  # warm dual simplex: a few pivots per bound change
        session.use_simplex()
    for r, up_known, down_known in resolve[:MAX_PRICE_CHECKS]:
        values = []
        for d, known in ((1.0, up_known), (-1.0, down_known)):
            if known:
                values.append(float(dual[r]))
                continue
            if ru[r] + d < 0:
                values.append(np.nan)
                continue
            if (r, d) in changes:
                values.append(d * changes[(r, d)])
                continue
            if stop is not None and stop():
                session.set_row_bounds(r, rl[r], ru[r])
                raise Stopped("capacity price checks stopped")
            session.set_row_bounds(r, rl[r], ru[r] + d)
            if light:
                res = session.run(values=False)
                obj = res.objective if res.status == "optimal" else np.nan
            else:
                res = session.run()
                obj = float(margin @ res.x[:n]) if res.status == "optimal" else np.nan
            values.append(d * (obj - base))
        session.set_row_bounds(r, rl[r], ru[r])
        out[r] = (values[0], values[1])
    return out


def check_feasibility(lp: LinearProgram, x: np.ndarray, rel_tol: float = 1e-6) -> tuple[float, list[str]]:
    """Largest scaled bound violation of rows and columns, and the labels of violated rows (post-solve check)."""
    A = lp.matrix()
    act = A @ x
    cl, cu, rl, ru = lp.bounds()
    # relative to the row's own magnitude: a balance row with zero right-hand side sums terms in the millions
    magnitude = abs(A) @ np.abs(x)
    scale_r = np.maximum.reduce([np.ones_like(act), np.abs(np.nan_to_num(rl, posinf=0, neginf=0)),
                                 np.abs(np.nan_to_num(ru, posinf=0, neginf=0)), magnitude])
    viol_r = np.maximum(np.maximum(rl - act, act - ru), 0) / scale_r
    viol_c = np.maximum(np.maximum(cl - x, x - cu), 0) / np.maximum(1.0, np.abs(x))
    worst = float(max(viol_r.max(initial=0.0), viol_c.max(initial=0.0)))
    bad: list[str] = []
    if worst > rel_tol:
        for label, block in lp.row_blocks.items():
            v = viol_r[block.start: block.start + block.size]
            if (v > rel_tol).any():
                bad.append(f"{label}: {int((v > rel_tol).sum())} row(s), worst {v.max():.2e}")
        if (viol_c > rel_tol).any():
            bad.append(f"column bounds: {int((viol_c > rel_tol).sum())} column(s)")
    return worst, bad
