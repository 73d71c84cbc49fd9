"""Many solves with one basis matrix at once, by its block triangular form.

Why this exists: the capacity price checks ask, for every binding capacity row the report talks about, how the
basic variables move per unit of that row's bound (``models/formulation.md``, "When the shadow price is not
unique"): one solve ``B d = e_r`` per row. Through HiGHS (``getBasisSolve``) each is a dense FTRAN — 0.7 ms on
the 27,867-row basis of a 416k-column plan, 3.1 s for its 4,410 rows, after the plan is solved and before its
report can say what a wafer is worth. The basis matrices of these plans are almost triangular: once a matching
puts a nonzero on every diagonal place, that basis has 26,185 strongly connected components, all but two of a
single variable, in 72 dependency levels. So a block of right-hand sides is solved level by level (the block
triangular form of Duff and Reid): a level's unknowns from the levels before it by one sparse product, each
1×1 block by its forced diagonal entry, the few larger blocks by a sparse LU of their own. No pivot is chosen
across blocks, so this is forward substitution on a permutation of ``B``, as exact as the triangular solve.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph
from scipy.sparse.linalg import splu

CHUNK_CELLS = 8_000_000  # right-hand sides solved together: at most this many dense cells (64 MB)


class BlockTriangular:
    """A square sparse matrix ``M`` prepared for many solves ``M z = b``.

    Raises :class:`numpy.linalg.LinAlgError` when ``M`` is structurally singular (no perfect matching) or a
    solve does not come out finite (a pivot so small its inverse overflows, or entries so large their products
    do), and ``RuntimeError`` (from SuperLU) when a diagonal block is numerically singular: a basis never is, so
    each means the caller should solve another way. A non-finite answer is never returned: the price checks
    read "no bound is crossed" from comparisons that a NaN fails silently, so a NaN would vouch for a price."""

    def __init__(self, M: sp.spmatrix):
        M = sp.csr_matrix(M, dtype=float)
        M.eliminate_zeros()  # an explicit zero must not be matched onto the diagonal
        m = M.shape[0]
        if M.shape != (m, m):
            raise ValueError(f"a square matrix is needed, not {M.shape}")
        match = csgraph.maximum_bipartite_matching(M, perm_type="column")  # row i ↔ unknown match[i]
        if (match < 0).any():
            raise np.linalg.LinAlgError("the basis matrix is structurally singular")
        P = M[:, match].tocsr()  # P[i, i] != 0; equation i in the unknowns y = z[match]
        n_comp, comp = csgraph.connected_components(P, directed=True, connection="strong")
        coo = P.tocoo()
        across = comp[coo.row] != comp[coo.col]
        level = _levels(n_comp, comp[coo.col[across]], comp[coo.row[across]])[comp]
        within = sp.csr_matrix((np.where(across, 0.0, coo.data), (coo.row, coo.col)), shape=(m, m))
        off = sp.csr_matrix((np.where(across, coo.data, 0.0), (coo.row, coo.col)), shape=(m, m))
        off.eliminate_zeros()
        sizes = np.bincount(comp, minlength=n_comp)
        # equations (and their matched unknowns) laid out level by level, a level's 1×1 blocks first, then each
        # larger block in one piece: every step below works on a contiguous slice, never a scattered index
        perm = np.lexsort((comp, sizes[comp] > 1, level))
        q_within = within[perm][:, perm].tocsr()
        q_off = off[perm][:, perm].tocsr()
        self.m = m
        self.n_blocks = int(n_comp)
        self.largest_block = int(sizes.max(initial=0))
        self.perm = perm  # position p holds equation (row of M) perm[p] ...
        self.unknown = match[perm]  # ... and unknown (column of M) unknown[p]
        self.position = np.empty(m, dtype=np.int64)  # equation (row of M) r sits at position[r]
        self.position[perm] = np.arange(m)
        with np.errstate(divide="ignore", over="ignore"):
            self.inv_diag = 1.0 / q_within.diagonal()
        if not np.isfinite(self.inv_diag).all():  # a 1×1 block's entry too small to divide by
            raise np.linalg.LinAlgError("a diagonal entry of the basis matrix is too small to divide by")
        lv, big, cp = level[perm], (sizes[comp] > 1)[perm], comp[perm]
        edges = np.flatnonzero(np.diff(lv)) + 1
        self.levels: list[tuple[int, int, sp.csr_matrix | None, int, list]] = []
        for s, e in zip(np.r_[0, edges], np.r_[edges, m], strict=True):
            s, e = int(s), int(e)
            single_end = s + int((~big[s:e]).sum())
            blocks = []
            b_edges = np.flatnonzero(np.diff(cp[single_end:e])) + 1 + single_end
            for bs, be in zip(np.r_[single_end, b_edges], np.r_[b_edges, e], strict=True):
                if be > bs:
                    blocks.append((int(bs), int(be), splu(q_within[bs:be, bs:be].tocsc())))
            n_l = q_off[s:e, :s]
            self.levels.append((s, e, n_l if n_l.nnz else None, single_end, blocks))

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``z`` with ``M z = b``, for a dense ``b`` of shape (m,) or (m, k)."""
        b = np.asarray(b, dtype=float)
        y = b.reshape(self.m, -1)[self.perm]  # b's row r at position[r] (a copy: fancy indexing)
        self._forward(y)
        z = np.empty_like(y)
        z[self.unknown] = y
        return z.reshape(b.shape)

    def unit_columns(self, rows: np.ndarray, chunk: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """``M⁻¹ e_r`` for each ``r`` in ``rows``, a block of columns at a time: (which of ``rows``, y), where
        ``y`` (m × k) holds the unknowns in this object's layout — ``y[p]`` is unknown ``unknown[p]`` — so that
        the caller permutes its own per-unknown arrays once instead of every block."""
        rows = np.asarray(rows, dtype=np.int64)
        k = chunk or max(1, min(4096, CHUNK_CELLS // max(1, self.m)))
        for start in range(0, len(rows), k):
            part = rows[start:start + k]
            y = np.zeros((self.m, len(part)))
            y[self.position[part], np.arange(len(part))] = 1.0
            self._forward(y)
            yield slice(start, start + len(part)), y

    def _forward(self, y: np.ndarray) -> None:
        """Forward substitution level by level, in place: ``y`` holds the right-hand side in this object's
        layout on entry and the solution on return (a level reads only the levels before it, which are solved,
        and its own right-hand side, which nothing has touched yet). Raises :class:`numpy.linalg.LinAlgError`
        if the solution is not finite everywhere (the right-hand sides given are finite)."""
        with np.errstate(over="ignore", invalid="ignore"):  # what overflows is refused below, not printed
            for s, e, n_l, single_end, blocks in self.levels:
                if n_l is not None:
                    y[s:e] -= n_l @ y[:s]
                y[s:single_end] *= self.inv_diag[s:single_end, None]
                for bs, be, lu in blocks:
                    y[bs:be] = lu.solve(y[bs:be])
        if not np.isfinite(y).all():
            raise np.linalg.LinAlgError("the basis solve did not come out finite")


def _levels(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Each node's level in a DAG (edges src → dst: dst needs src): 0 for nodes that need nothing, else one
    more than the highest level among what it needs (Kahn's layers, one numpy pass per layer)."""
    edges = sp.csr_matrix((np.ones(len(src), dtype=np.int32), (src, dst)), shape=(n, n))
    edges.sum_duplicates()
    edges.data[:] = 1
    waiting = np.asarray(edges.sum(axis=0)).ravel()
    level = np.full(n, -1, dtype=np.int64)
    frontier = np.flatnonzero(waiting == 0)
    k = 0
    while len(frontier):
        level[frontier] = k
        k += 1
        freed = np.bincount(edges[frontier].indices, minlength=n)
        waiting -= freed
        frontier = np.flatnonzero((waiting == 0) & (freed > 0))
    if (level < 0).any():  # pragma: no cover - the components of a graph form a DAG
        raise RuntimeError("the block graph has a cycle")
    return level
