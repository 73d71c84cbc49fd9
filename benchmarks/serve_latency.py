"""What-if page latency, measured where the analyst feels it: in the browser, from the request to the DOM updated.

Starts `planner serve` on 127.0.0.1 (free port) for the example and for a generated ~10k-column plan, drives
headless Chromium (Debian's `chromium` through Playwright, no download) through a sequence of lever moves —
each one a state the server has not seen, so no cached answer — and reads the page's own timings
(``window.plannerTimings``: ``performance.now()`` before the fetch → the panels swapped in and two animation
frames painted). Reported: median / p90 / max per change for the numbers (key figures, served vs demand, what
binds), and the time until the shortfall causes and "what would help" follow.

    python benchmarks/serve_latency.py                       # writes benchmarks/serve_results.md and .json
    python benchmarks/serve_latency.py --screenshot docs/whatif-page.png

Targets (issue 20): the example's numbers within 300 ms, the ~10k-column plan's within 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
TEN_K = (80, 90, 10, 16)  # planner generate: platforms, products, fabs, quarters -> 10,409 LP columns
SETTLED = ("document.body.dataset.busy === '0' && document.body.dataset.pending === '' "
           "&& document.body.dataset.explaining !== '1'")


def start(path: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "planner", "serve", str(path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stdout:
        m = re.search(r"open (http://\S+)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("planner serve did not start: " + proc.stderr.read())


def moves(page) -> list[tuple[str, str, str]]:
    """(group, name, value) for each step: one lever at a time, never back to a state already seen."""
    levers = {g: [el.get_attribute("data-name") for el in page.query_selector_all(f".lever[data-group='{g}']")]
              for g in ("programs", "fabs", "backend", "demand")}
    out = []
    scales = [0.9, 1.1, 0.8, 1.2, 0.85, 1.15, 0.75, 1.25]
    for i in range(24):
        g = ("programs", "fabs", "backend", "demand")[i % 4]
        names = levers[g]
        if not names:
            continue
        k = i // 4
        name = names[k % len(names)]
        if g == "programs":
            value = str([1, -1, 2, -2, 3, -3][k % 6])
        else:
            value = str(scales[k % len(scales)] + 0.001 * (k // len(scales)))
        out.append((g, name, value))
    return out


def drive(browser, url: str, screenshot: Path | None = None) -> dict:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    first_paint = time.perf_counter() - t0
    page.wait_for_function(SETTLED, timeout=600_000)
    page.evaluate("document.querySelectorAll('aside details').forEach((d) => { d.open = true; })")
    seen = set()
    steps = moves(page)
    for n, (g, name, value) in enumerate(steps, start=1):
        box = f".lever[data-group='{g}'][data-name='{name}'] input[type=number]"
        page.fill(box, value)
        page.dispatch_event(box, "change")
        page.wait_for_function(f"Number(document.body.dataset.seq) >= {n} && document.body.dataset.busy === '0'",
                               timeout=600_000)
        page.wait_for_function(SETTLED, timeout=600_000)  # a user reads the causes before moving on
        seen.add(page.inner_text("#cmd"))
    timings = page.evaluate("window.plannerTimings")
    if screenshot is not None:
        page.click("#reset")
        page.wait_for_function(SETTLED, timeout=600_000)
        slider = page.locator(".lever[data-group='programs'] input[type=range]").first
        slider.focus()
        page.keyboard.press("ArrowRight")  # the story: HBM4 one quarter later
        page.wait_for_function(f"Number(document.body.dataset.seq) >= {len(steps) + 2}", timeout=600_000)
        page.wait_for_function(SETTLED, timeout=600_000)
        page.screenshot(path=str(screenshot), full_page=True)
    cols = int(re.search(r"([\d,]+) LP columns", page.inner_text("header")).group(1).replace(",", ""))
    ctx.close()
    view = [t["ms"] for t in timings if t["kind"] == "view"]
    causes = [t["ms"] for t in timings if t["kind"] == "causes"]
    helped = [t["ms"] for t in timings if t["kind"] == "help"]
    server = [sum(t["server"].get(k, 0) for k in ("apply", "solve", "binds")) * 1000 for t in timings
              if t["kind"] == "view"]
    cpu = [t["server"].get("cpu", float("nan")) * 1000 for t in timings if t["kind"] == "view"]
    return {"columns": cols, "server_cpu_ms": cpu, "changes": len(view), "distinct_states": len(seen), "first_paint_s": first_paint,
            "view_ms": view, "causes_ms": causes, "help_ms": helped, "server_view_ms": server}


def stats(xs: list[float]) -> tuple[float, float, float]:
    if not xs:
        return (float("nan"),) * 3
    s = sorted(xs)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))], s[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screenshot", type=Path, help="also save a screenshot of the example page here")
    ap.add_argument("--out", type=Path, default=HERE / "serve_results.md")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    results = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        ten_k = Path(d) / "10k.xlsx"
        pl, pr, fa, q = TEN_K
        subprocess.run([sys.executable, "-m", "planner", "generate", "--platforms", str(pl), "--products", str(pr),
                        "--fabs", str(fa), "--quarters", str(q), "-o", str(ten_k)], check=True, cwd=ROOT,
                       capture_output=True)
        example = Path("inputs/example.xlsx")  # as the README types it (relative to the repository; not written)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, path, shot, target in (("example", example, args.screenshot, 300.0), ("10k", ten_k, None, 2000.0)):
            proc, url = start(path)
            try:
                results[name] = drive(browser, url, shot) | {"target_ms": target}
            finally:
                proc.terminate()
                proc.wait(10)
        browser.close()
    load_after = os.getloadavg()
    lines = ["# What-if page latency (`planner serve`)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}; "
             f"{time.strftime('%Y-%m-%d')}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. "
             "Reproduce: `python benchmarks/serve_latency.py` (needs the `serve` and `test` extras and Debian's "
             "chromium).", "",
             "Measured in headless Chromium: `performance.now()` before the request → the panels swapped in and two "
             "animation frames painted. Each change moves one lever to a state the server has not seen (no cache "
             "hit). *Numbers* = key figures with deltas, served vs demand per platform, what binds, the `--set` "
             "command; *causes* and *what would help* follow in further requests (times from the same start).", "",
             "| plan | LP columns | changes | numbers: median / p90 / max (ms) | target | met | causes shown: median "
             "(ms) | what would help shown: median (ms) | server part of numbers: median wall / CPU (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        med, p90, mx = stats(r["view_ms"])
        lines.append(f"| {name} | {r['columns']:,} | {r['changes']} | {med:.0f} / {p90:.0f} / {mx:.0f} | "
                     f"{r['target_ms']:.0f} | {'yes' if p90 <= r['target_ms'] else 'no'} | "
                     f"{stats(r['causes_ms'])[0]:.0f} | {stats(r['help_ms'])[0]:.0f} | "
                     f"{stats(r['server_view_ms'])[0]:.0f} / {stats(r['server_cpu_ms'])[0]:.0f} |")
    lines += ["", "Met means the p90 is within the target. The server's CPU time per change (its thread's "
              "`time.thread_time()`) is what a change costs on an idle core; on this shared machine the wall "
              "times include waiting for a core (see the load average above)."]
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
