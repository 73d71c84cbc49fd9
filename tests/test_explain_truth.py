"""Every ShortfallCauses row is true of the plan (issue 15): its truth condition (``models/explain.md``) is
checked here from the report's own tables and the plan's data, independently of how ``explain`` found it, on
hand-built plans whose answer is derived in the docstring and on generated plans across policies, backlog,
risk starts, min_fill and both attribution paths.

Builders' default plan: fab F (node n1) 100 wafers/quarter at $20; product P = 10 units per wafer at $10 (so
$2 of wafer per unit), no cycle time; platform X needs one P.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from builders import plan
from click.testing import CliRunner
from conftest import EXAMPLE
from test_model import random_frames

from planner import api
from planner.analysis.explain import CAUSES, explain_shortfalls, platform_sentences
from planner.cli import main
from planner.io.generate import generate_frames
from planner.io.load import plan_from_frames
from planner.periods import period_index
from planner.report.fmt import money, units

TOL = 1e-6


def causes_of(p):
    run = api.run(p)
    return run, explain_shortfalls(run)


def by(c, *cols):
    return c.groupby(list(cols))["units"].sum().to_dict()


# ---- the truth conditions, from the tables ------------------------------------------------------------------
class Tables:
    """The report's tables and the plan's data in the shape the truth conditions need."""

    def __init__(self, run):
        self.run = run
        plan = run.plan
        res = run.results
        self.plan = plan
        self.T = plan.settings.horizon_quarters
        self.periods = plan.periods
        self.t_of = {q: i for i, q in enumerate(self.periods)}
        first = plan.settings.first_period
        prods = plan.products.set_index("product")
        self.prods = prods
        ready = {r.program: period_index(r.start_period, first) + int(r.development_quarters)
                 + int(r.qualification_quarters) for r in plan.programs.itertuples()}
        self.ready = {m: (ready[g] if isinstance(g, str) else None) for m, g in prods["program"].items()}
        risk = plan.settings.risk_starts
        self.start_lo = {m: (max(0, r - (int(prods.loc[m, "cycle_quarters"]) if risk else 0)) if r is not None
                             else 0) for m, r in self.ready.items()}
        self.c = prods["cycle_quarters"].astype(int).to_dict()
        inv = res.supply.pivot(index="product", columns="period", values="inventory_end")[self.periods]
        self.inv = {m: row.to_numpy() for m, row in inv.iterrows()}
        scale = {m: max(1.0, self.inv[m].max(), float(prods.loc[m, "initial_inventory"])) for m in prods.index}
        self.unit_tol = {m: 1e-6 * s for m, s in scale.items()}
        cap = res.capacity
        self.cap = {(r.resource, r.period): (r.capacity, r.used) for r in cap.itertuples()}
        self.bom = plan.bom
        self.svc = res.service.set_index(["platform", "period"])
        self.alloc = res.allocation
        fabs = plan.fabs
        self.fabs_of_node = {n: [f"{f}/{n}" for f in g["fab"]] for n, g in fabs.groupby("node")}
        self.wafer_cost = {f"{r.fab}/{r.node}": r.wafer_cost for r in fabs.itertuples()}
        self.ramp = {m: g.sort_values("quarter") for m, g in plan.yield_ramp.groupby("product")}

    def full(self, resource: str, q: int) -> bool:
        cap, used = self.cap[(resource, self.periods[q])]
        return used >= cap - 1e-6 * max(1.0, cap)

    def products_of(self, plat: str) -> list[str]:
        if not hasattr(self, "_products_of"):
            self._products_of = {p: sorted(g["product"].unique()) for p, g in self.bom.groupby("platform")}
        return self._products_of.get(plat, [])

    def options_of(self, plat: str) -> dict[str, list[tuple[str, float, float]]]:
        b = self.bom[self.bom["platform"] == plat]
        return {o: list(zip(g["product"], g["units_per_platform"], g["price"], strict=True))
                for o, g in b.groupby("option")}

    def feeds(self, m: str, t: int) -> list[int]:
        """Landing quarters whose output reaches t: t, and earlier ones while the stock is carried."""
        out, L = [], t
        while L >= 0:
            if L - self.c[m] >= 0:
                out.append(L)
            if L == 0 or self.inv[m][L - 1] <= self.unit_tol[m]:
                break
            L -= 1
        return out

    def factor(self, m: str, s: int) -> float:
        """Ramp factor of a wafer of m started in s, from the YieldRamp rows (gaps hold the previous factor)."""
        if m not in self.ramp or self.ready[m] is None:
            return 1.0
        k = max(0, s - self.ready[m])
        g = self.ramp[m]
        listed = g[g["quarter"] <= k]
        return float(listed["factor"].iloc[-1]) if len(listed) else float(g["factor"].iloc[0])

    def blocked(self, m: str, t: int) -> bool:
        """No start inside the horizon lands m by t, and no stock of it is left unused from t on."""
        return self.c[m] > t and self.inv[m][t:].min() <= self.unit_tol[m]

    def free_cost(self, m: str) -> float:
        r = self.prods.loc[m]
        g = r["gross_dies_per_wafer"] * r["die_yield"] * r["assembly_yield"] / r["dies_per_unit"]
        return min(self.wafer_cost[f] for f in self.fabs_of_node[r["node"]]) / g + r["unit_cost"]

    def penalty_avoided(self, plat: str, t: int) -> float:
        pen = float(self.plan.platforms.set_index("platform").loc[plat, "shortfall_penalty"])
        return pen * ((self.T - t) if self.plan.settings.backlog else 1)


def _quarters_named(text: str, after: str) -> list[str]:
    seg = text.split(after, 1)[1].split(":")[0].split("(")[0]
    return re.findall(r"\d{4}Q[1-4]", seg)


def violations(run, causes: pd.DataFrame) -> list[str]:
    """Every way the rows fail the contract or a truth condition of models/explain.md (empty: all true)."""
    tb = Tables(run)
    bad: list[str] = []
    svc = run.results.service
    short = svc[svc["shortfall"] > TOL].set_index(["platform", "period"])["shortfall"]
    got = causes.groupby(["platform", "period"])["units"].sum()
    if set(got.index) != set(short.index):
        bad.append(f"short (platform, period) without rows: {sorted(set(short.index) - set(got.index))}; rows "
                   f"without shortfall: {sorted(set(got.index) - set(short.index))}")
    for key, s in short.items():
        if key in got.index and abs(got[key] - s) > 1e-6 * max(1.0, s):
            bad.append(f"{key}: rows add up to {got[key]:.6f}, shortfall {s:.6f}")
    if len(causes.groupby(["platform", "period", "cause", "resource"])) != len(causes):
        bad.append("more than one row per (platform, period, cause, resource)")
    policy = run.plan.settings.policy
    has_min = (run.plan.platforms["min_fill"].fillna(0) > 0).any()
    for r in causes.itertuples():
        where = f"{r.platform} {r.period} {r.cause} {r.resource!r}"
        t = tb.t_of[r.period]
        mine = tb.products_of(r.platform)
        if r.units <= 0:
            bad.append(f"{where}: units {r.units}")
        if r.cause not in CAUSES:
            bad.append(f"{where}: unknown cause")
        if abs(r.shortfall - short.get((r.platform, r.period), np.nan)) > 1e-6 * max(1.0, r.shortfall):
            bad.append(f"{where}: shortfall column {r.shortfall} is not the Service sheet's")
        comp = [c for c in r.competitors.split(";") if c]
        if "no cause's condition holds" in r.explanation:
            bad.append(f"{where}: no cause found")
        if r.platform in comp:
            bad.append(f"{where}: names itself as a competitor")
        if r.cause == "fab_capacity":
            # F/n binds in a start quarter that feeds t and makes one of p's products
            if "/" not in r.resource:
                bad.append(f"{where}: no fab/node")
                continue
            node = r.resource.split("/", 1)[1]
            ok = [(m, L - tb.c[m]) for m in mine if tb.prods.loc[m, "node"] == node
                  for L in tb.feeds(m, t) if tb.full(r.resource, L - tb.c[m])]
            if not ok:
                bad.append(f"{where}: not full in any start quarter feeding {r.period}")
            named = _quarters_named(r.explanation, "full in ") or _quarters_named(r.explanation, "capacity in ")
            if not named or any(not tb.full(r.resource, tb.t_of[q]) for q in named):
                bad.append(f"{where}: sentence names quarters {named} where it is not full")
            made = set(tb.prods.index[tb.prods["node"] == node])
            takers = set(tb.alloc.loc[tb.alloc["product"].isin(made) & (tb.alloc["memory_units"] > TOL), "platform"])
            if set(comp) - takers:
                bad.append(f"{where}: competitors {set(comp) - takers} got nothing made on {node}")
        elif r.cause == "backend_capacity":
            users = [m for m in mine if tb.prods.loc[m, "backend"] == r.resource]
            if not r.resource or not users:
                bad.append(f"{where}: not a back-end line of the platform's products")
                continue
            if not any(tb.full(r.resource, L) for m in users for L in tb.feeds(m, t)):
                bad.append(f"{where}: not full in a quarter feeding {r.period}")
            on_line = set(tb.prods.index[tb.prods["backend"] == r.resource])
            takers = set(tb.alloc.loc[tb.alloc["product"].isin(on_line) & (tb.alloc["memory_units"] > TOL),
                                      "platform"])
            if set(comp) - takers:
                bad.append(f"{where}: competitors {set(comp) - takers} got nothing from {r.resource}")
        elif r.cause == "yield_ramp":
            # a product of p whose ramp factor is below 1 at a start quarter that feeds t
            m = r.resource
            if m not in mine or m not in tb.ramp or tb.ready[m] is None:
                bad.append(f"{where}: not a ramping product of the platform")
                continue
            starts = [L - tb.c[m] for L in tb.feeds(m, t) if L - tb.c[m] >= tb.start_lo[m]]
            if not any(tb.factor(m, s) < 1 for s in starts):
                bad.append(f"{where}: ramp factor 1 in every start quarter feeding {r.period}")
            q = re.search(r"started in (\d{4}Q[1-4]) yield (\d+)%", r.explanation)
            if (not q or tb.t_of[q.group(1)] not in starts or int(q.group(2)) >= 100
                    or round(100 * tb.factor(m, tb.t_of[q.group(1)])) != int(q.group(2))):
                bad.append(f"{where}: sentence ramp figure is wrong: {r.explanation}")
        elif r.cause == "rd_gate":
            # G gates a product of p; lifting G's gate alone opens a start quarter (with wafers) that lands by t
            gated = [m for m in mine if tb.prods.loc[m, "program"] == r.resource]
            opens = [(m, s) for m in gated for s in range(0, min(tb.start_lo[m] - 1, t - tb.c[m]) + 1)
                     if any(tb.cap[(f, tb.periods[s])][0] > 0 for f in tb.fabs_of_node[tb.prods.loc[m, "node"]])]
            if not opens:
                bad.append(f"{where}: lifting the gate opens no start landing by {r.period}")
            if "lands before" in r.explanation and min(tb.start_lo[m] + tb.c[m] for m in gated) <= t:
                bad.append(f"{where}: says nothing lands by {r.period}, but starts from "
                           f"{min(tb.start_lo[m] for m in gated)} land in time")
        elif r.cause == "horizon_start":
            # every option needs a product no start inside the horizon lands by t, and its stock is used up
            for o, items in tb.options_of(r.platform).items():
                if not any(tb.blocked(m, t) for m, _, _ in items):
                    bad.append(f"{where}: option {o} can land by {r.period}")
            if set(comp) - set(tb.alloc["platform"]):
                bad.append(f"{where}: competitors got nothing")
        elif r.cause == "economics":
            # serving does not pay even with free capacity, gates and ramps (against never serving, or — with
            # backlog — against waiting for a later quarter), with the numbers in the sentence
            opts = tb.options_of(r.platform)
            margin = {o: sum(u * pr for _, u, pr in items) - sum(u * tb.free_cost(m) for m, u, _ in items)
                      for o, items in opts.items()}
            live = [o for o, items in opts.items() if not any(tb.blocked(m, t) for m, _, _ in items)]
            never = tb.penalty_avoided(r.platform, t)
            pays = [o for o in live if margin[o] + never > 1e-9 * max(1.0, abs(margin[o]))]
            cur = run.plan.settings.currency
            if not live:
                bad.append(f"{where}: nothing can land by then (horizon_start, not economics)")
            elif "against waiting" in r.explanation:
                pen = float(run.plan.platforms.set_index("platform").loc[r.platform, "shortfall_penalty"])
                later = [margin[o] - pen * (t2 - t) for t2 in range(t + 1, tb.T) for o, items in opts.items()
                         if not any(tb.blocked(m, t2) for m, _, _ in items)]
                if not run.plan.settings.backlog or not later:
                    bad.append(f"{where}: waiting is not an option")
                elif any(margin[o] > max(later) + 1e-9 * max(1.0, abs(max(later))) for o in pays):
                    bad.append(f"{where}: serving now with an option beats waiting: {margin}, later {max(later)}")
                elif not any(money(abs(margin[o]), cur) in r.explanation for o in pays):
                    bad.append(f"{where}: sentence does not state the margin now: {r.explanation}")
            else:
                if pays:
                    bad.append(f"{where}: options {pays} that can land by then pay: {margin}, penalty {never}")
                if not any(money(sum(u * pr for _, u, pr in opts[o]), cur) in r.explanation
                           and money(margin[o] - sum(u * pr for _, u, pr in opts[o]), cur).lstrip("-")
                           in r.explanation for o in live):
                    bad.append(f"{where}: sentence does not state price and cost: {r.explanation}")
            if r.resource:
                bad.append(f"{where}: economics names a resource")
        elif r.cause == "policy":
            if policy == "margin" and not has_min:
                bad.append(f"{where}: no policy stage or minimum fill in this plan")
            lifted = _policy_lifted(run)
            s_lift = lifted.set_index(["platform", "period"])["shortfall"].get((r.platform, r.period), 0.0)
            if s_lift >= r.shortfall - 1e-6 * max(1.0, r.shortfall):
                bad.append(f"{where}: plain margin without minimums gives it no more ({s_lift} vs {r.shortfall})")
    return bad


_LIFTED: dict[int, pd.DataFrame] = {}


def _policy_lifted(run) -> pd.DataFrame:
    """Service with the policy reduced to margin and every min_fill removed: an independent re-solve."""
    key = id(run)
    if key not in _LIFTED:
        plats = run.plan.platforms.assign(min_fill=0.0)
        p2 = dataclasses.replace(run.plan, settings=dataclasses.replace(run.plan.settings, policy="margin"),
                                 platforms=plats)
        _LIFTED[key] = api.run(p2).results.service
    return _LIFTED[key]


def assert_true(run, causes):
    bad = violations(run, causes)
    assert not bad, "\n".join(bad[:20])


# ---- bullet 1: economics means only what it says ------------------------------------------------------------
def two_platforms(**kw):
    """A: 1 P per platform unit at $20; B: 2 P at $22 each; P costs $2 of wafer; one fab of 1000 units of P."""
    return plan(quarters=1,
                platforms=[{"platform": "A", "priority": 1, "shortfall_penalty": 0},
                           {"platform": "B", "priority": 1, "shortfall_penalty": 0}],
                bom=[{"platform": "A", "option": "o", "product": "P", "units_per_platform": 1, "price": 20},
                     {"platform": "B", "option": "o", "product": "P", "units_per_platform": 2, "price": 22}],
                demand=[{"platform": "A", "period": "2026Q1", "units": 1000},
                        {"platform": "B", "period": "2026Q1", "units": 1000}], **kw)


def test_capacity_competition_is_not_economics():
    """The issue's case. Per unit of P, B earns $22 and A $20, both far above the $2 it costs, so the margin
    plan gives the fab's 1000 units of P to B (500 platform units) and A gets nothing: A is short 1000 because
    F/n1 is full and B took it — fab_capacity F/n1 with competitor B, never economics (serving A pays $18 per
    unit). B is short 500 because the same fab is full with its own memory: fab_capacity, no competitor."""
    run, c = causes_of(two_platforms())
    assert by(c, "platform", "cause", "resource") == pytest.approx({("A", "fab_capacity", "F/n1"): 1000,
                                                                     ("B", "fab_capacity", "F/n1"): 500})
    assert c.set_index("platform")["competitors"].to_dict() == {"A": "B", "B": ""}
    assert_true(run, c)


def test_economics_states_price_penalty_and_cost():
    """Price $1 per P, penalty $0.5 per platform unit, P costs $2 of wafer even at free capacity: serving loses
    $0.5 per unit, so all 500 short are economics and the sentence says $1 + $0.5 (rounded $0 and $1 by money())
    against $2. A second platform on the same fab at $10 is served in full and has no rows."""
    p = plan(quarters=1, products=[{"price": 1}],
             platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0.5},
                        {"platform": "Y", "priority": 1, "shortfall_penalty": 0}],
             bom=[{"platform": "X", "option": "o", "product": "P", "units_per_platform": 1},
                  {"platform": "Y", "option": "o", "product": "P", "units_per_platform": 1, "price": 10}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 500},
                     {"platform": "Y", "period": "2026Q1", "units": 100}])
    run, c = causes_of(p)
    assert by(c, "platform", "cause") == pytest.approx({("X", "economics"): 500})
    text = c["explanation"].iloc[0]
    assert "earns $1 plus $0 of shortfall penalty avoided, but its memory costs $2" in text
    assert_true(run, c)


def test_unprofitable_platform_under_priority_is_short_for_economics():
    """priority with one tier is the margin policy (formulation.md, "priority"): tier-1 H earns $1 per P
    (costs $2), has no shortfall penalty and wants 1500; the fab makes 1000. Serving H loses $1 a unit even with
    free capacity, so the plan serves none and all 1500 short are economics ($1 + $0 < $2)."""
    p = plan(quarters=1, settings={"policy": "priority"}, products=[{"price": 1}],
             platforms=[{"platform": "H", "priority": 1, "shortfall_penalty": 0}],
             bom=[{"platform": "H", "option": "o", "product": "P", "units_per_platform": 1}],
             demand=[{"platform": "H", "period": "2026Q1", "units": 1500}])
    run, c = causes_of(p)
    assert by(c, "cause", "resource") == pytest.approx({("economics", ""): 1500})
    assert_true(run, c)


# ---- bullet 2: causes add up, on every plan -------------------------------------------------------------------
def test_all_negative_shapley_values_still_add_up():
    """margin policy, H earns $1 per P (costs $2), no penalty, min_fill 0.6 of 1500 = 900; the fab makes 1000.
    The plan serves the 900 it must. The Shapley game: S(∅) = 600, S(fab) = 600 (min_fill still serves 900),
    S(policy) = 1500 (nothing served), S(both) = 1500, so φ_fab = 0 and φ_policy = ½(−900 − 900) = −900: no share
    is positive. The old split lost all 600 units; now they are all economics ($1 + $0 < $2 a unit)."""
    p = plan(quarters=1, products=[{"price": 1}],
             platforms=[{"platform": "H", "priority": 1, "shortfall_penalty": 0, "min_fill": 0.6}],
             bom=[{"platform": "H", "option": "o", "product": "P", "units_per_platform": 1}],
             demand=[{"platform": "H", "period": "2026Q1", "units": 1500}])
    run, c = causes_of(p)
    assert c["units"].sum() == pytest.approx(600)
    assert by(c, "cause", "resource") == pytest.approx({("economics", ""): 600})
    assert_true(run, c)


SETTINGS = [dict(policy=pol, backlog=bl, risk_starts=rs, min_fill=mf, path=path)
            for pol in ("margin", "priority", "fair_share") for bl in (False, True) for rs in (False, True)
            for mf in (False, True) for path in ("exact", "estimate")]


def _generated(seed: int, s: dict):
    """A tiny generated plan (half of them from planner.generate, half from the random frames of
    test_model) with the given policy, backlog, risk starts and min_fill."""
    if seed % 2:
        f = generate_frames(3 + seed % 3, 4 + seed % 4, 2 + seed % 2, 5, seed=seed)
        del f["Scenarios"], f["Uncertainty"]  # not needed here, and each scenario would be validated too
    else:
        f = random_frames(seed)
        f["Platforms"] = f["Platforms"].assign(min_fill=0.0)
        if s["min_fill"]:
            f["Platforms"].loc[0, "min_fill"] = 0.1
    st = f["Settings"].set_index("key")["value"].to_dict()
    st.update({"policy": s["policy"], "backlog": str(s["backlog"]).lower(), "risk_starts": str(s["risk_starts"]).lower()})
    f["Settings"] = pd.DataFrame({"key": list(st), "value": list(st.values())})
    if not s["min_fill"]:
        f["Platforms"] = f["Platforms"].assign(min_fill=0.0)
    return plan_from_frames(f)


def _plans_with_shortfall(per_setting: int):
    """(settings, run, causes) for ``per_setting`` plans with a shortfall per setting: plans with none (or
    infeasible ones) are replaced by the next seed, never counted."""
    import planner.analysis.explain as ex

    seed = 0
    for s in SETTINGS:
        found = 0
        for _ in range(60):
            seed += 1
            p = _generated(seed, s)
            run = api.run(p)
            if not run.solution.has_solution or run.results.service["shortfall"].max() <= TOL:
                continue
            with pytest.MonkeyPatch.context() as mp:
                if s["path"] == "estimate":
                    mp.setattr(ex, "EXACT_MAX_COLS", 0)
                    mp.setattr(ex, "EXACT_MAX_FAMILIES", 0)
                c = explain_shortfalls(run)
            yield s, run, c
            found += 1
            if found == per_setting:
                break
        assert found == per_setting, f"only {found} plans with a shortfall for {s}"


@pytest.fixture(scope="module")
def generated():
    """240 generated plans with a shortfall, explained (shared by the tests below: each costs a solve)."""
    return list(_plans_with_shortfall(5))


def test_every_row_true_and_adding_up_on_generated_plans(generated):
    """≥ 200 generated plans with a shortfall (5 per combination of policy × backlog × risk starts × min_fill ×
    exact/estimate path): rows add up to each (platform, quarter)'s shortfall and every row meets its truth
    condition (``violations``). Also counts that every cause was exercised, so the test cannot pass on plans
    where nothing interesting happens."""
    n, seen, problems = 0, pd.Series(0, index=list(CAUSES)), []
    for s, run, c in generated:
        n += 1
        seen = seen.add(c["cause"].value_counts(), fill_value=0)
        problems += [f"{s}: {b}" for b in violations(run, c)]
    assert n >= 200
    assert not problems, "\n".join(problems[:30])
    # frozen_zone needs a --baseline; tests/test_baseline.py exercises it
    missing = [k for k in CAUSES if seen[k] == 0 and k != "frozen_zone"]
    assert not missing, f"no row of {missing} in {n} plans"


# ---- bullet 3 and 5: capacity rows name their resource and who got the supply ----------------------------------
def vera_plan(**kw):
    """Vera Rubin (8 HBM4 per unit at $720 each) and Vera CPU (8 SOCAMM per unit at $640 each) share fab F
    (node n1, 100 wafers a quarter at $20): HBM4 gives 5 units per wafer, SOCAMM 10, each costs $1 per unit
    held. Both want 100 platform units in each of two quarters. A wafer of HBM4 earns $720 × 5 = $3,600, one of
    SOCAMM $640 × 10 = $6,400, so each quarter Vera CPU takes the 80 wafers it needs (800 SOCAMM) and Rubin
    the other 20 (100 HBM4 = 12.5 platform units): Rubin is 87.5 short per quarter, fab_capacity F/n1 with
    competitor Vera CPU."""
    prods = [{"product": "HBM4", "gross_dies_per_wafer": 50, "price": 720, "holding_cost": 1},
             {"product": "SOCAMM", "gross_dies_per_wafer": 100, "price": 640, "holding_cost": 1}]
    return plan(quarters=2, products=prods,
                platforms=[{"platform": "Vera Rubin", "priority": 1, "shortfall_penalty": 0},
                           {"platform": "Vera CPU", "priority": 1, "shortfall_penalty": 0}],
                bom=[{"platform": "Vera Rubin", "option": "o", "product": "HBM4", "units_per_platform": 8},
                     {"platform": "Vera CPU", "option": "o", "product": "SOCAMM", "units_per_platform": 8}],
                demand=[{"platform": p, "period": q, "units": 100} for p in ("Vera Rubin", "Vera CPU")
                        for q in ("2026Q1", "2026Q2")], **kw)


def test_shared_fab_names_the_competitor():
    run, c = causes_of(vera_plan())
    assert by(c, "platform", "period", "cause", "resource") == pytest.approx(
        {("Vera Rubin", "2026Q1", "fab_capacity", "F/n1"): 87.5, ("Vera Rubin", "2026Q2", "fab_capacity", "F/n1"): 87.5})
    assert set(c["competitors"]) == {"Vera CPU"}
    assert "F/n1 is full in 2026Q1 (one more wafer adds" in c["explanation"].iloc[0]
    assert_true(run, c)


def test_idle_fab_behind_a_full_line_is_not_named():
    """Demand 2000, fab 1000 units, line TSV 300. The Shapley game gives the line 1200 and the fab 500 (lifting
    the line alone leaves 1000 short; lifting the fab alone changes nothing), but the plan runs the fab at 30
    wafers of 100: "F/n1 is full" would be false, so the fab's share goes to the line (1700), the only
    capacity that binds."""
    p = plan(quarters=1, products=[{"backend": "TSV"}], backend=[{"resource": "TSV", "units_per_quarter": 300}])
    run, c = causes_of(p)
    assert by(c, "cause", "resource") == pytest.approx({("backend_capacity", "TSV"): 1700})
    assert_true(run, c)


def test_shapley_values_of_the_interacting_line_and_fab_on_both_paths(monkeypatch):
    """The game behind the test above: line ½(700 + 1700) = 1200, fab ½(0 + 1000) = 500 (derived there); the
    estimate ½(first + last) equals it when two families interact."""
    import planner.analysis.explain as ex

    p = plan(quarters=1, products=[{"backend": "TSV"}], backend=[{"resource": "TSV", "units_per_quarter": 300}])
    run = api.run(p)
    for path in ("exact", "estimate"):
        if path == "estimate":
            monkeypatch.setattr(ex, "EXACT_MAX_COLS", 0)
            monkeypatch.setattr(ex, "EXACT_MAX_FAMILIES", 0)
        fams, phi, _ = ex.family_shares(run)
        got = {f: float(v[0, 0]) for f, v in zip(fams, phi, strict=True)}
        assert got == pytest.approx({"fab_capacity": 500, "backend_capacity": 1200}), path


# ---- bullet 4: ramp rows are about ramping products -------------------------------------------------------------
def test_ramp_row_names_a_ramping_product_only():
    """X needs one R and one M per unit, both on fab F (100 wafers in 2026Q1). R (program G, ready 2026Q1) yields
    5 units per wafer in its first quarter (ramp 0.5) and 10 after; M is mature (no program, no YieldRamp rows),
    10 per wafer. Demand 1000 in 2026Q1: a platform unit takes 1/5 + 1/10 = 0.3 wafer, so 333.3 are served, 666.7
    short. Ramp lifted: 0.2 wafer per unit, 500 served (short 500); fab lifted: short 0; both: 0. Shapley:
    ramp ½(166.7 + 0) = 83.3, fab ½(666.7 + 500) = 583.3. The ramp row names R (50 % in 2026Q1), never M."""
    p = plan(quarters=2,
             products=[{"product": "R", "program": "G"}, {"product": "M"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 0,
                        "qualification_quarters": 0}],
             ramp=[{"product": "R", "quarter": 0, "factor": 0.5}, {"product": "R", "quarter": 1, "factor": 1.0}],
             bom=[{"platform": "X", "option": "o", "product": "R", "units_per_platform": 1},
                  {"platform": "X", "option": "o", "product": "M", "units_per_platform": 1}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 1000}])
    run, c = causes_of(p)
    assert by(c, "cause", "resource") == pytest.approx({("yield_ramp", "R"): 250 / 3, ("fab_capacity", "F/n1"): 1750 / 3})
    ramp = c[c["cause"] == "yield_ramp"]
    assert "started in 2026Q1 yield 50% of mature" in ramp["explanation"].iloc[0]
    assert_true(run, c)


def test_no_ramp_row_for_a_platform_without_ramping_memory():
    """One fab, 100 wafers in 2026Q1. Y needs one R (ramping: 5 units per wafer now, 10 mature) at $30, so $150
    per wafer; X needs one M (mature, 10 per wafer) at $10, $100 per wafer. Y's 250 units take 50 wafers first,
    X gets 50 wafers = 500 of its 1000. Lifting the ramp alone halves Y's wafers, so X would get 750: the game
    gives the ramp ½(250 + 0) = 125 of X's 500 and the fab ½(500 + 250) = 375. But X's memory does not ramp, so a
    ramp row for X would be false: all 500 are fab_capacity F/n1, competitor Y (earlier code named M)."""
    p = plan(quarters=1,
             products=[{"product": "R", "program": "G"}, {"product": "M"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 0,
                        "qualification_quarters": 0}],
             ramp=[{"product": "R", "quarter": 0, "factor": 0.5}, {"product": "R", "quarter": 1, "factor": 1.0}],
             platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0},
                        {"platform": "Y", "priority": 1, "shortfall_penalty": 0}],
             bom=[{"platform": "X", "option": "o", "product": "M", "units_per_platform": 1, "price": 10},
                  {"platform": "Y", "option": "o", "product": "R", "units_per_platform": 1, "price": 30}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 1000},
                     {"platform": "Y", "period": "2026Q1", "units": 250}])
    run, c = causes_of(p)
    import planner.analysis.explain as ex

    fams, phi, _ = ex.family_shares(run)
    assert {f: float(v[0, 0]) for f, v in zip(fams, phi, strict=True)} == pytest.approx(
        {"yield_ramp": 125, "fab_capacity": 375})
    assert c[["platform", "cause", "resource", "units", "competitors"]].to_dict("records") == [
        {"platform": "X", "cause": "fab_capacity", "resource": "F/n1", "units": pytest.approx(500),
         "competitors": "Y"}]
    assert_true(run, c)


# ---- bullet 6: horizon_start -----------------------------------------------------------------------------------
def test_horizon_start_has_its_own_cause():
    """Cycle 1: nothing started inside the horizon lands in quarter 0; 100 units on hand, 400 wanted: 300 short,
    all horizon_start (not fab_capacity, not 'initial inventory')."""
    p = plan(quarters=2, products=[{"cycle_quarters": 1, "initial_inventory": 100}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 400}])
    run, c = causes_of(p)
    (row,) = c.to_dict("records")
    assert (row["cause"], row["resource"], row["units"]) == ("horizon_start", "", pytest.approx(300))
    assert "Nothing started inside the horizon lands by 2026Q1" in row["explanation"]
    assert "initial inventory (100 P) is used up" in row["explanation"]
    assert platform_sentences(c, p) == [
        "X: 300 units short over 2026Q1; 100% horizon start (nothing started inside the horizon lands in time)."]
    assert_true(run, c)


def test_initial_inventory_goes_to_the_better_platform_and_it_is_named():
    """Cycle 1, 100 units on hand in quarter 0: H ($15) and L ($5) each want 100 then. H gets the stock; L is
    short 100, horizon_start, competitor H."""
    p = plan(quarters=2, products=[{"cycle_quarters": 1, "initial_inventory": 100}],
             platforms=[{"platform": "H", "priority": 1, "shortfall_penalty": 0},
                        {"platform": "L", "priority": 1, "shortfall_penalty": 0}],
             bom=[{"platform": "H", "option": "o", "product": "P", "units_per_platform": 1, "price": 15},
                  {"platform": "L", "option": "o", "product": "P", "units_per_platform": 1, "price": 5}],
             demand=[{"platform": "H", "period": "2026Q1", "units": 100},
                     {"platform": "L", "period": "2026Q1", "units": 100}])
    run, c = causes_of(p)
    (row,) = c.to_dict("records")
    assert (row["platform"], row["cause"], row["units"], row["competitors"]) == ("L", "horizon_start",
                                                                                 pytest.approx(100), "H")


def test_example_horizon_start_everywhere(tmp_path):
    """The example without its WIP sheet: Blackwell Ultra's 2026Q1 shortfall (HBM3E takes a quarter from wafer
    start, and nothing is in the fab) is horizon_start in ShortfallCauses, its chart data, the Overview and
    `planner explain` alike. (With the example's WIP the quarter is covered: no horizon_start there.)"""
    import openpyxl

    src = tmp_path / "no-wip.xlsx"
    wb = openpyxl.load_workbook(EXAMPLE)
    del wb["WIP"]
    wb.save(src)
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(src), "-o", str(out), "--no-insights"])
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out)
    rows = list(wb["ShortfallCauses"].iter_rows(values_only=True))
    head = rows[0]
    bu = [dict(zip(head, r, strict=True)) for r in rows[1:] if r[0] == "Blackwell Ultra"]
    assert {(r["cause"], r["resource"] or "") for r in bu} == {("horizon_start", "")}
    assert not any((r[head.index("resource")] or "") == "initial inventory" for r in rows[1:])
    overview = " ".join(str(c.value) for row in wb["Overview"].iter_rows() for c in row if c.value)
    assert re.search(r"Blackwell Ultra: [\d.,]+k? units short over 2026Q1; 100% horizon start", overview), overview
    charts = [str(c.value) for row in wb["ChartData"].iter_rows() for c in row if c.value is not None]
    assert "horizon_start" in charts and "fab_capacity" not in charts
    ex = CliRunner().invoke(main, ["explain", str(src), "--platform", "Blackwell Ultra"])
    assert ex.exit_code == 0 and "horizon_start" in ex.output and "initial inventory" in ex.output


# ---- bullet 7: periods on the command line -----------------------------------------------------------------------
@pytest.mark.parametrize("given", ["2028Q1", "2028-Q1", "2028 q1", " 2028Q1 "])
def test_explain_period_spelled_like_the_workbook(given):
    """Vera Rubin is 137,500 short in 2028Q1 in the example; every spelling the reader accepts finds it."""
    res = CliRunner().invoke(main, ["explain", str(EXAMPLE), "--platform", "Vera Rubin", "--period", given])
    assert res.exit_code == 0, res.output
    assert "2028Q1: 137,500 units short" in res.output
    assert "No shortfall" not in res.output


@pytest.mark.parametrize("given, hint", [("banana", "expected a quarter label like 2026Q1"),
                                         ("2028Q5", "expected a quarter label like 2026Q1"),
                                         ("2031Q1", "outside the plan's horizon 2026Q1–2028Q4")])
def test_explain_bad_period_is_a_usage_error(given, hint):
    res = CliRunner().invoke(main, ["explain", str(EXAMPLE), "--period", given])
    assert res.exit_code == 2, res.output
    assert hint in res.output and "Traceback" not in res.output


def test_explain_period_without_shortfall_says_so_truthfully():
    """Vera Rubin is served in full in 2027Q1 (example): the answer says so, with exit 0."""
    res = CliRunner().invoke(main, ["explain", str(EXAMPLE), "--platform", "Vera Rubin", "--period", "2027Q1"])
    assert res.exit_code == 0, res.output
    assert "Vera Rubin is not short in 2027Q1" in res.output


def test_explain_json_selection_uses_the_normalised_period():
    res = CliRunner().invoke(main, ["explain", str(EXAMPLE), "--period", "2028-q1", "--json"])
    assert res.exit_code == 0
    js = json.loads(res.output)
    assert js["causes"] and {r["period"] for r in js["causes"]} == {"2028Q1"}


# ---- bullet 8: truth conditions on the hand plans --------------------------------------------------------------
def test_gate_and_tight_fab_are_both_true():
    """Ready in quarter 1; 1000 units/quarter; demand 1500 in quarter 1 only. Lifting the gate alone opens
    quarter 0 (short 0), lifting the fab alone too (short 0): Shapley 250 each, and both are true — the gate
    closes a start (2026Q1) that would land by 2026Q2, and F/n1 is full in 2026Q2."""
    p = plan(quarters=2, products=[{"program": "G"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                        "qualification_quarters": 0}],
             demand=[{"platform": "X", "period": "2026Q2", "units": 1500}])
    run, c = causes_of(p)
    assert by(c, "cause", "resource") == pytest.approx({("rd_gate", "G"): 250, ("fab_capacity", "F/n1"): 250})
    assert "could have been started from 2026Q1" in c.loc[c["cause"] == "rd_gate", "explanation"].iloc[0]
    assert_true(run, c)


def test_policy_row_is_true_under_min_fill():
    """margin policy; H ($5) has min_fill 0.6 of 1000, L ($15) wants 1000; the fab makes 1000. The minimum
    gives H 600, L gets 400 (short 600). Without minimums L gets 1000: the policy row is true (competitor H);
    the fab is full too, so both share L's 600."""
    p = plan(quarters=1,
             platforms=[{"platform": "H", "priority": 1, "shortfall_penalty": 0, "min_fill": 0.6},
                        {"platform": "L", "priority": 1, "shortfall_penalty": 0}],
             bom=[{"platform": "H", "option": "o", "product": "P", "units_per_platform": 1, "price": 5},
                  {"platform": "L", "option": "o", "product": "P", "units_per_platform": 1, "price": 15}],
             demand=[{"platform": "H", "period": "2026Q1", "units": 1000},
                     {"platform": "L", "period": "2026Q1", "units": 1000}])
    run, c = causes_of(p)
    lc = c[c["platform"] == "L"]
    assert lc["units"].sum() == pytest.approx(600)
    assert set(lc["cause"]) == {"policy", "fab_capacity"}
    assert set(lc["competitors"]) == {"H"}
    assert "Minimum fill (H) gives the supply to H" in lc.loc[lc["cause"] == "policy", "explanation"].iloc[0]
    assert_true(run, c)


def test_example_rows_are_true():
    run, c = causes_of(api.load_workbook(EXAMPLE))
    assert_true(run, c)


# ---- bullet 9: the per-platform sentences come from the table ----------------------------------------------------
_LOST = re.compile(r"^(?P<plat>.+?): (?P<total>[\d.,]+[kM]?) units short (?P<span>(over|in) .+?); (?P<parts>.+)\.$")
_BACKLOG = re.compile(r"^(?P<plat>.+?): (?P<late>.+); (?P<total>[\d.,]+[kM]?) unit-quarters of backlog "
                      r"(?P<span>(over|in) .+?): (?P<parts>.+)\.$")


def _span(periods: list[str], horizon: list[str]) -> str:
    """The quarters a sentence covers, recomputed: contiguous → 'over A–B', else the quarters or their count."""
    idx = sorted(horizon.index(q) for q in periods)
    if len(idx) == 1:
        return f"over {horizon[idx[0]]}"
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"over {horizon[idx[0]]}–{horizon[idx[-1]]}"
    qs = [horizon[i] for i in idx]
    return (f"in {len(qs)} quarters from {qs[0]} to {qs[-1]}" if len(qs) > 3
            else "in " + ", ".join(qs[:-1]) + f" and {qs[-1]}")


def check_sentences(causes: pd.DataFrame, plan, service: pd.DataFrame) -> None:
    """Recompute every number of platform_sentences from the ShortfallCauses rows: the total (units short, or
    unit-quarters of backlog), the quarters it covers, and each cause's percentage, in order."""
    lines = platform_sentences(causes, plan, service)
    assert len(lines) == causes["platform"].nunique()
    labels = {"rd_gate": "qualification", "yield_ramp": "yield ramp", "fab_capacity": "wafers",
              "backend_capacity": "line", "horizon_start": "horizon start", "economics": "economics",
              "policy": "allocation policy"}
    for line in lines:
        m = (_BACKLOG if plan.settings.backlog else _LOST).match(line)
        assert m, line
        g = causes[causes["platform"] == m["plat"]]
        total = g.drop_duplicates("period")["shortfall"].sum()
        assert m["total"] == units(total), line
        assert m["span"] == _span(list(g["period"].unique()), list(plan.periods)), line
        parts = g.groupby(["cause", "resource"])["units"].sum()
        want = parts[parts / total >= 0.005].sort_values(ascending=False, kind="stable")
        said = re.findall(r"(\d+)% ([^,]+)", m["parts"])
        assert [int(x) for x, _ in said] == [round(100 * u / total) for u in want], line
        for (_, label), (cause, res) in zip(said, want.index, strict=True):
            assert labels[cause] in label and res in label, line


def test_platform_sentences_recomputed_from_the_table(generated):
    p = api.load_workbook(EXAMPLE)
    run, c = causes_of(p)
    check_sentences(c, p, run.results.service)
    backlog = 0
    for _s, run, c in generated:
        check_sentences(c, run.plan, run.results.service)
        backlog += bool(run.plan.settings.backlog)
    assert backlog >= 100  # half the plans say unit-quarters of backlog


def test_parallel_sessions_leave_stdout_alone():
    """The estimate path builds HiGHS sessions on threads; each silences fd 1 while HiGHS prints its banner.
    Unserialised, two threads' save/restore pairs interleave and leave the process's stdout at /dev/null (seen:
    every later line of output lost). After many concurrent sessions fd 1 must be what it was."""
    import os
    import time
    from concurrent.futures import ThreadPoolExecutor

    from planner.solve.sessions import _stdout_silenced

    def same(a: os.stat_result, b: os.stat_result) -> bool:
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    before = os.fstat(1)

    def silenced(_):
        with _stdout_silenced():
            time.sleep(0.0005)  # as long as HiGHS takes to start, so that threads overlap
            return same(os.fstat(1), os.stat(os.devnull))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(silenced, range(200)))
    assert same(os.fstat(1), before)
