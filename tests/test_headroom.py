"""Under ``ulimit -v`` HiGHS is not called with less than ``HIGHS_HEADROOM`` of address space left: out of address
space inside a call it dies of a segfault (measured on the example at 210 MB), where a MemoryError raised before
the call is the CLI's one-line "out of memory" error, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner import api, exhaustion
from planner.model.build import build_model
from planner.solve import sessions

EXAMPLE = Path(__file__).resolve().parent.parent / "inputs" / "example.xlsx"


def test_headroom_is_read_under_a_limit_only() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    left = exhaustion.address_space_headroom()
    assert (left is None) == (soft == resource.RLIM_INFINITY)


@pytest.mark.parametrize("left,raises", [(1 * 2**20, True), (64 * 2**20, False), (None, False)])
def test_no_highs_call_without_headroom(monkeypatch, left, raises) -> None:
    model = build_model(api.load_workbook(EXAMPLE))
    session = sessions.HighsSession(model.lp)
    monkeypatch.setattr(exhaustion, "address_space_headroom", lambda: left)
    if raises:
        with pytest.raises(MemoryError, match="address space left"):
            session.run()
    else:
        assert session.run().status == "optimal"


def test_the_cli_says_out_of_memory_in_one_line(tmp_path: Path) -> None:
    """In a process of its own (the CLI ends an out-of-memory run with ``os._exit``), the headroom read as 1 MB."""
    import subprocess
    import sys

    code = ("import sys; from planner import exhaustion; exhaustion.address_space_headroom = lambda: 2**20; "
            "from planner.cli import main; sys.argv = ['planner'] + sys.argv[1:]; main()")
    out = tmp_path / "r.xlsx"
    proc = subprocess.run([sys.executable, "-c", code, "solve", str(EXAMPLE), "-o", str(out), "--no-explain",
                           "--no-insights"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])
    assert "out of memory" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("text", ["error return without exception set",
                                  "<function Command.main at 0x7f> returned NULL without setting an exception"])
def test_a_null_return_under_a_limit_is_out_of_memory(text: str) -> None:
    """Both of CPython's wordings of a C call that failed without an exception (seen at the memory edge under
    ``ulimit -v``: click's Command.main, whose traceback reached the user) are an allocation failure there, and
    nothing of the kind without a limit."""
    assert exhaustion.out_of_memory(SystemError(text), limited=True)
    assert not exhaustion.out_of_memory(SystemError(text), limited=False)
