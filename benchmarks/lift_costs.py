"""Where the shortfall explanation's time goes: each lift of the estimate timed on one thread (CPU s).

    python benchmarks/lift_costs.py PLAN.xlsx

e.g. on `planner generate --platforms 380 --products 520 --fabs 30 --quarters 30` (143k columns). The prefetch
during the base solve is off here, so every lift is timed on its own (models/explain.md, "What it costs").
"""

from __future__ import annotations

import sys
import time

from planner import api
from planner.analysis import explain
from planner.analysis.resolves import Runner


def main(path: str) -> None:
    plan = api.load_workbook(path)
    explain.PREFETCH = False
    t, w = time.process_time(), time.perf_counter()
    run = api.run(plan)
    print(f"base run_plan: CPU {time.process_time() - t:.1f} s, wall {time.perf_counter() - w:.1f} s, "
          f"{run.model.lp.n_cols:,} columns", flush=True)
    orig = explain.Lifter.outcome_with

    def timed(self, families, start=None, how=None, keep=False):
        t, w = time.thread_time(), time.perf_counter()
        out = orig(self, families, start, how, keep)
        warm = "from a basis" if start is not None and (how or families in explain.WARM_LIFTS) else "interior point"
        print(f"  lifted {', '.join(families)}: CPU {time.thread_time() - t:.1f} s, wall "
              f"{time.perf_counter() - w:.1f} s ({warm})", flush=True)
        return out

    explain.Lifter.outcome_with = timed
    w = time.perf_counter()
    causes = explain.explain_shortfalls(run, Runner(workers=1))
    print(f"causes on one thread: {time.perf_counter() - w:.1f} s wall, {len(causes):,} rows")


if __name__ == "__main__":
    main(sys.argv[1])
