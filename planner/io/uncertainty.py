"""The Uncertainty sheet: what it means (draws, kept inside what the target column allows) and its checks.

Monte Carlo and the hedged plan both read it; validation checks it like any other sheet (``planner.io.load``).
"""

from __future__ import annotations

import math

import numpy as np

from planner.io import contract as C
from planner.io.problems import Problem, ValidationFailed
from planner.io.scenarios import Edit, apply_edits
from planner.io.validate import PlanData


def draw(row: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    d = row["distribution"]
    p1, p2, p3 = row.get("p1"), row.get("p2"), row.get("p3")
    if d == "triangular":  # numpy refuses low == high, which validation allows (a fixed value)
        return rng.triangular(p1, p2, p3, size=n) if p1 < p3 else np.full(n, float(p1))
    if d == "normal":
        return rng.normal(p1, p2, size=n)
    if d == "uniform":
        return rng.uniform(p1, p2, size=n)
    values = [float(v) for v in str(row["values"]).split(",")]
    probs = np.array([float(p) for p in str(row["probabilities"]).split(",")])
    return rng.choice(values, size=n, p=probs / probs.sum())


def check_uncertainty(plan: PlanData) -> list[Problem]:
    """Each row's distribution parameters, then its target cell (applied once at a value it can take)."""
    out = []
    for r in plan.uncertainty.to_dict("records"):
        d, row = r["distribution"], r["_row"]
        need = {"triangular": ("p1", "p2", "p3"), "normal": ("p1", "p2"), "uniform": ("p1", "p2"),
                "discrete": ("values", "probabilities")}[d]
        missing = [k for k in need if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k]))]
        if missing:
            out.append(Problem("missing_value", f"{d} needs {', '.join(need)}", sheet="Uncertainty", row=row,
                               column=missing[0], expected="a value", found="a blank cell"))
            continue
        if d == "triangular" and not r["p1"] <= r["p2"] <= r["p3"]:
            out.append(Problem("bad_distribution", "triangular needs low <= mode <= high", sheet="Uncertainty",
                               row=row, column="p1", expected="p1 <= p2 <= p3",
                               found=f"{r['p1']}, {r['p2']}, {r['p3']}"))
        if d in ("normal",) and r["p2"] < 0 or d == "uniform" and r["p2"] < r["p1"]:
            out.append(Problem("bad_distribution", f"{d} parameters out of order", sheet="Uncertainty", row=row,
                               column="p2", expected="sd >= 0 / high >= low", found=str(r["p2"])))
        if d == "discrete":
            try:
                vals = [float(v) for v in str(r["values"]).split(",")]
                probs = [float(p) for p in str(r["probabilities"]).split(",")]
                ok = len(vals) == len(probs) and all(p >= 0 for p in probs) and abs(sum(probs) - 1) < 1e-6
            except ValueError:
                ok = False
            if not ok:
                out.append(Problem("bad_distribution", "values and probabilities must be equally long numbers, "
                                   "probabilities >= 0 summing to 1", sheet="Uncertainty", row=row,
                                   column="probabilities", expected="e.g. values 0,1,2 / probabilities 0.6,0.3,0.1",
                                   found=f"{r['values']} / {r['probabilities']}"))
    if out:
        return out
    # each target once, at a value its distribution can take: an unknown sheet, key or column is an input error
    probe = [Edit(r["sheet"], str(r["key"]), r["column"], r["op"], fit_draw(r, _typical(r)),
                  source=f"Uncertainty row {r['_row']} ({r['name'] or r['column']})", clip=True)
             for r in plan.uncertainty.to_dict("records")]
    try:
        apply_edits(plan, probe)
    except ValidationFailed as exc:
        out.extend(p for p in exc.problems if p.severity == "error")
    return out


def _typical(row: dict) -> float:
    """A value the row's distribution takes: the mode, mean or low end, or the first discrete value."""
    d = row["distribution"]
    if d == "discrete":
        return float(str(row["values"]).split(",")[0])
    return float(row["p2"] if d == "triangular" else row["p1"])


def fit_draw(row: dict, value: float) -> float:
    """Keep a draw inside what the target column allows: scale factors ≥ 0, set values within the column's range
    (a normal draw of a yield above 1 becomes 1), whole numbers for integer columns. An ``add`` draw is kept in
    range where it is applied, against the cell it adds to (``Edit.clip``)."""
    spec = C.SHEETS_BY_NAME.get(str(row["sheet"]).strip().title()) or next(
        (s for s in C.SHEETS if s.name.casefold() == str(row["sheet"]).strip().casefold()), None)
    col = None
    if spec is not None:
        col = next((c for c in spec.columns if c.name.casefold() == str(row["column"]).strip().casefold()), None)
    v = float(value)
    if row["op"] == "scale":
        v = max(v, 0.0)
    elif row["op"] == "set" and col is not None:
        return col.clamp(v)
    if col is not None and col.kind == "int":
        v = int(round(v))
    return v
