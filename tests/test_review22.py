"""Review of issue 22's analyses (explanation, levers, R&D impact at every size): defects found by attacking them.

What held is in the review report; these tests pin the defects, each with how it was found.
"""

from __future__ import annotations

import openpyxl
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE

import planner.api as A
from planner import api
from planner.cli import main

ALL = ["causes", "rd_impact", "fixes", "expansion_timing"]


def test_ctrl_c_while_the_re_solves_are_set_up_keeps_the_plan(monkeypatch, tmp_path):
    """Ctrl-C after the base solve, while the analyses' setup runs (the base basis carried to the gated model:
    a model build, seconds at 500k columns, before the first re-solve), lost the solved plan: the
    KeyboardInterrupt left ``api.analyse`` and ``planner solve`` wrote no report (exit 130, "no report
    written"), though models/explain.md promises that Ctrl-C during the analyses keeps the plan. Found by
    raising KeyboardInterrupt in ``Base`` (the setup step) — the plan is optimal by then, so every analysis,
    and nothing else, must be "not computed (interrupted)"."""

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(A, "Base", interrupted)
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "interrupted: shortfall causes, R&D impact, what would help, expansion timing not computed" in res.output
    wb = openpyxl.load_workbook(out, read_only=True)
    assert next(wb["ShortfallCauses"].iter_rows(values_only=True))[0] == "Shortfall causes not computed (interrupted)."
    assert len(list(wb["Service"].iter_rows(values_only=True))) > 10  # the plan itself is there


def test_a_cluster_gone_after_the_pre_check_keeps_the_plan(monkeypatch):
    """`planner solve --scheduler` checks the cluster before the base solve, then connects again after it (a
    90 s solve at 500k columns later). A cluster gone in between raised DistributedError out of
    ``api.analyse``: the CLI printed one error line and wrote no report, losing the solved plan, where a cluster
    lost one step later (during the re-solves) keeps it (test_explain_scale). Found by making the connection
    fail (DaskExecutor raising DistributedError as for an unreachable scheduler) after a normal solve: the plan
    must come back with every analysis "not computed (<why>)"."""
    import planner.distributed as D

    def gone(*a, **k):
        raise D.DistributedError("could not reach the Dask scheduler at tcp://10.0.0.5:8786")

    monkeypatch.setattr(D, "DaskExecutor", gone)
    plan = api.load_workbook(EXAMPLE)
    run, rep = api.analyse(plan, scheduler="tcp://10.0.0.5:8786")
    assert run.results.summary["status"] == "optimal"
    assert set(rep.not_computed) == set(ALL)
    assert all(v == "not computed (could not reach the Dask scheduler at tcp://10.0.0.5:8786)"
               for v in rep.not_computed.values())
    assert all(getattr(rep, k) is None for k in ALL)
    assert rep.pnl is not None and len(rep.results.service)


@pytest.mark.parametrize("flags", [[], ["--no-explain", "--no-insights"]])
def test_no_analyses_asked_means_no_cluster_needed(monkeypatch, tmp_path, flags):
    """With --no-explain --no-insights there is no re-solve, so the analyses must not connect to the cluster at
    all (before, ``api.analyse`` entered the runner, i.e. connected, even with nothing to run). Checked by a
    DaskExecutor that fails: the plain run must not notice it; the default run must report the analyses not
    computed, not fail."""
    import planner.distributed as D

    calls = []

    def gone(*a, **k):
        calls.append(1)
        raise D.DistributedError("could not reach the Dask scheduler at tcp://10.0.0.5:8786")

    monkeypatch.setattr(D, "DaskExecutor", gone)
    plan = api.load_workbook(EXAMPLE)
    run, rep = api.analyse(plan, scheduler="tcp://10.0.0.5:8786", explain=not flags, insights=not flags)
    assert run.results.summary["status"] == "optimal"
    if flags:
        assert calls == [] and rep.not_computed == {"rd_impact": A.NOT_REQUESTED}
    else:
        assert calls and set(rep.not_computed) == set(ALL)
