"""What the allocation policies cost against one margin solve, on generated plans (``models/formulation.md``,
"Policies as sequences of LPs").

    python benchmarks/policies.py [10k 100k]

For each plan and policy: LPs solved (stages, fair-share rounds), solve seconds without the capacity price
checks, the price checks' extra seconds, and the ratio to the margin policy's solve. Prints a Markdown table
(paste it into benchmarks/results.md). Sizes are the ladder of ``benchmarks/run.py``.
"""

from __future__ import annotations

import sys
import time

from planner.io.generate import generate_frames
from planner.io.load import plan_from_frames
from planner.model.build import build_model
from planner.solve.policy import solve_model

LADDER = {"10k": (60, 70, 8, 16), "41k": (150, 300, 24, 20), "100k": (300, 400, 24, 28)}


def main(names: list[str]) -> None:
    print("| plan | columns | policy | LPs | fair-share rounds fixed by duals / by LPs | solve s | × margin | "
          "price checks s | capacity rows priced |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        frames = generate_frames(*LADDER[name], seed=1)
        margin_s = None
        for policy in ("margin", "priority", "fair_share"):
            f = {k: v.copy() for k, v in frames.items()}
            f["Settings"].loc[f["Settings"]["key"] == "policy", "value"] = policy
            model = build_model(plan_from_frames(f))
            t = time.perf_counter()
            plain = solve_model(model, prices=False)
            solve_s = time.perf_counter() - t
            t = time.perf_counter()
            priced = solve_model(model, prices=True)
            priced_s = time.perf_counter() - t
            margin_s = margin_s or solve_s
            rounds = [s.get("saturation") for s in plain.stages if "saturation" in s]
            how = f"{sum(r in ('dual', 'full') for r in rounds)} / {rounds.count('lp')}" if rounds else ""
            # each priority stage but the last also solves its tie-break LP (models/formulation.md, "Ties")
            lps = len(plain.stages) + sum(str(s["stage"]).startswith("priority tier") for s in plain.stages)
            print(f"| {name} | {model.lp.n_cols:,} | {policy} | {lps} | {how} | {solve_s:.1f} | "
                  f"{solve_s / margin_s:.1f} | {max(0.0, priced_s - solve_s):.1f} | {len(priced.prices):,} |",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["10k", "41k"])
