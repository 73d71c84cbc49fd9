"""Why each platform falls short: shortfall attributed to causes, unit by unit (``models/explain.md``).

Method, in short: a cause *family* (R&D gate, yield ramp, fab capacity, back-end capacity, policy) can be
*lifted* — gates opened, ramps at mature yield, capacities unbounded, the policy reduced to plain margin
without other platforms' minimums. For every subset of families we re-solve with those families lifted and
read every platform's shortfall per quarter; the Shapley value of each family then splits each (platform,
quarter) shortfall among the families, fairly where they interact. What remains with every family lifted is
``horizon_start`` (nothing started inside the horizon lands in time) or ``economics`` (serving does not pay even
with free capacity, open gates and mature yields).

A share is kept only where its sentence is true of the plan (the *truth conditions* of ``models/explain.md``:
a fab is full in a start quarter that feeds the platform's quarter, a ramp factor is below 1 there, a gate
closes a start that would land in time, ...); shares whose condition fails go to the causes whose condition
holds, so the rows of one (platform, quarter) still add up to its shortfall. Within a family the units are
split among its resources (which fab, which program) by the base plan's shadow prices.

Re-solves reuse one HiGHS model: a lift is a change of bounds or coefficients, and the subsets are visited in
Gray-code order so each step toggles one family and starts from the previous basis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from planner.analysis.resolves import PlanMemo, Runner, Scope, change, overtime, tracked, untracked
from planner.analysis.results import Results, platform_service
from planner.exhaustion import out_of_memory
from planner.io.validate import PlanData
from planner.model.build import Model, build_model
from planner.report.fmt import lateness, money, signed_money, signed_units, span, units
from planner.solve.policy import run_policy
from planner.solve.sessions import HighsSession
from planner.solve.warm import Basis, gated_basis

FAMILIES = ("rd_gate", "yield_ramp", "fab_capacity", "backend_capacity", "policy", "frozen_zone")  # players
CAUSES = ("rd_gate", "yield_ramp", "fab_capacity", "backend_capacity", "frozen_zone", "horizon_start", "economics",
          "policy")
CAPACITY = ("fab_capacity", "backend_capacity")
COLUMNS = ["platform", "period", "shortfall", "cause", "resource", "units", "competitors", "explanation"]
TOL = 1e-6
EXACT_MAX_COLS = 2_000  # above this (and with more than EXACT_MAX_FAMILIES) the late-order estimate is used
EXACT_MAX_FAMILIES = 3
FIRST_MAX_COLS = 50_000  # up to this, the estimate also lifts each family alone (first): closer, and cheap there
MAX_LEVERS = 10
# lifts solved from the base plan's optimal basis, and how (HiGHS simplex_strategy: 1 dual, 4 primal); measured
# at 86k columns against interior point from scratch, and at 476k without the simplex's perturbation (policy
# alone: dual 3.5 s, primal 12.0 s; models/explain.md, "What it costs")
WARM_LIFTS = {("policy",): 1, ("rd_gate",): 1}
PREFETCH = True  # the estimate's lifts during the base solve (:class:`Prefetch`); off: benchmarks compare


class ExplanationFailed(RuntimeError):
    """A counterfactual re-solve of the explanation ended without an optimum (a time limit, a numerical failure):
    the Shapley game needs every outcome, so the causes are not computed rather than computed from a stand-in."""


class Lifter:
    """One kept HiGHS model of the plan in which each cause family can be lifted and restored."""

    def __init__(self, run, time_limit: float | None = None):
        self.plan = getattr(run, "plan", run)  # a run, or a plan (a lift solved on a worker)
        # each re-solve obeys the run's time limit (planner solve --time-limit, else Settings.time_limit_s)
        self.time_limit = time_limit if time_limit is not None else self.plan.settings.time_limit_s
        self.model: Model = build_model(self.plan, gates_as_bounds=True)
        self.ms = self.model.sets
        lp = self.model.lp
        self._session: HighsSession | None = None
        self.cost = lp.objective()
        self.base_cost = self.cost.copy()
        self.policy = self.plan.settings.policy
        w = self.model.w
        self.gate_cols = w.loc[w["gated"], "col"].to_numpy()
        ramp = w[(w["g"] < w["g_base"] - 1e-12)]
        # starts already decided — held by the baseline's frozen zone, or committed WIP — keep their ramped yield
        # in every counterfactual: at the mature yield their output could overflow the back end that the plan
        # filled with them (an infeasible lift), and the ramp cause is about the starts the plan chooses
        decided = w.loc[w["s"].isin(self.ms.frozen_quarters), "col"] if self.ms.frozen_quarters else w["col"].iloc[:0]
        committed = self.ms.wip_committed.merge(w[["fn", "m", "s", "col"]], on=["fn", "m", "s"])["col"]
        ramp = ramp[~ramp["col"].isin(set(decided) | set(committed))]
        self.ramp_cols = ramp["col"].to_numpy()
        self.ramp_inv_rows = self.model.inventory_rows[ramp["m"].to_numpy(), ramp["land"].to_numpy()]
        self.ramp_be = ramp[ramp["r"] >= 0]
        self.ramp_be_rows = self.model.backend_rows[self.ramp_be["r"].to_numpy(), self.ramp_be["land"].to_numpy()]
        self.ramp = ramp
        self.fab_rows = lp.rows("fab_capacity")
        self.be_rows = lp.rows("backend_capacity")
        self.min_fill_rows = lp.rows("min_fill")
        self.frozen_rows = lp.rows("frozen_zone")  # --baseline: starts held at the previous plan's
        _, _, rl, ru = lp.bounds()
        self.rl, self.ru = rl, ru
        sname = "backlog" if self.plan.settings.backlog else "shortfall"
        self.s_cols = lp.cols(sname)
        sidx = lp.col_blocks[sname].index
        p_of = dict(zip(self.ms.platforms["platform"], self.ms.platforms["p"], strict=True))
        self.s_p = sidx["platform"].map(p_of).to_numpy()
        self.s_t = sidx["t"].to_numpy()
        y = self.model.y
        self.y_cols, self.y_p, self.y_t = y["col"].to_numpy(), y["p"].to_numpy(), y["t"].to_numpy()
        self.lifted: set[str] = set()

    @property
    def session(self) -> HighsSession:
        """The kept session of the exact path (made on first use: the estimate path solves fresh ones)."""
        if self._session is None:
            self._session = HighsSession(self.model.lp, method="auto",  # first solve: interior point if large
                                         time_limit=self.time_limit)
        return self._session

    # families present in this plan (others are never a cause, so they stay out of the Shapley game)
    def families(self) -> list[str]:
        out = []
        if len(self.gate_cols):
            out.append("rd_gate")
        if len(self.ramp_cols):
            out.append("yield_ramp")
        if len(self.fab_rows):
            out.append("fab_capacity")
        if len(self.be_rows):
            out.append("backend_capacity")
        if self.policy != "margin" or len(self.min_fill_rows):
            out.append("policy")
        if len(self.frozen_rows):
            out.append("frozen_zone")
        return out

    def toggle(self, family: str, on: bool) -> None:
        """Lift (``on``) or restore one family on the kept session."""
        self.apply(self.session, self.cost, family, on)
        (self.lifted.add if on else self.lifted.discard)(family)

    def apply(self, session: HighsSession, cost: np.ndarray, family: str, on: bool) -> None:
        """Lift or restore ``family`` on any session of this plan's model (``cost`` is that session's objective)."""
        h = session.h
        i32 = lambda a: np.asarray(a, dtype=np.int32)  # noqa: E731
        if family == "rd_gate":
            n = len(self.gate_cols)
            h.changeColsBounds(n, i32(self.gate_cols), np.zeros(n), np.full(n, np.inf if on else 0.0))
        elif family == "yield_ramp":
            r = self.ramp
            g = r["g_base"].to_numpy() if on else r["g"].to_numpy()
            for row, col, val in zip(self.ramp_inv_rows, self.ramp_cols, -g, strict=True):
                h.changeCoeff(int(row), int(col), float(val))
            rb = self.ramp_be
            gb = rb["g_base"].to_numpy() if on else rb["g"].to_numpy()
            for row, col, val in zip(self.ramp_be_rows, rb["col"].to_numpy(), rb["backend_use"].to_numpy() * gb,
                                     strict=True):
                h.changeCoeff(int(row), int(col), float(val))
            cost[self.ramp_cols] = -(r["wafer_cost"].to_numpy() + r["unit_cost"].to_numpy() * g)
        elif family in CAPACITY:
            rows = self.fab_rows if family == "fab_capacity" else self.be_rows
            up = np.full(len(rows), np.inf) if on else self.ru[rows]
            h.changeRowsBounds(len(rows), i32(rows), self.rl[rows], up)
        elif family == "frozen_zone":
            rows = self.frozen_rows
            lo = np.full(len(rows), -np.inf) if on else self.rl[rows]
            up = np.full(len(rows), np.inf) if on else self.ru[rows]
            h.changeRowsBounds(len(rows), i32(rows), lo, up)
        elif family == "policy":
            rows = self.min_fill_rows
            lo = np.full(len(rows), -np.inf) if on else self.rl[rows]
            h.changeRowsBounds(len(rows), i32(rows), lo, self.ru[rows])

    def _outcome(self, res) -> tuple[np.ndarray, np.ndarray] | None:
        """(shortfall, served), platform × quarter, of a solve; None if it did not reach an optimum."""
        if res.status != "optimal" or res.x is None:
            return None
        P, T = len(self.ms.platforms), self.ms.T
        S = np.zeros((P, T))
        np.add.at(S, (self.s_p, self.s_t), res.x[self.s_cols])
        Y = np.zeros((P, T))
        np.add.at(Y, (self.y_p, self.y_t), res.x[self.y_cols])
        return np.where(np.abs(S) < TOL, 0.0, S), np.where(np.abs(Y) < TOL, 0.0, Y)

    def outcome_with(self, families: list[str] | tuple[str, ...], start: Basis | None = None,
                     how: int | None = None, keep: bool = False):
        """Solve a fresh session with exactly ``families`` lifted (independent of the kept one: thread-safe).

        ``start`` is a basis of this model to start simplex from, ``how`` the simplex (1 dual, 4 primal); without
        ``how``, the base plan's basis is used where that was measured to pay (``WARM_LIFTS``; models/explain.md,
        "What it costs"), and every other lift is solved by interior point from scratch. Returns the
        (shortfall, served) outcome, or None; with ``keep``, (outcome, the final basis)."""
        if how is None and start is not None:
            how = WARM_LIFTS.get(tuple(families))
        policy = "margin" if "policy" in families else self.policy
        if policy != "margin" or start is None:
            how = None  # the policy stages add rows: no basis of the margin LP fits them (``start`` must be one)
        for attempt in (how, None) if how else (None,):
            session = tracked(HighsSession(self.model.lp, method="simplex" if attempt else "auto",
                                           time_limit=self.time_limit))
            try:
                cost = self.base_cost.copy()
                for f in families:
                    self.apply(session, cost, f, True)
                if attempt:
                    if not session.set_basis(start):
                        continue  # HiGHS refused the basis: interior point from scratch
                    session.h.setOptionValue("simplex_strategy", attempt)
                res = run_policy(session, self.model, policy, cost)
                out = self._outcome(res)
                if not keep:
                    return out
                return out, (session.basis() if out is not None and policy == "margin" else None)
            finally:
                untracked(session)
        return (None, None) if keep else None

    def outcome(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Solve with the current lifts (None if not optimal)."""
        mark = self.session.mark()
        policy = "margin" if "policy" in self.lifted else self.policy
        res = run_policy(self.session, self.model, policy, self.cost.copy())
        self.session.reset(mark)
        if self.model.lp.n_cols < EXACT_MAX_COLS:
            # small plans: warm dual simplex from the previous basis (one family toggled per solve); on large
            # plans interior point is steadier (measured: dual simplex restarted far from optimal after a
            # large cost change, 15 s against 1.5 s on a 36k-column plan)
            self.session.use_simplex()
        return self._outcome(res)


Outcomes = dict[int, tuple[np.ndarray, np.ndarray]]


def _all_subsets(lifter: Lifter, fams: list[str], base: tuple[np.ndarray, np.ndarray]) -> Outcomes:
    """Outcome for every subset of lifted families, visited in Gray-code order (one toggle per solve)."""
    values: Outcomes = {0: base}
    prev = 0
    for mask in _gray(len(fams))[1:]:
        diff = mask ^ prev
        f = diff.bit_length() - 1
        lifter.toggle(fams[f], bool(mask & diff))
        out = lifter.outcome()
        if out is None:
            raise ExplanationFailed(_failed(fams, mask))
        values[mask] = out
        prev = mask
    return values


def _failed(fams: list[str], mask: int) -> str:
    lifted = ", ".join(f for i, f in enumerate(fams) if mask >> i & 1)
    return (f"the re-solve with {lifted} lifted ended without an optimum (a time limit or a numerical failure; "
            "--time-limit, Settings.time_limit_s)")


_LIFTERS = PlanMemo()


def _lifter_for(plan: PlanData, time_limit: float | None = None) -> Lifter:
    """One Lifter per plan object in this process (the tasks of one explanation share its model arrays)."""
    return _LIFTERS.get(plan, lambda p: Lifter(p, time_limit))


def lift_outcome(plan: PlanData, families: tuple[str, ...], start: Basis | None = None, how: int | None = None,
                 keep: bool = False, time_limit: float | None = None):
    """A task (local thread or cluster worker): (shortfall, served) of the plan with ``families`` lifted
    (:meth:`Lifter.outcome_with`)."""
    return _lifter_for(plan, time_limit).outcome_with(families, start, how, keep)


def late_order_steps(fams: list[str], first: bool = False) -> list[list[tuple[int, int | None]]]:
    """The lifted sets of the estimate, in rounds of independent solves: (mask, where it starts from).

    Round 1: all lifted, and all but each capacity family (interior point from scratch: ``None``). Round 2: every
    other "all but one" from the all-lifted optimum. Round 3: every "all but two" from the "all but one" optimum
    without the family dearer to restore (``RESTORE_COST``), so that the cheaper one is restored — except with
    both capacity families restored, a plan nearly as hard as the base one (from scratch) — and the policy alone
    from the base plan's basis (``BASE``; the policy's truth condition reads it), dearest first, so that two
    workers finish together. Restoring families on a relaxed optimum is a tightening, so that optimum is dual
    feasible and dual simplex finishes in few pivots (models/explain.md, "What it costs"); restoring a whole
    capacity family was measured slower warm than from scratch. 1 + n + n(n − 1)/2 sets in all (and the policy
    alone). With ``first`` (:func:`_with_first`), each family alone too, in round 3, dearest of all:
    from the base basis where that was measured to pay (``WARM_LIFTS``), else from scratch."""
    n = len(fams)
    full = (1 << n) - 1
    bit = {f: 1 << i for i, f in enumerate(fams)}
    pol = bit.get("policy", 0)
    cold = {bit[f] for f in CAPACITY if f in bit} if n > 1 else set()
    rounds: list[list[tuple[int, int | None]]] = [[(full, None)], [], []]
    rounds[0] += [(full & ~b, None) for b in sorted(cold)]
    rounds[1] = [(full & ~b, full) for b in bit.values() if b not in cold and n > 1]
    cost = {f: RESTORE_COST.index(f) if f in RESTORE_COST else len(RESTORE_COST) for f in fams}
    last = []
    for i in range(n):
        for j in range(i + 1, n):
            pair = (fams[i], fams[j])
            dear = min(pair, key=cost.__getitem__)  # start from the set without it: restore the other
            src = None if set(pair) <= set(CAPACITY) else full & ~bit[dear]
            last.append((sum(f in CAPACITY for f in pair), 0, (full & ~(1 << i) & ~(1 << j), src)))
    if pol:  # measured as dear as the dearest pair with one capacity family restored
        last.append((1, -1, (pol, BASE)))
    if first:  # each alone: a plan that binds nearly everywhere, a full solve
        last += [(3, 0, (b, BASE if (f,) in WARM_LIFTS else None)) for f, b in bit.items() if b != pol]
    rounds[2] = [step for *_, step in sorted(last, key=lambda x: (-x[0], x[1]))]
    seen, out = {0}, []
    for r in rounds:
        out.append([(m, src) for m, src in r if not (m in seen or seen.add(m))])
    return out


BASE = -1  # a step that starts from the base plan's basis
# families by what restoring them on a nearly all-lifted optimum costs, dearest first (measured on the 476k-column
# plan, one thread: fab capacity 45 s by interior point, back-end capacity 26 s by dual simplex (8 s by interior
# point), the others 1-3 s; models/explain.md, "What it costs")
RESTORE_COST = ("fab_capacity", "backend_capacity", "frozen_zone", "yield_ramp", "rd_gate", "policy")


def prefetch_order(rounds: list[list[tuple[int, int | None]]]) -> list[tuple[int, int | None]]:
    """The order the prefetch solves the estimate's lifts in, during the base solve: round 1's first two (all
    lifted, and all but the dearer capacity family: the bases the most warm lifts start from), then every
    later lift from scratch, dearest first, then the rest in round order.

    The explanation ends when its longest chain does, and on two cores the base solve holds one of them: the
    prefetch thread has the other, the pool both once the base is solved. A lift from scratch is the longest
    chain of one step (both capacity families restored: 72 s of CPU at 476k columns, more than any other), so it
    runs while the base is solved, and the cheap warm lifts after it are left to the pool. Measured at 476k (the
    timeline of one run, models/explain.md): in round order the last lift, both capacities restored, started
    9 s before the base solve ended and the causes ended 77 s after it."""
    flat = [s for r in rounds for s in r]
    head = rounds[0][:2]
    cold = [s for r in rounds[1:] for s in r if s[1] is None]
    seen = set(head) | set(cold)
    return head + cold + [s for s in flat if s not in seen]


def _lifted(fams: list[str], m: int) -> tuple[str, ...]:
    return tuple(f for i, f in enumerate(fams) if m >> i & 1)


def _solved(res) -> bool:
    """A lift of the estimate that ended at an optimum: (outcome, basis), not None, (None, None) or OVERTIME."""
    return isinstance(res, tuple) and res[0] is not None


def _with_first(lifter: Lifter) -> bool:
    """The estimate also lifts each family alone: on plans up to ``FIRST_MAX_COLS`` columns, and under `priority`
    or `fair_share`, where the policy's effect shows most while capacity binds (lifted early) and the two late
    positions alone were measured far from the exact split (models/explain.md)."""
    return lifter.model.lp.n_cols <= FIRST_MAX_COLS or lifter.policy != "margin"


def _estimated(lifter: Lifter) -> bool:
    """The estimate path (1 + n + n(n − 1)/2 independent lifts) rather than the exact one (2ⁿ on one kept
    model)."""
    return len(lifter.families()) > EXACT_MAX_FAMILIES and lifter.model.lp.n_cols > EXACT_MAX_COLS


class Prefetch:
    """The explanation's lifts solved while the base plan is solved.

    HiGHS's interior point runs on one core, and every lift of the estimate but one needs nothing of the base
    solution (the policy alone starts from the base basis under ``margin``): so one thread solves them meanwhile,
    in the estimate's order — all lifted, all but each capacity family, then the other "all but one" and the "all
    but two" (and each alone, where the estimate has them) from the bases it found. :func:`_late_orders` takes what is done and the one under way, and runs the rest. Never
    started where a new thread could not call HiGHS safely (an address-space limit), nor for plans on the exact
    path; :meth:`close` stops it (Ctrl-C, no shortfall)."""

    def __init__(self, plan: PlanData, time_limit: float | None = None):
        import threading

        self.plan = plan
        self.lifter: Lifter | None = None
        self.done: dict[int, tuple] = {}  # mask -> (outcome, basis)
        self.current: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._time_limit = time_limit
        self._scope = Scope()  # close() stops this thread's solve only
        self._thread = threading.Thread(target=self._scope.run, args=(self._run,), name="planner-prefetch",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            lifter = Lifter(self.plan, self._time_limit)
            self.lifter = lifter
            if not _estimated(lifter):
                return
            fams = lifter.families()
            warm = lifter.policy == "margin"  # the policy alone starts from the base basis, which does not exist yet
            for m, src in prefetch_order(late_order_steps(fams, _with_first(lifter))):
                if src == BASE and warm:
                    continue
                with self._lock:
                    if self._stop.is_set():
                        return
                    self.current = m
                start = self.done.get(src, (None, None))[1] if src not in (None, BASE) else None
                out = lifter.outcome_with(_lifted(fams, m), start, 1 if start is not None else None, keep=True)
                with self._lock:
                    self.current = None
                    if not _solved(out):  # the explanation solves it again (a busy core may have cut it), and
                        return  # the lifts after it would start cold from its missing basis: stop here
                    self.done[m] = out
        except Exception as exc:  # noqa: BLE001 - the explanation solves the lift itself; a lack of memory is said
            self.error = exc  # there, by the same lift

    def take(self) -> tuple[Lifter | None, dict[int, tuple], int | None]:
        """Stop starting lifts; the lifter, the finished lifts and the one under way (whose result :meth:`wait`
        gives)."""
        with self._lock:
            self._stop.set()
            return self.lifter, dict(self.done), self.current

    def wait(self) -> dict[int, tuple]:
        self._thread.join()
        return dict(self.done)

    def close(self) -> None:
        """Stop now (its solve is cancelled; nothing it computed is used)."""
        self._stop.set()
        if self._thread.is_alive():
            self._scope.cancel()
            self._thread.join()


def _late_orders(lifter: Lifter, fams: list[str], base: tuple[np.ndarray, np.ndarray],
                 runner: Runner | None = None, start: Basis | None = None,
                 prefetched: tuple[dict, int | None, Prefetch] | None = None) -> Outcomes:
    """Outcome with all families lifted, with all but one, with all but two, and with the policy alone
    (:func:`late_order_steps`), round by round.

    The solves of a round are independent tasks of the ``runner``: separate HiGHS instances on a thread pool by
    default (HiGHS releases the GIL: two threads solve two instances in half the time on two cores, measured),
    or the cluster's workers. Where no thread can be started (a thread or address-space limit), they run one
    after the other: same numbers, more time. ``start``: the base plan's basis on the lifter's model.
    """
    rounds = late_order_steps(fams, _with_first(lifter))
    total = sum(len(r) for r in rounds)
    runner = runner or Runner()
    plan = lifter.plan
    done, running, pre = prefetched or ({}, None, None)
    got: dict[int, tuple] = {m: v for m, v in done.items() if _solved(v)}  # mask -> (outcome, basis)
    _LIFTERS.put(plan, lifter)  # the local tasks reuse this lifter's model
    tl = lifter.time_limit

    def task(m: int, src: int | None):
        parent = got.get(src) if src is not None and src != BASE else None
        # the base basis is the margin LP's only under margin (else the policy stages' last LP, with more rows)
        basis = (start if lifter.policy == "margin" else None) if src == BASE else \
            parent[1] if isinstance(parent, tuple) else None
        how = None if src == BASE or basis is None else 1  # the base basis: WARM_LIFTS chooses the simplex
        return lift_outcome, (plan, _lifted(fams, m), basis, how, True, tl)

    try:
        for r in rounds:
            todo = [(m, src) for m, src in r if m not in got and m != running]
            for (m, _), res in zip(todo, runner.map([task(m, s) for m, s in todo], (len(got), total)), strict=True):
                got[m] = res
            if pre is not None and running is not None and any(m == running for m, _ in r):
                got.update({m: v for m, v in pre.wait().items() if m not in got and _solved(v)})
                running = None
            missing = [(m, src) for m, src in r if m not in got]  # the prefetch failed on them
            again = runner.map([task(m, s) for m, s in missing], (len(got), total))  # one job: the count goes on
            for (m, _), res in zip(missing, again, strict=True):
                got[m] = res
            failed = next((m for m, _ in r if not _solved(got[m])), None)  # no optimum, or cut (OVERTIME)
            if failed is not None:  # the split needs every set: the later rounds would be solved for nothing
                if pre is not None:
                    pre.close()
                raise ExplanationFailed(_failed(fams, failed))
    finally:
        _LIFTERS.clear()  # the model is not kept beyond the explanation
    values: Outcomes = {0: base}
    values.update({m: got[m][0] for r in rounds for m, _ in r})
    return values


def late_order_estimate(values: dict[int, np.ndarray], n: int, first: bool = False) -> list[np.ndarray]:
    """The Shapley value's last two positions: for each family f, the mean of (a) its effect when lifted last,
    S(F∖f) − S(F), and (b) its mean effect when lifted second to last, over g ≠ f of S(F∖{f,g}) − S(F∖g); with
    ``first``, also (c) its effect when lifted first, S(∅) − S({f}) (the mean of the three).

    The Shapley value is the mean of such position averages over all n positions (the family lifted 1st, 2nd,
    …, n-th); (a) and (b) are the ones whose lifted sets are nearly all lifted — cheap to solve, where lifting one
    family alone is a full solve of a plan that binds everywhere. Exact for two families; measured against the
    exact value on generated plans (models/explain.md): (a, b) as close as the earlier (first, last) on average
    and closer at worst under ``margin``, farther under ``fair_share`` (the policy matters most while capacity
    binds, lifted early); (a, b, c) closer still, so it is used where the alone lifts cost little.
    """
    full = (1 << n) - 1
    phi = []
    for f in range(n):
        parts = [values[full & ~(1 << f)] - values[full]]
        pairs = [values[full & ~(1 << f) & ~(1 << g)] - values[full & ~(1 << g)] for g in range(n) if g != f]
        if pairs:
            parts.append(sum(pairs) / len(pairs))
        if first and n > 2:
            parts.append(values[0] - values[1 << f])
        phi.append(sum(parts) / len(parts))
    return phi


def _gray(n: int) -> list[int]:
    return [i ^ (i >> 1) for i in range(1 << n)]


def shapley(values: dict[int, np.ndarray], n: int) -> list[np.ndarray]:
    """Exact Shapley value of each family for the game v(A) = shortfall(∅) − shortfall(A lifted)."""
    base = values[0]
    phi = [np.zeros_like(base) for _ in range(n)]
    for f in range(n):
        others = [g for g in range(n) if g != f]
        for k in range(n):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for combo in combinations(others, k):
                a = sum(1 << g for g in combo)
                phi[f] += weight * (values[a] - values[a | (1 << f)])
    return phi


# ---- what is true of the plan: the facts the truth conditions read --------------------------------------------
@dataclass
class Option:
    name: str
    revenue: float  # per platform unit
    items: list[tuple[int, float]]  # (product position, memory units per platform unit)
    cost: float  # memory cost per platform unit at free capacity, open gates and mature yield


class Facts:
    """The base plan's tables as arrays, for the truth conditions of ``models/explain.md``.

    Everything here is read from the report's own tables (Capacity, Supply, Allocation, WaferStarts) and the
    plan's data, so a reader can check each condition against the workbook.
    """

    def __init__(self, run, ms):
        plan = run.plan
        res = run.results
        self.ms = ms
        self.T = T = ms.T
        self.periods = periods = ms.periods
        self.backlog = bool(plan.settings.backlog)
        self.policy = plan.settings.policy
        self.currency = plan.settings.currency
        t_of = {q: i for i, q in enumerate(periods)}
        prods = ms.products
        M = len(prods)
        self.product = list(prods["product"])
        m_of = {p: i for i, p in enumerate(self.product)}
        self.c = prods["cycle_quarters"].to_numpy().astype(int)
        self.start_lo = prods["start_lo"].to_numpy().astype(int)
        self.ready = prods["ready"].to_numpy().astype(int)
        self.I0 = prods["initial_inventory"].to_numpy().astype(float)
        self.program = [None if (g is None or (isinstance(g, float) and math.isnan(g))) else str(g)
                        for g in prods["program"]]
        self.line = prods["r"].to_numpy().astype(int)
        # ramp factor of a wafer started in quarter s (the first factor before the ready quarter)
        self.ramp = np.ones((M, T))
        s = np.arange(T)
        for m, curve in ms.ramp.items():
            self.ramp[m] = curve[np.clip(s - self.ready[m], 0, len(curve) - 1)]
        # fabs and lines
        fabs = ms.fabs
        self.fab_name = [f"{f}/{n}" for f, n in zip(fabs["fab"], fabs["node"], strict=True)]
        fn_of = {name: i for i, name in enumerate(self.fab_name)}
        node_fabs: dict[str, list[int]] = {}
        for i, n in enumerate(fabs["node"]):
            node_fabs.setdefault(n, []).append(i)
        self.fabs_of = [node_fabs.get(n, []) for n in prods["node"]]
        self.line_name = list(ms.backend["resource"])
        r_of = {name: i for i, name in enumerate(self.line_name)}
        cap = res.capacity
        F, R = len(self.fab_name), len(self.line_name)
        self.fab_cap, self.fab_used, self.fab_price = (np.zeros((F, T)) for _ in range(3))
        self.be_cap, self.be_used, self.be_price = (np.zeros((R, T)) for _ in range(3))
        fc = cap[cap["kind"] == "fab"]
        i, t = fc["resource"].map(fn_of).to_numpy(dtype=int), fc["period"].map(t_of).to_numpy(dtype=int)
        self.fab_cap[i, t], self.fab_used[i, t], self.fab_price[i, t] = (fc[k].to_numpy() for k in
                                                                         ("capacity", "used", "shadow_price"))
        bc = cap[cap["kind"] == "backend"]
        i, t = bc["resource"].map(r_of).to_numpy(dtype=int), bc["period"].map(t_of).to_numpy(dtype=int)
        self.be_cap[i, t], self.be_used[i, t], self.be_price[i, t] = (bc[k].to_numpy() for k in
                                                                      ("capacity", "used", "shadow_price"))
        self.fab_full = self.fab_used >= self.fab_cap - 1e-6 * np.maximum(1.0, self.fab_cap)
        self.be_full = self.be_used >= self.be_cap - 1e-6 * np.maximum(1.0, self.be_cap)
        # stock: held (carried out of a quarter) and spare (never drawn on again from that quarter on)
        sup = res.supply
        mi, ti = sup["product"].map(m_of).to_numpy(dtype=int), sup["period"].map(t_of).to_numpy(dtype=int)
        self.inv = np.zeros((M, T))
        self.output = np.zeros((M, T))
        self.inv[mi, ti] = sup["inventory_end"].to_numpy()
        self.output[mi, ti] = sup["output_units"].to_numpy()
        scale = np.maximum(1.0, np.maximum(self.inv.max(axis=1, initial=0.0), self.I0))
        self.unit_tol = 1e-6 * scale  # per product
        self.held = self.inv > self.unit_tol[:, None]
        self.spare = np.minimum.accumulate(self.inv[:, ::-1], axis=1)[:, ::-1]
        # who got what: platforms served each product in each quarter; products started at each fab/quarter
        self.plat = list(ms.platforms["platform"])
        p_of = {p: i for i, p in enumerate(self.plat)}
        al = res.allocation
        al = al[al["memory_units"] > TOL]
        self.got: dict[tuple[int, int], set[int]] = {}
        for m, t, p in zip(al["product"].map(m_of), al["period"].map(t_of), al["platform"].map(p_of), strict=True):
            self.got.setdefault((int(m), int(t)), set()).add(int(p))
        ws = res.wafer_starts
        self.started: dict[tuple[int, int], set[int]] = {}
        for f, n, m, t in zip(ws["fab"], ws["node"], ws["product"].map(m_of), ws["period"].map(t_of), strict=True):
            self.started.setdefault((fn_of[f"{f}/{n}"], int(t)), set()).add(int(m))
        # money: memory cost per unit at free capacity, open gates and mature yield (cheapest fab of the node)
        wc = fabs["wafer_cost"].to_numpy()
        g = prods["g_base"].to_numpy()
        self.free_cost = np.array([
            (min(wc[f] for f in self.fabs_of[m]) / g[m] if self.fabs_of[m] and g[m] > 0 else np.inf)
            + prods["unit_cost"].to_numpy()[m] for m in range(M)])
        self.penalty = ms.platforms["shortfall_penalty"].to_numpy().astype(float)
        self.options: list[list[Option]] = [[] for _ in self.plat]
        bom = ms.bom
        items = {po: list(zip(grp["m"].astype(int), grp["units_per_platform"].astype(float), strict=True))
                 for po, grp in bom.groupby("po")}
        for o in ms.options.itertuples():
            its = items.get(o.po, [])
            self.options[o.p].append(Option(o.option, float(o.revenue), its,
                                            float(sum(u * self.free_cost[m] for m, u in its))))

    # -- feeding: which landing quarters' output can reach quarter t (held in stock without a gap) -------------
    def feeds(self, m: int, t: int) -> list[int]:
        out, L = [], t
        while L >= 0:
            if L - self.c[m] >= 0:
                out.append(L)
            if L == 0 or not self.held[m, L - 1]:
                break
            L -= 1
        return out

    def fed_by(self, m: int, L: int) -> list[int]:
        """Quarters that output landing in L can serve: L, then on while it is held in stock."""
        out = [L]
        while out[-1] + 1 < self.T and self.held[m, out[-1]]:
            out.append(out[-1] + 1)
        return out

    def takers(self, m: int, quarters: list[int]) -> set[int]:
        got: set[int] = set()
        for q in quarters:
            got |= self.got.get((m, q), set())
        return got

    # -- the options of p in quarter t ---------------------------------------------------------------------------
    def blocking(self, o: Option, t: int) -> list[int]:
        """Products of ``o`` that no wafer started inside the horizon can supply by t, with no stock to spare."""
        return [m for m, _ in o.items if self.c[m] > t and self.spare[m, t] <= self.unit_tol[m]]

    def effective_penalty(self, p: int, t: int) -> float:
        """Penalty avoided by serving one platform unit in t rather than never (backlog: every later quarter)."""
        return self.penalty[p] * ((self.T - t) if self.backlog else 1)

    def best_later(self, p: int, t: int) -> tuple[float, int, Option] | None:
        """Backlog: the best margin per platform unit from serving in a later quarter t2 with an option that can
        land by then, less the penalty for waiting (t2 − t quarters): (value, t2, option), or None."""
        best = None
        for t2 in range(t + 1, self.T):
            for o in self.options[p]:
                if self.blocking(o, t2):
                    continue
                v = o.revenue - o.cost - self.penalty[p] * (t2 - t)
                if best is None or v > best[0]:
                    best = (v, t2, o)
        return best

    def pays(self, o: Option, p: int, t: int) -> bool:
        gain = o.revenue + self.effective_penalty(p, t)
        return gain > o.cost + 1e-9 * max(1.0, abs(o.cost))


@dataclass
class Candidate:
    """A resource whose truth condition holds for one (platform, quarter), with what its sentence says."""

    resource: str
    weight: float
    text: str
    competitors: str = ""


class Situation:
    """One short (platform, quarter): its options split into blocked / able to land, and each cause's
    candidates (empty when the cause's truth condition fails)."""

    def __init__(self, facts: Facts, p: int, t: int, S: float, policy_helps: bool, competitors_policy: str,
                 plan):
        self.f, self.p, self.t, self.S = facts, p, t, S
        f = facts
        self.plat = f.plat[p]
        self.period = f.periods[t]
        opts = f.options[p]
        self.blocked = [(o, f.blocking(o, t)) for o in opts]
        self.live = [o for o, b in self.blocked if not b]
        self.blocked = [(o, b) for o, b in self.blocked if b]
        wanted = [o for o in self.live if f.policy != "margin" or f.pays(o, p, t)]
        self.viable_products = sorted({m for o in wanted for m, _ in o.items})
        self.policy_helps = policy_helps
        self.competitors_policy = competitors_policy
        self.plan = plan

    # ---- candidates per cause (truth conditions) -------------------------------------------------------------
    def candidates(self, cause: str) -> list[Candidate]:
        return getattr(self, "_" + cause)()

    def _frozen_zone(self) -> list[Candidate]:
        """frozen_zone for (p, t): the baseline's starts are held in a quarter whose output feeds t for one of the
        products p can use (lifting the hold alone is what the Shapley share measured)."""
        f, t = self.f, self.t
        zone = list(getattr(f.ms, "frozen_quarters", []) or [])
        feeding = sorted({f.product[m] for m in self.viable_products if any(s + f.c[m] <= t for s in zone)})
        if not feeding:
            return []
        span = f.periods[min(zone)] + (f"–{f.periods[max(zone)]}" if len(zone) > 1 else "")
        return [Candidate("", 1.0, f"The frozen zone holds the baseline's wafer starts in {span}: had they been free, "
                                   f"more of {', '.join(feeding)} could have been started for {self.plat} by "
                                   f"{self.period}.")]

    def _rd_gate(self) -> list[Candidate]:
        f, t = self.f, self.t
        by_prog: dict[str, list[tuple[int, int]]] = {}
        for m in self.viable_products:
            prog = f.program[m]
            last = min(f.start_lo[m] - 1, t - f.c[m])  # gated start quarters that would land by t
            if prog is None or last < 0:
                continue
            open_q = [s for s in range(0, last + 1) if f.fab_cap[f.fabs_of[m], s].sum() > 0]
            if open_q:
                by_prog.setdefault(prog, []).append((m, open_q[0]))
        out = []
        for prog, ms_ in sorted(by_prog.items()):
            names = ", ".join(f.product[m] for m, _ in ms_)
            ready = min(f.ready[m] for m, _ in ms_)
            rl = f.periods[ready] if 0 <= ready < f.T else ("after the horizon" if ready >= f.T else "before it")
            first = min(f.start_lo[m] + f.c[m] for m, _ in ms_)
            if first > t:
                fl = f.periods[first] if first < f.T else "after the horizon"
                text = (f"{self.plat} is short {units(self.S)} units in {self.period}: program {prog} is ready only in "
                        f"{rl}, so no {names} started inside the horizon lands before {fl}.")
            else:
                s0 = min(s for _, s in ms_)
                text = (f"Program {prog} is ready only in {rl}: had it been ready sooner, {names} could have been started "
                        f"from {f.periods[s0]}, built ahead and held for {self.plat} in {self.period}.")
            out.append(Candidate(prog, 1.0, text))
        return out

    def _yield_ramp(self) -> list[Candidate]:
        f, t = self.f, self.t
        out = []
        for m in self.viable_products:
            quarters = [L - f.c[m] for L in f.feeds(m, t) if L - f.c[m] >= f.start_lo[m]]  # wafers can start
            low = [s for s in quarters if f.ramp[m, s] < 1 - 1e-9]
            if not low:
                continue
            s = max(low)
            out.append(Candidate(f.product[m], 1.0,
                                 f"Wafers of {f.product[m]} started in {f.periods[s]} yield {f.ramp[m, s]:.0%} of "
                                 f"mature (yield ramp): less of it for {self.plat} in {self.period}."))
        return out

    def _fab_capacity(self) -> list[Candidate]:
        f, t = self.f, self.t
        full: dict[int, set[int]] = {}
        for m in self.viable_products:
            for L in f.feeds(m, t):
                s = L - f.c[m]
                for fn in f.fabs_of[m]:
                    if f.fab_full[fn, s]:
                        full.setdefault(fn, set()).add(s)
        out = []
        for fn, qs in sorted(full.items()):
            qs_ = sorted(qs)
            price = float(f.fab_price[fn, qs_].max())
            takers: set[int] = set()
            for s in qs_:
                for m2 in f.started.get((fn, s), ()):
                    takers |= f.takers(m2, f.fed_by(m2, s + f.c[m2]))
            what = ("has no wafer capacity in " if all(f.fab_cap[fn, s] <= 0 for s in qs_) else "is full in ")
            worth = (f" (one more wafer adds {'up to ' if len(qs_) > 1 else ''}{money(price, f.currency)} of "
                     "objective)" if price > 0 else "")
            out.append(Candidate(f.fab_name[fn], price,
                                 f"{f.fab_name[fn]} {what}{_quarters(f, qs_)}{worth}: {self.plat} gets less in "
                                 f"{self.period}.", _names(f, takers - {self.p})))
        return out

    def _backend_capacity(self) -> list[Candidate]:
        f, t = self.f, self.t
        full: dict[int, set[int]] = {}
        for m in self.viable_products:
            r = f.line[m]
            if r < 0:
                continue
            for L in f.feeds(m, t):
                if f.be_full[r, L]:
                    full.setdefault(r, set()).add(L)
        out = []
        for r, qs in sorted(full.items()):
            qs_ = sorted(qs)
            price = float(f.be_price[r, qs_].max())
            takers: set[int] = set()
            for L in qs_:
                for m2 in np.nonzero((f.line == r) & (f.output[:, L] > f.unit_tol))[0]:
                    takers |= f.takers(int(m2), f.fed_by(int(m2), L))
            worth = (f" (one more unit adds {'up to ' if len(qs_) > 1 else ''}{money(price, f.currency)} of "
                     "objective)" if price > 0 else "")
            what = "has no capacity in " if all(f.be_cap[r, L] <= 0 for L in qs_) else "is full in "
            out.append(Candidate(f.line_name[r], price,
                                 f"Back-end line {f.line_name[r]} {what}{_quarters(f, qs_)}{worth}: {self.plat} gets "
                                 f"less in {self.period}.", _names(f, takers - {self.p})))
        return out

    def _horizon_start(self) -> list[Candidate]:
        f = self.f
        if self.live or not self.blocked:
            return []
        ms_ = sorted({m for _, b in self.blocked for m in b})
        what = ", ".join(f"{f.product[m]} ({f.c[m]} quarter{'s' if f.c[m] != 1 else ''} from wafer start)"
                         for m in ms_)
        stock = [m for m in ms_ if f.I0[m] > 0]
        inv = ("and none is in initial inventory" if not stock else
               "and the initial inventory (" + ", ".join(f"{units(f.I0[m])} {f.product[m]}" for m in stock)
               + ") is used up")
        takers: set[int] = set()
        for m in ms_:
            takers |= f.takers(m, f.fed_by(m, 0))
        return [Candidate("", 1.0, f"Nothing started inside the horizon lands by {self.period}: {what}, {inv}.",
                          _names(f, takers - {self.p}))]

    def _economics(self) -> list[Candidate]:
        f, p, t = self.f, self.p, self.t
        if not self.live:
            return []
        cur = f.currency
        opt = (lambda o: f" with option {o.name}") if len(f.options[p]) > 1 else (lambda o: "")
        paying = [o for o in self.live if f.pays(o, p, t)]
        if not paying:
            best = max(self.live, key=lambda o: o.revenue - o.cost)
            pen = f.penalty[p]
            if f.backlog:
                pen_txt = (f"plus {money(pen, cur)} of penalty for each of the {f.T - t} quarter"
                           f"{'s' if f.T - t != 1 else ''} it would wait")
            else:
                pen_txt = f"plus {money(pen, cur)} of shortfall penalty avoided"
            return [Candidate("", 1.0, f"Serving {self.plat} in {self.period} does not pay even with free capacity, "
                                       f"open gates and mature yields: a platform unit{opt(best)} earns "
                                       f"{money(best.revenue, cur)} {pen_txt}, but its memory costs "
                                       f"{money(best.cost, cur)}.")]
        later = f.best_later(p, t) if f.backlog else None
        best = max(paying, key=lambda o: o.revenue - o.cost)
        if later is None or best.revenue - best.cost > later[0] + 1e-9 * max(1.0, abs(later[0])):
            return []
        value, t2, o2 = later
        k = t2 - t
        return [Candidate("", 1.0, f"Serving {self.plat}'s backlog in {self.period} does not pay against waiting, even "
                                   f"with free capacity, open gates and mature yields: a platform unit{opt(best)} "
                                   f"{_earns(best.revenue - best.cost, cur)} over its memory cost now, "
                                   f"{_earns(o2.revenue - o2.cost, cur)}{opt(o2)} in {f.periods[t2]}, less "
                                   f"{money(f.penalty[p] * k, cur)} of penalty for {k} quarter{'s' if k != 1 else ''} "
                                   f"of waiting.")]

    def _policy(self) -> list[Candidate]:
        if not self.policy_helps:
            return []
        f = self.f
        comp = self.competitors_policy
        who = comp.replace(";", ", ") or "other platforms"
        mf = self.plan.platforms
        mins = sorted(mf.loc[mf["min_fill"].fillna(0) > 0, "platform"])
        if f.policy == "margin":
            text = (f"Minimum fill ({', '.join(mins)}) gives the supply to {who}: without minimums {self.plat} gets "
                    f"more in {self.period}.")
        else:
            text = (f"The '{f.policy}' policy{' and minimum fill' if mins else ''} gives the supply to {who}: under "
                    f"plain margin{' without minimums' if mins else ''} {self.plat} gets more in {self.period}.")
        return [Candidate("", 1.0, text, comp)]


def _earns(v: float, currency: str) -> str:
    return f"earns {money(v, currency)}" if v >= 0 else f"loses {money(-v, currency)}"


def _quarters(f: Facts, qs: list[int]) -> str:
    labels = [f.periods[q] for q in qs]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _names(f: Facts, ps: set[int]) -> str:
    return ";".join(sorted(f.plat[p] for p in ps))


def counterfactuals(run, runner: Runner | None = None, time_limit: float | None = None,
                    prefetch: Prefetch | None = None, exact: bool | None = None
                    ) -> tuple[list[str], Outcomes, dict]:
    """The families present, the outcome (shortfall, served: platform × quarter arrays) of every lifted set the
    split reads (keyed by bit mask over the families; 0 is the plan itself), and how they were got (``sets``,
    ``exact``, ``solves``: re-solves made, ``first``: the estimate lifted each family alone too). ``exact``:
    every subset (default: on small plans, else the estimate's sets)."""
    lifter, done, running = prefetch.take() if prefetch is not None else (None, {}, None)
    if lifter is None:  # no prefetch, or it had not built its model yet: it stops, and this one is built here
        if prefetch is not None:
            prefetch.close()
            prefetch = None
        lifter = Lifter(run, time_limit)
    ms = lifter.ms
    svc = run.results.service
    P, T = len(ms.platforms), ms.T
    p_of = dict(zip(ms.platforms["platform"], ms.platforms["p"], strict=True))
    t_of = {q: i for i, q in enumerate(ms.periods)}
    pi, ti = svc["platform"].map(p_of).to_numpy(dtype=int), svc["period"].map(t_of).to_numpy(dtype=int)
    base_S, base_Y = np.zeros((P, T)), np.zeros((P, T))
    base_S[pi, ti] = svc["shortfall"].to_numpy()
    base_Y[pi, ti] = svc["served"].to_numpy()
    fams = lifter.families()
    exact = not _estimated(lifter) if exact is None else exact
    if exact:
        if prefetch is not None:
            prefetch.close()
        outcomes = _all_subsets(lifter, fams, (base_S, base_Y))
    else:
        start = gated_basis(run.model, getattr(run.solution, "basis", None), lifter.model)
        outcomes = _late_orders(lifter, fams, (base_S, base_Y), runner, start,
                                (done, running, prefetch) if prefetch is not None else None)
    return fams, outcomes, {"sets": ms, "exact": exact, "solves": len(outcomes) - 1,
                            "first": not exact and _with_first(lifter)}


def family_shares(run, runner: Runner | None = None, time_limit: float | None = None,
                  prefetch: Prefetch | None = None) -> tuple[list[str], list[np.ndarray], dict]:
    """The Shapley game: the families present, each one's share of every (platform, quarter) shortfall
    (platform × quarter arrays), and the counterfactual outcomes the attribution reads (``base``: shortfall and
    served of the plan; ``all``: shortfall with every family lifted; ``physical``: with every family but the
    policy lifted; ``policy_alone``: shortfall and served with only the policy lifted, or None)."""
    fams, outcomes, info = counterfactuals(run, runner, time_limit, prefetch)
    S_of = {m: o[0] for m, o in outcomes.items()}
    n = len(fams)
    phi = shapley(S_of, n) if info["exact"] else late_order_estimate(S_of, n, info["first"])
    return fams, phi, {**info, **split_inputs(fams, outcomes)}


def split_inputs(fams: list[str], outcomes: Outcomes) -> dict:
    """What :func:`attribute` reads of the counterfactual outcomes besides the shares."""
    full = (1 << len(fams)) - 1
    pol = 1 << fams.index("policy") if "policy" in fams else 0
    return {"base": outcomes[0], "all": outcomes[full][0], "physical": outcomes[full & ~pol][0],
            "policy_alone": outcomes[pol] if pol else None}


def explain_shortfalls(run, runner: Runner | None = None, time_limit: float | None = None,
                       prefetch: Prefetch | None = None) -> pd.DataFrame:
    """ShortfallCauses rows (contract: platform, period, shortfall, cause, resource, units, competitors,
    explanation) for every (platform, quarter) with a shortfall in the run's solution. ``runner`` runs the
    estimate's independent re-solves (default: local threads), each within ``time_limit`` seconds (default:
    Settings.time_limit_s). Raises :class:`ExplanationFailed` when one of them ends without an optimum.
    ``prefetch``: the lifts a :class:`Prefetch` solved during the base solve (same plan object)."""
    svc = run.results.service
    if not run.solution.has_solution or svc.empty or svc["shortfall"].max() <= TOL:
        if prefetch is not None:
            prefetch.close()
        return pd.DataFrame(columns=COLUMNS)
    fams, phi, counter = family_shares(run, runner, time_limit, prefetch)
    base_S, base_Y = counter["base"]
    df = attribute(run, Facts(run, counter["sets"]), base_S, base_Y, dict(zip(fams, phi, strict=True)), counter)
    df.attrs["split"] = split_note(fams, counter["exact"], counter["solves"], counter["first"])
    return df


def split_note(fams: list[str], exact: bool, solves: int, first: bool = False) -> str:
    """How the causes were split, for the Overview when it is not the exact Shapley value: the analyst forwarding
    the shares should know that they are an estimate, of what, and where its accuracy is measured."""
    if exact:
        return ""
    return (f"Shortfall causes: split by an estimate of the Shapley value over the {len(fams)} cause families "
            f"({solves} re-solves of the plan: each family lifted {'first, ' if first else ''}last and second to last; "
            f"the exact split takes "
            f"{2 ** len(fams) - 1} and is used up to {EXACT_MAX_COLS:,} LP columns); its accuracy against the exact "
            "split: models/explain.md.")


FALLBACK_ORDER = ("fab_capacity", "backend_capacity", "rd_gate", "yield_ramp", "frozen_zone", "policy",
                  "horizon_start", "economics")


def attribute(run, facts: Facts, base_S: np.ndarray, base_Y: np.ndarray, phi: dict[str, np.ndarray],
              counter: dict) -> pd.DataFrame:
    """Rows for every short (platform, quarter): each family's positive Shapley share where its truth condition
    holds, what remains with every family lifted to horizon_start or economics, rescaled to add up exactly."""
    out = []
    pol = counter["policy_alone"]
    # what counts as nothing: policy holds may be loosened to 1e-7 of each row's scale (formulation.md)
    noise = TOL * max(1.0, float(base_S.max()), float(base_Y.max())) + 1e-9 * float(base_Y.sum())
    for p, t in zip(*np.nonzero(base_S > TOL), strict=True):
        S = float(base_S[p, t])
        helps = pol is not None and pol[0][p, t] < S - noise
        comp = ""
        if helps:
            gain = base_Y[:, t] - pol[1][:, t]
            gain[p] = 0
            who = np.nonzero(gain > TOL * np.maximum(1.0, base_Y[:, t]))[0]
            if not len(who):
                gain_h = base_Y.sum(axis=1) - pol[1].sum(axis=1)
                gain_h[p] = 0
                who = np.nonzero(gain_h > TOL * np.maximum(1.0, base_Y.sum(axis=1)))[0]
            comp = _names(facts, set(int(w) for w in who))
        sit = Situation(facts, int(p), int(t), S, helps, comp, run.plan)
        cands = {c: sit.candidates(c) for c in CAUSES}
        mass: dict[str, float] = {}
        for fam, v in phi.items():
            if v[p, t] > 0 and cands[fam]:
                mass[fam] = float(v[p, t])
        rest = float(counter["all"][p, t])
        if rest > noise and counter["physical"][p, t] > noise:  # it remains with free capacity, gates and ramps
            for cause in ("horizon_start", "economics"):
                if cands[cause]:
                    mass[cause] = mass.get(cause, 0.0) + rest
                    break
        total = sum(mass.values())
        if total <= TOL * max(1.0, S):
            # nothing with a positive share holds (degenerate optimum): the first true cause takes it all
            first = next((c for c in FALLBACK_ORDER if cands[c]), None)
            if first is None:  # pragma: no cover - never seen (tests/test_explain_truth.py fails if it is)
                first = "economics"
                cands[first] = [Candidate("", 1.0, f"Serving more of {sit.plat} in {sit.period} would not raise the "
                                                   "plan's objective, and no cause's condition holds "
                                                   "(models/explain.md): the plan may have equally good "
                                                   "alternatives.")]
            mass, total = {first: 1.0}, 1.0
        rows = []
        for cause, v in mass.items():
            cs = cands[cause]
            w = np.array([c.weight for c in cs], dtype=float)
            w = w / w.sum() if w.sum() > 0 else np.full(len(cs), 1.0 / len(cs))
            for c, share in zip(cs, w, strict=True):
                rows.append([cause, c, S * v / total * share])
        keep = [r for r in rows if r[2] > 1e-9 * S] or rows
        scale = S / sum(r[2] for r in keep)
        for cause, c, u in keep:
            out.append({"platform": sit.plat, "period": sit.period, "shortfall": S, "cause": cause,
                        "resource": c.resource, "units": u * scale, "competitors": c.competitors,
                        "explanation": c.text})
    df = pd.DataFrame(out, columns=COLUMNS)
    order = {c: i for i, c in enumerate(CAUSES)}
    plat_order = {p: i for i, p in enumerate(facts.plat)}
    per_order = {q: i for i, q in enumerate(facts.periods)}
    if len(df):
        df = df.iloc[np.lexsort((df["resource"].to_numpy(), df["cause"].map(order).to_numpy(),
                                 df["period"].map(per_order).to_numpy(),
                                 df["platform"].map(plat_order).to_numpy()))].reset_index(drop=True)
    return df


CAUSE_LABELS = {"rd_gate": "{r} qualification (ready {ready})", "yield_ramp": "{r} yield ramp",
                "fab_capacity": "{r} wafers", "backend_capacity": "{r} line",
                "horizon_start": "horizon start (nothing started inside the horizon lands in time)",
                "economics": "economics (serving does not pay)", "policy": "allocation policy",
                "frozen_zone": "the frozen zone (baseline's starts)"}


def cause_label(cause: str, resource: str, ready: dict[str, str]) -> str:
    """How a (cause, resource) is named in the per-platform sentences."""
    return CAUSE_LABELS[cause].format(r=resource, ready=ready.get(resource, "?"))


def ready_labels(plan) -> dict[str, str]:
    """Each program's ready quarter as a label (the rule lives in ``model.sets.ready_quarters``)."""
    from planner.model.sets import ready_quarters
    from planner.periods import index_label

    first = plan.settings.first_period
    return {prog: index_label(int(t), first) for prog, t in
            zip(plan.programs["program"], ready_quarters(plan.programs, first), strict=True)}


def platform_sentences(causes: pd.DataFrame, plan, service: pd.DataFrame | None = None) -> list[str]:
    """One sentence per platform: its shortfall and the causes' shares of it in percent (below 0.5 % left out).

    Lost sales (``backlog = false``): the units short over the quarters explained. Backlog: the per-quarter rows
    are backlog levels, so their sum is unit-quarters of backlog, said as such; with the contract's ``service``
    table the sentence first says, counting each unit once, what is never served by the horizon end and how late
    the rest is served (:func:`planner.analysis.results.platform_service`).
    """
    lines = []
    if causes is None or causes.empty:
        return lines
    backlog = bool(plan.settings.backlog)
    horizon = list(plan.periods)
    per_platform = (platform_service(service, True, horizon).set_index("platform")
                    if backlog and service is not None else None)
    ready = ready_labels(plan)
    for plat, g in causes.groupby("platform", sort=False):
        total = g.drop_duplicates(["period"])["shortfall"].sum()
        parts = g.groupby(["cause", "resource"])["units"].sum().sort_values(ascending=False, kind="stable")
        periods = sorted(g["period"].unique())
        descr = [f"{u / total:.0%} {cause_label(cause, res, ready)}" for (cause, res), u in parts.items()
                 if u / total >= 0.005]
        if not backlog:
            lines.append(f"{plat}: {units(total)} units short {span(periods, horizon)}; " + ", ".join(descr) + ".")
            continue
        late = (lateness(per_platform.loc[plat], horizon[-1]) + "; "
                if per_platform is not None and plat in per_platform.index else "")
        lines.append(f"{plat}: {late}{units(total)} unit-quarters of backlog {span(periods, horizon)}: "
                     + ", ".join(descr) + ".")
    return lines


def what_would_close(run, causes: pd.DataFrame, solve: Callable[[PlanData], Results] | None = None,
                     solve_many: Callable[[list[PlanData], list[str]], list[Results | None]] | None = None
                     ) -> pd.DataFrame:
    """For each platform with a shortfall, the single change from the data's own levers that closes most of it.

    Levers: each program ready one or two quarters earlier; each fab/node and back-end line feeding a short
    platform +10 % capacity; each expansion option allowed twice its maximum and one quarter sooner. Each
    lever is one re-solve of the whole plan through ``solve`` (the caller's pipeline, so this module never
    imports it), or all levers at once through ``solve_many`` (independent warm re-solves on threads or a
    cluster, :mod:`planner.analysis.resolves`), and every platform's effect comes from the same solve.
    """
    from planner.analysis.rd_impact import shift_key, shift_program
    from planner.io.scenarios import Edit, apply_edits

    backlog = bool(run.plan.settings.backlog)
    cols = ["platform", "change", "units_closed", "share_closed", *(["unit_quarters_closed"] if backlog else []),
            "margin_change", "objective_change", "sentence"]
    if causes is None or causes.empty:
        return pd.DataFrame(columns=cols)
    plan = run.plan
    base = run.results
    before = base.platform_service().set_index("platform")
    unserved = before["unserved"]
    late = before["backlog_unit_quarters"] if backlog else pd.Series(0.0, index=before.index)
    short_plats = [p for p in before.index if unserved[p] > TOL or late[p] > TOL]
    levers: list[tuple[str, object]] = []
    weight = causes.groupby(["cause", "resource"])["units"].sum().sort_values(ascending=False)

    def top(cause: str, k: int = 3) -> list[str]:
        w = weight[weight.index.get_level_values(0) == cause]
        return [r for (_, r) in w.index[:k] if r]

    for prog in top("rd_gate"):
        for k in (1, 2):
            levers.append((f"{prog} ready {k} quarter{'s' if k > 1 else ''} earlier", ("program", prog, -k)))
    for res in top("fab_capacity"):
        if res and "/" in res:
            fab, node = res.split("/", 1)
            levers.append((f"{res} +10% wafers", [Edit("Fabs", f"{fab}|{node}", "wafers_per_quarter", "scale", 1.1)]
                           + [Edit("FabCapacity", f"{fab}|{node}|*", "wafers", "scale", 1.1)]
                           if ((plan.fab_capacity["fab"] == fab) & (plan.fab_capacity["node"] == node)).any()
                           else [Edit("Fabs", f"{fab}|{node}", "wafers_per_quarter", "scale", 1.1)]))
    for res in top("backend_capacity"):
        if res:
            edits = [Edit("Backend", res, "units_per_quarter", "scale", 1.1)]
            if (plan.backend_capacity["resource"] == res).any():
                edits.append(Edit("BackendCapacity", f"{res}|*", "units", "scale", 1.1))
            levers.append((f"{res} +10% capacity", edits))
    named = set(top("fab_capacity"))
    for e in plan.expansions.itertuples():
        if named and f"{e.fab}/{e.node}" not in named:
            continue
        levers.append((f"{e.fab}/{e.node} expansion up to {units(2 * e.max_wafers_per_quarter)} wafers/quarter",
                       [Edit("Expansions", f"{e.fab}|{e.node}", "max_wafers_per_quarter", "scale", 2)]))
    rows = []
    base_obj = base.summary["objective"] or 0.0
    base_margin = base.summary["margin"] or 0.0
    money_scale = max(abs(base_obj), abs(base_margin))  # what a lever's money change is read against (round-off)
    variants: list[tuple[str, PlanData]] = []
    keys: list[str] = []
    for label, lever in levers[:MAX_LEVERS]:
        try:
            p2 = shift_program(plan, lever[1], lever[2]) if isinstance(lever, tuple) else apply_edits(plan, lever)
        except Exception as exc:  # a lever that cannot apply (e.g. shifted before the data) is simply not offered
            if out_of_memory(exc):
                raise
            continue
        variants.append((label, p2))
        keys.append(shift_key(lever[1], lever[2]) if isinstance(lever, tuple) else f"lever {label}")
    if solve_many is not None:
        solved = solve_many([p2 for _, p2 in variants], keys)
    else:
        solved = []
        for _, p2 in variants:
            try:
                solved.append(solve(p2))
            except Exception as exc:  # a lever the model refuses is simply not offered
                if out_of_memory(exc):
                    raise
                solved.append(None)
    tried = 0
    for (label, _), r in zip(variants, solved, strict=True):
        tried += not overtime(r)
        if overtime(r) or r is None or r.summary["objective"] is None:
            continue
        after = r.platform_service().set_index("platform")
        for plat in short_plats:
            closed = float(unserved[plat] - (after["unserved"].get(plat, 0.0)))
            uq_closed = float(late[plat] - after["backlog_unit_quarters"].get(plat, 0.0)) if backlog else 0.0
            # a lever helps a platform when it serves more of it within the horizon, or (backlog) serves it
            # sooner without serving less; by at least half a unit, the least a sentence can show
            if closed > 0.5 or (closed >= -TOL and uq_closed > 0.5):
                rows.append({"platform": plat, "change": label, "units_closed": max(closed, 0.0),
                             "share_closed": closed / unserved[plat] if unserved[plat] > TOL else np.nan,
                             "unit_quarters_closed": uq_closed,
                             "margin_change": change(r.summary["margin"], base_margin, money_scale),
                             "objective_change": change(r.summary["objective"], base_obj, money_scale)})
    if not rows:
        return _levers_tried(pd.DataFrame(columns=cols), tried, len(variants))
    df = pd.DataFrame(rows)
    # most units served first, then (backlog) most lateness removed, then the objective; rounded so that float
    # noise between equal levers does not decide
    df = df.assign(_u=df["units_closed"].round(3), _q=df["unit_quarters_closed"].round(3),
                   _o=df["objective_change"].round(3))
    df = df.sort_values(["platform", "_u", "_q", "_o"], ascending=[True, False, False, False], kind="stable")
    best = df.groupby("platform", sort=False).head(1).copy()
    cur = plan.settings.currency
    last = plan.periods[-1]

    def sentence(r) -> str:
        money_part = (f"margin {signed_money(r.margin_change, cur)}, objective "
                      f"{signed_money(r.objective_change, cur)}")
        if not backlog:
            return (f"{r.change}: +{units(r.units_closed)} {r.platform} units ({r.share_closed:.0%} of its "
                    f"shortfall), {money_part}")
        q = r.unit_quarters_closed
        lateness_part = (f"backlog {signed_units(-q)} unit-quarters ({abs(q) / late[r.platform]:.0%} "
                         f"{'less' if q > 0 else 'more'}), " if abs(q) > 0.5 else "")
        if r.units_closed > 0.5:
            return (f"{r.change}: +{units(r.units_closed)} {r.platform} units served by {last} "
                    f"({r.share_closed:.0%} of its unserved units), {lateness_part}{money_part}")
        return f"{r.change}: {r.platform} {lateness_part}{money_part}"

    best["sentence"] = [sentence(r) for r in best.itertuples()]
    return _levers_tried(best[cols].reset_index(drop=True), tried, len(variants))


def _levers_tried(fixes: pd.DataFrame, tried: int, levers: int) -> pd.DataFrame:
    """Keeps on the table how many levers were re-solved of those offered: fewer when the analyses' time limit
    stopped them, and then a platform without a row may still have a lever that helps (the caller says so)."""
    fixes.attrs["levers"] = (tried, levers)
    return fixes


def cause_moves(results) -> pd.DataFrame:
    """How shortfall causes moved between the base (first result) and each scenario (compare reports).

    Causes are summed over quarters per (platform, cause, resource): units short without backlog, unit-quarters
    of backlog with it (the rows are backlog levels). A scenario whose backlog setting differs from the base's
    measures something else, so it gets no rows rather than a difference of units and unit-quarters.
    """
    cols = ["scenario", "platform", "cause", "resource", "measure", "base_units", "scenario_units", "delta",
            "explanation"]
    base = results[0]
    if base.causes is None:
        return pd.DataFrame(columns=cols)
    key = ["platform", "cause", "resource"]
    b = base.causes.groupby(key)["units"].sum() if len(base.causes) else pd.Series(dtype=float)
    measure = "unit-quarters" if base.backlog else "units"
    rows = []
    for r in results[1:]:
        if r.causes is None or r.backlog != base.backlog:
            continue
        s = r.causes.groupby(key)["units"].sum() if len(r.causes) else pd.Series(dtype=float)
        both = pd.concat([b.rename("base"), s.rename("scen")], axis=1).fillna(0.0)
        both["delta"] = both["scen"] - both["base"]
        for (plat, cause, res), v in both[both["delta"].abs() > 0.5].iterrows():
            what = f"{cause}{' ' + res if res else ''}"
            rows.append({"scenario": r.name, "platform": plat, "cause": cause, "resource": res, "measure": measure,
                         "base_units": v["base"], "scenario_units": v["scen"], "delta": v["delta"],
                         "explanation": f"{plat}: {what} {signed_units(v['delta'])} {measure}"})
    return pd.DataFrame(rows, columns=cols)
