"""Problems found in an input: one record per problem, with a stable code and the four parts a user needs.

Every stage that can reject input (reader, validation, scenarios) reports through :class:`Problem`, so the
CLI prints them one way and ``--json`` gives scripts the same fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass
class Problem:
    code: str
    message: str
    sheet: str = ""
    row: int | None = None
    column: str = ""
    cell: str = ""
    expected: str = ""
    found: str = ""
    hint: str = ""
    severity: Severity = "error"

    @property
    def where(self) -> str:
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
        return line + f" [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["where"] = self.where
        return d


class ValidationFailed(Exception):
    """Raised when an input has errors; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the input")


def did_you_mean(name: str, candidates: Iterable[str], cutoff: float = 0.75) -> str:
    """Return 'did you mean "X"?' for the closest candidate (case-insensitive), or ''."""
    cands = [str(c) for c in candidates]
    lowered = {c.strip().casefold(): c for c in cands}
    match = difflib.get_close_matches(str(name).strip().casefold(), list(lowered), n=1, cutoff=cutoff)
    return f'did you mean "{lowered[match[0]]}"?' if match else ""


def show(value: Any) -> str:
    """A found value as the user typed it, quoted when it is text and trimmed when it is very long."""
    if value is None:
        return "a blank cell"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
