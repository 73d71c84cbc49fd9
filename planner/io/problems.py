"""Problems found in an input: one record per problem, with a stable code and the four parts a user needs.

Every stage that can reject input (reader, validation, scenarios) reports through :class:`Problem`, so the
CLI prints them one way and ``--json`` gives scripts the same fields.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

from planner.io.text import look_alike_difference, skeleton

Severity = Literal["error", "warning"]


class Code(StrEnum):
    """Every kind of input problem, one stable short code each (as pandera's ``SchemaErrorReason``).

    Scripts, ``--json`` output and the tests match on these, never on wording. A ``StrEnum`` compares equal to
    its string, so ``problem.code == "unknown_product"`` and ``problem.code == Code.UNKNOWN_PRODUCT`` both hold.
    """

    BAD_BOOL = "bad_bool"
    BAD_CHOICE = "bad_choice"
    BAD_DELIMITER = "bad_delimiter"
    BAD_DISTRIBUTION = "bad_distribution"
    BAD_ENCODING = "bad_encoding"
    BAD_KEY = "bad_key"
    BAD_OVERRIDE = "bad_override"
    AMBIGUOUS_NUMBER = "ambiguous_number"
    BAD_PERIOD = "bad_period"
    CONTROL_CHARACTER = "control_character"
    CORRUPT_FILE = "corrupt_file"
    DECIMAL_COMMA = "decimal_comma"
    DUPLICATE_COLUMN = "duplicate_column"
    DUPLICATE_ID = "duplicate_id"
    DUPLICATE_SHEET = "duplicate_sheet"
    EDIT_OF_ID = "edit_of_id"
    EMPTY_FILE = "empty_file"
    EMPTY_SHEET = "empty_sheet"
    FILE_NOT_FOUND = "file_not_found"
    FILE_TOO_LARGE = "file_too_large"
    FORMULA_WITHOUT_VALUE = "formula_without_value"
    HIDDEN_SHEET = "hidden_sheet"
    ID_TOO_LONG = "id_too_long"
    MISSING_COLUMN = "missing_column"
    MISSING_SETTING = "missing_setting"
    MISSING_SHEET = "missing_sheet"
    MISSING_VALUE = "missing_value"
    NO_ROWS = "no_rows"
    NODE_WITHOUT_FAB = "node_without_fab"
    NOT_A_FILE = "not_a_file"
    NOT_A_NUMBER = "not_a_number"
    NOT_A_REPORT = "not_a_report"
    NOT_AN_INTEGER = "not_an_integer"
    NOT_FINITE = "not_finite"
    NOT_NUMERIC_COLUMN = "not_numeric_column"
    NOT_XLSX = "not_xlsx"
    OUT_OF_RANGE = "out_of_range"
    OUT_OF_SCALE = "out_of_scale"
    PERIOD_OUT_OF_RANGE = "period_out_of_range"
    PERIOD_OUTSIDE_HORIZON = "period_outside_horizon"
    PLATFORM_WITHOUT_BOM = "platform_without_bom"
    RAGGED_ROW = "ragged_row"
    RAMP_FOR_MATURE_PRODUCT = "ramp_for_mature_product"
    STRICT_OOXML = "strict_ooxml"
    STRUCTURAL_UNCERTAINTY = "structural_uncertainty"
    TEXT_TOO_LONG = "text_too_long"
    THOUSANDS_SEPARATOR = "thousands_separator"
    TOO_MANY_ROWS = "too_many_rows"
    UNKNOWN_BACKEND = "unknown_backend"
    UNKNOWN_COLUMN = "unknown_column"
    UNKNOWN_FAB = "unknown_fab"
    UNKNOWN_KEY = "unknown_key"
    UNKNOWN_PLATFORM = "unknown_platform"
    UNKNOWN_PRODUCT = "unknown_product"
    UNKNOWN_PROGRAM = "unknown_program"
    UNKNOWN_SCENARIO = "unknown_scenario"
    UNKNOWN_SETTING = "unknown_setting"
    UNKNOWN_SHEET = "unknown_sheet"
    UNSAFE_XML = "unsafe_xml"
    UNZIPPED_TOO_LARGE = "unzipped_too_large"
    WIP_ABOVE_BACKEND = "wip_above_backend"
    WIP_ABOVE_CAPACITY = "wip_above_capacity"
    WIP_BEFORE_READY = "wip_before_ready"
    WIP_LANDS_BEFORE_HORIZON = "wip_lands_before_horizon"
    WIP_WRONG_NODE = "wip_wrong_node"
    YIELD_OUT_OF_RANGE = "yield_out_of_range"


@dataclass
class Problem:
    code: Code
    message: str
    sheet: str = ""
    row: int | None = None
    column: str = ""
    cell: str = ""
    expected: str = ""
    found: str = ""
    hint: str = ""
    severity: Severity = "error"
    file: str = ""  # a CSV folder's file (``Products.csv``): then ``row`` is its line and ``where`` says so

    def __post_init__(self) -> None:
        self.code = Code(self.code)  # an unlisted code is a bug here, not a new kind of problem

    @property
    def where(self) -> str:
        if self.file:
            return f"{self.file} line {self.row}" if self.row else self.file
        if self.cell:
            return f"{self.sheet}!{self.cell}"
        if self.sheet and self.row:
            return f"{self.sheet} row {self.row}"
        return self.sheet or "file"

    def render(self) -> str:
        parts = [f"{self.severity}: {self.where}"]
        if self.column:
            parts.append(f"column {self.column!r}")
        line = ", ".join(parts) + f": {self.message}"
        if self.expected:
            line += f"; expected {self.expected}"
        if self.found:
            line += f", found {self.found}"
        if self.hint:
            line += f" ({self.hint})"
        return printable(line + f" [{self.code}]")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["code"] = str(self.code)
        d["where"] = self.where
        return d


class ValidationFailed(Exception):
    """Raised when an input has errors; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the input")


def did_you_mean(name: str, candidates: Iterable[str], cutoff: float = 0.75) -> str:
    """Return 'did you mean "X"?' for the closest candidate (case-insensitive), or ''. A candidate that looks the
    same on screen (a Cyrillic "е", a no-break space) is named with the characters that differ: "did you mean
    Vera Rubin?" next to what reads "Vera Rubin" would leave the analyst staring at two equal words."""
    cands = [str(c) for c in candidates]
    twin = next((c for c in cands if skeleton(c) == skeleton(str(name))  # same on screen, and not only by
                 and any(not ch.isascii() for ch in set(c) ^ set(str(name)))), None)  # letter case or spacing
    if twin is not None:
        return f'it looks like "{twin}" but differs in {look_alike_difference(str(name), twin)}: retype it'
    lowered = {c.strip().casefold(): c for c in cands}
    match = difflib.get_close_matches(str(name).strip().casefold(), list(lowered), n=1, cutoff=cutoff)
    return f'did you mean "{lowered[match[0]]}"?' if match else ""


def show(value: Any) -> str:
    """A found value as the user typed it, quoted when it is text and trimmed when it is very long."""
    if value is None:
        return "a blank cell"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def printable(text: str) -> str:
    """Text safe for one terminal line: each non-printing character written as its escape (``\\n``, ``\\x9b``).

    Sheet names, headers and cell values come from the workbook; printed raw, a line feed or a C1 control such
    as U+009B (CSI) in a crafted name could forge an ``error: …`` line or repaint the terminal.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


MAX_LISTED = 200  # problems printed one per line; the rest are counted by code (as compilers do)


def capped(problems: list[Problem], limit: int = MAX_LISTED) -> tuple[list[Problem], Counter[str]]:
    """The first ``limit`` problems, and how many of each code were left out.

    A sheet with a million bad rows would otherwise print a million lines; the first few hundred show the
    pattern, the counts show its extent.
    """
    return problems[:limit], Counter(str(p.code) for p in problems[limit:])
