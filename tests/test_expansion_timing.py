"""Expansions with dates to act on (issue 19): the last quarter each bought expansion can be decided, and what waiting
one quarter costs, against a plan solved by hand."""

from __future__ import annotations

import shutil

import pytest
from builders import plan
from click.testing import CliRunner
from conftest import EXAMPLE

from planner import api
from planner.analysis.expansion_timing import expansion_timing
from planner.cli import main

QUARTERS = ("2026Q1", "2026Q2", "2026Q3", "2026Q4")


def timing_plan(**kw):
    """Base 100 wafers a quarter (1,000 units). Demand 1,000 in Q1–Q3 (all the fab makes: nothing can be built ahead)
    and 1,500 in Q4. An option adds up to 50 wafers/quarter, lead 2, $30 per wafer/quarter, decidable from Q1.
    Holding costs $4 a unit a quarter, so building Q4's extra 500 units in Q3 on half the capacity (25 wafers in each
    of Q3 and Q4: 750 of expansion + 250·4 = 1,000 of holding) is dearer than 50 wafers used in Q4 alone (1,500)."""
    return plan(quarters=4, products=[{"holding_cost": 4}], expansions=[{"fab": "F", "node": "n1", "lead_quarters": 2, "max_wafers_per_quarter": 50,
                                         "cost_per_wafer": 30, "earliest_period": "2026Q1"}],
                demand=[{"platform": "X", "period": q, "units": u} for q, u in zip(QUARTERS, (1000, 1000, 1000, 1500),
                                                                                 strict=True)], **kw)


def test_decide_by_and_the_cost_of_waiting():
    """The plan buys all 50 wafers/quarter (one quarter of use earns 50·(10·10 − 20) = 4,000 for 50·30 = 1,500). It
    needs them from Q4 (2026Q4: usage 150 > 100), so the decision must be taken by Q4 − 2 = 2026Q2. Decided in 2026Q3
    it would arrive in 2027Q1, after the horizon: the plan loses the option, objective −(4,000 − 1,500) = −2,500,
    and serves 500 platform units fewer."""
    p = timing_plan()
    res = api.run(p).results
    t = expansion_timing(p, res, lambda q: api.run(q).results)
    (row,) = t.to_dict("records")
    assert row["needed_from"] == "2026Q4" and row["decide_by"] == "2026Q2"
    assert row["wafers_per_quarter"] == pytest.approx(50) and row["cost"] == pytest.approx(1500)
    assert row["objective_if_later"] == pytest.approx(-2500)
    assert row["margin_if_later"] == pytest.approx(-2500)  # no shortfall penalty here: margin moves alike
    assert row["served_if_later"] == pytest.approx(-500)
    assert "decide by 2026Q2" in row["sentence"] and "deciding in 2026Q3" in row["sentence"]
    assert "−500 platform units served" in row["sentence"]


def test_example_report_shows_the_dates(tmp_path):
    """The example buys FAB-C/1c capacity: the Expansions sheet and the Overview carry its decide-by date, and the
    sheet's decide_by is needed_from minus the option's lead time."""
    import openpyxl

    src = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, src)
    out = tmp_path / "r.xlsx"
    res = CliRunner().invoke(main, ["solve", str(src), "-o", str(out), "--no-explain"])
    assert res.exit_code == 0, res.output
    rows = list(openpyxl.load_workbook(out, read_only=True)["Expansions"].iter_rows(values_only=True))
    recs = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert recs and all(r["decide_by"] for r in recs)
    plan_ = api.load_workbook(src)
    lead = dict(zip(plan_.expansions["_row"], plan_.expansions["lead_quarters"], strict=True))
    from planner.periods import ordinal

    for r in recs:
        assert ordinal(r["needed_from"]) - ordinal(r["decide_by"]) == lead[r["row"]]
        assert ordinal(r["decided"]) <= ordinal(r["decide_by"])
    assert "Decide by: " in res.output
