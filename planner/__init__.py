"""planner: a memory supply-chain capacity planner (HBM and LPDDR for AI platforms) built on a linear program.

Pipeline: read → validate → build → solve → extract → report. The library API is in :mod:`planner.api`.
"""

__version__ = "0.1.0"
