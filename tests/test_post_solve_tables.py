"""The tables made right after the solve, on arrays instead of per group or per key (issue 22: at 416k LP columns
``reconcile`` took 0.2 s and the P&L's per-key lookups 0.06 s): the same messages in the same order, and the same
numbers bit for bit, as the per-group pandas code they replaced, which is kept here as the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_model import random_frames

from planner import api
from planner.analysis.pnl import pnl
from planner.analysis.results import _cumsum, reconcile
from planner.io.load import plan_from_frames


def reference_reconcile(res, backlog: bool, tol: float = 1e-6) -> list[str]:
    """``reconcile`` as it was: one pandas group (product, platform) and one (product, period) key at a time."""
    issues: list[str] = []

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))

    sup = res.supply
    for prod, g in sup.groupby("product", sort=False):
        inv0 = g["inventory_end"].iloc[0] - g["output_units"].iloc[0] + g["shipped_units"].iloc[0]
        cum_avail = inv0 + g["output_units"].cumsum()
        if (g["shipped_units"].cumsum() > cum_avail + tol * np.maximum(1, cum_avail)).any():
            issues.append(f"{prod}: shipped more than made plus on hand")
        if (g["inventory_end"] < -tol).any():
            issues.append(f"{prod}: negative inventory")
    alloc_mem = res.allocation.groupby(["product", "period"])["memory_units"].sum()
    shipped = sup.set_index(["product", "period"])["shipped_units"]
    for key, v in alloc_mem.items():
        if not close(v, shipped.get(key, 0.0)):
            issues.append(f"{key}: allocation {v:,.0f} ≠ shipped {shipped.get(key, 0.0):,.0f}")
    cap = res.capacity
    over = cap[cap["used"] > cap["capacity"] + tol * np.maximum(1.0, cap["capacity"])]
    issues += [f"{r.resource} {r.period}: used {r.used:,.0f} > capacity {r.capacity:,.0f}" for r in over.itertuples()]
    svc = res.service
    if not backlog:
        bad = svc[svc["served"] > svc["demand"] + tol * np.maximum(1.0, svc["demand"])]
        issues += [f"{r.platform} {r.period}: served more than demand" for r in bad.itertuples()]
        bad = svc[~np.isclose(svc["served"] + svc["shortfall"], svc["demand"], rtol=tol, atol=1e-3)]
        issues += [f"{r.platform} {r.period}: served + shortfall ≠ demand" for r in bad.itertuples()]
    else:
        for plat, g in svc.groupby("platform"):
            if (g["served"].cumsum() > g["demand"].cumsum() * (1 + tol) + 1e-3).any():
                issues.append(f"{plat}: cumulative served exceeds cumulative demand")
    return issues


def solved(seed: int, backlog: str):
    f = random_frames(seed)
    f["Settings"].loc[f["Settings"]["key"] == "backlog", "value"] = backlog
    f["Demand"]["units"] *= 20  # more than the fabs make: shortfalls (and penalties) on every seed
    run = api.run(plan_from_frames(f))
    assert run.results.summary["status"] == "optimal" and run.results.backlog == (backlog == "true")
    return run


def tamper(res, rng: np.random.Generator, backlog: bool) -> None:
    """Break every relation ``reconcile`` checks somewhere (and leave most rows alone), in place."""
    sup = res.supply
    products = sup["product"].unique()
    for prod in rng.choice(products, size=max(1, len(products) // 2), replace=False):
        rows = sup.index[sup["product"] == prod]
        shipping = sup.index[(sup["product"] == prod) & (sup["shipped_units"] > 0)]  # allocated there too
        r = rng.choice(shipping if len(shipping) else rows)
        sup.loc[r, "shipped_units"] += 1e6 + sup.loc[r, "shipped_units"]  # more shipped than made, ≠ allocation
        sup.loc[rng.choice(rows), "inventory_end"] = -5.0
    shipping = sup.index[sup["shipped_units"] > 0]
    assert len(shipping)
    sup.loc[rng.choice(shipping), "shipped_units"] *= 1.5  # ≠ what the allocation says
    sup.loc[rng.choice(sup.index), "product"] = np.nan  # a row without a product belongs to no product's checks
    cap = res.capacity
    cap.loc[rng.choice(cap.index, size=3, replace=False), "used"] = cap["capacity"].max() * 2 + 1
    svc = res.service
    hit = rng.choice(svc.index, size=max(2, len(svc) // 5), replace=False)
    svc.loc[hit, "served"] = svc.loc[hit, "demand"] * 3 + 10  # more than demand, cumulatively too
    svc.loc[rng.choice(svc.index), "served"] = np.nan


def interleave(df: pd.DataFrame, key: str, rng: np.random.Generator) -> pd.DataFrame:
    """The rows shuffled so that groups (by ``key``) interleave and appear in a random order, each group's own rows
    keeping their order (the running sums are over a product's quarters in order)."""
    slots = rng.permutation(len(df))
    where = np.empty(len(df), dtype=np.int64)
    for _, rows in df.groupby(key, sort=False, dropna=False).indices.items():
        where[rows] = np.sort(slots[rows])
    out = df.iloc[np.argsort(where)].reset_index(drop=True)
    assert list(pd.unique(out[key].dropna())) != list(pd.unique(df[key].dropna())) or df[key].nunique() < 3
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("backlog", ["false", "true"])
def test_reconcile_says_what_the_per_group_checks_said(seed, backlog):
    run = solved(seed, backlog)
    res = run.results
    assert reconcile(res, res.backlog) == reference_reconcile(res, res.backlog) == []  # a clean plan: nothing
    rng = np.random.default_rng(seed)
    tamper(res, rng, res.backlog)
    for name, key in (("supply", "product"), ("service", "platform"), ("allocation", "product")):
        setattr(res, name, interleave(getattr(res, name), key, rng))
    got, want = reconcile(res, res.backlog), reference_reconcile(res, res.backlog)
    assert got == want
    kinds = {"shipped more than made plus on hand", "negative inventory", "allocation", "> capacity",
             "cumulative served exceeds" if res.backlog else "served more than demand"}
    assert not [k for k in kinds if not any(k in m for m in got)], got  # every check fired: none passed on nothing


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("backlog", ["false", "true"])
def test_pnl_by_quarter_is_the_grouped_sums_looked_up_key_by_key(seed, backlog):
    """Revenue and shortfall penalty per (platform, quarter) are the allocation's and the service's grouped sums,
    exactly (the rows in platform order, then quarters); memory cost rows add up to the Summary's cost."""
    run = solved(seed, backlog)
    plan, res = run.plan, run.results
    q = pnl(plan, res).by_quarter
    real = q[~q["platform"].str.startswith("(")]
    rev = res.allocation.groupby(["platform", "period"])["revenue"].sum()
    pen_of = dict(zip(plan.platforms["platform"], plan.platforms["shortfall_penalty"], strict=True))
    svc = res.service
    pen = svc.assign(v=svc["shortfall"] * svc["platform"].map(pen_of)).groupby(["platform", "period"])["v"].sum()
    assert len(real) and (real["revenue"] > 0).any() and (real["shortfall_penalty"] > 0).any()
    for r in real.itertuples():
        assert r.revenue == float(rev.get((r.platform, r.period), 0.0))
        assert r.shortfall_penalty == float(pen.get((r.platform, r.period), 0.0))
    order = {p: i for i, p in enumerate(plan.platforms["platform"])}
    keys = [(order[p], plan.periods.index(t)) for p, t in zip(real["platform"], real["period"], strict=True)]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert set(zip(real["platform"], real["period"], strict=True)) == set(rev.index) | set(pen.index)
    assert q["memory_cost"].sum() == pytest.approx(res.summary["cost"], rel=1e-9, abs=1e-6)
    assert isinstance(q, pd.DataFrame) and list(q.columns) == ["platform", "period", "revenue", "memory_cost",
                                                               "margin", "shortfall_penalty"]


def test_running_sums_are_the_series_running_sums_bit_for_bit():
    """``reconcile``'s running sums are ``pd.Series.cumsum``'s exactly: a NaN stays NaN and the sum goes on past it
    (pandas' groupby cumsum would add with compensation and round differently)."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        v = rng.normal(0, 10.0 ** rng.integers(-3, 12), size=rng.integers(1, 60))
        v[rng.random(len(v)) < 0.1] = np.nan
        want = pd.Series(v).cumsum().to_numpy()
        assert np.array_equal(_cumsum(v), want, equal_nan=True)
        assert np.array_equal(_cumsum(v).view(np.int64)[~np.isnan(want)], want.view(np.int64)[~np.isnan(want)])
