"""Benchmark of `planner hedge` (issue 21): how long the hedged plan takes as scenarios grow, which HiGHS method
suits the extensive form, and where the extensive form stops being practical against one LP per scenario.

Usage (from the repository root):

    python benchmarks/hedge.py            # the whole ladder (about 30 minutes on 2 cores)
    python benchmarks/hedge.py --quick    # the example only

Each point runs in a fresh process (peak RSS is its own). Results go to benchmarks/hedge.json and to the section
"Hedged plan" of benchmarks/results.md (between its markers; `benchmarks/run.py` keeps the section).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BEGIN, END = "<!-- hedge:begin -->", "<!-- hedge:end -->"
TIMEOUT_S = 1800
GENERATED = {"10k": (60, 70, 8, 16), "100k": (300, 400, 24, 28)}  # as in benchmarks/run.py


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_full(path: str, samples: int, commit_quarters: int, workers: int = 1) -> dict:
    """The whole hedge (extensive form, EEV and WS per scenario, tables) with ``workers`` processes; CPU time is
    measured with one (this process does all the work), because the machine is shared and wall time is not."""
    from planner import api
    from planner.batch import LocalExecutor

    plan = api.load_workbook(path)
    t, c = time.perf_counter(), time.process_time()
    load0 = os.getloadavg()[0]
    res = api.hedge(plan, samples=samples, seed=1, commit_quarters=commit_quarters, executor=LocalExecutor(workers))
    total, cpu = time.perf_counter() - t, time.process_time() - c
    s = res.summary
    return {"scenarios": s["scenarios"], "columns": s["lp_columns"], "rows": s["lp_rows"], "total": total,
            "cpu": cpu if workers == 1 else None, "workers": workers, "load": (load0 + os.getloadavg()[0]) / 2,
            "method": s["method"], **{f"t_{k}": v for k, v in res.timings.items()}, "vss": s["vss"],
            "evpi": s["evpi"], "peak_rss_mb": _rss_mb(), "status": s["status"]}


def measure_ef(path: str, samples: int, commit_quarters: int, method: str, per_scenario: int = 4) -> dict:
    """The extensive form alone (build and solve with one method), and one LP per scenario for comparison."""
    import numpy as np

    from planner import api
    from planner.analysis.hedge import (
        SolveOptions,
        _run,
        evaluate_scenario,
        readiness_by_scenario,
        scenario_set,
    )
    from planner.io.scenarios import apply_edits
    from planner.model.hedge import build_extensive_form, build_scenario_model

    plan = api.load_workbook(path)
    scen = scenario_set(plan, samples, 1)
    lo, _ = readiness_by_scenario(plan, scen.cases)
    lo = lo.min(axis=0)
    t = time.perf_counter()
    models = [build_scenario_model(apply_edits(plan, c.edits), c.name, p, lo, commit_quarters)
              for c, p in zip(scen.cases, scen.probabilities, strict=True)]
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    ef = build_extensive_form(models)
    t_assemble = time.perf_counter() - t
    t = time.perf_counter()
    _, res = _run(ef.lp, SolveOptions("highs", method, TIMEOUT_S))
    t_solve = time.perf_counter() - t
    t = time.perf_counter()
    k = min(per_scenario, len(models))
    for sm in models[:k]:
        evaluate_scenario(sm, {"free": None}, SolveOptions("highs", "auto", None))
    t_one = (time.perf_counter() - t) / k
    return {"scenarios": len(models), "columns": ef.lp.n_cols, "rows": ef.lp.n_rows, "method": method,
            "t_build_scenarios": t_build, "t_assemble": t_assemble, "t_solve": t_solve, "status": res.status,
            "objective": res.objective, "t_one_scenario_lp": t_one, "per_scenario_columns":
            int(np.mean([sm.n_cols for sm in models])), "peak_rss_mb": _rss_mb(), "load": os.getloadavg()[0]}


def cli_end_to_end(path: Path, samples: int, commit_quarters: int) -> float:
    out = Path(tempfile.mkdtemp()) / "hedge.xlsx"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "planner", "hedge", str(path), "--samples", str(samples),
                    "--commit-quarters", str(commit_quarters), "--quiet", "-o", str(out)], check=True,
                   capture_output=True, timeout=TIMEOUT_S)
    return time.perf_counter() - t


def _sub(args: list[str]) -> dict:
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {TIMEOUT_S} s"}
    if proc.returncode:
        return {"status": "failed: " + proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _key(r: dict) -> tuple:
    return (r["group"], r["plan"], r.get("kind"), r["samples"], r["K"], str(r.get("method")), r.get("workers"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the example only")
    ap.add_argument("--only", help="comma-separated groups to (re)measure: scale, workers, cli, method, limit, "
                                   "limit-100k; the "
                                   "other groups' rows stay as they are in hedge.json")
    ap.add_argument("--run", nargs=5, help=argparse.SUPPRESS)  # kind path samples K method-or-workers
    a = ap.parse_args()
    if a.run:
        kind, path, n, k, method = a.run
        out = (measure_full(path, int(n), int(k), int(method)) if kind == "full"
               else measure_ef(path, int(n), int(k), method))
        print(json.dumps(out))
        return
    groups = set(a.only.split(",")) if a.only else {"scale", "workers", "cli", "method"} | (
        set() if a.quick else {"limit", "limit-100k"})
    raw = HERE / "hedge.json"
    rows: list[dict] = json.loads(raw.read_text()) if raw.exists() else []
    example = ROOT / "inputs" / "example.xlsx"

    def keep(r: dict) -> None:  # a point replaces its earlier measurement; saved at once (long runs)
        rows[:] = [x for x in rows if _key(x) != _key(r)] + [r]
        raw.write_text(json.dumps(rows, indent=1) + "\n")
        print(json.dumps(r), file=sys.stderr, flush=True)

    def point(group: str, kind: str, path: Path, n: int, k: int, method: str = "auto", plan: str = "example"):
        print(f"[{group}] {plan} {kind} N={n} K={k} {method} …", file=sys.stderr, flush=True)
        r = {"group": group, "plan": plan, "kind": kind, "samples": n, "K": k, **_sub([
            "--run", kind, str(path), str(n), str(k), method])}
        if kind == "ef":
            r["method"] = method
        keep(r)

    if "scale" in groups:
        for n in (50, 100, 200, 300, 500):
            point("scale", "full", example, n, 4, "1")
    if "workers" in groups:
        point("workers", "full", example, 300, 4, "2")
    if "cli" in groups:
        keep({"group": "cli", "plan": "example", "samples": 300, "K": 4, "total": cli_end_to_end(example, 300, 4),
              "load": os.getloadavg()[0]})
    if "method" in groups:
        for method in ("simplex", "ipm"):
            point("method", "ef", example, 300, 4, method)
    work = Path(tempfile.mkdtemp(prefix="planner-hedge-bench-"))
    for size, (p, m, f, q) in GENERATED.items():
        group = "limit" if size == "10k" else f"limit-{size}"
        if group not in groups:
            continue
        path = work / f"{size}.xlsx"
        subprocess.run([sys.executable, "-m", "planner", "generate", "--platforms", str(p), "--products", str(m),
                        "--fabs", str(f), "--quarters", str(q), "--seed", "1", "-o", str(path)], check=True,
                       capture_output=True)
        ladder = (10, 25, 50, 100) if size == "10k" else (3, 6)
        for n in ladder:  # simplex only where it is still in the running (it loses from the first point on)
            for method in ("simplex", "ipm") if size == "10k" and n == ladder[0] else ("ipm",):
                point("limit", "ef", path, n, 2, method, plan=size)
    write_section(rows)


def _fmt(v, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) else "–"


def section(rows: list[dict]) -> str:
    order = {"example": 0, **{k: i + 1 for i, k in enumerate(GENERATED)}}
    rows = sorted(rows, key=lambda r: (order.get(r["plan"], 9), r.get("samples", 0), str(r.get("workers")),
                                       str(r.get("method"))))
    lines = [BEGIN, "## Hedged plan (`planner hedge`)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other work while measured (the "
             "load average is in the tables: wall times stretch with it); "
             f"{time.strftime('%Y-%m-%d')}. Reproduce: `python benchmarks/hedge.py` (`--quick`: the example only). "
             "Seconds; each point in a fresh process.", "",
             "### Scenarios of the example (`--commit-quarters 4`, sampled)", "",
             "Wall times on a shared machine stretch with its load; the CPU column is the work itself (one "
             "process). \"Scenario models\" = build each scenario's LP and solve it twice (perfect foresight, "
             "average plan's first stage fixed).", "",
             "| scenarios | workers | EF columns | EF rows | method | scenario models | solve EF | total wall | "
             "total CPU | load avg | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["group"] in ("scale", "workers") and "total" in r:
            lines.append(f"| {r['scenarios']} | {r['workers']} | {r['columns']:,} | {r['rows']:,} | {r['method']} | "
                         f"{_fmt(r.get('t_build_scenarios'))} | {_fmt(r.get('t_solve_extensive_form'))} | "
                         f"{_fmt(r['total'])} | {_fmt(r.get('cpu'))} | {_fmt(r.get('load'), 1)} | "
                         f"{r['peak_rss_mb']:.0f} |")
        elif r["group"] in ("scale", "workers"):
            lines.append(f"| {r['samples']} | | | | | | | {r['status']} | | | |")
    for r in rows:
        if r["group"] == "cli":
            lines += ["", f"`planner hedge inputs/example.xlsx --samples {r['samples']} --commit-quarters {r['K']}` "
                      f"end to end (process start to workbook written, default workers): **{r['total']:.1f} s** "
                      f"wall at load average {r.get('load', float('nan')):.1f}."]
    lines += ["", "### Which HiGHS method for the extensive form", "",
              "| plan | scenarios | EF columns | method | solve EF | objective |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["group"] in ("method", "limit") and "t_solve" in r:
            lines.append(f"| {r['plan']} | {r['scenarios']} | {r['columns']:,} | {r['method']} | {r['t_solve']:.2f} | "
                         f"{r['objective']:.10g} |")
        elif r["group"] in ("method", "limit"):
            lines.append(f"| {r['plan']} | {r['samples']} | | {r['method']} | {r['status']} | |")
    lines += ["", "### Where the extensive form stops being practical", "",
              "One LP per scenario (what `planner hedge` falls back to above `--max-columns`, and what EEV and WS "
              "always are) against the extensive form; \"per-scenario LPs\" = scenarios × one scenario's "
              "build-and-solve time on one process.", "",
              "| plan | scenarios | EF columns | build scenarios | assemble EF | solve EF (best method) | "
              "per-scenario LPs | load avg | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    best: dict[tuple, dict] = {}
    for r in rows:
        if r["group"] == "limit" and "t_solve" in r and r["status"] == "optimal":
            key = (r["plan"], r["scenarios"])
            if key not in best or r["t_solve"] < best[key]["t_solve"]:
                best[key] = r
    for r in best.values():
        lines.append(f"| {r['plan']} | {r['scenarios']} | {r['columns']:,} | {r['t_build_scenarios']:.1f} | "
                     f"{r['t_assemble']:.1f} | {r['t_solve']:.1f} ({r['method']}) | "
                     f"{r['scenarios'] * r['t_one_scenario_lp']:.1f} | {_fmt(r.get('load'), 1)} | "
                     f"{r['peak_rss_mb']:.0f} |")
    lines.append(END)
    return "\n".join(lines)


def write_section(rows: list[dict]) -> None:
    path = HERE / "results.md"
    text = path.read_text() if path.exists() else ""
    sec = section(rows)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + sec + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + sec + "\n"
    path.write_text(text)
    print(sec)


if __name__ == "__main__":
    main()
