"""The WIP sheet's rules (``shared/spec/workbook.md``, "WIP"): wafers already in the fab before the horizon, and
starts already committed inside it.

A start before ``first_period`` is *in flight*: its output lands at start + ``cycle_quarters`` and must land inside
the horizon (earlier output is finished goods: ``initial_inventory``). A start inside the horizon is *committed*: a
lower bound on the plan's wafer starts, so it must be one the plan could make — allowed by the R&D gate and within
the fab/node's capacity (plus every expansion that could be usable by then). Rows with the same fab, node, product
and start add up (an ERP export lists one row per lot). Called by :func:`planner.io.validate.validate` with the
other cross-sheet checks; the checks that need yields (back-end capacity for the output) run once the model knows
its good units per wafer (:func:`planner.model.build.check_wip_fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from planner.io.problems import did_you_mean
from planner.periods import horizon_labels, index_label, period_index, ready_quarters


def check_wip(settings: Any, t: dict[str, pd.DataFrame], out: Any) -> pd.DataFrame:
    """Check the WIP rows against Fabs, Products, Programs and capacity; return the rows the plan models.

    Rows that reference unknown ids or break a rule are errors (collected in ``out``); rows whose output lands
    after the horizon, or that start after it, are warnings and are dropped (output beyond the horizon is not
    modelled, as for any start: `horizon_end`)."""
    wip = t["WIP"]
    if wip.empty:
        return wip
    T, first = settings.horizon_quarters, settings.first_period
    last = horizon_labels(first, T)[-1]
    fabs, products, programs = t["Fabs"], t["Products"], t["Programs"]
    fab_nodes = set(zip(fabs["fab"], fabs["node"], strict=True))
    fab_ids = {f for f, _ in fab_nodes}
    nodes = {n for _, n in fab_nodes}
    prod = products.dropna(subset=["product"]).drop_duplicates("product").set_index("product")
    progs = programs.dropna(subset=["program", "start_period", "development_quarters", "qualification_quarters"])
    ready_of = dict(zip(progs["program"], ready_quarters(progs, first), strict=True)) if len(progs) else {}

    keep = []
    for i, r in wip.iterrows():
        row = int(r["_row"])
        fab, node, product, start = r["fab"], r["node"], r["product"], r["start_period"]
        if None in (fab, node, product, start) or r["wafers"] is None:
            continue  # a blank cell is already an error of its own
        ok = True
        if (fab, node) not in fab_nodes:
            bad_col = "fab" if fab not in fab_ids else "node"
            out.error("unknown_fab", f"fab/node {fab}/{node} is not on sheet 'Fabs'", sheet="WIP", row=row,
                      column=bad_col, expected="a fab and node listed on 'Fabs'", found=f"{fab!r} / {node!r}",
                      hint=did_you_mean(fab, fab_ids) if bad_col == "fab" else did_you_mean(node, nodes))
            ok = False
        if product not in prod.index:
            out.error("unknown_product", f"product {product!r} is not defined on sheet 'Products'", sheet="WIP",
                      row=row, column="product", expected="a product from Products", found=repr(product),
                      hint=did_you_mean(product, prod.index))
            continue
        p = prod.loc[product]
        if p["node"] is not None and node != p["node"]:
            out.error("wip_wrong_node", f"product {product!r} is made on node {p['node']!r}, not {node!r}",
                      sheet="WIP", row=row, column="node", expected=f"node {p['node']!r} (Products.node)",
                      found=repr(node), hint=f"check the row's product or node; {product} wafers run on {p['node']}")
            ok = False
        if p["cycle_quarters"] is None or not ok:
            continue
        s = period_index(start, first)
        c = int(p["cycle_quarters"])
        if s < 0 and s + c < 0:
            out.error("wip_lands_before_horizon",
                      f"{product} wafers started in {start} are finished in {index_label(s + c, first)} "
                      f"(cycle_quarters {c}), before the horizon starts in {first}",
                      sheet="WIP", row=row, column="start_period",
                      expected=f"a start from {index_label(-c, first)} on, whose output lands in the horizon",
                      found=repr(start), hint="finished units on hand belong in Products.initial_inventory")
            continue
        if s >= T:
            out.warn("period_outside_horizon", f"a start in {start} is after the horizon ends ({last}) and was "
                     "ignored", sheet="WIP", row=row, column="start_period",
                     expected=f"a quarter before {index_label(T, first)}", found=repr(start))
            continue
        if s + c > T - 1:
            out.warn("period_outside_horizon",
                     f"{product} wafers started in {start} land in {index_label(s + c, first)}, after the horizon "
                     f"ends ({last}); output beyond the horizon is not modelled, so the row was ignored"
                     + (" (its wafers are not reserved in the fab's capacity)" if s >= 0 else ""),
                     sheet="WIP", row=row, column="start_period", found=repr(start))
            continue
        if s >= 0:
            prog = p["program"]
            if prog is not None and prog in ready_of:
                ready = int(ready_of[prog])
                lo = ready - c if settings.risk_starts else ready
                if s < lo:
                    hint = (f"with Settings.risk_starts = true, {product} may start from "
                            f"{index_label(ready - c, first)}" if not settings.risk_starts and ready - c <= s
                            else f"start it in {index_label(max(lo, 0), first)} or later")
                    out.error("wip_before_ready",
                              f"a committed start of {product} in {start}, but program {prog} is ready only in "
                              f"{index_label(ready, first)}: the R&D gate forbids wafer starts before "
                              + ("ready − cycle_quarters (risk starts)" if settings.risk_starts else "then"),
                              sheet="WIP", row=row, column="start_period",
                              expected=f"a quarter from {index_label(max(lo, 0), first)} on", found=repr(start),
                              hint=hint)
                    continue
        keep.append(i)
    kept = wip.loc[keep]
    _check_committed_capacity(settings, t, kept, out)
    return kept


def committed_capacity(settings: Any, t: dict[str, pd.DataFrame]) -> dict[tuple[str, str, int], float]:
    """Most wafers each fab/node can start in each quarter: its capacity (FabCapacity override, else Fabs) plus
    every expansion option that could be usable by then (decided at its earliest quarter)."""
    T, first = settings.horizon_quarters, settings.first_period
    cap = {}
    for f, n, w in zip(t["Fabs"]["fab"], t["Fabs"]["node"], t["Fabs"]["wafers_per_quarter"], strict=True):
        for s in range(T):  # a capacity cell that did not parse has its own error: no second one here
            cap[(f, n, s)] = float("inf") if w is None or pd.isna(w) else float(w)
    fc = t["FabCapacity"]
    for f, n, p, w in zip(fc["fab"], fc["node"], fc["period"], fc["wafers"], strict=True):
        if p is not None and w is not None and 0 <= period_index(p, first) < T:
            cap[(f, n, period_index(p, first))] = float(w)
    ex = t["Expansions"]
    for f, n, lead, mx, e in zip(ex["fab"], ex["node"], ex["lead_quarters"], ex["max_wafers_per_quarter"],
                                 ex["earliest_period"], strict=True):
        if None in (f, n, lead, mx):
            continue  # (a blank or bad cell is an error of its own)
        usable = max(0, period_index(e, first) if e else 0) + int(lead)
        for s in range(usable, T):
            if (f, n, s) in cap:
                cap[(f, n, s)] += float(mx)
    return cap


def _check_committed_capacity(settings: Any, t: dict[str, pd.DataFrame], kept: pd.DataFrame, out: Any) -> None:
    """Committed starts of one fab/node and quarter must fit in what it could start then."""
    first = settings.first_period
    committed = kept[kept["start_period"].map(lambda p: period_index(p, first) >= 0)]
    if committed.empty:
        return
    cap = committed_capacity(settings, t)
    for (fab, node, start), g in committed.groupby(["fab", "node", "start_period"], sort=True):
        total = float(g["wafers"].sum())
        most = cap.get((fab, node, period_index(start, first)), 0.0)
        if total > most * (1 + 1e-9) + 1e-9:
            rows = ", ".join(str(int(r)) for r in g["_row"])
            out.error("wip_above_capacity",
                      f"{total:,.0f} wafers are committed at {fab}/{node} in {start} (rows {rows}), more than it "
                      f"can start then", sheet="WIP", row=int(g["_row"].min()), column="wafers",
                      expected=f"at most {most:,.0f} wafers (Fabs/FabCapacity, plus expansions usable by {start})",
                      found=f"{total:,.0f}", hint="check the WIP rows or the fab's capacity in that quarter")


@dataclass
class FrozenZone:
    """The committed zone of ``--baseline``: the baseline report's wafer starts (``fab``, ``node``, ``product``,
    ``period``, ``wafers``) in ``periods``, the plan's first ``frozen_quarters`` quarters that the baseline covers.

    Every wafer start of the plan in those quarters is held at the baseline's value (`frozen_zone`), zero where the
    baseline started nothing. ``source`` names the baseline report, for messages."""

    periods: list[str]
    starts: pd.DataFrame
    source: str = ""
