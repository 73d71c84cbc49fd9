"""The report writer is imported during the base solve, on a thread of its own (issue 22: HiGHS releases the GIL and
the second core is idle; the import cost 25-65 ms before the solve). Each check runs in a fresh interpreter: what is
imported, and when, is the point."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import EXAMPLE

PRELUDE = """
import sys, threading
import planner.api as A
import planner.pipeline as P
A.MEANWHILE_MIN_COLS = {min_cols}
seen = {{}}
solve = P.solve_model
def spy(*a, **k):
    seen["at_solve"] = "planner.report.writer" in sys.modules
    seen["threads"] = [t.name for t in threading.enumerate()]
    return solve(*a, **k)
P.solve_model = spy
"""


def python(code: str, min_cols: int) -> subprocess.CompletedProcess:
    src = textwrap.dedent(PRELUDE.format(min_cols=min_cols)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=300)


def test_the_writer_is_imported_during_the_solve_and_the_report_is_the_same(tmp_path):
    """Without the thread (no plan) nothing imports the writer before the solve starts; with it (every plan, for
    the test) the thread is there when the solve starts (it may have begun the import). The two reports' Summary
    sheets are the same."""
    code = f"""
    from planner.cli import main
    try:
        main(["solve", {str(EXAMPLE)!r}, "-o", sys.argv[1], "--no-explain", "--no-insights", "--force"])
    except SystemExit as e:
        assert e.code == 0, e.code
    print(seen["at_solve"], "planner-import-writer" in seen["threads"])
    """
    with_thread = python(code.replace("sys.argv[1]", repr(str(tmp_path / "a.xlsx"))), 0)
    without = python(code.replace("sys.argv[1]", repr(str(tmp_path / "b.xlsx"))), 10**12)
    assert with_thread.returncode == 0, with_thread.stderr
    assert without.returncode == 0, without.stderr
    assert with_thread.stdout.split()[-1] == "True"
    assert without.stdout.split()[-2:] == ["False", "False"]
    import openpyxl

    def summary(p):
        wb = openpyxl.load_workbook(p, read_only=True)
        return [r for r in wb["Summary"].iter_rows(values_only=True) if r[0] not in ("solve_seconds", "report_time")]

    a, b = summary(tmp_path / "a.xlsx"), summary(tmp_path / "b.xlsx")
    assert len(a) > 5 and [r[0] for r in a] == [r[0] for r in b]
    assert {r[0]: r[1] for r in a}["objective"] == {r[0]: r[1] for r in b}["objective"]


def test_an_import_that_fails_on_the_thread_is_raised_after_the_solve():
    """The thread swallows nothing for good: the writer's import fails there (xlsxwriter missing), and the same
    ImportError comes out of api.analyse, as it does without the thread."""
    code = f"""
    sys.modules["xlsxwriter"] = None  # an import of it raises ImportError
    from planner import api
    plan = api.load_workbook({str(EXAMPLE)!r})
    try:
        api.analyse(plan, explain=False, insights=False)
    except ImportError as e:
        print("ImportError", "xlsxwriter" in str(e))
    """
    for min_cols in (0, 10**12):
        out = python(code, min_cols)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-2:] == ["ImportError", "True"], (min_cols, out.stdout, out.stderr)


def test_ctrl_c_during_the_solve_is_not_held_up_by_the_thread():
    """Ctrl-C in the solve: KeyboardInterrupt leaves api.analyse at once (the import thread is a daemon and is not
    waited for), and the interpreter exits."""
    code = f"""
    def interrupted(*a, **k):
        seen["threads"] = [t.name for t in threading.enumerate()]
        raise KeyboardInterrupt
    P.solve_model = interrupted
    from planner import api
    plan = api.load_workbook({str(EXAMPLE)!r})
    try:
        api.analyse(plan, explain=False, insights=False)
    except KeyboardInterrupt:
        print("interrupted", "planner-import-writer" in seen["threads"])
    """
    out = python(code, 0)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["interrupted", "True"]
