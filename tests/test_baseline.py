"""Plan over plan (issue 19): ``planner solve --baseline LAST-REPORT.xlsx``, the frozen zone, and the SinceBaseline
sheets and sentence.

Builders' defaults (``tests/builders.py``): fab F/n1, 100 wafers a quarter at $20; product P, 10 units per wafer, no
cycle time, price $10; platform X needs one P per unit, no penalty.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from builders import frames
from click.testing import CliRunner
from conftest import EXAMPLE

from planner import api
from planner.cli import main
from planner.io.baseline import read_baseline
from planner.io.load import plan_from_frames
from planner.io.problems import Code
from planner.io.reader import ReadError
from planner.report.fmt import units
from planner.report.template import write_input_workbook


def report_of(tmp_path: Path, name: str, **kw) -> Path:
    """Solve a plan built in code and write its report, as last quarter's run would have."""
    run, rep = api.analyse(plan_from_frames(frames(**kw)))
    return api.write_report(tmp_path / f"{name}-report.xlsx", rep)


def sheet(path: Path, name: str) -> pd.DataFrame:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb[name].iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=rows[0])


BASE = dict(quarters=2, products=[{"holding_cost": 1}],
            demand=[{"platform": "X", "period": "2026Q1", "units": 500}, {"platform": "X", "period": "2026Q2",
                                                                          "units": 500}])
NEW_DEMAND = [{"platform": "X", "period": "2026Q1", "units": 300}, {"platform": "X", "period": "2026Q2", "units": 500}]


@pytest.mark.parametrize("frozen, objective, starts", [(0, 6400, [30, 50]), (1, 6200, [50, 30]), (2, 5600, [50, 50])])
def test_frozen_zone_holds_the_baselines_starts(tmp_path, frozen, objective, starts):
    """The baseline served 500 + 500 from 50 + 50 wafers. Q1 demand has fallen to 300.

    - frozen_quarters 0: the new data alone — 30 wafers in Q1, 50 in Q2: 8000 − 80·20 = 6400.
    - 1: Q1 is held at the baseline's 50 wafers although 30 would do; the 200 spare units are held into Q2 (holding
      $1 each) and Q2 needs only 30 wafers: 8000 − 80·20 − 200·1 = 6200.
    - 2: both quarters held at 50: Q2 has 200 + 500 units for 500 of demand, 200 are held at the end of Q1 and again
      at the end of Q2: 8000 − 100·20 − 400·1 = 5600.
    """
    base = read_baseline(report_of(tmp_path, "base", **BASE))
    new = plan_from_frames(frames(**{**BASE, "demand": NEW_DEMAND, "settings": {"frozen_quarters": frozen}}))
    run, rep = api.analyse(new, baseline=base)
    assert run.results.summary["objective"] == pytest.approx(objective)
    ws = run.results.wafer_starts.set_index("period")["wafers"]
    assert [ws.get(q, 0.0) for q in ("2026Q1", "2026Q2")] == pytest.approx(starts)
    # the sheet the contract names, over both quarters
    svc = rep.since.service.set_index("period")
    assert svc["served_before"].tolist() == pytest.approx([500, 500])
    assert svc["served_now"].tolist() == pytest.approx([300, 500])
    assert svc["change"].tolist() == pytest.approx([-200, 0])


def test_frozen_zone_the_new_data_cannot_hold_is_explained_like_any_infeasible_plan(tmp_path):
    """The baseline started 50 wafers in Q1; the new plan's fab can start only 40 then (FabCapacity). Holding the
    frozen zone is impossible: status infeasible, and the diagnosis names the frozen start and the capacity."""
    base = report_of(tmp_path, "base", **BASE)
    src = tmp_path / "new.xlsx"
    write_input_workbook(src, frames(**{**BASE, "settings": {"frozen_quarters": 1},
                                        "fab_capacity": [{"fab": "F", "node": "n1", "period": "2026Q1",
                                                          "wafers": 40}]}))
    res = CliRunner().invoke(main, ["solve", str(src), "--baseline", str(base), "-o", str(tmp_path / "out.xlsx")])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert "frozen zone holds F/n1 at the baseline's 50 P wafers in 2026Q1" in res.output
    assert "F/n1 can start at most 40 wafers in 2026Q1" in res.output
    infeasible = sheet(tmp_path / "out.xlsx", "Infeasibility")
    assert infeasible["requirement"].tolist()[0] == "frozen_zone"


def test_frozen_start_of_a_product_now_gated_is_named(tmp_path):
    """The new plan's program G is ready only in 2026Q2, but the baseline started P in 2026Q1: infeasible, because
    of the R&D gate."""
    base = read_baseline(report_of(tmp_path, "base", **BASE))
    new = plan_from_frames(frames(**{**BASE, "settings": {"frozen_quarters": 1}, "products": [{"program": "G"}],
                                     "programs": [{"program": "G", "start_period": "2026Q1",
                                                   "development_quarters": 1, "qualification_quarters": 0}]}))
    run, _ = api.analyse(new, baseline=base)
    assert run.results.summary["status"] == "infeasible"
    (row,) = run.infeasibility.to_dict("records")
    assert row["requirement"] == "frozen_zone" and "program G is ready only in 2026Q2 (R&D gate)" in row["reason"]


def test_baseline_from_another_horizon_and_product_set(tmp_path):
    """Baseline 2026Q1–2026Q4 with products P and OLD; today 2026Q2–2027Q1 with P and NEW, frozen 2 quarters. The
    overlap (2026Q2–2026Q4) is compared; 2026Q1 and 2027Q1 are named as in one plan only, as are OLD and NEW and the
    baseline's OLD starts that the frozen zone cannot hold. Nothing crashes."""
    two = [{"holding_cost": 1}, {"product": "OLD", "holding_cost": 1}]  # holding cost: start when needed
    base_kw = dict(quarters=4, products=two,
                   platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0},
                              {"platform": "Y", "priority": 1, "shortfall_penalty": 0}],
                   bom=[{"platform": "X", "option": "o", "product": "P", "units_per_platform": 1},
                        {"platform": "Y", "option": "o", "product": "OLD", "units_per_platform": 1}],
                   demand=[{"platform": p, "period": q, "units": 300} for p in "XY"
                           for q in ("2026Q1", "2026Q2", "2026Q3", "2026Q4")])
    base = read_baseline(report_of(tmp_path, "base", **base_kw))
    assert base.periods == ["2026Q1", "2026Q2", "2026Q3", "2026Q4"] and base.products == ["OLD", "P"]
    new_kw = dict(quarters=4, first="2026Q2", settings={"frozen_quarters": 2},
                  products=[{"holding_cost": 1}, {"product": "NEW", "holding_cost": 1}],
                  platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0},
                             {"platform": "Z", "priority": 1, "shortfall_penalty": 0}],
                  bom=[{"platform": "X", "option": "o", "product": "P", "units_per_platform": 1},
                       {"platform": "Z", "option": "o", "product": "NEW", "units_per_platform": 1}],
                  demand=[{"platform": p, "period": q, "units": 200} for p in "XZ"
                          for q in ("2026Q2", "2026Q3", "2026Q4", "2027Q1")])
    run, rep = api.analyse(plan_from_frames(frames(**new_kw)), baseline=base)
    assert run.results.summary["status"] == "optimal"
    since = rep.since
    assert since.overlap == ["2026Q2", "2026Q3", "2026Q4"]
    svc = since.service
    assert set(svc["period"]) == set(since.overlap)
    x = svc[svc["platform"] == "X"].set_index("period")
    assert x["served_before"].tolist() == pytest.approx([300] * 3) and x["served_now"].tolist() == pytest.approx([200] * 3)
    assert svc.loc[svc["platform"] == "Y", "served_now"].isna().all()  # Y is in the baseline only
    assert svc.loc[svc["platform"] == "Z", "served_before"].isna().all()  # Z is new
    notes = " ".join(since.notes)
    for text in ("2026Q1", "2027Q1", "Platforms new in this plan: Z", "Platforms in the baseline only: Y",
                 "Products new in this plan: NEW", "Products in the baseline only: OLD"):
        assert text in notes, text
    assert any("cannot hold" in n and "OLD" in n for n in rep.notes)  # the frozen zone names what it cannot hold
    # frozen: P's starts in 2026Q2 and 2026Q3 are the baseline's 30 wafers (serving 300) although 20 would do
    ws = run.results.wafer_starts
    p = ws[ws["product"] == "P"].set_index("period")["wafers"]
    assert p["2026Q2"] == pytest.approx(30) and p["2026Q3"] == pytest.approx(30)


def test_baseline_that_is_not_a_report_is_refused(tmp_path):
    """An input workbook, an unrelated workbook and a missing file as --baseline: exit 1 with a clear message."""
    r = CliRunner()
    out = str(tmp_path / "o.xlsx")
    res = r.invoke(main, ["solve", str(EXAMPLE), "--baseline", str(EXAMPLE), "-o", out])
    assert res.exit_code == 1 and "not a planner report" in res.output and "input workbook" in res.output
    assert "[not_a_report]" in res.output and "Traceback" not in res.output
    other = tmp_path / "other.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["a", "b"])
    wb.save(other)
    with pytest.raises(ReadError) as exc:
        read_baseline(other)
    assert exc.value.problem.code == Code.NOT_A_REPORT
    res = r.invoke(main, ["solve", str(EXAMPLE), "--baseline", str(tmp_path / "nope.xlsx"), "-o", out])
    assert res.exit_code == 1 and "does not exist" in res.output


def test_report_never_overwrites_its_baseline(tmp_path):
    base = report_of(tmp_path, "base", **BASE)
    src = tmp_path / "new.xlsx"
    write_input_workbook(src, frames(**BASE))
    before = base.read_bytes()
    res = CliRunner().invoke(main, ["solve", str(src), "--baseline", str(base), "-o", str(base)])
    assert res.exit_code == 1 and base.read_bytes() == before


def _expected_sentence_parts(report: Path, baseline: Path) -> dict:
    """Recompute what the Overview's first sentence must say from the written tables alone: the platform whose
    service moved most over the compared quarters (SinceBaseline), its biggest quarter, and the shortfall cause
    (the two reports' ShortfallCauses over those quarters) that moved most the same way."""
    svc = sheet(report, "SinceBaseline").dropna(subset=["change"])
    total = svc.groupby("platform")["change"].sum()
    plat = total.abs().idxmax()
    g = svc[svc["platform"] == plat]
    worst = g.loc[g["change"].abs().idxmax()]
    overlap = sorted(set(svc["period"]))
    now, before = sheet(report, "ShortfallCauses"), sheet(baseline, "ShortfallCauses")

    def by(df):
        df = df[(df["platform"] == plat) & df["period"].isin(overlap)].fillna({"resource": ""})
        return df.groupby(["cause", "resource"])["units"].sum()

    shift = by(now).sub(by(before), fill_value=0.0)
    d = total[plat]
    best = shift.max() if d < 0 else shift.min()
    key = min(k for k, v in shift.items() if abs(v - best) <= 0.5)  # ties (round-off apart): cause, then resource
    return {"platform": plat, "delta": d, "worst": worst, "cause": key, "cause_units": abs(shift[key])}


@pytest.mark.parametrize("edit", ["Programs[HBM4].qualification_quarters+=1", "Backend[TSV-1].units_per_quarter*=1.1"])
def test_first_sentence_says_what_moved_most_and_why(tmp_path, edit):
    """The example against its own report after one edit: the Overview's first sentence names the platform that moved
    most, by how much, its biggest quarter and the cause whose shortfall moved — each recomputed from the sheets."""
    src = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, src)
    base = tmp_path / "base-report.xlsx"
    r = CliRunner()
    assert r.invoke(main, ["solve", str(src), "-o", str(base)]).exit_code == 0
    out = tmp_path / "new-report.xlsx"
    res = r.invoke(main, ["solve", str(src), "--set", edit, "--baseline", str(base), "-o", str(out)])
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    overview = sheet(out, "Overview")
    assert first in [str(v) for v in overview.iloc[:, 0]]  # the same sentence is the Overview's first
    e = _expected_sentence_parts(out, base)
    d, w = e["delta"], e["worst"]
    assert first.startswith(f"Since the baseline ({base.name}): {e['platform']} moved most, "
                            f"{'+' if d > 0 else '−'}{units(abs(d))} platform units served")
    assert f"most in {w['period']} ({'+' if w['change'] > 0 else '−'}{units(abs(w['change']))})" in first
    label = {"rd_gate": "{r} qualification", "backend_capacity": "the {r} line"}[e["cause"][0]].format(r=e["cause"][1])
    verb = "rose" if d < 0 else "fell"
    assert f"its shortfall from {label} {verb} by {units(e['cause_units'])} units" in first
    inputs = sheet(out, "SinceBaseline inputs")
    assert len(inputs) == 1 and "1 input change" in first


def test_sentence_on_a_generated_plan(tmp_path):
    """A generated plan against its own report after a demand change: the sentence is recomputed from the sheets
    (platform, change, biggest quarter), not only on the example."""
    r = CliRunner()
    src = tmp_path / "gen.xlsx"
    assert r.invoke(main, ["generate", "--platforms", "6", "--products", "6", "--fabs", "3", "--quarters", "6",
                           "--seed", "3", "-o", str(src)]).exit_code == 0
    base = tmp_path / "gen-base.xlsx"
    assert r.invoke(main, ["solve", str(src), "-o", str(base), "--no-insights"]).exit_code == 0
    out = tmp_path / "gen-new.xlsx"
    res = r.invoke(main, ["solve", str(src), "--set", "Demand[*|*].units*=1.5", "--baseline", str(base), "-o",
                          str(out), "--no-insights"])
    assert res.exit_code == 0, res.output
    e = _expected_sentence_parts(out, base)
    first = res.output.splitlines()[0]
    assert abs(e["delta"]) > 0.5, "the edit must move service, or this test checks nothing"
    assert f"{e['platform']} moved most, {'+' if e['delta'] > 0 else '−'}{units(abs(e['delta']))}" in first
    assert f"most in {e['worst']['period']}" in first


def test_no_change_and_identical_inputs(tmp_path):
    """The same plan against its own report: no service change, no input change, and the sheet says so row by row."""
    base = read_baseline(report_of(tmp_path, "base", **BASE))
    run, rep = api.analyse(plan_from_frames(frames(**BASE)), baseline=base)
    assert rep.since.sentence == (f"Since the baseline ({base.name}): no platform's service changed over "
                                  "2026Q1–2026Q2. No input changed.")
    assert rep.since.inputs.empty
    assert (rep.since.service["change"] == 0).all()
    m = rep.since.margin.set_index("platform")
    assert m.loc["X", "change"] == pytest.approx(0)


def test_margin_and_wafers_before_and_after(tmp_path):
    """Baseline: 1000 units from 100 wafers, margin 10,000 − 2,000 = 8,000 for X. Now demand Q1 300: margin
    8,000 − 1,600 = 6,400; wafers in Q1 50 → 30."""
    base = read_baseline(report_of(tmp_path, "base", **{**BASE, "products": [{}]}))
    run, rep = api.analyse(plan_from_frames(frames(**{**BASE, "products": [{}], "demand": NEW_DEMAND})),
                           baseline=base)
    m = rep.since.margin.set_index("platform")
    assert m.loc["X", ["margin_before", "margin_now"]].tolist() == pytest.approx([8000, 6400])
    w = rep.since.wafers.set_index("period")
    assert w.loc["2026Q1", ["wafers_before", "wafers_now", "change"]].tolist() == pytest.approx([50, 30, -20])
    inputs = rep.since.inputs
    assert inputs[["sheet", "key", "column", "before", "now"]].values.tolist() == [
        ["Demand", "X | 2026Q1", "units", 500.0, 300.0]]


def test_frozen_zone_note_is_the_written_wafer_starts(tmp_path):
    """The headline's "Frozen zone: …" note prints the wafers held; the written WaferStarts of the frozen quarters add
    up to it (they are held equal to the baseline's). Without a baseline, frozen_quarters says nothing is frozen and
    the starts are free."""
    import re

    base = report_of(tmp_path, "base", **BASE)
    src = tmp_path / "new.xlsx"
    write_input_workbook(src, frames(**{**BASE, "demand": NEW_DEMAND, "settings": {"frozen_quarters": 1}}))
    out = tmp_path / "out.xlsx"
    res = CliRunner().invoke(main, ["solve", str(src), "--baseline", str(base), "-o", str(out)])
    assert res.exit_code == 0, res.output
    (note,) = [ln for ln in res.output.splitlines() if ln.startswith("Frozen zone:")]
    m = re.match(r"^Frozen zone: wafer starts in (\S+) are held at the baseline's \(([\d,.]+[kM]?) wafers\)\.$", note)
    assert m and m[1] == "2026Q1"
    ws = sheet(out, "WaferStarts")
    assert units(ws.loc[ws["period"] == "2026Q1", "wafers"].sum()) == m[2] == "50"
    res = CliRunner().invoke(main, ["solve", str(src), "-o", str(tmp_path / "free.xlsx")])
    assert res.exit_code == 0 and "nothing is frozen" in res.output
    ws = sheet(tmp_path / "free.xlsx", "WaferStarts")
    assert ws.loc[ws["period"] == "2026Q1", "wafers"].sum() == pytest.approx(30)
