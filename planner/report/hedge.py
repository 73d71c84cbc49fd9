"""The hedged-plan workbook (``planner hedge``): the plan to commit now, what it is expected to earn, what hedging
and better forecasts are worth, and the sentences an analyst forwards.

Every sentence is computed by :func:`overview_sentences` / :func:`difference_sentence` from the tables the
workbook holds (Summary, Statistics, Differences, Scenarios), so a test can read the workbook back and recompute
each one; their truth conditions are in ``models/hedge.md`` ("What the report says").
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

from planner import __version__
from planner.analysis.hedge import HedgeResult, differs
from planner.report.atomic import atomic_write
from planner.report.fmt import money, units
from planner.report.whatif import overview_head
from planner.report.writer import _write_inputs
from planner.report.xlsx import Book

MAX_FILL_SENTENCES = 5
MAX_DIFF_SENTENCES = 8
HIST_BINS = 12

# Summary rows: metric, unit (``$`` = the plan's currency); the contract's rows first (shared/spec/workbook.md)
SUMMARY_ROWS = [
    ("status", ""), ("expected_objective", "$"), ("expected_margin", "$"), ("vss", "$"), ("evpi", "$"),
    ("scenarios", "scenarios"), ("solver", ""), ("input_sha256", ""),
    ("expected_revenue", "$"), ("expected_cost", "$"), ("expected_shortfall_penalty", "$"),
    ("expected_fill_rate", "fraction"), ("average_plan_objective", "$"), ("perfect_foresight_objective", "$"),
    ("average_scenario_objective", "$"), ("average_plan_infeasible_scenarios", "scenarios"),
    ("scenario_mode", ""), ("samples", "draws"), ("seed", ""), ("commit_quarters", "quarters"),
    ("commit_window", ""), ("threshold", "fraction"), ("extensive_form_scenarios", "scenarios"),
    ("full_extensive_form_columns", ""), ("max_columns", ""), ("average_scenario_status", ""),
    ("policy", ""), ("backlog", ""), ("risk_starts", ""), ("method", ""), ("solve_seconds", "s"), ("seconds", "s"),
    ("lp_columns", ""), ("lp_rows", ""), ("feasibility_check", ""), ("max_violation", "scaled"), ("currency", ""),
]
SUMMARY_NOTES = {
    "expected_objective": "Σ probability × (revenue − cost − shortfall penalty) over the scenarios, hedged plan",
    "expected_margin": "Σ probability × (revenue − cost): the profit before shortfall penalties",
    "vss": "value of the stochastic solution: expected_objective − average_plan_objective",
    "evpi": "expected value of perfect information: perfect_foresight_objective − expected_objective",
    "average_plan_objective": "expected objective when the average scenario's plan is committed and the rest adapted",
    "perfect_foresight_objective": "expected objective when each scenario is planned knowing its outcome",
    "average_scenario_objective": "what the average scenario's plan earns in the average scenario itself",
}


def summary_frame(res: HedgeResult) -> pd.DataFrame:
    cur = res.summary["currency"]
    rows = [(m, res.summary.get(m), cur if u == "$" else u, SUMMARY_NOTES.get(m, "")) for m, u in SUMMARY_ROWS]
    rows += [("input_file", Path(res.plan.source).name, "", ""), ("planner_version", __version__, "", ""),
             ("data", "hypothetical", "", "")]
    if res.summary.get("message"):
        rows.append(("message", res.summary["message"], "", ""))
    return pd.DataFrame(rows, columns=["metric", "value", "unit", "note"])


# ---- sentences ---------------------------------------------------------------------------------------------------
def _pct(p: float) -> str:
    """A probability in words: never "0%" for a chance that exists, never "100%" for one that is not certain."""
    if 0 < p < 0.005:
        return "<1%"
    if 0.995 <= p < 1:
        return ">99%"
    return f"{p:.0%}"


def money_pair(a: float, b: float, currency: str) -> tuple[str, str]:
    """Two amounts in words, precise enough to tell apart when they differ (so a sentence never says "earns $19.55B
    against $19.55B" of two different numbers)."""
    if money(a, currency) != money(b, currency) or a == b:
        return money(a, currency), money(b, currency)
    sym = "$" if currency.upper() == "USD" else ""
    suffix = "" if sym else f" {currency}"
    return tuple(f"{'-' if v < 0 else ''}{sym}{abs(v) / 1e6:,.1f}M{suffix}" for v in (a, b))  # type: ignore[return-value]


def units_pair(a: float, b: float) -> tuple[str, str]:
    """Two quantities in words, exact when the short form would print them alike ("36,946 instead of 37,357", not
    "37k instead of 37k")."""
    if units(a) != units(b):
        return units(a), units(b)
    return f"{a:,.0f}", f"{b:,.0f}"


def _per(n: float, unit: str) -> str:
    """"1 wafer", "2,491 wafers"; "1 wafer/quarter"."""
    text = units(abs(n))
    return f"{text} {unit}" if text != "1" else f"1 {unit.replace('wafers', 'wafer')}"


def _num(v) -> float | None:
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _when(period: str, first_period: str) -> str:
    return "now" if period == first_period else f"in {period}"


def difference_sentence(row: dict, first_period: str, currency: str) -> str:
    """One row of the Differences table in words (its truth condition: the row itself)."""
    h, a, d = float(row["hedged"]), float(row["average_plan"]), float(row["difference"])
    if row["kind"] == "wafers":
        when = _when(row["period"], first_period)
        risk = _num(row.get("risk_probability")) or 0.0
        hh, aa = units_pair(h, a)
        more = f"{units(abs(d))} {'more' if d > 0 else 'fewer'} {row['item']}{' risk' if risk > 0 else ''}"
        text = (f"Start {more} wafer{'' if units(abs(d)) == '1' else 's'} {when} than the average-scenario plan "
                f"({hh} instead of {aa}")
        if risk > 0:
            text += f"; the program is not ready by then with {_pct(risk)} probability"
        return text + ")."
    cost = _num(row.get("cost_difference")) or 0.0
    item, hp, ap = row["item"], str(row["period"] or ""), str(row["average_period"] or "")
    single = "," not in hp and "," not in ap
    if a <= 0:
        none = "(the average-scenario plan orders none in the commit window)"
        if "," in hp:
            return (f"Order the {item} expansion: {row['hedged_decisions']} wafers/quarter, for "
                    f"{money(cost, currency)} {none}.")
        return (f"Order the {item} expansion {_when(hp, first_period)}: +{units(h)} wafers/quarter, usable from "
                f"{row['available_from']}, for {money(cost, currency)} {none}.")
    if h <= 0:
        what = (f"+{units(a)} wafers/quarter {_when(ap, first_period)}" if "," not in ap
                else f"{row['average_decisions']} wafers/quarter")
        return (f"Do not order the {item} expansion in the commit window (the average-scenario plan orders {what}, "
                f"for {money(-cost, currency)}).")
    if not differs(h, a) and single:  # the same amount, decided at another time
        return (f"Order the {item} expansion {_when(hp, first_period)} rather than {_when(ap, first_period)}: the "
                f"same +{units(h)} wafers/quarter, usable from {row['available_from']} instead of "
                f"{row['average_available_from']}.")
    change = f"{'+' if cost > 0 else '−'}{money(abs(cost), currency)}"
    hh, aa = units_pair(h, a)
    if single and hp == ap:
        return (f"Order {_per(d, 'wafers/quarter')} {'more' if d > 0 else 'less'} of the {item} expansion "
                f"{_when(hp, first_period)} ({hh} instead of {aa}, {change}).")
    return (f"Order {_per(d, 'wafers/quarter')} {'more' if d > 0 else 'less'} of the {item} expansion: "
            f"{row['hedged_decisions']}, against {row['average_decisions']} in the average-scenario plan "
            f"({change}).")


def overview_sentences(summary: dict, statistics: pd.DataFrame, differences: pd.DataFrame,
                       scenarios: pd.DataFrame) -> list[str]:
    """The Overview's sentences, from the written tables only: Summary (metric → value), Statistics, Differences
    (with its sentence column) and Scenarios."""
    cur = str(summary.get("currency") or "USD")
    n = int(_num(summary["scenarios"]) or 0)
    status = str(summary["status"])
    window = str(summary["commit_window"])
    K = int(_num(summary["commit_quarters"]) or 1)
    if summary["scenario_mode"] == "exact":
        how = "every combination of the discrete Uncertainty rows, with its probability"
    else:
        draws = int(_num(summary["samples"]) or n)
        how = f"{draws} equally likely draws, seed {int(_num(summary['seed']) or 0)}"
        if draws > n:
            how += f"; {draws - n} identical draws merged"
    lines = [f"One plan to commit now, hedged over {n} scenario{'s' if n != 1 else ''} ({how}): the wafer starts of "
             f"{window} and the expansions decided then are the same in every scenario; every later start, and "
             "every shipment, adapts to the scenario."]
    m = int(_num(summary.get("extensive_form_scenarios")) or n)
    if m < n:
        which = "the most likely" if summary["scenario_mode"] == "exact" else "the first draws"
        lines.append(f"The extensive form over all {n} scenarios would have about "
                     f"{int(_num(summary['full_extensive_form_columns']) or 0):,} columns (limit "
                     f"{int(_num(summary['max_columns']) or 0):,}): the plan was optimised over {m} of them ({which}, "
                     "re-weighted) and evaluated in every scenario, one LP each; the figures below are over all "
                     f"{n}.")
    eo = _num(summary["expected_objective"])
    if eo is None:
        lines.append(f"No plan to commit was found (solver status of the hedged problem: {status}).")
        bad = scenarios[scenarios["perfect_foresight_status"].astype(str) != "optimal"]
        if len(bad):
            lines.append(f"{len(bad)} of {n} scenarios are {bad['perfect_foresight_status'].iloc[0]} on their own "
                         "(even knowing the outcome): " + ", ".join(bad["scenario"].astype(str).head(5))
                         + (f" and {len(bad) - 5} more" if len(bad) > 5 else "") + ".")
        elif status == "infeasible":
            lines.append(f"Every scenario is feasible on its own, but no single commitment of {window} serves them "
                         "all (a capacity or min_fill requirement differs between them).")
        return lines
    obj = statistics.set_index("metric")
    o = obj.loc["objective"]
    lines.append(f"Expected objective {money(eo, cur)} (expected margin {money(_num(summary['expected_margin']), cur)}"
                 f" = revenue − cost, less {money(_num(summary['expected_shortfall_penalty']), cur)} of shortfall "
                 f"penalties); objective P10 {money(o['P10'], cur)}, P50 {money(o['P50'], cur)}, "
                 f"P90 {money(o['P90'], cur)}.")
    vss, eev, ev = _num(summary["vss"]), _num(summary["average_plan_objective"]), _num(
        summary["average_scenario_objective"])
    bad_avg = int(_num(summary.get("average_plan_infeasible_scenarios")) or 0)
    quarters = f"its first {K} quarters" if K > 1 else "its first quarter"
    if vss is not None and math.isinf(vss):
        lines.append(f"The plan made for the average scenario cannot be carried out in {bad_avg} of {n} scenarios "
                     "(its committed starts or expansions break a capacity or min_fill requirement there), so "
                     "planning for the uncertainty is worth more than any amount (VSS infinite); the hedged plan can "
                     "be carried out in all of them.")
    elif vss is not None and eev is not None:
        a, b = money_pair(eev, eo, cur)
        lines.append(f"Planning for the uncertainty is worth {money(vss, cur)} (VSS): the plan made for the average "
                     f"scenario, with {quarters} committed and the rest adapted, earns {a} in expectation against the "
                     f"hedged plan's {b}"
                     + (f" (in the average scenario itself it promised {money(ev, cur)})." if ev is not None else "."))
    elif str(summary.get("average_scenario_status")) != "optimal":
        lines.append(f"The average scenario on its own is {summary['average_scenario_status']}: there is no "
                     "average-scenario plan to compare with, so VSS is not computed.")
    ws, evpi = _num(summary["perfect_foresight_objective"]), _num(summary["evpi"])
    if ws is not None and evpi is not None:
        lines.append(f"Knowing the outcome before committing would earn {money(ws, cur)} in expectation: better "
                     f"forecasts are worth up to {money(evpi, cur)} (EVPI).")
    thr = float(_num(summary["threshold"]) or 0.9)
    fill = statistics[statistics["metric"].astype(str).str.startswith("fill_rate[")].copy()
    fill["p"] = fill["P(below threshold)"].map(lambda v: _num(v) or 0.0)
    risky = fill[fill["p"] > 0].sort_values(["p", "metric"], ascending=[False, True])
    if risky.empty and len(fill):
        lowest = fill.sort_values(["expected", "metric"]).iloc[0]
        lines.append(f"Every platform's fill rate stays at or above {thr:.0%} in every scenario under the hedged plan "
                     f"(lowest expected: {lowest['metric'][10:-1]} {float(lowest['expected']):.1%}).")
    for r in risky.head(MAX_FILL_SENTENCES).itertuples():
        lines.append(f"{r.metric[10:-1]}: expected fill rate {float(r.expected):.1%}, {_pct(r.p)} chance below "
                     f"{thr:.0%}.")
    if len(risky) > MAX_FILL_SENTENCES:
        lines.append(f"{len(risky) - MAX_FILL_SENTENCES} more platform(s) may fall below {thr:.0%}: see sheet "
                     "Statistics.")
    if eev is not None or (vss is not None and math.isinf(vss)):
        if differences.empty:
            lines.append(f"The hedged plan commits the same wafer starts and expansions in {window} as the "
                         "average-scenario plan.")
        else:
            lines.append(f"What to commit differently from the average-scenario plan ({len(differences)} "
                         f"decision{'s' if len(differences) != 1 else ''}, sheet Differences):")
            lines += list(differences["sentence"].astype(str).head(MAX_DIFF_SENTENCES))
            if len(differences) > MAX_DIFF_SENTENCES:
                lines.append(f"… and {len(differences) - MAX_DIFF_SENTENCES} more on sheet Differences.")
    if status != "optimal":
        lines.insert(0, f"WARNING: solver status is {status}; figures are the best solution found, not an optimum.")
    if str(summary.get("feasibility_check", "passed")) != "passed":
        lines.append(f"CHECK FAILED: {summary['feasibility_check']}")
    return lines


def differences_frame(res: HedgeResult) -> pd.DataFrame:
    """The Differences table in the order the Overview names them (expansions first, then by size) + sentences."""
    d = res.differences.copy()
    if d.empty:
        return d.assign(sentence=pd.Series(dtype=str))[["sentence", *d.columns]]
    d["_k"] = (d["kind"] != "expansion").astype(int)
    d["_s"] = -d["difference"].abs()
    d = d.sort_values(["_k", "_s", "item", "period"]).drop(columns=["_k", "_s"]).reset_index(drop=True)
    first, cur = res.plan.periods[0], res.plan.settings.currency
    d.insert(0, "sentence", [difference_sentence(r, first, cur) for r in d.to_dict("records")])
    return d


def headline(res: HedgeResult) -> list[str]:
    """What `planner hedge` prints: the Overview's sentences."""
    return overview_sentences(res.summary, res.statistics, differences_frame(res), res.table)


# ---- the workbook ------------------------------------------------------------------------------------------------
SUMMARY_MONEY = {m for m, u in SUMMARY_ROWS if u == "$"}
SUMMARY_FORMATS = {"expected_fill_rate": "pct", "threshold": "pct", "solve_seconds": "seconds", "seconds": "seconds",
                   "lp_columns": "int", "lp_rows": "int", "full_extensive_form_columns": "int", "max_columns": "int",
                   "max_violation": "sci", "scenarios": "count", "samples": "count", "seed": "count",
                   "commit_quarters": "count", "extensive_form_scenarios": "count",
                   "average_plan_infeasible_scenarios": "count"}


def _histogram(table: pd.DataFrame) -> pd.DataFrame:
    """Probability per objective bin under the hedged and the average-scenario plan (same bins)."""
    cols = [c for c in ("objective", "average_plan_objective") if c in table and table[c].notna().any()]
    if not cols:
        return pd.DataFrame(columns=["bin", "from", "to"])
    vals = np.concatenate([table[c].dropna().to_numpy(float) for c in cols])
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        hi = lo + max(1.0, abs(lo) * 1e-6)
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    out = pd.DataFrame({"bin": [f"{money(a)}–{money(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)],
                        "from": edges[:-1], "to": edges[1:]})
    for c, label in (("objective", "hedged plan"), ("average_plan_objective", "average-scenario plan")):
        if c in cols:
            ok = table[c].notna()
            h, _ = np.histogram(table.loc[ok, c].to_numpy(float), bins=edges,
                                weights=table.loc[ok, "probability"].to_numpy(float))
            out[label] = h
    return out


def commit_sheet(res: HedgeResult) -> pd.DataFrame:
    """The Commit table as written: whole wafers per fab, node and quarter (largest remainder, as the solve report
    shows them) with the LP's starts beside them (``wafers_lp``)."""
    from planner.analysis.results import whole_wafers

    if res.commit.empty:
        return res.commit
    no_caps = pd.DataFrame(columns=["resource", "kind", "unit", "period", "capacity", "used", "utilisation"])
    ws, _ = whole_wafers(res.commit, no_caps)
    return ws


def write_hedge(path: Path | str, res: HedgeResult, inputs: tuple[Path, ...] = ()) -> Path:
    """Write the hedge workbook atomically (never over one of ``inputs``)."""

    cur = res.summary["currency"]
    summary = summary_frame(res)
    diffs = differences_frame(res)
    lines = overview_sentences(res.summary, res.statistics, diffs, res.table)
    name = Path(res.plan.source).name
    s = res.summary

    def write(tmp: Path) -> None:
        book = Book(tmp, "hedge", title=f"Hedged plan: {name}", source=name)
        money_fmt = book.money(cur)
        plan = res.plan
        # Overview
        ws, last_col, r = overview_head(book, f"Hedged plan: {name}", plan, lines,
                                        "the plan to commit and what hedging is worth, in sentences; key figures; "
                                        "this index")
        r += 1
        ws.write_string(r, 0, "Key figures (expected over the scenarios)", book.subtitle)
        figures = [("Hedged plan: objective", s["expected_objective"], money_fmt),
                   ("Hedged plan: margin (revenue − cost)", s["expected_margin"], money_fmt),
                   ("Average-scenario plan, adapted: objective", s["average_plan_objective"], money_fmt),
                   ("Perfect foresight: objective", s["perfect_foresight_objective"], money_fmt),
                   ("VSS (value of planning for the uncertainty)", s["vss"], money_fmt),
                   ("EVPI (value of knowing the outcome)", s["evpi"], money_fmt),
                   ("Fill rate (served / demand)", s["expected_fill_rate"], book.fmt["pct"])]
        book.keep_together(ws, r, r + len(figures))
        for label, v, f in figures:
            r += 1
            ws.write_string(r, 0, label)
            book.write_cell(ws, r, 1, v, f)
        r += 2
        ws.write_string(r, 0, "About this run", book.subtitle)
        info = [("Scenarios", res.scenarios.describe()),
                ("Uncertain inputs", "; ".join(res.scenarios.inputs)),
                ("Commit window", f"{s['commit_window']} ({s['commit_quarters']} quarter"
                                  f"{'s' if s['commit_quarters'] != 1 else ''})"),
                ("Solver", f"{s['solver']} ({s['method']}), status {s['status']}"),
                ("Extensive form", f"{s['lp_columns']:,} columns, {s['lp_rows']:,} rows over "
                                   f"{s['extensive_form_scenarios']} scenarios, solved in {s['solve_seconds']:.2f} s"),
                ("Total time", f"{s['seconds']:.1f} s"), ("Checks", s["feasibility_check"]),
                ("planner version", __version__), ("Generated", _dt.datetime.now().strftime("%Y-%m-%d %H:%M")),
                ("Method", "models/hedge.md")]
        book.keep_together(ws, r, r + len(info))
        for k, v in info:
            r += 1
            ws.write_string(r, 0, k, book.bold)
            r = book.paragraph(ws, r, str(v), 1, last_col) - 1
        book.sheet_index(ws, r + 2, last_col)
        ws.activate()
        # Summary (contract)
        ws = book.sheet("Summary", "every figure of the run, one per row, with its unit and meaning")
        fmts = [money_fmt if m in SUMMARY_MONEY and not (isinstance(v, float) and math.isinf(v))
                else SUMMARY_FORMATS.get(m) for m, v in zip(summary["metric"], summary["value"], strict=True)]
        book.table(ws, summary, formats={"value": fmts}, widths={"metric": 30}, wrap={"value": 34, "note": 60},
                   autofilter=False)
        # the here-and-now plan
        ws = book.sheet("Commit", "the wafer starts to commit now, the same in every scenario")
        commit = commit_sheet(res)
        if commit.empty:
            ws.write_string(0, 0, "No wafer start to commit in the window." if res.ok else
                            "No plan to commit: see the Overview.")
        else:
            book.table(ws, commit, formats={"wafers": "wafers", "wafers_lp": "float", "risk_probability": "pct"},
                       header_comments={"wafers": "whole wafers to start in 'period' whatever the scenario",
                                        "wafers_lp": "the LP's starts (costs and the figures come from these)",
                                        "lands": "quarter the output is finished",
                                        "risk_probability": "probability that the product's program is not yet "
                                                            "ready when these wafers start"})
        ws = book.sheet("Expansions", "the expansions to order in the commit window")
        if res.expansions.empty:
            ws.write_string(0, 0, "No expansion is ordered in the commit window.")
        else:
            book.table(ws, res.expansions, formats={"wafers_per_quarter": "wafers", "cost": money_fmt,
                                                    "option": "count"},
                       header_comments={"option": "row of the Expansions input sheet"})
        ws = book.sheet("Differences", "where the hedged plan commits differently from the average-scenario plan, "
                                       "one sentence each")
        if diffs.empty:
            ws.write_string(0, 0, "The hedged plan commits the same starts and expansions as the average-scenario "
                                  "plan." if s["average_plan_objective"] is not None else
                            "No average-scenario plan to compare with: see the Overview.")
        else:
            keep = ["sentence", "kind", "item", "period", "hedged", "average_plan", "difference", "unit"]
            shown = diffs[[c for c in diffs.columns if c in keep or diffs[c].notna().any()
                           and (diffs[c].astype(str) != "").any()]]  # columns of the kinds present only
            book.table(ws, shown, formats={"hedged": "wafers", "average_plan": "wafers", "difference": "signed",
                                           "risk_probability": "pct", "cost_difference": money_fmt},
                       wrap={"sentence": 60, "hedged_decisions": 30, "average_decisions": 30})
        ws = book.sheet("Statistics", "expected value, P10/P50/P90 of objective, margin and each platform's fill "
                                      "rate; the chance each falls below the threshold")
        st = res.statistics
        row_fmt = ["pct" if str(m).startswith("fill_rate") else money_fmt for m in st["metric"]]
        book.table(ws, st, formats={c: row_fmt for c in ("expected", "P10", "P50", "P90", "min", "max")}
                   | {"P(below threshold)": "pct"}, widths={"metric": 34},
                   header_comments={"expected": "probability-weighted mean over the scenarios",
                                    "P10": "the smallest value with at least 10% probability at or below it",
                                    "P(below threshold)": f"probability that the fill rate is below "
                                                          f"{res.threshold:.0%}"})
        ws.write_string(len(st) + 2, 0, f"threshold = {res.threshold:.0%}")
        ws = book.sheet("Scenarios", "every scenario: its probability, the uncertain inputs' values, and its "
                                     "objective under the hedged plan, the average-scenario plan and perfect "
                                     "foresight")
        tab = res.table
        fmts = {c: ("pct" if c.startswith("fill_rate") else money_fmt) for c in tab.columns
                if c.startswith("fill_rate") or c in ("objective", "margin", "revenue", "cost", "shortfall_penalty",
                                                      "average_plan_objective", "perfect_foresight_objective")}
        fmts["probability"] = "ratio"
        fmts.update({c: "ratio" for c in res.scenarios.inputs if c in tab.columns})
        book.table(ws, tab, formats=fmts, widths={"scenario": 24})
        ws = book.sheet("ExpectedStarts", "wafer starts over the whole horizon under the hedged plan, expected and "
                                          "their range over the scenarios")
        if res.expected_starts.empty:
            ws.write_string(0, 0, "No wafer starts.")
        else:
            book.table(ws, res.expected_starts, formats={"expected_wafers": "wafers", "min_wafers": "wafers",
                                                         "max_wafers": "wafers", "probability_started": "pct"},
                       header_comments={"committed": "in the commit window: the same in every scenario",
                                        "expected_wafers": "probability-weighted wafers over the scenarios"})
        _charts(book, res)
        if len(res.failed):
            book.table(book.sheet("Failed", "scenarios a plan could not be carried out in, with the reason"),
                       res.failed, wrap={"reason": 70, "scenario": 30})
        _write_inputs(book, plan)
        book.close()

    return atomic_write(Path(path), write, inputs)


def _charts(book: Book, res: HedgeResult) -> None:
    """What hedging and better forecasts are worth (VSS, EVPI: bars from zero) and the distribution of the
    objective under the hedged and the average-scenario plan; data in visible tables on ChartData."""
    s = res.summary
    worth = [(n, v) for n, v in (("VSS: hedged plan − average-scenario plan", s["vss"]),
                                 ("EVPI: perfect foresight − hedged plan", s["evpi"]))
             if v is not None and math.isfinite(v)]
    hist = _histogram(res.table)
    if not worth and hist.shape[1] <= 3:
        return
    cur = s["currency"]
    charts = book.sheet("Charts", "what hedging is worth; the distribution of the objective under both plans")
    data = book.sheet("ChartData", "the numbers the charts plot")
    charts.hide_gridlines(2)
    charts.write_string(0, 0, "What hedging is worth (data on sheet ChartData; all data hypothetical)", book.title)
    book.row_height(charts, 0, 22)
    grid = book.chart_grid(charts, 2)
    row0 = 0
    if worth:
        cmp = pd.DataFrame(worth, columns=["measure", f"value ({cur})"])
        data.write_string(0, 0, "What hedging and better forecasts are worth", book.subtitle)
        first, last = book.table(data, cmp, first_row=1, formats={f"value ({cur})": book.money(cur)},
                                 autofilter=False, freeze=False, repeat_header=False, widths={"measure": 44})
        ch = book.chart({"type": "bar"})
        ch.add_series({"name": f"expected value ({cur})", "categories": ["ChartData", first, 0, last, 0],
                       "values": ["ChartData", first, 1, last, 1], "fill": {"color": "#2F5597"},
                       "data_labels": {"value": True, "num_format": '#,##0.0,,"M"'}})
        ch.set_title({"name": f"What hedging (VSS) and perfect foresight (EVPI) are worth, {cur}",
                      "name_font": {"size": 11}})
        ch.set_x_axis({"num_format": '#,##0,,"M"', "min": 0})
        ch.set_legend({"none": True})
        grid.add(ch, full_width=True, height=220)
        row0 = last + 3
    if hist.shape[1] > 3:
        data.write_string(row0, 0, "Probability of each objective range", book.subtitle)
        f2, l2 = book.table(data, hist, first_row=row0 + 1, autofilter=False, freeze=False, repeat_header=False,
                            formats={"from": book.money(cur), "to": book.money(cur), "hedged plan": "pct",
                                     "average-scenario plan": "pct"})
        ch2 = book.chart({"type": "column"})
        colours = {"hedged plan": "#2F5597", "average-scenario plan": "#C55A11"}
        for j, series in enumerate(hist.columns[3:], start=3):
            ch2.add_series({"name": ["ChartData", row0 + 1, j], "categories": ["ChartData", f2, 0, l2, 0],
                            "values": ["ChartData", f2, j, l2, j], "gap": 30, "fill": {"color": colours[series]}})
        ch2.set_title({"name": "Distribution of the objective over the scenarios", "name_font": {"size": 11}})
        ch2.set_y_axis({"name": "probability", "num_format": "0%"})
        ch2.set_x_axis({"num_font": {"rotation": -45, "size": 8}})
        ch2.set_legend({"position": "top"})
        grid.add(ch2, full_width=True, height=380)
