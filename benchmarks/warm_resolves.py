"""Re-solves from a basis with and without HiGHS's simplex perturbation, one at a time on one thread (CPU s).

    python benchmarks/warm_resolves.py PLAN.xlsx [--programs 2] [--lifts]

R&D impact's shifts (each of the ``--programs`` programs whose products face the most demand, one quarter
earlier and later) from the base plan's basis, by dual and primal simplex, with HiGHS's perturbation (its
default) and without it (what ``HighsSession`` does from a basis: ``WARM_PERTURBATION``); with ``--lifts``,
the explanation's warm lifts too. The objective of every pair is printed, so that a faster path that lands
elsewhere shows. models/explain.md, "Re-solves without the simplex's perturbation".
"""

from __future__ import annotations

import argparse
import time

from planner import api
from planner.analysis import explain
from planner.analysis.rd_impact import shift_program
from planner.analysis.resolves import Base, _base_model, embed
from planner.model.build import build_model
from planner.solve import sessions
from planner.solve.sessions import HighsSession

WAYS = {"dual": (1, 1.0), "dual, no perturbation": (1, 0.0), "primal": (4, 1.0), "primal, no perturbation": (4, 0.0)}


def _timed(session: HighsSession, start, strategy: int, pert: float) -> str:
    sessions.WARM_PERTURBATION = pert
    assert session.set_basis(start)
    session.h.setOptionValue("solver", "simplex")
    session.h.setOptionValue("simplex_strategy", strategy)
    c = time.thread_time()
    res = session.run()
    info = session.h.getInfo()
    return (f"{time.thread_time() - c:6.1f} s CPU, {info.simplex_iteration_count:>6} pivots, {res.status}, "
            f"objective {info.objective_function_value:.12e}")


def shifts(plan, base: Base, programs: int) -> None:
    used_by = plan.bom.merge(plan.products[["product", "program"]], on="product")
    demand_of = plan.demand.groupby("platform")["units"].sum()
    weight = used_by.drop_duplicates(["program", "platform"]).assign(
        d=lambda x: x["platform"].map(demand_of).fillna(0)).groupby("program")["d"].sum()
    for prog in weight.sort_values(ascending=False).index[:programs]:
        for q in (-1, 1):
            model = build_model(shift_program(plan, prog, q), gates_as_bounds=True)
            arrays, _ = embed(_base_model(base.plan), model)
            for way, (strategy, pert) in WAYS.items():
                print(f"R&D shift {prog} {q:+d} quarter, {way}: "
                      f"{_timed(HighsSession(arrays), base.start, strategy, pert)}", flush=True)


def lifts(plan) -> None:
    lf = explain.Lifter(plan)
    fams = lf.families()
    sessions.WARM_PERTURBATION = 0.0

    def solve(lifted, start=None, how=None):
        c = time.thread_time()
        out = lf.outcome_with(tuple(lifted), start, how, keep=True)
        return out, time.thread_time() - c

    every, t = solve(fams)
    print(f"all lifted, interior point: {t:.1f} s CPU", flush=True)
    base, t = solve([])
    print(f"base (nothing lifted), interior point: {t:.1f} s CPU", flush=True)
    for way, (strategy, pert) in WAYS.items():
        sessions.WARM_PERTURBATION = pert
        _, t = solve(["policy"] if "policy" in fams else fams[:1], base[1], strategy)
        print(f"the policy alone (or {fams[0]}) from the base basis, {way}: {t:.1f} s CPU", flush=True)
    sessions.WARM_PERTURBATION = 0.0
    for f in (f for f in fams if f not in explain.CAPACITY):  # a capacity family: from scratch (see the doc)
        _, t = solve([g for g in fams if g != f], every[1], 1)
        print(f"all but {f}, dual simplex from all lifted, no perturbation: {t:.1f} s CPU", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plan")
    ap.add_argument("--programs", type=int, default=2)
    ap.add_argument("--lifts", action="store_true")
    a = ap.parse_args()
    plan = api.load_workbook(a.plan)
    explain.PREFETCH = False
    c = time.process_time()
    run = api.run(plan)
    print(f"base run: {time.process_time() - c:.1f} s CPU, {run.model.lp.n_cols:,} columns", flush=True)
    shifts(plan, Base(run), a.programs)
    if a.lifts:
        lifts(plan)


if __name__ == "__main__":
    main()
