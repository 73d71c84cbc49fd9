"""The front door of the input stage: read, validate, then check the Scenarios and Uncertainty rows by applying
them once — a scenario or uncertain cell naming an unknown sheet, key or column is an input error like any other.

Kept apart from ``validate`` because applying an edit validates the edited plan again (``scenarios`` builds on
``validate``, never the other way round).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from planner.io.csvdir import located, read_csv_folder
from planner.io.problems import Problem, ValidationFailed
from planner.io.reader import Limits, RawWorkbook, read_workbook
from planner.io.scenarios import check_scenarios
from planner.io.uncertainty import check_uncertainty
from planner.io.validate import PlanData, sort_key, validate, validate_frames


def check_edits(plan: PlanData) -> PlanData:
    """Raise :class:`ValidationFailed` (with the plan's warnings) if a Scenarios or Uncertainty row cannot apply."""
    problems: list[Problem] = []
    if len(plan.scenarios):
        problems += check_scenarios(plan)
    if len(plan.uncertainty):
        problems += check_uncertainty(plan)
    if problems:
        raise ValidationFailed(sorted(plan.warnings + problems, key=sort_key))
    return plan


def load_plan(path: str | Path, limits: Limits | None = None, raw: RawWorkbook | None = None) -> PlanData:
    """Read and validate a workbook, or a folder of CSV files (one per sheet): the library's front door (raises
    ReadError / ValidationFailed). A folder's problems name the file and line instead of the sheet and cell.
    ``raw``: the workbook at ``path`` already read (:class:`planner.io.reader.ReadAside`), to validate."""
    if raw is not None:
        return check_edits(validate(raw))
    if Path(path).is_dir():
        raw = read_csv_folder(path, limits)
        try:
            plan = check_edits(validate(raw))
        except ValidationFailed as exc:
            raise ValidationFailed(located(exc.problems, raw)) from None
        plan.warnings = located(plan.warnings, raw)
        return plan
    return check_edits(validate(read_workbook(path, limits)))


def plan_from_frames(frames: dict[str, pd.DataFrame], name: str = "<frames>",
                     check_scenarios: bool = True) -> PlanData:
    """Validate sheets given as frames (tests, notebooks), exactly as if they had been read from a workbook."""
    plan = validate_frames(frames, name)
    return check_edits(plan) if check_scenarios else plan
