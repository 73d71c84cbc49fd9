"""Policy stages (``models/formulation.md``, "Policies as sequences of LPs"): the rows and columns a stage adds to a
solver session on top of the built LP, one builder per label, each named so both back-ends show them.

They act on a :class:`~planner.solve.sessions.Session`, not on the :class:`LinearProgram`, because a stage
depends on the optimum of the stage before it.
"""

from __future__ import annotations

import numpy as np

from planner.model.build import Model


def served_columns(model: Model, platforms: list[str]) -> np.ndarray:
    """Columns Y_{pot} of the given platforms (Σ over options and quarters is what they are served)."""
    sel = model.y["platform"].isin(platforms).to_numpy()
    return model.y["col"].to_numpy()[sel]


def add_priority_hold(session, model: Model, tier: int, platforms: list[str], level: float) -> int:
    """`priority_hold`: Σ_{p in tier k} Σ_t Y_{pt} ≥ level — later stages keep what tier k was given."""
    cols = served_columns(model, platforms)
    return session.add_row(cols, np.ones(len(cols)), level, np.inf, name=f"priority_hold_{tier}")


def add_fair_share(session, model: Model, tier: int, platforms: list[str], demand: dict[str, float]) -> int:
    """`fair_share`: a column z_k ∈ [0, 1] and, for each p in tier k with demand, Σ_t Y_{pt} − z_k Σ_t D_{pt} ≥ 0.

    Returns the position of z_k (the stage maximises it, then holds it)."""
    z = session.add_col(0.0, 0.0, 1.0, np.zeros(0, dtype=np.int64), np.zeros(0), name=f"fair_share_z_{tier}")
    for i, p in enumerate(platforms):
        cols = np.append(served_columns(model, [p]), z)
        vals = np.append(np.ones(len(cols) - 1), -demand[p])
        session.add_row(cols, vals, 0.0, np.inf, name=f"fair_share_{tier}_{i}")
    return z
