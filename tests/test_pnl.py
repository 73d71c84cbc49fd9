"""Money per platform (issue 19): the PnL sheets add up to the Summary on every plan, attribute memory cost by the rule
of ``models/pnl.md`` (checked by hand), and the Overview's grids and weeks of supply come from the report's tables."""

from __future__ import annotations

import shutil

import openpyxl
import pandas as pd
import pytest
from builders import plan
from click.testing import CliRunner
from conftest import EXAMPLE

from planner import api
from planner.analysis.pnl import END_INVENTORY, pnl, weeks_of_supply
from planner.cli import main


def sheet(path, name) -> pd.DataFrame:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb[name].iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=rows[0])


def check_totals(p, res) -> None:
    s = res.summary
    t = p.totals()
    assert t["revenue"] == pytest.approx(s["revenue"], rel=1e-9, abs=1e-6)
    assert t["memory_cost"] == pytest.approx(s["cost"], rel=1e-9, abs=1e-6)
    assert t["margin"] == pytest.approx(s["revenue"] - s["cost"], rel=1e-9, abs=1e-6)
    assert t["shortfall_penalty"] == pytest.approx(s["shortfall_penalty"], rel=1e-9, abs=1e-6)
    q = p.by_quarter[["revenue", "memory_cost", "margin", "shortfall_penalty"]].sum()
    assert q["memory_cost"] == pytest.approx(t["memory_cost"], rel=1e-12, abs=1e-6)


def test_written_pnl_totals_equal_the_summary(tmp_path):
    """On the example's written report: PnL and PnLByQuarter columns sum to Summary revenue, cost, revenue − cost and
    shortfall_penalty."""
    src = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, src)
    out = tmp_path / "r.xlsx"
    assert CliRunner().invoke(main, ["solve", str(src), "-o", str(out), "--no-explain", "--no-insights"]).exit_code == 0
    summary = dict(sheet(out, "Summary")[["metric", "value"]].values)
    assert summary["margin"] == pytest.approx(summary["revenue"] - summary["cost"], rel=1e-9)
    for name in ("PnL", "PnLByQuarter"):
        df = sheet(out, name)
        assert df["revenue"].sum() == pytest.approx(summary["revenue"], rel=1e-9)
        assert df["memory_cost"].sum() == pytest.approx(summary["cost"], rel=1e-9)
        assert df["margin"].sum() == pytest.approx(summary["revenue"] - summary["cost"], rel=1e-9)
        assert df["shortfall_penalty"].sum() == pytest.approx(summary["shortfall_penalty"], rel=1e-9)
    by_year = sheet(out, "PnL")
    assert list(by_year.columns) == ["platform", "year", "revenue", "memory_cost", "margin", "shortfall_penalty"]
    assert set(by_year["year"]) <= {2026, 2027, 2028}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("backlog", ["false", "true"])
def test_totals_equal_the_summary_on_generated_plans(tmp_path, seed, backlog):
    """Generated plans use expansions, ramps, back-end lines and inventory: every cost lands in exactly one row."""
    from planner.io.generate import generate_frames
    from planner.io.load import plan_from_frames

    f = generate_frames(8, 10, 4, 8, seed=seed)
    st = f["Settings"]
    f["Settings"] = pd.concat([st[st["key"] != "backlog"], pd.DataFrame([{"key": "backlog", "value": backlog}])])
    p_ = plan_from_frames(f)
    res = api.run(p_).results
    assert res.summary["cost"] > 0 and res.summary["shortfall_penalty"] >= 0
    check_totals(pnl(p_, res), res)


def test_memory_cost_is_shipped_units_at_the_quarters_average_cost():
    """One quarter. P: 100 units on hand (cost sunk: 0), and 30 wafers committed (WIP) → 300 units at 30·20 wafer
    cost + 300·1 unit cost = 900. Average cost = (0 + 900) / (100 + 300) = 2.25 per unit.
    X takes 150 units (1 P each, price 10), Y takes 75 platform units of 2 P each (BOM price 12): 300 shipped.
    X: revenue 1,500, memory cost 150·2.25 = 337.5; Y: revenue 75·2·12 = 1,800, memory cost 150·2.25 = 337.5.
    The 100 units left cost 225: the "(end inventory)" row. Total 900 = the Summary's cost."""
    p_ = plan(quarters=1, products=[{"unit_cost": 1, "initial_inventory": 100}],
              platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 0},
                         {"platform": "Y", "priority": 1, "shortfall_penalty": 0}],
              bom=[{"platform": "X", "option": "o", "product": "P", "units_per_platform": 1},
                   {"platform": "Y", "option": "o", "product": "P", "units_per_platform": 2, "price": 12}],
              demand=[{"platform": "X", "period": "2026Q1", "units": 150},
                      {"platform": "Y", "period": "2026Q1", "units": 75}],
              wip=[{"fab": "F", "node": "n1", "product": "P", "start_period": "2026Q1", "wafers": 30}])
    res = api.run(p_).results
    assert res.summary["cost"] == pytest.approx(900)
    p = pnl(p_, res)
    rows = p.by_year.set_index("platform")
    assert rows.loc["X", ["revenue", "memory_cost", "margin"]].tolist() == pytest.approx([1500, 337.5, 1162.5])
    assert rows.loc["Y", ["revenue", "memory_cost", "margin"]].tolist() == pytest.approx([1800, 337.5, 1462.5])
    assert rows.loc[END_INVENTORY, "memory_cost"] == pytest.approx(225)
    assert p.unit_cost["average_cost"].tolist() == pytest.approx([2.25])
    check_totals(p, res)


def test_cost_carried_between_quarters_includes_holding():
    """Two quarters, cycle 0, holding 0.5. Q2 has no fab capacity, so Q1 makes 500 units from 50 wafers (cost 1,000:
    2 per unit), ships 300 and carries 200, paying 0.5 holding on each: the carried value is 200·2 + 100 = 500, i.e.
    2.5 per unit in Q2. X's memory cost: Q1 300·2 = 600, Q2 200·2.5 = 500 (total 1,100 = the Summary's cost)."""
    kw = dict(quarters=2, products=[{"holding_cost": 0.5}],
              demand=[{"platform": "X", "period": "2026Q1", "units": 300},
                      {"platform": "X", "period": "2026Q2", "units": 200}],
              fab_capacity=[{"fab": "F", "node": "n1", "period": "2026Q2", "wafers": 0}])
    p_ = plan(**kw)
    res = api.run(p_).results
    q = pnl(p_, res).by_quarter.set_index("period")
    assert q.loc["2026Q1", "memory_cost"] == pytest.approx(600)
    assert q.loc["2026Q2", "memory_cost"] == pytest.approx(500)
    check_totals(pnl(p_, res), res)


def test_weeks_of_supply_is_inventory_over_next_quarters_weekly_shipments():
    """Q1 makes 500 (Q2 capacity 0), ships 300, keeps 200; Q2 ships 200. Weeks of supply at the end of Q1 = 200 /
    (200 / 13) = 13; at the end of Q2 nothing is left: 0."""
    p_ = plan(quarters=2, products=[{"holding_cost": 0.5}],
              demand=[{"platform": "X", "period": "2026Q1", "units": 300},
                      {"platform": "X", "period": "2026Q2", "units": 200}],
              fab_capacity=[{"fab": "F", "node": "n1", "period": "2026Q2", "wafers": 0}])
    wos = weeks_of_supply(api.run(p_).results)
    assert wos["weeks"].tolist() == pytest.approx([13.0, 0.0])


def test_overview_grids_are_the_service_sheet(tmp_path):
    """The Overview's served and short grids hold the Service sheet's numbers, platform by quarter."""
    import openpyxl

    out = tmp_path / "r.xlsx"
    src = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, src)
    assert CliRunner().invoke(main, ["solve", str(src), "-o", str(out), "--no-explain", "--no-insights"]).exit_code == 0
    svc = sheet(out, "Service")
    ws = openpyxl.load_workbook(out, read_only=True, data_only=True)["Overview"]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    titles = [i for i, r in enumerate(rows) if isinstance(r[0], str) and r[0].startswith(("Served by platform",
                                                                                          "Short by platform"))]
    assert len(titles) == 2
    for i, col in zip(titles, ("served", "shortfall"), strict=True):
        header = rows[i + 1]
        periods = [h for h in header[1:] if h]
        j = i + 2
        while rows[j][0]:
            plat = rows[j][0]
            for k, per in enumerate(periods, start=1):
                want = svc[(svc["platform"] == plat) & (svc["period"] == per)][col].sum()
                assert rows[j][k] == pytest.approx(want), (col, plat, per)
            j += 1
    assert any(isinstance(r[0], str) and r[0] == "Inventory in weeks of supply" for r in rows)
