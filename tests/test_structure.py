"""The shape of the code (issue 14): the import graph runs one way, each formulation label has its builder, and
every workbook is written under ``planner/report/``. Read from the source, so a change that tangles the pipeline
fails here, not in a reviewer's head."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "planner"


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module → planner modules it imports (at module level or inside functions: both are dependencies)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("planner"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("planner")]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def test_graph_sees_the_package():
    g = import_graph()
    assert {"planner.api", "planner.cli", "planner.io.validate", "planner.model.build", "planner.solve.policy",
            "planner.analysis.explain", "planner.report.writer"} <= set(g)
    assert "planner.model.build" in g["planner.pipeline"]  # the parser does find edges


def test_import_graph_has_no_cycle():
    g = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g[m]):
            if d == "planner":  # the package __init__ holds only the version
                continue
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("layer", ["planner.io", "planner.model", "planner.solve", "planner.analysis"])
def test_lower_layers_never_import_orchestration(layer):
    """Input, model, solve and analysis hand data on; they never call the API, the CLI, batches or the pipeline."""
    top = {"planner.api", "planner.cli", "planner.batch", "planner.distributed", "planner.pipeline"}
    g = import_graph()
    bad = {m: sorted(g[m] & top) for m in g if m.startswith(layer) and g[m] & top}
    assert not bad, f"{layer} imports orchestration: {bad}"


def test_analysis_writes_no_file():
    """Analysis modules return frames; writing is the report layer's job."""
    writes = re.compile(r"\b(atomic_write|Book\(|write_report|xlsxwriter|\.to_excel\(|\.to_csv\(|open\([^)]*['\"]w)")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (PKG / "analysis").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if writes.search(line)]
    assert not hits, hits


def test_every_workbook_is_written_under_report():
    """Only planner/report/ touches a workbook writer (XlsxWriter, our Book, the atomic writer)."""
    writer = re.compile(r"\bimport xlsxwriter\b|\bfrom xlsxwriter\b|\bBook\(|\batomic_write\(|\.save\(")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in PKG.rglob("*.py") if "report" not in p.relative_to(PKG).parts
            for i, line in enumerate(p.read_text().splitlines(), 1) if writer.search(line)]
    assert not hits, hits


POLICY_NAMES = {"margin", "priority"}  # policies, not row or column families: their stages carry their own labels


def test_every_formulation_label_has_its_builder():
    """Each bold label of models/formulation.md is a `def add_<label>` under planner/model/ (one hop, text to code)."""
    labels = set(re.findall(r"\*\*`([a-z_]+)`\*\*", (ROOT / "models" / "formulation.md").read_text()))
    assert {"fab_capacity", "rd_gate", "priority_hold", "fair_share"} <= labels  # the parser does find labels
    source = "\n".join(p.read_text() for p in (PKG / "model").rglob("*.py"))
    missing = sorted(lab for lab in labels - POLICY_NAMES if not re.search(rf"^def add_{lab}\(", source, re.M))
    assert not missing, f"labels without a builder: {missing}"


def test_problem_codes_are_one_enum():
    """Every code a problem is raised with is a member of `Code` (Problem coerces, so an unlisted one raises)."""
    from planner.io.problems import Code, Problem

    assert Problem(code="unknown_product", message="m").code is Code.UNKNOWN_PRODUCT
    with pytest.raises(ValueError):
        Problem(code="no_such_code", message="m")
    literal = re.compile(r"""(?:code=|\.error\(|\.warn\(|_fail\(|_err\([^,]+,\s*)["']([a-z_]+)["']""")
    used = {m for p in PKG.rglob("*.py") for m in literal.findall(p.read_text())}
    assert used, "the scan found no codes"
    assert used <= {c.value for c in Code}, sorted(used - {c.value for c in Code})


def test_lp_refuses_a_label_twice():
    import pandas as pd

    from planner.model.lp import LinearProgram

    lp = LinearProgram()
    lp.add_cols("x", pd.DataFrame({"i": [0, 1]}))
    with pytest.raises(ValueError, match="already assigned"):
        lp.add_cols("x", pd.DataFrame({"i": [0]}))
    lp.add_rows("r", pd.DataFrame({"i": [0]}), [0], [0], [1.0])
    with pytest.raises(ValueError, match="already assigned"):
        lp.add_rows("r", pd.DataFrame({"i": [0]}), [0], [1], [1.0])


def test_notebook_gets_the_report_the_cli_writes(tmp_path):
    """`api.analyse` is what `planner solve` runs: the notebook's report holds the CLI's numbers and sheets."""
    import openpyxl
    from click.testing import CliRunner
    from conftest import EXAMPLE

    from planner import api
    from planner.cli import main

    plan = api.load_workbook(EXAMPLE)
    run, rep = api.analyse(plan)
    assert rep.causes is not None and rep.rd_impact is not None and rep.bottlenecks is not None
    nb = api.write_report(tmp_path / "nb.xlsx", rep)
    cli = tmp_path / "cli.xlsx"
    res = CliRunner().invoke(main, ["solve", str(EXAMPLE), "-o", str(cli)])
    assert res.exit_code == 0, res.output
    a, b = openpyxl.load_workbook(nb, read_only=True), openpyxl.load_workbook(cli, read_only=True)
    assert a.sheetnames == b.sheetnames

    def summary(wb):
        return {r[0]: r[1] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)
                if r[0] not in ("solve_seconds",)}

    assert summary(a) == summary(b)
    causes = [r for r in a["ShortfallCauses"].iter_rows(values_only=True)]
    assert causes == [r for r in b["ShortfallCauses"].iter_rows(values_only=True)]


def test_uncertainty_rows_are_validated_with_the_workbook(example_copy):
    """A triangular draw with low > mode > high fails `validate`, not a later Monte Carlo run (issue 14)."""
    from conftest import edit_workbook, find_row

    from planner.io.load import load_plan
    from planner.io.problems import Code, ValidationFailed

    def bad(wb):
        ws = wb["Uncertainty"]
        header = [c.value for c in ws[1]]
        r = find_row(ws, "distribution", "triangular")
        for col, v in (("p1", 3), ("p2", 2), ("p3", 1)):
            ws.cell(r, header.index(col) + 1).value = v

    src = edit_workbook(example_copy, example_copy.with_name("bad.xlsx"), bad)
    with pytest.raises(ValidationFailed) as exc:
        load_plan(src)
    assert [p.code for p in exc.value.problems if p.severity == "error"] == [Code.BAD_DISTRIBUTION]
