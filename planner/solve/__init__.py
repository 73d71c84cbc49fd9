"""Solver sessions and the allocation policies (see ``policy``); warm re-solves for batches (``warm``)."""

from planner.solve.policy import Solution, check_feasibility, run_policy, solve_model
from planner.solve.sessions import HighsSession, PulpSession, SolverError, make_session, to_pulp

__all__ = ["HighsSession", "PulpSession", "Solution", "SolverError", "check_feasibility", "make_session",
           "run_policy", "solve_model", "to_pulp"]
