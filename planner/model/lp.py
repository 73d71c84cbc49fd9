"""A solver-independent LP held as labelled arrays (after linopy): column blocks and row blocks, each with a
frame mapping its positions back to the user's ids, and the constraint matrix as COO triplets.

Why not PuLP objects directly: at 10^5–10^6 columns, one Python object per term costs more than the solve
(``shared/notes/solver-facts.md``). The same arrays are handed to HiGHS as a CSC matrix, or turned into a
PuLP problem (:func:`planner.solve.sessions.to_pulp`) for CBC and any other PuLP solver, so both paths solve the very
same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

INF = np.inf


@dataclass
class Block:
    """A contiguous range of columns (variables) or rows (constraints) sharing a label."""

    label: str
    start: int
    index: pd.DataFrame  # one row per column/row of the block, with the domain ids

    @property
    def size(self) -> int:
        return len(self.index)

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size)


@dataclass
class LinearProgram:
    """Columns and rows added block by block; the objective is kept per term so reports can split it."""

    col_blocks: dict[str, Block] = field(default_factory=dict)
    row_blocks: dict[str, Block] = field(default_factory=dict)
    col_lower: list[np.ndarray] = field(default_factory=list)
    col_upper: list[np.ndarray] = field(default_factory=list)
    row_lower: list[np.ndarray] = field(default_factory=list)
    row_upper: list[np.ndarray] = field(default_factory=list)
    _rows: list[np.ndarray] = field(default_factory=list)
    _cols: list[np.ndarray] = field(default_factory=list)
    _vals: list[np.ndarray] = field(default_factory=list)
    terms: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    term_sign: dict[str, float] = field(default_factory=dict)
    n_cols: int = 0
    n_rows: int = 0
    # the assembled matrix, kept once built (a 416k-column plan: 0.13 s per assembly, asked by the session, the
    # price checks and the feasibility check); dropped by every add and from pickles (batches, cluster workers)
    _matrix: sp.csc_matrix | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_matrix": None}

    def add_cols(self, label: str, index: pd.DataFrame, lower: float | np.ndarray = 0.0,
                 upper: float | np.ndarray = INF) -> np.ndarray:
        if label in self.col_blocks:  # as linopy does: a label names one block, never silently two
            raise ValueError(f"column block {label!r} already assigned to the model")
        n = len(index)
        block = Block(label, self.n_cols, index.reset_index(drop=True))
        self.col_blocks[label] = block
        self.col_lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (n,)).copy())
        self.col_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (n,)).copy())
        self.n_cols += n
        self._matrix = None
        return block.positions

    def add_rows(self, label: str, index: pd.DataFrame, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                 lower: float | np.ndarray = -INF, upper: float | np.ndarray = INF) -> np.ndarray:
        """Add a row block; ``rows`` are positions *within* the block (0..len(index)-1)."""
        if label in self.row_blocks:
            raise ValueError(f"row block {label!r} already assigned to the model")
        n = len(index)
        block = Block(label, self.n_rows, index.reset_index(drop=True))
        self.row_blocks[label] = block
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (n,)).copy())
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (n,)).copy())
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"{label}: row position out of range")
        self._rows.append(rows + self.n_rows)
        self._cols.append(np.asarray(cols, dtype=np.int64))
        self._vals.append(np.asarray(vals, dtype=float))
        self.n_rows += n
        self._matrix = None
        return block.positions

    def add_coefficients(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        """Entries of columns in rows that already exist (absolute row positions): a column family added after
        the rows it enters (the hedged plan's `excess_output`, ``models/hedge.md``)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise ValueError("add_coefficients: row position out of range")
        self._rows.append(rows)
        self._cols.append(np.asarray(cols, dtype=np.int64))
        self._vals.append(np.asarray(vals, dtype=float))
        self._matrix = None

    def add_term(self, name: str, cols: np.ndarray, coefs: np.ndarray, sign: float) -> None:
        """An objective term: ``sign * Σ coefs · x[cols]``; sign +1 for revenue, −1 for costs."""
        if name in self.terms:
            c0, v0 = self.terms[name]
            cols, coefs = np.concatenate([c0, cols]), np.concatenate([v0, coefs])
        self.terms[name] = (np.asarray(cols, dtype=np.int64), np.asarray(coefs, dtype=float))
        self.term_sign[name] = sign

    # ---- assembled arrays -------------------------------------------------------------------------------
    def objective(self) -> np.ndarray:
        c = np.zeros(self.n_cols)
        for name, (cols, coefs) in self.terms.items():
            np.add.at(c, cols, self.term_sign[name] * coefs)
        return c

    def term_values(self, x: np.ndarray) -> dict[str, float]:
        return {name: float(np.dot(coefs, x[cols])) for name, (cols, coefs) in self.terms.items()}

    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
        return cat(self.col_lower), cat(self.col_upper), cat(self.row_lower), cat(self.row_upper)

    def matrix(self) -> sp.csc_matrix:
        """The constraint matrix (CSC), built once and shared: read-only (an attempt to change it in place
        raises) — ``.tocsr()``, ``.tocoo()`` or ``.copy()`` give a matrix of one's own."""
        if self._matrix is None:
            rows = np.concatenate(self._rows) if self._rows else np.zeros(0, dtype=np.int64)
            cols = np.concatenate(self._cols) if self._cols else np.zeros(0, dtype=np.int64)
            vals = np.concatenate(self._vals) if self._vals else np.zeros(0)
            keep = vals != 0
            A = sp.coo_matrix((vals[keep], (rows[keep], cols[keep])), shape=(self.n_rows, self.n_cols)).tocsc()
            for part in (A.data, A.indices, A.indptr):
                part.flags.writeable = False
            self._matrix = A
        return self._matrix

    def col_names(self) -> list[str]:
        return [f"{b.label}_{i}" for b in self.col_blocks.values() for i in range(b.size)]

    def row_names(self) -> list[str]:
        return [f"{b.label}_{i}" for b in self.row_blocks.values() for i in range(b.size)]

    def cols(self, label: str) -> np.ndarray:
        b = self.col_blocks.get(label)
        return b.positions if b is not None else np.zeros(0, dtype=np.int64)

    def rows(self, label: str) -> np.ndarray:
        b = self.row_blocks.get(label)
        return b.positions if b is not None else np.zeros(0, dtype=np.int64)

    @property
    def size(self) -> dict[str, int]:
        return {"columns": self.n_cols, "rows": self.n_rows, "nonzeros": int(sum(len(v) for v in self._vals))}
