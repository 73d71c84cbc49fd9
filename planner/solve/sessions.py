"""Solver back-ends behind one small interface: a :class:`Session` over a built :class:`LinearProgram`.

A session sets an objective, adds a row or a column, runs. ``highs`` hands the arrays to HiGHS directly
(``Highs.passModel``) and keeps the model between runs, so policy stages and re-solves start from the previous
basis. ``cbc`` (and any other solver PuLP knows) goes through :func:`to_pulp`, where PuLP is the model's
definition. A GPU LP solver would be a third Session; nothing above this module would change.

Duals are normalised here to "change of the maximised objective per unit increase of the row's bound", so
a binding capacity row has a shadow price ≥ 0 whatever the back-end's own convention.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from planner.exhaustion import out_of_memory, require_headroom
from planner.model.lp import LinearProgram
from planner.solve.pivots import room as _room

IPM_THRESHOLD_COLS = 2_000  # 'auto': interior point from here up (measured crossover, benchmarks/results.md)


class SolverError(Exception):
    """The solver is missing or failed; the message names the alternative."""


class Stopped(Exception):
    """Work on a session was asked to stop (the caller gave up waiting for it: Ctrl-C, another error)."""


@dataclass
class RunResult:
    status: str  # optimal | infeasible | unbounded | time_limit | error
    objective: float | None = None
    x: np.ndarray | None = None
    row_dual: np.ndarray | None = None
    message: str = ""


class Session(Protocol):
    name: str
    method: str
    n_cols: int

    def set_objective(self, c: np.ndarray) -> None: ...
    def add_row(self, cols: np.ndarray, vals: np.ndarray, lower: float, upper: float, name: str = "") -> int: ...
    def add_col(self, cost: float, lower: float, upper: float, rows: np.ndarray, vals: np.ndarray,
                name: str = "") -> int: ...
    def set_row_bounds(self, row: int, lower: float, upper: float) -> None: ...
    def set_col_bounds(self, col: int, lower: float, upper: float) -> None: ...
    def run(self) -> RunResult: ...


_SILENCE = threading.Lock()  # fd 1 is one per process: two threads saving and restoring it must not interleave


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null for the duration (C-level prints bypass sys.stdout).

    Serialised by a lock: sessions are built on threads (the explanation's parallel solves), and two
    interleaved save/restore pairs would leave the process's stdout at /dev/null for good (seen: every
    later line of `planner` output lost)."""
    with _SILENCE:
        sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:  # no usable fd 1 (embedded interpreters): nothing to silence
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)


# ---- HiGHS -------------------------------------------------------------------------------------------------
# HiGHS's dual simplex perturbs every cost before it starts, and its primal simplex every bound (against stalling
# at a degenerate vertex), and both clean the perturbation up at the end: from an optimal basis of a nearby plan
# that walks thousands of pivots away and back, whatever changed. Re-solves from a basis run without it
# (multiplier 0). Measured, one thread, the same optima: R&D shifts on the 476k-column plan 1.7-2.3 s (42-136
# pivots) against 52-60 s (52,000 pivots), on the 143k-column plan 0.3-1.4 s against 3.7-5.6 s; the policy alone
# from the base basis at 476k: dual 3.5 s, primal 12.0 s, against 29.3 s by primal with perturbation
# (models/explain.md, "What it costs").
WARM_PERTURBATION = 0.0
STALL_MIN_PIVOTS = 20_000  # an unperturbed warm run past max(this, 2 × rows) pivots is stalled: perturbed from there
IPM_ITERATION_LIMIT = 1_000  # interior point converges in tens of iterations (a 476k-column plan: under 100); past
# this it is stuck, and the simplex takes over (HiGHS's own default is no limit)
NO_ITERATION_LIMIT = 2_147_483_647  # HiGHS's own default
# Price checks: from this many nonbasic rows to ask about, their basis solves go together through the block
# triangular form (planner.solve.basis_solve) rather than one HiGHS solve each. Below it the HiGHS solves take
# milliseconds in all, and scipy's sparse graph and LU modules (~120 MB of address space to map) stay unloaded.
BLOCK_SOLVE_MIN_ROWS = 200


class HighsSession:
    """HiGHS through highspy, fed with arrays; keeps its model and basis between runs."""

    name = "highs"

    def __init__(self, lp: LinearProgram, time_limit: float | None = None, method: str = "auto",
                 threads: int | None = None):
        try:
            import highspy
        except ModuleNotFoundError as exc:  # pragma: no cover - highspy is a base dependency
            raise SolverError("HiGHS (highspy) is not installed: pip install highspy, or set solver = cbc") from exc
        # any other ImportError is a broken install or no memory to map the library: not "not installed"
        self._hs = highspy
        with _stdout_silenced():  # HiGHS prints a banner on construction, which would corrupt --json output
            self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.time_limit = float(time_limit) if time_limit else None  # per run: see :meth:`run`
        if threads:
            self.h.setOptionValue("threads", int(threads))
        if method == "auto":
            method = "ipm" if lp.n_cols >= IPM_THRESHOLD_COLS else "simplex"
        self.method = method
        self.h.setOptionValue("solver", "ipm" if method == "ipm" else "simplex")
        A = lp.matrix()
        cl, cu, rl, ru = lp.bounds()
        require_headroom("HiGHS model")
        # the arrays straight in (one copy each, 0.02 s at 416k columns; filling a HighsLp's fields first took
        # 0.11 s); every column continuous
        status = self.h.passModel(
            lp.n_cols, lp.n_rows, A.nnz, int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMaximize), 0.0,
            lp.objective(), cl, cu, rl, ru, A.indptr[:-1].astype(np.int32), A.indices.astype(np.int32), A.data,
            np.zeros(lp.n_cols, dtype=np.int32))
        if status != highspy.HighsStatus.kOk:
            raise SolverError(f"HiGHS refused the model ({status}); try --solver cbc")
        self.n_cols = lp.n_cols

    def set_objective(self, c: np.ndarray) -> None:
        n = len(c)
        self.h.changeColsCost(n, np.arange(n, dtype=np.int32), np.asarray(c, dtype=float))

    def add_row(self, cols: np.ndarray, vals: np.ndarray, lower: float, upper: float, name: str = "") -> int:
        self.h.addRow(float(lower), float(upper), len(cols), np.asarray(cols, dtype=np.int32),
                      np.asarray(vals, dtype=float))
        row = self.h.getNumRow() - 1
        if name:  # named like the PuLP path's row, for an LP file written from this model
            self.h.passRowName(row, _safe_name(name))
        return row

    def add_col(self, cost: float, lower: float, upper: float, rows: np.ndarray, vals: np.ndarray,
                name: str = "") -> int:
        self.h.addCol(float(cost), float(lower), float(upper), len(rows), np.asarray(rows, dtype=np.int32),
                      np.asarray(vals, dtype=float))
        self.n_cols += 1
        if name:
            self.h.passColName(self.n_cols - 1, _safe_name(name))
        return self.n_cols - 1

    def set_row_bounds(self, row: int, lower: float, upper: float) -> None:
        self.h.changeRowBounds(int(row), float(lower), float(upper))

    def set_col_bounds(self, col: int, lower: float, upper: float) -> None:
        self.h.changeColBounds(int(col), float(lower), float(upper))

    def mark(self) -> tuple[int, int]:
        return self.h.getNumRow(), self.h.getNumCol()

    def reset(self, mark: tuple[int, int]) -> None:
        """Delete the rows and columns added since ``mark`` (policy stages), keeping the basis warm."""
        rows, cols = self.h.getNumRow(), self.h.getNumCol()
        if rows > mark[0]:
            self.h.deleteRows(rows - mark[0], np.arange(mark[0], rows, dtype=np.int32))
        if cols > mark[1]:
            self.h.deleteCols(cols - mark[1], np.arange(mark[1], cols, dtype=np.int32))
            self.n_cols = mark[1]

    def one_unit_vouched(self, rows: np.ndarray, stop: Callable[[], bool] | None = None
                         ) -> tuple[np.ndarray, np.ndarray] | None:
        """Per row (an upper-bounded capacity row), whether the final basis stays primal feasible with the row's
        bound one unit higher (``up``) and one unit lower (``down``); None without a basis.

        Where it does, the basis stays optimal (dual feasibility does not depend on bounds), so one unit that way
        changes the objective by exactly the row's dual (``models/formulation.md``, "When the shadow price is not
        unique"). A nonbasic row needs one solve with the basis matrix (how the basic variables, and the basic
        rows' activities, move per unit of its bound) and a ratio test on what moves; a basic row moves nothing:
        one more unit is free, one less is feasible only with a unit of slack. From ``BLOCK_SOLVE_MIN_ROWS``
        nonbasic rows, the solves go all together through the basis matrix's block triangular form
        (:class:`VouchAsk`: 4,410 rows of a 416k-column plan in ~1 s, where one HiGHS basis solve per row took
        3.1 s); below it, or should that form not be had (a singular block, which a basis cannot have), one
        HiGHS basis solve per row. ``stop``: asked between blocks of rows; when it says so, :class:`Stopped` is
        raised (the checks run on a thread of their own while the report is written, and the report gave up)."""
        return self.answer(self.vouch_ask(rows), stop)

    def answer(self, ask: VouchAsk | None, stop: Callable[[], bool] | None = None
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`one_unit_vouched`'s answer to a question already copied out (:meth:`vouch_ask`): the block
        solves where they apply, else (or should they fail) one HiGHS basis solve per row."""
        if ask is None:
            return None
        if ask.M is not None:
            try:
                return ask.decide(stop)
            except (np.linalg.LinAlgError, RuntimeError):  # a singular block, which a basis cannot have
                pass
        return ask.with_moves(self._moves_stay_feasible_one_by_one(ask.targets, stop))

    def vouch_ask(self, rows: np.ndarray) -> VouchAsk | None:
        """What :meth:`one_unit_vouched` asks of the basis, copied out of HiGHS (so that it can be decided on
        another core, in a copy of this process: :mod:`planner.solve.forked`); None without a basis. The basis
        matrix comes along only where the block solves apply (``BLOCK_SOLVE_MIN_ROWS``)."""
        h = self.h
        if not self._basis_matrix_held():
            return None
        require_headroom("HiGHS basis")
        rows = np.asarray(rows, dtype=np.int64)
        status = h.getBasis().row_status
        BASIC, UPPER = self._hs.HighsBasisStatus.kBasic, self._hs.HighsBasisStatus.kUpper
        st = [status[int(i)] for i in rows]
        basic_row = np.array([s == BASIC for s in st], dtype=bool)
        solve = np.flatnonzero(np.array([s == UPPER for s in st], dtype=bool))  # else: neither side vouched
        n_rows = h.getNumRow()
        _, _, row_lo, row_up, _ = h.getRows(n_rows, np.arange(n_rows, dtype=np.int32))
        act = np.asarray(h.getSolution().row_value)
        ask = VouchAsk(up=basic_row.copy(), down=basic_row & (row_up[rows] - act[rows] >= 1.0), solve=solve,
                       targets=rows[solve])
        if len(solve) >= BLOCK_SOLVE_MIN_ROWS:
            ask.M, ask.val, ask.lo, ask.hi = self._basis_parts(row_lo, row_up, act)
        return ask

    def _basis_parts(self, row_lo: np.ndarray, row_up: np.ndarray, act: np.ndarray):
        """The basis matrix ``M = [A_B, −I_R]`` (basic columns, then basic rows' activities: ``M z = e_r`` is
        how they move per unit of nonbasic row ``r``'s bound), with each unknown's value and bounds."""
        import scipy.sparse as sp

        h = self.h
        m = h.getNumRow()
        basic = np.asarray(h.getBasicVariables()[1])
        cols = np.sort(basic[basic >= 0]).astype(np.int32)  # HiGHS asks for an increasing set
        brows = np.sort(-basic[basic < 0] - 1)
        _, _, _, col_lo, col_up, _ = h.getCols(len(cols), cols)
        _, start, index, value = h.getColsEntries(len(cols), cols)
        a_b = sp.csc_matrix((value, index, np.append(start, len(index))), shape=(m, len(cols)))
        logicals = sp.csc_matrix((-np.ones(len(brows)), (brows, np.arange(len(brows)))), shape=(m, len(brows)))
        x = np.asarray(self.h.getSolution().col_value)[cols]
        val = np.concatenate([x, act[brows]])
        lo = np.concatenate([col_lo, row_lo[brows]])
        hi = np.concatenate([col_up, row_up[brows]])
        return sp.hstack([a_b, logicals], format="csc"), val, lo, hi

    def _moves_stay_feasible_one_by_one(self, rows: np.ndarray, stop: Callable[[], bool] | None
                                        ) -> tuple[np.ndarray, np.ndarray]:
        """``one_unit_vouched`` for nonbasic rows by one HiGHS basis solve per row (``B d = e_i``; HiGHS gives a
        basic row's entry as its logical's move, against its activity): the reference the block triangular
        path is tested against, and its fallback."""
        h = self.h
        n_rows = h.getNumRow()
        sol = h.getSolution()
        x, act = np.asarray(sol.col_value), np.asarray(sol.row_value)
        lp = h.getLp()
        basic = np.asarray(h.getBasicVariables()[1])
        is_row = basic < 0
        pos = np.where(is_row, -basic - 1, basic)
        val, lo, hi = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
        for sel, v, low, upper in ((is_row, act, lp.row_lower_, lp.row_upper_),
                                   (~is_row, x, lp.col_lower_, lp.col_upper_)):
            val[sel], lo[sel], hi[sel] = v[pos[sel]], np.asarray(low)[pos[sel]], np.asarray(upper)[pos[sel]]
        sign = np.where(is_row, -1.0, 1.0)  # a basic row's activity moves against its logical
        room_up, room_down = _room(val, lo, hi)
        up = np.zeros(len(rows), dtype=bool)
        down = np.zeros(len(rows), dtype=bool)
        e = np.zeros(n_rows)
        for k, i in enumerate(rows):
            if stop is not None and stop():
                raise Stopped("capacity price checks stopped")
            e[i] = 1.0
            require_headroom("HiGHS basis solve")
            d = np.asarray(h.getBasisSolve(e)[1])
            e[i] = 0.0
            nz = np.flatnonzero(d)
            dv = sign[nz] * d[nz]
            for step, out in ((1.0, up), (-1.0, down)):
                out[k] = bool(np.all(step * dv <= room_up[nz]) and np.all(-step * dv <= room_down[nz]))
        return up, down

    def _basis_matrix_held(self) -> bool:
        """Whether HiGHS holds a basis to solve with. A valid basis is not enough: HiGHS 1.16 solves an LP with no
        matrix entries (after dropping those below its ``small_matrix_value``, 1e-9) without its simplex, and
        ``getBasicVariables`` then reads a basis matrix it never built — a segmentation fault (seen on random
        small LPs, ``tests/test_pivots.py``)."""
        return bool(self.h.getBasis().valid) and self.h.getNumNz() > 0

    def pivot_pricer(self):
        """A :class:`planner.solve.pivots.PivotPricer` on the basis HiGHS holds now (to price capacity sides the
        basis alone cannot, by one proved dual simplex pivot each, before anything re-solves); None without a
        basis, or where the basis does not read as optimal to it."""
        from planner.solve.pivots import PivotPricer

        if not self._basis_matrix_held():
            return None
        pivot = PivotPricer(self.h)
        return pivot if pivot.ok else None

    def warm_primal(self, on: bool) -> None:
        """Primal simplex from the current basis (``on``), or back to the session's own method.

        For a stage that keeps the last solution feasible and the objective unchanged (a fair-share round that
        relaxes rows and adds holds the last solution meets): a few primal pivots, where interior point starts
        from scratch (measured on a 41,613-column plan: 0.05–1.6 s per round against 1.5–4 s) and dual simplex
        restarts far from the optimum (127 s for the whole policy against 55 s)."""
        if on:
            self.h.setOptionValue("solver", "simplex")
            self.h.setOptionValue("simplex_strategy", 4)  # primal
        else:
            self.h.setOptionValue("solver", "ipm" if self.method == "ipm" else "simplex")
            self.h.setOptionValue("simplex_strategy", 1)  # dual (the default)

    def basis(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The current basis as two small int arrays (column, row status; HiGHS's codes), picklable, so that a
        re-solve of a variant on another thread, process or cluster worker can start from it; None if invalid."""
        return self.basis_snapshot()()

    def basis_snapshot(self) -> Callable[[], tuple[np.ndarray, np.ndarray] | None]:
        """The current basis, kept as HiGHS's own copy (microseconds); calling the result makes :meth:`basis`'s
        arrays from it (a tenth of a second at 416k columns), whatever the session has solved since."""
        b = self.h.getBasis()

        def arrays() -> tuple[np.ndarray, np.ndarray] | None:
            if not b.valid:
                return None
            return (np.array([s.value for s in b.col_status], dtype=np.int8),
                    np.array([s.value for s in b.row_status], dtype=np.int8))
        return arrays

    def set_basis(self, basis: tuple[np.ndarray, np.ndarray]) -> bool:
        """Start the next run from ``basis`` (from :meth:`basis`, possibly of a variant); False if HiGHS refuses it."""
        hs = self._hs
        codes = list(hs.HighsBasisStatus.__members__.values())
        b = hs.HighsBasis()
        b.col_status = [codes[int(c)] for c in basis[0]]
        b.row_status = [codes[int(c)] for c in basis[1]]
        b.valid = True
        return self.h.setBasis(b) == hs.HighsStatus.kOk

    def use_simplex(self) -> None:
        """Switch to dual simplex for re-solves: it restarts from the current basis, interior point does not."""
        if self.method != "simplex":
            self.h.setOptionValue("solver", "simplex")
            self.method = "simplex"

    def run(self, values: bool = True) -> RunResult:
        """Solve from the current basis if HiGHS holds one, else from scratch; ``values=False``: the status and
        objective only, without copying the solution out (~15 ms at 416k columns, for the price re-solves). Whether it holds one is asked of
        HiGHS, not tracked here: a basis handed to ``self.h`` directly (the batches' WarmStarter) starts a run
        just the same. A warm run that ends in an error status (HiGHS's "Unknown": seen on a fair-share stage of
        a 12-platform plan, whose LP solved from scratch) is solved once more from scratch, so one bad start does
        not cost an analysis its answer."""
        warm = bool(self.h.getBasis().valid)
        res = self._run_once(warm, values)
        if res.status == "error" and warm:
            self.h.clearSolver()  # drop the basis and factorisation; the model and options stay
            res = self._run_once(False, values)
        return res

    def objective_now(self) -> float:
        """The objective HiGHS reports for its current solution (no copy of the solution)."""
        return float(self.h.getInfo().objective_function_value)

    def _run_once(self, warm: bool, values: bool = True) -> RunResult:
        hs = self._hs
        if self.time_limit:  # HiGHS 1.x measures time_limit against its clock since the first run of this object
            # (cumulative; ERGO-Code/HiGHS#1477): a kept session's tenth re-solve must get the limit, not the rest
            self.h.setOptionValue("time_limit", self.h.getRunTime() + self.time_limit)
        require_headroom("HiGHS run")
        primal = self.h.getOptionValue("simplex_strategy")[1] == 4
        if primal and not warm:
            # warm_primal's premise (a basis whose solution stays feasible) does not hold: no basis (a retry
            # from scratch after an error, a session whose basis was cleared). The primal simplex from scratch
            # could run for minutes on an LP the dual solves in a second (seen: 7,448 columns, a fair-share
            # stage of an explanation's lifted plan, still running after 200 s; the dual took 17 s and ended
            # "Unknown"): from scratch it is the session's own method, as warm_primal(False) would set it
            self.warm_primal(False)
            try:
                return self._run_once(warm, values)
            finally:
                self.warm_primal(True)
        pert = WARM_PERTURBATION if warm else 1.0  # from scratch, HiGHS's own
        self._perturb(pert)
        guard = warm and pert == 0.0  # unperturbed: a stall at a degenerate vertex would never end
        self.h.setOptionValue("simplex_iteration_limit", self._stall_pivots() if guard else NO_ITERATION_LIMIT)
        self.h.setOptionValue("ipm_iteration_limit", IPM_ITERATION_LIMIT)
        self._call_run()
        if self.h.getModelStatus() == hs.HighsModelStatus.kIterationLimit:
            # a run that would not end. Seen: interior point on a fair-share stage of an explanation's lifted plan
            # (objective 0: the relative gap stayed at 4e-8, above its 1e-8, for 136,000 iterations, until
            # stopped after 21 minutes); an unperturbed simplex can stall likewise at a degenerate vertex. Then the
            # simplex, perturbed as HiGHS perturbs it, with no limit (it ends: that is what the perturbation is
            # for): a stalled simplex from the basis where it stopped; interior point keeps no basis (HiGHS holds
            # none after its iteration limit), so after it the simplex starts from scratch
            ipm = self.h.getOptionValue("solver")[1] == "ipm"  # (status, value)
            self._perturb(1.0)
            self.h.setOptionValue("simplex_iteration_limit", NO_ITERATION_LIMIT)
            if ipm:
                self.h.setOptionValue("solver", "simplex")
            try:
                self._call_run()
            finally:
                if ipm:
                    self.h.setOptionValue("solver", "ipm")
        st = self.h.getModelStatus()
        S = hs.HighsModelStatus
        status = {S.kOptimal: "optimal", S.kInfeasible: "infeasible", S.kUnbounded: "unbounded",
                  S.kTimeLimit: "time_limit", S.kUnboundedOrInfeasible: "infeasible"}.get(st, "error")
        info = self.h.getInfo()
        has_primal = info.primal_solution_status == 2  # kSolutionStatusFeasible
        if not values and status == "optimal":
            return RunResult(status, float(info.objective_function_value))
        if status == "optimal" or (status == "time_limit" and has_primal):
            sol = self.h.getSolution()
            x = np.asarray(sol.col_value)
            dual = np.asarray(sol.row_dual) if sol.dual_valid else None
            return RunResult(status, float(info.objective_function_value), x, dual)
        return RunResult(status, message=self.h.modelStatusToString(st))

    def _perturb(self, multiplier: float) -> None:
        self.h.setOptionValue("dual_simplex_cost_perturbation_multiplier", multiplier)
        self.h.setOptionValue("primal_simplex_bound_perturbation_multiplier", multiplier)

    def _stall_pivots(self) -> int:
        """Pivots an unperturbed warm run may take before it counts as stalled: far more than any warm re-solve
        was measured to need (R&D shifts at 476k columns: 42-136; a policy's stages from the base basis: a few
        thousand), and few enough that a stall costs seconds, not the analyst's afternoon."""
        return max(STALL_MIN_PIVOTS, 2 * self.h.getNumRow())

    def _call_run(self) -> None:
        try:
            self.h.run()
        except RuntimeError as exc:
            if "Resource temporarily unavailable" not in str(exc):  # a crash inside the solver library
                raise SolverError(f"HiGHS failed ({type(exc).__name__}: {exc}); try --solver cbc") from exc
            # HiGHS could not start its worker threads (a thread or memory limit): solve on this thread alone
            self.h.setOptionValue("threads", 1)
            try:
                self.h.run()
            except RuntimeError as again:
                raise OSError(errno.EAGAIN, f"HiGHS could not start a thread ({again})") from again
        except Exception as exc:  # a crash inside the solver library: name the way out
            if out_of_memory(exc):
                raise
            raise SolverError(f"HiGHS failed ({type(exc).__name__}: {exc}); try --solver cbc") from exc


@dataclass
class VouchAsk:
    """:meth:`HighsSession.one_unit_vouched`'s question as plain arrays, without HiGHS: the answers known from
    the basis status alone (basic rows), and, for the nonbasic rows at their bound (``solve`` positions,
    ``targets`` rows), the basis matrix and each basic unknown's value and bounds when the block solves apply."""

    up: np.ndarray
    down: np.ndarray
    solve: np.ndarray
    targets: np.ndarray
    M: object = None  # scipy.sparse.csc_matrix
    val: np.ndarray | None = None
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def with_moves(self, moves: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The answers, with the targets' (one up, one down) filled in."""
        up, down = self.up.copy(), self.down.copy()
        up[self.solve], down[self.solve] = moves
        return up, down

    def decide(self, stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every target's answer through the block triangular form (:mod:`planner.solve.basis_solve`)."""
        from threadpoolctl import threadpool_limits


        # one BLAS thread: SuperLU's solves of the larger blocks call BLAS, whose second thread only fights the
        # report's Python for the other core (measured at 416k columns with the machine busy: 1.1–1.4 s with
        # one thread, 4.0–4.6 s with OpenBLAS's two)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._decide(stop)

    def _decide(self, stop: Callable[[], bool] | None) -> tuple[np.ndarray, np.ndarray]:
        from planner.solve.basis_solve import BlockTriangular

        bt = BlockTriangular(self.M)
        room_up, room_down = _room(self.val, self.lo, self.hi)
        room_up, room_down = room_up[bt.unknown], room_down[bt.unknown]  # in the layout of the solutions
        up = np.zeros(len(self.targets), dtype=bool)
        down = np.zeros(len(self.targets), dtype=bool)
        for part, y in bt.unit_columns(self.targets):
            if stop is not None and stop():
                raise Stopped("capacity price checks stopped")
            reach = max(float(y.max(initial=0.0)), -float(y.min(initial=0.0)))
            bad_up = np.zeros(y.shape[1], dtype=bool)  # one unit up moves val by +d, one down by −d
            bad_down = np.zeros(y.shape[1], dtype=bool)
            # each test asks "within room?" and flags what is not, so that a NaN anywhere (which fails every
            # comparison) counts as crossing a bound, never as vouching for a side
            for room, sign in ((room_up, 1.0), (room_down, -1.0)):  # up: d ≤ room_up, −d ≤ room_down
                near = np.flatnonzero(~(room >= reach))
                if not len(near):
                    continue
                d = y[near]
                lim = room[near][:, None]
                bad_up |= (~(sign * d <= lim)).any(axis=0)  # the unit up
                bad_down |= (~(-sign * d <= lim)).any(axis=0)  # the unit down
            up[part], down[part] = ~bad_up, ~bad_down
        return self.with_moves((up, down))


# ---- PuLP (CBC and others) -----------------------------------------------------------------------------------
def to_pulp(lp: LinearProgram, c: np.ndarray | None = None, name: str = "planner"):
    """The same LP as a PuLP problem (variables and constraints named ``<label>_<n>``).

    Built from (variable, coefficient) pairs per row, which is much faster than ``lpSum`` over generators.
    Rows with two finite, different bounds become two constraints (``..._lo`` and ``..._hi``).
    """
    import pulp

    prob = pulp.LpProblem(name, pulp.LpMaximize)
    cl, cu, rl, ru = lp.bounds()
    names = lp.col_names()
    variables = [_new_var(prob, n, lo, hi) for n, lo, hi in zip(names, cl, cu, strict=True)]
    c = lp.objective() if c is None else c
    prob.setObjective(pulp.LpAffineExpression([(variables[j], c[j]) for j in np.nonzero(c)[0]]))
    A = lp.matrix().tocsr()
    row_names = lp.row_names()
    cons: list[list] = []
    for i in range(lp.n_rows):
        lo, hi = A.indptr[i], A.indptr[i + 1]
        expr = pulp.LpAffineExpression([(variables[j], v) for j, v in zip(A.indices[lo:hi], A.data[lo:hi],
                                                                           strict=True)])
        cons.append(_add_bounded(prob, expr, rl[i], ru[i], row_names[i]))
    return prob, variables, cons


def _new_var(prob, name: str, lower: float, upper: float):
    """PuLP ≥ 3.3 attaches variables to the problem (``add_variable``); older versions construct them."""
    import pulp

    lo = None if np.isinf(lower) else float(lower)
    hi = None if np.isinf(upper) else float(upper)
    if hasattr(prob, "add_variable"):
        return prob.add_variable(name, lowBound=lo, upBound=hi)
    return pulp.LpVariable(name, lowBound=lo, upBound=hi)


def _cbc_command(**kwargs):
    """A CBC installed beside PuLP (``pulp[cbc]``) if present, else the binary PuLP ships."""
    import warnings

    import pulp

    coin = pulp.COIN_CMD(**kwargs)
    if coin.available():
        return coin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(**kwargs)


def _add_bounded(prob, expr, lower: float, upper: float, name: str) -> list:
    import pulp

    out = []
    if np.isfinite(lower) and np.isfinite(upper) and lower == upper:
        c = pulp.LpConstraint(expr, pulp.LpConstraintEQ, name, float(lower))
        prob += c
        out.append((c, 1.0))
        return out
    if np.isfinite(lower):
        c = pulp.LpConstraint(expr, pulp.LpConstraintGE, name + ("_lo" if np.isfinite(upper) else ""), float(lower))
        prob += c
        out.append((c, 1.0))
    if np.isfinite(upper):
        c = pulp.LpConstraint(expr, pulp.LpConstraintLE, name + ("_hi" if np.isfinite(lower) else ""), float(upper))
        prob += c
        out.append((c, 1.0))
    return out


def _safe_name(name: str) -> str:
    """A stage row's label as an LP-file name (platform ids may hold spaces and punctuation)."""
    import re

    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _drop_constraint(prob, name: str) -> None:
    """Remove a constraint from a PuLP problem (PuLP 3.3 has no public call for it; its dict view is deprecated)."""
    store = getattr(prob, "_constraints", None)
    if store is None:  # pragma: no cover - older PuLP keeps a plain dict
        store = prob.constraints
    store.pop(name, None)


class PulpSession:
    """Any PuLP solver (CBC by default). PuLP re-solves by writing the whole model again: fine for CBC."""

    def __init__(self, lp: LinearProgram, solver: str = "cbc", time_limit: float | None = None):
        import pulp

        self._pulp = pulp
        self.name = solver
        self.method = "simplex"
        self.prob, self.vars, self.cons = to_pulp(lp)
        self.n_rows = lp.n_rows
        self.row_names = lp.row_names()
        self.n_model_cols = lp.n_cols
        self._free: dict[int, object] = {}  # expression of each row whose bounds were set to (−∞, ∞)
        kwargs = {"msg": False}
        if time_limit:
            kwargs["timeLimit"] = float(time_limit)
        if solver == "cbc":
            self.cmd = _cbc_command(**kwargs)
        else:
            self.cmd = pulp.getSolver(solver, **kwargs)
        if not self.cmd.available():
            raise SolverError(f"solver {solver!r} is not available on this machine; use solver = highs")
        self.time_limit = time_limit

    def set_objective(self, c: np.ndarray) -> None:
        """Nonzero costs, plus every column a stage added (cost 0 included): a column in no constraint and not
        in the objective is written to CBC's input with a bound only, which CBC rejects."""
        pulp = self._pulp
        cols = np.union1d(np.nonzero(c)[0], np.arange(self.n_model_cols, len(c)))
        self.prob.setObjective(pulp.LpAffineExpression([(self.vars[j], float(c[j])) for j in cols]))

    def add_row(self, cols: np.ndarray, vals: np.ndarray, lower: float, upper: float, name: str = "") -> int:
        pulp = self._pulp
        expr = pulp.LpAffineExpression([(self.vars[j], v) for j, v in zip(cols, vals, strict=True)])
        name = _safe_name(name) or f"row_{len(self.cons)}"
        self.row_names.append(name)
        self.cons.append(_add_bounded(self.prob, expr, lower, upper, name))
        return len(self.cons) - 1

    @property
    def n_cols(self) -> int:
        return len(self.vars)

    def set_row_bounds(self, row: int, lower: float, upper: float) -> None:
        """New bounds for a row: its constraints are replaced (a free row has none; its dual reads 0)."""
        group = self.cons[row]
        if group:
            expr = self._pulp.LpAffineExpression([(v, a) for v, a in group[0][0].expr.items()])
        else:  # a relaxed row keeps its expression here, so it can be bounded again
            expr = self._free[row]
        for con, _ in group:
            _drop_constraint(self.prob, con.name)
        self.cons[row] = _add_bounded(self.prob, expr, lower, upper, self.row_names[row])
        if not self.cons[row]:
            self._free[row] = expr

    def set_col_bounds(self, col: int, lower: float, upper: float) -> None:
        v = self.vars[col]
        v.lowBound = None if np.isinf(lower) else float(lower)
        v.upBound = None if np.isinf(upper) else float(upper)

    def add_col(self, cost: float, lower: float, upper: float, rows: np.ndarray, vals: np.ndarray,
                name: str = "") -> int:
        v = _new_var(self.prob, _safe_name(name) or f"extra_{len(self.vars)}", lower, upper)
        self.vars.append(v)
        for r, a in zip(rows, vals, strict=True):
            for con, _ in self.cons[r]:
                con.addterm(v, a)
        obj = self.prob.objective
        obj.addterm(v, cost)
        return len(self.vars) - 1

    def run(self) -> RunResult:
        pulp = self._pulp
        try:
            self.prob.solve(self.cmd)
        except pulp.PulpSolverError as exc:
            raise SolverError(f"{self.name} failed: {exc}; try solver = highs") from exc
        st = pulp.LpStatus[self.prob.status]
        if st == "Optimal":
            x = np.array([v.varValue or 0.0 for v in self.vars])
            # PuLP reports CBC's duals of a maximisation as d(objective)/d(bound) already (checked on a
            # one-row case in tests/test_model.py::test_shadow_price_sign).
            dual = np.array([sum((con.pi or 0.0) for con, _ in group) for group in self.cons])
            obj = float(pulp.value(self.prob.objective) or 0.0)
            return RunResult("optimal", obj, x, dual)
        status = {"Infeasible": "infeasible", "Unbounded": "unbounded"}.get(st)
        if status is None:
            status = "time_limit" if self.time_limit else "error"
        return RunResult(status, message=f"{self.name}: {st}")


def make_session(lp: LinearProgram, solver: str = "highs", time_limit: float | None = None,
                 method: str = "auto") -> Session:
    if solver == "highs":
        return HighsSession(lp, time_limit=time_limit, method=method)
    return PulpSession(lp, solver=solver, time_limit=time_limit)
