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
from typing import Any

import pandas as pd

from planner import __version__
from planner.analysis.baseline import SinceBaseline
from planner.analysis.pnl import PnL
from planner.analysis.results import WHOLE_WAFERS_NOTE, Results, whole_wafers
from planner.io import contract as C
from planner.io.validate import PlanData
from planner.report.atomic import atomic_write
from planner.report.fmt import lateness, money, signed_money, status_clause, units
from planner.report.planning import (
    expansion_sentences,
    overview_grids,
    overview_sections,
    since_sentence,
    write_expansions,
    write_pnl,
    write_since,
)
from planner.report.xlsx import LANDSCAPE_PX, Book, col_px, collections_paused, column_blocks

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
    # analyses left out, and why ("not computed (interrupted)", "not computed; turn on with --insights"), by
    # field name (causes, fixes, rd_impact, expansion_timing): the sheet says so instead of showing nothing
    not_computed: dict[str, str] = field(default_factory=dict)
    # the parts still waiting for the capacity price checks (``planner.api.analyse(prices_later=True)``): an
    # object whose settle() completes ``results.capacity``'s price columns and ``bottlenecks`` and whose cancel()
    # stops the checks; write_report settles it after writing every sheet that does not need them
    pending: Any = field(default=None, repr=False, compare=False)


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


def headline(rep: ReportInput, plat: pd.DataFrame | None = None) -> list[str]:
    """The plan in a few sentences: margin, service, what binds, what would help. ``plat``:
    ``rep.results.platform_service()``, if computed before."""
    res, plan = rep.results, rep.plan
    s = res.summary
    cur = s["currency"]
    if s["objective"] is None:
        lines = [f"The plan {status_clause(s['status'])}: no allocation could be computed."]
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
    plat = res.platform_service() if plat is None else plat
    late = plat["backlog_unit_quarters"] if res.backlog else pd.Series(0.0, index=plat.index)
    short = plat[(plat["unserved"] > 0.5) | (late > 0.5)].sort_values("unserved", ascending=False)
    if short.empty:
        lines.append("Every platform's demand is met in full" + (", on time." if res.backlog else "."))
    else:
        if rep.causes is not None and len(rep.causes):
            from planner.analysis.explain import platform_sentences

            causes = rep.causes  # each platform's shortfall as its sentence measures it: units, or unit-quarters
            totals = causes.drop_duplicates(["platform", "period"]).groupby("platform", sort=False)["shortfall"].sum()
            top = totals.sort_values(ascending=False, kind="stable").index[:HEADLINE_TOP]
            rank = {p: i for i, p in enumerate(top)}  # largest first
            named = causes[causes["platform"].isin(top)]
            named = named.iloc[named["platform"].map(rank).argsort(kind="stable")]
            lines += platform_sentences(named, plan, res.service)
            lines += _more_platforms(totals.drop(top), res.backlog, "ShortfallCauses")
            if rep.fixes is not None and len(rep.fixes):
                lines += ["What would help: " + s for s in rep.fixes["sentence"]]
        elif res.backlog:
            short = short.sort_values("backlog_unit_quarters", ascending=False, kind="stable")
            lines += [f"{r.platform}: {lateness(r, res.periods[-1])}; {units(r.backlog_unit_quarters)} unit-quarters "
                      f"of backlog ({r.fill_rate:.0%} served)." for r in short.head(HEADLINE_TOP).itertuples()]
            lines += _more_platforms(short["backlog_unit_quarters"].iloc[HEADLINE_TOP:], True, "Service")
        else:
            lines.append("Short: " + "; ".join(f"{r.platform} {units(r.unserved)} units ({r.fill_rate:.0%} served)"
                                               for r in short.head(HEADLINE_TOP).itertuples()) + ".")
            lines += _more_platforms(short["unserved"].iloc[HEADLINE_TOP:], False, "Service")
    b = rep.bottlenecks
    if b is not None and len(b):
        lines.append("What binds: " + "; ".join(_binds(b, cur)) + ".")
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
        named = ex.loc[ex["cost"].sort_values(ascending=False, kind="stable").index[:HEADLINE_TOP]].sort_index()
        rest = ex.drop(named.index)
        more = (f"; and {len(rest)} more costing {money(rest['cost'].sum(), cur)} in all (Expansions sheet)"
                if len(rest) else "")
        lines.append("Expansions: " + "; ".join(
            f"{r.fab}/{r.node} +{units(r.wafers_per_quarter)} wafers/quarter decided {r.decided}, usable from "
            f"{r.available_from}, cost {money(r.cost, cur)}" for r in named.itertuples()) + more + ".")
        lines += expansion_sentences(rep)
    elif len(plan.expansions):
        lines.append("Expansions: no expansion option is worth its cost in this plan.")
    if s["feasibility_check"] != "passed":
        lines.append(f"CHECK FAILED: {s['feasibility_check']}")
    return since_sentence(rep) + lines + list(rep.notes)


MONEY_METRICS = ("objective", "margin", "revenue", "cost", "shortfall_penalty", "wafer_cost", "unit_cost", "holding_cost",
                 "expansion_cost")
SUMMARY_FORMATS = {"fill_rate": "pct", "solve_seconds": "seconds", "demand_units": "units",
                   "served_units": "units", "lp_columns": "int", "lp_rows": "int", "max_violation": "sci"}
HORIZON_NOTE = ("Output lands cycle_quarters after its wafer start; starts whose output would land after the horizon "
                "are not modelled, so the last quarters look thin; the first quarters are served from initial "
                "inventory and the wafers in flight (WIP sheet).")


HEADLINE_TOP = 10  # platforms (and expansions) the Overview names one by one, largest first; the rest are counted


def _more_platforms(rest: pd.Series, backlog: bool, sheet: str) -> list[str]:
    """The sentence for the short platforms past the first ``HEADLINE_TOP`` (a 400-platform plan would otherwise
    print 170 of them): how many, and their shortfall in all."""
    if not len(rest):
        return []
    what = (f"with backlog: {units(rest.sum())} unit-quarters" if backlog else f"short: {units(rest.sum())} units")
    return [f"{len(rest)} more platform{'s' if len(rest) > 1 else ''} {what} in all ({sheet} sheet)."]


def _binds(b: pd.DataFrame, cur: str, top: int = 4) -> list[str]:
    """Per resource of the Bottlenecks table: its quarters and the most one more unit raises the objective in
    any of them (``value_of_one_more``, a ±1 re-solve) — or, where one more adds nothing, the most one less
    lowers it; unchecked rows say so."""
    agg = b.groupby("resource").agg(first=("period", "min"), last=("period", "max"), n=("period", "size"),
                                    more=("value_of_one_more", "max"), less=("cost_of_one_less", "max"),
                                    dual=("shadow_price", "max"))
    agg = agg.sort_values(["more", "less", "dual"], ascending=False, na_position="last")
    parts = []
    for r, a in agg.head(top).iterrows():
        unit = "wafer" if "/" in r else "unit"
        span = a.first if a.first == a.last else f"{a.first}–{a.last}"
        when = f"{a.n} quarter{'s' if a.n > 1 else ''}, {span}"
        if a.more > 0:
            parts.append(f"{r} ({when}, up to {money(a.more, cur)} of objective per extra {unit})")
        elif a.less > 0:
            parts.append(f"{r} ({when}, full: one more {unit} adds nothing, one less costs up to "
                         f"{money(a.less, cur)} of objective)")
        else:
            parts.append(f"{r} ({when}, shadow price up to {money(a.dual, cur)} of objective per {unit}, "
                         "not checked)")
    return parts


OVERVIEW_ABOUT = "the plan in a few sentences, key figures, service by platform, this index"


def _overview_data(rep: ReportInput) -> dict[str, Any]:
    """What the Overview shows that does not wait for the capacity price checks: service by platform and the
    grids (``overview_grids``)."""
    return {"plat": rep.results.platform_service(), "grids": overview_grids(rep)}


def _write_overview(book: Book, rep: ReportInput, money_fmt: object, data: dict[str, Any] | None = None) -> None:
    """The Overview; ``data``: :func:`_overview_data`, if computed before (while the price checks ran)."""
    data = data or _overview_data(rep)
    res, plan = rep.results, rep.plan
    s = res.summary
    ws = book.sheet("Overview", OVERVIEW_ABOUT)
    ws.hide_gridlines(2)
    for col, w in enumerate((44, 20, 15, 15, 15, 15)):
        book.width(ws, col, w)
    last_col = 5
    title = rep.title or f"Memory supply plan: {Path(plan.source).name}"
    if rep.scenario:
        title += f" (scenario: {rep.scenario})"
    ws.write_string(0, 0, title, book.title)
    book.row_height(ws, 0, 22)
    book.paragraph(ws, 1, C.HYPOTHETICAL_NOTICE.replace("in this workbook", "in this report"), 0, last_col,
                   book.notice)
    r = 3
    ws.write_string(r, 0, "The plan in brief", book.subtitle)
    r += 1
    for line in headline(rep, data["plat"]):
        r = book.paragraph(ws, r, line, 0, last_col)
    r += 1
    ws.write_string(r, 0, "Key figures", book.subtitle)
    book.keep_together(ws, r, r + 6)
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
    plat = data["plat"]
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
    first, last = book.table(ws, plat, formats={"demand": "units", "served": "units", "unserved": "units",
                                                "fill_rate": "pct", "served_late": "units",
                                                "avg_delay_quarters": "float", "backlog_unit_quarters": "units"},
                             first_row=r + 1, autofilter=False, freeze=False, repeat_header=False,
                             header_comments=comments)
    if len(plat):
        ws.conditional_format(first, 4, last, 4, {"type": "3_color_scale", "min_color": "#F8696B",
                                                  "mid_color": "#FFEB84", "max_color": "#63BE7B",
                                                  "min_type": "num", "min_value": 0.5, "mid_type": "num",
                                                  "mid_value": 0.85, "max_type": "num", "max_value": 1})
    r = overview_sections(book, ws, rep, last + 2, data["grids"])
    ws.write_string(r, 0, "About this run", book.subtitle)
    book.keep_together(ws, r, r + 13)
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
    ws.write_string(r, 0, "Notes", book.subtitle)
    book.keep_together(ws, r, r + 2)
    r += 1
    for note in (WHOLE_WAFERS_NOTE, HORIZON_NOTE):
        r = book.paragraph(ws, r, note, 0, last_col)
    book.sheet_index(ws, r + 1)
    ws.activate()


def _summary_formats(summ: pd.DataFrame, money_fmt: object) -> list:
    """One format per Summary row: money, percent, seconds, counts — its values differ in kind by row."""
    return [money_fmt if m in MONEY_METRICS else SUMMARY_FORMATS.get(m) for m in summ["metric"]]


def _write_contract_sheets(book: Book, rep: ReportInput, money_fmt: object) -> None:
    res = rep.results
    cur = res.summary["currency"]
    ws = book.sheet("Summary", "every figure of the run, one per row, with its unit")
    summ = _summary_rows(rep)
    book.table(ws, summ, formats={"value": _summary_formats(summ, money_fmt)}, widths={"metric": 20},
               wrap={"value": 34}, autofilter=False)
    comments = {"platform_units": "platform units", "memory_units": "memory units (stacks / packages)",
                "revenue": f"{cur}"}
    ws = book.sheet("Allocation", "who gets what, when, with which BOM option and memory product")
    book.table(ws, res.allocation, formats={"platform_units": "units", "memory_units": "units", "revenue": money_fmt},
               header_comments=comments)
    ws = book.sheet("Service", "demand, served and short per platform and quarter")
    first, last = book.table(ws, res.service, formats={"demand": "units", "served": "units", "shortfall": "units",
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
    starts, _ = whole_wafers(res.wafer_starts, res.capacity)
    ws = book.sheet("WaferStarts", "wafers started per fab, node, product and quarter (whole wafers)")
    book.table(ws, starts, formats={"wafers": "wafers", "wafers_lp": "float", "good_units": "units"},
               header_comments={"wafers": "wafers started in 'period', in whole wafers (the LP plans continuously; "
                                          "each fab/node/quarter adds up to its rounded total)",
                                "wafers_lp": "the LP's continuous starts, on which wafer cost (and so margin) is "
                                             "charged",
                                "good_units": "finished good units (from the unrounded plan)",
                                "lands": "quarter the output is finished"})
    ws = book.sheet("Supply", "memory made, shipped and held per product and quarter")
    sup = res.supply[["product", "period", "output_units", "shipped_units", "inventory_end", "family", "wip_units"]]
    book.table(ws, sup, formats={"output_units": "units", "shipped_units": "units", "inventory_end": "units",
                                 "wip_units": "units"},
               header_comments={"output_units": "finished units landing this quarter (in-flight WIP included)",
                                "wip_units": "of output_units: wafers in the fab before the horizon (WIP sheet)"})
    book.when_priced(lambda: _write_capacity(book, rep), ("Capacity", CAPACITY_ABOUT))
    if len(res.expansions):
        write_expansions(book, rep)


CAPACITY_ABOUT = "how full each fab/node and back-end line is, and what one more unit is worth"


def _write_capacity(book: Book, rep: ReportInput) -> None:
    res = rep.results
    cur = res.summary["currency"]
    _, capacity = whole_wafers(res.wafer_starts, res.capacity)
    ws = book.sheet("Capacity", CAPACITY_ABOUT)
    cap = capacity[["resource", "period", "capacity", "used", "utilisation", "shadow_price",
                    "value_of_one_more", "cost_of_one_less", "price_check", "kind", "unit"]]
    held = ("" if res.summary["policy"] == "margin"
            else f"; under '{res.summary['policy']}', with the service the policy fixed held")
    money2 = book.money(cur, 2)
    first, last = book.table(ws, cap, formats={"capacity": "int", "used": "int", "utilisation": "pct",
                                               "shadow_price": money2, "value_of_one_more": money2,
                                               "cost_of_one_less": money2},
                             wrap={"price_check": 18},
                             header_comments={"shadow_price": f"{cur} per wafer (fab) or unit (back-end): the "
                                              "solver's dual of the capacity row, in objective; where price_check says 'not "
                                              "unique' it is one of many valid values" + held,
                                              "value_of_one_more": f"{cur} of objective (margin less shortfall "
                                              "penalties) gained with one more wafer or unit in that quarter "
                                              "(re-solved)" + held,
                                              "cost_of_one_less": f"{cur} of objective lost with one less (re-solved; "
                                              "blank where one less is infeasible, impossible or not checked)",
                                              "price_check": "unique: one more and one less both equal the "
                                              "shadow price; not unique: they differ (degenerate optimum); one "
                                              "less infeasible; less than one unit (nothing to take away); not "
                                              "checked; blank: a unit of slack or more, nothing changes",
                                              "capacity": "wafers/quarter (fab, incl. expansions) or "
                                              "units/quarter (back-end)",
                                              "used": "fab: whole wafers started (the sum of WaferStarts); "
                                                      "back-end: units"})
    if len(cap):
        ws.conditional_format(first, 4, last, 4, {"type": "cell", "criteria": ">=", "value": 0.95,
                                                  "format": book.bad})


BOTTLENECKS_ABOUT = "binding capacity ranked by shadow price, in plain words"


def _write_insights(book: Book, rep: ReportInput, money_fmt: object) -> None:
    book.when_priced(lambda: _write_bottlenecks(book, rep), ("Bottlenecks", BOTTLENECKS_ABOUT))
    _write_rd_and_infeasibility(book, rep, money_fmt)


def _write_bottlenecks(book: Book, rep: ReportInput) -> None:
    cur = rep.results.summary["currency"]
    ws = book.sheet("Bottlenecks", BOTTLENECKS_ABOUT)
    b = rep.bottlenecks if rep.bottlenecks is not None else pd.DataFrame()
    if b.empty:
        book.paragraph(ws, 0, "No capacity constraint binds in this plan: one more wafer or back-end unit would "
                              "not raise the objective.", width=100)
        book.width(ws, 0, 100)
    else:
        money2 = book.money(cur, 2)
        book.table(ws, b, formats={"shadow_price": money2, "value_of_one_more": money2, "cost_of_one_less": money2,
                                   "utilisation": "pct", "capacity": "int", "used": "int", "rank": "count"},
                   wrap={"explanation": 60, "platforms_short": 22},
                   header_comments={"value_of_one_more": f"{cur} of objective (margin less shortfall penalties) "
                                                         "gained with one more unit of capacity in that quarter "
                                                         "(re-solved)",
                                    "cost_of_one_less": f"{cur} of objective lost with one less (re-solved)",
                                    "shadow_price": f"{cur}: the solver's dual; one of many where price_check "
                                                    "says 'not unique'"})


def _write_rd_and_infeasibility(book: Book, rep: ReportInput, money_fmt: object) -> None:
    cur = rep.results.summary["currency"]
    ws = book.sheet("R&D impact", "margin, objective and service if each program were ready a quarter earlier or "
                                  "later")
    rd = rep.rd_impact if rep.rd_impact is not None else pd.DataFrame()
    if rep.rd_impact is None and len(rep.plan.programs):
        why = rep.not_computed.get("rd_impact", "not computed; turn on with --insights")
        ws.write_string(0, 0, f"R&D impact {why}.")
    elif rd.empty:
        ws.write_string(0, 0, "No R&D programs in this plan.")
    else:
        book.table(ws, rd, formats={"margin_earlier": money_fmt, "margin_later": money_fmt,
                                    "objective_earlier": money_fmt, "objective_later": money_fmt,
                                    "fill_earlier": "dpct", "fill_later": "dpct"},
                   wrap={"detail_earlier": 24, "detail_later": 24, "verdict": 36, "platforms": 16},
                   header_comments={
                       "margin_earlier": f"change of margin (revenue − cost, {cur}) if ready one quarter earlier",
                       "objective_earlier": f"change of the objective (margin less shortfall penalties, {cur}) if "
                                            "ready one quarter earlier",
                       "fill_earlier": "change of overall fill rate (percentage points)",
                       "margin_later": f"change of margin (revenue − cost, {cur}) if ready one quarter later",
                       "objective_later": f"change of the objective ({cur}) if ready one quarter later"})
    if rep.infeasibility is not None and len(rep.infeasibility):
        ws = book.sheet("Infeasibility", "which platform/quarter minimum cannot hold, and why")
        _, last = book.table(ws, rep.infeasibility, formats={"required": "units", "achievable": "units",
                                                             "missing": "units"},
                             wrap={"reason": 60}, autofilter=False)
        if rep.iis is not None and len(rep.iis):
            book.paragraph(ws, last + 2, "These requirements cannot all hold together (an irreducible infeasible "
                                         "subset: drop or relax any one of them and the rest can):", 0, 0,
                           book.bold, width=60)
            book.table(ws, rep.iis, first_row=last + 3, wrap={"requirement": 60}, autofilter=False, freeze=False)


INPUTS_WIDTH_PX = LANDSCAPE_PX / 0.75  # the Inputs sheet prints at 75 % or more


def _inputs_layout(tables: list[tuple[pd.DataFrame, list[str]]]) -> list[list[list[str]]]:
    """Blocks of columns for every input table such that the whole sheet — whose columns are shared by all
    its tables, each as wide as its widest cell — fits INPUTS_WIDTH_PX: narrower blocks until it does."""
    budget = INPUTS_WIDTH_PX
    while True:
        widths: dict[int, float] = {}
        layout = [column_blocks(df, keys, budget, widths, offset=1 if list(df.columns[:1]) == ["key"] else 0)
                  for df, keys in tables]
        if sum(col_px(w) for w in widths.values()) <= INPUTS_WIDTH_PX or budget < LANDSCAPE_PX / 3:
            return layout
        budget *= 0.9


def _write_inputs(book: Book, plan: PlanData) -> None:
    """The inputs as read. Wide input sheets (Products has 16 columns) are split into blocks of columns, each
    repeating the sheet's key columns, so the page stays readable instead of shrinking to fit."""
    ws = book.sheet("Inputs", "the data as read, after defaults")
    ws.write_string(0, 0, "The input data as read, after defaults", book.bold)
    s = plan.settings
    settings = pd.DataFrame([(k, getattr(s, k)) for k in C.SETTINGS_KEYS], columns=["key", "value"])
    settings["value"] = settings["value"].map(lambda v: "" if v is None else str(v))
    tables: list[tuple[str, pd.DataFrame, list[str]]] = [("Settings", settings, ["key"])]
    for spec in C.SHEETS[1:]:
        df = plan.frame(spec.name)
        if df.empty and not spec.required:
            continue
        view = df.drop(columns=["_row"]).copy()
        view.insert(0, "row", df["_row"].to_numpy())
        tables.append((spec.name, view, ["row", *[k for k in spec.keys if k in view.columns]]))
    layout = _inputs_layout([(df, keys) for _, df, keys in tables])
    r = 2
    for (name, df, _keys), blocks in zip(tables, layout, strict=True):
        for i, cols in enumerate(blocks):
            label = name if len(blocks) == 1 else f"{name} ({i + 1} of {len(blocks)})"
            first_col = 1 if name == "Settings" else 0  # column A is the narrow row number of every other table
            ws.write_string(r, first_col, label, book.subtitle)
            _, last = book.table(ws, df[cols], first_row=r + 1, first_col=first_col, autofilter=False, freeze=False,
                                 repeat_header=False, formats={"row": "count"})
            r = last + 2
        r += 1


CHART_DATA_COLS = 8  # value columns per ChartData block, so the data sheet prints one page wide


def _write_charts(book: Book, rep: ReportInput) -> None:
    """Native charts on 'Charts', on a grid that keeps each chart on one page; their data in visible tables on
    'ChartData' (hidden data would not plot), in blocks of at most CHART_DATA_COLS columns."""
    res, plan = rep.results, rep.plan
    periods = plan.periods
    charts = book.sheet("Charts", "supply vs demand, output by family, wafer starts, utilisation, shortfall causes")
    data = book.sheet("ChartData", "the numbers behind every chart")
    charts.hide_gridlines(2)
    charts.write_string(0, 0, "Charts (data on sheet ChartData; all data hypothetical)", book.title)
    book.row_height(charts, 0, 22)
    book.paragraph(charts, 1, HORIZON_NOTE + " Wafer starts in whole wafers.", 0, 16, width=150)
    palette = ["#2F5597", "#C55A11", "#70AD47", "#7030A0", "#00B0F0", "#FFC000", "#A5A5A5", "#255E91",
               "#9E480E", "#43682B", "#FF66CC", "#264478"]
    colour_of = {p: palette[i % len(palette)] for i, p in enumerate(plan.products["product"])}
    row = [0]
    capped: list[str] = []
    items: list[tuple[object, bool]] = []

    def block(df: pd.DataFrame, title: str, fmt: str = "int") -> dict[str, tuple[int, int, int, int]]:
        where, row[0] = book.data_blocks(data, df, row[0], title, fmt, CHART_DATA_COLS)
        return where

    def series(chart, ref: tuple[int, int, int, int], **extra) -> None:
        name_row, first, last, col = ref
        chart.add_series({"name": ["ChartData", name_row, col], "categories": ["ChartData", first, 0, last, 0],
                          "values": ["ChartData", first, col, last, col], **extra})

    def style(chart, title: str, y: str, y_fmt: str = "#,##0") -> None:
        chart.set_title({"name": title, "name_font": {"size": 11}})
        chart.set_y_axis({"name": y, "num_format": y_fmt, "major_gridlines": {"visible": True,
                                                                             "line": {"color": "#D9D9D9"}}})
        chart.set_x_axis({"num_font": {"rotation": -45, "size": 8}})
        chart.set_legend({"position": "bottom"})

    # 1. supply vs demand per platform (the largest ones, on big plans)
    svc = res.service
    by_demand = svc.groupby("platform")["demand"].sum().sort_values(ascending=False)
    charted = set(by_demand.index[:MAX_CHART_PLATFORMS])
    plats = [p for p in plan.platforms["platform"] if p in charted]
    if len(by_demand) > MAX_CHART_PLATFORMS:
        capped.append(f"the {MAX_CHART_PLATFORMS} platforms with the most demand (of {len(by_demand)})")
    wide = pd.DataFrame({"period": periods})
    for p in plats:
        g = svc[svc["platform"] == p].set_index("period")
        wide[f"{p} demand"] = g["demand"].reindex(periods).fillna(0).to_numpy()
        wide[f"{p} served"] = g["served"].reindex(periods).fillna(0).to_numpy()
    where = block(wide, "Demand and served platform units per quarter")
    for p in plats:
        bars = book.chart({"type": "column"})
        series(bars, where[f"{p} served"], fill={"color": "#2F5597"}, gap=60)
        line = book.chart({"type": "line"})
        series(line, where[f"{p} demand"], line={"color": "#C00000", "width": 2.25, "dash_type": "dash"},
               marker={"type": "diamond", "size": 5, "fill": {"color": "#C00000"}, "border": {"color": "#C00000"}})
        bars.combine(line)
        style(bars, f"{p}: served vs demand", "platform units")
        items.append((bars, False))
    # 2. memory output by family (TB)
    sup = res.supply.merge(plan.products[["product", "gb_per_unit"]], on="product")
    sup["tb"] = sup["output_units"] * sup["gb_per_unit"] / 1000.0
    fam = sup.pivot_table(index="period", columns="family", values="tb", aggfunc="sum").reindex(periods).fillna(0)
    fam = fam.reset_index()
    fam.columns = [str(c) for c in fam.columns]
    where = block(fam, "Memory output by family per quarter (TB)")
    chart = book.chart({"type": "column", "subtype": "stacked"})
    colours = {"HBM": "#2F5597", "LPDDR": "#70AD47"}
    for f in fam.columns[1:]:
        series(chart, where[f], fill={"color": colours.get(f, "#A5A5A5")}, gap=50)
    style(chart, "Memory output by family (TB)", "TB")
    items.append((chart, False))
    # 3. wafer starts per fab, stacked by product (whole wafers, as the WaferStarts sheet shows them)
    wsd, capacity = whole_wafers(res.wafer_starts, res.capacity)
    fab_total = wsd.groupby("fab")["wafers"].sum().sort_values(ascending=False)
    if len(fab_total) > MAX_CHART_FABS:
        capped.append(f"the {MAX_CHART_FABS} fabs with the most wafer starts (of {len(fab_total)})")
    charted = set(fab_total.index[:MAX_CHART_FABS])
    for fab in [f for f in plan.fabs["fab"].unique() if f in charted]:
        g = wsd[wsd["fab"] == fab]
        piv = g.pivot_table(index="period", columns="product", values="wafers", aggfunc="sum")
        if piv.shape[1] > MAX_SERIES:  # the largest products, the rest summed as "other products"
            keep = piv.sum().sort_values(ascending=False).index[: MAX_SERIES - 1]
            piv = piv[keep].assign(**{"other products": piv.drop(columns=keep).sum(axis=1)})
        piv = piv.reindex(periods).fillna(0).reset_index()
        piv.columns = [str(c) for c in piv.columns]
        where = block(piv, f"Wafer starts at {fab} by product (wafers)", fmt="wafers")
        chart = book.chart({"type": "column", "subtype": "stacked"})
        for prod in piv.columns[1:]:
            series(chart, where[prod], gap=50, fill={"color": colour_of.get(prod, "#A5A5A5")})
        style(chart, f"Wafer starts at {fab} by product", "wafers")
        items.append((chart, False))
    # 4. utilisation per resource
    util = capacity.pivot_table(index="period", columns="resource", values="utilisation", aggfunc="first")
    util = util.reindex(periods).reset_index()
    util.columns = [str(c) for c in util.columns]
    where = block(util, "Capacity utilisation per quarter", fmt="pct")
    kinds = set(zip(capacity["resource"], capacity["kind"], strict=True))  # (resource, kind) pairs
    for kind, title in (("fab", "Fab utilisation (wafers used / capacity)"),
                        ("backend", "Back-end utilisation (units / capacity)")):
        names = [r for r in util.columns[1:] if (r, kind) in kinds]
        if not names:
            continue
        if len(names) > MAX_CHART_PLATFORMS:
            busiest = capacity[capacity["resource"].isin(names)].groupby("resource")["utilisation"].mean()
            names = [r for r in names if r in set(busiest.sort_values(ascending=False).index[:MAX_CHART_PLATFORMS])]
            capped.append(f"the {MAX_CHART_PLATFORMS} busiest {'fab/node lines' if kind == 'fab' else 'back-end lines'}")
        chart = book.chart({"type": "line"})
        for r in names:
            series(chart, where[r], marker={"type": "circle", "size": 4})
        style(chart, title, "utilisation", "0%")
        chart.set_y_axis({"name": "utilisation", "num_format": "0%", "min": 0, "max": 1.05,
                          "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
        items.append((chart, False))
    # 5. shortfall by cause (when the plan is explained)
    if rep.causes is not None and len(rep.causes):
        piv = rep.causes.pivot_table(index="platform", columns="cause", values="units", aggfunc="sum").fillna(0)
        piv = piv.loc[piv.sum(axis=1).sort_values(ascending=False).index[:MAX_CHART_PLATFORMS * 2]].reset_index()
        piv.columns = [str(c) for c in piv.columns]
        # summed over quarters the rows are units short, or with backlog unit-quarters of backlog (levels)
        what = "unit-quarters of backlog" if res.backlog else "platform units"
        where = block(piv, f"{'Backlog' if res.backlog else 'Shortfall'} by cause per platform ({what})")
        chart = book.chart({"type": "bar", "subtype": "stacked"})
        for c in piv.columns[1:]:
            series(chart, where[c], gap=40)
        style(chart, f"{'Backlog' if res.backlog else 'Shortfall'} by cause ({what})", "")
        chart.set_y_axis({"name": ""})  # a bar chart's y axis holds the platforms
        chart.set_x_axis({"name": "unit-quarters of backlog" if res.backlog else "platform units short",
                          "num_format": "#,##0",
                          "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
        items.append((chart, len(piv) > 8))
    top = 3
    if capped:
        book.paragraph(charts, 2, "This plan is large: the charts show " + "; ".join(capped)
                       + ". Every row is in the tables.", 0, 16, book.bold, width=150)
        top = 4
    grid = book.chart_grid(charts, top)
    for chart, full in items:
        grid.add(chart, full_width=full)


def _write_causes(book: Book, causes: pd.DataFrame, fixes: pd.DataFrame | None, money_fmt: object,
                  cur: str = "USD", fixes_missing: str | None = None) -> None:
    ws = book.sheet("ShortfallCauses", "why each platform falls short, unit by unit")
    if causes.empty:
        ws.write_string(0, 0, "No platform falls short in this plan.")
        return
    book.table(ws, causes, formats={"shortfall": "units", "units": "units"},
               wrap={"explanation": 60, "competitors": 22},
               header_comments={"units": "shortfall attributed to this cause and resource; the rows of one platform "
                                         "and period add up to its shortfall",
                                "cause": "rd_gate, yield_ramp, fab_capacity, backend_capacity, horizon_start, economics, policy, frozen_zone "
                                         "(method: models/explain.md)"})
    if fixes is None and fixes_missing:
        ws2 = book.sheet("What would help", "the single change that closes most of each platform's shortfall")
        ws2.write_string(0, 0, f"What would help: {fixes_missing}.")
    if fixes is not None and len(fixes):
        ws2 = book.sheet("What would help", "the single change that closes most of each platform's shortfall")
        book.table(ws2, fixes, formats={"units_closed": "units", "share_closed": "pct", "unit_quarters_closed": "units",
                                        "margin_change": money_fmt, "objective_change": money_fmt},
                   wrap={"sentence": 60, "change": 28},
                   header_comments={
                       "units_closed": "more platform units served within the horizon",
                       "share_closed": "units_closed / the platform's units never served",
                       "unit_quarters_closed": "fewer unit-quarters of backlog (units served sooner)",
                       "margin_change": f"change of margin (revenue − cost, {cur}) for the whole plan",
                       "objective_change": f"change of the objective (margin less shortfall penalties, {cur})"})


def write_report(path: Path | str, rep: ReportInput, inputs: tuple[Path, ...] = ()) -> Path:
    """Write the report atomically; ``inputs`` are paths the report must never overwrite."""
    name = Path(rep.plan.source).name

    def write(tmp: Path) -> None:
        with collections_paused():
            _write(tmp)

    def _write(tmp: Path) -> None:
        book = Book(tmp, "report", title=f"Memory supply plan: {name}", source=name)
        if rep.pending is not None:  # the sheets that need the capacity prices: reserved in place, filled last
            book.defer_priced()
        money_fmt = book.money(rep.results.summary["currency"])
        ready: dict[str, Any] = {}  # the Overview's parts that need no prices, computed while the checks run
        book.when_priced(lambda: _write_overview(book, rep, money_fmt, ready), ("Overview", OVERVIEW_ABOUT))
        if rep.results.summary["objective"] is not None:
            _write_charts(book, rep)
        _write_contract_sheets(book, rep, money_fmt)
        write_pnl(book, rep, money_fmt)
        write_since(book, rep)
        if rep.causes is not None:
            _write_causes(book, rep.causes, rep.fixes, money_fmt, rep.results.summary["currency"],
                          rep.not_computed.get("fixes"))
        elif "causes" in rep.not_computed and rep.results.summary["objective"] is not None:
            ws = book.sheet("ShortfallCauses", "why each platform falls short, unit by unit")
            ws.write_string(0, 0, f"Shortfall causes {rep.not_computed['causes']}.")
        _write_insights(book, rep, money_fmt)
        problems = rep.plan.warnings
        if problems:
            ws = book.sheet("Warnings", "what planner noticed in the input but accepted")
            book.table(ws, pd.DataFrame([p.to_dict() for p in problems])[
                ["severity", "code", "where", "column", "message", "expected", "found", "hint"]],
                wrap={"message": 40, "hint": 30, "expected": 24, "found": 20})
        _write_inputs(book, rep.plan)
        if rep.pending is not None:
            ready.update(_overview_data(rep))
            book.prerender()  # the closing's work on the finished sheets, while the checks still run
            rep.pending.settle()
        book.fill_priced()
        book.close()
        book.release()

    try:
        return atomic_write(Path(path), write, inputs)
    except BaseException:  # Ctrl-C or an error: the price checks still running have no one to wait for them
        if rep.pending is not None:
            rep.pending.cancel()
        raise
