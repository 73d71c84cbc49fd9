"""What-if analyses over the batch engine: comparisons, sweeps (1-D and 2-D grids) and Monte Carlo.

Each analysis turns its question into :class:`~planner.batch.Case` objects (edits on the base plan) that
:func:`~planner.batch.run_batch` solves, and turns the results into tables: KPIs side by side, break points
where the bottleneck moves, binding changes, percentiles. The workbooks are written by
:mod:`planner.report.whatif`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from planner.analysis.cases import Case, CaseResult, unique_names
from planner.io.problems import Problem, ValidationFailed
from planner.io.scenarios import Edit, edits_from_sheet, parse_override
from planner.io.uncertainty import check_uncertainty, draw, fit_draw
from planner.io.validate import PlanData
from planner.report.fmt import money

BASE = "base"


# ---- cases -----------------------------------------------------------------------------------------------------
def compare_cases(plan: PlanData, scenarios: Sequence[str], overrides: Sequence[Edit] = ()) -> list[Case]:
    cases = [Case(BASE)]
    for name in scenarios:
        cases.append(Case(name, edits_from_sheet(plan, name)))
    if overrides:
        cases.append(Case("overrides: " + "; ".join(e.describe() for e in overrides), list(overrides)))
    names = unique_names(c.name for c in cases)
    for c, n in zip(cases, names, strict=True):
        c.name = n
    return cases


def parse_param(text: str) -> Edit:
    """``Sheet[key].column`` (or ``Settings.key``) → an Edit template with no value."""
    return parse_override(f"{text}=0")


def parse_values(values: str | None, rng: str | None) -> list:
    """``--values 0,1,2`` (numbers or text) or ``--range start:stop:step`` (inclusive of stop)."""
    if values:
        out: list = []
        for v in values.split(","):
            v = v.strip()
            try:
                f = float(v)
                out.append(int(f) if f.is_integer() and "." not in v else f)
            except ValueError:
                out.append(v)
        return out
    if rng:
        parts = rng.split(":")
        if len(parts) != 3:
            raise ValueError(f"--range {rng!r}: expected start:stop:step, e.g. 0.8:1.2:0.05")
        a, b, step = (float(x) for x in parts)
        if step <= 0 or b < a:
            raise ValueError(f"--range {rng!r}: needs stop >= start and a positive step")
        n = int(math.floor((b - a) / step + 1e-9)) + 1
        return [round(a + i * step, 10) for i in range(n)]
    raise ValueError("give --values or --range")


def sweep_cases(param: Edit, values: list, op: str, param2: Edit | None = None, values2: list | None = None,
                op2: str = "set") -> list[Case]:
    def edit(p: Edit, v, o: str) -> Edit:
        return Edit(p.sheet, p.key, p.column, o, v, source=f"sweep {p.describe().split(' ')[0]}")

    label1 = param.describe().split(" ")[0]
    cases = []
    for v in values:
        if param2 is None:
            cases.append(Case(f"{label1}={v}", [edit(param, v, op)], params={label1: v}))
        else:
            label2 = param2.describe().split(" ")[0]
            for v2 in values2 or []:
                cases.append(Case(f"{label1}={v}, {label2}={v2}", [edit(param, v, op), edit(param2, v2, op2)],
                                  params={label1: v, label2: v2}))
    return cases


def montecarlo_cases(plan: PlanData, samples: int, seed: int) -> list[Case]:
    """Draw every uncertain input for every sample up front (same seed, same draws, same order)."""
    if plan.uncertainty.empty:
        raise ValidationFailed([Problem("missing_sheet", "Monte Carlo needs an 'Uncertainty' sheet with at least "
                                        "one row", sheet="Uncertainty", expected="rows: sheet, key, column, "
                                        "distribution, op, p1..p3 / values, probabilities", found="none")])
    problems = check_uncertainty(plan)  # also checks each target, so a bad one is an input error, not N failures
    if problems:
        raise ValidationFailed(problems)
    rng = np.random.default_rng(seed)
    rows = plan.uncertainty.to_dict("records")
    draws = np.column_stack([draw(r, samples, rng) for r in rows])
    names = [r["name"] or f"{r['sheet']}[{r['key']}].{r['column']}" for r in rows]
    cases = []
    for i in range(samples):
        edits = [Edit(r["sheet"], str(r["key"]), r["column"], r["op"], fit_draw(r, draws[i, j]),
                      source=f"Uncertainty row {r['_row']} ({names[j]})") for j, r in enumerate(rows)]
        cases.append(Case(f"sample {i + 1}", edits, params={n: float(draws[i, j]) for j, n in enumerate(names)}))
    return cases


# ---- tables ----------------------------------------------------------------------------------------------------
def kpi_table(results: list[CaseResult]) -> pd.DataFrame:
    rows = []
    for r in results:
        rows.append({"case": r.name, "status": r.status, **r.params, **r.kpis, "error": r.error})
    return pd.DataFrame(rows)


def platform_fill(r: CaseResult) -> pd.Series:
    if r.service is None:
        return pd.Series(dtype=float)
    g = r.service.groupby("platform")[["served", "demand"]].sum()
    return (g["served"] / g["demand"].where(g["demand"] > 0)).rename(r.name)


def break_points(results: list[CaseResult], param: str) -> pd.DataFrame:
    """Consecutive sweep points between which the set of binding resources changes."""
    rows = []
    ok = [r for r in results if r.ok]
    for a, b in zip(ok, ok[1:], strict=False):
        ra = {res for res, _ in a.binding()}
        rb = {res for res, _ in b.binding()}
        if ra != rb:
            start, stop = sorted(rb - ra), sorted(ra - rb)
            parts = ([f"{', '.join(start)} start{'s' if len(start) == 1 else ''} binding"] if start else []) + (
                [f"{', '.join(stop)} stop{'s' if len(stop) == 1 else ''} binding"] if stop else [])
            rows.append({"from": a.params.get(param), "to": b.params.get(param), "change": "; ".join(parts),
                         "binding_before": ", ".join(sorted(ra)), "binding_after": ", ".join(sorted(rb))})
    return pd.DataFrame(rows, columns=["from", "to", "change", "binding_before", "binding_after"])


def binding_changes(base: CaseResult, other: CaseResult) -> pd.DataFrame:
    rows = []
    if base.capacity is None or other.capacity is None:
        return pd.DataFrame(columns=["scenario", "resource", "period", "change", "shadow_base", "shadow_scenario"])
    a = base.capacity.set_index(["resource", "period"])["shadow_price"]
    b = other.capacity.set_index(["resource", "period"])["shadow_price"]
    for key in sorted(base.binding() ^ other.binding()):
        sa, sb = float(a.get(key, 0.0)), float(b.get(key, 0.0))
        rows.append({"scenario": other.name, "resource": key[0], "period": key[1],
                     "change": "became binding" if sb > sa else "stopped binding", "shadow_base": sa,
                     "shadow_scenario": sb})
    return pd.DataFrame(rows, columns=["scenario", "resource", "period", "change", "shadow_base", "shadow_scenario"])


def montecarlo_stats(results: list[CaseResult], threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    ok = [r for r in results if r.ok]
    rows = []
    margin = np.array([r.kpis["objective"] for r in ok])
    fill = np.array([r.kpis["fill_rate"] for r in ok])

    def pct(a: np.ndarray) -> dict:
        return dict(zip(("P10", "P50", "P90"), np.percentile(a, [10, 50, 90]), strict=True)) if len(a) else {}

    rows.append({"metric": "margin", **pct(margin), "mean": margin.mean() if len(ok) else None,
                 "P(fill rate < threshold)": None})
    rows.append({"metric": "fill_rate (all platforms)", **pct(fill), "mean": fill.mean() if len(ok) else None,
                 "P(fill rate < threshold)": float((fill < threshold).mean()) if len(ok) else None})
    plats = sorted({k[len("fill_rate["):-1] for r in ok for k in r.kpis if k.startswith("fill_rate[")})
    for p in plats:
        a = np.array([r.kpis.get(f"fill_rate[{p}]", np.nan) for r in ok], dtype=float)
        a = a[~np.isnan(a)]
        rows.append({"metric": f"fill_rate[{p}]", **pct(a), "mean": a.mean() if len(a) else None,
                     "P(fill rate < threshold)": float((a < threshold).mean()) if len(a) else None})
    stats = pd.DataFrame(rows, columns=["metric", "P10", "P50", "P90", "mean", "P(fill rate < threshold)"])
    if len(margin):
        counts, edges = np.histogram(margin, bins=min(20, max(5, int(np.sqrt(len(margin))))))
        hist = pd.DataFrame({"bin": [f"{money(a)}–{money(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)],
                             "from": edges[:-1], "to": edges[1:], "samples": counts})
    else:
        hist = pd.DataFrame(columns=["bin", "from", "to", "samples"])
    return stats, hist
