"""Shortfall causes (issue 11) on plans whose causes are known in advance, and additivity on random plans (truth
conditions, horizon_start and the interacting line and fab: tests/test_explain_truth.py).

Builders' default plan: fab F (node n1) 100 wafers/quarter at $20; product P = 10 units per wafer at $10, no
cycle time; platform X needs one P.
"""

from __future__ import annotations

import json

import pytest
from builders import frames, plan
from click.testing import CliRunner
from conftest import EXAMPLE
from test_model import random_frames

from planner import api
from planner.analysis.explain import CAUSES, explain_shortfalls, platform_sentences, what_would_close
from planner.cli import main
from planner.io.load import plan_from_frames
from planner.report.template import write_input_workbook


def causes_of(p):
    run = api.run(p)
    return run, explain_shortfalls(run)


def plan_with_shortfall(seed: int, tries: int = 50):
    """The first random plan from ``seed`` on (seed, seed + 1000, …) that has a shortfall to explain."""
    for k in range(tries):
        p = plan_from_frames(random_frames(seed + 1000 * k))
        run = api.run(p)
        if (run.results.service["shortfall"] > 1e-6).any():
            return p
    raise AssertionError(f"no random plan with a shortfall in {tries} tries from seed {seed}")


def by(c, *cols):
    return c.groupby(list(cols))["units"].sum().to_dict()


def assert_adds_up(run, c):
    svc = run.results.service
    short = svc[svc["shortfall"] > 1e-6].set_index(["platform", "period"])["shortfall"]
    assert len(short), "the plan has no shortfall: nothing was checked (use plan_with_shortfall)"
    got = c.groupby(["platform", "period"])["units"].sum()
    assert set(got.index) == set(short.index)
    for key, s in short.items():
        assert got[key] == pytest.approx(s, rel=1e-6, abs=1e-6), key


def test_rd_gate_with_ample_capacity():
    """Program G ready in quarter 2, capacity ample: all shortfall in quarters 0 and 1 is rd_gate G."""
    p = plan(quarters=3, products=[{"program": "G"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 2,
                        "qualification_quarters": 0}],
             demand=[{"platform": "X", "period": q, "units": 300} for q in ("2026Q1", "2026Q2", "2026Q3")])
    run, c = causes_of(p)
    assert by(c, "period", "cause", "resource") == pytest.approx({("2026Q1", "rd_gate", "G"): 300,
                                                                   ("2026Q2", "rd_gate", "G"): 300})
    assert "ready only in 2026Q3" in c["explanation"].iloc[0]
    assert_adds_up(run, c)


def test_tight_fab_names_fab_and_node():
    run, c = causes_of(plan(quarters=1))  # 1000 of 2000 units: the fab binds
    assert by(c, "cause", "resource") == pytest.approx({("fab_capacity", "F/n1"): 1000})
    assert "F/n1 is full in 2026Q1" in c["explanation"].iloc[0]


def test_tight_backend_line():
    """Line TSV finishes 300 units; the fab could make 1000 = demand: all 700 short is the line's."""
    p = plan(quarters=1, products=[{"backend": "TSV"}], backend=[{"resource": "TSV", "units_per_quarter": 300}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 1000}])
    run, c = causes_of(p)
    assert by(c, "cause", "resource") == pytest.approx({("backend_capacity", "TSV"): 700})


def test_competing_platforms_name_the_winner():
    """1000 units; H pays $15, L pays $5, each wants 1000: L loses everything to H."""
    p = plan(quarters=1,
             platforms=[{"platform": "H", "priority": 1, "shortfall_penalty": 0},
                        {"platform": "L", "priority": 1, "shortfall_penalty": 0}],
             bom=[{"platform": "H", "option": "o", "product": "P", "units_per_platform": 1, "price": 15},
                  {"platform": "L", "option": "o", "product": "P", "units_per_platform": 1, "price": 5}],
             demand=[{"platform": "H", "period": "2026Q1", "units": 1000},
                     {"platform": "L", "period": "2026Q1", "units": 1000}])
    run, c = causes_of(p)
    (row,) = c.to_dict("records")
    assert (row["platform"], row["cause"], row["resource"], row["competitors"]) == ("L", "fab_capacity", "F/n1", "H")
    assert row["units"] == pytest.approx(1000)


def test_price_below_cost_is_economics():
    """Price $1 < $2 of wafer per unit and no penalty: nothing is served, for economic reasons only."""
    run, c = causes_of(plan(quarters=1, products=[{"price": 1}],
                            demand=[{"platform": "X", "period": "2026Q1", "units": 500}]))
    assert by(c, "cause") == pytest.approx({"economics": 500})


def test_gate_and_tight_fab_share_the_shortfall():
    """Ready in quarter 1; 1000 units/quarter; demand 1500 in quarter 1 only (no holding cost). Served 1000,
    short 500. Lifting the gate alone lets quarter 0 build stock (short 0); lifting the fab alone lets quarter 1
    make 1500 (short 0); so each family's marginal effect is 500 in one order and 0 in the other: Shapley gives
    250 each."""
    p = plan(quarters=2, products=[{"program": "G"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                        "qualification_quarters": 0}],
             demand=[{"platform": "X", "period": "2026Q2", "units": 1500}])
    run, c = causes_of(p)
    assert by(c, "cause", "resource") == pytest.approx({("rd_gate", "G"): 250, ("fab_capacity", "F/n1"): 250})
    assert "built ahead" in c.loc[c["cause"] == "rd_gate", "explanation"].iloc[0]


def test_yield_ramp():
    """Ready in quarter 0 with ramp 0.5 then 1; capacity 100 wafers; demand 800 in quarter 0 → 500 made.
    Lifting the ramp alone closes all 300; lifting the fab alone closes all 300 too: 150 each."""
    p = plan(quarters=2, products=[{"program": "G", "holding_cost": 1}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 0,
                        "qualification_quarters": 0}],
             ramp=[{"product": "P", "quarter": 0, "factor": 0.5}, {"product": "P", "quarter": 1, "factor": 1.0}],
             demand=[{"platform": "X", "period": "2026Q1", "units": 800}])
    run, c = causes_of(p)
    assert by(c, "cause") == pytest.approx({"yield_ramp": 150, "fab_capacity": 150})


def test_policy_cause_under_priority():
    """priority: tier-1 H ($5) takes the 1000 units from tier-2 L ($15). Lifting the policy (margin) gives L all;
    lifting the fab gives both. The policy and the fab share L's shortfall; the policy row names H."""
    p = plan(quarters=1, settings={"policy": "priority"},
             platforms=[{"platform": "H", "priority": 1, "shortfall_penalty": 0},
                        {"platform": "L", "priority": 2, "shortfall_penalty": 0}],
             bom=[{"platform": "H", "option": "o", "product": "P", "units_per_platform": 1, "price": 5},
                  {"platform": "L", "option": "o", "product": "P", "units_per_platform": 1, "price": 15}],
             demand=[{"platform": "H", "period": "2026Q1", "units": 1000},
                     {"platform": "L", "period": "2026Q1", "units": 1000}])
    run, c = causes_of(p)
    lc = c[c["platform"] == "L"]
    assert set(lc["cause"]) == {"policy", "fab_capacity"}
    assert lc.loc[lc["cause"] == "policy", "competitors"].iloc[0] == "H"
    assert_adds_up(run, c)


@pytest.mark.parametrize("seed", range(10))
def test_causes_add_up_on_random_plans(seed):
    run, c = causes_of(plan_with_shortfall(seed))
    assert_adds_up(run, c)
    assert (c["units"] > 0).all()
    assert set(c["cause"]) <= set(CAUSES)


def test_example_explained():
    p = api.load_workbook(EXAMPLE)
    run, c = causes_of(p)
    assert_adds_up(run, c)
    rubin = c[c["platform"] == "Vera Rubin"]
    early = rubin[rubin["period"].isin(["2026Q3", "2026Q4"])]
    assert set(zip(early["cause"], early["resource"], strict=True)) == {("rd_gate", "HBM4")}
    sentences = platform_sentences(c, p)
    assert any(s.startswith("Vera Rubin: 760k units short") and "HBM4 qualification (ready 2026Q4)" in s
               for s in sentences)
    fixes = what_would_close(run, c, lambda q: api.run(q).results)
    assert fixes.set_index("platform").loc["Vera Rubin", "change"].startswith("HBM4 ready")


def test_what_would_close_a_gate():
    p = plan(quarters=3, products=[{"program": "G"}],
             programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 2,
                        "qualification_quarters": 0}],
             demand=[{"platform": "X", "period": q, "units": 300} for q in ("2026Q1", "2026Q2", "2026Q3")])
    run, c = causes_of(p)
    (fix,) = what_would_close(run, c, lambda q: api.run(q).results).to_dict("records")
    assert fix["change"] == "G ready 2 quarters earlier" and fix["units_closed"] == pytest.approx(600)
    assert fix["margin_change"] == pytest.approx(600 * 10 - 60 * 20)


def test_explain_cli(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["explain", str(EXAMPLE), "--platform", "Vera Rubin", "--period", "2026Q3"])
    assert res.exit_code == 0, res.output
    assert "rd_gate HBM4" in res.output and "What would help" in res.output
    js = json.loads(runner.invoke(main, ["explain", str(EXAMPLE), "--json"]).output)
    assert {r["cause"] for r in js["causes"]} >= {"rd_gate", "backend_capacity"}
    bad = runner.invoke(main, ["explain", str(EXAMPLE), "--platform", "Vera Rubn"])
    assert bad.exit_code == 2 and 'did you mean "Vera Rubin"?' in bad.output


def test_report_has_shortfall_causes_and_chart(tmp_path):
    import openpyxl

    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out), "--no-insights"])
    assert res.exit_code == 0, res.output
    assert "Vera Rubin: 760k units short" in res.output
    wb = openpyxl.load_workbook(out)
    header = [c.value for c in wb["ShortfallCauses"][1]]
    assert header == ["platform", "period", "shortfall", "cause", "resource", "units", "competitors", "explanation"]
    assert "What would help" in wb.sheetnames
    no = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out), "--no-insights", "--no-explain"])
    assert no.exit_code == 0 and "ShortfallCauses" not in openpyxl.load_workbook(out, read_only=True).sheetnames


def test_infeasible_plan_is_explained_by_an_iis(tmp_path):
    f = frames(quarters=2, products=[{"program": "G"}],
               programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                          "qualification_quarters": 0}],
               platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0, "min_fill": 0.5}],
               demand=[{"platform": "X", "period": "2026Q1", "units": 100}])
    src = write_input_workbook(tmp_path / "inf.xlsx", f)
    res = CliRunner().invoke(main, ["solve", str(src)])
    assert res.exit_code == 1
    assert "program G is ready in 2026Q2" in res.output and "Platforms row 2" in res.output
    run = api.run(api.load_workbook(src))
    assert set(run.iis["sheet"]) == {"Products", "Platforms", "Programs"}


@pytest.mark.parametrize("seed", range(6))
def test_estimate_path_adds_up_on_random_plans(seed, monkeypatch):
    import planner.analysis.explain as ex

    monkeypatch.setattr(ex, "EXACT_MAX_COLS", 0)
    monkeypatch.setattr(ex, "EXACT_MAX_FAMILIES", 0)
    run, c = causes_of(plan_with_shortfall(seed))
    assert_adds_up(run, c)


# ---- the late-order estimate (large plans) ------------------------------------------------------------------
def test_late_order_estimate_on_a_hand_computed_game():
    """Three families a, b, c; S(A) = shortfall with A lifted: S(∅) = 10, S(a) = S(b) = 10, S(c) = 4, S(ab) = 0,
    S(ac) = S(bc) = 4, S(abc) = 0 (a and b only help together; c removes 6 unless both a and b are lifted).
    By hand: a lifted last 4 − 0 = 4; second to last, mean of [S(c) − S(ac)] = 0 and [S(b) − S(ab)] = 10: 5;
    so ½ (4 + 5) = 4.5, b the same; c last 0, second to last mean of 6 and 6: 3. Exact Shapley (all six
    orders): a = b = 0/3 + (10 + 0)/6 + 4/3 = 3, c = 6/3 + 12/6 + 0/3 = 4."""
    import numpy as np

    from planner.analysis.explain import late_order_estimate, shapley

    S = {0: 10, 0b001: 10, 0b010: 10, 0b100: 4, 0b011: 0, 0b101: 4, 0b110: 4, 0b111: 0}
    values = {m: np.array([[float(v)]]) for m, v in S.items()}
    assert [float(v[0, 0]) for v in late_order_estimate(values, 3)] == pytest.approx([4.5, 4.5, 3.0])
    assert [float(v[0, 0]) for v in shapley(values, 3)] == pytest.approx([3.0, 3.0, 4.0])
    # with the first position too, three families are the exact value: a ⅓(4 + 5 + 0) = 3, c ⅓(0 + 6 + 6) = 4
    assert [float(v[0, 0]) for v in late_order_estimate(values, 3, first=True)] == pytest.approx([3.0, 3.0, 4.0])
    two = {0: values[0], 1: values[0b001], 2: values[0b010], 3: values[0b011]}  # two families: exact
    assert ([float(v[0, 0]) for v in late_order_estimate(two, 2)] ==
            pytest.approx([float(v[0, 0]) for v in shapley(two, 2)]))


def test_late_order_steps_solve_each_set_once_after_the_set_it_starts_from():
    """1 + n + n(n − 1)/2 lifted sets and the policy alone; every warm start is a set of an earlier round; an
    "all but two" starts from the "all but one" without the family dearer to restore (the cheaper one is
    restored), except with both capacity families restored (from scratch, as is each "all but capacity")."""
    from planner.analysis.explain import BASE, CAPACITY, RESTORE_COST, late_order_steps

    fams = ["rd_gate", "yield_ramp", "fab_capacity", "backend_capacity", "policy"]
    rounds = late_order_steps(fams)
    masks = [m for r in rounds for m, _ in r]
    full = (1 << 5) - 1
    assert len(masks) == len(set(masks)) == 1 + 5 + 10 + 1 and 0 not in masks
    assert set(masks) == ({full, 1 << 4} | {full & ~(1 << f) for f in range(5)}
                          | {full & ~(1 << f) & ~(1 << g) for f in range(5) for g in range(f)})
    seen: set[int] = set()
    for r in rounds:
        for m, src in r:
            assert src is None or src == BASE or src in seen
            restored = [fams[i] for i in range(5) if not m >> i & 1]
            if len(restored) == 1:
                assert (src is None) == (restored[0] in CAPACITY)
            if len(restored) == 2 and set(restored) <= set(CAPACITY):
                assert src is None
            elif len(restored) == 2:
                lifted_in_parent = [fams[i] for i in range(5) if src >> i & 1 and not m >> i & 1]
                assert lifted_in_parent == [max(restored, key=RESTORE_COST.index)]
        seen |= {m for m, _ in r}
    assert (1 << 4, BASE) in rounds[2]
    # with the first position: each family alone too, in the last round, from the base basis where WARM_LIFTS
    # says that pays (R&D gate, policy), else from scratch
    firsts = {m: src for m, src in late_order_steps(fams, first=True)[2] if bin(m).count("1") == 1}
    assert firsts == {1: BASE, 2: None, 4: None, 8: None, 16: BASE}


@pytest.mark.parametrize("first", [False, True])
def test_prefetch_order_solves_each_lift_once_after_its_start_and_the_cold_ones_early(first):
    """The prefetch's order is the estimate's lifts, each once; a warm lift comes after the set it starts from;
    right after all lifted and all but fab capacity come every later lift from scratch (both capacity families
    restored; each alone that has no warm start), before the cheap warm ones and all but back-end capacity."""
    from planner.analysis.explain import BASE, late_order_steps, prefetch_order

    fams = ["rd_gate", "yield_ramp", "fab_capacity", "backend_capacity", "policy"]
    rounds = late_order_steps(fams, first)
    order = prefetch_order(rounds)
    assert sorted(order) == sorted(s for r in rounds for s in r)
    full = (1 << 5) - 1
    both = full & ~(1 << 2) & ~(1 << 3)
    assert order[:2] == [(full, None), (full & ~(1 << 2), None)]
    cold_later = [s for s in order[2:] if s[1] is None and s[0] != full & ~(1 << 3)]
    assert order[2:2 + len(cold_later)] == cold_later and (both, None) in cold_later
    assert len(cold_later) == (4 if first else 1)  # with the first position: yield ramp, fab, back-end alone
    at = {m: i for i, (m, _) in enumerate(order)}
    for i, (_m, src) in enumerate(order):
        assert src is None or src == BASE or at[src] < i


@pytest.mark.parametrize("first,policy", [(True, "margin"), (False, "margin"), (True, "fair_share"),
                                          (True, "priority")])
@pytest.mark.parametrize("shape,seed", [((20, 16, 4, 10), 2), ((12, 10, 3, 8), 9)])
def test_estimate_path_solves_the_late_order_estimate(shape, seed, first, policy, monkeypatch):
    """The estimate path's own lifts (separate HiGHS instances, warm from each other's bases where the lifted set
    is solved as margin) give the late-order estimate of the outcomes the exact path computes (all 2ⁿ subsets on
    one kept model): same shares — with each family lifted first too (plans up to FIRST_MAX_COLS, and under
    priority / fair_share at every size) and without."""
    import numpy as np
    import pandas as pd

    import planner.analysis.explain as ex
    from planner.io.generate import generate_frames

    frames = generate_frames(*shape, seed=seed)
    st = frames["Settings"].set_index("key")["value"].to_dict() | {"policy": policy}
    frames["Settings"] = pd.DataFrame({"key": list(st), "value": list(st.values())})
    run = api.run(plan_from_frames(frames))
    fams, outcomes, info = ex.counterfactuals(run, exact=True)
    assert info["exact"] and len(fams) >= 4 and float(outcomes[0][0].sum()) > 0
    assert info["solves"] == 2 ** len(fams) - 1  # what the Overview's note says the exact split takes
    want = ex.late_order_estimate({m: o[0] for m, o in outcomes.items()}, len(fams), first)
    monkeypatch.setattr(ex, "EXACT_MAX_COLS", 0)
    monkeypatch.setattr(ex, "EXACT_MAX_FAMILIES", 0)
    monkeypatch.setattr(ex, "FIRST_MAX_COLS", 10**9 if first and policy == "margin" else 0)
    got_fams, got, counter = ex.family_shares(run)
    assert got_fams == fams and not counter["exact"] and counter["first"] == first
    n = len(fams)
    assert counter["solves"] == 1 + n + n * (n - 1) // 2 + ("policy" in fams or first) * (n if first else 1)
    scale = max(1.0, float(outcomes[0][0].max()))
    for a, b in zip(got, want, strict=True):
        assert np.abs(a - b).max() <= 1e-6 * scale


def _estimate_plan(monkeypatch):
    """A generated plan with five families and a shortfall, explained on the estimate path."""
    import planner.analysis.explain as ex
    from planner.io.generate import generate_frames

    run = api.run(plan_from_frames(generate_frames(12, 10, 3, 8, seed=2)))
    monkeypatch.setattr(ex, "EXACT_MAX_COLS", 0)
    monkeypatch.setattr(ex, "EXACT_MAX_FAMILIES", 0)
    fams = ex.Lifter(run).families()
    assert len(fams) == 5 and float(run.results.service["shortfall"].sum()) > 0
    return run, fams


@pytest.mark.parametrize("failing,solved", [("all", 3), ("all but back-end capacity", 3), ("all but yield ramp", 6)])
def test_a_failed_lift_stops_the_estimate_after_its_round(monkeypatch, failing, solved):
    """The split needs every lifted set, so a lift without an optimum (a time limit) fails the explanation — and
    the rounds after it are not solved. Five families on a plan under FIRST_MAX_COLS: round 1 is all lifted and
    all but each capacity family (3 lifts), round 2 the other three "all but one" (3 + 3); never the 21 of every
    round (+ 10 pairs, the policy alone and four families alone), cold where their parent failed."""
    import planner.analysis.explain as ex

    run, fams = _estimate_plan(monkeypatch)
    drop = {"all": (), "all but back-end capacity": ("backend_capacity",),
            "all but yield ramp": ("yield_ramp",)}[failing]
    bad = tuple(f for f in fams if f not in drop)
    assert sum(len(r) for r in ex.late_order_steps(fams, True)) == 21
    real, calls = ex.lift_outcome, []

    def lift(plan, families, *rest):
        calls.append(families)
        return (None, None) if families == bad else real(plan, families, *rest)

    monkeypatch.setattr(ex, "lift_outcome", lift)
    with pytest.raises(ex.ExplanationFailed, match=", ".join(bad) + " lifted ended without an optimum"):
        ex.family_shares(run)
    assert len(calls) == solved and bad in calls


def test_a_lift_the_prefetch_could_not_finish_is_solved_again(monkeypatch):
    """A lift the prefetch thread ended without an optimum (its time limit ran while the base solve shared the
    cores) is solved again by the explanation, not taken as the explanation's failure: the shares equal those
    without a prefetch."""
    import numpy as np

    import planner.analysis.explain as ex

    run, fams = _estimate_plan(monkeypatch)
    _, want, _ = ex.family_shares(run)
    full = (1 << len(fams)) - 1

    class Cut:  # what Prefetch.take gives when its 'all lifted' lift was cut
        closed = False

        def take(self):
            return ex.Lifter(run.plan), {full: (None, None)}, None

        def wait(self):
            return {full: (None, None)}

        def close(self):
            self.closed = True

    _, got, _ = ex.family_shares(run, prefetch=Cut())
    for a, b in zip(got, want, strict=True):
        assert np.abs(a - b).max() <= 1e-9 * max(1.0, float(np.abs(b).max()))


def test_the_prefetch_stops_at_a_lift_without_optimum(monkeypatch):
    """The prefetch thread stops at its first lift without an optimum: the explanation solves that one again,
    and the lifts after it would have started cold from its missing basis (solved for nothing if it fails
    again). Its first lift is 'all lifted': nothing else is solved, nothing is kept."""
    import planner.analysis.explain as ex

    run, fams = _estimate_plan(monkeypatch)
    calls = []
    monkeypatch.setattr(ex.Lifter, "outcome_with", lambda self, families, *a, **k: calls.append(families) or (None, None))
    pf = ex.Prefetch(run.plan)
    assert pf.wait() == {} and calls == [tuple(fams)]


def test_the_progress_of_the_estimate_counts_up_when_a_prefetched_lift_is_solved_again(monkeypatch):
    """The progress bar counts the estimate's lifts as one job: when the lift the prefetch had under way ended
    without an optimum and is solved again, the count goes on (never back to '1 of 1') and ends at every lift."""
    import planner.analysis.explain as ex
    from planner.analysis.resolves import Runner

    run, fams = _estimate_plan(monkeypatch)
    full = (1 << len(fams)) - 1
    total = sum(len(r) for r in ex.late_order_steps(fams, ex._with_first(ex.Lifter(run))))

    class Cut:  # Prefetch.take while 'all lifted' runs; it ends without an optimum
        def take(self):
            return ex.Lifter(run.plan), {}, full

        def wait(self):
            return {full: (None, None)}

        def close(self):
            pass

    seen: list[tuple[int, int]] = []
    ex.family_shares(run, Runner(2, lambda d, t: seen.append((d, t))), prefetch=Cut())
    assert seen[-1] == (total, total) and {t for _, t in seen} == {total}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
