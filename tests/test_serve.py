"""The what-if page's engine, levers and scenario saving, without a browser (tests/test_serve_browser.py drives
the page itself). Every number the page shows is checked against an independent cold solve of the same
``--set`` edits (the CLI's path), on the example and on generated plans."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import EXAMPLE

pytest.importorskip("starlette", reason="the what-if page needs the 'serve' extra: pip install -e '.[serve]'")

from planner import api  # noqa: E402
from planner.io.load import load_plan  # noqa: E402
from planner.io.scenarios import apply_edits, edits_from_sheet, parse_override  # noqa: E402
from planner.model.build import build_model  # noqa: E402
from planner.model.sets import ready_quarters  # noqa: E402
from planner.report.scenario_sheet import SheetEditError, append_scenario  # noqa: E402
from planner.serve.engine import Engine  # noqa: E402
from planner.serve.levers import expressions, normalise, readiness_expressions  # noqa: E402
from planner.serve.render import panels  # noqa: E402


@pytest.fixture(scope="module")
def example_engine(tmp_path_factory) -> Engine:
    d = tmp_path_factory.mktemp("serve")
    path = d / "example.xlsx"
    shutil.copy(EXAMPLE, path)
    return Engine(path, load_plan(path))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    from planner.io.generate import write_generated

    d = tmp_path_factory.mktemp("gen")
    return [write_generated(d / f"g{seed}.xlsx", 8, 10, 3, 8, seed=seed) for seed in (1, 2, 3)]


def cold(plan, sets: list[str], scenario: str = ""):
    """The CLI's path for the same options: scenario edits then --set edits, applied once, solved cold."""
    edits = (edits_from_sheet(plan, scenario) if scenario else []) + [parse_override(s) for s in sets]
    return api.run(apply_edits(plan, edits) if edits else plan)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---- levers ------------------------------------------------------------------------------------------------------
def test_levers_come_from_the_plans_own_sheets(example_engine):
    lv = example_engine.levers
    plan = example_engine.plan
    assert list(lv.programs) == list(plan.programs["program"])
    assert lv.programs["HBM4"] == "2026Q4"  # start 2024Q3 + 6 development + 3 qualification quarters
    assert lv.fabs == [f"{f}|{n}" for f, n in zip(plan.fabs["fab"], plan.fabs["node"], strict=True)]
    assert lv.backend == list(plan.backend["resource"])
    assert lv.platforms == list(plan.platforms["platform"])  # every example platform has demand rows
    assert lv.scenarios == list(dict.fromkeys(plan.scenarios["scenario"]))
    assert lv.fab_overrides == {"FAB-A|1b", "FAB-A|1c", "FAB-C|1c"}


@pytest.fixture(scope="module")
def plans(generated) -> list:
    return [load_plan(p) for p in [EXAMPLE, *generated]]


@pytest.mark.parametrize("k", [-9, -7, -4, -3, -1, 1, 2, 4])
def test_readiness_lever_moves_the_ready_quarter_by_exactly_k(k, plans):
    """The ready quarter (start + development + qualification, the model's rule) moves by k, whichever of the
    three the expressions change — checked on the example and on generated plans."""
    for plan in plans:
        for prog in plan.programs["program"]:
            sets = readiness_expressions(plan, prog, k)
            moved = apply_edits(plan, [parse_override(s) for s in sets])
            before = ready_quarters(plan.programs, plan.settings.first_period)
            after = ready_quarters(moved.programs, plan.settings.first_period)
            i = list(plan.programs["program"]).index(prog)
            assert after[i] - before[i] == k, (plan.source, prog, sets)
            assert np.array_equal(np.delete(after, i), np.delete(before, i))


def test_lever_state_becomes_cli_expressions(example_engine):
    plan, lv = example_engine.plan, example_engine.levers
    st = normalise({"programs": {"hbm4": 1, "HBM4E": 0}, "fabs": {"FAB-A|1b": 0.9, "FAB-B|1b": 1},
                    "backend": {"TSV-1": "1.1"}, "demand": {"Vera Rubin": 1.2}, "policy": "margin",
                    "backlog": True, "sets": ["", " Products[HBM4-12H-36GB].price*=0.9 "]}, lv)
    # neutral levers (0 quarters, factor 1, the plan's own policy) are dropped; names take the plan's spelling
    assert st == {"programs": {"HBM4": 1}, "fabs": {"FAB-A|1b": 0.9}, "backend": {"TSV-1": 1.1},
                  "demand": {"Vera Rubin": 1.2}, "backlog": True, "sets": ["Products[HBM4-12H-36GB].price*=0.9"]}
    _, sets = expressions(st, plan, lv)
    assert sets == ["Programs[HBM4].qualification_quarters+=1", "Fabs[FAB-A|1b].wafers_per_quarter*=0.9",
                    "FabCapacity[FAB-A|1b|*].wafers*=0.9", "Backend[TSV-1].units_per_quarter*=1.1",
                    "Demand[Vera Rubin|*].units*=1.2", "Settings.backlog=true", "Products[HBM4-12H-36GB].price*=0.9"]


@pytest.mark.parametrize("state, words", [
    ({"programs": {"HBM5": 1}}, "program 'HBM5' is not in this plan"),
    ({"programs": {"HBM4": 0.5}}, "whole quarters"),
    ({"fabs": {"FAB-A|1b": "lots"}}, "expected a number"),
    ({"fabs": {"FAB-A|1b": float("nan")}}, "finite"),
    ({"policy": "cheapest"}, "policy 'cheapest' is not in this plan"),
    ({"backlog": "yes"}, "true or false"),
    ({"sets": "x"}, None),  # a string is taken as lines: a bad expression, reported by the CLI's parser
    ([1, 2], "JSON object"),
])
def test_malformed_lever_states_are_messages_not_crashes(example_engine, state, words):
    v = example_engine.view(state)
    assert v.errors and v.run is None
    if words:
        assert any(words in m for m in v.errors), v.errors
    html = panels(example_engine, v)["messages"]
    assert "do not apply" in html and "Traceback" not in html


# ---- numbers equal the CLI's -------------------------------------------------------------------------------------
STATES = [
    {},
    {"programs": {"HBM4": 1}},
    {"programs": {"HBM4": -2}, "backend": {"TSV-1": 1.2}},
    {"fabs": {"FAB-A|1b": 0.8, "FAB-C|1c": 1.25}},
    {"demand": {"Vera Rubin": 1.3, "RTX Spark": 0.7}},
    {"policy": "priority"},
    {"backlog": True, "programs": {"HBM4E": 2}},
    {"scenario": "HBM4 slips 1Q", "programs": {"HBM4": -1}},
    {"scenario": "Rubin demand +20%", "fabs": {"FAB-B|1b": 1.5}},
]


@pytest.mark.parametrize("state", STATES, ids=lambda s: str(s)[:60])
def test_page_figures_equal_a_cold_cli_solve(example_engine, state):
    """Margin (revenue − cost), objective, fill rate and served per platform equal the cold solve of the same
    --set texts (the warm start may only change which of several optimal vertices is found, not the value)."""
    v = example_engine.view(state)
    assert not v.errors and v.status == "optimal"
    ref = cold(example_engine.plan, v.sets, v.scenario).results
    s = ref.summary
    assert v.figures["objective"] == pytest.approx(s["objective"], rel=1e-7)
    assert v.figures["margin"] == pytest.approx(s["revenue"] - s["cost"], rel=1e-6)
    assert v.figures["fill_rate"] == pytest.approx(s["fill_rate"], abs=1e-9)
    by = ref.service.groupby("platform")["served"].sum()
    got = v.platforms.set_index("platform")["served"]
    assert got.to_dict() == pytest.approx(by.reindex(got.index).to_dict(), rel=1e-6, abs=1e-3)


def test_scenario_start_composes_like_the_cli(example_engine):
    """'HBM4 slips 1Q' then HBM4 one quarter earlier is the base plan again (same LP optimum)."""
    v = example_engine.view({"scenario": "HBM4 slips 1Q", "programs": {"HBM4": -1}})
    assert v.sets == ["Programs[HBM4].qualification_quarters-=1"]
    assert v.figures["objective"] == pytest.approx(example_engine.base.figures["objective"], rel=1e-9)


def test_generated_plans_equal_cold_solves(generated):
    for path in generated:
        plan = load_plan(path)
        eng = Engine(path, plan)
        lv = eng.levers
        states = [{}, {"fabs": {lv.fabs[0]: 0.7}}, {"demand": {lv.platforms[0]: 1.4}},
                  {"backend": {lv.backend[0]: 0.6}} if lv.backend else {}]
        if lv.programs:
            states.append({"programs": {next(iter(lv.programs)): 2}})
        for st in states:
            v = eng.view(st)
            assert not v.errors, v.errors
            ref = cold(plan, v.sets).results.summary
            assert v.status == ref["status"]
            if ref["objective"] is not None:
                assert v.figures["objective"] == pytest.approx(ref["objective"], rel=1e-7), (path.name, st)
                assert v.figures["margin"] == pytest.approx(ref["revenue"] - ref["cost"], rel=1e-6, abs=1e-3)


def test_what_binds_is_recomputed_from_the_capacity_table(example_engine, generated):
    """One row per resource with a positive shadow price; its quarter count, first/last quarter and top price are
    those of the Capacity table (the contract sheet), recomputed here."""
    engines = [example_engine] + [Engine(p, load_plan(p)) for p in generated[:2]]
    checked = 0
    for eng in engines:
        for st in ({}, {"fabs": {eng.levers.fabs[0]: 0.8}}):
            v = eng.view(st)
            cap = v.run.results.capacity
            b = cap[cap["shadow_price"] > 1e-6]
            exp = b.groupby("resource").agg(n=("period", "size"), first=("period", "min"), last=("period", "max"),
                                            top=("shadow_price", "max"))
            got = v.binds.set_index("resource")
            assert set(got.index) == set(exp.index)
            for r, row in exp.iterrows():
                assert got.loc[r, "quarters"] == row["n"]
                assert (got.loc[r, "first"], got.loc[r, "last"]) == (row["first"], row["last"])
                assert got.loc[r, "top_price"] == pytest.approx(row["top"])
                checked += 1
    assert checked > 0, "no binding resource anywhere: the test checked nothing"


def test_causes_and_help_follow_the_numbers(example_engine):
    """Causes, then 'what would help', come one step per request; their units add up to the shortfall shown."""
    state = {"programs": {"HBM4": 1}}
    v = example_engine.view(state)
    assert v.pending == "causes"
    v = example_engine.explain(state)
    assert v.pending == "help" and v.explained
    short = v.platforms.set_index("platform")["shortfall"]
    by = v.causes.groupby("platform")["units"].sum()
    assert len(by) > 0
    for plat, u in by.items():
        assert u == pytest.approx(short[plat], rel=1e-6)
    v = example_engine.explain(state)
    assert v.pending == "" and v.helped and len(v.fixes)
    html = panels(example_engine, v)
    for s in v.fixes["sentence"]:
        assert s.replace("&", "&amp;") in html["help"]
    # every line `planner solve` prints for these levers is on the page, in its panel or under "In words"
    text = " ".join(html.values())
    from html import escape

    for line in v.lines:
        assert escape(line.removeprefix("What would help: ")) in text, line


def test_bad_edits_carry_the_clis_message(example_engine):
    from click.testing import CliRunner

    from planner.cli import main

    v = example_engine.view({"fabs": {"FAB-A|1b": -1}, "sets": ["Fabs[FAB-Z|1b].wafers_per_quarter*=2"]})
    assert v.run is None and len(v.errors) == 3
    assert any("did you mean \"FAB-B|1b\"" in m for m in v.errors)
    assert any("expected a number >= 0" in m for m in v.errors)
    args = ["solve", str(example_engine.path), "-o", str(example_engine.path.with_name("never.xlsx"))]
    for s in v.sets:
        args += ["--set", s]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    for m in v.errors:
        assert m in res.output


def test_infeasible_plan_is_explained_not_crashed(example_engine):
    v = example_engine.view({"sets": ["Platforms[Vera Rubin].min_fill=1"]})
    assert v.status == "infeasible" and not v.errors and not v.figures
    html = panels(example_engine, v)
    assert "infeasible" in html["messages"] and "min_fill" in html["messages"] and "R&amp;D gate" in html["messages"]
    assert html["figures"] == "" and html["served"] == ""
    # and the page goes on: the next state solves
    assert example_engine.view({"programs": {"HBM4": 1}}).status == "optimal"


def test_time_limit_is_survived_and_said(tmp_path):
    path = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, path)
    eng = Engine(path, load_plan(path), time_limit=1e-9)
    v = eng.view({"programs": {"HBM4": 1}})
    assert v.status == "time_limit" and v.run is not None and not v.run.solution.has_solution
    html = panels(eng, v)["messages"]
    assert "time limit" in html
    assert eng.explain({"programs": {"HBM4": 1}}).pending == ""  # nothing to explain, nothing raised


def test_a_plan_too_big_for_interactive_use_is_not_solved(tmp_path):
    from planner.serve.render import page

    path = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, path)
    eng = Engine(path, load_plan(path), max_columns=100)
    assert not eng.interactive and eng.base is None
    html = page(eng, None)
    n = build_model(load_plan(path)).lp.n_cols
    assert f"{n:,} LP columns" in html and "planner compare" in html and "planner sweep" in html
    assert "--max-columns" in html


# ---- saving a scenario -------------------------------------------------------------------------------------------
def sheet_part(path: Path, name: str) -> str:
    """The zip part that holds sheet ``name`` (workbook.xml names it, its relationships point to the part)."""
    import re

    with zipfile.ZipFile(path) as z:
        wb = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
    rid = re.search(rf'<sheet [^>]*name="{name}"[^>]*r:id="([^"]+)"', wb)[1]
    target = re.search(rf'<Relationship [^>]*Id="{rid}"[^>]*Target="([^"]+)"', rels) or re.search(
        rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid}"', rels)
    t = target[1].lstrip("/")
    return t if t.startswith("xl/") else f"xl/{t}"


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_save_writes_a_copy_that_the_cli_reproduces(tmp_path):
    path = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, path)
    before = sha(path)
    eng = Engine(path, load_plan(path))
    state = {"scenario": "TSV-1 +10%", "programs": {"HBM4": -5}, "demand": {"Vera CPU": 1.15}, "policy": "priority"}
    v = eng.view(state)
    saved = eng.save_scenario(state, "page what-if")
    assert saved.path == tmp_path / "example-whatif.xlsx" and sha(path) == before  # the input is untouched
    # only the Scenarios sheet's part changed; every other part of the zip is byte-identical
    a, b = parts(path), parts(saved.path)
    assert set(a) == set(b)
    assert [n for n in a if a[n] != b[n]] == [sheet_part(path, "Scenarios")]
    copy = load_plan(saved.path)
    rows = copy.scenarios[copy.scenarios["scenario"] == "page what-if"]
    assert len(rows) == saved.rows == 1 + len(v.sets)  # the starting scenario's row, then each --set
    # solving the saved scenario from the copy gives the page's numbers
    ref = cold(copy, [], "page what-if").results.summary
    assert v.figures["objective"] == pytest.approx(ref["objective"], rel=1e-7)
    assert v.figures["fill_rate"] == pytest.approx(ref["fill_rate"], abs=1e-9)
    # a second save appends to the same copy; a name already there is refused and nothing changes
    eng.save_scenario({"backend": {"TSV-2": 0.5}}, "second")
    assert set(dict.fromkeys(load_plan(saved.path).scenarios["scenario"])) >= {"page what-if", "second"}
    frozen = sha(saved.path)
    with pytest.raises(SheetEditError, match="already on the Scenarios sheet"):
        eng.save_scenario({"backend": {"TSV-2": 0.6}}, "Second ")
    assert sha(saved.path) == frozen


def test_save_into_the_input_needs_its_lock_free_and_unchanged(tmp_path):
    path = tmp_path / "example.xlsx"
    shutil.copy(EXAMPLE, path)
    eng = Engine(path, load_plan(path))
    lock = tmp_path / "~$example.xlsx"
    lock.write_text("")
    with pytest.raises(SheetEditError, match="open in Excel"):
        eng.save_scenario({"programs": {"HBM4": 1}}, "late", to_input=True)
    lock.unlink()
    saved = eng.save_scenario({"programs": {"HBM4": 1}}, "late", to_input=True)
    assert saved.path == path
    assert edits_from_sheet(load_plan(path), "late")[0].describe() == "Programs[HBM4].qualification_quarters += 1"
    eng.save_scenario({"programs": {"HBM4": 2}}, "later", to_input=True)  # after its own write, it may go on
    assert {"late", "later"} <= set(load_plan(path).scenarios["scenario"])
    # another program changed the file since: the levers may no longer fit it, so the page refuses to write
    append_scenario(path, path, [{**ROWS[0], "scenario": "from Excel"}])
    with pytest.raises(SheetEditError, match="changed on disk"):
        eng.save_scenario({"programs": {"HBM4": 3}}, "latest", to_input=True)


def test_nothing_to_save_and_bad_names_are_refused(example_engine):
    with pytest.raises(SheetEditError, match="no lever is moved"):
        example_engine.save_scenario({}, "empty")
    with pytest.raises(SheetEditError, match="name"):
        example_engine.save_scenario({"programs": {"HBM4": 1}}, "  ")
    with pytest.raises(SheetEditError, match="do not apply"):
        example_engine.save_scenario({"fabs": {"FAB-A|1b": -1}}, "negative")
    with pytest.raises(SheetEditError, match="control character"):
        example_engine.save_scenario({"programs": {"HBM4": 1}}, "bell\x07")
    assert not example_engine.copy_path().exists()


ROWS = [{"scenario": "S", "sheet": "Programs", "key": "HBM4", "column": "qualification_quarters", "op": "add",
         "value": 1},
        {"scenario": "S", "sheet": "Settings", "key": "policy", "column": "value", "op": "set", "value": "priority"}]


def test_append_keeps_other_sheets_of_an_openpyxl_workbook_with_a_table_and_styled_rows(tmp_path):
    """A workbook as Excel users keep it: Scenarios formatted as a table, styled empty rows below the data,
    columns in another order. New rows take the empty rows' place, the table grows over them, and the
    other sheets' cells (read back with openpyxl) are identical."""
    import openpyxl
    from openpyxl.styles import PatternFill
    from openpyxl.worksheet.table import Table

    src = tmp_path / "styled.xlsx"
    wb = openpyxl.load_workbook(EXAMPLE)
    ws = wb["Scenarios"]
    old = [[c.value for c in r] for r in ws.iter_rows()]
    wb.remove(ws)
    ws = wb.create_sheet("Scenarios")
    order = [5, 0, 1, 2, 3, 4]  # value first
    for r in old:
        ws.append([r[i] for i in order])
    n = len(old)
    for r in range(n + 1, n + 20):
        ws.cell(r, 1).fill = PatternFill("solid", fgColor="FFF2CC")
    ws.add_table(Table(displayName="Scen", ref=f"A1:F{n}"))
    wb.save(src)
    out = append_scenario(src, tmp_path / "out.xlsx", ROWS)
    a = openpyxl.load_workbook(src)
    b = openpyxl.load_workbook(out)
    for name in a.sheetnames:
        if name == "Scenarios":
            continue
        assert [[c.value for c in r] for r in a[name].iter_rows()] == [[c.value for c in r] for r in b[name].iter_rows()]
    got = [[c.value for c in r] for r in b["Scenarios"].iter_rows(min_row=n + 1, max_row=n + 2)]
    assert got == [[1, "S", "Programs", "HBM4", "qualification_quarters", "add"],
                   ["priority", "S", "Settings", "policy", "value", "set"]]
    assert b["Scenarios"].tables["Scen"].ref == f"A1:F{n + 2}"
    plan = load_plan(out)
    assert [e.describe() for e in edits_from_sheet(plan, "S")] == [
        "Programs[HBM4].qualification_quarters += 1", "Settings.policy = priority"]


def test_append_adds_a_scenarios_sheet_when_there_is_none(tmp_path):
    import openpyxl

    src = tmp_path / "none.xlsx"
    wb = openpyxl.load_workbook(EXAMPLE)
    del wb["Scenarios"]
    wb.save(src)
    out = append_scenario(src, tmp_path / "out.xlsx", ROWS)
    a, b = parts(src), parts(out)
    changed = sorted(n for n in a if a[n] != b.get(n))
    assert changed == ["[Content_Types].xml", "xl/_rels/workbook.xml.rels", "xl/workbook.xml"]
    assert len(set(b) - set(a)) == 1
    plan = load_plan(out)
    assert len(edits_from_sheet(plan, "S")) == 2
    assert openpyxl.load_workbook(out)["Scenarios"]["A1"].value == "scenario"


def test_append_refuses_rows_that_do_not_apply_and_writes_nothing(tmp_path):
    bad = [{**ROWS[0], "key": "HBM9"}]
    with pytest.raises(SheetEditError, match="would not be valid"):
        append_scenario(EXAMPLE, tmp_path / "out.xlsx", bad)
    assert not (tmp_path / "out.xlsx").exists()
    assert not list(tmp_path.iterdir())  # no temporary file left behind


@pytest.mark.office
def test_libreoffice_reads_the_saved_scenario(tmp_path):
    import subprocess

    if not shutil.which("soffice"):
        pytest.skip("LibreOffice (soffice) is not on the PATH; .ci/run installs it")
    out = append_scenario(EXAMPLE, tmp_path / "saved.xlsx", [{**r, "scenario": "A & <b>"} for r in ROWS])
    res = subprocess.run(["soffice", "--headless", "--convert-to", "xlsx", "--outdir", str(tmp_path / "lo"),
                          str(out)], capture_output=True, timeout=180)
    assert res.returncode == 0, res.stderr
    plan = load_plan(tmp_path / "lo" / "saved.xlsx")  # LibreOffice read it and wrote it again
    assert [e.describe() for e in edits_from_sheet(plan, "A & <b>")] == [
        "Programs[HBM4].qualification_quarters += 1", "Settings.policy = priority"]
    assert pd.Series(plan.scenarios["scenario"]).nunique() == 7


def test_serve_says_when_the_port_is_taken(example_copy):
    import socket

    from click.testing import CliRunner

    from planner.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = CliRunner().invoke(main, ["serve", str(example_copy), "--port", str(port)])
    assert res.exit_code == 1
    assert f"127.0.0.1:{port} is in use; choose another with --port" in res.output
    assert "Traceback" not in res.output


def test_serve_refuses_an_invalid_workbook(tmp_path):
    from click.testing import CliRunner

    from planner.cli import main

    bad = tmp_path / "bad.xlsx"
    bad.write_text("not a workbook")
    res = CliRunner().invoke(main, ["serve", str(bad)])
    assert res.exit_code == 1 and "not_xlsx" in res.output
