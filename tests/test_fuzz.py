"""Property-based fuzzing of input workbooks (issues 9 and 18).

Each case mutates a valid workbook the way a hand edit, a broken export or a hostile user would, writes it, and
runs `planner validate` and `planner solve` in-process. Whatever happens, the outcome must be one of: exit 0
with a report, or exit 1 with messages that name a sheet or the file — never an uncaught exception, never a hang
(each case is bounded by an alarm), never a change to the input file. Issue 18's classes are among the
mutations (hidden and duplicate contract sheets, decimal commas, periods at and past the year range, look-alike
and control-character ids, formulas without cached values in headers and cells, names that look like cell
references) and among the checks: every printed line is printable, at most MAX_LISTED problems are listed, a
report's charts refer only to its own cells, no temporary file is left behind, and a Strict OOXML copy of a
case validates exactly as the case does. Cases that ever failed are kept as regression files in
tests/fuzz_corpus/ and replayed by test_corpus.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import string
import unicodedata
import zipfile
from contextlib import contextmanager
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.io import contract as C
from planner.io.problems import MAX_LISTED

CORPUS = Path(__file__).parent / "fuzz_corpus"
CASE_SECONDS = 60
SHEETS = [s.name for s in C.SHEETS]
SHEET_WORDS = [*SHEETS, "file", "--set", "Scenarios", "Uncertainty"]


@contextmanager
def time_bound(seconds: int):
    def boom(signum, frame):
        raise TimeoutError(f"case took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


weird_values = st.one_of(
    st.none(), st.just(""), st.just("   "), st.text(max_size=12), st.text(alphabet=string.printable, min_size=200,
                                                                         max_size=400),
    st.just("x" * 5000), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 1e-300, -1, 0, 1e9, 2.5]),
    st.sampled_from(["=1+1", "+cmd", "@SUM(A1)", "-3", "2026Q5", "2099Q1", "1999Q4", "TRUE", "HBM", "Ωmega-μ",
                     "🙂", "1,000", "50%", "2026-01-01"]),
    st.sampled_from(["8,5", "0,25", "1.234,5", "1,234.5", "1.000", "12,34,567", "8,5%",  # separators
                     "0999Q1", "1899Q4", "1900Q1", "2199Q4", "2200Q1", "9999Q4",  # the year range
                     unicodedata.normalize("NFD", "Café"), "X\u00a0", "Ｘ", "X\u200b", "X\x9b2J", "X\nerror: forged",
                     "X\u202e", "x!A1", "+1+cmd|' /C calc'!A0", 'E"UR;@']),
    st.booleans(),
)

EDGE_PERIODS = ["0999Q1", "0000Q1", "1899Q4", "1900Q1", "2199Q4", "2200Q1", "9999Q4"]
ID_VARIANTS = [  # what an id can be turned into that looks the same, or prints something else
    lambda v: unicodedata.normalize("NFD", v + "é"), lambda v: v.replace(" ", "\u00a0", 1) + "\u00a0",
    lambda v: "Ｘ" + v[1:], lambda v: v + "\u200b",
    lambda v: v + "\x9b2J", lambda v: v + "\nerror: forged", lambda v: v + "!A1", lambda v: "Evil!A0",
]
PERIOD_COLUMNS = ("period", "start_period", "earliest_period")


@st.composite
def mutations(draw):
    kind = draw(st.sampled_from(["cell", "cell", "cell", "blank_row", "dup_row", "del_row", "rename_sheet",
                                 "del_sheet", "rename_col", "del_col", "shuffle_cols", "period", "long_id",
                                 "hide_sheet", "dup_sheet", "decimal_comma", "period_edge", "id_variant",
                                 "header_formula", "formula_cell"]))
    sheet = draw(st.sampled_from(SHEETS))
    return kind, sheet, draw(st.integers(0, 10_000)), draw(weird_values), draw(st.text(max_size=20))


def _clean(v):
    """Excel cannot hold control characters, so neither can a workbook an analyst sends."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v


def apply(wb, muts) -> None:
    for kind, sheet, n, value, text in muts:
        value, text = _clean(value), _clean(text)
        if sheet not in wb.sheetnames:
            continue
        ws = wb[sheet]
        rows, cols = max(ws.max_row, 1), max(ws.max_column, 1)
        r, c = 2 + n % max(rows - 1, 1), 1 + n % cols
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            value = str(value)  # openpyxl cannot store NaN/inf as numbers: analysts type them as text
        if kind == "cell":
            ws.cell(r, c).value = value
        elif kind == "blank_row":
            ws.insert_rows(r)
        elif kind == "dup_row" and rows >= 2:
            ws.append([ws.cell(r, j).value for j in range(1, cols + 1)])
        elif kind == "del_row" and rows >= 2:
            ws.delete_rows(r)
        elif kind == "rename_sheet":
            ws.title = (text or sheet + "x")[:31].replace("/", "").replace("\\", "").replace("*", "").replace(
                "?", "").replace("[", "").replace("]", "").replace(":", "") or "S"
        elif kind == "del_sheet" and len(wb.sheetnames) > 1:
            wb.remove(ws)
        elif kind == "rename_col":
            ws.cell(1, c).value = text or None
        elif kind == "del_col":
            ws.delete_cols(c)
        elif kind == "shuffle_cols" and cols >= 2:
            ws.move_range(f"A1:A{rows}", rows=0, cols=cols)
            ws.delete_cols(1)
        elif kind == "period" and "period" in [x.value for x in ws[1]]:
            col = [x.value for x in ws[1]].index("period") + 1
            ws.cell(r, col).value = text[:8] or "2031Q1"
        elif kind == "long_id":
            ws.cell(r, 1).value = (text or "id") * 300
        elif kind == "hide_sheet":
            ws.sheet_state = ("hidden", "veryHidden")[n % 2]
        elif kind == "dup_sheet":
            twin = wb.copy_worksheet(ws)
            twin.title = (sheet.upper(), sheet + " ", " " + sheet.lower())[n % 3][:31]
            if n % 2:  # the attack: very hidden, and placed before the visible one
                twin.sheet_state = "veryHidden"
                wb.move_sheet(twin, offset=wb.sheetnames.index(sheet) - wb.sheetnames.index(twin.title))
        elif kind == "decimal_comma" and isinstance(ws.cell(r, c).value, int | float):
            ws.cell(r, c).value = f"{ws.cell(r, c).value:.2f}".replace(".", ",")
        elif kind == "period_edge":
            header = [x.value for x in ws[1]]
            label = EDGE_PERIODS[n % len(EDGE_PERIODS)]
            if sheet == "Settings":
                for row in ws.iter_rows(min_row=2):
                    if row[0].value == "first_period" and len(row) > 1:
                        row[1].value = label
            for name in PERIOD_COLUMNS:
                if name in header:
                    ws.cell(r, header.index(name) + 1).value = label
        elif kind == "id_variant" and isinstance(ws.cell(r, 1).value, str) and ws.cell(r, 1).value:
            ws.cell(r, 1).value = _clean(ID_VARIANTS[n % len(ID_VARIANTS)](ws.cell(r, 1).value))
        elif kind == "header_formula" and ws.cell(1, c).value:
            ws.cell(1, c).value = f'="{ws.cell(1, c).value}"'
        elif kind == "formula_cell":
            ws.cell(r, c).value = "=1+1"


CHART_REF = re.compile(r"(ChartData|Histogram)!\$[A-Z]+\$\d+(:\$[A-Z]+\$\d+)?")


def check_case(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    runner = CliRunner()
    out = path.with_name("out.xlsx")
    with time_bound(CASE_SECONDS):
        v = runner.invoke(main, ["validate", str(path)])
        s = runner.invoke(main, ["solve", str(path), "--no-insights", "-o", str(out)])
    for res in (v, s):
        assert res.exception is None or isinstance(res.exception, SystemExit), (
            f"uncaught {type(res.exception).__name__}: {res.exception}\n{res.output}")
        assert res.exit_code in (0, 1), res.output
        assert "Traceback" not in res.output
        if res.exit_code == 1:
            assert any(w in res.output for w in SHEET_WORDS), res.output
        lines = res.output.splitlines()
        assert all(line.isprintable() for line in lines), [x for x in lines if not x.isprintable()][:3]
        assert sum(line.startswith(("error:", "warning:")) for line in lines) <= MAX_LISTED
    if v.exit_code == 1:
        assert s.exit_code == 1  # what validate rejects, solve rejects too
    if s.exit_code == 0:  # whatever validate accepts, solve handles, and its charts hold no formula of ours
        with zipfile.ZipFile(out) as z:
            xml = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/charts/chart"))
        assert all(CHART_REF.fullmatch(f) for f in re.findall(r"<c:f>(.*?)</c:f>", xml))
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")], "a temporary file was left"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "the input file was modified"


@pytest.fixture(scope="module")
def small_example(tmp_path_factory) -> Path:
    """A smaller valid plan than the example, so many cases fit in CI's minutes."""
    from builders import frames

    from planner.report.template import write_input_workbook

    f = frames(quarters=3, products=[{"product": "P", "program": "G"}, {"product": "Q", "node": "n1",
                                                                          "backend": "B"}],
               programs=[{"program": "G", "start_period": "2026Q1", "development_quarters": 1,
                          "qualification_quarters": 0}],
               ramp=[{"product": "P", "quarter": 0, "factor": 0.6}],
               backend=[{"resource": "B", "units_per_quarter": 500}],
               expansions=[{"fab": "F", "node": "n1", "lead_quarters": 1, "max_wafers_per_quarter": 20,
                            "cost_per_wafer": 5}],
               platforms=[{"platform": "X", "priority": 1, "shortfall_penalty": 1},
                          {"platform": "Y", "priority": 2, "shortfall_penalty": 2, "min_fill": 0.1}],
               bom=[{"platform": "X", "option": "o", "product": "P", "units_per_platform": 1},
                    {"platform": "X", "option": "o2", "product": "Q", "units_per_platform": 2},
                    {"platform": "Y", "option": "o", "product": "Q", "units_per_platform": 1}],
               demand=[{"platform": p, "period": q, "units": 300} for p in "XY" for q in ("2026Q1", "2026Q2",
                                                                                         "2026Q3")],
               scenarios=[{"scenario": "s", "sheet": "Fabs", "key": "F|n1", "column": "wafers_per_quarter",
                           "op": "scale", "value": 0.5}])
    return write_input_workbook(tmp_path_factory.mktemp("fz") / "base.xlsx", f)


N_EXAMPLES = int(os.environ.get("PLANNER_FUZZ_EXAMPLES", "40"))


@seed(int(os.environ.get("PLANNER_FUZZ_SEED", "20261125")))
@settings(max_examples=N_EXAMPLES, deadline=None, derandomize=False, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(muts=st.lists(mutations(), min_size=1, max_size=4))
def test_mutated_workbooks_never_crash(small_example, tmp_path_factory, muts):
    wb = openpyxl.load_workbook(small_example)
    apply(wb, muts)
    path = tmp_path_factory.mktemp("case") / "case.xlsx"
    wb.save(path)
    try:
        check_case(path)
    except BaseException:
        CORPUS.mkdir(exist_ok=True)
        keep = CORPUS / f"case-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}.xlsx"
        keep.write_bytes(path.read_bytes())
        raise


@seed(7)
@settings(max_examples=max(5, N_EXAMPLES // 4), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(muts=st.lists(mutations(), min_size=1, max_size=2))
def test_mutated_example_never_crashes(tmp_path_factory, muts):
    wb = openpyxl.load_workbook(EXAMPLE)
    apply(wb, muts)
    path = tmp_path_factory.mktemp("ex") / "case.xlsx"
    wb.save(path)
    check_case(path)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.xlsx")) if CORPUS.exists() else [], ids=lambda p: p.name)
def test_corpus(path, tmp_path):
    """Every case that ever failed, replayed (regression files)."""
    dst = tmp_path / path.name
    dst.write_bytes(path.read_bytes())
    check_case(dst)


@seed(18)
@settings(max_examples=max(5, N_EXAMPLES // 4), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(muts=st.lists(mutations(), min_size=1, max_size=3))
def test_strict_copy_validates_as_the_case_does(small_example, tmp_path_factory, muts):
    """Strict OOXML is read through its Transitional equivalent: the same problems, or the same valid plan."""
    from test_hostile_input import to_strict

    wb = openpyxl.load_workbook(small_example)
    apply(wb, muts)
    case = tmp_path_factory.mktemp("strict") / "case.xlsx"
    wb.save(case)
    strict = to_strict(case, case.with_name("strict.xlsx"))
    runner = CliRunner()
    with time_bound(CASE_SECONDS):
        a = runner.invoke(main, ["validate", "--json", str(case)])
        b = runner.invoke(main, ["validate", "--json", str(strict)])
    assert (a.exit_code, b.exit_code) in ((0, 0), (1, 1)), (a.output, b.output)

    def problems(res) -> list:
        import json

        doc = json.loads(res.stdout)
        return sorted((p["code"], p["sheet"], p["cell"], p["message"]) for p in doc["problems"])

    if not a.stdout.strip().startswith("{"):  # a file-level refusal prints no JSON document
        assert a.output.replace("case.xlsx", "") == b.output.replace("strict.xlsx", "")
        return
    assert problems(a) == problems(b)
