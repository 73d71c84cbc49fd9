"""Scenario batches on an existing Dask cluster (``--scheduler tcp://HOST:PORT``).

Dask is an optional extra (``pip install 'planner[distributed]'``). The base plan is shipped once to every
worker (``scatter(..., broadcast=True)``); each task carries a few cases' edits (chunks sized so that Dask's
per-task cost stays small next to the solves) and returns compact :class:`~planner.batch.CaseResult` objects,
never models. Dask itself re-runs the tasks of a worker that dies, so a
lost worker costs time, not scenarios; a case that fails on its own comes back as a failed result and the
batch goes on. Results equal a local run of the same batch: each case's solve depends only on the base plan
and the case (see :mod:`planner.solve.warm`).

Every problem with the address ends within ``CONNECT_TIMEOUT_S`` with one line: a malformed address or an
unknown scheme at once, a server that accepts the connection but does not speak Dask (an HTTP server) when the
handshake times out, a scheduler without workers after waiting that long for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

from planner.analysis.cases import Case, CaseResult
from planner.batch import BatchAborted, case_runner
from planner.io.validate import PlanData

CONNECT_TIMEOUT_S = 5


class DistributedError(Exception):
    """Dask missing, or the scheduler unreachable: the message says what to do."""


class ClusterLost(DistributedError, BatchAborted):
    """The connection to the scheduler was lost mid-batch: the batch stops, keeping what finished."""


def _import():
    try:
        import distributed
    except ImportError as exc:
        raise DistributedError("running on a cluster needs Dask: pip install 'planner[distributed]' "
                               "(or run without --scheduler to use local processes)") from exc
    return distributed


def quiet_dask_logs() -> None:
    """Silence Dask's own log records below CRITICAL (reconnect attempts, tracebacks of lost connections): the
    command line says in one line what went wrong."""
    import logging

    with contextlib.suppress(ImportError):
        import distributed  # noqa: F401  - configures its loggers on import; set their levels after that
    for name in ["distributed", *list(logging.root.manager.loggerDict)]:
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _task(base: PlanData, cases: list[Case], kw: dict) -> list[CaseResult]:
    runner, kw = case_runner(kw)
    return [runner(base, case, **kw) for case in cases]


def chunk_size(n_cases: int, n_workers: int) -> int:
    """Cases per task: about 8 tasks per worker, at most 25 cases each. Scenarios of a small plan take
    milliseconds, less than Dask's per-task cost; chunks amortise it while keeping the load balanced and a
    dead worker's loss small."""
    return max(1, min(25, n_cases // max(1, 8 * n_workers)))


def check_address(address: str) -> None:
    """Refuse an address Dask cannot use, before any connection (Dask itself printed a traceback 10 s later)."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, loc = parse_address(address, strict=False)
        get_backend(scheme)
        if scheme in ("tcp", "tls", "ws", "wss"):
            host, port = parse_host_port(loc)
            if not host or not 0 < int(port) < 65536:
                raise ValueError(f"no host or no port 1-65535 in {loc!r}")
    except (ValueError, TypeError) as exc:
        raise DistributedError(f"--scheduler {address!r} is not a Dask scheduler address ({exc}); expected "
                               "tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786") from None


async def _identity(address: str, timeout: float) -> object:
    from distributed.comm import connect
    from distributed.security import Security

    args = Security().get_connection_args("client")  # TLS settings from the Dask config, as Client uses them
    comm = await connect(address, timeout=timeout, **args)  # its handshake has no timeout: see probe()
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> dict:
    """Ask the server at ``address`` who it is, within ``timeout`` seconds in all; return its identity.

    ``distributed.Client`` waits for ever on a server that accepts the connection and never answers the Dask
    handshake (an HTTP server, a wrong port): the bound here is on the whole exchange.
    """
    def ask() -> object:
        return asyncio.run(asyncio.wait_for(_identity(address, timeout), timeout))

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            info = ask()
        else:  # called from a running event loop (a notebook): ask from a thread with its own loop
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1) as pool:
                info = pool.submit(ask).result()
    except TimeoutError as exc:  # asyncio's timeout, or connect's own "Timed out trying to connect"
        if "connect" in str(exc):
            raise DistributedError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s; check "
                                   "the address and that `dask scheduler` is running") from None
        raise DistributedError(f"{address} accepted the connection but did not answer as a Dask scheduler within "
                               f"{timeout:g} s; check the port (the scheduler listens on 8786 by default, its "
                               "dashboard on 8787)") from None
    except OSError as exc:
        raise DistributedError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({exc}); "
                               "check the address and that `dask scheduler` is running") from None
    except Exception as exc:  # it answered, but not in Dask's protocol
        raise DistributedError(f"{address} did not answer as a Dask scheduler ({type(exc).__name__}: {exc}); "
                               "check the address") from None
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        kind = info.get("type") if isinstance(info, dict) else type(info).__name__
        raise DistributedError(f"{address} is not a Dask scheduler (it says it is {kind}); give the scheduler's "
                               "address") from None
    return info


class DaskExecutor:
    def __init__(self, address: str, timeout: float = CONNECT_TIMEOUT_S):
        distributed = _import()
        self.address = address
        check_address(address)
        probe(address, timeout)
        try:
            self.client = distributed.Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise DistributedError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                                   f"({type(exc).__name__}: {exc}); check the address and that "
                                   "`dask scheduler` is running") from exc
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError) as exc:
            self.client.close()
            raise DistributedError(f"the Dask scheduler at {address} has no workers (none joined within "
                                   f"{timeout:g} s); start some with `dask worker {address}`") from exc

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def map_unordered(self, base: PlanData, cases: list[Case], **kw: Any) -> Iterator[CaseResult]:
        distributed = _import()
        if not self.workers:
            raise DistributedError(f"the Dask scheduler at {self.address} has no workers")
        base_f = self.client.scatter(base, broadcast=True, hash=False)
        batch = uuid.uuid4().hex[:8]
        k = chunk_size(len(cases), self.workers)
        chunks = [cases[i:i + k] for i in range(0, len(cases), k)]
        futures = {self.client.submit(_task, base_f, chunk, kw, key=f"planner-{batch}-{i}", pure=False): chunk
                   for i, chunk in enumerate(chunks)}
        try:
            for fut in distributed.as_completed(list(futures), loop=self.client.loop):
                try:
                    yield from fut.result()
                except Exception as exc:  # KilledWorker after Dask's own retries, or a lost connection
                    if "connection-lost" in str(exc) or self.client.status in ("closing", "closed"):
                        raise ClusterLost(f"lost the connection to the Dask scheduler at {self.address}") from None
                    for case in futures[fut]:
                        yield CaseResult(case.name, "failed", error=f"cluster: {type(exc).__name__}: {exc}",
                                         params=case.params)
        finally:
            with contextlib.suppress(Exception):  # nothing to cancel on a scheduler that is gone
                self.client.cancel(list(futures))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a scheduler that went away cannot be told goodbye
            self.client.close(timeout=CONNECT_TIMEOUT_S)


class DaskRunner:
    """Runs the analyses' independent re-solves (:mod:`planner.analysis.resolves`) on a Dask cluster.

    Each task's arguments go as they are, except plans, which are scattered once per distinct plan object (the
    base plan is an argument of every explanation lift). Results come back in the order of the tasks;
    ``progress(done, total)`` hears each one finish. An interrupt cancels what has not finished."""

    def __init__(self, executor: DaskExecutor, progress=None, deadline: float | None = None):
        self.executor = executor
        self.progress = progress
        self.deadline = deadline  # as :class:`planner.analysis.resolves.Runner`'s: unfinished tasks give OVERTIME
        self.at_least = 0  # … but the first ``at_least`` tasks of a map always run to their end

    def map(self, tasks, span=None):
        from planner.analysis.resolves import OVERTIME

        distributed = _import()
        before, total = span or (0, len(tasks))
        client = self.executor.client
        if not tasks:
            return []
        left = None if self.deadline is None else self.deadline - time.monotonic()
        if left is not None and left <= 0 and not self.at_least:
            return [OVERTIME] * len(tasks)
        scattered: dict[int, object] = {}

        def ship(a):
            if isinstance(a, PlanData):
                if id(a) not in scattered:
                    scattered[id(a)] = client.scatter(a, broadcast=False, hash=False)
                return scattered[id(a)]
            return a

        batch = uuid.uuid4().hex[:8]
        # the first at_least tasks always finish: they go first (else the scheduler may run the others before them,
        # and waiting for them would let the others run past the deadline)
        futures = [client.submit(fn, *[ship(a) for a in args], key=f"planner-resolve-{batch}-{i}", pure=False,
                                 priority=1 if i < self.at_least else 0)
                   for i, (fn, args) in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list = [OVERTIME] * len(tasks)
        try:
            if self.at_least and left is not None:  # those always finish; the deadline holds for the rest
                for f in futures[:self.at_least]:
                    f.exception()  # waits for it (its error, if any, is raised below like any other's)
                left = max(0.05, self.deadline - time.monotonic())
            for done, fut in enumerate(distributed.as_completed(futures, loop=client.loop, timeout=left), 1):
                try:
                    out[index[fut.key]] = fut.result()
                except Exception as exc:
                    if "connection-lost" in str(exc) or client.status in ("closing", "closed"):
                        raise ClusterLost(f"lost the connection to the Dask scheduler at "
                                          f"{self.executor.address}") from None
                    raise
                if self.progress is not None:
                    self.progress(before + done, total)
        except TimeoutError:  # the analyses' time limit: what has not finished stays OVERTIME (and is cancelled)
            pass
        finally:
            with contextlib.suppress(Exception):
                client.cancel(futures)
        return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """A real `dask scheduler` and N `dask worker` processes on 127.0.0.1 (tests and benchmarks).

    Workers run without a nanny, so a killed worker stays dead (what a crashed machine looks like).
    """

    def __init__(self, n_workers: int = 2, startup_timeout: float = 60.0):
        import subprocess
        import sys
        import time

        distributed = _import()
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        py = sys.executable
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen([py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                           "--port", str(port), "--no-dashboard"], **quiet)
        self.workers = [subprocess.Popen([py, "-m", "distributed.cli.dask_worker", self.address, "--host",
                                          "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                          "--name", f"w{i + 1}"], **quiet) for i in range(n_workers)]
        deadline = time.time() + startup_timeout
        while time.time() < deadline:
            try:
                with distributed.Client(self.address, timeout="2s") as c:
                    if len(c.scheduler_info(n_workers=-1)["workers"]) == n_workers:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.close()
        raise DistributedError(f"the loopback Dask cluster did not come up within {startup_timeout:g} s")

    def close(self) -> None:
        import subprocess

        procs = [*self.workers, self.scheduler]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
