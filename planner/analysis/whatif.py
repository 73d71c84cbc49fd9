"""What-if analyses over the batch engine: comparisons, sweeps (1-D and 2-D grids) and Monte Carlo.

Each analysis turns its question into :class:`~planner.batch.Case` objects (edits on the base plan) that
:func:`~planner.batch.run_batch` solves, and turns the results into tables: KPIs side by side, break points
where the bottleneck moves, binding changes, percentiles. The workbooks are written by
:mod:`planner.report.whatif`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.analysis.cases import Case, CaseResult, unique_names
from planner.io.problems import Problem, ValidationFailed
from planner.io.scenarios import Edit, apply_edits, cell_values, edits_from_sheet, parse_override
from planner.io.uncertainty import check_uncertainty, draw, fit_draw
from planner.io.validate import PlanData
from planner.report.fmt import cell, money

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


@dataclass(frozen=True)
class SweepAxis:
    """One swept parameter and how its points are labelled, so that a label is always the value solved.

    When the parameter is one cell (or ``op`` is ``set``), a point's label is the cell's value in the plan that
    point solves — ``add``/``scale`` results included, read back after the edit — and the amount or factor
    given is kept beside it. When a wildcard key matches many cells that ``add`` or ``scale`` move by one
    amount, no single value was solved: the label is the factor (``× 1.05 of base``) or the amount, said so.
    """

    param: str  # Sheet[key].column as the user typed it
    op: str  # set | add | scale
    cells: int  # cells the parameter matches in the base plan

    @property
    def per_cell(self) -> bool:
        """Labels are cell values (one cell, or every matched cell set to the same value)."""
        return self.cells <= 1 or self.op == "set"

    @property
    def column(self) -> str:
        if self.per_cell:
            return self.param
        return f"{self.param} (× base)" if self.op == "scale" else f"{self.param} (+ on each cell)"

    @property
    def given_column(self) -> str | None:
        """Where the factor or amount given sits beside a cell-value label (None: the label is what was given)."""
        if not self.per_cell or self.op == "set":
            return None
        return f"{self.param} × factor" if self.op == "scale" else f"{self.param} + amount"

    def value_text(self, v) -> str:
        if self.per_cell:
            return cell(v) + (f" in each of {self.cells} cells" if self.cells > 1 else "")
        return f"× {cell(v)} of base" if self.op == "scale" else f"{'+' if v >= 0 else ''}{cell(v)} on each cell"

    def text(self, v, given=None) -> str:
        """A point's name: ``Programs[HBM4].qualification_quarters=4``, ``Demand[X|*].units × 1.05 of base``;
        a point whose edit cannot apply (label None) names what was asked: ``… *= 0.5 (not applied)``."""
        if v is None:
            return f"{self.param} {dict(set='=', add='+=', scale='*=')[self.op]} {cell(given)} (not applied)"
        if self.per_cell:
            return f"{self.param}={self.value_text(v)}"
        return f"{self.param} {self.value_text(v)}"

    def between(self, a, b) -> str:
        """The two points around a break: ``… = 2 and 3``, ``… × 0.9 and × 1 of base``."""
        if self.per_cell:
            return f"{self.param} = {cell(a)} and {cell(b)}"
        if self.op == "scale":
            return f"{self.param} × {cell(a)} and × {cell(b)} of base"
        return f"{self.param} {'+' if a >= 0 else ''}{cell(a)} and {'+' if b >= 0 else ''}{cell(b)} on each cell"


def sweep_axis(plan: PlanData, param: Edit, op: str) -> SweepAxis:
    return SweepAxis(param.target, op, len(cell_values(plan, param)))


def _labels(plan: PlanData, axis: SweepAxis, param: Edit, values: list) -> list:
    """Each value's label: the cell's value after the edit (None when the edit cannot apply: that point fails)."""
    if not axis.per_cell:
        return list(values)
    out = []
    for v in values:
        e = Edit(param.sheet, param.key, param.column, axis.op, v)
        try:
            got = cell_values(apply_edits(plan, [e]), e)
        except ValidationFailed:
            got = []
        out.append(got[0] if got else None)
    return out


def sweep_cases(plan: PlanData, param: Edit, values: list, op: str, param2: Edit | None = None,
                values2: list | None = None, op2: str = "set") -> tuple[list[Case], list[SweepAxis]]:
    """Cases of a sweep (one parameter, or a grid of two) and their axes; each case's ``params`` hold its labels
    (:class:`SweepAxis`) and, beside a cell-value label, the factor or amount given."""
    def edit(p: Edit, v, o: str) -> Edit:
        return Edit(p.sheet, p.key, p.column, o, v, source=f"sweep {p.target}")

    axes = [sweep_axis(plan, param, op)]
    points = [list(zip(values, _labels(plan, axes[0], param, values), strict=True))]
    if param2 is not None:
        axes.append(sweep_axis(plan, param2, op2))
        points.append(list(zip(values2 or [], _labels(plan, axes[1], param2, values2 or []), strict=True)))

    def params(axis: SweepAxis, given, lab) -> dict:
        out = {axis.column: lab}
        if axis.given_column:
            out[axis.given_column] = given
        return out

    cases = []
    for v, lab in points[0]:
        if param2 is None:
            cases.append(Case(axes[0].text(lab, v), [edit(param, v, op)], params=params(axes[0], v, lab)))
            continue
        for v2, lab2 in points[1]:
            cases.append(Case(f"{axes[0].text(lab, v)}, {axes[1].text(lab2, v2)}",
                              [edit(param, v, op), edit(param2, v2, op2)],
                              params={**params(axes[0], v, lab), **params(axes[1], v2, lab2)}))
    names = unique_names(c.name for c in cases)
    for c, n in zip(cases, names, strict=True):
        c.name = n
    return cases, axes


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
                      source=f"Uncertainty row {r['_row']} ({names[j]})", clip=True) for j, r in enumerate(rows)]
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
    """P10/P50/P90 and mean of margin (revenue − cost), objective (margin less shortfall penalties), fill rate
    and each platform's fill rate; the histogram is of margin."""
    ok = [r for r in results if r.ok]
    rows = []
    margin = np.array([r.kpis["margin"] for r in ok])
    objective = np.array([r.kpis["objective"] for r in ok])
    fill = np.array([r.kpis["fill_rate"] for r in ok])

    def pct(a: np.ndarray) -> dict:
        return dict(zip(("P10", "P50", "P90"), np.percentile(a, [10, 50, 90]), strict=True)) if len(a) else {}

    rows.append({"metric": "margin", **pct(margin), "mean": margin.mean() if len(ok) else None,
                 "P(fill rate < threshold)": None})
    rows.append({"metric": "objective", **pct(objective), "mean": objective.mean() if len(ok) else None,
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
