"""Small plans built in code, so each test shows its data. Defaults give one fab, one product, one platform."""

from __future__ import annotations

from typing import Any

import pandas as pd

from planner.io.load import plan_from_frames
from planner.io.validate import PlanData


def frames(
    *,
    quarters: int = 2,
    first: str = "2026Q1",
    settings: dict[str, Any] | None = None,
    programs: list[dict] | None = None,
    products: list[dict] | None = None,
    ramp: list[dict] | None = None,
    fabs: list[dict] | None = None,
    fab_capacity: list[dict] | None = None,
    expansions: list[dict] | None = None,
    backend: list[dict] | None = None,
    backend_capacity: list[dict] | None = None,
    platforms: list[dict] | None = None,
    bom: list[dict] | None = None,
    demand: list[dict] | None = None,
    scenarios: list[dict] | None = None,
    wip: list[dict] | None = None,
) -> dict[str, pd.DataFrame]:
    """Frames for a tiny plan. Default product P: 10 good units per wafer (100 dies × 1 × 1 / 10), no cycle."""
    s = {"first_period": first, "horizon_quarters": quarters}
    s.update(settings or {})
    base_product = {"product": "P", "family": "HBM", "program": None, "node": "n1", "gb_per_unit": 1,
                    "dies_per_unit": 10, "gross_dies_per_wafer": 100, "die_yield": 1.0, "assembly_yield": 1.0,
                    "cycle_quarters": 0, "backend": None, "backend_use": 1, "unit_cost": 0, "price": 10,
                    "initial_inventory": 0, "holding_cost": 0}
    prods = [{**base_product, **p} for p in (products or [{}])]
    out = {
        "Settings": pd.DataFrame([{"key": k, "value": v} for k, v in s.items()]),
        "Programs": pd.DataFrame(programs or [], columns=["program", "start_period", "development_quarters",
                                                          "qualification_quarters"]),
        "Products": pd.DataFrame(prods),
        "Fabs": pd.DataFrame(fabs or [{"fab": "F", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": 20}]),
        "Platforms": pd.DataFrame(platforms or [{"platform": "X", "priority": 1, "shortfall_penalty": 0}]),
        "BOM": pd.DataFrame(bom or [{"platform": "X", "option": "o", "product": "P", "units_per_platform": 1}]),
        "Demand": pd.DataFrame(demand or [{"platform": "X", "period": first, "units": 2000}]),
    }
    for sheet, rows in (("YieldRamp", ramp), ("FabCapacity", fab_capacity), ("Expansions", expansions),
                        ("Backend", backend), ("BackendCapacity", backend_capacity), ("Scenarios", scenarios),
                        ("WIP", wip)):
        if rows:
            out[sheet] = pd.DataFrame(rows)
    return out


def plan(**kw: Any) -> PlanData:
    return plan_from_frames(frames(**kw))
