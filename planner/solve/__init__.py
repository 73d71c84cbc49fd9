"""Solver sessions and the allocation policies (see ``policy``); warm re-solves for batches (``warm``)."""

from planner.solve.policy import (
    HighsSession,
    PulpSession,
    Solution,
    SolverError,
    check_feasibility,
    make_session,
    run_policy,
    solve_model,
    to_pulp,
)

__all__ = ["HighsSession", "PulpSession", "Solution", "SolverError", "check_feasibility", "make_session",
           "run_policy", "solve_model", "to_pulp"]
