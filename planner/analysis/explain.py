"""Why each platform falls short: shortfall attributed to causes, unit by unit (``models/explain.md``).

Method, in short: a cause *family* (R&D gate, yield ramp, fab capacity, back-end capacity, economics, policy)
can be *lifted* — gates opened, ramps at mature yield, capacities unbounded, shortfall made expensive enough
that serving always pays, the policy reduced to plain margin without other platforms' minimums. For every
subset of families we re-solve with those families lifted and read every platform's shortfall per quarter;
the exact Shapley value of each family then splits each (platform, quarter) shortfall among the families,
fairly where they interact (a gate and a tight fab together share what neither explains alone). Within a
family the units are split among its resources (which fab, which program) by the base plan's shadow prices.

Re-solves reuse one HiGHS model: a lift is a change of bounds, costs or coefficients, and the subsets are
visited in Gray-code order so each step toggles one family and starts from the previous basis.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from itertools import combinations

import numpy as np
import pandas as pd

from planner.analysis.results import Results, platform_service
from planner.io.validate import PlanData
from planner.model.build import Model, build_model
from planner.report.fmt import lateness, money, signed_money, signed_units, span, units
from planner.solve.policy import run_policy
from planner.solve.sessions import HighsSession

FAMILIES = ("rd_gate", "yield_ramp", "fab_capacity", "backend_capacity", "economics", "policy", "frozen_zone")
TOL = 1e-6
EXACT_MAX_COLS = 2_000  # above this (and with more than 4 families) the 2n+1-solve estimate replaces 2^n solves
MAX_LEVERS = 10


class Lifter:
    """One kept HiGHS model of the plan in which each cause family can be lifted and restored."""

    def __init__(self, run):
        self.plan = run.plan
        self.model: Model = build_model(run.plan, gates_as_bounds=True)
        self.ms = self.model.sets
        lp = self.model.lp
        self.session = HighsSession(lp, method="auto")  # first solve: interior point on large plans
        self.cost = lp.objective()
        self.base_cost = self.cost.copy()
        self.policy = self.plan.settings.policy
        w = self.model.w
        self.gate_cols = w.loc[w["gated"], "col"].to_numpy()
        ramp = w[(w["g"] < w["g_base"] - 1e-12)]
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
        self.K = self._economics_shift()
        self.lifted: set[str] = set()

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
        out.append("economics")
        if self.policy != "margin" or len(self.min_fill_rows):
            out.append("policy")
        if len(self.frozen_rows):
            out.append("frozen_zone")
        return out

    def _economics_shift(self) -> float:
        """K: more than the cost of one platform unit by any option, so with penalty + K serving always pays."""
        ms = self.ms
        w = self.model.w
        per_unit = (w["wafer_cost"] / w["g"].where(w["g"] > 0) + w["unit_cost"]).groupby(w["m"]).max()
        hold = ms.products["holding_cost"].to_numpy() * ms.T
        worst = np.nan_to_num(per_unit.reindex(range(len(ms.products))).to_numpy(), nan=0.0) + hold
        bom = ms.bom.assign(cost=ms.bom["units_per_platform"] * worst[ms.bom["m"].to_numpy()])
        per_option = bom.groupby("po")["cost"].sum()
        return float(per_option.max() if len(per_option) else 0.0) + 1.0

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
        elif family in ("fab_capacity", "backend_capacity"):
            rows = self.fab_rows if family == "fab_capacity" else self.be_rows
            up = np.full(len(rows), np.inf) if on else self.ru[rows]
            h.changeRowsBounds(len(rows), i32(rows), self.rl[rows], up)
        elif family == "economics":
            pen = self.ms.platforms["shortfall_penalty"].to_numpy()[self.s_p]
            cost[self.s_cols] = -(pen + (self.K if on else 0.0))
        elif family == "frozen_zone":
            rows = self.frozen_rows
            lo = np.full(len(rows), -np.inf) if on else self.rl[rows]
            up = np.full(len(rows), np.inf) if on else self.ru[rows]
            h.changeRowsBounds(len(rows), i32(rows), lo, up)
        elif family == "policy":
            rows = self.min_fill_rows
            lo = np.full(len(rows), -np.inf) if on else self.rl[rows]
            h.changeRowsBounds(len(rows), i32(rows), lo, self.ru[rows])

    def _shortfall_of(self, res) -> np.ndarray | None:
        if res.status != "optimal" or res.x is None:
            return None
        S = np.zeros((len(self.ms.platforms), self.ms.T))
        np.add.at(S, (self.s_p, self.s_t), res.x[self.s_cols])
        return np.where(np.abs(S) < TOL, 0.0, S)

    def shortfall_with(self, families: list[str]) -> np.ndarray | None:
        """Solve a fresh session with exactly ``families`` lifted (independent of the kept one: thread-safe)."""
        session = HighsSession(self.model.lp, method="auto")
        cost = self.base_cost.copy()
        for f in families:
            self.apply(session, cost, f, True)
        policy = "margin" if "policy" in families else self.policy
        return self._shortfall_of(run_policy(session, self.model, policy, cost))

    def shortfall(self) -> np.ndarray | None:
        """Solve with the current lifts; platform × quarter shortfall (None if not optimal)."""
        mark = self.session.mark()
        policy = "margin" if "policy" in self.lifted else self.policy
        res = run_policy(self.session, self.model, policy, self.cost.copy())
        self.session.reset(mark)
        if self.model.lp.n_cols < EXACT_MAX_COLS:
            # small plans: warm dual simplex from the previous basis (one family toggled per solve); on large
            # plans interior point is steadier (a cost change such as the economics lift makes dual simplex
            # restart far from optimal: 15 s against 1.5 s measured on a 36k-column plan)
            self.session.use_simplex()
        return self._shortfall_of(res)


def _all_subsets(lifter: Lifter, fams: list[str], base_S: np.ndarray) -> dict[int, np.ndarray]:
    """Shortfall for every subset of lifted families, visited in Gray-code order (one toggle per solve)."""
    values: dict[int, np.ndarray] = {0: base_S}
    prev = 0
    for mask in _gray(len(fams))[1:]:
        diff = mask ^ prev
        f = diff.bit_length() - 1
        lifter.toggle(fams[f], bool(mask & diff))
        S = lifter.shortfall()
        values[mask] = S if S is not None else base_S
        prev = mask
    return values


def _extreme_orders(lifter: Lifter, fams: list[str], base_S: np.ndarray) -> dict[int, np.ndarray]:
    """Shortfall with each family lifted alone, with all lifted, and with all but one lifted (2n + 1 solves).

    The solves are independent, so they run as separate HiGHS instances on a thread pool (HiGHS releases the
    GIL: two threads solve two instances in half the time on two cores, measured).
    """
    from concurrent.futures import ThreadPoolExecutor

    n = len(fams)
    full = (1 << n) - 1
    masks = [1 << f for f in range(n)] + [full] + [full & ~(1 << f) for f in range(n)]
    workers = max(1, min(len(masks), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda m: lifter.shortfall_with([fams[f] for f in range(n) if m >> f & 1]), masks))
    values: dict[int, np.ndarray] = {0: base_S}
    for m, S in zip(masks, results, strict=True):
        values[m] = S if S is not None else (np.zeros_like(base_S) if m == full else base_S)
    return values


def _extreme_order_estimate(values: dict[int, np.ndarray], n: int) -> list[np.ndarray]:
    """½ (effect of f lifted first + effect of f lifted last): the Shapley value's two extreme orders.

    Exact for two families and for families that do not interact; with interactions it shares them equally
    between the first and last positions instead of averaging over all n! orders.
    """
    full = (1 << n) - 1
    base = values[0]
    return [0.5 * ((base - values[1 << f]) + (values[full & ~(1 << f)] - values[full])) for f in range(n)]


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


def _split_positive(phi: list[np.ndarray], total: np.ndarray) -> list[np.ndarray]:
    """Keep each family's positive share and rescale so the shares add up to the shortfall.

    A Shapley value is negative when lifting a family helps another platform more than this one (it takes
    back supply); such a family did not cause this shortfall, so it gets no units, and the causes that did
    share the whole shortfall in proportion to their values.
    """
    pos = [np.maximum(p, 0.0) for p in phi]
    s = sum(pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(s > TOL, total / s, 0.0)
    return [p * scale for p in pos]


def explain_shortfalls(run) -> pd.DataFrame:
    """ShortfallCauses rows (contract: platform, period, shortfall, cause, resource, units, competitors,
    explanation) for every (platform, quarter) with a shortfall in the run's solution."""
    cols = ["platform", "period", "shortfall", "cause", "resource", "units", "competitors", "explanation"]
    res = run.results
    svc = res.service
    if not run.solution.has_solution or svc.empty or svc["shortfall"].max() <= TOL:
        return pd.DataFrame(columns=cols)
    lifter = Lifter(run)
    ms = lifter.ms
    P, T = len(ms.platforms), ms.T
    base_S = np.zeros((P, T))
    p_of = dict(zip(ms.platforms["platform"], ms.platforms["p"], strict=True))
    t_of = {q: i for i, q in enumerate(ms.periods)}
    base_S[svc["platform"].map(p_of).to_numpy(), svc["period"].map(t_of).to_numpy()] = svc["shortfall"].to_numpy()
    fams = lifter.families()
    n = len(fams)
    exact = n <= 4 or lifter.model.lp.n_cols <= EXACT_MAX_COLS
    values = _all_subsets(lifter, fams, base_S) if exact else _extreme_orders(lifter, fams, base_S)
    residual = values[(1 << n) - 1]
    phi = shapley(values, n) if exact else _extreme_order_estimate(values, n)
    phi = _split_positive(phi, base_S - residual)
    phi_by = dict(zip(fams, phi, strict=True))
    return _rows(run, lifter, base_S, phi_by, residual)


def _competitors(run, products: list[str], period: str, platform: str) -> str:
    bom = run.plan.bom
    users = set(bom.loc[bom["product"].isin(products), "platform"]) - {platform}
    alloc = run.results.allocation
    got = alloc[(alloc["period"] == period) & alloc["platform"].isin(users) & (alloc["platform_units"] > TOL)]
    return ";".join(sorted(got["platform"].unique()))


def _rows(run, lifter: Lifter, base_S: np.ndarray, phi: dict[str, np.ndarray], residual: np.ndarray) -> pd.DataFrame:
    ms = lifter.ms
    plan = run.plan
    periods = ms.periods
    prods = ms.products.set_index("product")
    bom = plan.bom
    cap = run.results.capacity
    shadow = cap.set_index(["resource", "period"])["shadow_price"]
    ramp_curves = ms.ramp
    out = []
    for p, plat in enumerate(ms.platforms["platform"]):
        my_products = sorted(bom.loc[bom["platform"] == plat, "product"].unique())
        mp = prods.loc[my_products]
        for t in range(ms.T):
            S = base_S[p, t]
            if S <= TOL:
                continue
            period = periods[t]

            def add(cause: str, resource: str, u: float, text: str, competitors: str = "", _plat: str = plat,
                    _period: str = period, _S: float = S) -> None:
                if u > TOL * max(1.0, _S):
                    out.append({"platform": _plat, "period": _period, "shortfall": _S, "cause": cause,
                                "resource": resource, "units": u, "competitors": competitors, "explanation": text})

            # R&D gate: programs of this platform's products whose first output lands after t
            u = phi.get("rd_gate", np.zeros_like(base_S))[p, t]
            if u > 0:
                late = mp[(mp["ready"] + mp["cycle_quarters"] > t) & mp["program"].notna()]
                progs = sorted(late["program"].unique()) or sorted(mp["program"].dropna().unique())
                for prog in progs:
                    ready = int(ms.programs.set_index("program").loc[prog, "ready"])
                    rl = periods[ready] if 0 <= ready < ms.T else ("after the horizon" if ready >= ms.T else
                                                                   "before the horizon")
                    gated = ", ".join(mp.index[mp["program"] == prog])
                    if prog in set(late["program"]):
                        text = (f"{plat} is short {units(S)} units in {period}: program {prog} is ready only in "
                                f"{rl}, so its memory ({gated}) cannot ship yet.")
                    else:
                        text = (f"Program {prog} was ready only in {rl}: had it been ready sooner, {gated} could "
                                f"have been built ahead and held for {plat} in {period}.")
                    add("rd_gate", prog, u / len(progs), text)
            u = phi.get("yield_ramp", np.zeros_like(base_S))[p, t]
            if u > 0:
                ramping = [m for m in my_products if prods.loc[m, "m"] in ramp_curves]
                ramping = ramping or my_products
                for m in ramping:
                    curve = ramp_curves.get(int(prods.loc[m, "m"]))
                    k = t - int(prods.loc[m, "cycle_quarters"]) - int(prods.loc[m, "ready"])
                    f = float(curve[min(max(k, 0), len(curve) - 1)]) if curve is not None else 1.0
                    add("yield_ramp", m, u / len(ramping),
                        f"{m} is still ramping for output in {period} (die yield at {f:.0%} of mature).")
            u = phi.get("fab_capacity", np.zeros_like(base_S))[p, t]
            lead = residual[p, t]
            if u > 0:
                feeds = []
                for m in my_products:
                    s = t - int(prods.loc[m, "cycle_quarters"])
                    if s < 0:
                        continue
                    for fab in ms.fabs.loc[ms.fabs["node"] == prods.loc[m, "node"], "fab"]:
                        res_name = f"{fab}/{prods.loc[m, 'node']}"
                        feeds.append((res_name, periods[s], float(shadow.get((res_name, periods[s]), 0.0)), m))
                _split(add, "fab_capacity", u, feeds, plat, period, run,
                       lambda r, q, v, _p=plat, _q=period: f"{r} is full in {q}" + (
                           f" (one more wafer is worth {money(v)})" if v > 0 else "") + f": {_p} gets less in {_q}.")
            u = phi.get("backend_capacity", np.zeros_like(base_S))[p, t]
            if u > 0:
                feeds = [(str(prods.loc[m, "backend"]), period,
                          float(shadow.get((str(prods.loc[m, "backend"]), period), 0.0)), m)
                         for m in my_products if isinstance(prods.loc[m, "backend"], str)]
                _split(add, "backend_capacity", u, feeds, plat, period, run,
                       lambda r, q, v, _p=plat: f"Back-end line {r} is full in {q}" + (
                           f" (one more unit is worth {money(v)})" if v > 0 else "") + f": {_p} gets less.")
            u = phi.get("economics", np.zeros_like(base_S))[p, t]
            if u > 0:
                add("economics", "", u, f"Serving {plat} in {period} would cost more than it earns plus the "
                                       "shortfall penalty it avoids.")
            u = phi.get("frozen_zone", np.zeros_like(base_S))[p, t]
            if u > 0:
                zone = ms.periods[min(ms.frozen_quarters)] + (
                    f"–{ms.periods[max(ms.frozen_quarters)]}" if len(ms.frozen_quarters) > 1 else "")
                add("frozen_zone", "", u, f"The frozen zone holds the baseline's wafer starts in {zone}: had they "
                                          f"been free, more could have been made for {plat} in {period}.")
            u = phi.get("policy", np.zeros_like(base_S))[p, t]
            if u > 0:
                comp = _competitors(run, my_products, period, plat)
                add("policy", "", u, f"The '{plan.settings.policy}' policy or another platform's min_fill gives the "
                                     f"supply to {comp.replace(';', ', ') or 'other platforms'}.", comp)
            if lead > TOL:
                first = min(int(prods.loc[m, "cycle_quarters"]) for m in my_products)
                add("fab_capacity", "initial inventory", lead,
                    f"No wafer started inside the horizon can be finished by {period} (cycle time {first} "
                    f"quarter{'s' if first != 1 else ''}); only initial inventory and wafers already in flight (WIP) could serve it.")
    df = pd.DataFrame(out, columns=["platform", "period", "shortfall", "cause", "resource", "units", "competitors",
                                    "explanation"])
    return df


def _split(add, cause: str, u: float, feeds: list[tuple[str, str, float, str]], plat: str, period: str, run,
           text) -> None:
    """Split a family's units among its resources feeding this platform-quarter, by shadow price."""
    by_res: dict[tuple[str, str], list] = {}
    for r, q, v, m in feeds:
        by_res.setdefault((r, q), [0.0, []])
        by_res[(r, q)][0] = max(by_res[(r, q)][0], v)
        by_res[(r, q)][1].append(m)
    if not by_res:
        add(cause, "", u, f"{plat} is short in {period}: capacity.")
        return
    weights = np.array([v for v, _ in by_res.values()])
    if weights.sum() <= 0:
        weights = np.ones(len(by_res))
    weights = weights / weights.sum()
    for ((r, q), (v, ms_)), wgt in zip(by_res.items(), weights, strict=True):
        if wgt <= 0:
            continue
        add(cause, r, u * wgt, text(r, q, v), _competitors(run, ms_, period, plat))


def platform_sentences(causes: pd.DataFrame, plan, service: pd.DataFrame | None = None) -> list[str]:
    """One sentence per platform: its shortfall and the causes' shares of it in percent.

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
    from planner.model.sets import ready_quarters
    from planner.periods import index_label

    first = plan.settings.first_period
    ready = {prog: index_label(int(t), first) for prog, t in
             zip(plan.programs["program"], ready_quarters(plan.programs, first), strict=True)}
    names = {"rd_gate": "{r} qualification (ready {ready})", "yield_ramp": "{r} yield ramp",
             "fab_capacity": "{r} wafers", "backend_capacity": "{r} line", "economics": "economics",
             "policy": "allocation policy", "frozen_zone": "the frozen zone (baseline's starts)"}
    for plat, g in causes.groupby("platform", sort=False):
        total = g.drop_duplicates(["period"])["shortfall"].sum()
        parts = g.groupby(["cause", "resource"])["units"].sum().sort_values(ascending=False)
        periods = sorted(g["period"].unique())
        descr = []
        for (cause, res), u in parts.items():
            if u / total < 0.005:
                continue
            if cause == "fab_capacity" and res == "initial inventory":
                label = "cycle time at the horizon start (only initial inventory and WIP can serve it)"
            else:
                label = names[cause].format(r=res, ready=ready.get(res, "?")) if res else names[cause].format(
                    r="", ready="")
            descr.append(f"{u / total:.0%} {label}")
        if not backlog:
            lines.append(f"{plat}: {units(total)} units short {span(periods, horizon)}; " + ", ".join(descr) + ".")
            continue
        late = (lateness(per_platform.loc[plat], horizon[-1]) + "; "
                if per_platform is not None and plat in per_platform.index else "")
        lines.append(f"{plat}: {late}{units(total)} unit-quarters of backlog {span(periods, horizon)}: "
                     + ", ".join(descr) + ".")
    return lines


def what_would_close(run, causes: pd.DataFrame, solve: Callable[[PlanData], Results]) -> pd.DataFrame:
    """For each platform with a shortfall, the single change from the data's own levers that closes most of it.

    Levers: each program ready one or two quarters earlier; each fab/node and back-end line feeding a short
    platform +10 % capacity; each expansion option allowed twice its maximum and one quarter sooner. Each
    lever is one re-solve of the whole plan through ``solve`` (the caller's pipeline, so this module never
    imports it), and every platform's effect comes from the same solve.
    """
    from planner.analysis.rd_impact import shift_program
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
    for label, lever in levers[:MAX_LEVERS]:
        try:
            if isinstance(lever, tuple):
                p2 = shift_program(plan, lever[1], lever[2])
            else:
                p2 = apply_edits(plan, lever)
            r = solve(p2)
        except Exception:  # a lever that cannot apply (e.g. shifted before the data) is simply not offered
            continue
        if r.summary["objective"] is None:
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
                             "margin_change": r.summary["margin"] - base_margin,
                             "objective_change": r.summary["objective"] - base_obj})
    if not rows:
        return pd.DataFrame(columns=cols)
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
    return best[cols].reset_index(drop=True)


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
