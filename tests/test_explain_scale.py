"""The "why" at every size (issue 22): explanation, levers and R&D impact on by default; their re-solves warm
from the base plan's basis and equal to cold solves; Ctrl-C during them keeps the plan and marks them "not
computed (interrupted)"; a plan whose R&D impact was not computed says how to turn it on.

Speed is measured in benchmarks/explain_scale.py, never here.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, ROOT

from planner import api
from planner.analysis import explain
from planner.analysis.explain import Lifter
from planner.analysis.rd_impact import shift_program
from planner.analysis.resolves import Base, Runner, solve_variant
from planner.cli import main
from planner.io.generate import generate_frames
from planner.io.load import plan_from_frames
from planner.io.scenarios import Edit, apply_edits
from planner.model.build import build_model
from planner.solve.sessions import HighsSession
from planner.solve.warm import gated_basis

# a generated plan above the exact path's 2,000 columns (interior point, late-order estimate)
MID = (30, 30, 5, 12)


@pytest.fixture(scope="module")
def mid():
    plan = plan_from_frames(generate_frames(*MID, seed=3))
    return plan, api.run(plan)


def test_base_basis_carries_to_the_gated_model(mid):
    """The base plan's optimal basis, mapped onto the model with gates as bounds (gated columns nonbasic at 0),
    is optimal there: simplex stops without a pivot at the same objective."""
    plan, run = mid
    assert run.model.lp.n_cols > 2000 and run.solution.basis is not None
    gated = build_model(plan, gates_as_bounds=True)
    assert gated.lp.n_cols > run.model.lp.n_cols  # the plan gates some starts
    start = gated_basis(run.model, run.solution.basis, gated)
    s = HighsSession(gated.lp, method="simplex")
    assert s.set_basis(start)
    res = s.run()
    assert res.status == "optimal"
    assert s.h.getInfo().simplex_iteration_count == 0
    assert res.objective == pytest.approx(run.solution.objective, rel=1e-9)


def test_warm_variants_equal_cold_solves(mid):
    """Each R&D shift and a capacity lever, solved warm from the base basis (compact results), has the objective,
    margin and fill rate of the same variant solved from scratch by the pipeline (an independent solve)."""
    plan, run = mid
    base = Base(run)
    assert base.start is not None
    fab, node = plan.fabs["fab"].iloc[0], plan.fabs["node"].iloc[0]
    variants = [shift_program(plan, g, k) for g in plan.programs["program"].iloc[:3] for k in (-1, 1)]
    variants.append(apply_edits(plan, [Edit("Fabs", f"{fab}|{node}", "wafers_per_quarter", "scale", 1.1)]))
    moved = 0
    for v in variants:
        warm = solve_variant(v, base.start)
        cold = api.run(v).results
        for key in ("objective", "margin", "fill_rate"):
            assert warm.summary[key] == pytest.approx(cold.summary[key], rel=1e-7, abs=1e-3), key
        svc_w = warm.service.groupby("platform")["served"].sum()
        assert svc_w.sum() == pytest.approx(cold.service["served"].sum(), rel=1e-7)
        moved += abs(cold.summary["objective"] - run.results.summary["objective"]) > 1.0
    assert moved >= 2, "the variants changed nothing: the comparison checked no re-solve"


def test_threads_and_one_thread_give_the_same_analyses(mid):
    """Concurrency changes nothing: the explanation and R&D impact on two threads equal those on one."""
    from planner.analysis.explain import explain_shortfalls
    from planner.analysis.rd_impact import rd_impact
    from planner.analysis.resolves import variant_tasks

    plan, run = mid
    base = Base(run)
    out = []
    for workers in (1, 2):
        runner = Runner(workers)
        causes = explain_shortfalls(run, runner)
        rd = rd_impact(plan, run.results, max_programs=3,
                       solve_many=lambda ps, keys=None, r=runner: r.map(variant_tasks(base, ps)))
        out.append((causes, rd))
    assert len(out[0][0]) > 0 and len(out[0][1]) == 3
    import pandas as pd

    pd.testing.assert_frame_equal(out[0][0], out[1][0])
    pd.testing.assert_frame_equal(out[0][1], out[1][1])


def test_defaults_explain_a_large_plan(mid):
    """No size limit: a plan on the estimate path gets causes, levers and R&D impact without flags."""
    plan, run = mid
    _, rep = api.analyse(plan)
    assert rep.causes is not None and len(rep.causes)
    assert rep.fixes is not None and len(rep.fixes)
    assert rep.rd_impact is not None and len(rep.rd_impact) == min(8, len(plan.programs))
    got = rep.causes.groupby(["platform", "period"])["units"].sum()
    short = rep.results.service.set_index(["platform", "period"])["shortfall"]
    assert np.allclose(got.to_numpy(), short.loc[got.index].to_numpy(), rtol=1e-6)
    assert not rep.not_computed
    # the Overview says the split is an estimate, and of how many re-solves: 1 + n + n(n-1)/2 lifted sets (all, all
    # but one, all but two), and each family alone on a plan of this size (the policy alone is read in any case)
    fams = Lifter(plan).families()
    n = len(fams)
    assert explain.EXACT_MAX_COLS < run.model.lp.n_cols <= explain.FIRST_MAX_COLS
    said = [x for x in rep.notes if x.startswith("Shortfall causes: split by an estimate")]
    assert said == [f"Shortfall causes: split by an estimate of the Shapley value over the {n} cause families "
                    f"({1 + n + n * (n - 1) // 2 + n} re-solves of the plan: each family lifted first, last and "
                    f"second to last; the exact split takes {2 ** n - 1} and is used up to 2,000 LP columns); its "
                    "accuracy against the exact split: models/explain.md."]


def test_rd_impact_of_a_plan_without_solution_says_so(tmp_path):
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out), "--set",
                                    "Platforms[Vera Rubin].min_fill=1"])
    assert res.exit_code == 1 and "infeasible" in res.output, res.output
    ws = openpyxl.load_workbook(out, read_only=True)["R&D impact"]
    assert next(ws.iter_rows(values_only=True))[0] == "R&D impact not computed (the plan has no solution)."


def test_rd_impact_not_computed_says_how_to_turn_it_on(tmp_path):
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out), "--no-insights"])
    assert res.exit_code == 0, res.output
    ws = openpyxl.load_workbook(out, read_only=True)["R&D impact"]
    assert next(ws.iter_rows(values_only=True))[0] == "R&D impact not computed; turn on with --insights."


@pytest.mark.parametrize("where", ["explain_shortfalls", "what_would_close"])
def test_interrupt_during_the_analyses_keeps_the_plan(monkeypatch, tmp_path, where):
    """Ctrl-C during an analysis: the plan and the analyses already done stay, the one under way and those after
    it are "not computed (interrupted)" — no half table. The order is causes, R&D impact, levers, expansion
    timing (R&D impact analyses the programs the causes name)."""
    import planner.api as A

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(A, where, interrupted)
    plan = api.load_workbook(EXAMPLE)
    run, rep = api.analyse(plan)
    assert run.results.summary["status"] == "optimal"
    later = ["causes", "rd_impact", "fixes", "expansion_timing"]
    later = later[later.index("causes" if where == "explain_shortfalls" else "fixes"):]
    assert rep.not_computed == {k: "not computed (interrupted)" for k in later}
    assert all(getattr(rep, k) is None for k in later)
    api.write_report(tmp_path / "r.xlsx", rep)
    wb = openpyxl.load_workbook(tmp_path / "r.xlsx", read_only=True)
    first = next(wb["ShortfallCauses"].iter_rows(values_only=True))
    rd_first = next(wb["R&D impact"].iter_rows(values_only=True))
    if where == "explain_shortfalls":
        assert first[0] == "Shortfall causes not computed (interrupted)."
        assert "What would help" not in wb.sheetnames
        assert rd_first[0] == "R&D impact not computed (interrupted)."
    else:
        assert first[0] == "platform" and rep.causes is not None and len(rep.causes)
        assert next(wb["What would help"].iter_rows(values_only=True))[0] == \
            "What would help: not computed (interrupted)."
        assert [c for c in rd_first if c][0] == "program" and len(rep.rd_impact)


@pytest.mark.skipif(sys.platform != "linux", reason="pty and SIGINT as on a Linux terminal")
def test_ctrl_c_on_a_terminal_during_the_re_solves(tmp_path):
    """`planner solve` on a terminal: the progress bar counts the re-solves; SIGINT while they run ends the command
    at once with the report written, the plan in it and the explanation marked interrupted."""
    src = tmp_path / "big.xlsx"
    subprocess.run([sys.executable, "-m", "planner", "generate", "--platforms", "120", "--products", "120", "--fabs",
                    "20", "--quarters", "20", "-o", str(src)], check=True, capture_output=True)
    out = tmp_path / "r.xlsx"
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "planner", "solve", str(src), "-o", str(out)], stdout=subprocess.PIPE,
                         stderr=slave, stdin=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "COLUMNS": "120"})
    os.close(slave)
    seen = b""
    t0 = time.time()
    sent = None
    while time.time() - t0 < 600:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if sent is None and b"explaining shortfalls" in seen and b"re-solves" in seen.split(b"explaining")[-1]:
            p.send_signal(signal.SIGINT)
            sent = time.time()
        if p.poll() is not None:
            break
    p.wait(timeout=120)
    os.close(master)
    text = seen.decode(errors="replace")
    assert sent is not None, f"never saw the explanation's progress bar:\n{text[-2000:]}"
    assert p.returncode == 0, text[-2000:]
    assert "ETA" in text and "/" in text.split("explaining shortfalls")[-1]
    assert "interrupted: shortfall causes, R&D impact, what would help" in text
    wb = openpyxl.load_workbook(out, read_only=True)
    assert next(wb["ShortfallCauses"].iter_rows(values_only=True))[0] == "Shortfall causes not computed (interrupted)."
    assert "What would help" not in wb.sheetnames
    svc = list(wb["Service"].iter_rows(values_only=True))
    assert len(svc) > 100  # the plan itself is all there


def test_re_solves_on_a_dask_cluster_equal_local(mid):
    """`planner solve --scheduler`: the explanation's lifts, the R&D shifts and the levers run on the cluster's
    workers (each task a function of the plan and its arguments alone) and give the local run's tables."""
    pytest.importorskip("distributed", reason="Dask is an optional extra: pip install 'planner[distributed]'")
    import pandas as pd

    from planner.distributed import LoopbackCluster

    plan, _ = mid
    _, local = api.analyse(plan)
    with LoopbackCluster(2) as c:
        _, remote = api.analyse(plan, scheduler=c.address)
    for key in ("causes", "fixes", "rd_impact"):
        assert len(getattr(local, key))
        pd.testing.assert_frame_equal(getattr(remote, key), getattr(local, key))


def test_unreachable_scheduler_is_one_line_before_the_solve(tmp_path):
    pytest.importorskip("distributed", reason="Dask is an optional extra: pip install 'planner[distributed]'")
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(tmp_path / "r.xlsx"), "--scheduler",
                                    "not-an-address:xx"])
    assert res.exit_code == 1 and "error:" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r.xlsx").exists()


def test_expansion_timing_and_levers_through_the_tasks_equal_pipeline_solves():
    """The expansion delays and the levers solved as warm concurrent tasks give the numbers of one cold pipeline
    solve per variant (the earlier way), on a generated plan that buys an expansion."""
    import pandas as pd

    from planner.analysis.expansion_timing import expansion_timing
    from planner.analysis.explain import explain_shortfalls, what_would_close
    from planner.analysis.resolves import variant_tasks

    plan = plan_from_frames(generate_frames(40, 30, 6, 12, seed=5))
    run = api.run(plan)
    assert len(run.results.expansions), "the plan buys no expansion: nothing to compare"
    base = Base(run)
    runner = Runner(2)

    def many(ps, keys=None):
        return runner.map(variant_tasks(base, ps))

    def cold(p):
        return api.run(p).results

    from planner.analysis.expansion_timing import delay_option
    from planner.analysis.resolves import embed

    row = int(run.results.expansions["row"].iloc[0])
    fit = embed(build_model(plan, gates_as_bounds=True),
                build_model(delay_option(plan, row, plan.periods[-2]), gates_as_bounds=True))
    assert fit is not None and fit[0].n_cols > len(fit[1])  # fewer columns, embedded: solved warm
    a = expansion_timing(plan, run.results, cold)
    b = expansion_timing(plan, run.results, None, solve_many=many)
    assert np.isfinite(a["objective_if_later"]).all() and len(a)
    pd.testing.assert_frame_equal(a, b, rtol=1e-6)
    causes = explain_shortfalls(run, runner)
    fa, fb = what_would_close(run, causes, cold), what_would_close(run, causes, solve_many=many)
    assert len(fa)
    pd.testing.assert_frame_equal(fa, fb, rtol=1e-6)


def test_rd_impact_analyses_the_programs_the_causes_name_first(mid):
    from planner.analysis.rd_impact import rd_impact

    plan, run = mid
    solve = lambda p: api.run(p).results  # noqa: E731
    top = list(rd_impact(plan, run.results, solve, max_programs=1)["program"])
    other = next(g for g in plan.programs["program"] if g not in top)
    assert list(rd_impact(plan, run.results, solve, max_programs=1, prefer=[other])["program"]) == [other]


def test_cancel_stops_a_running_solve():
    """What Ctrl-C does to the re-solves under way: a tracked session's solve stops without an optimum (HiGHS's
    user interrupt), instead of running to the end. Cold dual simplex on a 20k-column plan needs thousands of
    pivots, so the solve is still running when the cancel comes one second in (checked)."""
    import threading

    from planner.analysis import resolves as R

    plan = plan_from_frames(generate_frames(130, 130, 22, 20, seed=1))
    model = build_model(plan)
    s = R.tracked(HighsSession(model.lp, method="simplex"))
    got = []
    t = threading.Thread(target=lambda: got.append(s.run()))
    t.start()
    time.sleep(1.0)  # into the solve (seconds of pivots even on a fast machine)
    assert t.is_alive(), "the solve ended before the cancel: the test checked nothing"
    R.cancel_all()
    t.join()
    R.CANCELLED.clear()
    R.untracked(s)
    assert got and got[0].status != "optimal"


def test_a_lost_cluster_during_the_analyses_keeps_the_plan(monkeypatch, tmp_path):
    """The cluster of --scheduler going away mid-analysis (ClusterLost, a BatchAborted) is handled like Ctrl-C: the
    report is written with the plan, and the analyses left say why they are missing."""
    import planner.api as A
    from planner.batch import BatchAborted

    def lost(*a, **k):
        raise BatchAborted("lost the connection to the Dask scheduler at tcp://10.0.0.5:8786")

    monkeypatch.setattr(A, "rd_impact", lost)
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert ("lost the connection to the Dask scheduler at tcp://10.0.0.5:8786: R&D impact, what would help, "
            "expansion timing not computed") in res.output
    wb = openpyxl.load_workbook(out, read_only=True)
    assert next(wb["R&D impact"].iter_rows(values_only=True))[0] == (
        "R&D impact not computed (lost the connection to the Dask scheduler at tcp://10.0.0.5:8786).")
    assert next(wb["ShortfallCauses"].iter_rows(values_only=True))[0] == "platform"  # done before: kept


def test_prefetched_lifts_give_the_same_causes(monkeypatch):
    """The lifts solved during the base solve (explain.Prefetch) are the same LPs as those the
    explanation would solve after it: the causes are identical, row for row, with and without the prefetch, and
    the prefetch did solve some of them (the 'all lifted' one first)."""
    from planner.analysis import explain

    plan = plan_from_frames(generate_frames(60, 60, 10, 14, seed=3))
    seen = []
    real = explain.Prefetch._run

    def spy(self):
        real(self)
        seen.append(sorted(self.done))

    monkeypatch.setattr(explain.Prefetch, "_run", spy)
    _, with_pf = api.analyse(plan, insights=False)
    monkeypatch.setattr(explain, "PREFETCH", False)
    run, without = api.analyse(plan, insights=False)
    assert run.model.lp.n_cols > explain.EXACT_MAX_COLS
    assert len(seen) == 1 and seen[0], "the prefetch solved nothing: pick a plan whose base solve takes longer"
    n = len(explain.Lifter(plan).families())
    assert n > explain.EXACT_MAX_FAMILIES and (1 << n) - 1 in seen[0]  # 'all lifted' (mask of every family)
    assert len(with_pf.causes) and with_pf.causes.equals(without.causes)


def test_prefetch_stops_with_the_analysis(monkeypatch):
    """A plan without shortfall, and Ctrl-C during the base solve: the prefetch thread is stopped and gone when
    api.analyse returns or raises (no solve left running behind the analyst's back)."""
    import threading

    from planner.analysis import explain

    def alive() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "planner-prefetch"]

    started = []
    real = explain.Prefetch.__init__

    def mark(self, *a, **k):
        real(self, *a, **k)
        started.append(self)

    monkeypatch.setattr(explain.Prefetch, "__init__", mark)
    frames = generate_frames(60, 60, 10, 14, seed=3)
    frames["Demand"]["units"] = 0.0  # nothing demanded: no shortfall, nothing to explain
    run, rep = api.analyse(plan_from_frames(frames), insights=False)
    assert run.results.service["shortfall"].sum() <= 1e-6 and rep.causes is not None and rep.causes.empty
    assert len(started) == 1 and alive() == []

    def interrupted(*a, **k):
        time.sleep(0.2)
        raise KeyboardInterrupt

    monkeypatch.setattr("planner.pipeline.solve_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.analyse(plan_from_frames(generate_frames(60, 60, 10, 14, seed=3)), insights=False)
    assert len(started) == 2 and alive() == []


def test_planner_explain_says_when_the_split_is_an_estimate(tmp_path):
    """`planner explain` prints the Overview's note on a plan whose causes are an estimate (a generated plan above
    2,000 LP columns), and no such note where the split is exact (the example)."""
    src = tmp_path / "g.xlsx"
    gen = CliRunner().invoke(main, ["generate", "--platforms", "40", "--products", "40", "--fabs", "6",
                                    "--quarters", "12", "-o", str(src)])
    assert gen.exit_code == 0, gen.output
    plan = api.load_workbook(src)
    assert build_model(plan).lp.n_cols > explain.EXACT_MAX_COLS
    res = CliRunner().invoke(main, ["explain", str(src)])
    assert res.exit_code == 0, res.output
    assert "Shortfall causes: split by an estimate of the Shapley value" in res.output
    exact = CliRunner().invoke(main, ["explain", str(EXAMPLE)])
    assert exact.exit_code == 0 and "split by an estimate" not in exact.output
