"""HTML for the what-if page: the lever panel, the result panels and their charts (SVG drawn here, in Python).

The charts are drawn server-side as inline SVG in the report's style (served bars #2F5597, demand as a dashed
red line with diamond markers, light grey gridlines, legend below), so the page needs no chart library, no CDN
and no network: the browser receives finished pictures. Every number shown carries its exact value in a
``data-value`` attribute, which the browser tests compare with ``planner solve --json``.

Everything interpolated into HTML goes through :func:`html.escape` (plan names are user data).
"""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

from planner.report.fmt import money, units
from planner.serve.engine import Engine, View
from planner.serve.levers import READINESS_RANGE, SCALE_MAX, SCALE_MIN, SCALE_STEP

BLUE, RED, GREY, GRID = "#2F5597", "#C00000", "#7F7F7F", "#D9D9D9"
CAUSE_COLOURS = {"rd_gate": "#4F81BD", "yield_ramp": "#9BBB59", "fab_capacity": "#C0504D",
                 "backend_capacity": "#8064A2", "economics": "#F79646", "policy": "#4BACC6",
                 "horizon_start": "#A5A5A5"}
OTHER_COLOURS = ["#2C4D75", "#772C2A", "#5F7530", "#4D3B62", "#276A7C", "#B65708"]
CAUSE_NAMES = {"rd_gate": "R&D gate", "yield_ramp": "yield ramp", "fab_capacity": "fab capacity",
               "backend_capacity": "back-end capacity", "economics": "economics", "policy": "policy",
               "horizon_start": "horizon start"}
MAX_CHART_PLATFORMS = 12  # as the report: larger plans chart the platforms with the most demand
MAX_LEVER_ROWS_OPEN = 12  # lever groups longer than this start folded


def e(x: object) -> str:
    return escape(str(x), quote=True)


# ---- numbers ---------------------------------------------------------------------------------------------------
def _signed(v: float, fmt) -> str:
    if abs(v) < 1e-9:
        return "±0"
    return ("+" if v > 0 else "−") + fmt(abs(v))


def _delta(kind: str, v: float | None, base: float | None, cur: str, up_is_good: bool = True) -> str:
    if v is None or base is None:
        return ""
    d = v - base
    if kind == "pct":
        text = "±0 pts" if abs(d) < 5e-5 else ("+" if d > 0 else "−") + f"{abs(d) * 100:.1f} pts"
    elif kind == "money":
        text = _signed(d, lambda x: money(x, cur))
    else:
        text = _signed(d, units)
    good = d > 1e-9 if up_is_good else d < -1e-9
    bad = d < -1e-9 if up_is_good else d > 1e-9
    cls = "good" if good else ("bad" if bad else "same")
    return f'<span class="delta {cls}" data-delta="{d!r}">{e(text)} vs base</span>'


def figure_cards(engine: Engine, v: View) -> str:
    if not v.figures:
        return ""
    base = engine.base.figures if engine.base else {}
    cur = engine.plan.settings.currency
    cards = [
        ("margin", "Margin", "revenue − cost", "money"),
        ("objective", "Objective", "margin − shortfall penalty (what the LP maximises)", "money"),
        ("fill_rate", "Fill rate", "platform units served / demanded", "pct"),
        ("served_units", "Served", "platform units over the horizon", "units"),
        ("revenue", "Revenue", "", "money"),
        ("cost", "Cost", "wafers, units, holding, expansions", "cost_money"),
    ]
    out = []
    for key, title, sub, kind in cards:
        val = v.figures.get(key)
        if val is None:
            shown = "n/a"
        elif kind == "pct":
            shown = f"{val:.1%}"
        elif kind in ("money", "cost_money"):
            shown = money(val, cur)
        else:
            shown = units(val)
        delta = _delta("money" if kind == "cost_money" else kind, val, base.get(key), cur,
                       up_is_good=kind != "cost_money")
        out.append(f'<div class="card" id="fig-{key}"><div class="ct">{e(title)}</div>'
                   f'<div class="cv" data-key="{key}" data-value="{val!r}">{e(shown)}</div>'
                   f'<div class="cs">{e(sub)}</div>{delta}</div>')
    return "".join(out)


# ---- SVG -------------------------------------------------------------------------------------------------------
def nice_ticks(top: float, n: int = 4) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 × 10^k) up to at least ``top``."""
    if not np.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    k = math.ceil(top / step - 1e-9)
    return [i * step for i in range(k + 1)]


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def served_chart(platform: str, periods: list[str], demand: np.ndarray, served: np.ndarray,
                 base_served: np.ndarray | None) -> str:
    """One platform's served (bars) vs demand (dashed red line, diamonds) per quarter, as the report draws it."""
    W, H, L, R, T, B = 330, 180, 44, 8, 8, 46
    pw, ph = W - L - R, H - T - B
    top = max(float(demand.max(initial=0)), float(served.max(initial=0)),
              float(base_served.max(initial=0)) if base_served is not None else 0.0)
    ticks = nice_ticks(top)
    ymax = ticks[-1] or 1.0
    n = max(len(periods), 1)
    slot = pw / n
    bw = slot * 0.62

    def y(v: float) -> float:
        return T + ph - ph * v / ymax

    parts = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
             f'aria-label="{e(platform)}: served vs demand">']
    for t in ticks:
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{GRID}"/>'
                     f'<text x="{L - 4}" y="{y(t) + 3:.1f}" text-anchor="end" class="tk">{_tick_label(t)}</text>')
    for i, (p, s) in enumerate(zip(periods, served, strict=True)):
        x = L + i * slot + (slot - bw) / 2
        h = ph * float(s) / ymax
        parts.append(f'<rect x="{x:.1f}" y="{T + ph - h:.1f}" width="{bw:.1f}" height="{max(h, 0):.1f}" '
                     f'fill="{BLUE}"><title>{e(p)}: served {units(float(s))}</title></rect>')
        if i % max(1, math.ceil(n / 6)) == 0:
            parts.append(f'<text x="{L + (i + 0.5) * slot:.1f}" y="{T + ph + 12}" text-anchor="middle" '
                         f'class="tk">{e(p)}</text>')
    if base_served is not None and np.abs(base_served - served).max(initial=0) > 0.5:
        pts = " ".join(f"{L + (i + 0.5) * slot:.1f},{y(float(b)):.1f}" for i, b in enumerate(base_served))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{GREY}" stroke-width="1.5" '
                     'stroke-dasharray="2 2"/>')
    pts = [(L + (i + 0.5) * slot, y(float(d))) for i, d in enumerate(demand)]
    parts.append(f'<polyline points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" fill="none" stroke="{RED}" '
                 'stroke-width="2" stroke-dasharray="6 3"/>')
    for (a, b), p, d in zip(pts, periods, demand, strict=True):
        parts.append(f'<path d="M{a:.1f},{b - 4:.1f} L{a + 4:.1f},{b:.1f} L{a:.1f},{b + 4:.1f} L{a - 4:.1f},{b:.1f} Z" '
                     f'fill="{RED}"><title>{e(p)}: demand {units(float(d))}</title></path>')
    ly = H - 14
    parts.append(f'<rect x="{L}" y="{ly - 8}" width="10" height="8" fill="{BLUE}"/>'
                 f'<text x="{L + 14}" y="{ly}" class="lg">served</text>'
                 f'<line x1="{L + 62}" x2="{L + 82}" y1="{ly - 4}" y2="{ly - 4}" stroke="{RED}" stroke-width="2" '
                 f'stroke-dasharray="6 3"/><text x="{L + 86}" y="{ly}" class="lg">demand</text>')
    if base_served is not None and np.abs(base_served - served).max(initial=0) > 0.5:
        parts.append(f'<line x1="{L + 134}" x2="{L + 154}" y1="{ly - 4}" y2="{ly - 4}" stroke="{GREY}" '
                     f'stroke-width="1.5" stroke-dasharray="2 2"/><text x="{L + 158}" y="{ly}" class="lg">'
                     'served in the base plan</text>')
    parts.append("</svg>")
    return "".join(parts)


def served_panel(engine: Engine, v: View) -> str:
    if v.platforms is None:
        return ""
    periods = list(engine.plan.periods)
    svc = v.service
    base = engine.base
    base_svc = base.service if base is not None and base.service is not None else None
    base_tot = base.platforms.set_index("platform") if base is not None and base.platforms is not None else None
    plats = v.platforms
    note = ""
    if len(plats) > MAX_CHART_PLATFORMS:
        keep = set(plats.sort_values("demand", ascending=False)["platform"].head(MAX_CHART_PLATFORMS))
        note = (f'<p class="note">The {MAX_CHART_PLATFORMS} platforms with the most demand (of {len(plats)}); '
                "the report has every one.</p>")
        plats = plats[plats["platform"].isin(keep)]
    out = [note, '<div class="grid">']
    for r in plats.itertuples():
        g = svc[svc["platform"] == r.platform].set_index("period")
        d = g["demand"].reindex(periods).fillna(0).to_numpy()
        s = g["served"].reindex(periods).fillna(0).to_numpy()
        bs = None
        delta = ""
        if base_svc is not None:
            bg = base_svc[base_svc["platform"] == r.platform].set_index("period")
            bs = bg["served"].reindex(periods).fillna(0).to_numpy()
            if base_tot is not None and r.platform in base_tot.index:
                dd = r.served - float(base_tot.loc[r.platform, "served"])
                cls = "good" if dd > 0.5 else ("bad" if dd < -0.5 else "same")
                delta = f' <span class="delta {cls}" data-delta="{dd!r}">{e(_signed(dd, units))} vs base</span>'
        fr = "" if pd.isna(r.fill_rate) else f" ({r.fill_rate:.1%})"
        out.append(f'<figure class="plat" data-platform="{e(r.platform)}" data-served="{r.served!r}" '
                   f'data-demand="{r.demand!r}" data-shortfall="{r.shortfall!r}">'
                   f'<figcaption><b>{e(r.platform)}</b>: served {units(r.served)} of {units(r.demand)}{fr}'
                   f"{delta}</figcaption>{served_chart(r.platform, periods, d, s, bs)}</figure>")
    out.append("</div>")
    return "".join(out)


def _cause_colour(cause: str, seen: list[str]) -> str:
    if cause in CAUSE_COLOURS:
        return CAUSE_COLOURS[cause]
    if cause not in seen:
        seen.append(cause)
    return OTHER_COLOURS[seen.index(cause) % len(OTHER_COLOURS)]


def causes_chart(causes: pd.DataFrame) -> str:
    """Shortfall by cause per platform: stacked horizontal bars (the report's last chart)."""
    piv = causes.pivot_table(index="platform", columns="cause", values="units", aggfunc="sum").fillna(0)
    piv = piv.loc[piv.sum(axis=1).sort_values(ascending=False).index[:MAX_CHART_PLATFORMS * 2]]
    order = [c for c in CAUSE_COLOURS if c in piv.columns] + [c for c in piv.columns if c not in CAUSE_COLOURS]
    piv = piv[order]
    W, L, R, T = 680, 150, 16, 8
    bh, gap = 20, 8
    H = T + len(piv) * (bh + gap) + 50
    pw = W - L - R
    ticks = nice_ticks(float(piv.sum(axis=1).max()))
    xmax = ticks[-1] or 1.0
    seen: list[str] = []
    parts = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="shortfall by cause">']
    plot_bottom = T + len(piv) * (bh + gap)
    for t in ticks:
        x = L + pw * t / xmax
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{plot_bottom}" stroke="{GRID}"/>'
                     f'<text x="{x:.1f}" y="{plot_bottom + 12}" text-anchor="middle" class="tk">{_tick_label(t)}</text>')
    for i, (plat, row) in enumerate(piv.iterrows()):
        yy = T + i * (bh + gap)
        parts.append(f'<text x="{L - 6}" y="{yy + bh * 0.7:.1f}" text-anchor="end" class="lb">{e(plat)}</text>')
        x = L
        for cause, u in row.items():
            if u <= 0:
                continue
            w = pw * u / xmax
            parts.append(f'<rect x="{x:.1f}" y="{yy}" width="{w:.1f}" height="{bh}" '
                         f'fill="{_cause_colour(cause, seen)}"><title>{e(plat)}: {e(cause)} {units(u)} units'
                         "</title></rect>")
            x += w
    parts.append(f'<text x="{L + pw / 2:.1f}" y="{plot_bottom + 26}" text-anchor="middle" class="tk">platform units '
                 "short</text>")
    lx = L
    for cause in piv.columns:
        label = CAUSE_NAMES.get(cause, cause)
        parts.append(f'<rect x="{lx}" y="{H - 14}" width="10" height="8" fill="{_cause_colour(cause, seen)}"/>'
                     f'<text x="{lx + 14}" y="{H - 6}" class="lg">{e(label)}</text>')
        lx += 22 + 6.5 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def causes_panel(engine: Engine, v: View) -> str:
    if not v.ok:
        return ""
    if not v.explained:
        if engine.auto_explain:
            return '<p class="wait">explaining the shortfall…</p>'
        return ('<p class="note">Explaining shortfalls re-solves this '
                f"{engine.n_cols:,}-column plan many times (seconds to minutes).</p>"
                '<button type="button" class="explain-btn">Explain shortfalls and what would help</button>')
    if v.causes is None or v.causes.empty:
        short = v.figures.get("shortfall_units") or 0.0
        if short > 0.5:
            return f"<p>{units(short)} platform units short; no cause could be attributed.</p>"
        return "<p>No platform falls short: every unit of demand is served.</p>"
    by = v.causes.groupby("platform", sort=False)["units"].sum()
    rows = "".join(f'<li data-platform="{e(p)}" data-units="{u!r}">{e(s)}</li>'
                   for (p, u), s in zip(by.items(), v.cause_sentences, strict=False))
    return causes_chart(v.causes) + f'<ul class="sentences">{rows}</ul>'


def binds_panel(engine: Engine, v: View) -> str:
    if v.binds is None:
        return ""
    cur = engine.plan.settings.currency
    base = engine.base.binds if engine.base is not None and engine.base.binds is not None else None
    base_set = set(base["resource"]) if base is not None else set()
    now = set(v.binds["resource"])
    if v.binds.empty:
        body = ("<p>No capacity constraint binds: supply is limited only by R&amp;D readiness, economics or "
                "demand.</p>")
    else:
        rows = []
        for r in v.binds.itertuples():
            unit = "wafer" if r.kind == "fab" else "unit"
            new = ' <span class="badge">new</span>' if base is not None and r.resource not in base_set else ""
            span = r.first if r.quarters == 1 else f"{r.first}–{r.last}"
            if r.platforms is None:  # searched with the causes (automatically below AUTO_ANALYSIS_MAX_COLS)
                plats = '<span class="wait">…</span>' if engine.auto_explain else "(with the explanation)"
            else:
                plats = e(r.platforms)
            rows.append(f'<tr data-resource="{e(r.resource)}"><td>{e(r.resource)}{new}</td><td>{e(r.kind)}</td>'
                        f"<td>{r.quarters} ({e(span)})</td><td class=\"num\" data-value=\"{r.top_price!r}\">"
                        f"{e(money(r.top_price, cur))} per {unit}</td><td>{plats}</td></tr>")
        body = ('<table class="tbl"><thead><tr><th>resource</th><th>kind</th><th>quarters binding</th>'
                "<th>one more is worth up to</th><th>platforms short there</th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>")
    gone = sorted(base_set - now) if base is not None else []
    if gone:
        body += f'<p class="note">No longer binding (binds in the base plan): {e(", ".join(gone))}.</p>'
    return body


def help_panel(engine: Engine, v: View) -> str:
    if not v.ok:
        return ""
    if not v.helped:
        if v.explained and (v.causes is None or v.causes.empty):
            return "<p>Nothing to close: no platform falls short.</p>"
        return '<p class="wait">looking for the change that would close each shortfall…</p>' if (
            engine.auto_explain or v.explained) else ""
    if v.fixes is None or v.fixes.empty:
        if v.causes is None or v.causes.empty:
            return "<p>Nothing to close: no platform falls short.</p>"
        return "<p>None of the plan's own levers (R&amp;D, +10% capacity, larger expansions) closes a shortfall.</p>"
    return '<ul class="sentences">' + "".join(
        f'<li data-platform="{e(r.platform)}">{e(r.sentence)}</li>' for r in v.fixes.itertuples()) + "</ul>"


def words_panel(v: View) -> str:
    """The headline `planner solve` prints for these levers, less what the panels above already say."""
    shown = set(v.cause_sentences)
    if v.fixes is not None and len(v.fixes):
        shown |= {"What would help: " + s for s in v.fixes["sentence"]}
    lines = [ln for ln in v.lines if ln not in shown]
    if not lines and v.ok and v.pending:
        return '<p class="wait">…</p>'
    return "".join(f"<p>{e(ln)}</p>" for ln in lines)


def messages_panel(engine: Engine, v: View) -> str:
    out = []
    if v.errors:
        out.append('<div class="msg err"><b>These edits do not apply</b> (the same check as '
                   "<code>planner solve --set</code>; nothing was solved):<ul>"
                   + "".join(f"<li>{e(m)}</li>" for m in v.errors) + "</ul></div>")
    elif v.run is not None and not v.run.solution.has_solution:
        what = {"infeasible": "The plan is infeasible with these levers",
                "time_limit": f"The solver stopped at the time limit ({engine.time_limit:g} s) without a solution"
                }.get(v.status, f"The solver stopped without a solution ({v.status})")
        out.append(f'<div class="msg err"><b>{e(what)}.</b>' + "".join(f"<p>{e(ln)}</p>" for ln in v.lines)
                   + "</div>")
    elif v.status == "error":
        out.append(f'<div class="msg err"><b>The solve failed:</b> {e(v.message)}</div>')
    elif v.status not in ("optimal", "invalid"):
        out.append(f'<div class="msg warn">Solver status is {e(v.status)}: figures are the best solution found, '
                   "not an optimum.</div>")
    if v.message and v.status in ("optimal",) and v.message.startswith("the explanation failed"):
        out.append(f'<div class="msg warn">{e(v.message)}</div>')
    return "".join(out)


def command_panel(engine: Engine, v: View) -> str:
    cmd = engine.command(v)
    sets = "".join(f"<li><code>{e(s)}</code></li>" for s in v.sets) or "<li>(none: the base plan)</li>"
    scen = f"<p>Starting from scenario <b>{e(v.scenario)}</b> of the Scenarios sheet.</p>" if v.scenario else ""
    return (f'{scen}<ul class="sets">{sets}</ul><div class="cmdrow"><code id="cmd">{e(cmd)}</code>'
            '<button type="button" id="copy">copy</button></div>')


def panels(engine: Engine, v: View) -> dict[str, str]:
    """Every result panel's inner HTML, by element id."""
    return {"messages": messages_panel(engine, v), "figures": figure_cards(engine, v),
            "command": command_panel(engine, v), "served": served_panel(engine, v),
            "causes": causes_panel(engine, v), "binds": binds_panel(engine, v), "help": help_panel(engine, v),
            "words": words_panel(v)}


def payload(engine: Engine, v: View, seq: int) -> dict:
    """What the page receives for one lever state: panels, exact figures, the --set texts, what is pending."""
    figs = {k: (x if x is None or math.isfinite(x) else None) for k, x in v.figures.items()}  # JSON has no NaN
    return {"seq": seq, "status": v.status, "errors": v.errors, "figures": figs, "sets": v.sets,
            "scenario": v.scenario, "command": engine.command(v), "panels": panels(engine, v),
            "pending": v.pending if (engine.auto_explain or v.explained) else "",
            "seconds": {k: round(x, 4) for k, x in v.seconds.items()}}


# ---- the page ----------------------------------------------------------------------------------------------------
def _slider(group: str, name: str, lo: float, hi: float, step: float, value: float, note: str = "",
            ready: str = "") -> str:
    """One lever: a slider and a number box (which accepts values beyond the slider's range)."""
    shown = name.replace("|", "/") if group == "fabs" else name  # FAB-A/1b as the report writes it
    extra = f' data-ready="{e(ready)}"' if ready else ""
    return (f'<div class="lever" data-group="{group}" data-name="{e(name)}"{extra}><label>{e(shown)}'
            f'{f" <small>{e(note)}</small>" if note else ""}</label>'
            f'<input type="range" min="{lo}" max="{hi}" step="{step}" value="{value}" '
            f'aria-label="{e(name)}">'
            f'<input type="number" step="{step}" value="{value}" aria-label="{e(name)} value"></div>')


def _group(title: str, hint: str, body: list[str], filterable: bool) -> str:
    opened = " open" if len(body) <= MAX_LEVER_ROWS_OPEN else ""
    filt = ('<input type="search" class="filter" placeholder="filter…" aria-label="filter">'
            if filterable and len(body) > MAX_LEVER_ROWS_OPEN else "")
    return (f'<details{opened}><summary>{e(title)} <small>({len(body)})</small></summary>'
            f'<p class="hint">{e(hint)}</p>{filt}{"".join(body)}</details>')


def levers_html(engine: Engine) -> str:
    lv = engine.levers
    out = ['<div class="lever-top">']
    opts = '<option value="">(none: the plan as it is)</option>' + "".join(
        f'<option value="{e(s)}">{e(s)}</option>' for s in lv.scenarios)
    out.append(f'<label>Start from scenario<select id="scenario">{opts}</select></label>')
    pol = "".join(f'<option value="{p}"{" selected" if p == lv.base_policy else ""}>{p}</option>'
                  for p in lv.policies)
    out.append(f'<label>Policy<select id="policy">{pol}</select></label>')
    out.append(f'<label class="chk"><input type="checkbox" id="backlog"{" checked" if lv.base_backlog else ""}>'
               " Backlog (unmet demand carries to the next quarter)</label></div>")
    if lv.programs:
        out.append(_group("R&D readiness", "quarters later (+) or earlier (−) than planned",
                          [_slider("programs", p, -READINESS_RANGE, READINESS_RANGE, 1, 0, f"ready {q}", ready=q)
                           for p, q in lv.programs.items()], True))
    if lv.fabs:
        out.append(_group("Fab/node capacity", "wafer capacity × factor (every quarter, overrides included)",
                          [_slider("fabs", f, SCALE_MIN, SCALE_MAX, SCALE_STEP, 1) for f in lv.fabs], True))
    if lv.backend:
        out.append(_group("Back-end capacity", "units per quarter × factor",
                          [_slider("backend", b, SCALE_MIN, SCALE_MAX, SCALE_STEP, 1) for b in lv.backend], True))
    if lv.platforms:
        out.append(_group("Platform demand", "demand × factor (every quarter)",
                          [_slider("demand", p, SCALE_MIN, SCALE_MAX, SCALE_STEP, 1) for p in lv.platforms], True))
    out.append('<details><summary>More edits (<code>--set</code>)</summary><p class="hint">One expression a line, '
               'the CLI\'s grammar: <code>Sheet[key].column = value</code>, <code>+= amount</code>, '
               '<code>*= factor</code>, <code>Settings.key = value</code>. Applied when you leave the box '
               '(or Ctrl+Enter).</p><textarea id="sets" rows="4" spellcheck="false" '
               'placeholder="Products[HBM4-12H-36GB].price*=0.9"></textarea></details>')
    out.append('<div class="lever-actions"><button type="button" id="reset">Reset to the base plan</button></div>')
    return "".join(out)


def page(engine: Engine, v: View | None, token_note: str = "", state: dict | None = None) -> str:
    """The whole page; ``state`` is the session's lever state, which the script puts back into the controls."""
    import json

    name = engine.path.name
    if not engine.interactive:
        status = (f"This plan has {engine.n_cols:,} LP columns: above {engine.max_columns:,} one solve takes too "
                  "long for a page that answers as you move a lever, so this page does not solve. Set the levers "
                  "and run the command it shows, or use the batch commands below (they run scenarios in parallel "
                  "and keep what finished). <code>planner serve --max-columns N</code> raises the limit.")
        body = f'<div class="msg warn" id="toobig">{status}</div>'
    else:
        body = ""
    if v is None:  # the page that composes commands: only the command panel has something to show
        from planner.serve.engine import View as _View

        p = {"command": command_panel(engine, _View(state={}, scenario="", sets=[]))}
    else:
        p = panels(engine, v)
        p["_pending"] = v.pending if (engine.auto_explain or v.explained) else ""
    batch = ""
    results = ""
    if engine.interactive:
        results = f"""<section><h2>Served vs demand per platform</h2><div id="served">{p.get("served", "")}</div></section>
<section><h2>Shortfall by cause</h2><div id="causes">{p.get("causes", "")}</div></section>
<section><h2>What binds</h2><div id="binds">{p.get("binds", "")}</div></section>
<section><h2>What would help</h2><div id="help">{p.get("help", "")}</div></section>
<section><h2>In words</h2><div id="words" class="words">{p.get("words", "")}</div></section>"""
    if not engine.interactive:
        q = e(engine.path)
        lv = engine.levers
        param = (f"Programs[{next(iter(lv.programs))}].qualification_quarters" if lv.programs else
                 f"Demand[{lv.platforms[0]}|*].units" if lv.platforms else "Settings.horizon_quarters")
        values = "--values 0,1,2,3" if lv.programs else "--range 0.8:1.2:0.1"
        batch = ("<section><h2>Batch commands</h2><ul class=\"sets\">"
                 f"<li><code>planner compare {q} --all-scenarios</code>: every scenario of the sheet side by side</li>"
                 f"<li><code>planner sweep {q} --param {e(repr(param))} {values}"
                 "</code>: one parameter over a range</li>"
                 f"<li><code>planner montecarlo {q} --samples 500</code>: the Uncertainty sheet's spread</li>"
                 "<li>add <code>--scheduler tcp://HOST:8786</code> to run any of them on a Dask cluster</li>"
                 "</ul></section>")
    mode = "interactive" if engine.interactive else "batch"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>planner what-if — {e(name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<link rel="stylesheet" href="static/page.css"></head>
<body data-mode="{mode}" data-seq="0" data-busy="0" data-explaining="0" data-auto-explain="{int(engine.auto_explain)}"
 data-pending="{e(p.get("_pending", ""))}" data-state="{e(json.dumps(state or {}))}" data-file="{e(name)}">
<header><h1>What if … <span class="file">{e(name)}</span></h1>
<p class="sub">{engine.n_cols:,} LP columns · {"every change re-solves from the kept model" if engine.interactive
 else "too big to re-solve on every change: the levers compose commands"} · all data hypothetical{e(token_note)}</p><span id="status" class="status" aria-live="polite"></span></header>
<main><aside id="levers">{levers_html(engine)}</aside>
<div id="results">{body}
<div id="messages">{p.get("messages", "")}</div>
{'<section class="cards" id="figures">' + p.get("figures", "") + "</section>" if engine.interactive else ""}
<section><h2>As a command</h2><div id="command">{p.get("command", "")}</div>
<div class="actions"><label>Scenario name <input type="text" id="scen-name" maxlength="100" placeholder="my what-if">
</label><label class="chk"><input type="checkbox" id="to-input"> write into {e(name)} itself</label>
<button type="button" id="save">Save as scenario</button>
<button type="button" id="download"{"" if engine.interactive else " disabled"}>Download report</button></div>
<div id="save-result" aria-live="polite"></div></section>
{batch}
{results}
</div></main>
<script src="static/page.js"></script></body></html>"""
