"""The objective one unit of a capacity past the final basis's reach, by a few dual simplex pivots.

A capacity row's dual is the objective's change per unit of its bound only while the final basis stays primal
feasible (``models/formulation.md``, "When the shadow price is not unique"). Where one unit more (or less) drives a
basic variable through one of its bounds at a step ``t < 1``, the value of the whole unit was a warm re-solve of
the LP with the bound moved: ~60 ms each at 416k columns, nearly all of it HiGHS's fixed cost of a run (the
re-solve itself is a pivot or two). This module does those pivots itself — the parametric dual simplex: move the
bound until a basic variable reaches one of its bounds, pivot it out (the dual ratio test picks what enters, so
that the basis stays dual feasible), go on with the new basis for the rest of the unit — with HiGHS's
factorisation of the final basis and one eta vector per pivot (per pivot: two basis solves and one pass over the
matrix). The answer is proved before it is given: each basis it passes is dual feasible (every nonbasic reduced
cost checked against the updated costs) and primal feasible over its part of the unit (every basic value
checked), and each new slope is read two ways (primal: the costs of what moves; dual: the updated dual) that must
agree. Where the proof fails — more than ``MAX_PIVOTS`` pivots, a pivot element too small to trust, nothing can
enter (one unit that way leaves the LP infeasible) — it answers nothing and the caller re-solves.

Conventions (HiGHS's LP, maximised): variables are the columns ``x`` and the rows' activities ``s = A x``;
the basis matrix is ``M = [A_B, −I_R]`` over basic columns and basic rows' activities; with nonbasic row ``r``
at its upper bound, a unit more of the bound moves the basic values by ``z = M⁻¹ e_r`` (HiGHS's own basis matrix
holds ``+e_i`` for a row's logical, ``−`` its activity, hence the sign flips ``D``); reduced costs
``d = c − yᵀ[A, −I]`` with ``y = M⁻ᵀ c_B``; at the optimum a nonbasic variable at its lower bound has ``d ≤ 0``
and at its upper ``d ≥ 0``.
"""

from __future__ import annotations

import numpy as np

from planner.exhaustion import require_headroom

PIVOT_TOL = 1e-7  # the pivot element the answer may rest on (HiGHS's own pivot threshold is of this order)
DUAL_TOL = 1e-7  # reduced costs: this far on the wrong side (relative to the largest cost) is still optimal
ROOM_TOL = 1e-9  # a basic variable may end this far past a bound over one unit and still count as within it
MAX_PIVOTS = 4  # per side; past that a warm re-solve (HiGHS's ~60 ms fixed cost at 416k) is as cheap
PIVOT_BUDGET = 200  # pivots in all, per final basis (~1.6 s at 416k columns): a plan whose every binding row needs
# pivots gets its largest priced this way, the rest re-solved or "not checked" as before, never a long wait


def room(val: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far each basic variable may move up and down and stay within its bounds, up to ``ROOM_TOL`` past the
    bound (±inf for an infinite bound). Measured from the value clipped into its bounds: a basic variable a hair
    beyond a bound (round-off of the solve, far inside HiGHS's 1e-7 feasibility tolerance) is at that bound,
    so a move of round-off size (the block solves leave 1e-16 where HiGHS's own leave an exact 0) is no move.
    The tolerance is absolute, not relative to the bound: it bounds a *move*, whose round-off does not grow with
    the bound's size. Relative (1e-9 of the bound, as it was), a variable degenerate at a bound of 10⁶ could move
    10⁻³ past it per unit: one more unit was vouched for (or priced by the pivots) at the full dual where moving
    it at all needs a pivot, and HiGHS's re-solve said 0 (``tests/test_pivots.py``)."""
    with np.errstate(invalid="ignore"):
        at = np.clip(val, lo, hi)
        room_up = hi - at + ROOM_TOL
        room_down = at - lo + ROOM_TOL
    return room_up, room_down


class PivotPricer:
    """Prices capacity sides by a few proved dual simplex pivots from the final basis; made once per basis (the
    final one, held in ``h``: nothing may re-solve between this and the last :meth:`change`), then asked per
    side. Copies the LP and solution out of HiGHS once (~0.15 s at 416k columns)."""

    def __init__(self, h) -> None:
        import scipy.sparse as sp

        require_headroom("HiGHS basis")
        self.h = h
        lp = h.getLp()
        n, m = lp.num_col_, lp.num_row_
        self.n, self.m = n, m
        am = lp.a_matrix_
        self.A = sp.csc_matrix((np.asarray(am.value_), np.asarray(am.index_), np.asarray(am.start_)), shape=(m, n))
        sol = h.getSolution()
        self.c = np.concatenate([np.asarray(lp.col_cost_), np.zeros(m)])
        self.lo = np.concatenate([np.asarray(lp.col_lower_), np.asarray(lp.row_lower_)])
        self.hi = np.concatenate([np.asarray(lp.col_upper_), np.asarray(lp.row_upper_)])
        val = np.concatenate([np.asarray(sol.col_value), np.asarray(sol.row_value)])
        basic = np.asarray(h.getBasicVariables()[1])
        self.var = np.where(basic >= 0, basic, n - basic - 1)  # basis position -> variable (rows after columns)
        self.D = np.where(basic >= 0, 1.0, -1.0)  # HiGHS's basis column for a row is its logical: −activity
        with np.errstate(invalid="ignore"):
            self.at = np.clip(val, self.lo, self.hi)  # a hair past a bound (round-off) is at it
        nonbasic = np.ones(n + m, dtype=bool)
        nonbasic[self.var] = False
        fixed = self.lo == self.hi
        at_lower = np.abs(self.at - self.lo) <= np.abs(self.at - self.hi)  # nonbasic values sit on a bound
        free = np.isinf(self.lo) & np.isinf(self.hi)
        self.cand_lower = nonbasic & ~fixed & ~free & at_lower & np.isfinite(self.lo)
        self.cand_upper = nonbasic & ~fixed & ~free & ~self.cand_lower
        self.cand_free = nonbasic & free
        cB = self.c[self.var]
        self.y = np.asarray(h.getBasisTransposeSolve(self.D * cB)[1])
        self.d = self.c - np.concatenate([self.A.T @ self.y, -self.y])
        self.scale = max(1.0, float(np.abs(self.c).max(initial=0.0)))
        self.pivots = 0  # done so far, all sides together (PIVOT_BUDGET)
        self.why = ""
        # the final basis is optimal, as this module reads it
        self.ok = _dual_feasible(self.d, self.cand_lower, self.cand_upper, self.cand_free, DUAL_TOL * self.scale)


    def _solve(self, b: np.ndarray, etas: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """``M_k⁻¹ b`` for the basis after the pivots ``etas``: HiGHS's solve with the final basis, then each
        pivot's eta (position ``p`` now holds what entered; ``w`` its column in the basis before)."""
        x = self.D * np.asarray(self.h.getBasisSolve(b)[1])
        for p, w in etas:
            xp = x[p] / w[p]
            x -= w * xp
            x[p] = xp
        return x

    def _solve_t(self, p: int, etas: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """Row ``p`` of ``M_k⁻¹``: ``e_pᵀ E_k … E_1 M⁻¹``."""
        u = np.zeros(self.m)
        u[p] = 1.0
        for q, w in reversed(etas):
            uq = u[q]
            u[q] = 0.0
            u[q] = (uq - w @ u) / w[q]
        return np.asarray(self.h.getBasisTransposeSolve(self.D * u)[1])

    def change(self, row: int, step: float) -> float | None:
        """The objective's exact change with row ``row``'s upper bound moved by ``step`` (±1), or None where
        ``MAX_PIVOTS`` proved pivots do not get there (the caller re-solves; :attr:`why` says what stopped it)."""
        n, m = self.n, self.m
        self.why = ""
        k = n + row
        if not self.ok:
            return self._refuse("the final basis does not read as optimal")
        if step < 0 and not self.lo[k] <= self.hi[k] - 1.0:
            return self._refuse("one less would cross the row's lower bound")
        var, d = self.var.copy(), self.d.copy()
        lo, hi, v, cB = self.lo[var], self.hi[var], self.at[var].copy(), self.c[var]
        cand_lower, cand_upper, cand_free = self.cand_lower.copy(), self.cand_upper.copy(), self.cand_free
        etas: list[tuple[int, np.ndarray]] = []
        out_at: dict[int, float] = {}  # where a variable that left the basis sits: the bound it left at
        left, change = 1.0, 0.0
        basic_at = np.flatnonzero(var == k)
        if len(basic_at):  # a basic row: its bound moves nothing until it reaches the row's activity
            p = int(basic_at[0])
            t = (self.hi[k] - self.at[k]) if step < 0 else np.inf
            if t >= 1.0:
                return 0.0
            z = np.zeros(m)
            z[p] = -1.0  # M⁻¹ e_r: the row's activity is basic at p, its column −e_r
            slope, sigma = 0.0, -1.0  # it leaves at its (moving) upper bound
        elif self.cand_upper[k]:  # a nonbasic row at its bound: the basic values move with it
            z = self._solve(_unit(m, row), etas)
            slope = float(cB @ z)
            p, t, sigma = self._block(step * z, v, lo, hi)
        else:
            return self._refuse("the row is not at its upper bound")
        for _ in range(MAX_PIVOTS + 1):
            if t >= left:  # this basis carries the rest of the unit
                return change + step * left * slope
            if len(etas) == MAX_PIVOTS:
                return self._refuse(f"more than {MAX_PIVOTS} pivots")
            if self.pivots >= PIVOT_BUDGET:
                return self._refuse(f"the {PIVOT_BUDGET} pivots of the budget are spent")
            self.pivots += 1
            change += step * t * slope
            v += step * t * z
            left -= t
            # the dual ratio test: what enters as var[p] leaves at its lower (σ = +1) or upper (σ = −1) bound
            rho = self._solve_t(p, etas)
            alpha = np.concatenate([self.A.T @ rho, -rho])
            sa = sigma * alpha
            with np.errstate(divide="ignore", invalid="ignore"):
                lower = cand_lower & (sa < -PIVOT_TOL)
                upper = cand_upper & (sa > PIVOT_TOL)
                free = cand_free & (np.abs(alpha) > PIVOT_TOL)
                tau = np.full(n + m, np.inf)
                tau[lower] = np.maximum(-d[lower], 0.0) / -sa[lower]
                tau[upper] = np.maximum(d[upper], 0.0) / sa[upper]
                tau[free] = 0.0
            q = int(np.argmin(tau))
            if not np.isfinite(tau[q]):
                return self._refuse("nothing can enter: that way the LP is infeasible")
            if q == k and step < 0:  # its activity basic at a bound still moving down past it: at once again
                return self._refuse("the row itself would enter")
            theta = sigma * float(tau[q])
            left_var = int(var[p])
            d = d - theta * alpha
            d[q] = 0.0
            d[left_var] = -theta  # its reduced cost, on its side by the choice of σ
            cand_lower[q] = cand_upper[q] = False
            if self.lo[left_var] != self.hi[left_var]:
                (cand_lower if sigma > 0 else cand_upper)[left_var] = True
            out_at[left_var] = float(lo[p] if sigma > 0 else hi[p])
            # the dual side of the proof: every nonbasic reduced cost on its side
            if not _dual_feasible(d, cand_lower, cand_upper, cand_free, DUAL_TOL * self.scale):
                return self._refuse("a reduced cost crosses zero")
            w = self._solve(_column(self.A, q, m), etas)
            if not abs(w[p]) > PIVOT_TOL or abs(w[p] - alpha[q]) > 1e-6 * max(1.0, abs(alpha[q])):
                return self._refuse("the pivot element is too small or disagrees between the two solves")
            if q == k:  # one more: the row leaves the binding set; its bound only moves away from its activity, so
                # this basis (dual feasible: checked; primal: the values stand still) stays optimal: the rest is free
                return change
            etas.append((p, w))
            zp = z[p] / w[p]
            z = z - w * zp
            z[p] = zp  # position p now holds q
            var[p] = q
            v[p] = out_at.get(q, self.at[q])
            lo, hi, cB = lo.copy(), hi.copy(), cB.copy()
            lo[p], hi[p], cB[p] = self.lo[q], self.hi[q], self.c[q]
            slope_dual = slope + theta * rho[row]
            slope = float(cB @ z)
            if abs(slope - slope_dual) > 1e-6 * max(1.0, abs(slope), abs(slope_dual)):
                return self._refuse("the primal and dual readings of the new slope disagree")
            # the primal side: from here the rest of the unit moves the new basis by z; it may go as far as the
            # first basic value to reach a bound (none past one already: a value beyond is blocked at once)
            p, t, sigma = self._block(step * z, v, lo, hi)
        return self._refuse(f"more than {MAX_PIVOTS} pivots")  # not reached: the loop returns

    @staticmethod
    def _block(g: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[int, float, float]:
        """The primal ratio test: basic values move by ``g`` per unit; the first to reach a bound (position),
        after how much of a unit, and which bound (σ: +1 lower, −1 upper). A move within the vouching's
        tolerance of a bound over a whole unit is no move; a value already past a bound blocks at once."""
        room_up, room_down = room(v, lo, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            # NaN compares False: it blocks; where each reaches its bound (exactly: the tolerance is no part
            # of the step)
            blocks = ~(np.where(g > 0, room_up / g, np.where(g < 0, room_down / -g, np.inf)) >= 1.0)
            exact = np.where(g > 0, (hi - v) / g, (lo - v) / g)
        exact = np.where(blocks, np.where(exact >= 0, exact, 0.0), np.inf)
        p = int(np.argmin(exact))
        return p, float(exact[p]), (1.0 if g[p] < 0 else -1.0)

    def _refuse(self, why: str) -> None:
        self.why = why
        return None


def _dual_feasible(d: np.ndarray, lower: np.ndarray, upper: np.ndarray, free: np.ndarray, tol: float) -> bool:
    return bool(np.all(d[lower] <= tol) and np.all(d[upper] >= -tol) and np.all(np.abs(d[free]) <= tol))


def _unit(m: int, i: int) -> np.ndarray:
    e = np.zeros(m)
    e[i] = 1.0
    return e


def _column(A, j: int, m: int) -> np.ndarray:
    """Column ``j`` of ``[A, −I]``, dense."""
    col = np.zeros(m)
    n = A.shape[1]
    if j < n:
        a, b = A.indptr[j], A.indptr[j + 1]
        col[A.indices[a:b]] = A.data[a:b]
    else:
        col[j - n] = -1.0
    return col
