"""Every number of the Overview's headline, recomputed from the written report's own tables (issue 15).

On generated plans (backlog on and off, three policies) the report is written by `planner solve`, read back
with openpyxl, and each sentence is parsed: its money, units and percentages must equal what the Summary,
Service, Allocation, WaferStarts, Supply, Capacity, Expansions, ShortfallCauses, What would help and R&D impact
sheets say, to the precision printed. Lateness under backlog is recomputed here by an independent
first-in-first-out queue, not by the planner's formula. A sentence no checker knows fails the test, so a new
kind of sentence cannot slip in unchecked; a run that finds nothing to check (no shortfall, no late unit)
fails instead of passing on an empty set.
"""

from __future__ import annotations

import re
import sys
from collections import deque
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.io.generate import generate_frames
from planner.report.fmt import cell
from planner.report.template import write_input_workbook

TOL = 1e-6


# ---- reading the report -----------------------------------------------------------------------------------------
def read(path: Path) -> dict[str, pd.DataFrame]:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    out = {}
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        if ws.title == "Overview":
            if "The plan in brief" in [r[0] for r in rows]:
                out["lines"] = headline_lines(rows)
            continue
        if not rows or ws.title in ("Charts", "ChartData", "Inputs"):
            continue
        body = rows[1:]
        blank = next((i for i, r in enumerate(body) if all(v is None for v in r)), len(body))
        out[ws.title] = pd.DataFrame(body[:blank], columns=rows[0])  # the sheet's first table
    return out


def headline_lines(rows) -> list[str]:
    cells = [r[0] for r in rows]
    start, end = cells.index("The plan in brief") + 1, cells.index("Key figures")
    return [c for c in cells[start:end] if c]


# ---- parsing what the sentences print ---------------------------------------------------------------------------
MONEY = r"[+-]?\$[\d,]+(?:\.\d+)?[BMk]?"
UNITS = r"[\d,]+(?:\.\d+)?[Mk]?"
SCALE = {"B": 1e9, "M": 1e6, "k": 1e3, "": 1.0}


def number(text: str) -> tuple[float, float]:
    """Value and half the last printed digit (the rounding a printed number can hide)."""
    t = text.replace("$", "").replace(",", "")
    sign = -1.0 if t.startswith("-") else 1.0
    t = t.lstrip("+-")
    suffix = t[-1] if t[-1] in SCALE and not t[-1].isdigit() else ""
    body = t[: len(t) - len(suffix)]
    decimals = len(body.split(".")[1]) if "." in body else 0
    return sign * float(body) * SCALE[suffix], 0.5 * 10 ** (-decimals) * SCALE[suffix]


def same(text: str, value: float, what: str) -> None:
    v, tol = number(text)
    assert abs(v - value) <= tol * (1 + 1e-9) + 1e-6 * abs(value), f"{what}: printed {text}, tables say {value:,.4f}"


def pct_same(text: str, value: float, what: str) -> None:
    body = text.rstrip("%")
    decimals = len(body.split(".")[1]) if "." in body else 0
    assert abs(float(body) - 100 * value) <= 0.5 * 10 ** (-decimals) + 1e-9, f"{what}: printed {text}, tables say " \
                                                                               f"{100 * value:.4f}%"


# ---- independent recomputation ----------------------------------------------------------------------------------
def fifo(demand: list[float], served: list[float]) -> tuple[float, float, float]:
    """(served late, unit-quarters waited by the late ones, never served) with the oldest orders served first,
    simulated unit batch by unit batch."""
    queue: deque[list[float]] = deque()  # [quarter demanded, units]
    late = waited = 0.0
    for t, (d, s) in enumerate(zip(demand, served, strict=True)):
        queue.append([t, d])
        while s > TOL and queue:
            q, u = queue[0]
            take = min(u, s)
            if q < t:
                late += take
                waited += take * (t - q)
            s -= take
            queue[0][1] -= take
            if queue[0][1] <= TOL:
                queue.popleft()
    return late, waited, sum(u for _, u in queue)


class Truth:
    """What the tables say, computed here from the sheets (and the plan's own inputs)."""

    def __init__(self, sheets: dict[str, pd.DataFrame], fr: dict[str, pd.DataFrame], backlog: bool):
        self.s = sheets
        self.backlog = backlog
        self.summary = dict(zip(sheets["Summary"]["metric"], sheets["Summary"]["value"], strict=True))
        svc = sheets["Service"]
        periods = sorted(set(fr["Demand"]["period"]) | set(svc["period"]))
        first = fr["Settings"].set_index("key").loc["first_period", "value"]
        n = int(fr["Settings"].set_index("key").loc["horizon_quarters", "value"])
        from planner.periods import horizon_labels

        self.periods = horizon_labels(first, n)
        assert set(periods) <= set(self.periods)
        self.plat: dict[str, dict] = {}
        for p, g in svc.groupby("platform"):
            g = g.set_index("period")[["demand", "served", "shortfall"]].reindex(self.periods).fillna(0.0)
            d, s, b = (g[c].astype(float).tolist() for c in ("demand", "served", "shortfall"))
            rec = {"demand": sum(d), "served": sum(s), "short_periods": [q for q, v in zip(self.periods, b,
                                                                                           strict=True) if v > TOL]}
            if backlog:
                late, waited, never = fifo(d, s)
                assert never == pytest.approx(b[-1], rel=1e-6, abs=1e-3), f"{p}: FIFO leaves {never}, backlog {b[-1]}"
                rec.update(unserved=b[-1], late=late, delay=waited / late if late > TOL else 0.0,
                           unit_quarters=sum(b))
            else:
                rec.update(unserved=sum(b))
            self.plat[p] = rec
        alloc = sheets["Allocation"]
        self.revenue = float(alloc["revenue"].sum()) if len(alloc) else 0.0
        pen = dict(zip(fr["Platforms"]["platform"], fr["Platforms"]["shortfall_penalty"], strict=True))
        self.penalty = float((svc["shortfall"] * svc["platform"].map(pen)).sum())
        wc = {(f, n): c for f, n, c in zip(fr["Fabs"]["fab"], fr["Fabs"]["node"], fr["Fabs"]["wafer_cost"],
                                           strict=True)}
        ws = sheets["WaferStarts"]
        # WaferStarts shows whole wafers for reading and the LP's starts (wafers_lp), on which cost is charged
        wafer = float(sum(w * wc[(f, n)] for f, n, w in zip(ws["fab"], ws["node"], ws["wafers_lp"], strict=True)))
        prod = fr["Products"].set_index("product")
        sup = sheets["Supply"]
        unit = float((sup["output_units"] * sup["product"].map(prod["unit_cost"])).sum())
        hold = float((sup["inventory_end"] * sup["product"].map(prod["holding_cost"].fillna(0))).sum())
        exp = float(sheets["Expansions"]["cost"].sum()) if "Expansions" in sheets else 0.0
        self.cost = wafer + unit + hold + exp
        self.demand = float(svc["demand"].sum())
        self.served = float(svc["served"].sum())


# ---- one checker per kind of sentence ---------------------------------------------------------------------------
FIRST = re.compile(rf"^Margin (?P<m>{MONEY}) \(revenue (?P<r>{MONEY}) less cost (?P<c>{MONEY})\); objective "
                   rf"(?P<o>{MONEY}) \(margin less (?P<p>{MONEY}) of shortfall penalties\); (?P<f>[\d.]+%) of "
                   rf"platform demand served \((?P<s>{UNITS}) of (?P<d>{UNITS}) platform units\) under the "
                   r"'(?P<policy>\w+)' policy\.$")


def check_first(t: Truth, line: str) -> None:
    m = FIRST.match(line)
    assert m, f"first line not understood: {line}"
    margin = t.revenue - t.cost
    same(m["r"], t.revenue, "revenue")
    same(m["c"], t.cost, "cost")
    same(m["m"], margin, "margin")
    same(m["p"], t.penalty, "shortfall penalty")
    same(m["o"], margin - t.penalty, "objective")
    same(m["s"], t.served, "served")
    same(m["d"], t.demand, "demand")
    pct_same(m["f"], t.served / t.demand, "fill rate")
    assert t.summary["margin"] == pytest.approx(margin, rel=1e-9, abs=1e-3)
    assert t.summary["objective"] == pytest.approx(margin - t.penalty, rel=1e-9, abs=1e-3)


def span_of(periods: list[str], all_periods: list[str]) -> str:
    idx = [all_periods.index(q) for q in periods]
    if len(idx) == 1:
        return f"over {periods[0]}"
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"over {periods[0]}–{periods[-1]}"
    if len(periods) > 3:
        return f"in {len(periods)} quarters from {periods[0]} to {periods[-1]}"
    return "in " + ", ".join(periods[:-1]) + f" and {periods[-1]}"


def cause_shares(t: Truth, plat: str, total: float) -> list[str]:
    c = t.s["ShortfallCauses"]
    c = c[c["platform"] == plat]
    parts = c.fillna({"resource": ""}).groupby(["cause", "resource"])["units"].sum()
    return sorted(f"{u / total:.0%}" for u in parts if u / total >= 0.005)


PLAT_LOST = re.compile(rf"^(?P<plat>.+?): (?P<u>{UNITS}) units short (?P<span>(?:over|in) [^;]+); (?P<rest>.*)\.$")
PLAT_LATE = re.compile(rf"^(?P<plat>.+?): (?:(?P<u>{UNITS}) units never served by (?P<end>\d{{4}}Q\d), "
                       rf"(?:(?P<late>{UNITS}) served late \((?P<d>[\d.]+) quarters? on average, oldest orders "
                       rf"first\)|none served late)|all (?P<all>{UNITS}) units served by (?P<end2>\d{{4}}Q\d), "
                       rf"(?P<late2>{UNITS}) of them late \((?P<d2>[\d.]+) quarters? on average, oldest orders "
                       rf"first\)); (?P<uq>{UNITS}) unit-quarters of backlog (?P<span>(?:over|in) [^:]+): "
                       rf"(?P<rest>.*)\.$")


def check_platform(t: Truth, line: str) -> str:
    rx = PLAT_LATE if t.backlog else PLAT_LOST
    m = rx.match(line)
    assert m, f"platform sentence not understood: {line}"
    plat = m["plat"]
    truth = t.plat[plat]
    shares = sorted(re.findall(r"(\d+%) ", m["rest"] + " "))
    assert span_of(truth["short_periods"], t.periods) == m["span"].strip(), line
    if not t.backlog:
        same(m["u"], truth["unserved"], f"{plat} units short")
        assert shares == cause_shares(t, plat, truth["unserved"]), line
        return plat
    assert (m["end"] or m["end2"]) == t.periods[-1]
    if m["all"]:
        assert truth["unserved"] <= 0.5, f"{plat}: 'all served' but {truth['unserved']:,.1f} never served"
        same(m["all"], truth["demand"], f"{plat} demand")
        same(m["late2"], truth["late"], f"{plat} served late")
        same(m["d2"], truth["delay"], f"{plat} average delay")
    else:
        same(m["u"], truth["unserved"], f"{plat} never served")
        if m["late"]:
            same(m["late"], truth["late"], f"{plat} served late")
            same(m["d"], truth["delay"], f"{plat} average delay")
        else:
            assert truth["late"] <= 0.5
    same(m["uq"], truth["unit_quarters"], f"{plat} unit-quarters")
    assert shares == cause_shares(t, plat, truth["unit_quarters"]), line
    return plat


HELP_LOST = re.compile(rf"^What would help: (?P<change>.+): \+(?P<u>{UNITS}) (?P<plat>.+) units \((?P<sh>\d+%) of "
                       rf"its shortfall\), margin (?P<m>{MONEY}), objective (?P<o>{MONEY})$")
HELP_LATE = re.compile(rf"^What would help: (?P<change>.+): (?:\+(?P<u>{UNITS}) (?P<plat>.+) units served by "
                       rf"\d{{4}}Q\d \((?P<sh>\d+%) of its unserved units\), backlog|(?P<plat2>.+) backlog) "
                       rf"(?P<uq>[+-]{UNITS}) unit-quarters \((?P<uqs>\d+%) (?P<dir>less|more)\), margin "
                       rf"(?P<m>{MONEY}), objective (?P<o>{MONEY})$")


def check_help(t: Truth, line: str) -> None:
    m = (HELP_LATE if t.backlog else HELP_LOST).match(line)
    assert m, f"'what would help' not understood: {line}"
    plat = m["plat"] or m["plat2"]
    fx = t.s["What would help"]
    row = fx[(fx["platform"] == plat) & (fx["change"] == m["change"])]
    assert len(row) == 1, line
    row = row.iloc[0]
    truth = t.plat[plat]
    same(m["m"], row["margin_change"], "lever margin")
    same(m["o"], row["objective_change"], "lever objective")
    if m["u"]:
        same(m["u"], row["units_closed"], "units closed")
        pct_same(m["sh"], row["units_closed"] / truth["unserved"], "share closed")
        assert row["units_closed"] <= truth["unserved"] + 1e-6
    if t.backlog:
        closed = row["unit_quarters_closed"]
        same(m["uq"], -closed, "unit-quarters closed")
        pct_same(m["uqs"], abs(closed) / truth["unit_quarters"], "unit-quarter share")
        assert (m["dir"] == "less") == (closed > 0)


def check_binds(t: Truth, line: str) -> None:
    """Recomputed from the Capacity sheet: rows where capacity matters (one more or one less unit changes the
    objective, by the ±1 re-solves; or an unchecked non-zero dual), per resource the most one more unit adds
    (else the most one less costs), largest first (issue 16: a degenerate dual alone is never quoted)."""
    cap = t.s["Capacity"]
    checked = cap["price_check"].isin(["unique", "not unique", "one less infeasible", "less than one unit"])
    more, less = cap["value_of_one_more"].astype(float), cap["cost_of_one_less"].astype(float)
    b = cap[(checked & ((more > TOL) | (less > TOL) | (cap["price_check"] == "one less infeasible")))
            | ((cap["price_check"] == "not checked") & (cap["shadow_price"].abs() > TOL))]
    agg = b.groupby("resource").agg(first=("period", "min"), last=("period", "max"), n=("period", "size"),
                                    more=("value_of_one_more", "max"), less=("cost_of_one_less", "max"),
                                    dual=("shadow_price", "max"))
    agg = agg.sort_values(["more", "less", "dual"], ascending=False, na_position="last").head(4)
    parts = line[len("What binds: "):-1].split("; ")
    assert len(parts) == len(agg), line
    for part, (res, a) in zip(parts, agg.iterrows(), strict=True):
        m = re.match(r"^(?P<r>.+) \((?P<n>\d+) quarters?, (?P<span>[^,]+), (?P<rest>.+)\)$", part)
        assert m and m["r"] == res, part
        assert int(m["n"]) == a["n"]
        assert m["span"] == (a["first"] if a["first"] == a["last"] else f"{a['first']}–{a['last']}")
        if a["more"] > 0:
            v = re.match(rf"^up to (?P<v>{MONEY}) of objective per extra (wafer|unit)$", m["rest"])
            assert v, part
            same(v["v"], a["more"], f"{res} value of one more")
        elif a["less"] > 0:
            v = re.match(rf"^full: one more (wafer|unit) adds nothing, one less costs up to (?P<v>{MONEY}) of "
                         r"objective$", m["rest"])
            assert v, part
            same(v["v"], a["less"], f"{res} cost of one less")
        else:
            v = re.match(rf"^shadow price up to (?P<v>{MONEY}) of objective per (wafer|unit), not checked$",
                         m["rest"])
            assert v, part
            same(v["v"], a["dual"], f"{res} shadow price")


def check_rd(t: Truth, line: str) -> None:
    rd = t.s["R&D impact"]
    best = rd.loc[rd["objective_earlier"].astype(float).idxmax()]
    m = re.match(rf"^R&D: (?P<p>\S+) ready one quarter earlier \((?P<e>\S+) instead of (?P<r>\S+)\): margin "
                 rf"(?P<me>{MONEY}), objective (?P<oe>{MONEY}); one quarter later \((?P<l>\S+)\): margin "
                 rf"(?P<ml>{MONEY}), objective (?P<ol>{MONEY})\.$", line)
    assert m and m["p"] == best["program"] and m["r"] == best["ready"], line
    for key, col in (("me", "margin_earlier"), ("oe", "objective_earlier"), ("ml", "margin_later"),
                     ("ol", "objective_later")):
        same(m[key], best[col], col)


def check_expansions(t: Truth, line: str) -> None:
    """Each expansion named is a row of the Expansions sheet (wafers, cost), no row twice; past the first few
    (the costliest), "and K more costing $C in all" counts the rest and sums their cost."""
    ex = t.s["Expansions"]
    body = line[len("Expansions: "):-1]
    tail = re.search(rf"; and (?P<k>\d+) more costing (?P<c>{MONEY}) in all \(Expansions sheet\)$", body)
    if tail:
        body = body[:tail.start()]
    parts = body.split("; ")
    left = list(ex.itertuples())
    named = []
    for part in parts:
        m = re.match(rf"^(?P<fn>\S+) \+(?P<w>{UNITS}) wafers/quarter decided (?P<d>\S+), usable from (\S+), cost "
                     rf"(?P<c>{MONEY})$", part)
        assert m, part
        r = next(r for r in left if f"{r.fab}/{r.node}" == m["fn"] and r.decided == m["d"])
        left.remove(r)
        named.append(r)
        same(m["w"], r.wafers_per_quarter, "expansion wafers")
        same(m["c"], r.cost, "expansion cost")
    if not tail:
        assert not left, f"{len(left)} expansions neither named nor counted: {line}"
        return
    assert int(tail["k"]) == len(left) > 0
    same(tail["c"], sum(r.cost for r in left), "cost of the expansions not named")
    assert min(r.cost for r in named) >= max(r.cost for r in left), "the costliest are the ones named"


MORE = re.compile(rf"^(?P<k>\d+) more platforms? (?:short: (?P<u>{UNITS}) units|with backlog: (?P<uq>{UNITS}) "
                  rf"unit-quarters) in all \((?P<sheet>\w+) sheet\)\.$")


def check_more(t: Truth, line: str, described: set[str]) -> set[str]:
    """"K more platforms short: U units in all": the short platforms not described one by one — how many, their
    shortfall summed (unit-quarters of backlog with backlog) — and none of them larger than one described."""
    m = MORE.match(line)
    assert m, line
    measure = "unit_quarters" if t.backlog else "unserved"
    rest = {p for p, r in t.plat.items() if r["short_periods"]} - described
    assert int(m["k"]) == len(rest) > 0, line
    same(m["uq"] if t.backlog else m["u"], sum(t.plat[p][measure] for p in rest), "shortfall not described")
    assert max(t.plat[p][measure] for p in rest) <= min(t.plat[p][measure] for p in described) + TOL
    return rest


def check_decide_by(t: Truth, line: str) -> None:
    """"Decide by:" (issue 19): the option's row of the Expansions sheet — wafers, needed_from, decide_by = needed_from −
    lead, the quarter after it, and the re-solve's change of objective and of service."""
    from planner.periods import label, ordinal

    m = re.match(rf"^Decide by: (?P<fn>\S+) expansion \(Expansions row (?P<row>\d+), (?P<w>{UNITS}) wafers/quarter, lead "
                 rf"(?P<lead>\d+) quarters?\): (?P<when>.+?); decide by (?P<by>\S+?)(?:; deciding in (?P<next>\S+) "
                 rf"instead changes the objective by (?P<d>{MONEY}) \((?P<svc>.+)\))?\.$", line)
    assert m, line
    ex = t.s["Expansions"]
    rows = ex[ex["row"] == int(m["row"])]
    first = rows.iloc[0]
    assert m["fn"] == f"{first['fab']}/{first['node']}"
    same(m["w"], rows["wafers_per_quarter"].sum(), "expansion wafers")
    assert m["by"] == first["decide_by"]
    if first["needed_from"]:
        assert m["when"] == f"needed from {first['needed_from']}"
        assert ordinal(first["needed_from"]) - ordinal(first["decide_by"]) == int(m["lead"])
    if m["d"] is not None:
        assert m["next"] == label(ordinal(first["decide_by"]) + 1)
        same(m["d"], first["objective_if_later"], "objective if decided later")
        if m["svc"] == "service unchanged":
            assert abs(first["served_if_later"]) < 0.5
        else:
            sm = re.match(rf"^(?P<sign>[+−])(?P<u>{UNITS}) platform units served$", m["svc"])
            assert sm, m["svc"]
            same(sm["u"], abs(first["served_if_later"]), "served if decided later")
            assert (sm["sign"] == "+") == (first["served_if_later"] > 0)


def check_report(path: Path, fr: dict, backlog: bool) -> dict[str, int]:
    sheets = read(path)
    t = Truth(sheets, fr, backlog)
    lines = sheets["lines"]
    seen = {"platform": 0, "late": 0, "help": 0, "binds": 0, "rd": 0, "more": 0, "short": 0}
    check_first(t, lines[0])
    described = set()
    order: list[float] = []  # each platform sentence's shortfall, in the order printed
    for line in lines[1:]:
        if line.startswith("What would help: "):
            check_help(t, line)
            seen["help"] += 1
        elif line.startswith("What binds: "):
            check_binds(t, line)
            seen["binds"] += 1
        elif line.startswith("R&D: "):
            check_rd(t, line)
            seen["rd"] += 1
        elif line.startswith("Expansions: "):
            if "no expansion option" not in line:
                check_expansions(t, line)
                seen["more"] += " more costing " in line
        elif line.startswith("Decide by: "):
            check_decide_by(t, line)
        elif line.startswith("No capacity constraint binds"):
            cap = t.s["Capacity"]  # one more unit adds nothing anywhere, one less costs nothing anywhere
            assert (cap["value_of_one_more"].astype(float).fillna(0) <= TOL).all()
            assert (cap["cost_of_one_less"].astype(float).fillna(0) <= TOL).all()
            assert not cap["price_check"].isin(["one less infeasible", "not checked"]).any()
        elif line.startswith("Short: "):
            described |= check_short(t, line)
            seen["short"] += 1
        elif "ShortfallCauses" not in t.s and LATE_LINE.match(line):
            m = LATE_LINE.match(line)
            same(m["uq"], t.plat[m["plat"]]["unit_quarters"], f"{m['plat']} unit-quarters")
            described.add(m["plat"])
            seen["short"] += 1
        elif MORE.match(line):
            described |= check_more(t, line, described)
            seen["more"] += 1
        elif line.split(":")[0] in t.plat:
            described.add(check_platform(t, line))
            order.append(t.plat[line.split(":")[0]]["unit_quarters" if backlog else "unserved"])
            seen["platform"] += 1
            seen["late"] += int(backlog and t.plat[line.split(":")[0]].get("late", 0) > 0.5)
        else:
            pytest.fail(f"a sentence no test checks: {line}")
    assert order == sorted(order, reverse=True), "the platforms named one by one are not largest first"
    short = {p for p, r in t.plat.items() if r["short_periods"]}
    assert described == short, f"platforms with a shortfall {sorted(short)}, described {sorted(described)}"
    return seen


CASES = [(4, 6, 2, 6, 3, "margin"), (5, 8, 3, 8, 5, "priority"), (6, 8, 3, 8, 11, "fair_share")]


@pytest.mark.parametrize("backlog", [False, True])
def test_every_headline_number_comes_from_the_tables(tmp_path, backlog):
    seen = _check_cases(tmp_path, backlog)
    assert not seen["more"]  # these plans are small: every short platform is named


@pytest.mark.parametrize("backlog", [False, True])
def test_past_the_first_few_the_headline_counts(tmp_path, backlog, monkeypatch):
    """A large plan names the largest few short platforms and expansions and counts the rest (here the cut
    is moved to 1, so that these small plans have a rest): the counts and sums recomputed from the tables."""
    import planner.report.writer as writer

    monkeypatch.setattr(writer, "HEADLINE_TOP", 1)
    more = []
    real = check_more

    def counted(t, line, described):
        more.append(line)
        return real(t, line, described)

    monkeypatch.setattr(sys.modules[__name__], "check_more", counted)
    # and a plan that takes two expansions (10 platforms, 6 fabs), so that one of them is counted
    seen = _check_cases(tmp_path, backlog, CASES + [(10, 12, 6, 8, 5, "margin")])
    assert more and seen["more"] > len(more), (more, seen)  # platforms counted, and expansions too


@pytest.mark.parametrize("backlog", [False, True])
def test_without_the_explanation_the_headline_still_counts(tmp_path, backlog, monkeypatch):
    """``--no-explain``: no causes, so each short platform is one entry of "Short:" (lost sales) or one line
    (backlog), the largest first, the rest counted — every number recomputed from the Service sheet."""
    import planner.report.writer as writer

    monkeypatch.setattr(writer, "HEADLINE_TOP", 1)
    seen = _check_cases(tmp_path, backlog, args=("--no-explain", "--no-insights"))
    assert seen["more"] and seen["short"], seen


SHORT_PART = re.compile(rf"^(?P<plat>.+) (?P<u>{UNITS}) units \((?P<f>\d+)% served\)$")
LATE_LINE = re.compile(rf"^(?P<plat>[^:]+): .+; (?P<uq>{UNITS}) unit-quarters of backlog \((?P<f>\d+)% served\)\.$")


def check_short(t: Truth, line: str) -> set[str]:
    """"Short: P U units (F% served); …" (no causes): each platform's units never served, from the tables."""
    named = set()
    for part in line[len("Short: "):-1].split("; "):
        m = SHORT_PART.match(part)
        assert m, part
        named.add(m["plat"])
        same(m["u"], t.plat[m["plat"]]["unserved"], f"{m['plat']} units short")
    return named


def _check_cases(tmp_path, backlog, cases=CASES, args=()) -> dict[str, int]:
    seen_total: dict[str, int] = {}
    for P, M, F, T, seed, policy in cases:
        fr = generate_frames(P, M, F, T, seed)
        st = fr["Settings"].set_index("key")
        st.loc["backlog", "value"] = "true" if backlog else "false"
        st.loc["policy", "value"] = policy
        fr["Settings"] = st.reset_index()
        src = write_input_workbook(tmp_path / f"g{P}-{seed}.xlsx", fr)
        out = tmp_path / f"g{P}-{seed}-report.xlsx"
        res = CliRunner().invoke(main, ["solve", str(src), "-o", str(out), *args])
        assert res.exit_code == 0, res.output
        printed = [x for x in res.output.splitlines() if not x.startswith("report: ")]
        assert printed == read(out)["lines"], "the terminal and the Overview say different things"
        for k, v in check_report(out, fr, backlog).items():
            seen_total[k] = seen_total.get(k, 0) + v
    if args:
        return seen_total
    # these plans were chosen because each kind of sentence occurs; a change that makes them vanish must not pass
    assert seen_total["platform"] and seen_total["help"] and seen_total["binds"] and seen_total["rd"], seen_total
    if backlog:
        assert seen_total["late"], seen_total
    return seen_total


def test_fifo_reference_itself():
    """Demand 1,500 then nothing, 500 served a quarter: 1,000 late, waiting 500 × 1 + 500 × 2 = 1,500."""
    assert fifo([1500, 0, 0], [500, 500, 500]) == (1000, 1500, 0)
    assert np.allclose(fifo([1500, 1500, 500], [1000, 1000, 1000]), (1500, 1500, 500))


# ---- what-if workbooks: compare, Monte Carlo, sweep ------------------------------------------------------------
def generated(tmp_path: Path, seed: int, backlog: bool, policy: str = "margin") -> tuple[Path, dict]:
    fr = generate_frames(5, 8, 3, 8, seed)
    st = fr["Settings"].set_index("key")
    st.loc["backlog", "value"] = "true" if backlog else "false"
    st.loc["policy", "value"] = policy
    fr["Settings"] = st.reset_index()
    # one scenario switches backlog over, so a comparison also meets a base and a scenario measured differently
    fr["Scenarios"] = pd.concat([fr["Scenarios"], pd.DataFrame([
        {"scenario": "backlog switched", "sheet": "Settings", "key": "backlog", "column": "value", "op": "set",
         "value": "false" if backlog else "true"}])], ignore_index=True)
    return write_input_workbook(tmp_path / f"w{seed}-{int(backlog)}.xlsx", fr), fr


COMPARE = re.compile(rf"^(?P<name>[^:]+): margin (?P<m>{MONEY})(?: \((?P<mp>[+-][\d.]+%)\))?, objective "
                     rf"(?P<o>{MONEY})(?: \((?P<op>[+-][\d.]+%)\))?, fill rate (?P<f>[+-][\d.]+) pts; served: "
                     r"(?P<served>.*?)(?P<rest>(?:; (?:shortfall|never served|backlog): .*?)*)\.(?: Because (?P<why>.*)\.)?$")


def per_platform(text: str, word: str) -> dict[str, str]:
    if text == "none":
        return {}
    out = {}
    for part in text.split("; "):
        m = re.match(rf"^(?P<p>.+) (?P<v>[+-]{UNITS}) {word}$", part)
        assert m, f"not understood: {part!r}"
        out[m["p"]] = m["v"]
    return out


@pytest.mark.parametrize("backlog", [False, True])
def test_compare_sentences_come_from_the_comparison_tables(tmp_path, backlog):
    src, _ = generated(tmp_path, 5, backlog)
    out = tmp_path / "cmp-out.xlsx"
    res = CliRunner().invoke(main, ["compare", str(src), "--all-scenarios", "-o", str(out), "--workers", "1",
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    wb = read(out)
    kp = wb["KPIs"].set_index("metric")
    svc = wb["Service"]
    moved = wb.get("Causes moved", pd.DataFrame(columns=["scenario", "explanation", "delta"]))
    lines = [x for x in res.output.splitlines() if ": margin " in x]
    assert len(lines) == 4, res.output
    checked_rest = 0
    for line in lines:
        m = COMPARE.match(line)
        assert m, f"compare sentence not understood: {line}"
        name = m["name"]
        col = kp[name]
        for key, pkey in (("m", "mp"), ("o", "op")):
            metric = "margin" if key == "m" else "objective"
            base, scen = float(kp.loc[metric, "base"]), float(col[metric])
            same(m[key], scen - base, f"{name} {metric} change")
            if base:
                pct_same(m[pkey].lstrip("+"), (scen - base) / abs(base), f"{name} {metric} change %")
        same(m["f"], 100 * (float(col["fill_rate"]) - float(kp.loc["fill_rate", "base"])), f"{name} fill pts")
        # the comparison's Service sheet lists the (platform, quarter) rows where a scenario differs from the base
        served = svc[svc["scenario"] == name].groupby("platform")["Δ served"].sum()
        said = per_platform(m["served"], "units")
        assert set(said) == set(served[served.abs() > 0.5].index), line
        for p, v in said.items():
            same(v, served[p], f"{name} served {p}")
        mixed = (name == "backlog switched")
        for sec in re.finditer(r"; (shortfall|never served|backlog): (.*?)(?=; (?:shortfall|never served|backlog): |$)",
                               m["rest"]):
            label, text = sec[1], sec[2]
            prefix, word = ("backlog_unit_quarters", "unit-quarters") if label == "backlog" else ("unserved", "units")
            assert label != "shortfall" or not (backlog or mixed), "lost-sales wording for a backlog comparison"
            for p, v in per_platform(text, word).items():
                key = f"{prefix}[{p}]"
                b = float(kp.loc[key, "base"]) if key in kp.index and pd.notna(kp.loc[key, "base"]) else 0.0
                s = float(col[key]) if key in kp.index and pd.notna(col[key]) else 0.0
                same(v, s - b, f"{name} {label} {p}")
                checked_rest += 1
        last = (m["why"] or "").split(" → ")[-1]  # "<cells changed> → <cause moves>": the moves come last
        if re.search(r" (units|unit-quarters)$", last):
            for e in last.split("; "):
                row = moved[(moved["scenario"] == name) & (moved["explanation"] == e)]
                assert len(row) == 1, f"cause move not in the Causes moved sheet: {e}"
                v = re.search(rf"([+-]{UNITS}) (units|unit-quarters)$", e)
                same(v[1], row["delta"].iloc[0], e)
                assert v[2] == ("unit-quarters" if backlog else "units") and not mixed
    assert checked_rest, "no per-platform shortfall change was checked"


def test_montecarlo_sentences_come_from_the_samples(tmp_path):
    src, _ = generated(tmp_path, 5, True)
    out = tmp_path / "mc-out.xlsx"
    res = CliRunner().invoke(main, ["montecarlo", str(src), "--samples", "12", "--seed", "3", "-o", str(out),
                                    "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    wb = read(out)
    samples = wb["Samples"]
    samples = samples[samples["status"] == "optimal"]
    ov = [str(v) for v in pd.read_excel(out, "Overview", header=None)[0] if isinstance(v, str)]
    line = next(x for x in ov if x.startswith("Margin P10"))
    m = re.match(rf"^Margin P10 (?P<m10>{MONEY}), P50 (?P<m50>{MONEY}), P90 (?P<m90>{MONEY}) \(revenue − cost\); "
                 rf"objective P10 (?P<o10>{MONEY}), P50 (?P<o50>{MONEY}), P90 (?P<o90>{MONEY}) \(margin less "
                 r"shortfall penalties\)\.$", line)
    assert m, line
    for key, col in (("m", "margin"), ("o", "objective")):
        for q in (10, 50, 90):
            same(m[f"{key}{q}"], float(np.percentile(samples[col].astype(float), q)), f"{col} P{q}")
    assert not np.allclose(samples["margin"].astype(float), samples["objective"].astype(float))
    risks = [x for x in ov if "chance its fill rate falls below" in x]
    for x in risks:
        r = re.match(r"^(?P<p>.+): (?P<c>\d+%) chance its fill rate falls below 90% \(P10 (?P<a>[\d.]+%), P50 "
                     r"(?P<b>[\d.]+%)\)\.$", x)
        a = samples[f"fill_rate[{r['p']}]"].astype(float)
        pct_same(r["c"], float((a < 0.9).mean()), "risk")
        pct_same(r["a"], float(np.percentile(a, 10)), "fill P10")
        pct_same(r["b"], float(np.percentile(a, 50)), "fill P50")


def test_sweep_break_points_name_solved_points(tmp_path):
    """Break points name two consecutive solved points by their labels, as the Points table holds them."""
    src, fr = generated(tmp_path, 5, False)
    line = fr["Backend"].iloc[0]
    param = f"Backend[{line['resource']}].units_per_quarter"
    factors = [0.1, 0.5, 1, 2, 4]
    out = tmp_path / "sw-out.xlsx"
    res = CliRunner().invoke(main, ["sweep", str(src), "--param", param, "--values", ",".join(map(str, factors)),
                                    "--op", "scale", "-o", str(out), "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    wb = read(out)
    pts = wb["Points"]
    base = float(line["units_per_quarter"])
    assert list(pts[param]) == pytest.approx([base * f for f in factors])
    assert list(pts[f"{param} × factor"]) == pytest.approx(factors)
    ok = list(pts.loc[pts["status"] == "optimal", param])
    bp = wb["Break points"]
    assert len(bp), "no break point on this sweep: pick a parameter that moves the bottleneck"
    ov = [str(v) for v in pd.read_excel(out, "Overview", header=None)[0] if isinstance(v, str)]
    for r in bp.itertuples():
        assert ok.index(r.to) == ok.index(r._1) + 1
        assert f"Between {param} = {cell(r._1)} and {cell(r.to)}: {r.change}." in ov
