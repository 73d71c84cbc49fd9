"""Plan over plan: this plan against the report of the previous one (``planner solve --baseline LAST-REPORT.xlsx``).

:func:`freeze` puts the baseline's wafer starts of the first ``frozen_quarters`` quarters into the plan (the
`frozen_zone` rows hold them). :func:`compare` returns the tables the report writes — service per platform and
quarter before and now, margin per platform, wafer starts, the input cells that changed — over the quarters both
plans cover, and names what is in one plan only (quarters, platforms, products) instead of comparing it.
:func:`headline_sentence` says what moved most and why, computed from those tables and the two ShortfallCauses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from planner.io import contract as C
from planner.io.baseline import Baseline
from planner.io.scenarios import EDIT_KEYS
from planner.io.validate import PlanData
from planner.io.wip import FrozenZone
from planner.report.fmt import units

TOL = 0.5  # platform units / wafers: smaller differences are round-off, not change


@dataclass
class SinceBaseline:
    source: str
    overlap: list[str]
    service: pd.DataFrame  # platform, period, served_before, served_now, change (the SinceBaseline sheet)
    margin: pd.DataFrame  # platform, margin_before, margin_now, change — over the overlapping quarters
    wafers: pd.DataFrame  # fab, node, product, period, wafers_before, wafers_now, change
    inputs: pd.DataFrame  # sheet, key, column, before, now, change
    notes: list[str] = field(default_factory=list)
    causes_before: pd.DataFrame | None = None
    sentence: str = ""


def _span(periods: list[str]) -> str:
    if not periods:
        return ""
    return periods[0] if len(periods) == 1 else f"{periods[0]}–{periods[-1]}"


def freeze(plan: PlanData, baseline: Baseline) -> tuple[PlanData, list[str]]:
    """The plan with the baseline's starts in its first ``frozen_quarters`` quarters held (`frozen_zone`), and
    notes on what could not be held: quarters the baseline does not cover, starts of products or fab/nodes this
    plan no longer has."""
    n = plan.settings.frozen_quarters
    if n <= 0:
        return plan, []
    zone = plan.periods[:n]
    covered = [p for p in zone if p in set(baseline.periods)]
    notes = []
    missing = [p for p in zone if p not in covered]
    if missing:
        notes.append(f"frozen_quarters = {n}, but the baseline does not cover {_span(missing)}: "
                     f"{'that quarter is' if len(missing) == 1 else 'those quarters are'} planned freely.")
    st = baseline.wafer_starts
    st = st[st["period"].isin(covered) & (st["wafers"] > 0)]
    products = set(plan.products["product"])
    fab_nodes = set(zip(plan.fabs["fab"], plan.fabs["node"], strict=True))
    known = st["product"].isin(products) & pd.Series([(f, nd) in fab_nodes for f, nd in
                                                      zip(st["fab"], st["node"], strict=True)], index=st.index,
                                                     dtype=bool)
    gone = st[~known]
    if len(gone):
        what = sorted({f"{r.fab}/{r.node} {r.product}" for r in gone.itertuples()})
        notes.append(f"The baseline started {units(gone['wafers'].sum())} wafers in the frozen zone that this plan "
                     f"cannot hold (product or fab/node no longer in the plan): {', '.join(what[:6])}"
                     + (f" and {len(what) - 6} more" if len(what) > 6 else "") + ".")
    new = plan.copy()
    new.frozen = FrozenZone(periods=covered, starts=st[known].reset_index(drop=True), source=baseline.name)
    if covered:
        notes.insert(0, f"Frozen zone: wafer starts in {_span(covered)} are held at the baseline's "
                        f"({units(st[known]['wafers'].sum())} wafers).")
    return new, notes


def compare(plan: PlanData, results: Any, pnl_by_quarter: pd.DataFrame | None, causes: pd.DataFrame | None,
            baseline: Baseline, notes: list[str] | None = None) -> SinceBaseline:
    """This plan against the baseline, over the quarters both cover (see the module docstring)."""
    now_periods = plan.periods
    before_periods = set(baseline.periods)
    overlap = [p for p in now_periods if p in before_periods]
    notes = list(notes or [])
    only_before = [p for p in baseline.periods if p not in set(now_periods)]
    only_now = [p for p in now_periods if p not in before_periods]
    if not overlap:
        notes.insert(0, f"The baseline ({_span(baseline.periods)}) and this plan ({_span(now_periods)}) share no "
                        "quarter: nothing to compare.")
    else:
        if only_before:
            notes.append(f"Quarters in the baseline only (not compared): {_span(only_before)}.")
        if only_now:
            notes.append(f"Quarters new in this plan (not compared): {_span(only_now)}.")
    plats_now = list(plan.platforms["platform"])
    plats_before = list(dict.fromkeys(baseline.service["platform"].dropna()))
    new_plats = [p for p in plats_now if p not in set(plats_before)]
    gone_plats = [p for p in plats_before if p not in set(plats_now)]
    if new_plats:
        notes.append(f"Platforms new in this plan: {', '.join(new_plats)}.")
    if gone_plats:
        notes.append(f"Platforms in the baseline only: {', '.join(gone_plats)}.")
    prods_now = set(plan.products["product"])
    new_prods = sorted(prods_now - set(baseline.products))
    gone_prods = sorted(set(baseline.products) - prods_now)
    if new_prods:
        notes.append(f"Products new in this plan: {', '.join(new_prods)}.")
    if gone_prods:
        notes.append(f"Products in the baseline only: {', '.join(gone_prods)}.")

    service = _service(results.service, baseline.service, plats_now, plats_before, overlap)
    margin = _margin(pnl_by_quarter, baseline.pnl, plats_now, plats_before, overlap)
    if baseline.pnl is None:
        notes.append("The baseline report has no PnLByQuarter sheet (an older planner wrote it): margin before is "
                     "not known.")
    wafers = _wafers(results.wafer_starts, baseline.wafer_starts, overlap)
    inputs = input_changes(plan, baseline.inputs) if baseline.inputs else pd.DataFrame(columns=_INPUT_COLS)
    if not baseline.inputs:
        notes.append("The baseline report has no Inputs sheet: the input cells that changed are not known.")
    since = SinceBaseline(source=baseline.name, overlap=overlap, service=service, margin=margin, wafers=wafers,
                          inputs=inputs, notes=notes, causes_before=baseline.causes)
    since.sentence = headline_sentence(since, causes)
    return since


def _service(now: pd.DataFrame, before: pd.DataFrame, plats_now: list[str], plats_before: list[str],
             overlap: list[str]) -> pd.DataFrame:
    cols = ["platform", "period", "served_before", "served_now", "change"]
    a = now[now["period"].isin(overlap)].groupby(["platform", "period"])["served"].sum()
    b = before[before["period"].isin(overlap)].groupby(["platform", "period"])["served"].sum()
    rows = []
    for plat in list(dict.fromkeys(plats_now + plats_before)):
        in_now, in_before = plat in set(plats_now), plat in set(plats_before)
        for per in overlap:
            sn = float(a.get((plat, per), 0.0)) if in_now else np.nan
            sb = float(b.get((plat, per), 0.0)) if in_before else np.nan
            if (np.nan_to_num(sn) == 0 and np.nan_to_num(sb) == 0) and in_now and in_before:
                continue
            rows.append({"platform": plat, "period": per, "served_before": sb, "served_now": sn,
                         "change": sn - sb if in_now and in_before else np.nan})
    return pd.DataFrame(rows, columns=cols)


def _margin(now: pd.DataFrame | None, before: pd.DataFrame | None, plats_now: list[str], plats_before: list[str],
            overlap: list[str]) -> pd.DataFrame:
    cols = ["platform", "margin_before", "margin_now", "change"]

    def total(df: pd.DataFrame | None) -> pd.Series:
        if df is None or df.empty:
            return pd.Series(dtype=float)
        return df[df["period"].isin(overlap)].groupby("platform")["margin"].sum()

    a, b = total(now), total(before)
    names = list(dict.fromkeys(plats_now + plats_before + [p for p in list(a.index) + list(b.index)]))
    rows = []
    for plat in names:
        mn = float(a.get(plat, 0.0)) if (plat in set(plats_now) or plat in a.index) and now is not None else np.nan
        mb = (float(b.get(plat, 0.0)) if (plat in set(plats_before) or plat in b.index) and before is not None
              else np.nan)
        rows.append({"platform": plat, "margin_before": mb, "margin_now": mn, "change": mn - mb})
    return pd.DataFrame(rows, columns=cols)


def _wafers(now: pd.DataFrame, before: pd.DataFrame, overlap: list[str]) -> pd.DataFrame:
    key = ["fab", "node", "product", "period"]
    a = now[now["period"].isin(overlap)].groupby(key)["wafers"].sum().rename("wafers_now")
    b = before[before["period"].isin(overlap)].groupby(key)["wafers"].sum().rename("wafers_before")
    both = pd.concat([b, a], axis=1).fillna(0.0).reset_index()
    both = both[(both["wafers_before"].abs() > TOL) | (both["wafers_now"].abs() > TOL)]
    order = {p: i for i, p in enumerate(overlap)}
    both = both.assign(_t=both["period"].map(order)).sort_values(["fab", "node", "_t", "product"]).drop(columns="_t")
    both["change"] = both["wafers_now"] - both["wafers_before"]
    return both[["fab", "node", "product", "period", "wafers_before", "wafers_now", "change"]].reset_index(drop=True)


_INPUT_COLS = ["sheet", "key", "column", "before", "now", "change"]


def _norm(v: Any) -> Any:
    """A cell as compared: blank = None, numbers as floats to 12 significant digits, text stripped."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if isinstance(v, int | float | np.integer | np.floating):
        return float(f"{float(v):.12g}")
    text = str(v).strip()
    if text == "":
        return None
    if text.casefold() in ("true", "false"):
        return text.casefold()
    try:
        return float(f"{float(text.replace(',', '')):.12g}")
    except ValueError:
        return text


def _keyed(df: pd.DataFrame, keys: list[str]) -> dict[tuple, dict[str, Any]]:
    """Rows by key; repeated keys (one row per lot) get an occurrence number so no row is lost."""
    out: dict[tuple, dict[str, Any]] = {}
    seen: dict[tuple, int] = {}
    for rec in df.to_dict("records"):
        rec = {k: _norm(v) for k, v in rec.items()}
        k = tuple(rec.get(c) for c in keys) if keys else tuple(sorted(rec.items(), key=lambda x: x[0]))
        n = seen.get(k, 0)
        seen[k] = n + 1
        out[(*k, n) if n else k] = rec
    return out


def input_changes(plan: PlanData, before: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Input cells that differ between the baseline report's Inputs sheet and this plan (both after defaults):
    one row per changed cell, or per row added or removed."""
    rows = []
    st = before.get("Settings")
    if st is not None and {"key", "value"} <= set(st.columns):
        old = {str(k): _norm(v) for k, v in zip(st["key"], st["value"], strict=True)}
        for k in C.SETTINGS_KEYS:
            v_now = getattr(plan.settings, k)
            new = _norm(None if v_now is None else str(v_now))
            if k in old and old[k] != new:
                rows.append({"sheet": "Settings", "key": k, "column": "value", "before": old[k], "now": new,
                             "change": "changed"})
    for spec in C.SHEETS[1:]:
        a = before.get(spec.name)
        b = plan.frame(spec.name).drop(columns=["_row"])
        if a is None:
            a = pd.DataFrame(columns=b.columns)
        if a.empty and b.empty:
            continue
        keys = list(spec.keys or EDIT_KEYS.get(spec.name, ()))
        cols = [c for c in spec.column_names if c in b.columns]
        ka, kb = _keyed(a.reindex(columns=cols), keys), _keyed(b.reindex(columns=cols), keys)

        def label(k: tuple, keys: list[str] = keys) -> str:
            return " | ".join("" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))
                              for v in (k[: len(keys)] if keys else ()))

        for k in list(dict.fromkeys([*ka, *kb])):
            ra, rb = ka.get(k), kb.get(k)
            if ra is None or rb is None:
                rec = rb if ra is None else ra
                text = ", ".join(f"{c}={rec[c]:g}" if isinstance(rec[c], float) else f"{c}={rec[c]}"
                                 for c in cols if c not in keys and rec[c] is not None)
                rows.append({"sheet": spec.name, "key": label(k) or "(row)", "column": "",
                             "before": text if ra is not None else None, "now": text if rb is not None else None,
                             "change": "added row" if ra is None else "removed row"})
                continue
            for c in cols:
                if c in keys or ra.get(c) == rb.get(c):
                    continue
                rows.append({"sheet": spec.name, "key": label(k), "column": c, "before": ra.get(c),
                             "now": rb.get(c), "change": "changed"})
    return pd.DataFrame(rows, columns=_INPUT_COLS)


_CAUSE_NAMES = {"rd_gate": "{r} qualification", "yield_ramp": "the {r} yield ramp", "fab_capacity": "{r} wafers",
                "backend_capacity": "the {r} line", "economics": "economics", "policy": "the allocation policy",
                "horizon_start": "the horizon start", "frozen_zone": "the frozen zone"}


def cause_label(cause: str, resource: str) -> str:
    if cause == "fab_capacity" and resource == "initial inventory":
        return "the horizon start"
    return _CAUSE_NAMES.get(cause, cause + " {r}").format(r=resource).strip()


def cause_shift(platform: str, overlap: list[str], now: pd.DataFrame | None,
                before: pd.DataFrame | None) -> pd.Series | None:
    """Shortfall units by (cause, resource) of one platform over the overlapping quarters: now − before."""
    if now is None or before is None:
        return None

    def by(df: pd.DataFrame) -> dict[tuple[str, str], float]:
        sel = df[(df["platform"] == platform) & df["period"].isin(overlap)]
        res = sel["resource"].fillna("").astype(str) if len(sel) else []
        out: dict[tuple[str, str], float] = {}
        for cause, r, u in zip(sel["cause"], res, sel["units"], strict=True):
            out[(str(cause), r)] = out.get((str(cause), r), 0.0) + float(u)
        return out

    a, b = by(now), by(before)
    keys = list(dict.fromkeys([*a, *b]))
    return pd.Series({k: a.get(k, 0.0) - b.get(k, 0.0) for k in keys}, dtype=float)


def headline_sentence(since: SinceBaseline, causes_now: pd.DataFrame | None) -> str:
    """What moved most since the baseline, and why: the platform whose service over the overlapping quarters changed
    most, its biggest quarter, the shortfall cause that moved most the same way, and the input cells that changed.

    Truth conditions: every number is read from the SinceBaseline table (change per platform and quarter), the two
    ShortfallCauses tables (this report's and the baseline's, over the overlapping quarters) and the SinceBaseline
    inputs table."""
    head = f"Since the baseline ({since.source})"
    if not since.overlap:
        return f"{head}: the two plans share no quarter, so nothing is compared."
    svc = since.service.dropna(subset=["change"])
    span = _span(since.overlap)
    n_inputs = len(since.inputs)
    inputs = ""
    if n_inputs:
        changed = since.inputs[since.inputs["change"] == "changed"]
        ex = changed.head(2) if len(changed) else since.inputs.head(2)
        examples = "; ".join(_input_text(r) for r in ex.itertuples())
        inputs = (f" {n_inputs} input change{'s' if n_inputs != 1 else ''} (SinceBaseline inputs), e.g. "
                  f"{examples}.")
    total = svc.groupby("platform", sort=False)["change"].sum() if len(svc) else pd.Series(dtype=float)
    if total.empty or total.abs().max() <= TOL:
        return f"{head}: no platform's service changed over {span}." + (inputs or " No input changed.")
    plat = total.abs().idxmax()
    d = float(total[plat])
    g = svc[svc["platform"] == plat]
    worst = g.loc[g["change"].abs().idxmax()]
    before_total = float(g["served_before"].sum())
    pct = f" ({d / before_total:+.1%})" if before_total > TOL else ""
    text = (f"{head}: {plat} moved most, {'+' if d > 0 else '−'}{units(abs(d))} platform units served over "
            f"{span}{pct}, most in {worst['period']} ({'+' if worst['change'] > 0 else '−'}"
            f"{units(abs(worst['change']))})")
    shift = cause_shift(plat, since.overlap, causes_now, since.causes_before)
    if shift is not None and len(shift):
        best = shift.max() if d < 0 else shift.min()
        # causes that moved as much, up to round-off (a tie: TSV-1's shortfall and HBM4's both fell by 190k),
        # are named in a fixed order — cause, then resource — not by whichever float came out a hair larger
        key = min(k for k, v in shift.items() if abs(v - best) <= TOL)
        v = float(shift[key])
        if (d < 0 and v > TOL) or (d > 0 and v < -TOL):
            text += (f"; its shortfall from {cause_label(*key)} {'rose' if v > 0 else 'fell'} by {units(abs(v))} "
                     "units")
    return text + "." + inputs


def _input_text(r: Any) -> str:
    def show(v: Any) -> str:
        return "blank" if v is None or (isinstance(v, float) and np.isnan(v)) else (
            f"{v:,.10g}" if isinstance(v, float) else str(v))

    if r.change == "changed":
        return f"{r.sheet} {r.key} {r.column} {show(r.before)} → {show(r.now)}"
    return f"{r.sheet} {r.key}: {r.change}"
