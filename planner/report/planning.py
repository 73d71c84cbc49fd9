"""The report's planning-team sheets: money per platform (PnL, PnLByQuarter, UnitCost), plan over plan
(SinceBaseline and its companions), the Overview's platform × quarter grids and weeks of supply, and the decide-by
dates of expansions. Called by :mod:`planner.report.writer`; every table comes from ``analysis`` frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from planner.analysis.pnl import END_INVENTORY, UNUSED_EXPANSION, weeks_of_supply
from planner.report.xlsx import Book

GRID_MAX_PLATFORMS = 40  # the Overview's grids show the platforms with the most demand (every row is on Service)
GRID_MAX_PRODUCTS = 40
RED, WHITE, GREEN, YELLOW = "#F8696B", "#FFFFFF", "#63BE7B", "#FFEB84"


def expansions_view(rep: Any) -> pd.DataFrame:
    """The Expansions sheet: what was bought, and (with insights) when it must be decided and what waiting costs."""
    ex = rep.results.expansions
    t = rep.expansion_timing
    if t is None or t.empty:
        return ex
    cols = ["needed_from", "decide_by", "objective_if_later", "margin_if_later", "served_if_later", "sentence"]
    view = ex.merge(t[["row", *cols]], on="row", how="left")
    keep = view["row"].duplicated(keep="first")  # the timing belongs to the option, shown on its first row
    view.loc[keep, cols] = np.nan
    return view


def write_expansions(book: Book, rep: Any) -> None:
    view = expansions_view(rep)
    ws = book.sheet("Expansions", "capacity added, when decided and usable, its cost, the last quarter to decide "
                                  "and what waiting a quarter costs")
    cur = rep.results.summary["currency"]
    money = book.money(cur)
    book.table(ws, view, formats={"wafers_per_quarter": "wafers", "cost": money, "objective_if_later": money,
                                  "margin_if_later": money, "served_if_later": "units"},
               wrap={"sentence": 40, "fab": 10, "node": 6},
               header_comments={
                   "row": "the option's row on the input's Expansions sheet",
                   "needed_from": "first quarter the fab/node starts more wafers than it could without this option",
                   "decide_by": "last quarter a decision still arrives in time: needed_from − lead_quarters",
                   "objective_if_later": f"change of the objective ({cur}) if the option could be decided only the "
                                         "quarter after decide_by (a re-solve)",
                   "margin_if_later": f"change of margin (revenue − cost, {cur}) in that re-solve",
                   "served_if_later": "change of platform units served in that re-solve"})


def expansion_sentences(rep: Any) -> list[str]:
    t = rep.expansion_timing
    if t is None or t.empty:
        return []
    return ["Decide by: " + s for s in t["sentence"].head(4)]


# ---- money per platform -------------------------------------------------------------------------------------------
def write_pnl(book: Book, rep: Any, money_fmt: Any) -> None:
    p = rep.pnl
    if p is None:
        return
    cur = rep.results.summary["currency"]
    money = {"revenue": "money", "memory_cost": "money", "margin": "money", "shortfall_penalty": "money"}
    comments = {"memory_cost": f"{cur}: memory units shipped to the platform × each product's average cost that "
                               f"quarter (UnitCost sheet; rule in models/pnl.md). Rows {END_INVENTORY} and "
                               f"{UNUSED_EXPANSION} carry the cost of stock left at the horizon's end and of "
                               "expansions no start used, so the column adds up to the Summary's cost",
                "margin": f"revenue − memory_cost ({cur})",
                "shortfall_penalty": f"{cur}: shortfall (or backlog) × the platform's shortfall_penalty; adds up to "
                                     "the Summary's shortfall_penalty"}
    ws = book.sheet("PnL", "revenue, memory cost, margin and shortfall penalty per platform and year")
    book.table(ws, p.by_year, formats={**money, "year": ""}, header_comments=comments,
               widths={"platform": 26, "revenue": 18, "memory_cost": 18, "margin": 18, "shortfall_penalty": 18})
    ws = book.sheet("PnLByQuarter", "the same per platform and quarter")
    book.table(ws, p.by_quarter, formats=money, header_comments=comments,
               widths={"platform": 26, "revenue": 18, "memory_cost": 18, "margin": 18, "shortfall_penalty": 18})
    ws = book.sheet("UnitCost", "each product's average cost per unit shipped, per quarter")
    fm = {c: "money" for c in ("carried_in_value", "wafer_cost", "unit_cost", "expansion_cost", "shipped_cost",
                               "holding_cost", "carried_out_value")}
    fm.update({c: "int" for c in ("carried_in_units", "output_units", "shipped_units", "inventory_end")})
    fm["average_cost"] = "money2"
    book.table(ws, p.unit_cost, formats=fm, header_comments={
        "average_cost": f"{cur} per unit: (carried_in_value + wafer_cost + unit_cost + expansion_cost) / "
                        "(carried_in_units + output_units); initial inventory is carried at 0 (its cost is sunk)",
        "wafer_cost": "wafer cost of the starts whose output lands this quarter (in-flight WIP: none, sunk)",
        "expansion_cost": "share of bought expansions, spread over the wafers started on them",
        "carried_out_value": "average_cost × inventory_end + holding_cost: what the next quarter carries in"})


# ---- plan over plan -----------------------------------------------------------------------------------------------
def write_since(book: Book, rep: Any) -> None:
    s = rep.since
    if s is None:
        return
    ws = book.sheet("SinceBaseline", "served before and now per platform and quarter")
    first, last = book.table(ws, s.service, formats={"served_before": "int", "served_now": "int", "change": "int"},
                             header_comments={"served_before": f"platform units served in the baseline ({s.source})",
                                              "served_now": "platform units served in this plan",
                                              "change": "served_now − served_before (blank: the platform is in one "
                                                        "plan only)"},
                             widths={"platform": 26, "served_before": 16, "served_now": 16, "change": 14})
    if len(s.service):
        ws.conditional_format(first, 4, last, 4, {"type": "3_color_scale", "min_color": RED, "mid_color": WHITE,
                                                  "max_color": GREEN, "mid_type": "num", "mid_value": 0})
    ws = book.sheet("SinceBaseline margin", "margin per platform before and now")
    book.table(ws, s.margin, formats={"margin_before": "money", "margin_now": "money", "change": "money"},
               header_comments={"margin_before": "revenue − memory cost over the quarters both plans cover "
                                                 "(baseline's PnLByQuarter)"},
               widths={"platform": 26, "margin_before": 18, "margin_now": 18, "change": 18})
    ws = book.sheet("SinceBaseline wafers", "wafer starts before and now")
    book.table(ws, s.wafers, formats={"wafers_before": "int", "wafers_now": "int", "change": "int"})
    ws = book.sheet("SinceBaseline inputs", "the input cells that changed since the baseline")
    book.table(ws, s.inputs, widths={"before": 40, "now": 40, "key": 30},
               header_comments={"before": "the baseline report's Inputs sheet", "now": "this plan, after defaults"})


def since_sentence(rep: Any) -> list[str]:
    return [rep.since.sentence] if rep.since is not None and rep.since.sentence else []


# ---- Overview grids -----------------------------------------------------------------------------------------------
def _grid(book: Book, ws: Any, df: pd.DataFrame, row: int, title: str, scale: dict, fmt: str = "int",
          note: str = "") -> int:
    ws.write_string(row, 0, title, book.subtitle)
    if note:
        ws.write_string(row + 1, 0, note)
        row += 1
    # the Overview's columns are shared with its other tables: never narrower than they need (key figures in B)
    widths = {c: (42, 22, 16, 16, 16, 16)[j] if j < 6 else 12 for j, c in enumerate(df.columns)}
    first, last = book.table(ws, df, formats={c: fmt for c in df.columns[1:]}, first_row=row + 1, autofilter=False,
                             freeze=False, widths=widths)
    if len(df) and len(df.columns) > 1:
        ws.conditional_format(first, 1, last, len(df.columns) - 1, scale)
    return last + 2


def overview_grids(rep: Any) -> dict[str, Any]:
    """The tables of :func:`overview_sections` (platform × quarter served and short, weeks of supply per product):
    none needs the capacity prices, so ``write_report`` computes them while the price checks still run."""
    res, plan = rep.results, rep.plan
    if res.summary["objective"] is None:
        return {}
    periods = plan.periods
    svc = res.service
    order = svc.groupby("platform")["demand"].sum().sort_values(ascending=False)
    charted = set(order.index[:GRID_MAX_PLATFORMS])
    plats = [p for p in plan.platforms["platform"] if p in charted]
    capped = (f" (the {GRID_MAX_PLATFORMS} platforms with the most demand, of {len(order)})"
              if len(order) > GRID_MAX_PLATFORMS else "")

    def wide(col: str) -> pd.DataFrame:
        piv = svc.pivot_table(index="platform", columns="period", values=col, aggfunc="sum")
        piv = piv.reindex(index=plats, columns=periods).fillna(0.0)
        return piv.reset_index()

    out: dict[str, Any] = {"plats": plats, "capped": capped, "served": wide("served"), "short": wide("shortfall"),
                           "weeks": None}
    wos = weeks_of_supply(res)
    if len(wos):
        top = res.supply.groupby("product")["shipped_units"].sum().sort_values(ascending=False)
        shipped = set(top.index[:GRID_MAX_PRODUCTS])
        prods = [p for p in plan.products["product"] if p in shipped]
        grid = wos.pivot(index="product", columns="period", values="weeks").reindex(index=prods, columns=periods)
        out["weeks"] = grid.reset_index()
    return out


def overview_sections(book: Book, ws: Any, rep: Any, r: int, grids: dict[str, Any] | None = None) -> int:
    """Platform × quarter served and short (with colour scales), weeks of supply per product, and the notes of a
    comparison with a baseline; returns the next free row. ``grids``: :func:`overview_grids`, if computed before."""
    res = rep.results
    if rep.since is not None and rep.since.notes:
        ws.write_string(r, 0, "Since the baseline", book.subtitle)
        for note in rep.since.notes:
            r += 1
            ws.merge_range(r, 0, r, 7, note, book.wrap)
        r += 2
    if res.summary["objective"] is None:
        return r
    g = grids if grids else overview_grids(rep)
    if len(g["plats"]):
        r = _grid(book, ws, g["served"], r, "Served by platform and quarter (platform units)" + g["capped"],
                  {"type": "2_color_scale", "min_color": WHITE, "max_color": GREEN, "min_type": "num",
                   "min_value": 0})
        label = "backlog at quarter end" if res.summary.get("backlog") else "lost"
        r = _grid(book, ws, g["short"], r, f"Short by platform and quarter (platform units {label})" + g["capped"],
                  {"type": "2_color_scale", "min_color": WHITE, "max_color": RED, "min_type": "num", "min_value": 0})
    if g["weeks"] is not None:
        r = _grid(book, ws, g["weeks"], r, "Inventory in weeks of supply", {
            "type": "3_color_scale", "min_color": RED, "mid_color": YELLOW, "max_color": GREEN, "min_type": "num",
            "min_value": 0, "mid_type": "num", "mid_value": 4, "max_type": "num", "max_value": 13}, fmt="float1",
            note="Inventory at quarter end ÷ the next quarter's shipments per week (13 weeks a quarter; the last "
                 "quarter: its own shipments). Blank: nothing ships then.")
    return r


def guide(rep: Any) -> list[tuple[str, str]]:
    out = []
    if rep.pnl is not None:
        out.append(("PnL / PnLByQuarter / UnitCost", "revenue, memory cost, margin and penalty per platform and year "
                                                     "(and quarter); each product's average cost per quarter"))
    if rep.since is not None:
        out.append(("SinceBaseline (+ margin, wafers, inputs)", f"what changed since {rep.since.source}: service, "
                                                                "margin, wafer starts, input cells"))
    if rep.expansion_timing is not None and len(rep.expansion_timing):
        out.append(("Expansions", "what was bought, when it must be decided, and what waiting a quarter costs"))
    return out
