"""Synthetic plans of any size (``planner generate``): contract-conformant, every feature used, hypothetical.

The generator sizes capacity from demand, so fabs and back-end lines bind in some quarters and HBM and LPDDR
compete for the same node's wafers — the structure that makes real plans hard, not a plan where nothing binds
(see ``shared/notes/solver-facts.md``: solve time depends on that structure, not on size alone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from planner.periods import horizon_labels, label, ordinal
from planner.report.template import write_input_workbook

NODES = ["1a", "1b", "1c", "1d", "1e", "1f"]


def generate_frames(platforms: int, products: int, fabs: int, quarters: int, seed: int = 1,
                    first_period: str = "2026Q1", wip: bool = False) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    T = quarters
    periods = horizon_labels(first_period, T)
    n_nodes = int(min(len(NODES), fabs, max(2, fabs // 4 + 1)))  # every node needs a fab to run it
    nodes = NODES[:n_nodes]

    # fabs: each runs one or two nodes; every node has at least one fab
    fab_rows = []
    for i in range(fabs):
        fab = f"FAB-{i + 1:03d}"
        own = {nodes[i % n_nodes]}
        if rng.random() < 0.5:
            own.add(nodes[int(rng.integers(n_nodes))])
        for n in sorted(own):
            fab_rows.append({"fab": fab, "node": n, "wafers_per_quarter": 0.0,
                             "wafer_cost": float(rng.uniform(4500, 9000))})
    fab_df = pd.DataFrame(fab_rows)

    n_prog = max(1, products // 8)
    first_ord = ordinal(first_period)
    programs = pd.DataFrame([{
        "program": f"PRG-{j + 1:03d}", "start_period": label(first_ord - int(rng.integers(2, 10))),
        "development_quarters": int(rng.integers(2, 8)), "qualification_quarters": int(rng.integers(1, 4))}
        for j in range(n_prog)])

    n_tsv = max(1, fabs // 4)
    n_pkg = max(1, fabs // 8)
    prod_rows, ramp_rows = [], []
    for k in range(products):
        hbm = rng.random() < 0.4 and k > 0
        fam = "HBM" if hbm else "LPDDR"
        gated = rng.random() < 0.5 and k > 0  # product 0: mature LPDDR, so min_fill can always be met
        prog = programs["program"].iloc[int(rng.integers(n_prog))] if gated else None
        dies = int(rng.choice([8, 12, 16])) if hbm else int(rng.choice([4, 8, 16]))
        gb = dies * (3 if hbm else 2)
        gross = float(rng.uniform(400, 600) if hbm else rng.uniform(700, 1100))
        name = f"{'HBM' if hbm else 'LP'}-{k + 1:04d}"
        prod_rows.append({
            "product": name, "family": fam, "program": prog, "node": nodes[int(rng.integers(n_nodes))],
            "gb_per_unit": gb, "dies_per_unit": dies, "gross_dies_per_wafer": round(gross),
            "die_yield": round(float(rng.uniform(0.7, 0.92)), 3),
            "assembly_yield": round(float(rng.uniform(0.65, 0.88) if hbm else rng.uniform(0.93, 0.99)), 3),
            "cycle_quarters": int(rng.integers(0, 2)) if k > 0 else 0,
            "backend": f"TSV-{int(rng.integers(n_tsv)) + 1}" if hbm else (
                f"PKG-{int(rng.integers(n_pkg)) + 1}" if rng.random() < 0.3 else None),
            "backend_use": 1.0 if hbm else 0.5, "unit_cost": round(float(gb * rng.uniform(1.5, 2.5) if hbm
                                                                          else gb * rng.uniform(0.2, 0.4)), 2),
            "price": round(float(gb * (rng.uniform(14, 22) if hbm else rng.uniform(3, 5.5))), 2),
            "initial_inventory": float(rng.choice([0, 0, 0, 5000, 20000])),
            "holding_cost": round(float(gb * 0.05), 2)})
        if gated:
            start = float(rng.uniform(0.4, 0.7))
            for q, f in enumerate(np.linspace(start, 1.0, int(rng.integers(3, 6)))):
                ramp_rows.append({"product": name, "quarter": q, "factor": round(float(f), 3)})
    prod_df = pd.DataFrame(prod_rows)

    plat_rows, bom_rows, dem_rows = [], [], []
    # min_fill only where it can hold: an option of mature products that finish in the quarter they start
    mature = prod_df.loc[prod_df["program"].isna() & (prod_df["cycle_quarters"] == 0), "product"].tolist()
    for i in range(platforms):
        plat = f"PLAT-{i + 1:04d}"
        n_opt = int(rng.integers(1, 4))
        opts = []
        for _ in range(n_opt):
            picks = rng.choice(len(prod_df), size=int(rng.integers(1, 3)), replace=False)
            opts.append([(prod_df["product"].iloc[j], float(rng.choice([1, 2, 4, 8, 16]))) for j in picks])
        mature_only = any(all(p in mature for p, _ in opt) for opt in opts)
        plat_rows.append({"platform": plat, "priority": int(rng.integers(1, 4)),
                          "shortfall_penalty": round(float(rng.uniform(50, 3000)), 2),
                          "min_fill": 0.05 if mature_only and (i == 0 or rng.random() < 0.2) else 0.0})
        for o, opt in enumerate(opts):
            for prod, u in opt:
                bom_rows.append({"platform": plat, "option": f"opt-{o + 1}", "product": prod,
                                 "units_per_platform": u,
                                 "price": None if rng.random() < 0.8 else round(float(
                                     prod_df.loc[prod_df["product"] == prod, "price"].iloc[0] * rng.uniform(0.9, 1.1)),
                                     2)})
        start = int(rng.integers(0, max(1, T // 3)))
        peak = float(rng.uniform(5_000, 60_000))
        growth = np.clip(np.linspace(0.3, 1.2, T - start) + rng.normal(0, 0.05, T - start), 0.05, None)
        for t, g in zip(range(start, T), growth, strict=True):
            dem_rows.append({"platform": plat, "period": periods[t], "units": round(peak * float(g))})
    plat_df, bom_df, dem_df = pd.DataFrame(plat_rows), pd.DataFrame(bom_rows), pd.DataFrame(dem_rows)

    # size capacity from demand: wafers each node would need with the first option, times ~0.8 (so it binds)
    first_opt = bom_df.groupby("platform").head(10).merge(prod_df, on="product")
    first_opt = first_opt[first_opt["option"] == "opt-1"]
    per_wafer = prod_df.set_index("product").eval("gross_dies_per_wafer * die_yield * assembly_yield / dies_per_unit")
    first_opt = first_opt.assign(wafers=first_opt["units_per_platform"] / first_opt["product"].map(per_wafer))
    need = first_opt.groupby(["platform", "node"])["wafers"].sum().reset_index()
    dem_total = dem_df.groupby("platform")["units"].sum() / T
    need["wafers"] *= need["platform"].map(dem_total)
    node_need = need.groupby("node")["wafers"].sum()
    fab_per_node = fab_df.groupby("node").size()
    fab_df["wafers_per_quarter"] = [round(float(node_need.get(n, 10_000.0) * rng.uniform(0.6, 1.0)
                                                / fab_per_node[n])) for n in fab_df["node"]]
    capover, exps = [], []
    for r in fab_df.sample(frac=0.2, random_state=seed).itertuples():
        ramp_up = rng.uniform(0.5, 0.9)
        for t in range(min(4, T)):
            capover.append({"fab": r.fab, "node": r.node, "period": periods[t],
                            "wafers": round(r.wafers_per_quarter * (ramp_up + (1 - ramp_up) * t / 4))})
    for r in fab_df.sample(n=max(1, len(fab_df) // 3), random_state=seed + 1).itertuples():
        exps.append({"fab": r.fab, "node": r.node, "lead_quarters": int(rng.integers(2, 6)),
                     "max_wafers_per_quarter": round(r.wafers_per_quarter * 0.3),
                     "cost_per_wafer": round(float(rng.uniform(5000, 20000))), "earliest_period": periods[0]})
    be_rows, becap = [], []
    lines = [f"TSV-{i + 1}" for i in range(n_tsv)] + [f"PKG-{i + 1}" for i in range(n_pkg)]
    units_per_q = dem_df["units"].sum() / T * 8 / max(1, len(lines))
    for line in lines:
        cap = round(float(units_per_q * rng.uniform(0.5, 1.2)))
        be_rows.append({"resource": line, "units_per_quarter": cap})
        if line == lines[0] or rng.random() < 0.3:
            for t in range(T // 2, T):
                becap.append({"resource": line, "period": periods[t], "units": round(cap * 1.3)})

    first_prog = programs["program"].iloc[0]
    top_plat = plat_df["platform"].iloc[0]
    scen = pd.DataFrame([
        {"scenario": f"{first_prog} slips 1Q", "sheet": "Programs", "key": first_prog,
         "column": "qualification_quarters", "op": "add", "value": 1},
        {"scenario": "Demand +10%", "sheet": "Demand", "key": "*|*", "column": "units", "op": "scale", "value": 1.1},
        {"scenario": f"{fab_df['fab'].iloc[0]} loses 20%", "sheet": "Fabs",
         "key": f"{fab_df['fab'].iloc[0]}|{fab_df['node'].iloc[0]}", "column": "wafers_per_quarter", "op": "scale",
         "value": 0.8},
    ])
    unc = pd.DataFrame([
        {"name": f"{top_plat} demand", "sheet": "Demand", "key": f"{top_plat}|*", "column": "units",
         "distribution": "normal", "op": "scale", "p1": 1.0, "p2": 0.1},
        {"name": f"{first_prog} slip", "sheet": "Programs", "key": first_prog, "column": "qualification_quarters",
         "distribution": "discrete", "op": "add", "values": "0,1", "probabilities": "0.7,0.3"},
    ])
    settings = pd.DataFrame([
        {"key": "first_period", "value": first_period}, {"key": "horizon_quarters", "value": T},
        {"key": "policy", "value": "margin"}, {"key": "backlog", "value": "false"},
        {"key": "risk_starts", "value": "false"}, {"key": "solver", "value": "highs"},
        {"key": "currency", "value": "USD"}])
    out = {"Settings": settings, "Programs": programs, "Products": prod_df, "YieldRamp": pd.DataFrame(ramp_rows),
           "Fabs": fab_df, "FabCapacity": pd.DataFrame(capover), "Expansions": pd.DataFrame(exps),
           "Backend": pd.DataFrame(be_rows), "BackendCapacity": pd.DataFrame(becap), "Platforms": plat_df,
           "BOM": bom_df, "Demand": dem_df, "Scenarios": scen, "Uncertainty": unc}
    if wip:
        out["WIP"] = _wip_rows(out, periods, seed)
    return out


def _wip_rows(f: dict[str, pd.DataFrame], periods: list[str], seed: int) -> pd.DataFrame:
    """Work in progress for a generated plan (its own random stream, so the other sheets do not change): for each
    fab/node, lots of its mature products in flight from the quarter before the horizon (products with a cycle of
    one quarter or more) and committed in the first quarter, each 5–15 % of the line's first-quarter capacity; scaled
    so that what lands on a back-end line in a quarter stays within half its capacity (valid by construction)."""
    rng = np.random.default_rng(seed + 104_729)
    prods = f["Products"]
    mature = prods[prods["program"].isna()]
    before = label(ordinal(periods[0]) - 1)
    cap0 = {(r.fab, r.node): r.wafers_per_quarter for r in f["Fabs"].itertuples()}
    for r in f["FabCapacity"].itertuples():
        if r.period == periods[0]:
            cap0[(r.fab, r.node)] = r.wafers
    rows = []
    for (fab, node), cap in cap0.items():
        on = mature[mature["node"] == node]
        for start, pool in ((before, on[on["cycle_quarters"] >= 1]), (periods[0], on)):
            for prod in pool["product"]:
                rows.append({"fab": fab, "node": node, "product": prod, "start_period": start,
                             "wafers": float(round(cap * rng.uniform(0.05, 0.15) / max(1, len(pool))))})
    df = pd.DataFrame(rows, columns=["fab", "node", "product", "start_period", "wafers"])
    if df.empty:
        return df
    p = prods.set_index("product")
    g = p.eval("gross_dies_per_wafer * die_yield * assembly_yield / dies_per_unit")
    land = [(-1 if s == before else 0) + int(p.loc[m, "cycle_quarters"])
            for m, s in zip(df["product"], df["start_period"], strict=True)]
    use = df.assign(land=land, line=df["product"].map(p["backend"]),
                    units=df["wafers"] * df["product"].map(g) * df["product"].map(p["backend_use"]))
    be = dict(zip(f["Backend"]["resource"], f["Backend"]["units_per_quarter"], strict=True))
    for (line, _t), grp in use.dropna(subset=["line"]).groupby(["line", "land"]):
        limit = 0.5 * float(be.get(line, 0.0))
        total = float(grp["units"].sum())
        if total > limit:
            df.loc[grp.index, "wafers"] = np.floor(df.loc[grp.index, "wafers"] * limit / total)
    return df[df["wafers"] > 0].reset_index(drop=True)


def write_generated(path: Path | str, platforms: int, products: int, fabs: int, quarters: int, seed: int = 1,
                    wip: bool = False) -> Path:
    frames = generate_frames(platforms, products, fabs, quarters, seed, wip=wip)
    notes = [f"Synthetic plan generated by planner generate --platforms {platforms} --products {products} "
             f"--fabs {fabs} --quarters {quarters} --seed {seed}.",
             "Every number is random and hypothetical; sized so that capacity binds in some quarters."]
    return write_input_workbook(path, frames, title="planner synthetic plan (hypothetical)", notes=notes,
                                kind="generated")
