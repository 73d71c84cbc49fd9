"""The workbook contract, declared once as data.

Every other stage (reader, validation, template, report "Inputs" sheet) asks this module what sheets exist,
which columns they have, their types, units, defaults and allowed ranges. Nothing else hard-codes a column
name, so the contract in ``shared/spec/workbook.md`` maps to exactly one place in the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["str", "int", "float", "bool", "period", "choice"]

MAX_ID_CHARS = 255  # ids, names and labels: longer is a pasting accident, and would not fit a chart title
MAX_TEXT_CHARS = 32_767  # free text and lists: Excel's limit for one cell


@dataclass(frozen=True)
class Column:
    """One column of an input sheet.

    ``required`` means the column header must be present; ``blank_ok`` means a cell may be empty (then
    ``default`` applies). Bounds are inclusive unless ``min_exclusive``. Text is an id (at most
    ``max_chars``, by default ``MAX_ID_CHARS``; no control or invisible characters) unless ``free_text`` (a note:
    any text a cell holds).
    """

    name: str
    kind: Kind
    unit: str = ""
    description: str = ""
    required: bool = True
    blank_ok: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] = ()
    free_text: bool = False
    max_chars: int = MAX_ID_CHARS

    def clamp(self, value: float) -> float:
        """``value`` moved into the column's range (a bound excluded by ``min_exclusive`` becomes 1e-9 inside it),
        whole for integer columns. For drawn values, which must land in range, never for what a user typed."""
        v = float(value)
        if self.min is not None:
            v = max(v, self.min + 1e-9) if self.min_exclusive else max(v, self.min)
        if self.max is not None:
            v = min(v, self.max)
        return int(round(v)) if self.kind == "int" else v

    def expected(self) -> str:
        """Human description of what a cell must hold, used in error messages and the template."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "period":
            return "a quarter label like 2026Q1"
        if self.kind == "bool":
            return "true or false"
        base = {"str": "text", "int": "a whole number", "float": "a number"}[self.kind]
        lo = None
        if self.min is not None:
            lo = f"> {self.min:g}" if self.min_exclusive else f">= {self.min:g}"
        hi = f"<= {self.max:g}" if self.max is not None else None
        rng = " and ".join(x for x in (lo, hi) if x)
        return f"{base} {rng}".strip() if rng else base


@dataclass(frozen=True)
class Sheet:
    """One input sheet: its columns, which of them form the row's id, and whether the sheet is required."""

    name: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]
    required: bool = True
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _nonneg_int(name: str, desc: str, unit: str = "quarters", **kw: Any) -> Column:
    return Column(name, "int", unit=unit, description=desc, min=0, **kw)


POLICIES = ("margin", "priority", "fair_share")
SOLVERS = ("highs", "cbc")
FAMILIES = ("HBM", "LPDDR")
OPS = ("set", "add", "scale")

SETTINGS_KEYS: dict[str, Column] = {
    c.name: c
    for c in (
        Column("first_period", "period", description="First planning quarter", required=True),
        Column("horizon_quarters", "int", unit="quarters", description="Number of quarters planned",
               required=True, min=1, max=200),
        Column("policy", "choice", choices=POLICIES, default="margin", required=False,
               description="margin: maximise margin minus penalties; priority: serve tiers in order, each by "
                           "what its service is worth (one tier = margin), then margin; fair_share: within a "
                           "tier raise the smallest fill rates lexicographically (max-min), tier 1 first, then "
                           "margin"),
        Column("backlog", "bool", default=False, required=False,
               description="true: unmet demand carries to the next quarter; false: it is lost"),
        Column("risk_starts", "bool", default=False, required=False,
               description="true: wafers may start up to cycle_quarters before the program is ready"),
        Column("solver", "choice", choices=SOLVERS, default="highs", required=False,
               description="LP solver: highs (default) or cbc"),
        Column("time_limit_s", "float", unit="s", default=None, required=False, min=0, min_exclusive=True,
               description="Solver time limit in seconds (blank = none)"),
        Column("currency", "str", default="USD", required=False, description="Currency label for money"),
        Column("highs_method", "choice", choices=("auto", "simplex", "ipm"), default="auto", required=False,
               description="HiGHS algorithm (planner extension): auto picks by size"),
        Column("frozen_quarters", "int", unit="quarters", default=0, required=False, min=0, max=200,
               description="With planner solve --baseline: the first N quarters' wafer starts are fixed to the "
                           "baseline report's (the committed zone)"),
    )
}

SETTINGS = Sheet(
    "Settings",
    (
        Column("key", "str", description="Setting name"),
        Column("value", "str", blank_ok=True, description="Setting value"),
        Column("note", "str", required=False, blank_ok=True, description="Free text", free_text=True,
               max_chars=MAX_TEXT_CHARS),
    ),
    keys=("key",),
    description="Planning settings, one key per row",
)

PROGRAMS = Sheet(
    "Programs",
    (
        Column("program", "str", description="R&D program id, e.g. HBM4"),
        Column("start_period", "period", description="Quarter the program started (may precede the horizon)"),
        _nonneg_int("development_quarters", "Quarters of development"),
        _nonneg_int("qualification_quarters", "Quarters of customer qualification"),
    ),
    keys=("program",),
    description="R&D programs: a product ships only once its program is ready",
)

PRODUCTS = Sheet(
    "Products",
    (
        Column("product", "str", description="Memory product id, e.g. HBM4-12H-36GB"),
        Column("family", "choice", choices=FAMILIES, description="HBM or LPDDR"),
        Column("program", "str", blank_ok=True, description="Gating R&D program (blank = already qualified)"),
        Column("node", "str", description="DRAM process node (matches Fabs.node)"),
        Column("gb_per_unit", "float", unit="GB", min=0, min_exclusive=True, description="GB in one unit"),
        Column("dies_per_unit", "float", unit="dies", min=0, min_exclusive=True,
               description="DRAM core dies in one unit"),
        Column("gross_dies_per_wafer", "float", unit="dies/wafer", min=0, min_exclusive=True,
               description="Candidate dies per wafer"),
        Column("die_yield", "float", unit="fraction", min=0, max=1, min_exclusive=True,
               description="Mature front-end die yield (0-1]"),
        Column("assembly_yield", "float", unit="fraction", min=0, max=1, min_exclusive=True,
               description="Stacking/packaging yield (0-1]"),
        _nonneg_int("cycle_quarters", "Quarters from wafer start to finished unit"),
        Column("backend", "str", blank_ok=True, description="Back-end resource used (blank = none)"),
        Column("backend_use", "float", unit="per unit", required=False, blank_ok=True, default=1.0, min=0,
               description="Back-end capacity used per finished unit"),
        Column("unit_cost", "float", unit="money/unit", min=0, blank_ok=True, default=0.0,
               description="Non-wafer cost per finished unit"),
        Column("price", "float", unit="money/unit", min=0, description="Selling price per unit"),
        Column("initial_inventory", "float", unit="units", required=False, blank_ok=True, default=0.0, min=0,
               description="Finished units on hand before the first quarter"),
        Column("holding_cost", "float", unit="money/unit/quarter", required=False, blank_ok=True, default=0.0,
               min=0, description="Cost per unit held at the end of a quarter"),
    ),
    keys=("product",),
    description="Memory products and how they are made",
)

YIELD_RAMP = Sheet(
    "YieldRamp",
    (
        Column("product", "str", description="Product id"),
        _nonneg_int("quarter", "Quarters since ready (0 = ready quarter)"),
        Column("factor", "float", unit="fraction", min=0, max=1, min_exclusive=True,
               description="Multiplies die_yield"),
    ),
    keys=("product", "quarter"),
    required=False,
    description="Yield learning curve after a program is ready",
)

FABS = Sheet(
    "Fabs",
    (
        Column("fab", "str", description="Fab id"),
        Column("node", "str", description="Process node"),
        Column("wafers_per_quarter", "float", unit="wafers/quarter", min=0, description="Wafer start capacity"),
        Column("wafer_cost", "float", unit="money/wafer", min=0, description="Cost of one processed wafer"),
    ),
    keys=("fab", "node"),
    description="Front-end capacity, one row per fab and node",
)

FAB_CAPACITY = Sheet(
    "FabCapacity",
    (
        Column("fab", "str", description="Fab id"),
        Column("node", "str", description="Process node"),
        Column("period", "period", description="Quarter"),
        Column("wafers", "float", unit="wafers/quarter", min=0, description="Capacity in that quarter"),
    ),
    keys=("fab", "node", "period"),
    required=False,
    description="Per-quarter override of Fabs.wafers_per_quarter",
)

EXPANSIONS = Sheet(
    "Expansions",
    (
        Column("fab", "str", description="Fab id"),
        Column("node", "str", description="Process node"),
        _nonneg_int("lead_quarters", "Quarters from decision to usable capacity"),
        Column("max_wafers_per_quarter", "float", unit="wafers/quarter", min=0,
               description="Most capacity this option can add over the horizon"),
        Column("cost_per_wafer", "float", unit="money per wafer/quarter", min=0,
               description="One-time cost per wafer-per-quarter added"),
        Column("earliest_period", "period", required=False, blank_ok=True,
               description="First quarter a decision may be taken (blank = first period)"),
    ),
    keys=(),
    required=False,
    description="Capacity that can be added after a lead time; each row is its own option",
)

WIP = Sheet(
    "WIP",
    (
        Column("fab", "str", description="Fab id"),
        Column("node", "str", description="Process node (the product's node)"),
        Column("product", "str", description="Product the wafers are for"),
        Column("start_period", "period",
               description="Quarter the wafers started: before first_period = in flight (output lands at start + "
                           "cycle_quarters, no wafer cost, no fab capacity); inside the horizon = committed (the "
                           "plan starts at least this many)"),
        Column("wafers", "float", unit="wafers", min=0, description="Wafers started (rows with the same fab, node, "
                                                                    "product and start are added: one row per lot "
                                                                    "is fine)"),
    ),
    keys=(),
    required=False,
    description="Work in progress: wafers in the fab before the horizon, and starts already committed inside it",
)

BACKEND = Sheet(
    "Backend",
    (
        Column("resource", "str", description="Back-end line id, e.g. TSV-1"),
        Column("units_per_quarter", "float", unit="units/quarter", min=0, description="Capacity"),
    ),
    keys=("resource",),
    required=False,
    description="Advanced-packaging lines (TSV stacking, test)",
)

BACKEND_CAPACITY = Sheet(
    "BackendCapacity",
    (
        Column("resource", "str", description="Back-end line id"),
        Column("period", "period", description="Quarter"),
        Column("units", "float", unit="units/quarter", min=0, description="Capacity in that quarter"),
    ),
    keys=("resource", "period"),
    required=False,
    description="Per-quarter override of Backend.units_per_quarter",
)

PLATFORMS = Sheet(
    "Platforms",
    (
        Column("platform", "str", description="Platform id, e.g. Vera Rubin"),
        Column("priority", "int", min=1, description="Priority tier (1 = highest)"),
        Column("shortfall_penalty", "float", unit="money/platform unit", min=0,
               description="Cost per platform unit of demand not served (per quarter waiting, with backlog)"),
        Column("min_fill", "float", unit="fraction", required=False, blank_ok=True, default=0.0, min=0, max=1,
               description="Hard minimum fraction of each quarter's demand served"),
    ),
    keys=("platform",),
    description="Customer platforms",
)

BOM = Sheet(
    "BOM",
    (
        Column("platform", "str", description="Platform id"),
        Column("option", "str", description="BOM option label; options may be mixed"),
        Column("product", "str", description="Memory product id"),
        Column("units_per_platform", "float", unit="units", min=0, min_exclusive=True,
               description="Memory units per platform unit"),
        Column("price", "float", unit="money/unit", required=False, blank_ok=True, min=0,
               description="Price per memory unit for this platform (blank = Products.price)"),
    ),
    keys=("platform", "option", "product"),
    description="Memory needed per platform unit, by option",
)

DEMAND = Sheet(
    "Demand",
    (
        Column("platform", "str", description="Platform id"),
        Column("period", "period", description="Quarter"),
        Column("units", "float", unit="platform units", min=0, description="Platform units wanted"),
    ),
    keys=("platform", "period"),
    description="Platform demand per quarter (missing pairs = 0)",
)

SCENARIOS = Sheet(
    "Scenarios",
    (
        Column("scenario", "str", description="Scenario name"),
        Column("sheet", "str", description="Sheet to edit"),
        Column("key", "str", description="Row id (two-key sheets: a|b; Settings: the key)"),
        Column("column", "str", description="Column to edit"),
        Column("op", "choice", choices=OPS, description="set, add or scale"),
        Column("value", "str", description="New value, amount added, or factor"),
    ),
    keys=(),
    required=False,
    description="What-if edits applied on top of the base data",
)

DISTRIBUTIONS = ("triangular", "normal", "uniform", "discrete")

UNCERTAINTY = Sheet(
    "Uncertainty",
    (
        Column("name", "str", required=False, blank_ok=True, description="Label of the uncertain quantity"),
        Column("sheet", "str", description="Sheet of the uncertain cell(s)"),
        Column("key", "str", description="Row id, as in Scenarios (a|b for two-key sheets; * matches all)"),
        Column("column", "str", description="Column of the uncertain cell(s)"),
        Column("distribution", "choice", choices=DISTRIBUTIONS,
               description="triangular(p1=low, p2=mode, p3=high), normal(p1=mean, p2=sd), uniform(p1=low, "
                           "p2=high), discrete(values, probabilities)"),
        Column("op", "choice", choices=OPS, description="How a draw is applied: set the value, add it, or "
                                                         "scale by it (e.g. demand ~ normal(1, cv) with scale)"),
        Column("p1", "float", required=False, blank_ok=True, description="First parameter"),
        Column("p2", "float", required=False, blank_ok=True, description="Second parameter"),
        Column("p3", "float", required=False, blank_ok=True, description="Third parameter"),
        Column("values", "str", required=False, blank_ok=True, description="discrete: comma-separated values",
               max_chars=MAX_TEXT_CHARS),
        Column("probabilities", "str", required=False, blank_ok=True, max_chars=MAX_TEXT_CHARS,
               description="discrete: comma-separated probabilities (sum 1)"),
    ),
    keys=(),
    required=False,
    description="Uncertain inputs for planner montecarlo (planner extension)",
)

SHEETS: tuple[Sheet, ...] = (
    SETTINGS, PROGRAMS, PRODUCTS, YIELD_RAMP, FABS, FAB_CAPACITY, EXPANSIONS, WIP, BACKEND, BACKEND_CAPACITY,
    PLATFORMS, BOM, DEMAND, SCENARIOS, UNCERTAINTY,
)
SHEETS_BY_NAME: dict[str, Sheet] = {s.name: s for s in SHEETS}

HYPOTHETICAL_NOTICE = (
    "All data in this workbook are HYPOTHETICAL, for illustration only; they are not any company's figures."
)
