"""Numbers in words: money and unit counts as the report's sentences show them (one place, every sentence)."""

from __future__ import annotations


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
