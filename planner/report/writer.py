"""The solve report: the contract's sheets (Summary, Allocation, Service, WaferStarts, Supply, Capacity), an
Overview a manager reads first, Bottlenecks and R&D impact in plain words, native Excel charts, and the
inputs as read — so the workbook stands on its own.

Written through :mod:`planner.report.xlsx` (no text ever becomes a formula) into a temporary file that replaces the
target only when complete (:mod:`planner.report.atomic`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from planner import __version__
from planner.analysis.baseline import SinceBaseline
from planner.analysis.pnl import PnL
from planner.analysis.results import Results
from planner.io import contract as C
from planner.io.validate import PlanData
from planner.report.atomic import atomic_write
from planner.report.fmt import lateness, money, signed_money, units
from planner.report.planning import (
    expansion_sentences,
    overview_sections,
    since_sentence,
    write_expansions,
    write_pnl,
    write_since,
)
from planner.report.planning import guide as planning_guide
from planner.report.xlsx import Book

CHART_W, CHART_H = 620, 300
MAX_CHART_PLATFORMS = 12  # larger plans chart the platforms with the most demand (the tables have all)
MAX_CHART_FABS = 12
MAX_SERIES = 10


@dataclass
class ReportInput:
    plan: PlanData
    results: Results
    bottlenecks: pd.DataFrame | None = None
    rd_impact: pd.DataFrame | None = None
    infeasibility: pd.DataFrame | None = None
    iis: pd.DataFrame | None = None
    causes: pd.DataFrame | None = None
    fixes: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    title: str = ""
    scenario: str = ""
    pnl: PnL | None = None  # money per platform (analysis.pnl)
    expansion_timing: pd.DataFrame | None = None  # decide-by dates of bought expansions (analysis.expansion_timing)
    since: SinceBaseline | None = None  # plan over plan (analysis.baseline), with --baseline


def _summary_rows(rep: ReportInput) -> pd.DataFrame:
    s = rep.results.summary
    cur = s["currency"]
    rows = [
        ("status", s["status"], ""),
        ("objective", s["objective"], cur),
        ("margin", s["margin"], cur),
        ("revenue", s["revenue"], cur),
        ("cost", s["cost"], cur),
        ("shortfall_penalty", s["shortfall_penalty"], cur),
        ("fill_rate", s["fill_rate"], "fraction"),
        ("solver", s["solver"], ""),
        ("solve_seconds", s["solve_seconds"], "s"),
        ("input_sha256", s["input_sha256"], ""),
        ("wafer_cost", s["wafer_cost"], cur),
        ("unit_cost", s["unit_cost"], cur),
        ("holding_cost", s["holding_cost"], cur),
        ("expansion_cost", s["expansion_cost"], cur),
        ("demand_units", s["demand_units"], "platform units"),
        ("served_units", s["served_units"], "platform units"),
        ("policy", s["policy"], ""),
        ("backlog", s["backlog"], ""),
        ("method", s["method"], ""),
        ("lp_columns", s["lp_columns"], ""),
        ("lp_rows", s["lp_rows"], ""),
        ("feasibility_check", s["feasibility_check"], ""),
        ("max_violation", s["max_violation"], "scaled"),
        ("input_file", Path(rep.plan.source).name, ""),
        ("scenario", rep.scenario or "base", ""),
        ("planner_version", __version__, ""),
        ("data", "hypothetical", ""),
    ]
    if s.get("message"):
        rows.append(("message", s["message"], ""))
    return pd.DataFrame(rows, columns=["metric", "value", "unit"])


def infeasible_sentence(r) -> str:
    """One requirement that cannot hold (a row of ``explain_infeasible``), in a sentence."""
    if getattr(r, "requirement", "min_fill") == "wip_in_flight":
        return (f"{r.period}: {r.reason[0].upper() + r.reason[1:]}; with the other requirements held, at most "
                f"{units(r.achievable)} units can be finished.")
    if getattr(r, "requirement", "min_fill") in ("wip_committed", "frozen_zone"):
        bound = "at most" if r.achievable < r.required else "no fewer than"
        return (f"{r.period}: {r.reason[0].upper() + r.reason[1:]}; with the other requirements held, {bound} "
                f"{units(r.achievable)} wafers are possible there.")
    return (f"{r.platform} {r.period}: min_fill needs {units(r.required)} units, at most "
            f"{units(r.achievable)} possible. {r.reason}.")


def headline(rep: ReportInput) -> list[str]:
    """The plan in a few sentences: margin, service, what binds, what would help."""
    res, plan = rep.results, rep.plan
    s = res.summary
    cur = s["currency"]
    if s["objective"] is None:
        lines = [f"The plan is {s['status']}: no allocation could be computed."]
        if rep.iis is not None and len(rep.iis):
            lines.append("These requirements cannot all hold together: " + "; ".join(
                f"{r.requirement} ({r.sheet}{' row ' + str(r.row) if pd.notna(r.row) else ''})"
                for r in rep.iis.itertuples()) + ".")
        if rep.infeasibility is not None and len(rep.infeasibility):
            lines += [infeasible_sentence(r) for r in rep.infeasibility.head(8).itertuples()]
        return lines
    money_line = (f"Margin {money(s['margin'], cur)} (revenue {money(s['revenue'], cur)} less cost "
                  f"{money(s['cost'], cur)}); objective {money(s['objective'], cur)} (margin less "
                  f"{money(s['shortfall_penalty'], cur)} of shortfall penalties)")
    lines = [f"{money_line}; {s['fill_rate']:.1%} of platform demand served ({units(s['served_units'])} of "
             f"{units(s['demand_units'])} platform units) under the '{s['policy']}' policy."
             if s["fill_rate"] is not None else f"{money_line}; no demand in the plan."]
    if s["status"] != "optimal":
        lines.insert(0, f"WARNING: solver status is {s['status']}; figures are the best solution found, not an "
                        "optimum.")
    plat = res.platform_service()
    late = plat["backlog_unit_quarters"] if res.backlog else pd.Series(0.0, index=plat.index)
    short = plat[(plat["unserved"] > 0.5) | (late > 0.5)].sort_values("unserved", ascending=False)
    if short.empty:
        lines.append("Every platform's demand is met in full" + (", on time." if res.backlog else "."))
    else:
        if rep.causes is not None and len(rep.causes):
            from planner.analysis.explain import platform_sentences

            lines += platform_sentences(rep.causes, plan, res.service)
            if rep.fixes is not None and len(rep.fixes):
                lines += ["What would help: " + s for s in rep.fixes["sentence"]]
        elif res.backlog:
            lines += [f"{r.platform}: {lateness(r, res.periods[-1])}; {units(r.backlog_unit_quarters)} unit-quarters "
                      f"of backlog ({r.fill_rate:.0%} served)." for r in short.itertuples()]
        else:
            lines.append("Short: " + "; ".join(f"{r.platform} {units(r.unserved)} units ({r.fill_rate:.0%} served)"
                                               for r in short.itertuples()) + ".")
    b = rep.bottlenecks
    if b is not None and len(b):
        agg = b.groupby("resource").agg(first=("period", "min"), last=("period", "max"), n=("period", "size"),
                                        top=("shadow_price", "max")).sort_values("top", ascending=False)
        parts = [f"{r} ({a.n} quarter{'s' if a.n > 1 else ''}, {a.first if a.first == a.last else f'{a.first}–{a.last}'}"
                 f", up to {money(a.top, cur)} of objective per extra {'wafer' if '/' in r else 'unit'})"
                 for r, a in agg.head(4).iterrows()]
        lines.append("What binds: " + "; ".join(parts) + ".")
    else:
        lines.append("No capacity constraint binds: supply is limited only by R&D readiness, economics or demand.")
    rd = rep.rd_impact
    if rd is not None and len(rd) and rd["objective_earlier"].notna().any():
        best = rd.loc[rd["objective_earlier"].idxmax()]
        if best["objective_earlier"] > 0.5:
            from planner.periods import label, ordinal

            earlier, later = label(ordinal(best["ready"]) - 1), label(ordinal(best["ready"]) + 1)
            lines.append(f"R&D: {best['program']} ready one quarter earlier ({earlier} instead of {best['ready']}): "
                         f"margin {signed_money(best['margin_earlier'], cur)}, objective "
                         f"{signed_money(best['objective_earlier'], cur)}; one quarter later ({later}): margin "
                         f"{signed_money(best['margin_later'], cur)}, objective "
                         f"{signed_money(best['objective_later'], cur)}.")
    ex = res.expansions
    if len(ex):
        lines.append("Expansions: " + "; ".join(
            f"{r.fab}/{r.node} +{units(r.wafers_per_quarter)} wafers/quarter decided {r.decided}, usable from "
            f"{r.available_from}, cost {money(r.cost, cur)}" for r in ex.itertuples()) + ".")
        lines += expansion_sentences(rep)
    elif len(plan.expansions):
        lines.append("Expansions: no expansion option is worth its cost in this plan.")
    if s["feasibility_check"] != "passed":
        lines.append(f"CHECK FAILED: {s['feasibility_check']}")
    return since_sentence(rep) + lines + list(rep.notes)


def _write_overview(book: Book, rep: ReportInput, money_fmt: object) -> None:
    res, plan = rep.results, rep.plan
    s = res.summary
    ws = book.sheet("Overview")
    ws.hide_gridlines(2)
    ws.set_column(0, 0, 42)
    ws.set_column(1, 1, 22)
    ws.set_column(2, 5, 16)
    title = rep.title or f"Memory supply plan: {Path(plan.source).name}"
    if rep.scenario:
        title += f" (scenario: {rep.scenario})"
    ws.write_string(0, 0, title, book.title)
    ws.merge_range(1, 0, 1, 7, C.HYPOTHETICAL_NOTICE.replace("in this workbook", "in this report"), book.notice)
    ws.set_row(1, 30)
    r = 3
    ws.write_string(r, 0, "The plan in brief", book.subtitle)
    wrap = book.wb.add_format({"text_wrap": True, "valign": "top"})
    for line in headline(rep):
        r += 1
        ws.merge_range(r, 0, r, 7, line, wrap)
        ws.set_row(r, 15 * max(1, int(len(line) / 120) + 1))
    r += 2
    ws.write_string(r, 0, "Key figures", book.subtitle)
    kpis = [("Objective (margin − shortfall penalties)", s["objective"], money_fmt),
            ("Margin (revenue − cost)", s["margin"], money_fmt), ("Revenue", s["revenue"], money_fmt),
            ("Cost (wafer + unit + holding + expansion)", s["cost"], money_fmt),
            ("Shortfall penalty", s["shortfall_penalty"], money_fmt),
            ("Fill rate (served / demand)", s["fill_rate"], book.fmt["pct"])]
    for name, v, f in kpis:
        r += 1
        ws.write_string(r, 0, name)
        book.write_cell(ws, r, 1, v, f)
    r += 2
    ws.write_string(r, 0, "Service by platform", book.subtitle)
    plat = res.platform_service()
    last_q = res.periods[-1] if res.periods else ""
    comments = {"demand": "platform units demanded over the horizon",
                "served": "platform units served over the horizon",
                "unserved": ("demand never served within the horizon: still in backlog at the end of " + last_q
                             if res.backlog else "demand never served: lost sales over the horizon"),
                "fill_rate": "served / demand over the horizon",
                "served_late": "units served after the quarter they were demanded (oldest orders served first)",
                "avg_delay_quarters": "average quarters late of the units served late",
                "backlog_unit_quarters": "the backlog summed over quarters: one unit waiting at the end of one "
                                         "quarter is one unit-quarter (what the backlog penalty is charged on)"}
    first, last = book.table(ws, plat, formats={"demand": "int", "served": "int", "unserved": "int",
                                                "fill_rate": "pct", "served_late": "int",
                                                "avg_delay_quarters": "float", "backlog_unit_quarters": "int"},
                             first_row=r + 1, autofilter=False, freeze=False,
                             widths={"platform": 42, "demand": 22, "served": 16, "unserved": 16, "fill_rate": 16,
                                     "served_late": 16, "avg_delay_quarters": 18, "backlog_unit_quarters": 22},
                             header_comments=comments)
    if len(plat):
        ws.conditional_format(first, 4, last, 4, {"type": "3_color_scale", "min_color": "#F8696B",
                                                  "mid_color": "#FFEB84", "max_color": "#63BE7B",
                                                  "min_type": "num", "min_value": 0.5, "mid_type": "num",
                                                  "mid_value": 0.85, "max_type": "num", "max_value": 1})
    r = overview_sections(book, ws, rep, last + 2)
    ws.write_string(r, 0, "About this run", book.subtitle)
    info = [("Input file", Path(plan.source).name), ("Input SHA-256", plan.sha256),
            ("Scenario", rep.scenario or "base"), ("Policy", s["policy"]),
            ("Backlog", "yes" if s["backlog"] else "no (unmet demand is lost)"),
            ("Solver", f"{s['solver']} ({s['method']})"), ("Status", s["status"]),
            ("Solve time", f"{s['solve_seconds']:.2f} s"),
            ("LP size", f"{s['lp_columns']:,} columns, {s['lp_rows']:,} rows"),
            ("Checks", s["feasibility_check"]), ("planner version", __version__),
            ("Generated", _dt.datetime.now().strftime("%Y-%m-%d %H:%M")), ("Currency", s["currency"])]
    for k, v in info:
        r += 1
        ws.write_string(r, 0, k, book.bold)
        ws.write_string(r, 1, str(v))
    r += 2
    ws.write_string(r, 0, "Sheets", book.subtitle)
    guide = [("Charts", "supply vs demand, output by family, wafer starts, utilisation"),
             ("Bottlenecks", "binding capacity ranked by shadow price, in plain words"),
             ("R&D impact", "margin, objective and service if each program were ready a quarter earlier or "
                            "later"),
             ("Service / Allocation", "who gets what, when, with which BOM option"),
             ("WaferStarts / Supply / Capacity", "what was started, made, shipped and how full each resource is"),
             ("Inputs", "the data as read, after defaults")]
    if rep.causes is not None:
        guide.insert(2, ("ShortfallCauses", "why each platform falls short, unit by unit"))
    guide += planning_guide(rep)
    for k, v in guide:
        r += 1
        ws.write_string(r, 0, k, book.bold)
        ws.write_string(r, 1, v)
    ws.activate()


def _write_contract_sheets(book: Book, rep: ReportInput, money_fmt: object) -> None:
    res = rep.results
    cur = res.summary["currency"]
    ws = book.sheet("Summary")
    summ = _summary_rows(rep)
    book.table(ws, summ, widths={"metric": 22, "value": 24, "unit": 16}, autofilter=False)
    for i, (metric, value) in enumerate(zip(summ["metric"], summ["value"], strict=True)):
        if metric in ("objective", "margin", "revenue", "cost", "shortfall_penalty", "wafer_cost", "unit_cost", "holding_cost",
                      "expansion_cost"):
            book.write_cell(ws, i + 1, 1, value, money_fmt)
        elif metric == "fill_rate":
            book.write_cell(ws, i + 1, 1, value, book.fmt["pct"])
        elif metric in ("demand_units", "served_units", "lp_columns", "lp_rows"):
            book.write_cell(ws, i + 1, 1, value, book.fmt["int"])
    comments = {"platform_units": "platform units", "memory_units": "memory units (stacks / packages)",
                "revenue": f"{cur}"}
    ws = book.sheet("Allocation")
    book.table(ws, res.allocation, formats={"platform_units": "int", "memory_units": "int", "revenue": "money"},
               header_comments=comments)
    ws = book.sheet("Service")
    first, last = book.table(ws, res.service, formats={"demand": "int", "served": "int", "shortfall": "int",
                                                       "fill_rate": "pct"},
                             header_comments={"shortfall": "lost sales in the quarter; with backlog = true, the backlog "
                                                           "level at the end of the quarter (a level: adding it over "
                                                           "quarters gives unit-quarters, not units)",
                                              "demand": "platform units"})
    if len(res.service):
        ws.conditional_format(first, 5, last, 5, {"type": "3_color_scale", "min_color": "#F8696B",
                                                  "mid_color": "#FFEB84", "max_color": "#63BE7B",
                                                  "min_type": "num", "min_value": 0, "mid_type": "num",
                                                  "mid_value": 0.8, "max_type": "num", "max_value": 1})
    ws = book.sheet("WaferStarts")
    book.table(ws, res.wafer_starts, formats={"wafers": "int", "good_units": "int"},
               header_comments={"wafers": "wafers started in 'period'", "good_units": "finished good units",
                                "lands": "quarter the output is finished"})
    ws = book.sheet("Supply")
    sup = res.supply[["product", "period", "output_units", "shipped_units", "inventory_end", "family", "wip_units"]]
    book.table(ws, sup, formats={"output_units": "int", "shipped_units": "int", "inventory_end": "int",
                                 "wip_units": "int"},
               header_comments={"output_units": "finished units landing this quarter (in-flight WIP included)",
                                "wip_units": "of output_units: wafers in the fab before the horizon (WIP sheet)"})
    ws = book.sheet("Capacity")
    cap = res.capacity[["resource", "period", "capacity", "used", "utilisation", "shadow_price", "kind", "unit"]]
    first, last = book.table(ws, cap, formats={"capacity": "int", "used": "int", "utilisation": "pct",
                                               "shadow_price": "money2"},
                             header_comments={"shadow_price": f"{cur} of objective (margin less shortfall "
                                              "penalties) per extra wafer (fab) or unit (back-end) in that "
                                              "quarter, all else equal",
                                              "capacity": "wafers/quarter (fab, incl. expansions) or "
                                              "units/quarter (back-end)"})
    if len(cap):
        ws.conditional_format(first, 4, last, 4, {"type": "cell", "criteria": ">=", "value": 0.95,
                                                  "format": book.bad})
    if len(res.expansions):
        write_expansions(book, rep)


def _write_insights(book: Book, rep: ReportInput, money_fmt: object) -> None:
    cur = rep.results.summary["currency"]
    ws = book.sheet("Bottlenecks")
    b = rep.bottlenecks if rep.bottlenecks is not None else pd.DataFrame()
    if b.empty:
        ws.write_string(0, 0, "No capacity constraint binds in this plan: one more wafer or back-end unit would "
                              "not raise the objective.")
    else:
        book.table(ws, b, formats={"shadow_price": "money2", "utilisation": "pct", "capacity": "int", "used": "int"},
                   widths={"explanation": 100, "platforms_short": 30},
                   header_comments={"shadow_price": f"{cur} of objective (margin less shortfall penalties) per "
                                                    "extra unit of capacity in that quarter (valid for small "
                                                    "changes)"})
    ws = book.sheet("R&D impact")
    rd = rep.rd_impact if rep.rd_impact is not None else pd.DataFrame()
    if rd.empty:
        ws.write_string(0, 0, "No R&D programs in this plan.")
    else:
        book.table(ws, rd, formats={"margin_earlier": "money", "margin_later": "money", "objective_earlier": "money",
                                    "objective_later": "money", "fill_earlier": "pct", "fill_later": "pct"},
                   widths={"detail_earlier": 50, "detail_later": 50, "verdict": 80, "platforms": 30},
                   header_comments={
                       "margin_earlier": f"change of margin (revenue − cost, {cur}) if ready one quarter earlier",
                       "objective_earlier": f"change of the objective (margin less shortfall penalties, {cur}) if "
                                            "ready one quarter earlier",
                       "fill_earlier": "change of overall fill rate (points)",
                       "margin_later": f"change of margin (revenue − cost, {cur}) if ready one quarter later",
                       "objective_later": f"change of the objective ({cur}) if ready one quarter later"})
    if rep.infeasibility is not None and len(rep.infeasibility):
        ws = book.sheet("Infeasibility")
        _, last = book.table(ws, rep.infeasibility, formats={"required": "int", "achievable": "int", "missing": "int"},
                             widths={"reason": 110}, autofilter=False)
        if rep.iis is not None and len(rep.iis):
            ws.write_string(last + 2, 0, "These requirements cannot all hold together (an irreducible infeasible "
                                         "subset: drop or relax any one of them and the rest can):", book.subtitle)
            book.table(ws, rep.iis, first_row=last + 3, widths={"requirement": 110}, autofilter=False, freeze=False)


def _write_inputs(book: Book, plan: PlanData) -> None:
    ws = book.sheet("Inputs")
    ws.write_string(0, 0, "The input data as read, after defaults (" + C.HYPOTHETICAL_NOTICE + ")", book.bold)
    r = 2
    s = plan.settings
    ws.write_string(r, 0, "Settings", book.subtitle)
    settings = pd.DataFrame([(k, getattr(s, k)) for k in C.SETTINGS_KEYS], columns=["key", "value"])
    settings["value"] = settings["value"].map(lambda v: "" if v is None else str(v))
    _, last = book.table(ws, settings, first_row=r + 1, autofilter=False, freeze=False)
    r = last + 3
    for spec in C.SHEETS[1:]:
        df = plan.frame(spec.name)
        if df.empty and not spec.required:
            continue
        ws.write_string(r, 0, spec.name, book.subtitle)
        view = df.drop(columns=["_row"]).copy()
        view.insert(0, "row", df["_row"].to_numpy())
        _, last = book.table(ws, view, first_row=r + 1, autofilter=False, freeze=False)
        r = last + 3
    ws.set_column(0, 0, 8)
    ws.set_column(1, 20, 23)


def _write_charts(book: Book, rep: ReportInput) -> None:
    """Native charts on 'Charts'; their data in visible tables on 'ChartData' (hidden data would not plot)."""
    res, plan = rep.results, rep.plan
    periods = plan.periods
    charts = book.sheet("Charts")
    data = book.sheet("ChartData")
    charts.hide_gridlines(2)
    charts.write_string(0, 0, "Charts (data on sheet ChartData; all data hypothetical)", book.title)
    charts.write_string(1, 0, "Output lands cycle_quarters after its wafer start; starts whose output would land "
                              "after the horizon are not modelled, so the last quarters look thin; the first "
                              "quarters are served from initial inventory and the wafers in flight (WIP sheet).")
    palette = ["#2F5597", "#C55A11", "#70AD47", "#7030A0", "#00B0F0", "#FFC000", "#A5A5A5", "#255E91",
               "#9E480E", "#43682B", "#FF66CC", "#264478"]
    colour_of = {p: palette[i % len(palette)] for i, p in enumerate(plan.products["product"])}
    slot = [0]

    def place(chart) -> None:
        i = slot[0]
        charts.insert_chart(3 + (i // 2) * 16, (i % 2) * 10, chart, {"x_offset": 5, "y_offset": 5})
        slot[0] += 1

    def block(df: pd.DataFrame, row: int, title: str, fmt: str = "int") -> tuple[int, int]:
        data.write_string(row, 0, title, book.subtitle)
        first, last = book.table(data, df, first_row=row + 1, autofilter=False, freeze=False,
                                 formats={c: fmt for c in df.columns if c != "period"})
        return first, last

    def series(chart, col: int, first: int, last: int, name_row: int, **extra) -> None:
        chart.add_series({"name": ["ChartData", name_row, col], "categories": ["ChartData", first, 0, last, 0],
                          "values": ["ChartData", first, col, last, col], **extra})

    def style(chart, title: str, y: str, y_fmt: str = "#,##0") -> None:
        chart.set_title({"name": title, "name_font": {"size": 11}})
        chart.set_y_axis({"name": y, "num_format": y_fmt, "major_gridlines": {"visible": True,
                                                                             "line": {"color": "#D9D9D9"}}})
        chart.set_x_axis({"num_font": {"rotation": -45, "size": 8}})
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": CHART_W, "height": CHART_H})

    row = 0
    # 1. supply vs demand per platform (the largest ones, on big plans)
    svc = res.service
    by_demand = svc.groupby("platform")["demand"].sum().sort_values(ascending=False)
    plats = [p for p in plan.platforms["platform"] if p in set(by_demand.index[:MAX_CHART_PLATFORMS])]
    capped = []
    if len(by_demand) > MAX_CHART_PLATFORMS:
        capped.append(f"the {MAX_CHART_PLATFORMS} platforms with the most demand (of {len(by_demand)})")
    wide = pd.DataFrame({"period": periods})
    for p in plats:
        g = svc[svc["platform"] == p].set_index("period")
        wide[f"{p} demand"] = g["demand"].reindex(periods).fillna(0).to_numpy()
        wide[f"{p} served"] = g["served"].reindex(periods).fillna(0).to_numpy()
    first, last = block(wide, row, "Demand and served platform units per quarter")
    for i, p in enumerate(plats):
        col = chart_col = 1 + 2 * i
        bars = book.wb.add_chart({"type": "column"})
        series(bars, chart_col + 1, first, last, first - 1, fill={"color": "#2F5597"}, gap=60)
        line = book.wb.add_chart({"type": "line"})
        series(line, col, first, last, first - 1, line={"color": "#C00000", "width": 2.25, "dash_type": "dash"},
               marker={"type": "diamond", "size": 5, "fill": {"color": "#C00000"}, "border": {"color": "#C00000"}})
        bars.combine(line)
        style(bars, f"{p}: served vs demand", "platform units")
        place(bars)
    row = last + 3
    # 2. memory output by family (TB)
    sup = res.supply.merge(plan.products[["product", "gb_per_unit"]], on="product")
    sup["tb"] = sup["output_units"] * sup["gb_per_unit"] / 1000.0
    fam = sup.pivot_table(index="period", columns="family", values="tb", aggfunc="sum").reindex(periods).fillna(0)
    fam = fam.reset_index()
    first, last = block(fam, row, "Memory output by family per quarter (TB)")
    chart = book.wb.add_chart({"type": "column", "subtype": "stacked"})
    colours = {"HBM": "#2F5597", "LPDDR": "#70AD47"}
    for j, f in enumerate(fam.columns[1:], start=1):
        series(chart, j, first, last, first - 1, fill={"color": colours.get(f, "#A5A5A5")}, gap=50)
    style(chart, "Memory output by family (TB)", "TB")
    place(chart)
    row = last + 3
    # 3. wafer starts per fab, stacked by product
    wsd = res.wafer_starts
    fab_total = wsd.groupby("fab")["wafers"].sum().sort_values(ascending=False)
    if len(fab_total) > MAX_CHART_FABS:
        capped.append(f"the {MAX_CHART_FABS} fabs with the most wafer starts (of {len(fab_total)})")
    for fab in [f for f in plan.fabs["fab"].unique() if f in set(fab_total.index[:MAX_CHART_FABS])]:
        g = wsd[wsd["fab"] == fab]
        piv = g.pivot_table(index="period", columns="product", values="wafers", aggfunc="sum")
        if piv.shape[1] > MAX_SERIES:  # the largest products, the rest summed as "other products"
            keep = piv.sum().sort_values(ascending=False).index[: MAX_SERIES - 1]
            piv = piv[keep].assign(**{"other products": piv.drop(columns=keep).sum(axis=1)})
        piv = piv.reindex(periods).fillna(0).reset_index()
        first, last = block(piv, row, f"Wafer starts at {fab} by product")
        chart = book.wb.add_chart({"type": "column", "subtype": "stacked"})
        for j, prod in enumerate(piv.columns[1:], start=1):
            series(chart, j, first, last, first - 1, gap=50, fill={"color": colour_of.get(prod, "#A5A5A5")})
        style(chart, f"Wafer starts at {fab} by product", "wafers")
        place(chart)
        row = last + 3
    # 4. utilisation per resource
    cap = res.capacity
    util = cap.pivot_table(index="period", columns="resource", values="utilisation", aggfunc="first")
    util = util.reindex(periods).reset_index()
    first, last = block(util, row, "Capacity utilisation per quarter", fmt="pct")
    for kind, title in (("fab", "Fab utilisation (wafers used / capacity)"),
                        ("backend", "Back-end utilisation (units / capacity)")):
        names = [r for r in util.columns[1:] if (cap.loc[cap["resource"] == r, "kind"] == kind).any()]
        if not names:
            continue
        if len(names) > MAX_CHART_PLATFORMS:
            busiest = cap[cap["resource"].isin(names)].groupby("resource")["utilisation"].mean()
            names = [r for r in names if r in set(busiest.sort_values(ascending=False).index[:MAX_CHART_PLATFORMS])]
            capped.append(f"the {MAX_CHART_PLATFORMS} busiest {'fab/node lines' if kind == 'fab' else 'back-end lines'}")
        chart = book.wb.add_chart({"type": "line"})
        for r in names:
            series(chart, list(util.columns).index(r), first, last, first - 1, marker={"type": "circle", "size": 4})
        style(chart, title, "utilisation", "0%")
        chart.set_y_axis({"name": "utilisation", "num_format": "0%", "min": 0, "max": 1.05,
                          "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
        place(chart)
    row = last + 3
    if capped:
        charts.write_string(2, 0, "This plan is large: the charts show " + "; ".join(capped)
                            + ". Every row is in the tables.", book.bold)
    # 5. shortfall by cause (when the plan is explained)
    if rep.causes is not None and len(rep.causes):
        piv = rep.causes.pivot_table(index="platform", columns="cause", values="units", aggfunc="sum").fillna(0)
        piv = piv.loc[piv.sum(axis=1).sort_values(ascending=False).index[:MAX_CHART_PLATFORMS * 2]].reset_index()
        # summed over quarters the rows are units short, or with backlog unit-quarters of backlog (levels)
        what = "unit-quarters of backlog" if res.backlog else "platform units"
        first, last = block(piv, row, f"{'Backlog' if res.backlog else 'Shortfall'} by cause per platform ({what})")
        chart = book.wb.add_chart({"type": "bar", "subtype": "stacked"})
        for j in range(1, len(piv.columns)):
            series(chart, j, first, last, first - 1, gap=40)
        style(chart, f"{'Backlog' if res.backlog else 'Shortfall'} by cause ({what})", "")
        chart.set_y_axis({"name": ""})  # a bar chart's y axis holds the platforms
        chart.set_x_axis({"name": "unit-quarters of backlog" if res.backlog else "platform units short",
                          "num_format": "#,##0",
                          "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
        place(chart)


def _write_causes(book: Book, causes: pd.DataFrame, fixes: pd.DataFrame | None = None, cur: str = "USD") -> None:
    ws = book.sheet("ShortfallCauses")
    if causes.empty:
        ws.write_string(0, 0, "No platform falls short in this plan.")
        return
    book.table(ws, causes, formats={"shortfall": "int", "units": "int"},
               widths={"explanation": 110, "competitors": 30, "resource": 18},
               header_comments={"units": "shortfall attributed to this cause and resource; the rows of one platform "
                                         "and period add up to its shortfall",
                                "cause": "rd_gate, yield_ramp, fab_capacity, backend_capacity, economics, policy, frozen_zone "
                                         "(method: models/explain.md)"})
    if fixes is not None and len(fixes):
        ws2 = book.sheet("What would help")
        book.table(ws2, fixes, formats={"units_closed": "int", "share_closed": "pct", "unit_quarters_closed": "int",
                                        "margin_change": "money", "objective_change": "money"},
                   widths={"sentence": 110, "change": 40},
                   header_comments={
                       "units_closed": "more platform units served within the horizon",
                       "share_closed": "units_closed / the platform's units never served",
                       "unit_quarters_closed": "fewer unit-quarters of backlog (units served sooner)",
                       "margin_change": f"change of margin (revenue − cost, {cur}) for the whole plan",
                       "objective_change": f"change of the objective (margin less shortfall penalties, {cur})"})


def write_report(path: Path | str, rep: ReportInput, inputs: tuple[Path, ...] = ()) -> Path:
    """Write the report atomically; ``inputs`` are paths the report must never overwrite."""
    def write(tmp: Path) -> None:
        book = Book(tmp)
        money_fmt = book.money(rep.results.summary["currency"])
        _write_overview(book, rep, money_fmt)
        if rep.results.summary["objective"] is not None:
            _write_charts(book, rep)
        _write_contract_sheets(book, rep, money_fmt)
        write_pnl(book, rep, money_fmt)
        write_since(book, rep)
        if rep.causes is not None:
            _write_causes(book, rep.causes, rep.fixes, rep.results.summary["currency"])
        _write_insights(book, rep, money_fmt)
        problems = rep.plan.warnings
        if problems:
            ws = book.sheet("Warnings")
            book.table(ws, pd.DataFrame([p.to_dict() for p in problems])[
                ["severity", "code", "where", "column", "message", "expected", "found", "hint"]])
        _write_inputs(book, rep.plan)
        book.close()

    return atomic_write(Path(path), write, inputs)
