"""Scenario batches on a real Dask cluster on loopback (issue 7): a scheduler and two workers started by the tests
on 127.0.0.1 with free ports, compared with the local run, one worker killed mid-batch, then shut down."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE

from planner import api
from planner.analysis.cases import Case
from planner.analysis.whatif import montecarlo_cases
from planner.batch import LocalExecutor, run_batch
from planner.cli import main
from planner.io.scenarios import parse_override

distributed = pytest.importorskip("distributed", reason="Dask is an optional extra: pip install 'planner[distributed]'")


@pytest.fixture(scope="module")
def cluster():
    from planner.distributed import LoopbackCluster

    with LoopbackCluster(2) as c:
        yield c.address, c.workers


@pytest.fixture(scope="module")
def example():
    return api.load_workbook(EXAMPLE)


def kpis(results):
    return [(r.name, r.status, r.kpis) for r in results]


def test_cluster_batch_equals_local(cluster, example):
    from planner.distributed import DaskExecutor

    address, _ = cluster
    cases = montecarlo_cases(example, 16, seed=3)
    ex = DaskExecutor(address)
    try:
        remote = run_batch(example, cases, executor=ex, quiet=True)
    finally:
        ex.close()
    local = run_batch(example, cases, executor=LocalExecutor(1), quiet=True)
    assert not remote.failed
    assert kpis(remote.results) == kpis(local.results)  # same seed, same numbers, bit for bit


def test_worker_killed_mid_batch_loses_nothing(cluster, example):
    from planner.distributed import DaskExecutor

    address, workers = cluster
    cases = [Case(f"tsv {i}", [parse_override(f"Backend[TSV-1].units_per_quarter*={0.7 + i / 100}")])
             for i in range(60)]
    done = []

    def kill_after_three(res):
        done.append(res)
        if len(done) == 3:
            workers[0].send_signal(signal.SIGKILL)

    ex = DaskExecutor(address)
    try:
        out = run_batch(example, cases, executor=ex, quiet=True, on_result=kill_after_three)
    finally:
        ex.close()
    assert workers[0].wait(timeout=10) is not None  # the worker really died
    assert [r.status for r in out.results] == ["optimal"] * len(cases)
    local = run_batch(example, cases[:5], executor=LocalExecutor(1), quiet=True)
    assert kpis(out.results[:5]) == kpis(local.results)


def test_failing_case_is_reported_and_batch_finishes(cluster, example):
    from planner.distributed import DaskExecutor

    address, workers = cluster
    alive = [w for w in workers if w.poll() is None]
    assert alive
    cases = [Case("ok"), Case("bad", [parse_override("Programs[HBM4].qualification_quarters*=1.5")]), Case("ok2")]
    ex = DaskExecutor(address)
    try:
        out = run_batch(example, cases, executor=ex, quiet=True)
    finally:
        ex.close()
    assert [r.status for r in out.results] == ["optimal", "failed", "optimal"]
    assert "not_an_integer" in out.results[1].error


def test_cli_sweep_on_cluster(cluster, tmp_path):
    address, _ = cluster
    out = tmp_path / "s.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Programs[HBM4].qualification_quarters",
                                    "--values", "0,1,2", "--scheduler", address, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 of 3 points solved" in res.output


def test_unreachable_scheduler_fails_fast(tmp_path):
    from planner.distributed import _free_port

    port = _free_port()  # nothing listens here
    t = time.perf_counter()
    res = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Programs[HBM4].qualification_quarters",
                                    "--values", "0,1", "--scheduler", f"tcp://127.0.0.1:{port}",
                                    "-o", str(tmp_path / "s.xlsx")])
    assert res.exit_code == 1 and ("cannot reach the Dask scheduler" in res.output
                                   or "did not answer as a Dask scheduler" in res.output), res.output
    assert time.perf_counter() - t < 20


def test_missing_dask_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    res = CliRunner().invoke(main, ["montecarlo", str(EXAMPLE), "--samples", "2", "--scheduler", "tcp://127.0.0.1:1",
                                    "-o", str(tmp_path / "m.xlsx")])
    assert res.exit_code == 1 and "pip install 'planner[distributed]'" in res.output


def test_hedge_recourse_on_the_cluster_equals_local(cluster, example, tmp_path):
    """`planner hedge` above its column limit evaluates each scenario's recourse as a batch: on the cluster the
    figures are those of a local run, and the CLI's --scheduler takes the same path."""
    import pandas as pd

    from planner.distributed import DaskExecutor

    address, _ = cluster
    kw = {"samples": 6, "seed": 9, "commit_quarters": 2, "ef_max_columns": 1_000}
    ex = DaskExecutor(address)
    try:
        remote = api.hedge(example, executor=ex, **kw)
    finally:
        ex.close()
    local = api.hedge(example, executor=LocalExecutor(1), **kw)
    cols = ["scenario", "objective", "average_plan_objective", "perfect_foresight_objective"]
    assert remote.summary["extensive_form_scenarios"] < remote.summary["scenarios"]
    pd.testing.assert_frame_equal(remote.table[cols], local.table[cols])
    out = tmp_path / "hedge.xlsx"
    r = CliRunner().invoke(main, ["hedge", str(EXAMPLE), "--samples", "6", "--max-columns", "1000",
                                  "--scheduler", address, "--quiet", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "evaluated in every scenario" in r.output and out.exists()


def test_dask_runner_stops_at_the_analyses_time_limit(cluster):
    """The analyses' time limit on the cluster, as on local threads: tasks unfinished at the deadline give
    OVERTIME, the first ``at_least`` always finish, finished ones keep their own result and order."""
    from planner.analysis.resolves import OVERTIME
    from planner.distributed import DaskExecutor, DaskRunner

    address, _ = cluster
    ex = DaskExecutor(address)
    try:
        r = DaskRunner(ex, deadline=time.monotonic() + 1.5)
        out = r.map([(time.sleep, (s,)) for s in (0.1, 0.1, 4.0, 4.0)])  # cancelled, they still run out there
        assert out[:2] == [None, None] and out[2:] == [OVERTIME, OVERTIME]
        r = DaskRunner(ex, deadline=time.monotonic() - 1)
        assert r.map([(abs, (-3,))]) == [OVERTIME]
        r.at_least = 1  # past the deadline, the first task still runs, ahead of the others (a higher priority):
        t = time.monotonic()  # waiting for it must not let the 10 s one run to its end
        assert r.map([(abs, (-3,)), (time.sleep, (10.0,))]) == [3, OVERTIME]
        assert time.monotonic() - t < 8  # the workers' last 4 s sleeps, not the 10 s one
    finally:
        ex.close()
