"""The what-if page's levers, drawn from the plan's own data, and their meaning as ``--set`` expressions.

A lever state is a small JSON object (what the browser sends)::

    {"scenario": "HBM4 slips 1Q",                 # a Scenarios-sheet scenario as the starting point, or ""
     "programs": {"HBM4": 1},                     # readiness: quarters later (+) or earlier (-)
     "fabs": {"FAB-A|1b": 0.9},                   # fab/node wafer capacity scale
     "backend": {"TSV-1": 1.1},                   # back-end line capacity scale
     "demand": {"Vera Rubin": 1.2},               # platform demand scale
     "policy": "priority", "backlog": true,       # Settings
     "sets": ["Products[HBM4-12H-36GB].price*=0.9"]}   # free --set expressions, as typed

:func:`expressions` turns it into the ``--set`` texts of the CLI's edit grammar (:mod:`planner.io.scenarios`),
and the page applies exactly those texts through :func:`~planner.io.scenarios.parse_override` and
:func:`~planner.io.scenarios.apply_edits` — so what the page shows is what
``planner solve INPUT --scenario S --set …`` computes, by construction, and every edit gets the CLI's checks
(an out-of-range value or unknown key is the CLI's message, with its "did you mean").
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from planner.io import contract as C
from planner.io.problems import Problem, ValidationFailed
from planner.io.scenarios import Edit, apply_edits, edits_from_sheet, parse_override, scenario_names
from planner.io.validate import PlanData
from planner.periods import label, ordinal

READINESS_RANGE = 4  # slider range in quarters (the number box accepts more)
SCALE_MIN, SCALE_MAX, SCALE_STEP = 0.5, 1.5, 0.05  # slider range (the number box accepts any factor >= 0)


@dataclass
class LeverSet:
    """The levers one plan offers: names straight from its sheets."""

    scenarios: list[str]
    programs: dict[str, str]  # program -> ready quarter label in the base plan
    fabs: list[str]  # "FAB|node" keys
    backend: list[str]
    platforms: list[str]  # platforms with demand rows
    policies: tuple[str, ...] = C.POLICIES
    base_policy: str = "margin"
    base_backlog: bool = False
    fab_overrides: set[str] = field(default_factory=set)  # fab|node keys with FabCapacity rows
    backend_overrides: set[str] = field(default_factory=set)


def lever_set(plan: PlanData) -> LeverSet:
    from planner.model.sets import ready_quarters
    from planner.periods import index_label

    first = plan.settings.first_period
    ready = {p: index_label(int(t), first) for p, t in
             zip(plan.programs["program"], ready_quarters(plan.programs, first), strict=True)}
    fabs = [f"{f}|{n}" for f, n in zip(plan.fabs["fab"], plan.fabs["node"], strict=True)]
    fc = plan.fab_capacity
    bc = plan.backend_capacity
    demand_plats = set(plan.demand["platform"])
    return LeverSet(
        scenarios=scenario_names(plan), programs=ready, fabs=fabs, backend=list(plan.backend["resource"]),
        platforms=[p for p in plan.platforms["platform"] if p in demand_plats],
        base_policy=plan.settings.policy, base_backlog=bool(plan.settings.backlog),
        fab_overrides={f"{f}|{n}" for f, n in zip(fc["fab"], fc["node"], strict=True)},
        backend_overrides=set(bc["resource"]))


class LeverError(Exception):
    """The lever state itself is malformed (not a bad value for the plan: those are ValidationFailed)."""


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise LeverError(f"{what}: expected a number, found {v!r}")
    try:
        x = float(v)
    except ValueError:
        raise LeverError(f"{what}: expected a number, found {v!r}") from None
    if not math.isfinite(x):
        raise LeverError(f"{what}: expected a finite number, found {v!r}")
    return x


def _fmt(x: float) -> str:
    """A factor as typed by a person: 1.1, not 1.1000000000000001 (the page applies this text, not the float)."""
    s = f"{x:.6g}"
    return s if "e" not in s else repr(x)


def _key(*parts: str) -> str:
    return "|".join(parts)


def _check_name(name: str, choices, what: str) -> str:
    if not isinstance(name, str):
        raise LeverError(f"{what}: expected a name, found {name!r}")
    for c in choices:
        if c.casefold() == name.strip().casefold():
            return c
    raise LeverError(f"{what} {name!r} is not in this plan")


def normalise(state: Any, levers: LeverSet) -> dict:
    """A canonical lever state: known names, numbers as numbers, neutral levers dropped; LeverError if malformed."""
    if not isinstance(state, dict):
        raise LeverError("the lever state must be a JSON object")
    out: dict[str, Any] = {}
    sc = state.get("scenario") or ""
    if sc:
        out["scenario"] = _check_name(sc, levers.scenarios, "scenario")
    for group, names, neutral in (("programs", list(levers.programs), 0.0), ("fabs", levers.fabs, 1.0),
                                  ("backend", levers.backend, 1.0), ("demand", levers.platforms, 1.0)):
        raw = state.get(group) or {}
        if not isinstance(raw, dict):
            raise LeverError(f"{group}: expected an object of name: value")
        vals = {}
        for name, v in raw.items():
            what = {"programs": "program", "fabs": "fab/node", "backend": "back-end line",
                    "demand": "platform"}[group]
            name = _check_name(name, names, what)
            x = _num(v, f"{what} {name}")
            if group == "programs":
                if x != int(x):
                    raise LeverError(f"program {name}: readiness moves by whole quarters, found {v!r}")
                x = int(x)
            if x != neutral:
                vals[name] = x
        if vals:
            out[group] = dict(sorted(vals.items(), key=lambda kv: names.index(kv[0])))
    pol = state.get("policy")
    if pol not in (None, ""):
        pol = _check_name(pol, levers.policies, "policy")
        if pol != levers.base_policy:
            out["policy"] = pol
    bl = state.get("backlog")
    if bl is not None:
        if not isinstance(bl, bool):
            raise LeverError(f"backlog: expected true or false, found {bl!r}")
        if bl != levers.base_backlog:
            out["backlog"] = bl
    sets = state.get("sets") or []
    if isinstance(sets, str):
        sets = sets.splitlines()
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise LeverError("sets: expected a list of --set expressions")
    sets = [s.strip() for s in sets if s.strip()]
    if sets:
        out["sets"] = sets
    return out


def readiness_expressions(plan: PlanData, program: str, quarters: int) -> list[str]:
    """``--set`` texts that make ``program`` ready ``quarters`` later (negative: earlier).

    The same rule as R&D impact's shift (:func:`planner.analysis.rd_impact.shift_program`): a delay lengthens
    qualification; an advance shortens qualification first, then development, then moves the start.
    """
    if quarters == 0:
        return []
    row = plan.programs[plan.programs["program"] == program].iloc[0]
    q, d = int(row["qualification_quarters"]), int(row["development_quarters"])
    k = f"Programs[{program}]"
    if quarters > 0:
        return [f"{k}.qualification_quarters+={quarters}"]
    need = -quarters
    out = []
    take_q = min(q, need)
    if take_q:
        out.append(f"{k}.qualification_quarters-={take_q}")
    need -= take_q
    take_d = min(d, need)
    if take_d:
        out.append(f"{k}.development_quarters-={take_d}")
    need -= take_d
    if need:
        out.append(f"{k}.start_period={label(ordinal(str(row['start_period'])) - need)}")
    return out


def expressions(state: dict, plan: PlanData, levers: LeverSet) -> tuple[list[Edit], list[str]]:
    """The scenario's edits and the levers' ``--set`` texts, in the order the CLI applies them (scenario first).

    ``state`` must be normalised. Readiness is computed against the plan *with the scenario applied* (a scenario
    that delays HBM4 and a lever that advances it compose as they would on the command line).
    Raises ValidationFailed when the scenario's own edits do not apply.
    """
    scen = edits_from_sheet(plan, state["scenario"]) if state.get("scenario") else []
    start = apply_edits(plan, scen, label=f"scenario {state.get('scenario')!r}") if scen else plan
    sets: list[str] = []
    for prog, k in state.get("programs", {}).items():
        sets += readiness_expressions(start, prog, int(k))
    for fab, s in state.get("fabs", {}).items():
        sets.append(f"Fabs[{fab}].wafers_per_quarter*={_fmt(s)}")
        if fab in levers.fab_overrides:
            sets.append(f"FabCapacity[{fab}|*].wafers*={_fmt(s)}")
    for line, s in state.get("backend", {}).items():
        sets.append(f"Backend[{line}].units_per_quarter*={_fmt(s)}")
        if line in levers.backend_overrides:
            sets.append(f"BackendCapacity[{line}|*].units*={_fmt(s)}")
    for plat, s in state.get("demand", {}).items():
        sets.append(f"Demand[{plat}|*].units*={_fmt(s)}")
    if "policy" in state:
        sets.append(f"Settings.policy={state['policy']}")
    if "backlog" in state:
        sets.append(f"Settings.backlog={'true' if state['backlog'] else 'false'}")
    sets += state.get("sets", [])
    return scen, sets


def parse_all(sets: list[str]) -> list[Edit]:
    """Parse every text, collecting every problem (not only the first) as the CLI does."""
    edits, problems = [], []
    for s in sets:
        try:
            edits.append(parse_override(s))
        except ValidationFailed as exc:
            problems += exc.problems
    if problems:
        raise ValidationFailed(problems)
    return edits


def command_line(input_name: str, scenario: str, sets: list[str], command: str = "solve") -> str:
    """The shell command that reproduces the page (POSIX quoting: paste it into a terminal)."""
    parts = ["planner", command, shlex.quote(input_name)]
    if scenario:
        parts += ["--scenario", shlex.quote(scenario)]
    for s in sets:
        parts += ["--set", shlex.quote(s)]
    return " ".join(parts)


def cli_label(scenario: str, sets: list[str]) -> str:
    """The scenario label ``planner solve`` gives these options (its report's Summary 'scenario' row)."""
    return "; ".join([*([scenario] if scenario else []), *sets])


def problem_messages(exc: ValidationFailed | Problem) -> list[str]:
    problems = exc.problems if isinstance(exc, ValidationFailed) else [exc]
    return [p.render() for p in problems if p.severity == "error"] or [p.render() for p in problems]
