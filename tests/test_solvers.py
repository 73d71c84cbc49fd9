"""Both solver paths against each other on random plans. Kept out of test_model.py, whose autouse fixture runs
every test on both paths: these tests name their solvers themselves and would otherwise run twice."""

from __future__ import annotations

import pytest
from test_model import SEEDS, random_frames

from planner import api
from planner.io.load import plan_from_frames


@pytest.mark.parametrize("seed", SEEDS[:8])
def test_highs_and_cbc_agree(seed):
    p = plan_from_frames(random_frames(seed))
    a = api.run(p, solver="highs").results.summary["objective"]
    b = api.run(p, solver="cbc").results.summary["objective"]
    assert a == pytest.approx(b, rel=1e-6, abs=1e-2)
