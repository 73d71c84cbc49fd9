"""The what-if workbooks: comparison, sweep and Monte Carlo — KPIs side by side, native charts, and the sentences
an analyst forwards (deltas, break points, percentiles), from the tables of :mod:`planner.analysis.whatif`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from planner.analysis.cases import Case, CaseResult
from planner.analysis.whatif import (
    SweepAxis,
    binding_changes,
    break_points,
    kpi_table,
    montecarlo_stats,
    platform_fill,
)
from planner.batch import BatchOutcome
from planner.io import contract as C
from planner.io.problems import ValidationFailed
from planner.io.scenarios import changed_cells
from planner.io.validate import PlanData
from planner.report.atomic import atomic_write
from planner.report.fmt import cell, money, signed_money, signed_units
from planner.report.xlsx import Book

OVERVIEW_WIDTHS = (44, 20, 15, 15, 15, 15)
MONEY_KPIS = ("objective", "margin", "revenue", "cost", "shortfall_penalty")
MAX_CASE_COLS = 7  # scenarios per block of the KPIs sheet, so it prints one page wide


def overview_head(book: Book, title: str, plan: PlanData, lines: list[str], about: str):
    """The head of an Overview sheet: title, notice, input, the sentences. Returns the sheet, its last column
    and the next free row (the what-if workbooks and the hedge workbook share it)."""
    ws = book.sheet("Overview", about)
    ws.hide_gridlines(2)
    for col, w in enumerate(OVERVIEW_WIDTHS):
        book.width(ws, col, w)
    last_col = len(OVERVIEW_WIDTHS) - 1
    ws.write_string(0, 0, title, book.title)
    book.row_height(ws, 0, 22)
    book.paragraph(ws, 1, C.HYPOTHETICAL_NOTICE.replace("in this workbook", "in this report"), 0, last_col,
                   book.notice)
    ws.write_string(2, 0, f"Input: {Path(plan.source).name} (SHA-256 {plan.sha256[:16]}…)")
    r = 4
    for line in lines:
        r = book.paragraph(ws, r, line, 0, last_col)
    return ws, last_col, r


def _overview(book: Book, title: str, plan: PlanData, lines: list[str], about: str) -> None:
    """The first sheet of every what-if workbook: the head, then the sheet index."""
    ws, last_col, r = overview_head(book, title, plan, lines, about)
    book.sheet_index(ws, r + 1, last_col)
    ws.activate()


def kpi_format(book: Book, metric: str, money_fmt: object, delta: bool = False) -> object:
    """The number format of a KPI by its name: money, percent (points for a change), units, wafers."""
    if metric in MONEY_KPIS:
        return money_fmt
    if metric.startswith(("fill_rate", "utilisation")):
        return book.fmt["dpct" if delta else "pct"]
    if metric.startswith("wafers["):
        return book.fmt["wafers"]
    if metric == "max_violation":
        return book.fmt["sci"]
    return book.fmt["signed" if delta else "units"]


def _failures(book: Book, results: list[CaseResult]) -> None:
    bad = [r for r in results if not r.ok]
    if bad:
        ws = book.sheet("Failed", "cases that did not solve, with the reason")
        book.table(ws, pd.DataFrame([{"case": r.name, "status": r.status, "reason": r.error} for r in bad]),
                   wrap={"reason": 70, "case": 30})


def _because(plan: PlanData, case: Case | None, moves: pd.DataFrame | None, name: str) -> str:
    """'because <input changes> → <cause moves>' for one scenario, when both are known."""
    parts = []
    if case is not None and case.edits:
        try:
            cc = changed_cells(plan, case.edits)
        except ValidationFailed:
            cc = pd.DataFrame()
        if len(cc):
            head = cc.head(2)
            desc = [f"{r.sheet} {r.row_id} {r.column} {cell(r.before)} → {cell(r.after)}" for r in head.itertuples()]
            if len(cc) > 2:
                desc.append(f"{len(cc) - 2} more cell{'s' if len(cc) > 3 else ''}")
            parts.append(", ".join(desc))
    if moves is not None and len(moves):
        m = moves[moves["scenario"] == name].reindex(
            moves[moves["scenario"] == name]["delta"].abs().sort_values(ascending=False).index).head(3)
        if len(m):
            parts.append("; ".join(m["explanation"]))
    return (" Because " + " → ".join(parts) + ".") if parts else ""


def compare_sentences(plan: PlanData, results: list[CaseResult], cases: list[Case] | None = None,
                      moves: pd.DataFrame | None = None) -> list[str]:
    cur = plan.settings.currency
    case_of = {c.name: c for c in cases or []}
    base = results[0]
    lines = []
    if not base.ok:
        return [f"The base plan is {base.status}: {base.error}"]
    for r in results[1:]:
        if not r.ok:
            lines.append(f"{r.name}: {r.status} — {r.error}")
            continue
        money_part = []
        for key in ("margin", "objective"):
            d = r.kpis[key] - base.kpis[key]
            rel = f" ({d / abs(base.kpis[key]):+.1%})" if base.kpis[key] else ""
            money_part.append(f"{key} {signed_money(d, cur)}{rel}")
        df = (r.kpis["fill_rate"] or 0) - (base.kpis["fill_rate"] or 0)
        served = (r.service.groupby("platform")["served"].sum() - base.service.groupby("platform")["served"].sum())
        served = served.fillna(0)
        movers = served[served.abs() > 0.5].sort_values()
        who = "; ".join(f"{p} {signed_units(d)} units" for p, d in movers.items()) or "none"
        line = f"{r.name}: {', '.join(money_part)}, fill rate {df * 100:+.1f} pts; served: {who}"
        backlog = base.backlog or r.backlog
        for prefix, word, label in (("unserved", "units", "never served" if backlog else "shortfall"),
                                    ("backlog_unit_quarters", "unit-quarters", "backlog")):
            change = _platform_change(base, r, prefix)
            if len(change):
                line += f"; {label}: " + "; ".join(f"{p} {signed_units(d)} {word}" for p, d in change.items())
        line += "." + _because(plan, case_of.get(r.name), moves, r.name)
        lines.append(line)
    return lines


def _platform_change(base: CaseResult, other: CaseResult, prefix: str) -> pd.Series:
    """Per-platform change of a KPI ``prefix[platform]`` (a platform without the key counts 0), largest first."""
    def of(r: CaseResult) -> pd.Series:
        return pd.Series({k[len(prefix) + 1:-1]: v for k, v in r.kpis.items() if k.startswith(prefix + "[")},
                         dtype=float)

    d = of(other).sub(of(base), fill_value=0.0)
    return d[d.abs() > 0.5].sort_values(ascending=False)


def _kpi_blocks(book: Book, ws, results: list[CaseResult], money_fmt: object) -> None:
    """KPIs as metric × case, then the change against the base as metric × scenario, each in blocks of at
    most MAX_CASE_COLS cases stacked down the sheet (one page wide however many scenarios)."""
    base = results[0]
    kp = kpi_table(results).set_index("case")
    metrics = [c for c in kp.columns if c not in ("status", "error") and kp[c].map(
        lambda v: isinstance(v, int | float | np.number) or v is None).all()]

    def delta(r: CaseResult, m: str):
        a, b = r.kpis.get(m), base.kpis.get(m)
        ok = isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number)
        return float(a) - float(b) if ok and not (np.isnan(a) or np.isnan(b)) else None

    row = 0
    for what, cases in (("value", results), ("change", results[1:])):
        for k in range(0, max(len(cases), 1), MAX_CASE_COLS):
            chunk = cases[k:k + MAX_CASE_COLS]
            if not chunk:
                continue
            table = pd.DataFrame({"metric": ["status", *metrics]})
            fmts: dict[str, list] = {}
            for r in chunk:
                col = r.name if what == "value" else f"Δ {r.name}"
                vals = [r.kpis.get(m) for m in metrics] if what == "value" else [delta(r, m) for m in metrics]
                table[col] = [r.status, *vals]
                fmts[col] = [None, *[kpi_format(book, m, money_fmt, delta=what == "change") for m in metrics]]
            if row:
                title = "Change against the base" if what == "change" else "KPIs (continued)"
                ws.write_string(row, 0, title, book.subtitle)
                row += 1
            _, last = book.table(ws, table, first_row=row, formats=fmts, widths={"metric": 30}, autofilter=False,
                                 freeze=row == 0, repeat_header=False)
            row = last + 3


def _service_changes(results: list[CaseResult]) -> pd.DataFrame:
    """Platform and quarter rows where a scenario serves (or is asked for) something other than the base."""
    base = results[0]
    cols = ["platform", "period", "scenario", "demand", "served_base", "served", "Δ served", "fill_rate"]
    if base.service is None:
        return pd.DataFrame(columns=cols)
    b = base.service.set_index(["platform", "period"])
    rows = []
    for r in results[1:]:
        if r.service is None:
            continue
        s = r.service.set_index(["platform", "period"])[["demand", "served"]]
        both = s.merge(b[["demand", "served"]], left_index=True, right_index=True, how="outer",
                       suffixes=("", "_b")).fillna(0.0)
        changed = both[((both["served"] - both["served_b"]).abs() > 0.5) | ((both["demand"] - both["demand_b"]).abs() > 0.5)]
        for (plat, per), x in changed.iterrows():
            rows.append({"platform": plat, "period": per, "scenario": r.name, "demand": x["demand"],
                         "served_base": x["served_b"], "served": x["served"], "Δ served": x["served"] - x["served_b"],
                         "fill_rate": x["served"] / x["demand"] if x["demand"] > 0 else None})
    return pd.DataFrame(rows, columns=cols)


def _allocation_changes(results: list[CaseResult]) -> pd.DataFrame:
    """Platform, quarter and BOM option rows where a scenario builds a different number of units."""
    base = results[0]
    cols = ["platform", "period", "option", "scenario", "units_base", "units", "Δ units"]
    if base.allocation is None:
        return pd.DataFrame(columns=cols)
    b = base.allocation.set_index(["platform", "period", "option"])["platform_units"]
    rows = []
    for r in results[1:]:
        if r.allocation is None:
            continue
        a = r.allocation.set_index(["platform", "period", "option"])["platform_units"]
        both = pd.concat([a.rename("units"), b.rename("units_base")], axis=1).fillna(0.0)
        both = both[(both["units"] - both["units_base"]).abs() > 0.5]
        for (plat, per, opt), x in both.iterrows():
            rows.append({"platform": plat, "period": per, "option": opt, "scenario": r.name,
                         "units_base": x["units_base"], "units": x["units"], "Δ units": x["units"] - x["units_base"]})
    return pd.DataFrame(rows, columns=cols)


def write_compare(path: Path, plan: PlanData, outcome: BatchOutcome, cases: list[Case],
                  causes_moves: pd.DataFrame | None = None, inputs: tuple[Path, ...] = ()) -> Path:
    results = outcome.results
    base = results[0]
    name = Path(plan.source).name

    def write(tmp: Path) -> None:
        book = Book(tmp, "compare", title=f"Scenario comparison: {name}", source=name)
        cur = plan.settings.currency
        money_fmt = book.money(cur)
        lines = compare_sentences(plan, results, cases, causes_moves)
        if outcome.interrupted:
            lines.insert(0, "INTERRUPTED: only the finished scenarios are shown; the rest are marked 'interrupted'.")
        _overview(book, f"Scenario comparison: {name}", plan, lines,
                  "what each scenario changes, in sentences computed from the sheets; this index")
        ws = book.sheet("KPIs", "margin, fill rate and shortfall per platform, wafers per fab, utilisation: "
                                "each case, then the change against the base")
        _kpi_blocks(book, ws, results, money_fmt)
        svc = _service_changes(results)
        ws = book.sheet("Service", "platform and quarter rows where a scenario serves something else than the base")
        if svc.empty:
            ws.write_string(0, 0, "Every scenario serves every platform and quarter as the base does.")
        else:
            book.table(ws, svc, formats={"demand": "units", "served_base": "units", "served": "units",
                                         "Δ served": "signed", "fill_rate": "pct"}, wrap={"scenario": 24})
        alloc = _allocation_changes(results)
        ws = book.sheet("Allocation", "where a scenario builds a platform with another BOM option mix")
        if alloc.empty:
            ws.write_string(0, 0, "Every scenario builds each platform with the same BOM options as the base.")
        else:
            book.table(ws, alloc, formats={"units_base": "units", "units": "units", "Δ units": "signed"},
                       wrap={"scenario": 24})
        # binding changes
        bc = pd.concat([binding_changes(base, r) for r in results[1:] if r.ok and base.ok] or
                       [binding_changes(base, base)], ignore_index=True)
        ws = book.sheet("Binding", "which capacity limits became or stopped binding")
        if bc.empty:
            ws.write_string(0, 0, "The same constraints bind in every scenario.")
        else:
            book.table(ws, bc, formats={"shadow_base": book.money(cur, 2), "shadow_scenario": book.money(cur, 2)},
                       wrap={"scenario": 24})
        # input cells each scenario changed
        ch = []
        for c in cases[1:]:
            try:
                cc = changed_cells(plan, c.edits)
            except ValidationFailed:
                continue
            cc.insert(0, "scenario", c.name)
            ch.append(cc)
        ws = book.sheet("Changes", "the input cells each scenario changed, before and after")
        if ch:
            book.table(ws, pd.concat(ch, ignore_index=True), wrap={"scenario": 24})
        else:
            ws.write_string(0, 0, "No scenario changed an input cell.")
        if causes_moves is not None and len(causes_moves):
            ws = book.sheet("Causes moved", "how the shortfall causes moved in each scenario")
            book.table(ws, causes_moves, formats={"base_units": "units", "scenario_units": "units", "delta": "signed"},
                       wrap={"explanation": 60, "scenario": 20})
        # charts: fill rate per platform per scenario, margin per scenario
        ok = [r for r in results if r.ok]
        fills = pd.concat([platform_fill(r) for r in ok], axis=1) if ok else pd.DataFrame()
        if not fills.empty:
            data = book.sheet("ChartData", "the numbers behind the charts")
            fills = fills.reset_index().rename(columns={"index": "platform"})
            fills.columns = [str(c) for c in fills.columns]
            where, row = book.data_blocks(data, fills, 0, "Fill rate per platform", "pct", MAX_CASE_COLS)
            margins = pd.DataFrame({"case": [r.name for r in ok], "margin": [r.kpis["margin"] for r in ok],
                                    "objective": [r.kpis["objective"] for r in ok]})
            mwhere, _ = book.data_blocks(data, margins, row, f"Margin and objective by case ({cur})", money_fmt)
            charts = book.sheet("Charts", "fill rate per platform by scenario; margin and objective by scenario")
            charts.hide_gridlines(2)
            charts.write_string(0, 0, f"Charts (data on sheet ChartData; all data hypothetical): {name}", book.title)
            book.row_height(charts, 0, 22)
            grid = book.chart_grid(charts, 2)
            ch1 = book.chart({"type": "column"})
            for col in fills.columns[1:]:
                hdr, first, last, j = where[col]
                ch1.add_series({"name": ["ChartData", hdr, j], "categories": ["ChartData", first, 0, last, 0],
                                "values": ["ChartData", first, j, last, j], "gap": 60})
            ch1.set_title({"name": "Fill rate per platform by scenario", "name_font": {"size": 11}})
            ch1.set_y_axis({"num_format": "0%", "min": 0, "max": 1})
            ch1.set_x_axis({"num_font": {"size": 8}})
            ch1.set_legend({"position": "bottom"})
            grid.add(ch1, full_width=True, height=340)
            ch2 = book.chart({"type": "bar"})
            for key, label, colour in (("margin", "margin (revenue − cost)", "#2F5597"),
                                       ("objective", "objective (margin less shortfall penalties)", "#C55A11")):
                hdr, first, last, j = mwhere[key]
                ch2.add_series({"name": label, "categories": ["ChartData", first, 0, last, 0],
                                "values": ["ChartData", first, j, last, j], "fill": {"color": colour},
                                "data_labels": {"value": True, "num_format": "#,##0.0,,,\"B\""}})
            ch2.set_title({"name": f"Margin and objective by scenario ({cur})", "name_font": {"size": 11}})
            ch2.set_x_axis({"num_format": "#,##0,,,\"B\"", "name": f"{cur}, billions"})
            ch2.set_legend({"position": "bottom"})
            grid.add(ch2, full_width=True, height=min(420, 110 + 50 * len(ok)))
        _failures(book, results)
        book.close()

    return atomic_write(path, write, inputs)


CORE_KPIS = ("margin", "objective", "revenue", "cost", "shortfall_penalty", "fill_rate")


DETAIL_MEASURES = (("fill_rate[", "Fill rate by platform", "pct"),
                   ("unserved[", "Never served by platform (platform units)", "units"),
                   ("backlog_unit_quarters[", "Backlog by platform (unit-quarters)", "units"),
                   ("wafers[", "Wafer starts by fab (whole wafers)", "wafers"),
                   ("utilisation[", "Mean utilisation by resource", "pct"))


def _point_detail(book: Book, ws, results: list[CaseResult], params: list[str], max_cols: int = 8) -> None:
    """Per-platform, per-fab and per-resource KPIs of each point as matrices (points × items), in blocks of
    at most ``max_cols`` items, so the sheet prints one page wide at any number of platforms."""
    ok = [r for r in results if r.ok]
    row = 0
    for prefix, title, fmt in DETAIL_MEASURES:
        items = list(dict.fromkeys(k for r in ok for k in r.kpis if k.startswith(prefix)))
        if not items:
            continue
        df = pd.DataFrame([{**{p: r.params.get(p) for p in params},
                            **{k[len(prefix):-1]: r.kpis.get(k) for k in items}} for r in ok])
        _, row = book.data_blocks(ws, df, row, title, fmt, max_cols, keys=len(params))


def write_sweep(path: Path, plan: PlanData, outcome: BatchOutcome, axes: list[SweepAxis],
                inputs: tuple[Path, ...] = ()) -> Path:
    """Points table, chart and break points of a sweep (grids for two axes); every label is the value solved or
    the factor given, as the :class:`~planner.analysis.whatif.SweepAxis` says."""
    results = outcome.results
    name = Path(plan.source).name
    ax = axes[0]
    ax2 = axes[1] if len(axes) > 1 else None
    param = ax.column
    param2 = ax2.column if ax2 else None

    def write(tmp: Path) -> None:
        book = Book(tmp, "sweep", title=f"Sweep: {name}", source=name)
        money_fmt = book.money(plan.settings.currency)
        kp = kpi_table(results)
        bp = break_points(results, param) if param2 is None else pd.DataFrame()
        lines = [f"Sweep of {param}" + (f" × {param2}" if param2 else "") + f": {len(results)} points, "
                 f"{sum(r.ok for r in results)} solved. Margin is revenue − cost; objective is margin less shortfall "
                 "penalties."]
        if outcome.interrupted:
            lines.insert(0, "INTERRUPTED: points not run are marked 'interrupted'.")
        for b in bp.itertuples():
            lines.append(f"Between {ax.between(b._1, b.to)}: {b.change}.")
        _overview(book, f"Sweep: {name}", plan, lines, "what moves along the sweep, in sentences; this index")
        labels = [c for a in axes for c in (a.column, a.given_column) if c]
        params = [c for c in dict.fromkeys(labels) if c in kp.columns]
        ws = book.sheet("Points", "margin, objective, revenue, cost and fill rate at each point")
        # the case names each point as solved (the value, or the factor over many cells); reasons of failures
        # on 'Failed'
        named = ["case"] if ax2 is None else []  # a grid's points are named by its two parameter columns
        core = kp[[*named, "status", *params, *[c for c in CORE_KPIS if c in kp.columns]]]
        label_fmts = {}
        for c in params:  # whole-number labels with thousands separators, others as typed
            nums = [v for v in kp[c] if isinstance(v, int | float | np.number) and not isinstance(v, bool)]
            if nums and len(nums) == kp[c].notna().sum() and all(float(v).is_integer() for v in nums):
                label_fmts[c] = "int"
        book.table(ws, core, formats={**{c: money_fmt for c in MONEY_KPIS}, "fill_rate": "pct", **label_fmts},
                   wrap={"case": 24} if named else None)
        ws = book.sheet("Point detail", "fill rate and shortfall per platform, wafers per fab, utilisation per "
                                        "resource, at each point")
        if any(r.ok for r in results):
            _point_detail(book, ws, results, params)
        else:
            ws.write_string(0, 0, "No point solved.")
        ok = kp[kp["status"] == "optimal"].reset_index(drop=True)
        if param2 is None and len(ok):
            data = book.sheet("ChartData", "the numbers behind the chart")
            cols = [param, "margin", "objective", "fill_rate"]
            book.table(data, ok[cols], autofilter=False, freeze=False,
                       formats={"margin": money_fmt, "objective": money_fmt, "fill_rate": "pct",
                                **({param: label_fmts[param]} if param in label_fmts else {})})
            n = len(ok)
            chart = book.chart({"type": "line"})
            for j, series_name, marker in ((1, "margin (revenue − cost)", "circle"),
                                           (2, "objective (margin less shortfall penalties)", "square")):
                chart.add_series({"name": series_name, "categories": ["ChartData", 1, 0, n, 0],
                                  "values": ["ChartData", 1, j, n, j], "marker": {"type": marker}})
            fill = book.chart({"type": "line"})
            fill.add_series({"name": "fill rate", "categories": ["ChartData", 1, 0, n, 0],
                             "values": ["ChartData", 1, 3, n, 3], "y2_axis": True, "marker": {"type": "diamond"},
                             "line": {"dash_type": "dash"}})
            chart.combine(fill)
            chart.set_title({"name": f"Margin, objective and fill rate vs {param}", "name_font": {"size": 11}})
            chart.set_x_axis({"name": param, **({"num_format": "#,##0"} if label_fmts.get(param) == "int" else {})})
            chart.set_y_axis({"name": "margin and objective", "num_format": "#,##0,,,\"B\""})
            fill.set_y2_axis({"name": "fill rate", "num_format": "0%"})
            chart.set_legend({"position": "bottom"})
            charts = book.sheet("Charts", "margin, objective and fill rate against the parameter")
            charts.hide_gridlines(2)
            charts.write_string(0, 0, f"Charts (data on sheet ChartData; all data hypothetical): {name}", book.title)
            book.row_height(charts, 0, 22)
            book.chart_grid(charts, 2).add(chart, full_width=True, height=400)
            ws = book.sheet("Break points", "where the binding bottleneck changes along the sweep")
            if bp.empty:
                ws.write_string(0, 0, "The same resources bind at every point of the sweep.")
            else:
                book.table(ws, bp, wrap={"change": 40, "binding_before": 34, "binding_after": 34})
        if param2 is not None and len(ok):
            for metric, fmt in (("margin", money_fmt), ("objective", money_fmt), ("fill_rate", "pct")):
                grid = ok.pivot_table(index=param, columns=param2, values=metric, aggfunc="first")
                ws = book.sheet(f"Grid {metric}", f"{metric} over the grid of {param} × {param2}, colour-scaled")
                book.paragraph(ws, 0, f"{metric} by {param} (rows) and {param2} (columns)", 0, 0, book.subtitle,
                               width=40)
                g = grid.reset_index()
                g.columns = [str(c) for c in g.columns]
                first, last = book.table(ws, g, first_row=1, formats={c: fmt for c in g.columns[1:]},
                                         autofilter=False)
                ws.conditional_format(first, 1, last, len(g.columns) - 1,
                                      {"type": "3_color_scale", "min_color": "#F8696B", "mid_color": "#FFEB84",
                                       "max_color": "#63BE7B"})
        _failures(book, results)
        book.close()

    return atomic_write(path, write, inputs)


def write_montecarlo(path: Path, plan: PlanData, outcome: BatchOutcome, samples: int, seed: int, threshold: float,
                     inputs: tuple[Path, ...] = ()) -> Path:
    results = outcome.results
    stats, hist = montecarlo_stats(results, threshold)
    cur = plan.settings.currency
    name = Path(plan.source).name

    def write(tmp: Path) -> None:
        book = Book(tmp, "montecarlo", title=f"Monte Carlo: {name}", source=name)
        money_fmt = book.money(cur)
        ok = sum(r.ok for r in results)
        lines = [f"{samples} samples, seed {seed}: {ok} solved, {len(results) - ok} failed or not run. "
                 "Same seed, same numbers.",
                 "Uncertain inputs: " + "; ".join(
                     f"{r['name'] or r['column']} ~ {r['distribution']}" for r in plan.uncertainty.to_dict("records"))]
        if len(stats) and stats["P50"].notna().any():
            m, o = (stats.set_index("metric").loc[k] for k in ("margin", "objective"))
            lines.append(f"Margin P10 {money(m['P10'], cur)}, P50 {money(m['P50'], cur)}, P90 {money(m['P90'], cur)} "
                         f"(revenue − cost); objective P10 {money(o['P10'], cur)}, P50 {money(o['P50'], cur)}, "
                         f"P90 {money(o['P90'], cur)} (margin less shortfall penalties).")
            risky = stats[stats["metric"].str.startswith("fill_rate[")].sort_values("P(fill rate < threshold)",
                                                                                     ascending=False)
            for r in risky.head(4).itertuples():
                if r._6 and r._6 > 0:
                    lines.append(f"{r.metric[10:-1]}: {r._6:.0%} chance its fill rate falls below {threshold:.0%} "
                                 f"(P10 {r.P10:.1%}, P50 {r.P50:.1%}).")
        if outcome.interrupted:
            lines.insert(0, "INTERRUPTED: statistics cover the finished samples only.")
        _overview(book, f"Monte Carlo: {name}", plan, lines, "the spread of outcomes in sentences; this index")
        ws = book.sheet("Statistics", "P10, P50, P90 and mean of margin, objective and each platform's fill rate; the "
                                      "chance each falls below the threshold")
        row_fmt = [money_fmt if m in ("margin", "objective") else "pct" for m in stats["metric"]]
        book.table(ws, stats, formats={"P10": row_fmt, "P50": row_fmt, "P90": row_fmt, "mean": row_fmt,
                                       "P(fill rate < threshold)": "pct"},
                   widths={"metric": 34, "P(fill rate < threshold)": 16})
        ws.write_string(len(stats) + 2, 0, f"threshold = {threshold:.0%}")
        ws = book.sheet("Histogram", "how many samples fall in each margin bin")
        book.table(ws, hist, formats={"from": money_fmt, "to": money_fmt, "samples": "int"}, autofilter=False)
        if len(hist):
            chart = book.chart({"type": "column"})
            chart.add_series({"name": "samples", "categories": ["Histogram", 1, 0, len(hist), 0],
                              "values": ["Histogram", 1, 3, len(hist), 3], "gap": 5, "fill": {"color": "#2F5597"}})
            chart.set_title({"name": f"Distribution of margin, revenue − cost ({len(hist)} bins, {ok} samples)",
                             "name_font": {"size": 11}})
            chart.set_x_axis({"num_font": {"rotation": -45, "size": 8}, "name": f"margin ({cur})"})
            chart.set_y_axis({"name": "samples", "num_format": "0"})
            chart.set_legend({"none": True})
            charts = book.sheet("Charts", "the distribution of margin")
            charts.hide_gridlines(2)
            charts.write_string(0, 0, f"Charts (data on sheet Histogram; all data hypothetical): {name}", book.title)
            book.row_height(charts, 0, 22)
            book.chart_grid(charts, 2).add(chart, full_width=True, height=400)
        ws = book.sheet("Samples", "each sample's draws, margin and fill rates (reasons of failures on 'Failed')")
        kp = kpi_table(results)
        draws = {p for r in results for p in r.params}
        keep = ["case", "status", *[c for c in kp.columns if c in draws], "margin", "objective", "fill_rate",
                *[c for c in kp.columns if c.startswith("fill_rate[")]]
        kp = kp[[c for c in dict.fromkeys(keep) if c in kp.columns]]
        book.table(ws, kp, formats={c: ("pct" if c.startswith("fill_rate") else money_fmt if c in MONEY_KPIS
                                        else None) for c in kp.columns})
        _failures(book, results)
        book.close()

    return atomic_write(path, write, inputs)
