"""What-if cases and their compact results: the data a batch ships to workers and back (no solving here)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from planner.io.scenarios import Edit


@dataclass
class Case:
    name: str
    edits: list[Edit] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # sweep values / Monte Carlo draws, for the report


@dataclass
class CaseResult:
    name: str
    status: str  # optimal | infeasible | time_limit | failed | interrupted | ...
    error: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    kpis: dict[str, Any] = field(default_factory=dict)
    service: pd.DataFrame | None = None  # platform, period, demand, served, shortfall
    capacity: pd.DataFrame | None = None  # resource, kind, period, capacity, used, utilisation, shadow_price
    allocation: pd.DataFrame | None = None  # platform, period, option, platform_units (full detail only)
    causes: pd.DataFrame | None = None  # filled when the batch explains shortfalls
    seconds: float = 0.0
    backlog: bool = False  # the case's Settings.backlog: its shortfall column holds backlog levels

    @property
    def ok(self) -> bool:
        return self.status == "optimal"

    def binding(self, tol: float = 1e-6) -> set[tuple[str, str]]:
        if self.capacity is None:
            return set()
        c = self.capacity[self.capacity["shadow_price"] > tol]
        return set(zip(c["resource"], c["period"], strict=True))

    def journal_line(self) -> str:
        return json.dumps({"name": self.name, "status": self.status, "error": self.error, "params": self.params,
                           "kpis": self.kpis, "seconds": round(self.seconds, 4)}, default=_json_default)


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def unique_names(names: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n} ({k + 1})")
    return out
