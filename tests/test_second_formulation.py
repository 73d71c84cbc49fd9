"""The planner's LP against an independent formulation of the same contract (``benchmarks/formulation2.py``).

The second formulation reads the workbook itself and names the flows (output, shipped, served, cumulative
expansion) where the planner folds them into balance rows; it shares no code with ``planner``. On every plan
below both must reach the same optimal objective (margin policy) to 1e-6 relative — an independent check of the
model, and the guarantee that the benchmark's "fastest HiGHS run on any correct formulation" is the same plan.
Plans come from both generators (``planner generate`` and ``benchmarks/indep_plan.py``) and the example.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import formulation2  # noqa: E402
import indep_plan  # noqa: E402

from planner import api  # noqa: E402
from planner.model.build import build_model  # noqa: E402
from planner.solve.policy import solve_model  # noqa: E402

EXAMPLE = ROOT / "inputs" / "example.xlsx"


def _both(path: Path, method: str = "simplex") -> tuple[float, float]:
    plan = api.load_workbook(path)
    ours = solve_model(build_model(plan), method=method, prices=False)
    assert ours.status == "optimal"
    status, theirs, _ = formulation2.solve(formulation2.build(str(path)), {"solver": method})
    assert status == "Optimal"
    return float(ours.objective), float(theirs)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


@pytest.mark.parametrize("seed,backlog,risk", [(1, False, False), (2, False, False), (3, True, False),
                                               (4, False, True), (5, True, True)])
def test_independent_plans_agree(tmp_path: Path, seed: int, backlog: bool, risk: bool) -> None:
    """Plans with WIP in flight, expansions, capacity overrides, ramps and BOM prices (indep_plan.py)."""
    path = tmp_path / f"p{seed}.xlsx"
    indep_plan.write_plan(path, indep_plan.make_plan(40, 60, 8, 12, seed=seed, backlog=backlog, risk_starts=risk))
    ours, theirs = _both(path)
    assert _close(ours, theirs), (ours, theirs)


@pytest.mark.parametrize("seed,wip", [(1, False), (2, True), (3, True)])
def test_planner_generate_plans_agree(tmp_path: Path, seed: int, wip: bool) -> None:
    """``planner generate`` plans (min_fill, committed WIP with --wip); their Settings policy is margin."""
    path = tmp_path / f"g{seed}.xlsx"
    subprocess.run([sys.executable, "-m", "planner", "generate", "--platforms", "12", "--products", "10", "--fabs",
                    "3", "--quarters", "8", "--seed", str(seed), "-o", str(path), *(["--wip"] if wip else [])],
                   check=True, capture_output=True)
    plan = api.load_workbook(path)
    assert plan.settings.policy == "margin"
    ours, theirs = _both(path)
    assert _close(ours, theirs), (ours, theirs)


def test_example_agrees() -> None:
    ours, theirs = _both(EXAMPLE)
    assert _close(ours, theirs), (ours, theirs)


def test_interior_point_agrees(tmp_path: Path) -> None:
    """The benchmark runs both with interior point (crossover on): same optimum."""
    path = tmp_path / "ipm.xlsx"
    indep_plan.write_plan(path, indep_plan.make_plan(60, 90, 10, 14, seed=2))
    ours, theirs = _both(path, method="ipm")
    assert _close(ours, theirs), (ours, theirs)


def test_formulations_differ_in_shape(tmp_path: Path) -> None:
    """Guard against comparing the model with itself: the second LP has more rows (its named flows)."""
    path = tmp_path / "shape.xlsx"
    indep_plan.write_plan(path, indep_plan.make_plan(20, 30, 4, 8, seed=9))
    ours = build_model(api.load_workbook(path)).lp
    b = formulation2.build(str(path))
    assert b.n_rows > ours.n_rows and b.n_cols > ours.n_cols
