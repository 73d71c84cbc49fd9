"""Review of issue 16 (policies keep their promise): defects found by an adversarial review, each with a
hand-derived answer in the docstring."""

from __future__ import annotations

import pytest
from builders import plan

from planner import api


def _tied_tier_one(policy: str, first: str = "A", second: str = "B"):
    """Tier 1: ``first`` needs 8 P at $10; ``second`` needs 8 P at $10 and 8 Q at $0 (Q earns nothing). Tier 2:
    L needs 1 Q at $5. Fab F makes 1,000 P, fab G 1,000 Q, wafers free; demand A 100, B 100, L 1,000."""
    plats = [{"platform": first, "priority": 1, "shortfall_penalty": 0},
             {"platform": second, "priority": 1, "shortfall_penalty": 0},
             {"platform": "L", "priority": 2, "shortfall_penalty": 0}]
    prods = [{"product": "P"}, {"product": "Q", "node": "n2", "price": 0}]
    fabs = [{"fab": "F", "node": "n1", "wafers_per_quarter": 100, "wafer_cost": 0},
            {"fab": "G", "node": "n2", "wafers_per_quarter": 100, "wafer_cost": 0}]
    bom = [{"platform": first, "option": "o", "product": "P", "units_per_platform": 8, "price": 10},
           {"platform": second, "option": "o", "product": "P", "units_per_platform": 8, "price": 10},
           {"platform": second, "option": "o", "product": "Q", "units_per_platform": 8, "price": 0},
           {"platform": "L", "option": "o", "product": "Q", "units_per_platform": 1, "price": 5}]
    dem = [{"platform": p, "period": "2026Q1", "units": u} for p, u in ((first, 100), (second, 100), ("L", 1000))]
    return plan(quarters=1, settings={"policy": policy}, products=prods, fabs=fabs, platforms=plats, bom=bom,
                demand=dem)


@pytest.mark.parametrize("solver", ["highs", "cbc"])
@pytest.mark.parametrize("names", [("A", "B"), ("B", "A")])
def test_priority_breaks_a_tier_one_tie_in_favour_of_the_lower_tier(solver, names):
    """Stage 1 (tier 1 alone): 1,000 P serve 125 tier-1 units, $80 each whichever platform gets them: every split
    with first + second = 125 is optimal ($10,000). The split decides what tier 2 gets: each unit of ``second``
    also takes 8 Q that L needs. The best tier-1-optimal plan serves ``first`` 100 and ``second`` 25 (200 Q), so L
    gets 800: $10,000 + $4,000 = $14,000 (the margin policy's plan too). Holding whatever split the solver
    happened to pick served ``second`` 100 and ``first`` 25, L only 200 ($11,000): tier 2 lost 600 units that no
    tier-1 platform needed, on both solvers and with the names swapped."""
    first, second = names
    run = api.run(_tied_tier_one("priority", first, second), solver=solver)
    s = run.results.service.groupby("platform")["served"].sum()
    assert (s[first], s[second], s["L"]) == pytest.approx((100, 25, 800), rel=1e-9)
    assert run.results.summary["objective"] == pytest.approx(14_000, rel=1e-9)
