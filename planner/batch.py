"""Scenario batches: many what-if cases over one validated base plan, run in parallel, nothing lost.

The base plan is read and validated once and shipped once to each worker process (pool initializer); a case
carries only its edits. Each case returns a compact :class:`CaseResult` (KPIs and the few tables the reports
need), never a model. A case that fails on its own (invalid edit, infeasible plan, solver error) is recorded
with its reason and the batch goes on. Finished cases are appended to a journal file (JSON lines) as they
complete, so an interrupted batch keeps them even if the process is killed; on Ctrl-C the caller still writes
its workbook from what finished.

Executors are pluggable (:class:`Executor`): local processes by default, a Dask cluster for issue-scale
batches (``planner.distributed``).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from planner.analysis.cases import Case, CaseResult
from planner.io.problems import ValidationFailed
from planner.io.scenarios import apply_edits
from planner.io.validate import PlanData
from planner.pipeline import AUTO_ANALYSIS_MAX_COLS


def compact(name: str, params: dict, run, seconds: float, explain: bool | None = False,
            detail: str = "full") -> CaseResult:
    """The parts of a run a batch report needs, small enough to ship back from a worker.

    ``detail``: ``kpis`` (Monte Carlo: numbers only), ``binding`` (sweeps: KPIs and the binding capacity rows),
    ``full`` (comparisons: also service per platform and quarter, and every capacity row).
    """
    res = run.results
    s = res.summary
    kpis = res.kpis()
    kpis["max_violation"] = s["max_violation"]
    ws = res.wafer_starts.groupby("fab")["wafers"].sum() if len(res.wafer_starts) else pd.Series(dtype=float)
    for fab in run.plan.fabs["fab"].unique():
        kpis[f"wafers[{fab}]"] = float(ws.get(fab, 0.0))
    util = res.capacity[res.capacity["capacity"] > 0].groupby("resource")["utilisation"].mean()
    for r, u in util.items():
        kpis[f"utilisation[{r}]"] = float(u)
    out = CaseResult(name=name, status=s["status"], params=params, kpis=kpis,
                     service=res.service[["platform", "period", "demand", "served", "shortfall"]].copy(),
                     capacity=res.capacity[["resource", "kind", "period", "capacity", "used", "utilisation",
                                            "shadow_price"]].copy(), seconds=seconds,
                     backlog=bool(run.plan.settings.backlog))
    if not run.solution.has_solution:
        out.error = s.get("message") or f"plan is {s['status']}"
        if run.infeasibility is not None and len(run.infeasibility):
            out.error = "; ".join(f"{r.platform} {r.period}: {r.reason}" for r in run.infeasibility.head(3).itertuples())
    if detail == "full":
        out.allocation = (res.allocation.groupby(["platform", "period", "option"], as_index=False)["platform_units"]
                          .first())
    if detail == "kpis":
        out.service = out.capacity = None
    elif detail == "binding":
        out.service = None
        out.capacity = out.capacity[out.capacity["shadow_price"] > 1e-6].reset_index(drop=True)
    if explain is None:  # auto: explain where it costs a fraction of a second
        explain = run.model.lp.n_cols < AUTO_ANALYSIS_MAX_COLS
    if explain and run.solution.has_solution:
        from planner.analysis.explain import explain_shortfalls

        out.causes = explain_shortfalls(run)
    return out


_INCREMENTAL: dict[int, object] = {}


def _incremental(base: PlanData, time_limit: float | None):
    """One WarmStarter per base plan in this process (workers keep theirs between cases)."""
    from planner.solve.warm import WarmStarter

    key = id(base)
    if key not in _INCREMENTAL:
        _INCREMENTAL.clear()
        _INCREMENTAL[key] = WarmStarter(base, time_limit)
    return _INCREMENTAL[key]


def run_case(base: PlanData, case: Case, solver: str | None = None, time_limit: float | None = None,
             explain: bool | None = False, warm: bool = True, detail: str = "full") -> CaseResult:
    """Apply a case's edits to the base plan and solve; never raises for a problem of the case itself.

    With HiGHS and ``warm`` the solve reuses this process's kept model (:mod:`planner.solve.warm`).
    """
    from planner.pipeline import finish_run, run_plan
    from planner.solve.sessions import SolverError

    t0 = time.perf_counter()
    try:
        plan = apply_edits(base, case.edits, label=case.name)
        if warm and (solver or plan.settings.solver) == "highs":
            model, sol = _incremental(base, time_limit).solve(plan)
            run = finish_run(plan, model, sol)
        else:
            run = run_plan(plan, solver=solver, time_limit=time_limit)
        return compact(case.name, case.params, run, time.perf_counter() - t0, explain=explain, detail=detail)
    except ValidationFailed as exc:
        msg = "; ".join(p.render() for p in exc.problems if p.severity == "error")
        return CaseResult(case.name, "failed", error=f"invalid: {msg}", params=case.params,
                          seconds=time.perf_counter() - t0)
    except SolverError as exc:
        return CaseResult(case.name, "failed", error=str(exc), params=case.params, seconds=time.perf_counter() - t0)
    except Exception as exc:  # a bug or a numerical failure in one case must not stop the batch
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return CaseResult(case.name, "failed", error=f"internal error: {tb}", params=case.params,
                          seconds=time.perf_counter() - t0)


# ---- progress ----------------------------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr with count, rate and ETA; silent when not a terminal or quiet."""

    def __init__(self, total: int, label: str = "scenarios", enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.label, self.done, self.failed = total, label, 0, 0
        self.enabled = (self.stream.isatty() if enabled is None else enabled) and total > 0
        self.t0 = time.perf_counter()

    def update(self, result: CaseResult) -> None:
        self.done += 1
        self.failed += 0 if result.ok else 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        width = 28
        filled = int(width * self.done / self.total)
        bar = "=" * filled + (">" if filled < width else "") + " " * max(0, width - filled - 1)
        fail = f"  {self.failed} failed" if self.failed else ""
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {self.label}  {rate:.1f}/s  "
                          f"ETA {int(eta // 60)}:{int(eta % 60):02d}{fail} ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# ---- executors ---------------------------------------------------------------------------------------------------
class Executor(Protocol):
    def map_unordered(self, base: PlanData, cases: list[Case], **kw: Any) -> Iterator[CaseResult]: ...


_WORKER_BASE: PlanData | None = None


def _init_worker(base: PlanData) -> None:
    global _WORKER_BASE
    _WORKER_BASE = base


def _worker_run(case: Case, kw: dict) -> CaseResult:
    assert _WORKER_BASE is not None
    return run_case(_WORKER_BASE, case, **kw)


class LocalExecutor:
    """Local processes (the default); one process runs inline, which is also what tests use to monkeypatch."""

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or min(os.cpu_count() or 1, 4))

    def map_unordered(self, base: PlanData, cases: list[Case], **kw: Any) -> Iterator[CaseResult]:
        if self.workers == 1 or len(cases) <= 1:
            for case in cases:
                yield run_case(base, case, **kw)
            return
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(cases)), initializer=_init_worker,
                                   initargs=(base,))
        try:
            pending = {pool.submit(_worker_run, c, kw): c for c in cases}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    case = pending.pop(fut)
                    try:
                        yield fut.result()
                    except Exception as exc:  # a worker process died (e.g. out of memory)
                        yield CaseResult(case.name, "failed", error=f"worker failed: {exc!r}", params=case.params)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class BatchOutcome:
    results: list[CaseResult]
    interrupted: bool
    seconds: float
    journal: Path | None

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.ok]


def run_batch(base: PlanData, cases: list[Case], executor: Executor | None = None, journal: Path | None = None,
              progress: bool | None = None, quiet: bool = False, on_result: Callable[[CaseResult], None] | None = None,
              **kw: Any) -> BatchOutcome:
    """Run every case; results come back in the order of ``cases`` (missing ones marked 'interrupted')."""
    executor = executor or LocalExecutor()
    bar = Progress(len(cases), enabled=False if quiet else progress)
    got: dict[str, CaseResult] = {}
    t0 = time.perf_counter()
    interrupted = False
    fh = open(journal, "a", encoding="utf-8") if journal else None  # noqa: SIM115 - closed in finally
    try:
        for res in executor.map_unordered(base, cases, **kw):
            got[res.name] = res
            if fh:
                fh.write(res.journal_line() + "\n")
                fh.flush()
            bar.update(res)
            if on_result:
                on_result(res)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if fh:
            fh.close()
    ordered = [got.get(c.name) or CaseResult(c.name, "interrupted", error="not run: batch interrupted",
                                              params=c.params) for c in cases]
    return BatchOutcome(ordered, interrupted, time.perf_counter() - t0, journal)
