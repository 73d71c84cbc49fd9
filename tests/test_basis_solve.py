"""The block triangular solves (`planner.solve.basis_solve`) against an independent solver (SuperLU through
``scipy.sparse.linalg.spsolve``), and the price checks' two ways of asking the basis — all rows at once through
the block triangular form, one HiGHS basis solve per row — against each other on solved plans under every
policy (the final stage's session, with the policy's holds in place)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from planner import api
from planner.io.generate import generate_frames
from planner.model.build import build_model
from planner.report.template import write_input_workbook
from planner.solve import sessions
from planner.solve.basis_solve import BlockTriangular
from planner.solve.policy import solve_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import indep_plan  # noqa: E402


def planted(m: int, seed: int) -> sp.csr_matrix:
    """A nonsingular m × m matrix that is block lower triangular under hidden row and column permutations,
    with diagonal blocks of 1 to 12 unknowns (each dense enough to be one strongly connected block)."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < m:
        sizes.append(int(min(m - sum(sizes), rng.choice([1, 1, 1, 2, 5, 12]))))
    dense = np.zeros((m, m))
    at = 0
    for s in sizes:
        dense[at:at + s, at:at + s] = rng.normal(size=(s, s)) + 4 * s * np.eye(s)  # diagonally dominant
        at += s
    low = np.tril(rng.normal(size=(m, m)) * (rng.random((m, m)) < 3.0 / m), -1)
    dense += low
    rows, cols = rng.permutation(m), rng.permutation(m)
    return sp.csr_matrix(dense[rows][:, cols])


@pytest.mark.parametrize("seed", range(6))
def test_block_solves_match_superlu(seed: int) -> None:
    M = planted(240, seed)
    bt = BlockTriangular(M)
    assert bt.largest_block > 1 and bt.n_blocks < 240  # the plant has larger blocks: they are found as such
    rng = np.random.default_rng(100 + seed)
    b = rng.normal(size=(240, 3))
    want = spsolve(M.tocsc(), b)
    np.testing.assert_allclose(bt.solve(b), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bt.solve(b[:, 0]), want[:, 0], rtol=1e-9, atol=1e-9)
    rows = rng.choice(240, size=50, replace=False)
    inverse = np.linalg.inv(M.toarray())
    seen = 0
    for part, y in bt.unit_columns(rows, chunk=16):
        z = np.empty_like(y)
        z[bt.unknown] = y  # back from the layout of the solves to M's columns
        np.testing.assert_allclose(z, inverse[:, rows[part]], rtol=1e-8, atol=1e-9)
        seen += y.shape[1]
    assert seen == len(rows)


def test_structurally_singular_is_refused() -> None:
    M = sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [5.0, 6.0, 0.0]]))
    with pytest.raises(np.linalg.LinAlgError):
        BlockTriangular(M)


def test_explicit_zero_is_not_a_pivot() -> None:
    # stored zeros on the diagonal: the matching must use the real entries (the off-diagonal ones)
    M = sp.csr_matrix((np.array([0.0, 2.0, 3.0, 0.0]), (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))),
                      shape=(2, 2))
    np.testing.assert_allclose(BlockTriangular(M).solve(np.array([4.0, 9.0])), [3.0, 2.0])


def _plans(tmp_path: Path) -> list[tuple[Path, str]]:
    out = []
    # seeds chosen so that some sides are refused (a degenerate basis): 5 priority, 6 and 7 fair_share
    for seed, policy in ((3, "margin"), (5, "priority"), (6, "fair_share"), (7, "fair_share")):
        fr = generate_frames(14, 18, 4, 10, seed)
        st = fr["Settings"].set_index("key")
        st.loc["policy", "value"] = policy
        fr["Settings"] = st.reset_index()
        out.append((write_input_workbook(tmp_path / f"g{seed}.xlsx", fr), policy))
    for seed in (1,):
        path = tmp_path / f"i{seed}.xlsx"
        indep_plan.write_plan(path, indep_plan.make_plan(40, 50, 6, 12, seed=seed))
        out.append((path, "margin"))
    return out


def test_both_ways_of_asking_the_basis_agree(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sessions, "BLOCK_SOLVE_MIN_ROWS", 1)
    real = sessions.HighsSession.one_unit_vouched
    asked: list[tuple[np.ndarray, np.ndarray]] = []

    def both(self, rows, stop=None):
        got = real(self, rows, stop)  # through the block triangular form
        monkeypatch.setattr(sessions, "BLOCK_SOLVE_MIN_ROWS", 10**9)
        try:
            ref = real(self, rows, stop)  # one HiGHS basis solve per row
        finally:
            monkeypatch.setattr(sessions, "BLOCK_SOLVE_MIN_ROWS", 1)
        assert got is not None and ref is not None
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
        asked.append(got)
        return got

    monkeypatch.setattr(sessions.HighsSession, "one_unit_vouched", both)
    policies = set()
    for path, policy in _plans(tmp_path):
        model = build_model(api.load_workbook(path))
        before = len(asked)
        sol = solve_model(model, solver="highs", method="simplex", policy=policy)
        assert sol.status == "optimal"
        if len(asked) > before:
            policies.add(policy)
    # a comparison on nothing proves nothing: rows were asked under every policy, and both answers occur
    assert policies == {"margin", "priority", "fair_share"}, policies
    up = np.concatenate([a[0] for a in asked])
    down = np.concatenate([a[1] for a in asked])
    assert len(up) > 100 and up.any() and down.any()
    assert not (up.all() and down.all()), "every side vouched: the cases do not exercise a refusal"


def test_basis_snapshot_is_the_basis_when_taken() -> None:
    """``Solution.basis`` is made from HiGHS's copy kept at the solve: re-solves on the same session after it
    (the price checks') do not change it."""
    from planner.solve.sessions import HighsSession

    model = build_model(api.load_workbook(ROOT / "inputs" / "example.xlsx"))
    s = HighsSession(model.lp)
    assert s.run().status == "optimal"
    snap, before = s.basis_snapshot(), s.basis()
    s.set_objective(-model.lp.objective())  # another optimum, another basis
    assert s.run().status == "optimal"
    after = s.basis()
    assert any((a != b).any() for a, b in zip(before, after, strict=True))
    assert all((a == b).all() for a, b in zip(before, snap(), strict=True))


def test_a_solution_pickles_with_its_basis() -> None:
    import pickle

    sol = solve_model(build_model(api.load_workbook(ROOT / "inputs" / "example.xlsx")))
    again = pickle.loads(pickle.dumps(sol))
    assert all((a == b).all() for a, b in zip(sol.basis, again.basis, strict=True))


def _overflowing() -> sp.csc_matrix:
    """Lower triangular, so every block is 1×1: for e_0, y0 = 1/1e-200 = 1e200, y1 = −1e200·y0 = −inf,
    y2 = −(1e200·y0 + y1) = −(inf − inf) = NaN."""
    return sp.csc_matrix(np.array([[1e-200, 0.0, 0.0], [1e200, 1.0, 0.0], [1e200, 1.0, 1.0]]))


@pytest.mark.parametrize("M", [_overflowing(), sp.csc_matrix(np.array([[1e-320]]))])
def test_a_solve_that_is_not_finite_is_refused(M) -> None:
    """A NaN or infinity is never handed back as a solution (the price checks' comparisons would pass it)."""
    with pytest.raises(np.linalg.LinAlgError):
        bt = BlockTriangular(M)
        bt.solve(np.eye(M.shape[0]))
        list(bt.unit_columns(np.arange(M.shape[0])))


def test_a_non_finite_move_never_vouches() -> None:
    """Unknown 0 moves by 1e200 per unit of row 0 (room 5 either way), so neither side may be vouched for; the
    solve's NaN (see _overflowing) once hid that: every comparison with it was False, so nothing was 'beyond'
    and both sides were vouched for. Now the block path refuses (its caller asks HiGHS row by row instead)."""
    ask = sessions.VouchAsk(up=np.zeros(1, bool), down=np.zeros(1, bool), solve=np.array([0]),
                            targets=np.array([0]), M=_overflowing(), val=np.full(3, 5.0), lo=np.zeros(3),
                            hi=np.full(3, 10.0))
    with pytest.raises(np.linalg.LinAlgError):
        ask.decide()


def test_decide_counts_a_nan_as_crossing_a_bound(monkeypatch) -> None:
    """Whatever the solver hands back, a NaN move is read as crossing a bound: unknown 1's move is NaN."""
    class NaNSolves:
        def __init__(self, M):
            self.unknown = np.arange(2)

        def unit_columns(self, rows):
            yield slice(0, 1), np.array([[0.5], [np.nan]])

    monkeypatch.setattr("planner.solve.basis_solve.BlockTriangular", NaNSolves)
    ask = sessions.VouchAsk(up=np.zeros(1, bool), down=np.zeros(1, bool), solve=np.array([0]),
                            targets=np.array([0]), M=sp.identity(2, format="csc"), val=np.full(2, 5.0),
                            lo=np.zeros(2), hi=np.full(2, 10.0))
    up, down = ask.decide()
    assert not up[0] and not down[0]
