"""A previous report of the planner, read back as the baseline of ``planner solve --baseline LAST-REPORT.xlsx``.

Only what the report's own contract sheets say is used: Summary (to recognise a planner report), Service,
WaferStarts, Supply (its quarters), and when present PnLByQuarter, ShortfallCauses and Inputs (the data that plan
was made from). The file goes through the same guarded reader as an input workbook. Anything that is not a planner
report — an input workbook, some other workbook — is refused with a message that says what it is instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from planner.io import contract as C
from planner.io.problems import Problem
from planner.io.reader import Limits, RawSheet, ReadError, read_workbook
from planner.periods import horizon_labels, normalise_period

REPORT_SHEETS = {
    "Summary": ["metric", "value"],
    "Service": ["platform", "period", "demand", "served", "shortfall"],
    "WaferStarts": ["fab", "node", "product", "period", "wafers"],
    "Supply": ["product", "period"],
}


@dataclass
class Baseline:
    """A planner report's plan: its quarters, service, wafer starts, and (when present) money, causes and inputs."""

    path: Path
    summary: dict[str, Any]
    periods: list[str]
    service: pd.DataFrame
    wafer_starts: pd.DataFrame
    products: list[str]
    pnl: pd.DataFrame | None = None  # PnLByQuarter: platform, period, revenue, memory_cost, margin, …
    causes: pd.DataFrame | None = None  # ShortfallCauses
    inputs: dict[str, pd.DataFrame] = field(default_factory=dict)  # sheet → table as on the Inputs sheet

    @property
    def name(self) -> str:
        return self.path.name


def _refuse(path: Path, message: str, hint: str = "", sheet: str = "") -> ReadError:
    return ReadError(Problem(code="not_a_report", message=message, sheet=sheet, file=path.name, hint=hint or
                             "pass a report written by planner solve (e.g. plan-report.xlsx)"))


def _frame(sheet: RawSheet) -> pd.DataFrame:
    names = [str(h).strip() if h is not None else f"_{i}" for i, h in enumerate(sheet.header)]
    return pd.DataFrame([list(r) + [None] * (len(names) - len(r)) for _, r in sheet.rows], columns=names)


def _inputs_rows(path: Path, limits: Limits) -> list[tuple[int, tuple]] | None:
    """Every non-blank row of the Inputs sheet at its full width (the raw reader cuts rows to the header's width,
    and this sheet's first row is a one-cell title). The file has passed the reader's checks already."""
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if "Inputs" not in wb.sheetnames:
            return None
        rows = []
        for n, vals in enumerate(wb["Inputs"].iter_rows(values_only=True, max_col=limits.max_columns), start=1):
            vals = tuple(None if isinstance(v, str) and not v.strip() else v for v in vals)
            if any(v is not None for v in vals):
                rows.append((n, vals))
            if len(rows) > limits.max_rows:
                break
        return rows
    finally:
        wb.close()


_BLOCK = re.compile(r"^(?P<name>[A-Za-z]+)(?: \((?P<k>\d+) of (?P<n>\d+)\))?$")


def _inputs(rows: list[tuple[int, tuple]] | None) -> dict[str, pd.DataFrame]:
    """The tables of a report's Inputs sheet: a title cell with the sheet's name (``Products (1 of 2)`` where a
    wide sheet is split into column blocks that repeat its key columns), its header below, rows until a blank
    row (see ``planner.report.writer._write_inputs``). The blocks of one sheet are put back side by side."""
    if rows is None:
        return {}
    known = {"Settings", *(s.name for s in C.SHEETS)}
    out: dict[str, pd.DataFrame] = {}
    i = 0
    while i < len(rows):
        n, vals = rows[i]
        filled = [(c, v) for c, v in enumerate(vals) if v is not None]
        m = _BLOCK.match(filled[0][1]) if len(filled) == 1 and isinstance(filled[0][1], str) else None
        if m and m["name"] in known and i + 1 < len(rows) and rows[i + 1][0] == n + 1:
            col = filled[0][0]
            header = [str(v) for v in rows[i + 1][1][col:]]
            while header and header[-1] == "None":
                header.pop()
            recs = []
            j, prev = i + 2, n + 1
            while j < len(rows) and rows[j][0] == prev + 1:
                recs.append(list(rows[j][1][col: col + len(header)]))
                prev = rows[j][0]
                j += 1
            df = pd.DataFrame(recs, columns=header)
            name = m["name"]
            if name in out and m["k"] and int(m["k"]) > 1:  # a further block: its own columns beside the first's
                df = pd.concat([out[name].reset_index(drop=True),
                                df[[c for c in df.columns if c not in out[name].columns]].reset_index(drop=True)],
                               axis=1)
            out[name] = df
            i = j
        else:
            i += 1
    return {k: (v.drop(columns=["row"]) if "row" in v.columns and k != "Settings" else v) for k, v in out.items()}


def read_baseline(path: str | os.PathLike[str], limits: Limits | None = None) -> Baseline:
    """Read a previous planner report, or raise :class:`ReadError` (code ``not_a_report``) saying why not."""
    path = Path(path)
    if path.is_dir():
        raise _refuse(path, f"{path} is a folder; a baseline is the report workbook a previous planner solve wrote")
    try:
        raw = read_workbook(path, limits)
    except ReadError as exc:  # not even a workbook: say that it was the baseline that could not be read
        exc.problem.message = f"--baseline: {exc.problem.message}"
        exc.problem.file = path.name
        if exc.problem.code == "not_xlsx":
            exc.problem.hint = "pass the .xlsx report a previous planner solve wrote"
        raise
    sheets = raw.sheets
    if "Summary" not in sheets:
        is_input = {"Products", "Demand", "BOM"} <= set(sheets)
        raise _refuse(path, f"{path.name} is not a planner report: it has no Summary sheet"
                      + (" (it looks like an input workbook)" if is_input else ""),
                      hint="pass the report of the previous plan (what planner solve wrote, e.g. plan-report.xlsx), "
                           "not its input" if is_input else "")
    for name, cols in REPORT_SHEETS.items():
        sheet = sheets.get(name)
        header = [str(h).strip() if h is not None else "" for h in (sheet.header if sheet else [])]
        if sheet is None or header[: len(cols)] != cols:
            raise _refuse(path, f"{path.name} is not a planner report: sheet {name!r} "
                          + ("is missing" if sheet is None else "does not have the report's columns"), sheet=name)
    summary = {str(r[0]): r[1] for _, r in sheets["Summary"].rows if r and r[0] is not None}
    if "planner_version" not in summary or "input_sha256" not in summary:
        raise _refuse(path, f"{path.name} is not a planner report: its Summary has no planner_version / input_sha256 "
                      "rows", sheet="Summary")
    if summary.get("objective") is None:
        raise _refuse(path, f"the baseline report's plan is {summary.get('status', 'not solved')}: it has no plan "
                      "to compare with or to freeze", hint="use the report of a plan that solved")
    service = _frame(sheets["Service"])[REPORT_SHEETS["Service"]]
    ws_frame = _frame(sheets["WaferStarts"])
    starts = ws_frame[REPORT_SHEETS["WaferStarts"]].copy()
    if "wafers_lp" in ws_frame.columns:  # the LP's own starts (wafers is rounded for reading): hold exactly those
        starts["wafers"] = ws_frame["wafers_lp"]
    supply = _frame(sheets["Supply"])
    for df in (service, starts, supply):
        df["period"] = df["period"].map(lambda p: normalise_period(p) if isinstance(p, str) else None)
    for col in ("demand", "served", "shortfall"):
        service[col] = pd.to_numeric(service[col], errors="coerce").fillna(0.0)
    starts["wafers"] = pd.to_numeric(starts["wafers"], errors="coerce").fillna(0.0)
    inputs = _inputs(_inputs_rows(path, limits or Limits()))
    periods = _periods(inputs, supply)
    if not periods:
        raise _refuse(path, f"{path.name} is not a planner report: its Supply sheet names no quarters", sheet="Supply")
    pnl = causes = None
    if "PnLByQuarter" in sheets:
        pnl = _frame(sheets["PnLByQuarter"])
        for col in ("revenue", "memory_cost", "margin", "shortfall_penalty"):
            if col in pnl:
                pnl[col] = pd.to_numeric(pnl[col], errors="coerce").fillna(0.0)
    if "ShortfallCauses" in sheets:
        if sheets["ShortfallCauses"].header[:1] == ["platform"]:
            causes = _frame(sheets["ShortfallCauses"])
            causes["units"] = pd.to_numeric(causes["units"], errors="coerce").fillna(0.0)
            causes["resource"] = causes["resource"].fillna("")
        else:  # "No platform falls short in this plan."
            causes = pd.DataFrame(columns=["platform", "period", "shortfall", "cause", "resource", "units"])
    products = sorted({p for p in supply["product"].dropna()})
    return Baseline(path=path, summary=summary, periods=periods, service=service, wafer_starts=starts,
                    products=products, pnl=pnl, causes=causes, inputs=inputs)


def _periods(inputs: dict[str, pd.DataFrame], supply: pd.DataFrame) -> list[str]:
    """The baseline's horizon: from its Settings (Inputs sheet), else the quarters its Supply sheet lists."""
    st = inputs.get("Settings")
    if st is not None and {"key", "value"} <= set(st.columns):
        kv = dict(zip(st["key"], st["value"], strict=True))
        first = normalise_period(str(kv.get("first_period", "")))
        try:
            n = int(float(kv.get("horizon_quarters")))
        except (TypeError, ValueError):
            n = 0
        if first and n > 0:
            return horizon_labels(first, n)
    found = sorted({p for p in supply["period"].dropna()})
    return found
