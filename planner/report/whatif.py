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


def _notice(book: Book, ws, title: str, plan: PlanData, lines: list[str]) -> int:
    ws.hide_gridlines(2)
    ws.set_column(0, 0, 120)
    ws.write_string(0, 0, title, book.title)
    ws.write_string(1, 0, C.HYPOTHETICAL_NOTICE.replace("in this workbook", "in this report"), book.notice)
    ws.write_string(2, 0, f"Input: {Path(plan.source).name} (SHA-256 {plan.sha256[:16]}…)")
    r = 4
    for line in lines:
        ws.write_string(r, 0, line, book.wrap)
        r += 1
    return r


def _failures(book: Book, results: list[CaseResult]) -> None:
    bad = [r for r in results if not r.ok]
    if bad:
        ws = book.sheet("Failed")
        book.table(ws, pd.DataFrame([{"case": r.name, "status": r.status, "reason": r.error} for r in bad]),
                   widths={"reason": 120, "case": 40})


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


def write_compare(path: Path, plan: PlanData, outcome: BatchOutcome, cases: list[Case],
                  causes_moves: pd.DataFrame | None = None, inputs: tuple[Path, ...] = ()) -> Path:
    results = outcome.results
    base = results[0]

    def write(tmp: Path) -> None:
        book = Book(tmp)
        cur = plan.settings.currency
        ov = book.sheet("Overview")
        lines = compare_sentences(plan, results, cases, causes_moves)
        if outcome.interrupted:
            lines.insert(0, "INTERRUPTED: only the finished scenarios are shown; the rest are marked 'interrupted'.")
        _notice(book, ov, f"Scenario comparison: {Path(plan.source).name}", plan, lines)
        # KPIs: metric × case, with deltas
        kp = kpi_table(results).set_index("case")
        metrics = [c for c in kp.columns if c not in ("status", "error") and kp[c].map(
            lambda v: isinstance(v, int | float | np.number) or v is None).all()]
        table = pd.DataFrame({"metric": ["status", *metrics]})
        for r in results:
            vals = [r.status] + [r.kpis.get(m) for m in metrics]
            table[r.name] = vals
            if r is not base:
                table[f"Δ {r.name}"] = [None] + [
                    (r.kpis.get(m) - base.kpis.get(m)) if isinstance(r.kpis.get(m), int | float) and isinstance(
                        base.kpis.get(m), int | float) and r.kpis.get(m) is not None and base.kpis.get(m) is not None
                    else None for m in metrics]
        ws = book.sheet("KPIs")
        book.table(ws, table, widths={"metric": 34}, autofilter=False)
        money_fmt = book.money(cur)
        for i, m in enumerate(metrics, start=2):
            fmt = (book.fmt["pct"] if m.startswith(("fill_rate", "utilisation")) else
                   money_fmt if m in ("objective", "margin", "revenue", "cost", "shortfall_penalty")
                   else book.fmt["int"])
            ws.set_row(i, None, fmt)
        # Service per platform and quarter
        svc = None
        for r in results:
            if r.service is None:
                continue
            s = r.service.set_index(["platform", "period"])["served"].rename(r.name)
            svc = s.to_frame() if svc is None else svc.join(s, how="outer")
        if svc is not None:
            svc = svc.fillna(0.0).reset_index()
            if base.service is not None:
                svc.insert(2, "demand_base", svc.set_index(["platform", "period"]).index.map(
                    base.service.set_index(["platform", "period"])["demand"]).to_numpy())
            for r in results[1:]:
                if r.name in svc and base.name in svc:
                    svc[f"Δ {r.name}"] = svc[r.name] - svc[base.name]
            ws = book.sheet("Service")
            book.table(ws, svc, formats={c: "int" for c in svc.columns if c not in ("platform", "period")})
        # allocation per platform, quarter and BOM option
        alloc = None
        for r in results:
            if r.allocation is None:
                continue
            a = r.allocation.set_index(["platform", "period", "option"])["platform_units"].rename(r.name)
            alloc = a.to_frame() if alloc is None else alloc.join(a, how="outer")
        if alloc is not None and base.name in alloc:
            alloc = alloc.fillna(0.0).reset_index()
            deltas = []
            for r in results[1:]:
                if r.name in alloc:
                    alloc[f"Δ {r.name}"] = alloc[r.name] - alloc[base.name]
                    deltas.append(f"Δ {r.name}")
            if deltas:  # only the rows where some scenario builds a different mix
                alloc = alloc[(alloc[deltas].abs() > 0.5).any(axis=1)]
            ws = book.sheet("Allocation")
            if alloc.empty:
                ws.write_string(0, 0, "Every scenario builds each platform with the same BOM options as the base.")
            else:
                book.table(ws, alloc, formats={c: "int" for c in alloc.columns
                                               if c not in ("platform", "period", "option")})
        # binding changes
        bc = pd.concat([binding_changes(base, r) for r in results[1:] if r.ok and base.ok] or
                       [binding_changes(base, base)], ignore_index=True)
        ws = book.sheet("Binding")
        if bc.empty:
            ws.write_string(0, 0, "The same constraints bind in every scenario.")
        else:
            book.table(ws, bc, formats={"shadow_base": "money2", "shadow_scenario": "money2"})
        # input cells each scenario changed
        ch = []
        for c in cases[1:]:
            try:
                cc = changed_cells(plan, c.edits)
            except ValidationFailed:
                continue
            cc.insert(0, "scenario", c.name)
            ch.append(cc)
        ws = book.sheet("Changes")
        if ch:
            book.table(ws, pd.concat(ch, ignore_index=True), widths={"scenario": 30})
        if causes_moves is not None and len(causes_moves):
            ws = book.sheet("Causes moved")
            book.table(ws, causes_moves, formats={"base_units": "int", "scenario_units": "int", "delta": "int"},
                       widths={"explanation": 100})
        # charts: fill rate per platform per scenario, margin per scenario
        fills = pd.concat([platform_fill(r) for r in results if r.ok], axis=1) if any(r.ok for r in results) \
            else pd.DataFrame()
        if not fills.empty:
            data = book.sheet("ChartData")
            fills = fills.reset_index().rename(columns={"index": "platform"})
            book.table(data, fills, formats={c: "pct" for c in fills.columns if c != "platform"}, autofilter=False,
                       freeze=False)
            ok = [r for r in results if r.ok]
            m0 = len(fills) + 3
            margins = pd.DataFrame({"case": [r.name for r in ok], "margin": [r.kpis["margin"] for r in ok],
                                    "objective": [r.kpis["objective"] for r in ok]})
            book.table(data, margins, first_row=m0, formats={"margin": "money", "objective": "money"},
                       autofilter=False, freeze=False)
            charts = book.sheet("Charts")
            ch1 = book.wb.add_chart({"type": "column"})
            for j in range(1, len(fills.columns)):
                ch1.add_series({"name": ["ChartData", 0, j], "categories": ["ChartData", 1, 0, len(fills), 0],
                                "values": ["ChartData", 1, j, len(fills), j], "gap": 60})
            ch1.set_title({"name": "Fill rate per platform by scenario"})
            ch1.set_y_axis({"num_format": "0%", "min": 0, "max": 1})
            ch1.set_legend({"position": "bottom"})
            ch1.set_size({"width": 900, "height": 380})
            charts.insert_chart(1, 0, ch1)
            ch2 = book.wb.add_chart({"type": "bar"})
            for j, (name, colour) in enumerate((("margin (revenue − cost)", "#2F5597"),
                                                ("objective (margin less shortfall penalties)", "#C55A11")),
                                               start=1):
                ch2.add_series({"name": name, "categories": ["ChartData", m0 + 1, 0, m0 + len(ok), 0],
                                "values": ["ChartData", m0 + 1, j, m0 + len(ok), j], "fill": {"color": colour},
                                "data_labels": {"value": True, "num_format": "#,##0.0,,,\"B\""}})
            ch2.set_title({"name": f"Margin and objective by scenario ({cur})"})
            ch2.set_x_axis({"num_format": "#,##0,,,\"B\""})
            ch2.set_legend({"position": "bottom"})
            ch2.set_size({"width": 900, "height": 100 + 60 * len(ok)})
            charts.insert_chart(21, 0, ch2)
        _failures(book, results)
        book.close()

    return atomic_write(path, write, inputs)


def write_sweep(path: Path, plan: PlanData, outcome: BatchOutcome, axes: list[SweepAxis],
                inputs: tuple[Path, ...] = ()) -> Path:
    """Points table, chart and break points of a sweep (grids for two axes); every label is the value solved or
    the factor given, as the :class:`~planner.analysis.whatif.SweepAxis` says."""
    results = outcome.results
    ax = axes[0]
    ax2 = axes[1] if len(axes) > 1 else None

    def write(tmp: Path) -> None:
        book = Book(tmp)
        kp = kpi_table(results)
        bp = break_points(results, ax.column) if ax2 is None else pd.DataFrame()
        lines = [f"Sweep of {ax.column}" + (f" × {ax2.column}" if ax2 else "") + f": {len(results)} points, "
                 f"{sum(r.ok for r in results)} solved. Margin is revenue − cost; objective is margin less shortfall "
                 "penalties."]
        if outcome.interrupted:
            lines.insert(0, "INTERRUPTED: points not run are marked 'interrupted'.")
        for b in bp.itertuples():
            lines.append(f"Between {ax.between(b._1, b.to)}: {b.change}.")
        ov = book.sheet("Overview")
        _notice(book, ov, f"Sweep: {Path(plan.source).name}", plan, lines)
        ws = book.sheet("Points")
        labels = {c for a in axes for c in (a.column, a.given_column) if c}
        fmts = {c: ("pct" if c.startswith(("fill_rate", "utilisation")) else "money" if c in (
            "objective", "margin", "revenue", "cost", "shortfall_penalty") else "float") for c in kp.columns
            if c not in ("case", "status", "error", *labels)}
        for c in labels & set(kp.columns):  # whole-number labels with thousands separators, others as typed
            nums = [v for v in kp[c] if isinstance(v, int | float | np.number) and not isinstance(v, bool)]
            if nums and len(nums) == kp[c].notna().sum() and all(float(v).is_integer() for v in nums):
                fmts[c] = "int"
        book.table(ws, kp, formats=fmts, widths={"case": 40, "error": 60})
        ok = kp[kp["status"] == "optimal"].reset_index(drop=True)
        if ax2 is None and len(ok):
            data = book.sheet("ChartData")
            cols = [ax.column, "margin", "objective", "fill_rate"]
            book.table(data, ok[cols], autofilter=False, freeze=False,
                       formats={"margin": "money", "objective": "money", "fill_rate": "pct",
                                ax.column: fmts.get(ax.column, "")})
            n = len(ok)
            chart = book.wb.add_chart({"type": "line"})
            for j, name, marker in ((1, "margin (revenue − cost)", "circle"),
                                    (2, "objective (margin less shortfall penalties)", "square")):
                chart.add_series({"name": name, "categories": ["ChartData", 1, 0, n, 0],
                                  "values": ["ChartData", 1, j, n, j], "marker": {"type": marker}})
            fill = book.wb.add_chart({"type": "line"})
            fill.add_series({"name": "fill rate", "categories": ["ChartData", 1, 0, n, 0],
                             "values": ["ChartData", 1, 3, n, 3], "y2_axis": True, "marker": {"type": "diamond"},
                             "line": {"dash_type": "dash"}})
            chart.combine(fill)
            chart.set_title({"name": f"Margin, objective and fill rate vs {ax.column}"})
            chart.set_x_axis({"name": ax.column, **({"num_format": "#,##0"} if fmts.get(ax.column) == "int" else {})})
            chart.set_y_axis({"name": "margin and objective", "num_format": "#,##0,,,\"B\""})
            fill.set_y2_axis({"name": "fill rate", "num_format": "0%"})
            chart.set_legend({"position": "bottom"})
            chart.set_size({"width": 900, "height": 400})
            charts = book.sheet("Charts")
            charts.insert_chart(1, 0, chart)
            ws = book.sheet("Break points")
            if bp.empty:
                ws.write_string(0, 0, "The same resources bind at every point of the sweep.")
            else:
                book.table(ws, bp, widths={"change": 70, "binding_before": 50, "binding_after": 50})
        if ax2 is not None and len(ok):
            for metric, fmt in (("margin", "money"), ("objective", "money"), ("fill_rate", "pct")):
                grid = ok.pivot_table(index=ax.column, columns=ax2.column, values=metric, aggfunc="first")
                ws = book.sheet(f"Grid {metric}")
                ws.write_string(0, 0, f"{metric} by {ax.column} (rows) and {ax2.column} (columns)", book.subtitle)
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

    def write(tmp: Path) -> None:
        book = Book(tmp)
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
        _notice(book, book.sheet("Overview"), f"Monte Carlo: {Path(plan.source).name}", plan, lines)
        ws = book.sheet("Statistics")
        book.table(ws, stats, widths={"metric": 34, "P(fill rate < threshold)": 26},
                   formats={"P(fill rate < threshold)": "pct"})
        money_fmt = book.money(cur)
        for i, metric in enumerate(stats["metric"], start=1):
            ws.set_row(i, None, money_fmt if metric in ("margin", "objective") else book.fmt["pct"])
        ws.write_string(len(stats) + 2, 0, f"threshold = {threshold:.0%}")
        ws = book.sheet("Histogram")
        book.table(ws, hist, formats={"from": "money", "to": "money", "samples": "int"}, autofilter=False)
        if len(hist):
            chart = book.wb.add_chart({"type": "column"})
            chart.add_series({"name": "samples", "categories": ["Histogram", 1, 0, len(hist), 0],
                              "values": ["Histogram", 1, 3, len(hist), 3], "gap": 5, "fill": {"color": "#2F5597"}})
            chart.set_title({"name": f"Distribution of margin, revenue − cost ({len(hist)} bins, {ok} samples)"})
            chart.set_x_axis({"num_font": {"rotation": -45, "size": 8}})
            chart.set_legend({"none": True})
            chart.set_size({"width": 900, "height": 400})
            ws.insert_chart(1, 6, chart)
        ws = book.sheet("Samples")
        kp = kpi_table(results)
        book.table(ws, kp, formats={c: ("pct" if c.startswith(("fill_rate", "utilisation")) else "float")
                                    for c in kp.columns if c not in ("case", "status", "error")})
        _failures(book, results)
        book.close()

    return atomic_write(path, write, inputs)
