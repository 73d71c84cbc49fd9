"""Plans generated independently of ``planner generate``: contract-conformant workbooks written straight from
``shared/spec/workbook.md`` (xlsxwriter, no planner import), so speed work is not tuned to our own generator.

Structure, chosen to look like a memory maker's year rather than to be easy: HBM and LPDDR products share DRAM
nodes and so compete for the same wafers; fab capacity is sized below what demand would need (it binds); HBM
products sit behind R&D programs with gates spread over the horizon (some ready before it, some after) and yield
ramps; platforms have one to three BOM options mixing HBM and LPDDR, some with a BOM price; back-end lines (TSV
stacking for HBM, packaging for part of LPDDR) bind too; a few expansions, capacity overrides and WIP in flight.

    python benchmarks/indep_plan.py --platforms 400 --products 600 --fabs 40 --quarters 32 -o big.xlsx

``SIZES`` names the two plans the benchmark uses (~100k and ~400k LP columns). Data are hypothetical.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

NODES = ["1a", "1b", "1b+", "1c", "1d"]
SIZES = {  # platforms, products, fabs, quarters
    "ind100k": (180, 300, 26, 26),
    "ind400k": (400, 600, 48, 32),
}


def _period(first_year: int, q: int) -> str:
    return f"{first_year + q // 4}Q{q % 4 + 1}"


def make_plan(platforms: int, products: int, fabs: int, quarters: int, seed: int = 7,
              backlog: bool = False, risk_starts: bool = False, policy: str = "margin") -> dict[str, list[list]]:
    """The plan as {sheet: [header, row, …]}; every number drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    T = quarters
    y0 = 2027
    per = lambda q: _period(y0, q)  # noqa: E731

    # programs: ready quarters spread from before the horizon to just after it
    n_prog = max(2, products // 8)
    programs = [["program", "start_period", "development_quarters", "qualification_quarters"]]
    ready = {}
    for i in range(n_prog):
        dev, qual = int(rng.integers(2, 7)), int(rng.integers(1, 4))
        r = int(rng.integers(-4, T + 1))
        start = r - dev - qual
        programs.append([f"PRG{i:03d}", per(start), dev, qual])  # start may lie before the horizon
        ready[f"PRG{i:03d}"] = r

    # fabs: each carries two to four of the nodes
    fab_rows = [["fab", "node", "wafers_per_quarter", "wafer_cost"]]
    fab_nodes = []
    for f in range(fabs):
        for n in rng.choice(NODES, size=int(rng.integers(2, 5)), replace=False):
            fab_nodes.append((f"FAB{f:02d}", str(n)))
    node_cost = {n: 4000 + 900 * i for i, n in enumerate(NODES)}

    # products: 45 % HBM (behind programs, TSV back end), 55 % LPDDR (a third behind programs)
    prod_rows = [["product", "family", "program", "node", "gb_per_unit", "dies_per_unit", "gross_dies_per_wafer",
                  "die_yield", "assembly_yield", "cycle_quarters", "backend", "backend_use", "unit_cost", "price",
                  "initial_inventory", "holding_cost"]]
    n_tsv = max(2, products // 60)
    n_pkg = max(1, products // 120)
    prods = []
    for i in range(products):
        hbm = rng.random() < 0.45
        node = str(rng.choice(NODES))
        if hbm:
            dies = int(rng.choice([8, 12, 16]))
            gross = int(rng.integers(420, 720))
            dy, ay = rng.uniform(0.55, 0.9), rng.uniform(0.7, 0.92)
            gb = dies * int(rng.choice([2, 3, 4]))
            cyc = int(rng.integers(1, 3))
            be, use = f"TSV-{rng.integers(n_tsv)}", round(float(rng.uniform(0.8, 1.6)), 2)
            price = round(float(gb * rng.uniform(12, 22)), 2)
            ucost = round(float(price * rng.uniform(0.08, 0.2)), 2)
            prog = f"PRG{rng.integers(n_prog):03d}" if rng.random() < 0.8 else None
            name = f"HBM-{node}-{dies}H-{gb}GB-{i:04d}"
        else:
            dies = int(rng.choice([1, 2, 4, 8]))
            gross = int(rng.integers(700, 1600))
            dy, ay = rng.uniform(0.7, 0.95), rng.uniform(0.9, 0.99)
            gb = dies * int(rng.choice([2, 3]))
            cyc = int(rng.integers(0, 2))
            be, use = (f"PKG-{rng.integers(n_pkg)}", 1) if rng.random() < 0.5 else (None, None)
            price = round(float(gb * rng.uniform(2.5, 5.5)), 2)
            ucost = round(float(price * rng.uniform(0.05, 0.15)), 2)
            prog = f"PRG{rng.integers(n_prog):03d}" if rng.random() < 0.3 else None
            name = f"LP-{node}-{gb}GB-{i:04d}"
        inv = int(rng.integers(0, 20000)) if prog is None and rng.random() < 0.3 else 0
        hold = round(price * 0.01, 2)
        prods.append(dict(name=name, hbm=hbm, node=node, dies=dies, g=gross * dy * ay / dies, cyc=cyc, prog=prog,
                          be=be, use=use or 1.0, price=price))
        prod_rows.append([name, "HBM" if hbm else "LPDDR", prog, node, gb, dies, gross, round(float(dy), 4),
                          round(float(ay), 4), cyc, be, use, ucost, price, inv, hold])

    ramp_rows = [["product", "quarter", "factor"]]
    for p in prods:
        if p["prog"] is not None and rng.random() < 0.7:
            f0 = rng.uniform(0.45, 0.7)
            for k, fac in enumerate(np.linspace(f0, 1.0, int(rng.integers(3, 6)))):
                ramp_rows.append([p["name"], k, round(float(fac), 4)])

    # platforms and BOM: options mix HBM stacks and LPDDR packages
    hbm_p = [p for p in prods if p["hbm"]]
    lp_p = [p for p in prods if not p["hbm"]]
    plat_rows = [["platform", "priority", "shortfall_penalty", "min_fill"]]
    bom_rows = [["platform", "option", "product", "units_per_platform", "price"]]
    dem_rows = [["platform", "period", "units"]]
    need_wafers = {n: np.zeros(T) for n in NODES}
    need_be: dict[str, np.ndarray] = {}
    for i in range(platforms):
        name = f"PLT-{i:03d}"
        n_opt = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        opts = []
        for o in range(n_opt):
            items = []
            if rng.random() < 0.75:
                items.append((hbm_p[rng.integers(len(hbm_p))], int(rng.choice([4, 6, 8, 12]))))
            if rng.random() < 0.6 or not items:
                items.append((lp_p[rng.integers(len(lp_p))], int(rng.choice([2, 4, 8, 16]))))
            opts.append(items)
            for prod, u in items:
                bp = round(prod["price"] * rng.uniform(0.9, 1.1), 2) if rng.random() < 0.2 else None
                bom_rows.append([name, f"opt{o}", prod["name"], u, bp])
        value = sum(prod["price"] * u for prod, u in opts[0])
        plat_rows.append([name, int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.3])),
                          round(float(value * rng.uniform(0.1, 0.6)), 2), 0])
        # demand over a life window, ramping up and down
        a = int(rng.integers(-4, T - 2))
        life = int(rng.integers(6, 16))
        peak = rng.uniform(2e3, 6e4)
        for t in range(max(0, a), min(T, a + life)):
            x = (t - a + 0.5) / life
            u = int(peak * np.sin(np.pi * x) * rng.uniform(0.8, 1.2))
            if u > 0:
                dem_rows.append([name, per(t), u])
                for prod, k in opts[0]:
                    need_wafers[prod["node"]][t] += u * k / prod["g"]
                    if prod["be"]:
                        need_be.setdefault(prod["be"], np.zeros(T))[t] += u * k * prod["use"]
    # fab capacity: ~70 % of the demand's wafers on the node, split over its fabs (binds)
    per_node = {n: [fn for fn in fab_nodes if fn[1] == n] for n in NODES}
    fcap_rows = [["fab", "node", "period", "wafers"]]
    exp_rows = [["fab", "node", "lead_quarters", "max_wafers_per_quarter", "cost_per_wafer", "earliest_period"]]
    for n in NODES:
        fns = per_node[n]
        if not fns:
            continue
        level = 0.7 * float(np.percentile(need_wafers[n], 60)) / len(fns)
        for f, _ in fns:
            cap = max(100, int(level * rng.uniform(0.6, 1.4)))
            fab_rows.append([f, n, cap, round(node_cost[n] * rng.uniform(0.9, 1.15), 2)])
            if rng.random() < 0.15:
                for t in rng.choice(T, size=3, replace=False):
                    fcap_rows.append([f, n, per(int(t)), int(cap * rng.uniform(0.7, 1.1))])
            if rng.random() < 0.25:
                exp_rows.append([f, n, int(rng.integers(2, 6)), int(cap * rng.uniform(0.2, 0.6)),
                                 round(float(rng.uniform(3000, 12000)), 2), per(int(rng.integers(0, 4)))])
    be_rows = [["resource", "units_per_quarter"]]
    for r in [f"TSV-{k}" for k in range(n_tsv)] + [f"PKG-{k}" for k in range(n_pkg)]:
        need = need_be.get(r)
        cap = 0.8 * float(np.percentile(need, 70)) if need is not None and need.any() else 1e6
        be_rows.append([r, max(1000, int(cap))])
    # WIP in flight for a few mature products (lands inside the horizon, small)
    wip_rows = [["fab", "node", "product", "start_period", "wafers"]]
    for p in rng.choice(len(prods), size=max(1, products // 20), replace=False):
        prod = prods[int(p)]
        if prod["prog"] is None and prod["cyc"] >= 1 and per_node[prod["node"]]:
            f, n = per_node[prod["node"]][0]
            wip_rows.append([f, n, prod["name"], _period(y0 - 1, 3), int(rng.integers(50, 400))])
    settings = [["key", "value"], ["first_period", per(0)], ["horizon_quarters", T], ["policy", policy],
                ["backlog", "true" if backlog else "false"], ["risk_starts", "true" if risk_starts else "false"],
                ["solver", "highs"], ["currency", "USD"]]
    return {"Settings": settings, "Programs": programs, "Products": prod_rows, "YieldRamp": ramp_rows,
            "Fabs": fab_rows, "FabCapacity": fcap_rows, "Expansions": exp_rows, "WIP": wip_rows,
            "Backend": be_rows, "Platforms": plat_rows, "BOM": bom_rows, "Demand": dem_rows}


def write_plan(path: Path, sheets: dict[str, list[list]]) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if v is None:
                    continue
                if isinstance(v, np.generic):
                    v = v.item()
                ws.write(i, j, v)
    wb.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), help="a named size (overrides the four counts)")
    ap.add_argument("--platforms", type=int, default=40)
    ap.add_argument("--products", type=int, default=60)
    ap.add_argument("--fabs", type=int, default=8)
    ap.add_argument("--quarters", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backlog", action="store_true")
    ap.add_argument("--risk-starts", action="store_true")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    dims = SIZES[a.size] if a.size else (a.platforms, a.products, a.fabs, a.quarters)
    write_plan(Path(a.output), make_plan(*dims, seed=a.seed, backlog=a.backlog, risk_starts=a.risk_starts))


if __name__ == "__main__":
    main()
