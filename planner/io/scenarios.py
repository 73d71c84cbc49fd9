"""What-if edits: one grammar for the Scenarios sheet, ``--set`` overrides, sweeps and Monte Carlo draws.

An :class:`Edit` names a cell range by sheet, row key and column, and an operation:

    Sheet[key].column = value      (Scenarios op "set")
    Sheet[key].column += amount    (op "add")
    Sheet[key].column *= factor    (op "scale")
    Settings.key = value           (Settings: the key is the setting's name)

Keys are the sheet's id columns joined by ``|`` (``Demand[Vera Rubin|2027Q1]``, ``Fabs[FAB-B|1b]``); a part
may be ``*`` to match every row (``Demand[Vera Rubin|*].units *= 1.2``). Names match case-insensitively.
Setting a Demand pair that has no row creates it (missing pairs mean 0).

Every path (sheet, ``--set``, sweeps, Monte Carlo) goes through :func:`apply_edits`, which edits a copy of
the validated frames and validates the result again, so an edit can never produce a plan the workbook itself
could not hold; problems point at the edit that caused them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from planner.io import contract as C
from planner.io.problems import Problem, ValidationFailed, did_you_mean, show
from planner.io.text import nfc
from planner.io.validate import PlanData, parse_value, plan_frames, validate_frames

OPS = {"=": "set", "+=": "add", "*=": "scale", "-=": "add"}
EDIT_KEYS: dict[str, tuple[str, ...]] = {s.name: s.keys for s in C.SHEETS}
EDIT_KEYS["Expansions"] = ("fab", "node")
EDIT_KEYS["WIP"] = ("fab", "node", "product", "start_period")
EDITABLE = [s.name for s in C.SHEETS if s.name not in ("Scenarios", "Settings", "Uncertainty")]

_SET_RE = re.compile(r"^\s*(?P<sheet>[A-Za-z_]+)\s*(?:\[(?P<key>[^\]]*)\])?\s*\.\s*(?P<column>[A-Za-z_0-9]+)\s*"
                     r"(?P<op>\+=|\*=|-=|=)\s*(?P<value>.*?)\s*$")


@dataclass(frozen=True)
class Edit:
    sheet: str
    key: str
    column: str
    op: str  # set | add | scale
    value: Any
    source: str = ""  # where the edit came from, for messages ("Scenarios row 4", "--set ...")
    clip: bool = False  # a drawn value (Uncertainty): the edited cell is kept in its column's range, not refused

    @property
    def target(self) -> str:
        """The cells it edits, as typed: ``Demand[Vera Rubin|*].units``, ``Settings.policy``."""
        return f"Settings.{self.key}" if self.sheet == "Settings" else f"{self.sheet}[{self.key}].{self.column}"

    def describe(self) -> str:
        sym = {"set": "=", "add": "+=", "scale": "*="}[self.op]
        return f"{self.target} {sym} {self.value}"


def parse_override(text: str) -> Edit:
    """Parse ``--set`` text into an :class:`Edit` (raises ValidationFailed with a usage hint)."""
    m = _SET_RE.match(text or "")
    if not m:
        raise ValidationFailed([Problem(
            code="bad_override", message=f"cannot read override {text!r}", sheet="--set",
            expected="Sheet[key].column=value, +=amount or *=factor, or Settings.key=value",
            found=repr(text), hint='e.g. --set "Programs[HBM4].qualification_quarters+=2"')])
    sheet, key, column, op, value = m.group("sheet", "key", "column", "op", "value")
    if value.startswith(("'", '"')) and value.endswith(value[0]) and len(value) >= 2:
        value = value[1:-1]
    if op == "-=":
        try:
            value = -float(value)
        except ValueError:
            value = f"-{value}"
    if key is None:
        if sheet.strip().casefold() != "settings":
            raise ValidationFailed([Problem(
                code="bad_override", message=f"override {text!r} names no row", sheet="--set",
                expected=f"{sheet}[key].{column}", found=repr(text),
                hint="only Settings takes the form Settings.key=value")])
        key, column = column, "value"
    return Edit(sheet=sheet, key=key.strip(), column=column, op=OPS[op], value=value, source=f"--set {text}")


def edits_from_sheet(plan: PlanData, scenario: str) -> list[Edit]:
    df = plan.scenarios
    rows = df[df["scenario"].map(lambda s: str(s).casefold()) == scenario.strip().casefold()]
    if rows.empty:
        names = list(dict.fromkeys(plan.scenarios["scenario"]))
        raise ValidationFailed([Problem(
            code="unknown_scenario", message=f"scenario {scenario!r} is not on sheet 'Scenarios'",
            sheet="Scenarios", expected="one of " + ", ".join(map(repr, names)) if names else "a scenario row",
            found=repr(scenario), hint=did_you_mean(scenario, names))])
    return [Edit(sheet=r["sheet"], key=str(r["key"]), column=r["column"], op=r["op"], value=r["value"],
                 source=f"Scenarios row {r['_row']} ({r['scenario']})") for r in rows.to_dict("records")]


def scenario_names(plan: PlanData) -> list[str]:
    return list(dict.fromkeys(plan.scenarios["scenario"]))


def _err(edit: Edit, code: str, message: str, **kw: Any) -> Problem:
    """A problem located at the edit: its Scenarios row, or the override text as the user typed it."""
    m = re.match(r"(Scenarios|Uncertainty) row (\d+) \((.*)\)$", edit.source)
    if m:
        what = "scenario" if m.group(1) == "Scenarios" else "uncertain input"
        return Problem(code=code, message=f"{what} {m.group(3)!r}: {message}", sheet=m.group(1),
                       row=int(m.group(2)), **kw)
    return Problem(code=code, message=message, sheet=edit.source or edit.describe(), **kw)


def _resolve_sheet(edit: Edit) -> str | None:
    for name in [*EDITABLE, "Settings"]:
        if name.casefold() == edit.sheet.strip().casefold():
            return name
    return None


def _match_rows(df: pd.DataFrame, keys: tuple[str, ...], key: str) -> tuple[pd.Series, list[str]]:
    parts = [nfc(p).strip() for p in key.split("|")]  # ids are NFC: so is the key that names one
    mask = pd.Series(True, index=df.index)
    for col, part in zip(keys, parts, strict=True):
        if part == "*":
            continue
        mask &= df[col].map(lambda v, p=part: str(v).strip().casefold() == p.casefold())
    return mask, parts


def _new_value(col: C.Column, old: Any, edit: Edit, decimal_comma: bool = False) -> tuple[Any, str | None]:
    if edit.op == "set":
        return parse_value(col, edit.value, decimal_comma)
    if col.kind not in ("int", "float"):
        return None, "not_numeric_column"
    amount, err = parse_value(C.Column("amount", "float"), edit.value, decimal_comma)
    if err or amount is None:
        return None, err if err == "ambiguous_number" else "not_a_number"
    base = 0.0 if old is None or pd.isna(old) else float(old)
    result = base + amount if edit.op == "add" else base * amount
    if edit.clip:  # a draw of "add −3 quarters" on a 2-quarter program means 0 quarters, not an invalid plan
        result = col.clamp(result)
    if col.kind == "int":
        if abs(result - round(result)) > 1e-9:
            return None, "not_an_integer"
        result = int(round(result))
    return parse_value(col, result)  # the same type and range checks as a value typed into the cell


def apply_edits(plan: PlanData, edits: list[Edit], label: str = "", revalidate: bool = False) -> PlanData:
    """A validated copy of ``plan`` with the edits applied in order; raises ValidationFailed naming the edit.

    Numeric edits of non-reference columns are checked cell by cell (type and range) and skip the full
    re-validation, which no such edit can fail; ``revalidate`` forces it (tests compare both paths).
    """
    if not edits:
        return plan
    frames = {k: v.copy() for k, v in plan_frames(plan).items()}
    problems: list[Problem] = []
    full = revalidate  # whether the edited plan needs a full re-validation (see _needs_full)
    for edit in edits:
        sheet = _resolve_sheet(edit)
        if sheet is None:
            problems.append(_err(edit, "unknown_sheet", f"sheet {edit.sheet!r} cannot be edited",
                                 expected="one of " + ", ".join(["Settings", *EDITABLE]), found=repr(edit.sheet),
                                 hint=did_you_mean(edit.sheet, ["Settings", *EDITABLE], cutoff=0.6)))
            continue
        if sheet == "Settings":
            spec = C.SETTINGS_KEYS.get(edit.key.strip().casefold())
            if spec is None:
                problems.append(_err(edit, "unknown_setting", f"setting {edit.key!r} is not known",
                                     expected="one of " + ", ".join(C.SETTINGS_KEYS), found=repr(edit.key),
                                     hint=did_you_mean(edit.key, C.SETTINGS_KEYS)))
                continue
            if edit.column.strip().casefold() != "value":
                problems.append(_err(edit, "unknown_column", f"Settings has no column {edit.column!r}",
                                     expected="'value'", found=repr(edit.column)))
                continue
            st = frames["Settings"]
            old = st.loc[st["key"] == spec.name, "value"]
            new, err = _new_value(spec, old.iloc[0] if len(old) else spec.default, edit, plan.decimal_comma)
            if err:
                problems.append(_err(edit, err, f"cannot apply to setting {spec.name!r}", expected=spec.expected(),
                                     found=show(edit.value)))
                continue
            st = st[st["key"] != spec.name]
            frames["Settings"] = pd.concat([st, pd.DataFrame([{"key": spec.name, "value": new}])], ignore_index=True)
            full = True
            continue
        spec_sheet = C.SHEETS_BY_NAME[sheet]
        col = next((c for c in spec_sheet.columns if c.name.casefold() == edit.column.strip().casefold()), None)
        if col is None:
            problems.append(_err(edit, "unknown_column", f"sheet {sheet!r} has no column {edit.column!r}",
                                 expected="one of " + ", ".join(spec_sheet.column_names), found=repr(edit.column),
                                 hint=did_you_mean(edit.column, spec_sheet.column_names, cutoff=0.6)))
            continue
        keys = EDIT_KEYS[sheet]
        if col.name in keys:
            problems.append(_err(edit, "edit_of_id", f"column {col.name!r} is an id of sheet {sheet!r} and cannot be "
                                 "edited", expected="a non-id column", found=repr(col.name)))
            continue
        df = frames[sheet]
        parts = [p.strip() for p in edit.key.split("|")]
        if len(parts) != len(keys):
            problems.append(_err(edit, "bad_key", f"key {edit.key!r} does not fit sheet {sheet!r}",
                                 expected="|".join(keys), found=repr(edit.key)))
            continue
        mask, parts = _match_rows(df, keys, edit.key)
        if not mask.any():
            if sheet == "Demand" and "*" not in parts:
                full = True
                new_row = {"_row": 0, "platform": parts[0], "period": parts[1], "units": 0.0}
                df = pd.concat([df, pd.DataFrame([new_row])], ignore_index=True)
                mask = pd.Series(False, index=df.index)
                mask.iloc[-1] = True
            else:
                candidates = ["|".join(str(v) for v in rec) for rec in df[list(keys)].itertuples(index=False)]
                problems.append(_err(edit, "unknown_key", f"no row of {sheet!r} has key {edit.key!r}",
                                     expected="|".join(keys), found=repr(edit.key),
                                     hint=did_you_mean(edit.key, candidates, cutoff=0.6)))
                continue
        new_values = []
        bad = None
        for row, old in zip(df.loc[mask, "_row"], df.loc[mask, col.name], strict=True):
            new, err = _new_value(col, old, edit, plan.decimal_comma)
            if err:
                bad = (err, row, new)
                break
            new_values.append(new)
        if bad:
            err, row, new = bad
            where = {"sheet": sheet, "row": int(row)} if row else {}
            p = _err(edit, err, f"{edit.op} {edit.value!r} makes {sheet}.{col.name} invalid"
                     + (f" (row {int(row)})" if row else ""), expected=col.expected(),
                     found=show(new) if new is not None else show(edit.value))
            if where:
                p.sheet, p.row, p.column = where["sheet"], where["row"], col.name
                p.message = f"{edit.source or edit.describe()}: {p.message}"
            problems.append(p)
            continue
        full = full or _needs_full(sheet, col)
        if col.kind in ("int", "float") and not full:
            df[col.name] = df[col.name].astype("float64" if col.kind == "float" else df[col.name].dtype)
            df.loc[mask, col.name] = new_values
        else:
            df[col.name] = df[col.name].astype(object)
            df.loc[mask, col.name] = pd.Series(new_values, index=df.index[mask], dtype=object)
        frames[sheet] = df
    if problems:
        raise ValidationFailed(problems)
    if not full:
        # every edit was a checked number in a non-reference column: no cross-sheet rule can have changed
        new_plan = plan.copy()
        for sheet, df in frames.items():
            if sheet != "Settings":
                setattr(new_plan, _attr(sheet), df)
        return new_plan
    try:
        new_plan = validate_frames(frames, name=plan.source)
    except ValidationFailed as exc:
        what = label or "; ".join(e.describe() for e in edits)
        for p in exc.problems:
            p.message = f"after applying {what}: {p.message}"
        raise
    new_plan.source = plan.source
    new_plan.sha256 = plan.sha256
    new_plan.decimal_comma = plan.decimal_comma
    new_plan.frozen = plan.frozen  # the frozen zone comes from --baseline, not from a sheet: it stays
    return new_plan


def _needs_full(sheet: str, col: C.Column) -> bool:
    """Edits that can change a cross-sheet rule: text, ids/references, periods, and Products.price (which
    fills blank BOM prices at validation)."""
    return col.kind not in ("int", "float") or (sheet, col.name) == ("Products", "price")


def _attr(sheet: str) -> str:
    from planner.io.validate import _ATTR

    return _ATTR[sheet]


def check_scenarios(plan: PlanData) -> list[Problem]:
    """Apply every scenario of the sheet once, collecting its problems (part of validating a workbook)."""
    problems: list[Problem] = []
    for name in scenario_names(plan):
        try:
            apply_edits(plan, edits_from_sheet(plan, name), label=f"scenario {name!r}")
        except ValidationFailed as exc:
            problems.extend(p for p in exc.problems if p.severity == "error")
    return problems


def changed_cells(base: PlanData, edits: list[Edit]) -> pd.DataFrame:
    """The input cells a set of edits changes: sheet, row id, column, base → scenario (for comparisons)."""
    rows = []
    scen = apply_edits(base, edits)
    for sheet in {(_resolve_sheet(e) or e.sheet) for e in edits}:
        if sheet == "Settings":
            for k in C.SETTINGS_KEYS:
                a, b = getattr(base.settings, k), getattr(scen.settings, k)
                if a != b:
                    rows.append({"sheet": "Settings", "row_id": k, "column": "value", "before": a, "after": b})
            continue
        keys = list(EDIT_KEYS[sheet])
        a = base.frame(sheet).drop(columns=["_row"])
        b = scen.frame(sheet).drop(columns=["_row"])
        merged = a.merge(b, on=keys, how="outer", suffixes=("_base", "_scen"), indicator=True)
        for col in [c for c in a.columns if c not in keys]:
            for rec in merged.itertuples(index=False):
                rec = rec._asdict()
                va, vb = rec.get(f"{col}_base"), rec.get(f"{col}_scen")
                same = (pd.isna(va) and pd.isna(vb)) if (_isnull(va) or _isnull(vb)) else va == vb
                if not same:
                    rows.append({"sheet": sheet, "row_id": "|".join(str(rec[k]) for k in keys), "column": col,
                                 "before": None if _isnull(va) else va, "after": None if _isnull(vb) else vb})
    return pd.DataFrame(rows, columns=["sheet", "row_id", "column", "before", "after"])


def _isnull(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def cell_values(plan: PlanData, edit: Edit) -> list[Any]:
    """The values of the cells an edit targets in ``plan`` (one per matched row; a setting's value for Settings).

    A sweep labels its points with these, read from the plan each point solves, so a label is the value solved
    whatever ``op`` produced it. A Demand pair with no row reads as one cell holding 0 (missing pairs mean 0).
    """
    sheet = _resolve_sheet(edit)
    if sheet is None:
        return []
    if sheet == "Settings":
        spec = C.SETTINGS_KEYS.get(edit.key.strip().casefold())
        return [getattr(plan.settings, spec.name)] if spec is not None else []
    col = next((c for c in C.SHEETS_BY_NAME[sheet].columns if c.name.casefold() == edit.column.strip().casefold()),
               None)
    df = plan.frame(sheet)
    parts = [p.strip() for p in edit.key.split("|")]
    keys = EDIT_KEYS[sheet]
    if col is None or len(parts) != len(keys):
        return []
    mask, parts = _match_rows(df, keys, edit.key)
    if not mask.any() and sheet == "Demand" and "*" not in parts:
        return [0.0]
    return list(df.loc[mask, col.name])
