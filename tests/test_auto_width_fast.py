"""``auto_width`` looks at a handful of values of a numeric column instead of 2,000: the same widths as every value
shown, on random columns (negatives, NaN, ±inf, fractions, integers, huge and tiny) in every number format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.report.xlsx import MAX_AUTO_WIDTH, _display, _is_numeric, auto_width

FORMATS = [None, "pct", "dpct", "ratio", "float", "money2", "seconds", "money", "$#,##0", "int", "units"]


def brute(series: pd.Series, fmt: str | None) -> float:
    shown = [_display(v, fmt) for v in series.head(2000)]
    content = max((len(x) for x in shown), default=0)
    header = max((len(t) for t in str(series.name).split()), default=0) * 1.1
    pad = 3 if _is_numeric(series) else 2
    return min(max(content + pad, header + 2, 6), MAX_AUTO_WIDTH)


@pytest.mark.parametrize("seed", range(40))
def test_same_width_as_every_value(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    scale = 10.0 ** rng.integers(-4, 13)
    v = rng.normal(size=n) * scale
    if seed % 4 == 0:
        v = np.round(v)
    if seed % 5 == 0:
        v[rng.random(n) < 0.3] = np.nan
    if seed % 7 == 0:
        v[rng.integers(n)] = np.inf if seed % 2 else -np.inf
    if seed % 3 == 0:
        v = np.abs(v)
    if seed % 6 == 1:
        v = np.nan_to_num(v, nan=0.0, posinf=1e6, neginf=-1e6).astype(np.int64)
    series = pd.Series(v, name="a value")
    for fmt in FORMATS:
        assert auto_width(series, fmt) == brute(series, fmt), (seed, fmt)


def test_edges() -> None:
    for values in ([np.nan, np.nan], [0.0, -0.0], [-1e-9, 0.0], [0.5, 999.6, -0.25], [-0.9996, 0.0004], [1.0, -1.0], [], [True, False]):
        series = pd.Series(values, name="x")
        for fmt in FORMATS:
            assert auto_width(series, fmt) == brute(series, fmt), (values, fmt)
