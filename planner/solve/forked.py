"""A pure-numpy computation on a forked copy of this process, so that it has a core of its own.

Why: the capacity price checks' basis solves (``VouchAsk.decide``, ~1 s on a 416k-column plan) are thousands of
short numpy and scipy steps. On a thread beside the report's Python they took 2-2.6 s, waiting for the GIL at
every step (no switch interval helped: measured 0.2 ms, 50 µs, 10 µs), and on the report's own thread they hold
the report up by their whole second. A forked child has its own interpreter: it reads the arrays the parent
copied out of HiGHS (copy-on-write, nothing is pickled on the way in) and sends back two boolean arrays.

Only where fork is the platform's own way (Linux), and never under ``ulimit -v`` (a fork there can fail for the
address space alone); everywhere else :func:`available` says no and the caller computes in process. The child
touches no HiGHS object (a forked copy of a process whose solver has worker threads must not call the solver)
and imports nothing (the import lock may be held by another thread at the fork). Anything that goes wrong in
or with the child is "no answer", and the caller computes in process after all.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from planner.exhaustion import address_space_limited

POLL_S = 0.02  # how often a waiting caller asks whether it should stop


def available() -> bool:
    """Whether :class:`Forked` may be used here: Linux (fork is its default), no address-space limit."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and not address_space_limited()


class Forked:
    """``fn()`` running in a forked child from construction; :meth:`result` waits for its value."""

    def __init__(self, fn: Callable[[], Any], name: str = "planner-forked"):
        ctx = multiprocessing.get_context("fork")
        for stream in (sys.stdout, sys.stderr):  # else the child's exit would write the parent's buffers again
            with contextlib.suppress(AttributeError, OSError, ValueError):
                stream.flush()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(fn, send), name=name, daemon=True)
        # Ctrl-C held back from this thread while it forks: the child inherits the mask, so a Ctrl-C sent to the
        # process group before the child ignores it (its at-fork hooks run Python first) cannot raise there and
        # print tracebacks from the child; here it is delivered once unmasked, and handled as anywhere else
        masked = _mask_sigint()
        try:
            self._proc.start()
        finally:
            send.close()  # the parent's copy: once the child's closes, recv() sees the end
            _unmask(masked)

    def result(self, stop: Callable[[], bool] | None = None) -> tuple[bool, Any]:
        """(True, value) once the child has it; (False, why) if the child failed or died without one, or if
        ``stop()`` said so while waiting (the child is stopped then). Ctrl-C while waiting stops the child too."""
        try:
            while not self._recv.poll(POLL_S):
                if stop is not None and stop():
                    self.cancel()
                    return False, "stopped"
                if not self._proc.is_alive() and not self._recv.poll(0):
                    self.cancel()
                    return False, f"the child ended (exit code {self._proc.exitcode}) without an answer"
            out = self._recv.recv()
        except (EOFError, OSError) as exc:
            self.cancel()
            return False, f"no answer from the child ({exc})"
        except BaseException:
            self.cancel()
            raise
        self._proc.join(5)
        self.cancel()  # reaps it; terminates it only if it has not ended by now
        return out

    def cancel(self) -> None:
        """Stop the child (if it still runs) and reap it."""
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()
        if not self._recv.closed:
            self._recv.close()


def _mask_sigint() -> set | None:
    """Block SIGINT for the calling thread; the previous mask, or None where masks are not available."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not on Linux
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _unmask(previous: set | None) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _child(fn: Callable[[], Any], send: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops this child
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # masked by the parent across the fork
    try:
        send.send((True, fn()))
    except BaseException as exc:  # noqa: BLE001 - any failure is "no answer" for the parent
        send.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()
