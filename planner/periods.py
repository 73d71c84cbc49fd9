"""Quarter labels (``YYYYQn``) and their indices relative to the first planning quarter."""

from __future__ import annotations

import re

_PERIOD = re.compile(r"^\s*(\d{4})\s*[-_ ]?\s*[Qq]\s*([1-4])\s*$")

# Quarters a workbook may name. Outside these no plan is real, and a year below 1000 has no four-digit label
# to come back to (0999Q1 + 1 quarter was printed as "999Q2", which no longer parsed).
FIRST_YEAR, LAST_YEAR = 1900, 2199


def parse_period(value: object) -> tuple[int, int] | None:
    """``'2026Q3'`` → ``(2026, 3)``; ``None`` if the text is not a quarter label."""
    if not isinstance(value, str):
        return None
    m = _PERIOD.match(value)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2))


def normalise_period(value: object) -> str | None:
    p = parse_period(value)
    return f"{p[0]}Q{p[1]}" if p else None


def in_range(label: str) -> bool:
    """Whether a quarter label lies in the years a workbook may name (FIRST_YEAR to LAST_YEAR)."""
    p = parse_period(label)
    return p is not None and FIRST_YEAR <= p[0] <= LAST_YEAR


def ordinal(label: str) -> int:
    """Quarters since year 0, so that differences of ordinals are quarter counts."""
    p = parse_period(label)
    if p is None:
        raise ValueError(f"not a quarter label: {label!r}")
    return p[0] * 4 + (p[1] - 1)


def label(ordinal_value: int) -> str:
    return f"{ordinal_value // 4:04d}Q{ordinal_value % 4 + 1}"


def period_index(period: str, first_period: str) -> int:
    """Quarter index of ``period`` counted from ``first_period`` = 0 (negative before the horizon)."""
    return ordinal(period) - ordinal(first_period)


def horizon_labels(first_period: str, quarters: int) -> list[str]:
    start = ordinal(first_period)
    return [label(start + i) for i in range(quarters)]


def index_label(index: int, first_period: str) -> str:
    return label(ordinal(first_period) + index)


def ready_quarters(programs, first_period: str):
    """Ready quarter index of each program (Semantics, "Ready quarter"): start + development + qualification,
    counted from ``first_period`` = 0; may be negative. The one place this rule is written (input checks and the
    model both ask here; ``planner.model.sets`` re-exports it)."""
    import numpy as np

    return np.array([period_index(p, first_period) + int(d) + int(q) for p, d, q in
                     zip(programs["start_period"], programs["development_quarters"],
                         programs["qualification_quarters"], strict=True)], dtype=int)
