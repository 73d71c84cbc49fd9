"""The analyses' time limit (issue 22): after the shortfall causes, R&D impact, "what would help" and expansion
timing stop at a wall-time limit; what it leaves out is said row by row and in one Overview note whose counts are
the tables' own. Also: a kept HiGHS session's time limit holds per re-solve (HiGHS 1.x counts it from the
object's first run), and an explanation lift without an optimum leaves the causes "not computed" instead of
silently reading the base plan's outcome for it.
"""

from __future__ import annotations

import re
import time

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE

from planner import api
from planner.analysis import explain
from planner.analysis.rd_impact import rd_impact
from planner.analysis.resolves import OVERTIME, OVERTIME_TEXT, Runner
from planner.cli import main
from planner.io.generate import generate_frames
from planner.io.load import load_plan, plan_from_frames
from planner.model.lp import LinearProgram
from planner.solve.sessions import HighsSession


def _sleep_then(x: int, s: float) -> int:
    time.sleep(s)
    return x


def test_runner_stops_at_its_deadline_and_keeps_what_finished():
    """Ten 0.3 s tasks on two threads with a 1 s deadline: the first few finish (in order, with their own
    results), the rest are OVERTIME, and the map returns soon after the deadline, not after 1.5 s of work."""
    r = Runner(workers=2, deadline=time.monotonic() + 1.0)
    t = time.monotonic()
    out = r.map([(_sleep_then, (i, 0.3)) for i in range(10)])
    took = time.monotonic() - t
    done = [i for i, o in enumerate(out) if o is not OVERTIME]
    assert 2 <= len(done) <= 8, out
    assert all(out[i] == i for i in done)
    assert out[-1] is OVERTIME
    assert took < 1.0 + 0.3 + 0.5  # a running Python task cannot be stopped: it ends, its result is dropped
    # past the deadline nothing starts, on threads and one after the other
    assert Runner(workers=2, deadline=time.monotonic() - 1).map([(_sleep_then, (1, 0))] * 3) == [OVERTIME] * 3
    assert Runner(workers=1, deadline=time.monotonic() - 1).map([(_sleep_then, (1, 0))] * 2) == [OVERTIME] * 2
    assert Runner(workers=2).map([(_sleep_then, (i, 0)) for i in range(3)]) == [0, 1, 2]  # no deadline: all
    for workers in (1, 2):  # the first at_least tasks run to their end whatever the deadline
        r = Runner(workers=workers, deadline=time.monotonic() - 1)
        r.at_least = 2
        assert r.map([(_sleep_then, (i, 0.2)) for i in range(4)]) == [0, 1, OVERTIME, OVERTIME]


def _lp(n: int, m: int, seed: int = 0) -> LinearProgram:
    """A random packing LP (max c·x, A x ≤ b, 0 ≤ x ≤ 10) that simplex needs a few hundred pivots for."""
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    lp = LinearProgram()
    cols = lp.add_cols("x", pd.DataFrame({"i": range(n)}), 0.0, 10.0)
    A = sp.random(m, n, density=0.05, random_state=seed, format="coo")
    lp.add_rows("cap", pd.DataFrame({"j": range(m)}), A.row, A.col, A.data, upper=np.full(m, 20.0))
    lp.add_term("value", cols, rng.random(n), +1.0)
    return lp


def test_kept_session_time_limit_is_per_run():
    """HiGHS measures time_limit from the Highs object's first run (ERGO-Code/HiGHS#1477): a kept session with a
    limit used to report "time_limit" on its n-th re-solve once the runs together passed it. Each run here takes a
    fraction of the limit; together they pass it several times over, and every one must still reach its optimum."""
    s = HighsSession(_lp(1000, 150), method="simplex", time_limit=1.0)
    total = 0.0
    runs = 0
    while total < 2.5 and runs < 400:
        s.h.clearSolver()  # from scratch each time, so every run does real work
        t = time.perf_counter()
        res = s.run()
        total += time.perf_counter() - t
        runs += 1
        assert res.status == "optimal", (runs, total)
    assert total >= 2.5, "the runs were too quick to pass the limit together: make the LP larger"


@pytest.fixture(scope="module")
def gen():
    """A generated plan above the exact path's size with shortfalls, R&D programs and bought expansions."""
    for seed in range(1, 12):
        plan = plan_from_frames(generate_frames(30, 30, 5, 12, seed=seed))
        run = api.run(plan)
        if (run.solution.has_solution and run.results.service["shortfall"].max() > 1 and len(plan.programs)
                and len(run.results.expansions)):
            return plan
    pytest.fail("no generated plan with shortfall, programs and expansions in seeds 1-11")


def test_a_limit_passed_leaves_everything_after_the_causes_marked(gen, tmp_path):
    """A limit of a microsecond: the causes still complete (and add up), and so does R&D impact's first program;
    the other programs' rows say 'not computed within the analyses' time limit', "what would help" reads only
    the levers already solved (R&D shifts), each bought expansion keeps its decide-by sentence and says the later
    plan was not computed, and the Overview note's counts are those of the tables."""
    run, rep = api.analyse(gen, analysis_limit=1e-6)
    assert rep.causes is not None and len(rep.causes)
    per = rep.causes.groupby(["platform", "period"]).agg(units=("units", "sum"), short=("shortfall", "first"))
    assert np.allclose(per["units"], per["short"], rtol=1e-6, atol=1e-3)
    rd = rep.rd_impact  # its first program always finishes; the others are marked
    assert rd is not None and len(rd) == min(len(gen.programs), 8)
    cut = (rd["detail_earlier"] == OVERTIME_TEXT) & (rd["detail_later"] == OVERTIME_TEXT)
    assert int((~cut).sum()) == 1 and rd.loc[~cut, ["objective_earlier", "objective_later"]].notna().all().all()
    assert rd.loc[cut, ["objective_earlier", "objective_later", "margin_earlier", "margin_later"]].isna().all().all()
    tried, levers = rep.fixes.attrs["levers"] if rep.fixes is not None else (0, None)
    if rep.fixes is None:  # no lever is an R&D shift already solved
        assert rep.not_computed["fixes"] == OVERTIME_TEXT
    et = rep.expansion_timing
    assert len(et) and et["objective_if_later"].isna().all()
    assert all(OVERTIME_TEXT in s and "decide by" in s for s in et["sentence"])
    note = next(n for n in rep.notes if n.startswith("The analyses stopped at their time limit"))
    assert f"R&D impact for 1 of {len(rd)} programs" in note
    m = re.search(r"what would help from (\d+) of (\d+) levers", note)
    assert m and int(m.group(1)) == tried and int(m.group(2)) > int(m.group(1))
    assert f"expansion timing re-solved for 0 of {len(et)} options" in note
    assert "--analysis-limit none" in note
    out = tmp_path / "r.xlsx"
    api.write_report(out, rep)
    wb = openpyxl.load_workbook(out, read_only=True)
    ws = wb["R&D impact"]
    details = [c.value for row in ws.iter_rows() for c in row if c.value == OVERTIME_TEXT]
    assert len(details) == 2 * int(cut.sum())
    overview = " ".join(str(c.value) for row in wb["Overview"].iter_rows() for c in row if c.value)
    assert "The analyses stopped at their time limit" in overview


def test_no_limit_computes_everything(gen):
    """The same plan without a limit: every program's two shifts, every option's later plan, no note."""
    run, rep = api.analyse(gen, analysis_limit=None)
    assert rep.rd_impact is not None and len(rep.rd_impact)
    assert not (rep.rd_impact[["detail_earlier", "detail_later"]] == OVERTIME_TEXT).any().any()
    assert rep.expansion_timing["objective_if_later"].notna().all()
    assert not any(n.startswith("The analyses stopped") for n in rep.notes)
    assert api.analysis_limit_seconds("auto", 0.1) == 15.0 and api.analysis_limit_seconds("auto", 100) == 100.0
    assert api.analysis_limit_seconds(None, 5) is None and api.analysis_limit_seconds(12.5, 5) == 12.5


def test_rd_impact_rows_say_which_shift_the_limit_cut(gen):
    """A program whose later plan the limit cut keeps its earlier figures and says why the later ones are blank;
    the verdict (which needs both) is empty rather than half a sentence."""
    run = api.run(gen)
    calls = []

    def solve_many(plans, keys):
        calls.append(keys)
        out = [api.run(p).results for p in plans]
        return [OVERTIME if k.endswith("+1") else r for k, r in zip(keys, out, strict=True)]

    rd = rd_impact(gen, run.results, solve_many=solve_many, max_programs=2)
    assert len(rd) == 2 and all(k for k in calls[0])
    assert (rd["detail_later"] == OVERTIME_TEXT).all() and rd["objective_later"].isna().all()
    assert rd["objective_earlier"].notna().all() and (rd["detail_earlier"] != OVERTIME_TEXT).all()
    assert (rd["verdict"] == "").all()


def test_a_lift_without_optimum_leaves_the_causes_not_computed(monkeypatch):
    """The exact path used to read the base plan's outcome for a lift that ended without an optimum, so its
    family got no share and the others took it, silently. Now the causes are 'not computed (…)', and "what would
    help", which starts from them, too; the plan's own tables stay."""
    plan = load_plan(EXAMPLE)
    real = explain.Lifter.outcome
    seen = []

    def flaky(self):
        seen.append(1)
        return None if len(seen) == 3 else real(self)

    monkeypatch.setattr(explain.Lifter, "outcome", flaky)
    run, rep = api.analyse(plan)
    assert rep.causes is None
    assert rep.not_computed["causes"].startswith("not computed (the re-solve with ")
    assert "lifted ended without an optimum" in rep.not_computed["causes"]
    assert rep.fixes is None and rep.not_computed["fixes"].startswith("not computed (it starts from the shortfall")
    assert run.results.summary["objective"] is not None


def test_cli_analysis_limit_values(tmp_path):
    """auto, none and seconds are accepted; anything else is a usage error (exit 2) naming what was found."""
    r = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "a.xlsx"), "--analysis-limit", "soon"])
    assert r.exit_code == 2 and "expected auto, none or a number of seconds > 0, found 'soon'" in r.output
    r = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "b.xlsx"), "--analysis-limit", "-3"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "c.xlsx"), "--analysis-limit", "none"])
    assert r.exit_code == 0, r.output
    assert "time limit" not in r.output


def test_a_limit_stops_its_own_solves_only():
    """The analyses' time limit (and a prefetch no longer needed) cancelled every tracked HiGHS solve of the
    process (cancel_all), so in ``planner serve``, where pages are answered on several threads, one request's
    limit stopped another request's explanation lifts ("ended without an optimum"). Here a tracked session
    solves again and again on a thread of its own while a Runner on the main thread passes its deadline with
    tasks under way: every one of the other session's runs must still reach its optimum."""
    import threading

    from planner.analysis.resolves import tracked, untracked

    other = tracked(HighsSession(_lp(1000, 150), method="simplex"))
    statuses: list[str] = []
    started = threading.Event()

    def keep_solving():
        t = time.monotonic()
        while time.monotonic() - t < 2.0:
            other.h.clearSolver()
            started.set()
            statuses.append(other.run().status)

    th = threading.Thread(target=keep_solving)
    th.start()
    started.wait()
    try:
        r = Runner(workers=2, deadline=time.monotonic() + 0.3)
        out = r.map([(_sleep_then, (i, 0.8)) for i in range(4)])
        assert out[-1] is OVERTIME  # the deadline did pass with tasks under way
    finally:
        th.join()
        untracked(other)
    assert len(statuses) >= 3 and set(statuses) == {"optimal"}, statuses


def test_a_cut_lever_list_is_not_said_to_give_the_best(gen):
    """With the levers cut short, "What would help" shows each platform's best lever among those tried; on this
    plan a lever not tried closes more for some platform than the one shown (found by the run without a limit),
    so the note must say that the lines are the best of those tried, not only that platforms without a line may
    have one."""
    _, cut = api.analyse(gen, analysis_limit=1e-6)
    _, full = api.analyse(gen, analysis_limit=None)
    tried, levers = cut.fixes.attrs["levers"]
    assert tried < levers
    shown = cut.fixes.set_index("platform")["units_closed"]
    best = full.fixes.set_index("platform")["units_closed"].reindex(shown.index)
    assert (best > shown + 1).any(), "no platform has a better lever among those not tried: pick another plan"
    note = next(n for n in cut.notes if n.startswith("The analyses stopped at their time limit"))
    assert f"what would help from {tried} of {levers} levers (each platform's line is the best of those; one not " \
           "tried may close more" in note


def test_no_thread_to_be_had_keeps_the_time_limit(monkeypatch):
    """Where no thread can be started the Runner runs its tasks one after the other; it used to do so with a new
    Runner that had no deadline, so the analyses' time limit no longer held. Six 0.3 s tasks, a 0.5 s deadline:
    the first (at_least) always runs, the later ones are OVERTIME."""
    import concurrent.futures

    def no_thread(self, *a, **k):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", no_thread)
    r = Runner(workers=2, deadline=time.monotonic() + 0.5)
    r.at_least = 1
    out = r.map([(_sleep_then, (i, 0.3)) for i in range(6)])
    assert out[0] == 0 and out[-1] is OVERTIME, out


def test_json_and_several_scenarios_say_the_limit_on_stderr(tmp_path):
    """--json and several scenarios print no headline, so a limited run said nothing on the terminal about what
    the limit left out. The Overview note the workbook has is now also on stderr, word for word (read back from
    the workbook), with the scenario it is about."""
    import subprocess
    import sys

    from planner.io.generate import write_generated

    src = tmp_path / "g.xlsx"
    write_generated(src, 30, 30, 5, 12, seed=1)
    for extra, report in ((["--json"], tmp_path / "j.xlsx"), (["--scenario", "base", "--all-scenarios"], None)):
        args = [sys.executable, "-m", "planner", "solve", str(src), "--analysis-limit", "0.000001", *extra]
        if report is not None:
            args += ["-o", str(report)]
        else:
            args = [a for a in args if a not in ("--scenario", "base")]
        p = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        report = report or tmp_path / "g-report.xlsx"
        wb = openpyxl.load_workbook(report, read_only=True)
        note = next(str(c) for row in wb["Overview"].iter_rows(values_only=True) for c in row
                    if c and str(c).startswith("The analyses stopped at their time limit"))
        assert f"base: {note}" in p.stderr, p.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decided_starts_keep_their_ramp_in_the_lifts(tmp_path, seed):
    """A plan re-solved against its own report with the first quarters frozen (and committed WIP): lifting the
    yield ramp used to raise the frozen starts' output past the back end they filled — an infeasible lift, read
    silently as the base outcome before, "not computed" since. Decided starts keep their ramped yield in every
    lift, so the causes are computed and add up to each quarter's shortfall."""
    src, base = tmp_path / "g.xlsx", tmp_path / "base.xlsx"
    r = CliRunner().invoke(main, ["generate", "--platforms", "8", "--products", "12", "--fabs", "3", "--quarters", "10",
                                  "--seed", str(seed), "--wip", "-o", str(src)])
    assert r.exit_code == 0, r.output
    assert CliRunner().invoke(main, ["solve", str(src), "-o", str(base), "--no-insights"]).exit_code == 0
    from planner.analysis.baseline import freeze
    from planner.io.baseline import read_baseline
    from planner.io.scenarios import apply_edits, parse_override

    plan = apply_edits(load_plan(src), [parse_override("Settings.frozen_quarters=2")])
    plan, _ = freeze(plan, read_baseline(base))
    run, rep = api.analyse(plan, insights=False)
    assert run.model.lp.rows("frozen_zone").size and "causes" not in rep.not_computed
    per = rep.causes.groupby(["platform", "period"]).agg(units=("units", "sum"), short=("shortfall", "first"))
    assert len(per) and np.allclose(per["units"], per["short"], rtol=1e-6, atol=1e-3)


def test_json_says_what_the_analyses_lack(tmp_path):
    """--json carries what the report's analyses lack and why: the time-limit note (None when nothing was cut)
    and the analyses not computed (here R&D impact, turned off), the same texts the workbook has."""
    import json

    r = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "a.xlsx"), "--json", "--no-insights"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["analyses_note"] is None
    assert d["analyses_not_computed"] == {"rd_impact": "not computed; turn on with --insights"}
    wb = openpyxl.load_workbook(tmp_path / "a.xlsx", read_only=True)
    assert wb["R&D impact"]["A1"].value == "R&D impact not computed; turn on with --insights."


def test_a_program_with_one_shift_cut_is_counted_apart():
    """Three programs in R&D impact: A with both shifts, B with only the earlier one (the limit cut the later), C
    with none. The note counts them as the table shows: both shifts for 1 of 3, one of the two for 1 more."""
    import pandas as pd

    from planner.report.writer import ReportInput

    ok = "no change in service"
    rd = pd.DataFrame({"program": ["A", "B", "C"], "detail_earlier": [ok, ok, OVERTIME_TEXT],
                       "detail_later": [ok, OVERTIME_TEXT, OVERTIME_TEXT]})
    rep = ReportInput.__new__(ReportInput)
    rep.rd_impact, rep.fixes, rep.expansion_timing, rep.notes, rep.not_computed = rd, None, None, [], {}
    api._say_cut(rep, {"rd_impact": (3, 6)}, 20.0, "auto", 20.0)
    assert rep.notes == ["The analyses stopped at their time limit (20 s, as long as the plan's own build and solve, "
                         "which took 20.0 s; at least 15 s): R&D impact for 1 of 3 programs, and one of the two "
                         "shifts for 1 more. planner solve --analysis-limit none computes them all."]
    # the floor set the limit: the note says so, with the plan's own time (no table shows it)
    rep.rd_impact, rep.notes = rd.copy(), []
    api._say_cut(rep, {"rd_impact": (3, 6)}, 15.0, "auto", 2.93)
    assert rep.notes[0].startswith("The analyses stopped at their time limit (15 s, the least the auto limit gives; "
                                   "the plan's own build and solve took 2.9 s): ")
