"""Scenario batches: many what-if cases over one validated base plan, run in parallel, nothing lost.

The base plan is read and validated once and shipped once to each worker process (pool initializer); a case
carries only its edits. Each case returns a compact :class:`CaseResult` (KPIs and the few tables the reports
need), never a model. A case that fails on its own (invalid edit, infeasible plan, solver error) is recorded
with its reason and the batch goes on. Finished cases are appended to a journal file (JSON lines) as they
complete, so an interrupted batch keeps them even if the process is killed; on Ctrl-C or SIGTERM the caller
still writes its workbook from what finished. Worker processes die with the process that started them, however
it ends (SIGKILL included), and are stopped when the batch is interrupted.

Executors are pluggable (:class:`Executor`): local processes by default, a Dask cluster for issue-scale
batches (``planner.distributed``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from planner.analysis.cases import Case, CaseResult
from planner.analysis.results import whole_wafers
from planner.exhaustion import out_of_memory
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
    starts, capacity = whole_wafers(res.wafer_starts, res.capacity)  # the whole wafers the reports show
    ws = starts.groupby("fab")["wafers"].sum() if len(starts) else pd.Series(dtype=float)
    for fab in run.plan.fabs["fab"].unique():
        kpis[f"wafers[{fab}]"] = float(ws.get(fab, 0.0))
    util = capacity[capacity["capacity"] > 0].groupby("resource")["utilisation"].mean()
    for r, u in util.items():
        kpis[f"utilisation[{r}]"] = float(u)
    out = CaseResult(name=name, status=s["status"], params=params, kpis=kpis,
                     service=res.service[["platform", "period", "demand", "served", "shortfall"]].copy(),
                     capacity=capacity[["resource", "kind", "period", "capacity", "used", "utilisation",
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
        from planner.analysis.explain import ExplanationFailed, explain_shortfalls

        try:
            out.causes = explain_shortfalls(run)
        except ExplanationFailed:  # a lift without an optimum: this scenario's causes are not computed (None)
            out.causes = None
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
            run = run_plan(plan, solver=solver, time_limit=time_limit, prices=False)  # KPIs: no price checks
        return compact(case.name, case.params, run, time.perf_counter() - t0, explain=explain, detail=detail)
    except ValidationFailed as exc:
        msg = "; ".join(p.render() for p in exc.problems if p.severity == "error")
        return CaseResult(case.name, "failed", error=f"invalid: {msg}", params=case.params,
                          seconds=time.perf_counter() - t0)
    except SolverError as exc:
        return CaseResult(case.name, "failed", error=str(exc), params=case.params, seconds=time.perf_counter() - t0)
    except Exception as exc:  # a bug or a numerical failure in one case must not stop the batch
        if out_of_memory(exc):  # but no memory stops them all: said once, as everywhere (the CLI's one line)
            raise
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
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(expected: int | None) -> None:
    """End this worker when the process that started it ends, however that ends.

    A parent killed with SIGKILL cannot stop its pool: its workers (about 100 MB each) kept running and held the
    parent's output pipes open, so a caller capturing the output hung. On Linux the kernel sends SIGKILL to the
    worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere, a thread also checks the parent's id
    every second. ``expected`` is the parent's pid when it forked this worker (then a parent already gone is
    seen at once).
    """
    parent = os.getppid()
    if expected is not None and parent != expected:
        os._exit(1)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # no libc or no prctl: the watchdog below still applies
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect: nothing would send the signal now
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    with contextlib.suppress(RuntimeError):  # no thread to spare (resource limits): prctl still holds on Linux
        threading.Thread(target=watch, name="planner-parent-watch", daemon=True).start()


def _init_worker(base: PlanData, parent: int | None = None) -> None:
    global _WORKER_BASE
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, inherited by the fork
    _WORKER_BASE = base


def case_runner(kw: dict) -> tuple[Callable[..., CaseResult], dict]:
    """The per-case function of a batch (``runner=`` in its keywords, default :func:`run_case`) and the rest of the
    keywords. Another analysis (the hedged plan's recourse, :mod:`planner.analysis.hedge`) passes its own
    module-level function, so it runs on the same executors, local or Dask."""
    kw = dict(kw)
    return kw.pop("runner", None) or run_case, kw


def _worker_run(case: Case, kw: dict) -> CaseResult:
    assert _WORKER_BASE is not None
    runner, kw = case_runner(kw)
    return runner(_WORKER_BASE, case, **kw)


class LocalExecutor:
    """Local processes (the default); one process runs inline, which is also what tests use to monkeypatch."""

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or min(os.cpu_count() or 1, 4))

    def map_unordered(self, base: PlanData, cases: list[Case], **kw: Any) -> Iterator[CaseResult]:
        if self.workers == 1 or len(cases) <= 1:
            runner, rest = case_runner(kw)
            for case in cases:
                yield runner(base, case, **rest)
            return
        forks = multiprocessing.get_start_method() == "fork"
        with _deferred():
            pool = ProcessPoolExecutor(max_workers=min(self.workers, len(cases)), initializer=_init_worker,
                                       initargs=(base, os.getpid() if forks else None))
        finished = False
        died: list[BaseException] = []
        previous_hook = threading.excepthook

        def pool_thread_died(args: threading.ExceptHookArgs) -> None:
            """The pool's manager thread can die (it could not start the queue's feeder thread: measured under
            ulimit -v) and then no future ever completes: keep its exception for the loop below to raise, instead
            of a traceback on stderr and a run that waits forever."""
            if args.thread is not None and args.thread is getattr(pool, "_executor_manager_thread", None):
                died.append(args.exc_value if args.exc_value is not None else RuntimeError("pool thread died"))
            else:
                previous_hook(args)

        threading.excepthook = pool_thread_died
        try:
            with _deferred():
                pending = {pool.submit(_worker_run, c, kw): c for c in cases}
            while pending:
                with _deferred():  # wakes twice a second, so that a deferred Ctrl-C or SIGTERM is seen
                    done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                if died and not done:
                    raise died[0]
                for fut in done:
                    case = pending.pop(fut)
                    try:
                        with _deferred():
                            res = fut.result()
                    except Exception as exc:  # a worker process died (e.g. out of memory)
                        if out_of_memory(exc):
                            raise
                        res = CaseResult(case.name, "failed", error=f"worker failed: {exc!r}", params=case.params)
                    yield res
            finished = True
        finally:
            threading.excepthook = previous_hook
            with _deferred():
                workers = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                if not finished:  # interrupted: a worker mid-case would otherwise finish it (minutes) later
                    for proc in workers:
                        with contextlib.suppress(Exception):
                            proc.terminate()


# ---- interruptions --------------------------------------------------------------------------------------------------
class BatchAborted(Exception):
    """The executor cannot go on (its cluster went away): what finished is kept, as after Ctrl-C."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a batch: handled alike (what finished is kept and written); ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_PENDING: list[int] = []  # signals received while the pool's bookkeeping ran
_DEFER = 0


@contextlib.contextmanager
def _deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the pool's bookkeeping is done, then raise :class:`Interrupted`.

    Raised in the middle of ``concurrent.futures`` (between acquiring a future's lock and releasing it), a
    KeyboardInterrupt left the lock held: the pool's manager thread then waited on it for ever, and the process
    hung at exit after printing that it was interrupted.
    """
    global _DEFER
    _DEFER += 1
    try:
        yield
    finally:
        _DEFER -= 1
    if _PENDING and not _DEFER:
        signum = _PENDING[0]
        _PENDING.clear()
        raise Interrupted(signum)


def _on_signal(signum: int, frame: object) -> None:
    _PENDING.append(signum)
    if not _DEFER:
        raise Interrupted(signum)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """While a batch runs in the main thread, Ctrl-C and SIGTERM interrupt it (at a safe point) instead of killing
    the process, which would lose the finished cases' workbook. Handlers someone else installed are left alone."""
    ours = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    installed = {}
    if threading.current_thread() is threading.main_thread():
        for sig, default in ours.items():
            if signal.getsignal(sig) is default:
                installed[sig] = default
                signal.signal(sig, _on_signal)
    _PENDING.clear()
    try:
        yield
    finally:
        for sig, default in installed.items():
            signal.signal(sig, default)
        _PENDING.clear()


@dataclass
class BatchOutcome:
    results: list[CaseResult]
    interrupted: bool
    seconds: float
    journal: Path | None
    signal: int = 0  # what interrupted the batch (SIGINT for Ctrl-C, SIGTERM), 0 if nothing did
    reason: str = ""  # why the executor stopped early (a lost cluster), "" otherwise

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
    interrupted, signum, reason = False, 0, ""
    fh = open(journal, "a", encoding="utf-8") if journal else None  # noqa: SIM115 - closed in finally
    try:
        with _interruptible():
            for res in executor.map_unordered(base, cases, **kw):
                got[res.name] = res
                if fh:
                    try:
                        fh.write(res.journal_line() + "\n")
                        fh.flush()
                    except OSError as exc:  # a full disk: stop here, keeping what finished in memory
                        raise BatchAborted(f"cannot write the journal {journal}: {exc.strerror or exc}") from exc
                bar.update(res)
                if on_result:
                    on_result(res)
    except KeyboardInterrupt as exc:
        interrupted, signum = True, getattr(exc, "signum", signal.SIGINT)
    except BatchAborted as exc:
        interrupted, reason = True, str(exc)
    finally:
        bar.close()
        if fh:
            with contextlib.suppress(OSError):  # what did not fit is reported above; closing retries the flush
                fh.close()
    why = f"not run: {reason}" if reason else "not run: batch interrupted"
    ordered = [got.get(c.name) or CaseResult(c.name, "interrupted", error=why, params=c.params) for c in cases]
    return BatchOutcome(ordered, interrupted, time.perf_counter() - t0, journal, int(signum), reason)
