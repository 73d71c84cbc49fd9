"""Issue 15, money and backlog half: margin is revenue − cost, the objective is named as such, backlog levels are
never added up as units, and a sweep point's label is the value that was solved.

Builders' default plan: fab F (node n1) 100 wafers/quarter at $20; product P = 10 units per wafer at $10, no
cycle time, no unit cost; platform X needs one P. So one served unit earns $10 − $2 = $8 of margin.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from builders import frames
from click.testing import CliRunner

from planner.analysis.results import platform_service
from planner.cli import main
from planner.report.template import write_input_workbook


def sheet(path: Path, name: str) -> pd.DataFrame:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb[name].iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=rows[0])


def summary(path: Path) -> dict:
    s = sheet(path, "Summary")
    return dict(zip(s["metric"], s["value"], strict=True))


def overview_lines(path: Path) -> list[str]:
    """The sentences under 'The plan in brief' on the Overview."""
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    cells = [r[0] for r in wb["Overview"].iter_rows(values_only=True)]
    start = cells.index("The plan in brief") + 1
    end = cells.index("Key figures")
    return [c for c in cells[start:end] if c]


def key_figures(path: Path) -> dict:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = [r[:2] for r in wb["Overview"].iter_rows(values_only=True)]
    start = [r[0] for r in rows].index("Key figures") + 1
    out = {}
    for name, value in rows[start:]:
        if not name:
            break
        out[name] = value
    return out


def write_plan(tmp: Path, name: str, fr: dict) -> Path:
    return write_input_workbook(tmp / f"{name}.xlsx", fr)


def solve(tmp: Path, fr: dict, *args: str, name: str = "plan") -> tuple[Path, str]:
    src = write_plan(tmp, name, fr)
    out = tmp / f"{name}-report.xlsx"
    res = CliRunner().invoke(main, ["solve", str(src), "-o", str(out), *args])
    assert res.exit_code == 0, res.output
    return out, res.output


# ---- plans whose answers are derived by hand ------------------------------------------------------------------
def capacity_plan(**kw) -> dict:
    """Demand 2,000 in 2026Q1, the fab makes 1,000 units, penalty $3 per unit short.

    Served 1,000: revenue 10,000; cost 100 wafers × $20 = 2,000; margin 8,000; penalty 1,000 × 3 = 3,000;
    objective 5,000. One more wafer: +10 units → revenue +100, cost +20, penalty −30: objective +110 (margin +80).
    """
    return frames(quarters=2, platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 3}], **kw)


def gate_plan(quarters: int = 2, ready_after: int = 1, demand: float = 500, **kw) -> dict:
    """Program PRG (start 2026Q1, development 0, qualification ``ready_after``) gates P; demand ``demand`` every
    quarter; capacity 1,000 units a quarter never binds; penalty $3 per unit short."""
    periods = [f"2026Q{i + 1}" if i < 4 else f"2027Q{i - 3}" for i in range(quarters)]
    return frames(quarters=quarters, products=[{"program": "PRG"}],
                  programs=[{"program": "PRG", "start_period": "2026Q1", "development_quarters": 0,
                             "qualification_quarters": ready_after}],
                  platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 3}],
                  demand=[{"platform": "X", "period": q, "units": demand} for q in periods], **kw)


def backlog_plan(demand: tuple[float, ...] = (1500, 1500, 500), wafers: float = 100, **kw) -> dict:
    """Backlog on; the fab makes ``wafers`` × 10 units a quarter; penalty $3 per unit in backlog per quarter."""
    periods = ["2026Q1", "2026Q2", "2026Q3", "2026Q4"][: len(demand)]
    return frames(quarters=len(demand), settings={"backlog": "true"},
                  fabs=[{"fab": "F", "node": "n1", "wafers_per_quarter": wafers, "wafer_cost": 20}],
                  platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 3}],
                  demand=[{"platform": "X", "period": q, "units": u} for q, u in zip(periods, demand, strict=True)],
                  **kw)


# ---- 1. margin is revenue − cost; the objective is named -------------------------------------------------------
def test_summary_json_and_overview_carry_margin_and_objective(tmp_path):
    """capacity_plan: margin 8,000 = revenue 10,000 − cost 2,000; objective 5,000 = margin − penalty 3,000."""
    src = write_plan(tmp_path, "cap", capacity_plan())
    out = tmp_path / "cap-report.xlsx"
    res = CliRunner().invoke(main, ["solve", str(src), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    js = json.loads(res.output)
    assert js["margin"] == pytest.approx(8000) and js["objective"] == pytest.approx(5000)
    s = summary(out)
    assert s["margin"] == pytest.approx(8000) and s["objective"] == pytest.approx(5000)
    assert s["margin"] == pytest.approx(s["revenue"] - s["cost"])
    metrics = list(sheet(out, "Summary")["metric"])
    assert metrics.index("margin") == metrics.index("objective") + 1
    first = overview_lines(out)[0]
    assert first.startswith("Margin $8,000 (revenue $10k less cost $2,000); objective $5,000 (margin less "
                            "$3,000 of shortfall penalties)"), first
    kf = key_figures(out)
    assert kf["Margin (revenue − cost)"] == pytest.approx(8000)
    assert kf["Objective (margin − shortfall penalties)"] == pytest.approx(5000)
    assert not any("Margin (objective)" in k for k in kf)


def test_shadow_prices_are_said_to_be_objective_not_margin(tmp_path):
    """One more wafer raises the objective by 110 but the margin by only 80: the sentence must say objective."""
    out, text = solve(tmp_path, capacity_plan(), "--no-explain")
    b = sheet(out, "Bottlenecks")
    row = b[b["resource"] == "F/n1"].iloc[0]
    assert row["shadow_price"] == pytest.approx(110)
    assert "raise the objective (margin less shortfall penalties) by $110" in row["explanation"]
    assert "of margin" not in row["explanation"]
    binds = next(line for line in overview_lines(out) if line.startswith("What binds"))
    assert "F/n1 (1 quarter, 2026Q1, up to $110 of objective per extra wafer)" in binds, binds


def test_rd_impact_reports_margin_and_objective_changes(tmp_path):
    """gate_plan (2 quarters, ready 2026Q2): base serves 2026Q2 only: margin 500 × 8 = 4,000, penalty 1,500,
    objective 2,500. One quarter earlier (ready 2026Q1): both quarters served: margin 8,000, objective 8,000,
    so margin +4,000 and objective +5,500. One quarter later (ready 2026Q3, after the horizon): nothing served,
    margin 0, penalty 3,000, objective −3,000: margin −4,000, objective −5,500."""
    out, _ = solve(tmp_path, gate_plan(), "--no-explain")
    rd = sheet(out, "R&D impact").iloc[0]
    assert rd["margin_earlier"] == pytest.approx(4000) and rd["objective_earlier"] == pytest.approx(5500)
    assert rd["margin_later"] == pytest.approx(-4000) and rd["objective_later"] == pytest.approx(-5500)
    line = next(x for x in overview_lines(out) if x.startswith("R&D:"))
    assert line == ("R&D: PRG ready one quarter earlier (2026Q1 instead of 2026Q2): margin +$4,000, objective "
                    "+$5,500; one quarter later (2026Q3): margin -$4,000, objective -$5,500."), line


def test_what_would_help_names_margin_and_objective(tmp_path):
    """gate_plan: PRG one quarter earlier closes all 500 units short: margin +4,000, objective +5,500."""
    out, text = solve(tmp_path, gate_plan())
    fixes = sheet(out, "What would help").iloc[0]
    assert fixes["units_closed"] == pytest.approx(500) and fixes["share_closed"] == pytest.approx(1)
    assert fixes["margin_change"] == pytest.approx(4000) and fixes["objective_change"] == pytest.approx(5500)
    assert fixes["sentence"].endswith(": +500 X units (100% of its shortfall), margin +$4,000, objective +$5,500")


def test_compare_reports_margin_and_objective_side_by_side(tmp_path):
    """capacity_plan with F/n1 at 150 wafers: served 1,500: margin 12,000 (+4,000, +50.0%), penalty 1,500,
    objective 10,500 (+5,500, +110.0%); fill rate 75% against 50%: +25.0 pts."""
    fr = capacity_plan(scenarios=[{"scenario": "fab +50%", "sheet": "Fabs", "key": "F|n1",
                                   "column": "wafers_per_quarter", "op": "scale", "value": 1.5}])
    src = write_plan(tmp_path, "cmp", fr)
    out = tmp_path / "cmp-out.xlsx"
    res = CliRunner().invoke(main, ["compare", str(src), "--all-scenarios", "-o", str(out), "--workers", "1",
                                    "--no-explain"])
    assert res.exit_code == 0, res.output
    assert ("fab +50%: margin +$4,000 (+50.0%), objective +$5,500 (+110.0%), fill rate +25.0 pts; served: X +500 "
            "units; shortfall: X -500 units.") in res.output, res.output
    kp = sheet(out, "KPIs").set_index("metric")
    assert kp.loc["margin", "base"] == pytest.approx(8000) and kp.loc["margin", "fab +50%"] == pytest.approx(12000)
    assert kp.loc["objective", "Δ fab +50%"] == pytest.approx(5500)
    data = sheet(out, "ChartData")
    head = data.index[data["platform"] == "case"][0]
    assert list(data.iloc[head]) == ["case", "margin", "objective"]
    assert list(data.iloc[head + 1]) == ["base", 8000, 5000] and list(data.iloc[head + 2]) == ["fab +50%", 12000, 10500]


def test_sweep_and_montecarlo_report_margin_and_objective(tmp_path):
    """capacity_plan with F/n1 at 120 wafers in every draw: served 1,200: revenue 12,000, cost 2,400, margin
    9,600; penalty 800 × 3 = 2,400; objective 7,200 — at P10, P50 and P90 alike."""
    fr = capacity_plan()
    fr["Uncertainty"] = pd.DataFrame([{"name": "fab", "sheet": "Fabs", "key": "F|n1", "column": "wafers_per_quarter",
                                       "distribution": "discrete", "op": "set", "values": "120",
                                       "probabilities": "1"}])
    src = write_plan(tmp_path, "mc", fr)
    out = tmp_path / "mc-out.xlsx"
    res = CliRunner().invoke(main, ["montecarlo", str(src), "--samples", "3", "-o", str(out), "--workers", "1",
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    st = sheet(out, "Statistics").set_index("metric")
    assert st.loc["margin", "P50"] == pytest.approx(9600) and st.loc["objective", "P50"] == pytest.approx(7200)
    ov = " ".join(str(v) for v in sheet(out, "Overview").iloc[:, 0])
    assert ("Margin P10 $9,600, P50 $9,600, P90 $9,600 (revenue − cost); objective P10 $7,200, P50 $7,200, "
            "P90 $7,200 (margin less shortfall penalties).") in ov, ov
    hist = sheet(out, "Histogram")
    assert hist["from"].min() <= 9600 <= hist["to"].max()  # the histogram is of margin, not of the objective
    out2 = tmp_path / "sw.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(src), "--param", "Fabs[F|n1].wafers_per_quarter", "--values",
                                    "100,120", "-o", str(out2), "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    pts = sheet(out2, "Points").set_index("Fabs[F|n1].wafers_per_quarter")
    assert pts.loc[120, "margin"] == pytest.approx(9600) and pts.loc[120, "objective"] == pytest.approx(7200)
    assert pts.loc[100, "margin"] == pytest.approx(8000) and pts.loc[100, "objective"] == pytest.approx(5000)
    cd = sheet(out2, "ChartData")
    assert list(cd.columns[:4]) == ["Fabs[F|n1].wafers_per_quarter", "margin", "objective", "fill_rate"]


def test_all_scenarios_table_names_margin_and_objective(tmp_path):
    fr = capacity_plan(scenarios=[{"scenario": "fab +50%", "sheet": "Fabs", "key": "F|n1",
                                   "column": "wafers_per_quarter", "op": "scale", "value": 1.5}])
    src = write_plan(tmp_path, "all", fr)
    res = CliRunner().invoke(main, ["solve", str(src), "--all-scenarios", "--no-explain", "--no-insights"])
    assert res.exit_code == 0, res.output
    base = next(line for line in res.output.splitlines() if line.startswith("base "))
    assert re.search(r"margin +8,000 +objective +5,000 ", base), base


# ---- 2. backlog levels are never added up as units -------------------------------------------------------------
def service_frame(demand, served, backlog, platform="X"):
    periods = [f"2026Q{i + 1}" for i in range(len(demand))]
    return pd.DataFrame({"platform": platform, "period": periods, "demand": demand, "served": served,
                         "shortfall": backlog}), periods


def test_platform_service_under_backlog_counts_each_unit_once():
    """Demand 1,500 in 2026Q1, 500 a quarter from 2026Q1 to 2026Q3 served 500 a quarter: backlog 1,000, 500, 0.
    Never served: 0. Oldest orders first: 2026Q2 serves 500 from the backlog (1 quarter late), 2026Q3 serves 500
    (2 quarters late): 1,000 served late, 1.5 quarters on average; unit-quarters 1,000 + 500 = 1,500 = 500 × 1 +
    500 × 2. Summing the backlog column as units would say '1,500 units short' for a platform served in full."""
    svc, periods = service_frame([1500, 0, 0], [500, 500, 500], [1000, 500, 0])
    t = platform_service(svc, backlog=True, periods=periods).set_index("platform").loc["X"]
    assert t["demand"] == 1500 and t["served"] == 1500 and t["unserved"] == 0
    assert t["served_late"] == pytest.approx(1000) and t["avg_delay_quarters"] == pytest.approx(1.5)
    assert t["backlog_unit_quarters"] == pytest.approx(1500) and t["fill_rate"] == pytest.approx(1)


def test_platform_service_never_served_is_the_last_backlog():
    """Demand 1,500, 1,500, 500; served 1,000 a quarter; backlog 500, 1,000, 500. Never served: 500 (the last
    backlog, = 3,500 − 3,000). FIFO: 2026Q2 serves the 500 waiting, 2026Q3 the 1,000 waiting: 1,500 served late.
    The 500 never served are the newest (2026Q3's), waiting 1 quarter each: 500; so the late units waited
    2,000 − 500 = 1,500 unit-quarters, 1.0 quarter on average."""
    svc, periods = service_frame([1500, 1500, 500], [1000, 1000, 1000], [500, 1000, 500])
    t = platform_service(svc, backlog=True, periods=periods).set_index("platform").loc["X"]
    assert t["unserved"] == pytest.approx(500) and t["backlog_unit_quarters"] == pytest.approx(2000)
    assert t["served_late"] == pytest.approx(1500) and t["avg_delay_quarters"] == pytest.approx(1.0)
    lost = platform_service(svc.assign(shortfall=[500, 500, 0], served=[1000, 1000, 500]), backlog=False,
                            periods=periods).set_index("platform").loc["X"]
    assert lost["unserved"] == pytest.approx(1000) and "backlog_unit_quarters" not in lost.index


def test_backlog_headline_and_overview_never_add_levels_up(tmp_path):
    """backlog_plan: served 1,000 a quarter (capacity), backlog 500, 1,000, 500. Revenue 30,000, cost 6,000,
    margin 24,000, penalty 3 × 2,000 = 6,000, objective 18,000. Never served 500, served late 1,500 (1.0 quarter
    on average), 2,000 unit-quarters of backlog."""
    out, text = solve(tmp_path, backlog_plan())
    lines = overview_lines(out)
    assert lines[0].startswith("Margin $24k (revenue $30k less cost $6,000); objective $18k (margin less "
                               "$6,000 of shortfall penalties); 85.7% of platform demand served (3,000 of 3,500 "
                               "platform units)"), lines[0]
    x = next(line for line in lines if line.startswith("X: "))
    assert x.startswith("X: 500 units never served by 2026Q3, 1,500 served late (1.0 quarter on average, oldest "
                        "orders first); 2,000 unit-quarters of backlog over 2026Q1–2026Q3: "), x
    assert "2,000 units" not in text and "2,000 units" not in " ".join(lines)
    wb = openpyxl.load_workbook(out, read_only=True, data_only=True)
    rows = [r for r in wb["Overview"].iter_rows(values_only=True)]
    header = next(r for r in rows if r[0] == "platform")
    table = dict(zip(header, next(r for r in rows if r[0] == "X"), strict=False))
    assert table["unserved"] == pytest.approx(500) and table["backlog_unit_quarters"] == pytest.approx(2000)
    assert table["served_late"] == pytest.approx(1500) and "shortfall" not in table
    svc = sheet(out, "Service")
    assert list(svc["shortfall"]) == pytest.approx([500, 1000, 500])  # the contract column stays the level


def test_backlog_platform_served_in_full_is_not_called_short(tmp_path):
    """Demand 1,500 then 500, capacity 1,000 a quarter: served 1,000 and 1,000, backlog 500 then 0. Fill rate
    100 %: 'all 2,000 units served by 2026Q2, 500 of them late (1.0 quarter on average …); 500 unit-quarters'."""
    out, text = solve(tmp_path, backlog_plan(demand=(1500, 500)))
    x = next(line for line in overview_lines(out) if line.startswith("X: "))
    assert x.startswith("X: all 2,000 units served by 2026Q2, 500 of them late (1.0 quarter on average, oldest "
                        "orders first); 500 unit-quarters of backlog over 2026Q1: "), x
    assert "units short" not in x


def test_backlog_what_would_help_counts_units_once(tmp_path):
    """backlog_plan with F/n1 +10% (110 wafers = 1,100 units a quarter): backlog 400, 800, 200. Never served 200
    (300 fewer, 60% of 500); unit-quarters 1,400 (600 fewer, 30% of 2,000). Served 3,300: margin 26,400
    (+2,400); penalty 4,200; objective 22,200 (+4,200)."""
    out, text = solve(tmp_path, backlog_plan())
    fixes = sheet(out, "What would help").set_index("change")
    row = fixes.loc["F/n1 +10% wafers"]
    assert row["units_closed"] == pytest.approx(300) and row["share_closed"] == pytest.approx(0.6)
    assert row["unit_quarters_closed"] == pytest.approx(600)
    assert row["margin_change"] == pytest.approx(2400) and row["objective_change"] == pytest.approx(4200)
    assert row["sentence"] == ("F/n1 +10% wafers: +300 X units served by 2026Q3 (60% of its unserved units), "
                               "backlog -600 unit-quarters (30% less), margin +$2,400, objective +$4,200")


def test_backlog_compare_and_kpis(tmp_path):
    """backlog_plan, scenario F/n1 +10%: as above; fill rate 3,300 / 3,500 − 3,000 / 3,500 = +8.6 pts; margin
    +2,400 of 24,000 = +10.0%; objective +4,200 of 18,000 = +23.3%."""
    fr = backlog_plan(scenarios=[{"scenario": "fab +10%", "sheet": "Fabs", "key": "F|n1",
                                  "column": "wafers_per_quarter", "op": "scale", "value": 1.1}])
    src = write_plan(tmp_path, "bcmp", fr)
    out = tmp_path / "bcmp-out.xlsx"
    res = CliRunner().invoke(main, ["compare", str(src), "--all-scenarios", "-o", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert ("fab +10%: margin +$2,400 (+10.0%), objective +$4,200 (+23.3%), fill rate +8.6 pts; served: X +300 "
            "units; never served: X -300 units; backlog: X -600 unit-quarters.") in res.output, res.output
    kp = sheet(out, "KPIs").set_index("metric")
    assert kp.loc["unserved[X]", "base"] == pytest.approx(500)
    assert kp.loc["backlog_unit_quarters[X]", "base"] == pytest.approx(2000)
    assert kp.loc["backlog_unit_quarters[X]", "Δ fab +10%"] == pytest.approx(-600)
    assert "shortfall[X]" not in kp.index


def test_backlog_cause_chart_is_in_unit_quarters(tmp_path):
    out, _ = solve(tmp_path, backlog_plan())
    cd = openpyxl.load_workbook(out, read_only=True)["ChartData"]
    titles = [r[0] for r in cd.iter_rows(values_only=True) if isinstance(r[0], str)]
    assert "Backlog by cause per platform (unit-quarters of backlog)" in titles


# ---- 3. a sweep point's label is the value solved ---------------------------------------------------------------
def sweep(tmp: Path, fr: dict, *args: str) -> Path:
    src = write_plan(tmp, "sweep-in", fr)
    out = tmp / "sweep.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(src), *args, "-o", str(out), "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    return out


# gate_plan(quarters=4, ready_after=q): served in 4 − q quarters, 500 units each (margin 4,000 a quarter), short
# 500 in q quarters (penalty 1,500 each): objective(q) = 4,000 (4 − q) − 1,500 q.
OBJ = {0: 16000, 1: 10500, 2: 5000, 3: -500, 4: -6000}


def test_sweep_range_gives_values_like_values(tmp_path):
    """--range 0:2:1 solves qualification 0, 1, 2 (not 0×, 1×, 2× the base 2)."""
    out = sweep(tmp_path, gate_plan(quarters=4, ready_after=2), "--param", "Programs[PRG].qualification_quarters",
                "--range", "0:2:1")
    pts = sheet(out, "Points")
    col = "Programs[PRG].qualification_quarters"
    assert list(pts[col]) == [0, 1, 2]
    assert list(pts["objective"]) == pytest.approx([OBJ[0], OBJ[1], OBJ[2]])
    assert list(pts["case"]) == [f"{col}=0", f"{col}=1", f"{col}=2"]


def test_sweep_scale_and_add_label_the_resulting_cell_value(tmp_path):
    """Base qualification 2: --op scale 0,1,2 solves 0, 2, 4; --op add 0,1 solves 2, 3. Labels are those values,
    and the factor or amount given is kept beside them."""
    col = "Programs[PRG].qualification_quarters"
    out = sweep(tmp_path, gate_plan(quarters=4, ready_after=2), "--param", col, "--range", "0:2:1",
                "--op", "scale")
    pts = sheet(out, "Points")
    assert list(pts[col]) == [0, 2, 4]
    assert list(pts[f"{col} × factor"]) == [0, 1, 2]
    assert list(pts["objective"]) == pytest.approx([OBJ[0], OBJ[2], OBJ[4]])
    out = sweep(tmp_path, gate_plan(quarters=4, ready_after=2), "--param", col, "--values", "0,1", "--op", "add")
    pts = sheet(out, "Points")
    assert list(pts[col]) == [2, 3] and list(pts[f"{col} + amount"]) == [0, 1]
    assert list(pts["objective"]) == pytest.approx([OBJ[2], OBJ[3]])


def test_sweep_over_many_cells_labels_the_factor(tmp_path):
    """Demand[X|*] × 0.5 (250 a quarter), ready 2026Q3: 2 quarters served (margin 2 × 2,000), 2 short (penalty
    2 × 750): objective 2,500. The label is the factor, said as such."""
    out = sweep(tmp_path, gate_plan(quarters=4, ready_after=2), "--param", "Demand[X|*].units", "--values",
                "0.5,1", "--op", "scale")
    pts = sheet(out, "Points")
    col = "Demand[X|*].units (× base)"
    assert list(pts[col]) == [0.5, 1]
    assert list(pts["case"]) == ["Demand[X|*].units × 0.5 of base", "Demand[X|*].units × 1 of base"]
    assert list(pts["objective"]) == pytest.approx([2500, OBJ[2]])


def test_sweep_break_points_and_chart_use_the_solved_values(tmp_path):
    """capacity_plan, F/n1 × 1 and × 3: 100 wafers bind (1,000 of 2,000 units), 300 do not (3,000 ≥ 2,000)."""
    col = "Fabs[F|n1].wafers_per_quarter"
    out = sweep(tmp_path, capacity_plan(), "--param", col, "--values", "1,3", "--op", "scale")
    bp = sheet(out, "Break points")
    assert list(bp["from"]) == [100] and list(bp["to"]) == [300]
    ov = [str(v) for v in sheet(out, "Overview").iloc[:, 0]]
    assert f"Between {col} = 100 and 300: F/n1 stops binding." in ov, ov
    cd = sheet(out, "ChartData")
    assert cd.columns[0] == col and list(cd[col]) == [100, 300]
    with zipfile.ZipFile(out) as z:
        chart = next(z.read(n).decode() for n in z.namelist() if n.startswith("xl/charts/chart"))
    assert col in chart and "ChartData!$A$2:$A$3" in chart


def test_the_issue_sweep_on_the_example(tmp_path):
    """`--param "Programs[HBM4].qualification_quarters" --range 0:2:1`: the point labelled 1 is qualification 1,
    whose objective equals a plain solve with that cell set to 1 (the base is 3)."""
    from conftest import EXAMPLE

    out = tmp_path / "ex-sweep.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(EXAMPLE), "--param", "Programs[HBM4].qualification_quarters",
                                    "--range", "0:2:1", "-o", str(out), "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    pts = sheet(out, "Points").set_index("Programs[HBM4].qualification_quarters")
    one = tmp_path / "one.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "--set", "Programs[HBM4].qualification_quarters=1",
                                    "-o", str(one), "--json", "--no-explain", "--no-insights"])
    assert res.exit_code == 0, res.output
    assert pts.loc[1, "objective"] == pytest.approx(json.loads(res.output)["objective"], rel=1e-9)
