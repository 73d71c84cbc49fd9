"""Numbers in words: money and unit counts as the report's sentences show them (one place, every sentence)."""

from __future__ import annotations


def status_clause(status: str) -> str:
    """What a solve's status says of the plan, after its subject ("the plan …"): words, not the status code."""
    return {"infeasible": "is infeasible", "unbounded": "is unbounded",
            "time_limit": "was not solved to optimality within the time limit (--time-limit, "
                          "Settings.time_limit_s)"}.get(status, f"was not solved ({status})")


def money(v: float, currency: str = "USD") -> str:
    sym = "$" if currency.upper() == "USD" else ""
    suffix = "" if sym else f" {currency}"
    a = abs(v)
    sign = "-" if v < 0 else ""
    if a >= 1e9:
        s = f"{a / 1e9:,.2f}B"
    elif a >= 1e6:
        s = f"{a / 1e6:,.1f}M"
    elif a >= 1e4:
        s = f"{a / 1e3:,.0f}k"
    else:
        s = f"{a:,.0f}"
    return f"{sign}{sym}{s}{suffix}"


def units(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:,.0f}k"
    return f"{v:,.0f}"


def signed_money(v: float, currency: str = "USD") -> str:
    """A change of money with its sign always shown: ``+$4.61B``, ``-$3.55B``."""
    return ("+" if v >= 0 else "") + money(v, currency)


def signed_units(v: float) -> str:
    return ("+" if v >= 0 else "") + units(v)


def quarters(v: float) -> str:
    """An average delay: ``1.0 quarter``, ``1.5 quarters``."""
    s = f"{v:.1f}"
    return f"{s} quarter{'' if s == '1.0' else 's'}"


def span(periods: list[str], horizon: list[str] | None = None) -> str:
    """The quarters a figure covers: ``over 2026Q3``, ``over 2026Q3–2028Q4`` when contiguous in the horizon,
    else ``in 2026Q3 and 2028Q1`` or ``in 7 quarters from 2026Q3 to 2028Q4`` (a range would claim the quarters
    between)."""
    periods = sorted(periods)
    if len(periods) == 1:
        return f"over {periods[0]}"
    if horizon:
        idx = [horizon.index(q) for q in periods]
        contiguous = idx == list(range(idx[0], idx[-1] + 1))
    else:
        contiguous = True
    if contiguous:
        return f"over {periods[0]}–{periods[-1]}"
    if len(periods) > 3:
        return f"in {len(periods)} quarters from {periods[0]} to {periods[-1]}"
    return "in " + ", ".join(periods[:-1]) + f" and {periods[-1]}"


def lateness(row, last: str) -> str:
    """What a platform's backlog means in units, each unit counted once (a row of ``platform_service``): what is
    never served by the horizon end, and how late the rest is served (oldest orders first)."""
    late = (f"{units(row.served_late)} served late ({quarters(row.avg_delay_quarters)} on average, oldest orders "
            "first)")
    if row.unserved > 0.5:
        return f"{units(row.unserved)} units never served by {last}, " + (late if row.served_late > 0.5 else
                                                                           "none served late")
    return (f"all {units(row.demand)} units served by {last}, {units(row.served_late)} of them late "
            f"({quarters(row.avg_delay_quarters)} on average, oldest orders first)")


def cell(v) -> str:
    """A cell value as a person would write it: 5,940,000 not 5940000.000000001, 0.78 not 0.7800000001."""
    import numpy as np

    if isinstance(v, bool) or not isinstance(v, int | float | np.number):
        return str(v)
    v = float(v)
    if abs(v - round(v)) < 1e-6 * max(1.0, abs(v)):
        return f"{round(v):,}"
    return f"{v:,.6g}"
