"""Raw sheets → validated :class:`PlanData`, or every problem found.

Validation runs in lazy mode (after pandera): each column is parsed and range-checked as a whole, every
failure is collected, cross-sheet references are checked once the sheets parse, and only then is the list
reported, sorted by sheet and row. Defaults from the contract are applied here, so later stages never see a
blank where the contract promises a value.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from planner.io import contract as C
from planner.io.problems import Problem, ValidationFailed, did_you_mean, show
from planner.io.reader import RawSheet, RawWorkbook
from planner.io.text import hidden_chars, look_alike_difference, nfc, number_style, parse_number, skeleton
from planner.io.wip import FrozenZone, check_wip
from planner.periods import (
    FIRST_YEAR,
    LAST_YEAR,
    horizon_labels,
    in_range,
    normalise_period,
    ordinal,
    period_index,
)


@dataclass
class Settings:
    first_period: str
    horizon_quarters: int
    policy: str = "margin"
    backlog: bool = False
    risk_starts: bool = False
    solver: str = "highs"
    time_limit_s: float | None = None
    currency: str = "USD"
    highs_method: str = "auto"
    frozen_quarters: int = 0


@dataclass
class PlanData:
    """A validated plan: typed frames with contract column names (plus ``_row``, the Excel row read from).

    Frames hold every default already applied; ``bom.price`` is filled from ``Products.price``.
    """

    settings: Settings
    programs: pd.DataFrame
    products: pd.DataFrame
    yield_ramp: pd.DataFrame
    fabs: pd.DataFrame
    fab_capacity: pd.DataFrame
    expansions: pd.DataFrame
    backend: pd.DataFrame
    backend_capacity: pd.DataFrame
    platforms: pd.DataFrame
    bom: pd.DataFrame
    demand: pd.DataFrame
    scenarios: pd.DataFrame
    uncertainty: pd.DataFrame = field(default_factory=lambda: _empty(C.UNCERTAINTY))
    wip: pd.DataFrame = field(default_factory=lambda: _empty(C.WIP))
    # the baseline's wafer starts held fixed (`frozen_zone`), set from --baseline (planner.analysis.baseline.freeze)
    frozen: FrozenZone | None = None
    source: str = ""
    sha256: str = ""
    warnings: list[Problem] = field(default_factory=list)
    decimal_comma: bool = False  # the workbook writes decimal commas: "1,000" in an edit is refused as ambiguous

    @property
    def periods(self) -> list[str]:
        return horizon_labels(self.settings.first_period, self.settings.horizon_quarters)

    def frame(self, sheet: str) -> pd.DataFrame:
        return getattr(self, _ATTR[sheet])

    def copy(self) -> PlanData:
        """Deep copy, so scenario edits never leak into the base plan."""
        new = copy.copy(self)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, pd.DataFrame):
                setattr(new, f.name, v.copy())
        new.settings = copy.copy(self.settings)
        new.warnings = list(self.warnings)
        return new


_ATTR = {
    "Programs": "programs", "Products": "products", "YieldRamp": "yield_ramp", "Fabs": "fabs",
    "FabCapacity": "fab_capacity", "Expansions": "expansions", "Backend": "backend",
    "BackendCapacity": "backend_capacity", "Platforms": "platforms", "BOM": "bom", "Demand": "demand",
    "Scenarios": "scenarios", "Uncertainty": "uncertainty", "WIP": "wip",
}

_MIN_ROWS = {"Products", "Fabs", "Platforms", "BOM", "Demand"}
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def _norm(name: object) -> str:
    return nfc(str(name)).strip().casefold() if name is not None else ""


def _col_letter(idx: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(idx + 1)


def parse_value(col: C.Column, value: Any, decimal_comma: bool = False) -> tuple[Any, str | None]:
    """Parse one cell for a column; returns ``(value, None)`` or ``(None, problem_code)``.

    Blank cells come back as ``(None, None)``: whether a blank is allowed is the caller's decision. Text is
    NFC-normalised (one spelling per id); ``decimal_comma`` says the workbook writes decimal commas elsewhere
    (see :func:`planner.io.text.parse_number`).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, None
    kind = col.kind
    if kind == "str":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = nfc(str(value)).strip()
        if not text:
            return None, None
        if len(text) > col.max_chars:
            return None, ("text_too_long" if col.free_text else "id_too_long")
        if not col.free_text and hidden_chars(text):
            return None, "control_character"
        return text, None
    if kind == "choice":
        text = str(value).strip().casefold()
        for c in col.choices:
            if c.casefold() == text:
                return c, None
        return None, "bad_choice"
    if kind == "period":
        p = normalise_period(value) if isinstance(value, str) else None
        if p and not in_range(p):
            return None, "period_out_of_range"
        return (p, None) if p else (None, "bad_period")
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value), None
        text = str(value).strip().casefold()
        if text in _TRUE:
            return True, None
        if text in _FALSE:
            return False, None
        return None, "bad_bool"
    # numbers
    if isinstance(value, bool):
        return None, "not_a_number"
    if isinstance(value, str):
        parsed, err = parse_number(value, decimal_comma)
        if err or parsed is None:
            return None, err or "not_a_number"
        number = parsed
    elif isinstance(value, int | float):
        number = float(value)
    else:  # dates, times
        return None, "not_a_number"
    if not math.isfinite(number):
        return None, "not_finite"
    if number != 0 and not (MIN_MAGNITUDE <= abs(number) <= MAX_MAGNITUDE):
        return number, "out_of_scale"
    if kind == "int":
        if not float(number).is_integer():
            return None, "not_an_integer"
        number = int(number)
    lo_bad = col.min is not None and (number <= col.min if col.min_exclusive else number < col.min)
    hi_bad = col.max is not None and number > col.max
    if lo_bad or hi_bad:
        return number, ("yield_out_of_range" if "yield" in col.name or col.name == "factor" else "out_of_range")
    return number, None


MIN_MAGNITUDE, MAX_MAGNITUDE = 1e-9, 1e12  # beyond these no plan is real, and the LP becomes unsolvable

_MESSAGES = {
    "out_of_scale": "number outside the range planner can solve with",
    "bad_choice": "value not allowed",
    "bad_period": "not a quarter label",
    "period_out_of_range": f"quarter outside the years planner plans ({FIRST_YEAR} to {LAST_YEAR})",
    "ambiguous_number": "number with one separator that could group thousands or mark decimals",
    "control_character": "text with a control or invisible character",
    "id_too_long": "text too long for an id",
    "text_too_long": "text longer than a cell holds",
    "bad_bool": "not a true/false value",
    "not_a_number": "not a number",
    "not_finite": "not a finite number",
    "not_an_integer": "not a whole number",
    "out_of_range": "value out of range",
    "yield_out_of_range": "yield out of range",
}


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, **kw: Any) -> None:
        self.problems.append(Problem(**kw))

    def error(self, code: str, message: str, **kw: Any) -> None:
        self.add(code=code, message=message, severity="error", **kw)

    def warn(self, code: str, message: str, **kw: Any) -> None:
        self.add(code=code, message=message, severity="warning", **kw)


_STATE = {"hidden": "hidden", "veryHidden": "very hidden"}
_UNHIDE = {"hidden": "right-click a sheet tab > Unhide",
           "veryHidden": "a very hidden sheet shows only in the VBA editor (Alt+F11): set its Visible property"}


def _state(sheet: RawSheet) -> str:
    return _STATE.get(sheet.state, sheet.state)


def _match_sheets(raw: RawWorkbook, out: _Collector) -> dict[str, RawSheet]:
    """Contract sheet → the workbook sheet read for it (names match ignoring case and surrounding spaces).

    Two sheets that both match one name are an error naming both: reading either would silently ignore the
    other. A hidden contract sheet is read, with a warning naming it: nobody looking at the workbook sees it.
    """
    by_norm: dict[str, list[RawSheet]] = {}
    for name, sheet in raw.sheets.items():
        by_norm.setdefault(_norm(name), []).append(sheet)
    matched: dict[str, RawSheet] = {}
    duplicated: set[str] = set()
    for spec in C.SHEETS:
        found = by_norm.pop(_norm(spec.name), [])
        if len(found) > 1:
            named = " and ".join(f"{s.name!r}" + (f" ({_state(s)})" if s.state != "visible" else "") for s in found)
            hidden = next((s.state for s in found if s.state in _UNHIDE), None)
            out.error("duplicate_sheet", f"{len(found)} sheets match {spec.name!r}: {named}, so none is read",
                      sheet=spec.name, expected=f"one sheet named {spec.name!r}",
                      hint="delete or rename all but one" + (f"; {_UNHIDE[hidden]}" if hidden else ""))
            duplicated.add(spec.name)  # which one was meant is not known
            continue
        if found:
            matched[spec.name] = found[0]
            if found[0].state != "visible":
                out.warn("hidden_sheet", f"sheet {found[0].name!r} is {_state(found[0])} and is read as part of "
                         "the plan", sheet=found[0].name, hint=_UNHIDE.get(found[0].state, "unhide it"))
    missing = [spec.name for spec in C.SHEETS if spec.name not in matched and spec.name not in duplicated]
    leftovers = {s.name: s for group in by_norm.values() for s in group}
    near: dict[str, str] = {}
    for name in leftovers:
        hint = did_you_mean(name, missing, cutoff=0.7)
        if hint:
            target = hint.split('"')[1]
            near[target] = name
            out.error("unknown_sheet", f"sheet {name!r} is not a planner sheet", sheet=name,
                      expected=f"sheet {target!r}", found=repr(name), hint=hint)
    for name in missing:
        spec = C.SHEETS_BY_NAME[name]
        if spec.required and name not in near:
            out.error("missing_sheet", f"required sheet {name!r} is missing", sheet=name,
                      expected=f"a sheet named {name!r}", found="sheets " + ", ".join(map(repr, raw.sheets)) or "none")
    return matched


def _header_positions(spec: C.Sheet, raw: RawSheet) -> dict[str, int]:
    """Contract column → 0-based position of its (first) header in ``raw``."""
    pos: dict[str, int] = {}
    for i, h in enumerate(raw.header):
        key = _norm(h) if h is not None else None
        col = next((c.name for c in spec.columns if c.name.casefold() == key), None)
        if col is not None:
            pos.setdefault(col, i)
    return pos


def _text_error(col: C.Column, err: str, value: Any) -> dict[str, str]:
    """Message, expected and found of a refused text, with the offending characters or the length named."""
    text = nfc(str(value)).strip()
    if err == "control_character":
        chars = hidden_chars(text)
        named = "; ".join(f"U+{ord(ch):04X} ({what})" for ch, what in chars[:3])
        return {"message": f"text contains {named}: printed, such characters can forge or hide terminal "
                           "output, and on screen the id cannot be told from one without them",
                "expected": "text without control or invisible characters", "found": show(value)}
    return {"message": _MESSAGES[err], "expected": f"at most {col.max_chars:,} characters",
            "found": f"{len(text):,} characters: {show(text[:40])}"}


def _read_table(spec: C.Sheet, raw: RawSheet, out: _Collector, decimal_comma: bool = False,
                decimal_hint: str = "") -> pd.DataFrame | None:
    """Map headers to contract columns, parse every cell, return a typed frame (or None if unusable)."""
    header_pos: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for i, h in enumerate(raw.header):
        if h is None:
            continue
        key = _norm(h)
        match = next((c.name for c in spec.columns if c.name.casefold() == key), None)
        if match is None:
            unknown[str(h)] = i
        elif match in header_pos:
            out.error("duplicate_column", f"column {match!r} appears twice", sheet=spec.name,
                      cell=f"{_col_letter(i)}1", column=match, expected="each column once",
                      found=f"also in {_col_letter(header_pos[match])}1")
        else:
            header_pos[match] = i
    fatal = False
    header_formulas = {c: f for (r, c), f in raw.formulas.items() if r == 1}
    if not raw.header and not header_formulas:
        if spec.required:
            out.error("empty_sheet", "sheet is empty", sheet=spec.name,
                      expected="a header row in row 1: " + ", ".join(spec.column_names), found="nothing")
        return None
    missing_cols = [c for c in spec.columns if c.required and c.name not in header_pos]
    absent = [c.name for c in spec.columns if c.name not in header_pos]
    for i, form in sorted(header_formulas.items()):
        # the header names the column: without its value planner cannot tell which column this is
        where = {"sheet": spec.name, "row": 1, "cell": f"{_col_letter(i)}1", "found": form,
                 "hint": "type the header, or open the file in Excel or LibreOffice and save it once"}
        if absent:  # it may be one of the contract's columns: reading on would silently drop it
            out.error("formula_without_value", "header cell is a formula with no cached value, so its column "
                      "cannot be recognised; it may be " + " or ".join(map(repr, absent)),
                      expected="a header name typed as text", **where)
            fatal = True
        else:
            out.warn("formula_without_value", "header cell is a formula with no cached value; every column "
                     "planner reads is present, so this one is ignored", **where)
    for c in missing_cols if not (header_formulas and absent) else []:
        hint = did_you_mean(c.name, unknown)
        out.error("missing_column", f"required column {c.name!r} is missing", sheet=spec.name, row=1,
                  column=c.name, expected=f"a header {c.name!r} in row 1",
                  found="headers " + ", ".join(repr(str(h)) for h in raw.header if h is not None), hint=hint)
        fatal = True
    fatal = fatal or bool(missing_cols)
    for h, i in unknown.items():
        hint = did_you_mean(h, spec.column_names)
        if hint:
            out.warn("unknown_column", f"column {h!r} is not used and was ignored", sheet=spec.name,
                     cell=f"{_col_letter(i)}1", column=h, found=repr(h), hint=hint)
    if fatal:
        return None

    letters = {name: _col_letter(i) for name, i in header_pos.items()}  # once per sheet, not per cell
    records: list[dict[str, Any]] = []
    for excel_row, values in raw.rows:
        rec: dict[str, Any] = {"_row": excel_row}
        for col in spec.columns:
            pos = header_pos.get(col.name)
            cell_value = values[pos] if pos is not None and pos < len(values) else None
            where = {"sheet": spec.name, "row": excel_row, "column": col.name,
                     "cell": f"{letters[col.name]}{excel_row}" if pos is not None else ""}
            formula = raw.formulas.get((excel_row, pos)) if pos is not None else None
            if formula is not None:  # read by the plan, but its value was never computed
                out.error("formula_without_value", f"formula {formula} has no cached value",
                          expected="a value (the workbook recalculated and saved)", found=formula,
                          hint="open the file in Excel or LibreOffice and save it once", **where)
                rec[col.name] = col.default
                continue
            parsed, err = parse_value(col, cell_value, decimal_comma)
            if err in ("control_character", "id_too_long", "text_too_long"):
                out.error(err, **_text_error(col, err, cell_value), **where)
                parsed = None
            elif err:
                hint = did_you_mean(str(cell_value), col.choices, cutoff=0.6) if col.kind == "choice" else ""
                if col.kind == "period" and not isinstance(cell_value, str):
                    hint = "type the quarter as text, e.g. 2026Q1"
                expected = {"out_of_scale": "0, or a size between 1e-9 and 1e12",
                            "period_out_of_range": f"a quarter from {FIRST_YEAR}Q1 to {LAST_YEAR}Q4",
                            "ambiguous_number": "a number without a thousands separator (1250 or 1.25)",
                            }.get(err, col.expected())
                if err == "ambiguous_number":
                    hint = f"this workbook writes decimal commas elsewhere ({decimal_hint}), so the comma may " \
                           "be one; the dot may group thousands"
                out.error(err, _MESSAGES[err], expected=expected, found=show(cell_value), hint=hint, **where)
                parsed = None
            elif parsed is None and pos is not None and not col.blank_ok:
                out.error("missing_value", "cell is blank", expected=col.expected(), found="a blank cell", **where)
            if parsed is None:
                parsed = col.default
            rec[col.name] = parsed
        records.append(rec)
    return _object_frame(["_row", *spec.column_names], records)


_NUMBER_TEXT_COLUMNS = {"Scenarios": ("value",)}  # text columns that hold numbers typed by hand


def _decimal_commas(matched: dict[str, RawSheet], out: _Collector) -> list[str]:
    """Warn where numbers typed as text use a decimal comma ("8,5" is read as 8.5); return those cells.

    Any such cell shows the workbook writes decimal commas, so a "1,000" elsewhere is ambiguous there.
    """
    cells: list[str] = []
    for spec in C.SHEETS:
        raw = matched.get(spec.name)
        if raw is None:
            continue
        pos = _header_positions(spec, raw)
        numeric = [c.name for c in spec.columns if c.kind in ("int", "float")]
        rows = raw.rows
        if spec.name == "Settings" and "key" in pos:  # only the rows of numeric settings hold numbers
            k = pos["key"]
            rows = [(r, vals) for r, vals in raw.rows if k < len(vals) and getattr(
                C.SETTINGS_KEYS.get(_norm(vals[k])), "kind", "") in ("int", "float")]
            numeric = ["value"]
        for name in [*numeric, *_NUMBER_TEXT_COLUMNS.get(spec.name, ())]:
            if name not in pos:
                continue
            i = pos[name]
            grouped = [(r, v) for r, vals in rows if i < len(vals) and isinstance(v := vals[i], str) and "," in v
                       and number_style(v) in ("grouping", "ambiguous")]
            if grouped:  # never silently: in a decimal-comma locale "1,000" means 1
                r, text = grouped[0]
                value, _ = parse_number(text)
                more = f" (and {len(grouped) - 1:,} more in this column)" if len(grouped) > 1 else ""
                out.warn("thousands_separator", f"number typed as text with a comma: {text.strip()!r} read as "
                         f"{value:g}, the comma grouping thousands{more}", sheet=spec.name, row=r,
                         cell=f"{_col_letter(i)}{r}", column=name,
                         hint="type numbers as numbers to silence this; if the comma is a decimal point, "
                              "write it with a dot")
            hits = [(r, v) for r, vals in rows if i < len(vals) and isinstance(v := vals[i], str)
                    and number_style(v) == "decimal_comma"]
            if not hits:
                continue
            r, text = hits[0]
            value, _ = parse_number(text)
            cell = f"{_col_letter(i)}{r}"
            cells.append(f"{spec.name}!{cell} {text.strip()!r}")
            more = f" (and {len(hits) - 1:,} more in this column)" if len(hits) > 1 else ""
            out.warn("decimal_comma", f"number typed as text with a decimal comma: {text.strip()!r} read as "
                     f"{value:g}{more}", sheet=spec.name, row=r, cell=cell, column=name,
                     hint="type numbers as numbers, or with a dot as the decimal point, to silence this")
    return cells


def _object_frame(cols: list[str], records: list[dict[str, Any]]) -> pd.DataFrame:
    """Frame of object columns, so a blank stays ``None`` (pandas 3 would turn it into NaN in a str column)."""
    return pd.DataFrame({c: pd.Series([r[c] for r in records], dtype=object) for c in cols})


def _empty(spec: C.Sheet) -> pd.DataFrame:
    return _object_frame(["_row", *spec.column_names], [])


def _settings(table: pd.DataFrame | None, out: _Collector, decimal_comma: bool = False) -> Settings | None:
    if table is None:
        return None
    values: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for rec in table.to_dict("records"):
        key = rec["key"]
        if key is None:
            continue
        norm = _norm(key)
        spec = C.SETTINGS_KEYS.get(norm)
        if spec is None:
            hint = did_you_mean(key, C.SETTINGS_KEYS)
            (out.error if hint else out.warn)(
                "unknown_setting", f"setting {key!r} is not known" + ("" if hint else " and was ignored"),
                sheet="Settings", row=rec["_row"], column="key", found=repr(key), hint=hint,
                expected="one of " + ", ".join(C.SETTINGS_KEYS))
            continue
        if norm in seen:
            out.error("duplicate_id", f"setting {spec.name!r} is given twice", sheet="Settings", row=rec["_row"],
                      column="key", found=f"also in row {seen[norm]}", expected="each key once")
            continue
        seen[norm] = rec["_row"]
        parsed, err = parse_value(spec, rec["value"], decimal_comma)
        if err:
            hint = did_you_mean(str(rec["value"]), spec.choices, cutoff=0.6) if spec.kind == "choice" else ""
            expected = (f"a quarter from {FIRST_YEAR}Q1 to {LAST_YEAR}Q4" if err == "period_out_of_range"
                        else spec.expected())
            out.error(err, f"setting {spec.name!r}: {_MESSAGES[err]}", sheet="Settings", row=rec["_row"],
                      column="value", expected=expected, found=show(rec["value"]), hint=hint)
            continue
        if parsed is None:
            if spec.required:
                out.error("missing_value", f"setting {spec.name!r} is blank", sheet="Settings", row=rec["_row"],
                          column="value", expected=spec.expected(), found="a blank cell")
            continue
        values[spec.name] = parsed
    for spec in C.SETTINGS_KEYS.values():
        if spec.required and spec.name not in values and spec.name not in seen:
            out.error("missing_setting", f"required setting {spec.name!r} is missing", sheet="Settings",
                      expected=f"a row with key {spec.name!r} and {spec.expected()}", found="no such row")
    if any(s.required and s.name not in values for s in C.SETTINGS_KEYS.values()):
        return None
    last = ordinal(values["first_period"]) + values["horizon_quarters"] - 1
    if last > ordinal(f"{LAST_YEAR}Q4"):
        out.error("period_out_of_range", f"the horizon from {values['first_period']} for "
                  f"{values['horizon_quarters']} quarters would end after {LAST_YEAR}Q4, the last quarter planner "
                  "plans", sheet="Settings", row=seen.get("horizon_quarters"), column="value",
                  expected=f"a horizon ending by {LAST_YEAR}Q4", found=f"{values['horizon_quarters']} quarters")
        return None
    return Settings(**{k: values.get(k, C.SETTINGS_KEYS[k].default) for k in C.SETTINGS_KEYS})


def _check_duplicates(spec: C.Sheet, df: pd.DataFrame, out: _Collector) -> None:
    """Each id once, comparing what ids look like: case, full-width letters and no-break spaces aside."""
    if not spec.keys or df.empty:
        return
    keyed = df.dropna(subset=list(spec.keys))
    norm = keyed[list(spec.keys)].map(lambda v: skeleton(v) if isinstance(v, str) else v)
    dup = norm.duplicated(keep=False).to_numpy()
    if not dup.any():  # the usual case: no row to look at one by one (iterrows over 7,000 rows costs 0.1 s)
        return
    keyed, norm = keyed[dup], norm[dup]
    first: dict[tuple[Any, ...], tuple[int, str]] = {}
    for (_, rec), key in zip(keyed.iterrows(), norm.itertuples(index=False, name=None), strict=True):
        label = " | ".join(str(rec[k]) for k in spec.keys)
        if key not in first:
            first[key] = (rec["_row"], label)
            continue
        row0, label0 = first[key]
        if label.casefold() == label0.casefold():
            message = f"{' / '.join(spec.keys)} {label!r} appears twice"
        else:  # two spellings that cannot be told apart on screen: one id or two?
            message = (f"{' / '.join(spec.keys)} {label!r} is a look-alike of {label0!r} (row {row0}): they differ "
                       f"only in {look_alike_difference(label, label0)}")
        out.error("duplicate_id", message, sheet=spec.name, row=rec["_row"], column=spec.keys[0],
                  expected="each id once", found=f"also in row {row0}")


def _check_ref(out: _Collector, df: pd.DataFrame, sheet: str, column: str, known: set[str], code: str,
               what: str, target: str) -> None:
    """Every non-blank value of ``df[column]`` must be in ``known`` (an id defined on sheet ``target``)."""
    if df.empty:
        return
    for row, value in zip(df["_row"], df[column], strict=True):
        if value is None or value in known:
            continue
        out.error(code, f"{what} {value!r} is not defined on sheet {target!r}", sheet=sheet, row=row,
                  column=column, expected=f"a {what} from {target}", found=repr(value),
                  hint=did_you_mean(value, known))


def _check_periods(out: _Collector, df: pd.DataFrame, sheet: str, settings: Settings, severity: str,
                   what: str) -> pd.DataFrame:
    """Flag rows whose period lies outside the horizon; return the rows inside it."""
    if df.empty:
        return df
    idx = df["period"].map(lambda p: period_index(p, settings.first_period) if p else None)
    outside = idx.notna() & ((idx < 0) | (idx >= settings.horizon_quarters))
    horizon = horizon_labels(settings.first_period, settings.horizon_quarters)
    for row, p in zip(df.loc[outside, "_row"], df.loc[outside, "period"], strict=True):
        (out.error if severity == "error" else out.warn)(
            "period_outside_horizon", f"{what} for {p} is outside the planning horizon"
            + (" and was ignored" if severity == "warning" else ""),
            sheet=sheet, row=row, column="period", expected=f"a quarter from {horizon[0]} to {horizon[-1]}",
            found=repr(p))
    return df.loc[~outside].copy()


def validate(raw: RawWorkbook) -> PlanData:
    """Validate a raw workbook; raise :class:`ValidationFailed` with every problem if any is an error.

    The sheets one by one and across each other; the rows of Scenarios and Uncertainty are checked by applying
    them (:func:`planner.io.load.check_edits`), one layer up, because applying an edit validates again.
    """
    out = _Collector()
    out.problems.extend(raw.problems)
    matched = _match_sheets(raw, out)
    decimal_cells = _decimal_commas(matched, out)
    decimal_hint = ", ".join(decimal_cells[:2])
    tables: dict[str, pd.DataFrame] = {}
    for spec in C.SHEETS:
        if spec.name in matched:
            t = _read_table(spec, matched[spec.name], out, bool(decimal_cells), decimal_hint)
            if t is None and not spec.required:
                t = _empty(spec)
            if t is not None:
                _check_duplicates(spec, t, out)
                if spec.name in _MIN_ROWS and t.empty:
                    out.error("no_rows", "sheet has a header but no data rows", sheet=spec.name, row=2,
                              expected="at least one row", found="none")
                tables[spec.name] = t
        elif not spec.required:
            tables[spec.name] = _empty(spec)

    settings = _settings(tables.get("Settings"), out, bool(decimal_cells))
    if settings is not None and all(name in tables for name in _ATTR):
        plan = _cross_checks(settings, tables, out)
    else:
        plan = None
    problems = sorted(out.problems, key=sort_key)
    if plan is None or any(p.severity == "error" for p in problems):
        raise ValidationFailed(problems)
    plan.source = str(raw.path)
    plan.sha256 = raw.sha256
    plan.warnings = problems
    plan.decimal_comma = bool(decimal_cells)
    return plan


_SHEET_ORDER = {name: i for i, name in enumerate(["", *(s.name for s in C.SHEETS)])}


def sort_key(p: Problem) -> tuple[int, str, int]:
    return (_SHEET_ORDER.get(p.sheet, len(_SHEET_ORDER)), p.sheet, p.row or 0)


def _cross_checks(settings: Settings, t: dict[str, pd.DataFrame], out: _Collector) -> PlanData:
    programs, products, ramp = t["Programs"], t["Products"], t["YieldRamp"]
    fabs, fabcap, exps = t["Fabs"], t["FabCapacity"], t["Expansions"]
    backend, becap = t["Backend"], t["BackendCapacity"]
    platforms, bom, demand = t["Platforms"], t["BOM"], t["Demand"]

    program_ids = set(programs["program"].dropna())
    product_ids = set(products["product"].dropna())
    platform_ids = set(platforms["platform"].dropna())
    backend_ids = set(backend["resource"].dropna())
    fab_nodes = set(zip(fabs["fab"], fabs["node"], strict=True))
    fab_ids = {f for f, _ in fab_nodes}
    nodes = {n for _, n in fab_nodes}

    _check_ref(out, products, "Products", "program", program_ids, "unknown_program", "program", "Programs")
    _check_ref(out, products, "Products", "backend", backend_ids, "unknown_backend", "back-end resource", "Backend")
    for row, prod, node in zip(products["_row"], products["product"], products["node"], strict=True):
        if node is not None and node not in nodes:
            out.error("node_without_fab", f"product {prod!r} uses node {node!r}, which no fab runs",
                      sheet="Products", row=row, column="node", expected="a node listed on sheet 'Fabs'",
                      found=repr(node), hint=did_you_mean(node, nodes))

    _check_ref(out, ramp, "YieldRamp", "product", product_ids, "unknown_product", "product", "Products")
    gated = set(products.loc[products["program"].notna(), "product"])
    for row, prod in zip(ramp["_row"], ramp["product"], strict=True):
        if prod in product_ids and prod not in gated:
            out.error("ramp_for_mature_product", f"product {prod!r} has no program, so it has no yield ramp",
                      sheet="YieldRamp", row=row, column="product",
                      expected="YieldRamp rows only for products with a program", found=repr(prod),
                      hint="delete the rows or give the product a program")

    for sheet, df in (("FabCapacity", fabcap), ("Expansions", exps)):
        for row, fab, node in zip(df["_row"], df["fab"], df["node"], strict=True):
            if fab is None or node is None or (fab, node) in fab_nodes:
                continue
            hint = did_you_mean(fab, fab_ids) if fab not in fab_ids else did_you_mean(node, nodes)
            out.error("unknown_fab", f"fab/node {fab}/{node} is not on sheet 'Fabs'", sheet=sheet, row=row,
                      column="fab" if fab not in fab_ids else "node", expected="a fab and node listed on 'Fabs'",
                      found=f"{fab!r} / {node!r}", hint=hint)
    fabcap = _check_periods(out, fabcap, "FabCapacity", settings, "error", "a capacity override")
    _check_ref(out, becap, "BackendCapacity", "resource", backend_ids, "unknown_backend", "back-end resource",
               "Backend")
    becap = _check_periods(out, becap, "BackendCapacity", settings, "error", "a capacity override")
    if not exps.empty:
        exps = exps.copy()
        exps["earliest_period"] = exps["earliest_period"].fillna(settings.first_period)
        last = horizon_labels(settings.first_period, settings.horizon_quarters)[-1]
        for row, p in zip(exps["_row"], exps["earliest_period"], strict=True):
            if period_index(p, settings.first_period) >= settings.horizon_quarters:
                out.warn("period_outside_horizon", f"expansion cannot be decided before {p}, after the horizon "
                         f"ends ({last}); it can never be used", sheet="Expansions", row=row,
                         column="earliest_period", found=repr(p))

    wip = check_wip(settings, t, out)
    if settings.frozen_quarters > settings.horizon_quarters:
        out.error("out_of_range", f"setting 'frozen_quarters' is {settings.frozen_quarters}, longer than the "
                  f"horizon", sheet="Settings", column="value", expected=f"at most horizon_quarters "
                  f"({settings.horizon_quarters})", found=str(settings.frozen_quarters))

    _check_ref(out, bom, "BOM", "platform", platform_ids, "unknown_platform", "platform", "Platforms")
    _check_ref(out, bom, "BOM", "product", product_ids, "unknown_product", "product", "Products")
    _check_ref(out, demand, "Demand", "platform", platform_ids, "unknown_platform", "platform", "Platforms")
    demand = _check_periods(out, demand, "Demand", settings, "warning", "demand")
    with_bom = set(bom["platform"].dropna())
    wanted = demand.loc[demand["units"].fillna(0) > 0]
    for plat, rows in wanted.groupby("platform")["_row"]:
        if plat in platform_ids and plat not in with_bom:
            out.error("platform_without_bom", f"platform {plat!r} has demand but no BOM rows", sheet="Demand",
                      row=int(rows.min()), column="platform", expected=f"BOM rows for {plat!r}",
                      found="no BOM rows", hint="add its memory to sheet 'BOM'")

    price = dict(zip(products["product"], products["price"], strict=True))
    if not bom.empty:
        bom = bom.copy()
        bom["price"] = [p if p is not None and not pd.isna(p) else price.get(m)
                        for p, m in zip(bom["price"], bom["product"], strict=True)]

    def typed(df: pd.DataFrame, spec: C.Sheet) -> pd.DataFrame:
        df = df.copy()
        for col in spec.columns:
            if col.kind in ("float",) and col.name in df:
                df[col.name] = pd.to_numeric(df[col.name], errors="coerce").astype("float64")
            elif col.kind == "int" and col.name in df:
                df[col.name] = pd.to_numeric(df[col.name], errors="coerce")
                if df[col.name].notna().all():
                    df[col.name] = df[col.name].astype("int64")
            elif col.kind in ("str", "period", "choice") and col.name in df:
                df[col.name] = df[col.name].astype(object).where(df[col.name].notna(), None)
        df["_row"] = df["_row"].astype("int64")
        return df.reset_index(drop=True)

    return PlanData(
        settings=settings,
        programs=typed(programs, C.PROGRAMS), products=typed(products, C.PRODUCTS),
        yield_ramp=typed(ramp, C.YIELD_RAMP), fabs=typed(fabs, C.FABS),
        fab_capacity=typed(fabcap, C.FAB_CAPACITY), expansions=typed(exps, C.EXPANSIONS),
        backend=typed(backend, C.BACKEND), backend_capacity=typed(becap, C.BACKEND_CAPACITY),
        platforms=typed(platforms, C.PLATFORMS), bom=typed(bom, C.BOM), demand=typed(demand, C.DEMAND),
        scenarios=typed(t["Scenarios"], C.SCENARIOS), uncertainty=typed(t["Uncertainty"], C.UNCERTAINTY),
        wip=typed(wip, C.WIP),
    )


def plan_frames(plan: PlanData) -> dict[str, pd.DataFrame]:
    """The plan back as contract frames (with ``_row``), Settings included: the inverse of validation."""
    out = {"Settings": pd.DataFrame([{"key": k, "value": v} for k, v in
                                     ((k, getattr(plan.settings, k)) for k in C.SETTINGS_KEYS) if v is not None])}
    for sheet in _ATTR:
        out[sheet] = plan.frame(sheet)
    return out


def validate_frames(frames: dict[str, pd.DataFrame], name: str = "<frames>") -> PlanData:
    """Validate sheets given as frames exactly as if they had been read from a workbook (without the edit checks
    of :func:`planner.io.load.plan_from_frames`)."""
    import hashlib

    sheets: dict[str, RawSheet] = {}
    for sheet, df in frames.items():
        df = df.astype(object).where(pd.notna(df), None)
        if "_row" in df.columns:  # keep the row numbers of the workbook the frames came from
            numbers = [int(r) for r in df["_row"]]
            df = df.drop(columns=["_row"])
        else:
            numbers = list(range(2, len(df) + 2))
        rows = [(n, tuple(rec)) for n, rec in zip(numbers, df.itertuples(index=False, name=None), strict=True)]
        sheets[sheet] = RawSheet(sheet, list(df.columns), rows)
    digest = hashlib.sha256(repr(sorted((k, v.to_csv()) for k, v in frames.items())).encode()).hexdigest()
    return validate(RawWorkbook(path=Path(name), sha256=digest, sheets=sheets))
