"""Command line: thin click commands over the library API (`planner.api`).

Exit codes: 0 success; 1 the input is invalid, the plan is infeasible or did not solve to optimality, or the
output cannot be written; 2 usage errors (click's own). Problems go to stderr, results to stdout.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections import Counter
from pathlib import Path

import click

# planner runs its solves in parallel itself (processes, a thread pool); BLAS threads would only compete with
# them, and each reserves memory at start: under a tight memory limit OpenBLAS failed to start them and numpy's
# import ended in a KeyboardInterrupt. Set before anything imports numpy; an explicit setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from planner import __version__
from planner.exhaustion import out_of_memory
from planner.io.problems import Problem, ValidationFailed, capped
from planner.io.reader import ReadError
from planner.report.atomic import OutputError
from planner.report.fmt import status_clause

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


class UserError(click.ClickException):
    """A problem the user can fix (unwritable output, unreachable cluster): one line ``error: …``, exit 1."""

    exit_code = EXIT_USER

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def _exhausted(exc: BaseException) -> str | None:
    """One line for a resource the process ran out of (memory, threads, processes), or None if it is not that.

    Nothing here may import a module: with the memory gone, loading one fails too (measured: ``resource``).
    """
    soft = _ADDRESS_SPACE_LIMIT
    limit = f"; this process may use {soft / 2**20:,.0f} MB (ulimit -v)" if soft else ""
    text = str(exc)
    memory = out_of_memory(exc, limited=bool(soft))  # numpy wraps the loader's "failed to map segment" itself
    if memory:
        return (f"out of memory{limit}: close other programs, raise the limit, or make the run smaller "
                "(--no-explain and --no-insights skip the re-solves, --workers 1 the extra processes)")
    if (isinstance(exc, RuntimeError) and "can't start new thread" in text
            or isinstance(exc, OSError) and exc.errno == errno.EAGAIN):  # fork or pthread_create refused
        if soft:  # a thread's stack is address space: under ulimit -v this is the memory limit speaking
            return (f"out of memory{limit}: cannot start a thread or process; close other programs, raise the "
                    "limit, or run with --workers 1")
        return ("cannot start a thread or process (the system's limit on threads, processes or memory is "
                "reached): close other programs or run with --workers 1")
    return None


def _address_space_limit() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return 0 if soft == resource.RLIM_INFINITY else soft


_ADDRESS_SPACE_LIMIT = _address_space_limit()  # read at start, while there is memory to load the module


def _quiet_unraisable(hook=sys.unraisablehook):
    """An object finalised while memory runs out (openpyxl's sheet generator, seen under ulimit -v) made Python
    print "Exception ignored in …" with a traceback before the run's one error line; those go unsaid (the run says
    it ran out of memory), any other unraisable exception is printed as before.

    A Ctrl-C that Python raises inside a finaliser is not lost either: Python would print it and carry on, so
    ``planner solve`` wrote its report and exited 0 after the user pressed Ctrl-C (a ZipFile left by the
    workbook reader, finalised by a garbage collection while the plan was extracted: a Ctrl-C in that ~0.1 s
    was ignored in 4 of 9 tries on a 29k-column plan). It is delivered again to the main thread, outside the
    finaliser, and ends the run as any other Ctrl-C does. Delivered from a short thread of its own: delivered
    from here, Python raises it at once, inside this hook, where it is ignored once more."""

    def quiet(info) -> None:
        if isinstance(info.exc_value, MemoryError):
            return
        if isinstance(info.exc_value, KeyboardInterrupt):
            import _thread

            try:
                _thread.start_new_thread(_thread.interrupt_main, ())
            except RuntimeError:  # no thread to be had: at least say it, as Python would have
                hook(info)
            return
        hook(info)

    return quiet


sys.unraisablehook = _quiet_unraisable()  # workers forked from here inherit it


class _Planner(click.Group):
    """The command group: wherever memory or threads run out, or an output cannot be written, one line, exit 1;
    Ctrl-C where the command says nothing itself: one line, exit 130."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except OutputError as exc:
            raise UserError(str(exc)) from exc
        except KeyboardInterrupt:  # where a command does not say more (reading the workbook, …): the shell's code
            click.echo("interrupted (Ctrl-C)", err=True)  # for Ctrl-C, not click's "Aborted!" with exit 1
            sys.exit(130)
        except (MemoryError, RuntimeError, OSError, ImportError, SystemError) as exc:
            message = _exhausted(exc)
            if message is None:
                raise
            # with the memory or threads gone, the interpreter's own shutdown prints "Exception ignored …" noise
            # while it finalises objects, and joins worker processes that may have hung in a fork made while a
            # lock was held (measured: --workers 2 under ulimit -v 188 MB waited forever): kill the workers, say
            # the one line and leave at once (writes clean up before they re-raise, journals are flushed per
            # line, locks go with the process)
            _kill_children()
            sys.stderr.write(f"error: {message}\n")
            sys.stderr.flush()
            os._exit(EXIT_USER)


def _kill_children() -> None:
    """SIGKILL every worker process this process started (no import: the memory may be gone)."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return
    try:
        children = mp.active_children()
    except Exception:  # noqa: BLE001 - nothing left to ask with; the workers' parent-death signal still holds
        return
    for child in children:
        with contextlib.suppress(Exception):  # already gone
            child.kill()


def _seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """--time-limit: validated like Settings.time_limit_s (0, negative and NaN used to mean "no limit")."""
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"expected a number of seconds > 0 (as Settings.time_limit_s), found {value:g}")
    return value


def _analysis_limit(ctx: click.Context, param: click.Parameter, value: str) -> float | str | None:
    """--analysis-limit: auto, none, or seconds > 0."""
    import math

    word = value.strip().lower()
    if word in ("auto", "none"):
        return None if word == "none" else "auto"
    try:
        seconds = float(word)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise click.BadParameter(f"expected auto, none or a number of seconds > 0, found {value!r}")
    return seconds


LIMIT_NOTE = "The analyses stopped at their time limit"  # the Overview note of planner.api._say_cut


def _print_problems(problems: list[Problem], as_json: bool = False) -> None:
    if as_json:
        return
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    listed, rest = capped(problems)
    for p in listed:
        click.echo(p.render(), err=True)
    if rest:
        counts = ", ".join(f"{code}: {n:,}" for code, n in rest.most_common())
        click.echo(f"... and {sum(rest.values()):,} more not listed ({counts})", err=True)
    if errors:
        click.echo(f"{len(errors):,} error(s), {len(warnings):,} warning(s): fix the errors above and run again.",
                   err=True)


def _problems_json(status: str, problems: list[Problem]) -> str:
    """The problems as JSON: the first MAX_LISTED in full, and a count by code of all of them."""
    listed, rest = capped(problems)
    doc = {"status": status, "problems": [p.to_dict() for p in listed], "omitted": sum(rest.values()),
           "counts": dict(Counter(str(p.code) for p in problems))}
    return json.dumps(doc, indent=2)


def _fail_input(exc: Exception, as_json: bool) -> None:
    problems = exc.problems if isinstance(exc, ValidationFailed) else [exc.problem]  # type: ignore[attr-defined]
    if as_json:
        click.echo(_problems_json("invalid", problems))
    _print_problems(problems)
    sys.exit(EXIT_USER)


def _load(path: Path, as_json: bool = False):
    from planner.io.reader import ReadAside

    aside = ReadAside(path)  # the workbook is parsed on the other core while the imports below run
    try:
        from planner.io.load import load_plan

        return load_plan(path, raw=aside.result())
    except (ReadError, ValidationFailed) as exc:
        _fail_input(exc, as_json)
    finally:
        aside.close()


INPUT = click.argument("input_path", metavar="INPUT.xlsx|DIR", type=click.Path(path_type=Path, dir_okay=True))
SCENARIO = click.option("--scenario", "scenarios", multiple=True, metavar="NAME",
                        help="Apply a scenario from the Scenarios sheet (repeatable: applied in order).")
SET = click.option("--set", "sets", multiple=True, metavar="EXPR",
                   help='Override a cell, e.g. --set "Programs[HBM4].qualification_quarters+=2" or '
                        '--set "Settings.policy=priority" (repeatable).')
WORKERS = click.option("--workers", type=click.IntRange(1), default=None, metavar="N",
                       help="Local worker processes (default: number of cores, at most 4; 1 = in this process).")
SCHEDULER = click.option("--scheduler", metavar="tcp://HOST:PORT",
                         help="Run the batch on an existing Dask cluster (pip install 'planner[distributed]').")
QUIET = click.option("--quiet", is_flag=True, help="No progress bar.")
FORCE_REPORT = click.option("--force", is_flag=True,
                            help="Replace whatever is at the output path (default: replace only an untouched report "
                                 "planner wrote; anything else is kept and the command stops).")
FORCE_INPUT = click.option("--force", is_flag=True,
                           help="Replace an existing file at the output path (default: never; it may be a plan).")


def _target(path: Path, kind: str, force: bool, input_path: Path | None = None, option: str = "-o",
            baseline: Path | None = None) -> Path:
    """Apply the output policy (planner.report.outputs.check_output): a wrong extension is a usage error
    (exit 2), anything that would lose work a user error (exit 1). Called before any work, and again just
    before writing."""
    from planner.report.outputs import OutputUsageError, check_output

    try:
        inputs = tuple(p for p in (input_path, baseline) if p is not None)  # never written over, even with --force
        check_output(path, kind, force=force, inputs=inputs, option=option)
    except OutputUsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    return path


@click.group(cls=_Planner, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="planner")
def main() -> None:
    """planner: memory supply-chain capacity planning (HBM / LPDDR for AI platforms) with a linear program.

    Typical use: `planner solve inputs/example.xlsx` reads the plan, allocates wafers, back-end capacity and
    finished memory across platforms and quarters, and writes `inputs/example-report.xlsx`.
    """


@main.command()
@INPUT
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON on stdout.")
def validate(input_path: Path, as_json: bool) -> None:
    """Check a workbook and report every problem at once.

    Each problem names the sheet, cell, column, what was expected and what was found, with a "did you
    mean" hint for near-miss names. Example: `planner validate inputs/example.xlsx`. Exit 0 valid,
    1 invalid.
    """
    plan = _load(input_path, as_json)
    if as_json:
        click.echo(_problems_json("valid", plan.warnings))
    else:
        _print_problems(plan.warnings)
        s = plan.settings
        click.echo(f"{input_path}: valid. {len(plan.products)} products, {len(plan.platforms)} platforms, "
                   f"{len(plan.fabs)} fab/node lines, {s.horizon_quarters} quarters from {s.first_period}; "
                   f"{len(plan.warnings)} warning(s).")


@main.command()
@click.argument("output", metavar="OUT.xlsx", type=click.Path(path_type=Path, dir_okay=False))
@FORCE_INPUT
def template(output: Path, force: bool) -> None:
    """Write an empty input workbook with every sheet, header comments and drop-downs.

    Example: `planner template my-plan.xlsx`, fill it in, then `planner validate my-plan.xlsx`. An existing
    file is never replaced unless --force is given.
    """
    from planner.report.template import write_template

    _target(output, "template", force, option="OUT.xlsx")
    try:
        write_template(output)
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"wrote {output}")


@main.command()
@click.argument("output", metavar="OUT.xlsx", type=click.Path(path_type=Path, dir_okay=False),
                default="inputs/example.xlsx")
@FORCE_INPUT
def example(output: Path, force: bool) -> None:
    """Write the hypothetical example plan (the one in inputs/example.xlsx).

    Example: `planner example my-copy.xlsx`. An existing file is never replaced unless --force is given.
    """
    from planner.io.example import write_example

    _target(output, "example", force, option="OUT.xlsx")
    try:
        write_example(output)
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"wrote {output}")


@main.command()
@INPUT
@click.option("--port", type=click.IntRange(0, 65535), default=8050, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than loopback requires the token printed at start.")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True),
              help="Solver time limit per change in seconds (default: Settings.time_limit_s, else 60).")
@click.option("--max-columns", type=click.IntRange(1), default=50_000, show_default=True,
              help="Largest LP re-solved on every change; above, the page composes commands instead.")
@click.option("--token", "require_token", is_flag=True,
              help="Require the printed access token on loopback too (a machine shared with other users).")
def serve(input_path: Path, port: int, host: str, time_limit: float | None, max_columns: int,
          require_token: bool) -> None:
    """Open a local what-if page over one plan: move a lever, see the plan re-solve.

    Levers from the plan's own data (program readiness, fab and back-end capacity, platform demand, policy,
    backlog, a Scenarios-sheet scenario as the start); key figures with deltas against the base, served vs
    demand, shortfall causes, what binds and what would help update without a reload. The page shows the
    `--set` expressions the levers amount to, saves them as a scenario and downloads the report
    `planner solve` would write. Needs `pip install -e ".[serve]"`. Example: `planner serve inputs/example.xlsx`,
    then open http://127.0.0.1:8050/.
    """
    try:
        from planner.serve.app import ServeError
        from planner.serve.app import serve as run_server
        from planner.serve.engine import Engine
    except ImportError as exc:
        raise UserError(f"planner serve needs the 'serve' extra ({exc.name} is missing): "
                        "pip install -e \".[serve]\"") from exc
    plan = _load(input_path)
    _print_problems(plan.warnings)
    click.echo(f"preparing the page for {input_path} (the base plan is solved once) …", err=True)
    try:
        engine = Engine(input_path, plan, time_limit=time_limit, max_columns=max_columns)
        run_server(input_path, engine, host=host, port=port, echo=lambda s: click.echo(s), require_token=require_token)
    except ServeError as exc:
        raise UserError(str(exc)) from exc
    except ValidationFailed as exc:
        _fail_input(exc, False)


def default_report_path(input_path: Path, suffix: str = "report") -> Path:
    """``plan.xlsx`` → ``plan-report.xlsx`` beside it; a CSV folder ``q3/`` → ``q3-report.xlsx`` beside the folder."""
    input_path = Path(input_path)
    if input_path.is_dir():
        input_path = input_path.resolve()
    return input_path.with_name(f"{input_path.stem}-{suffix}.xlsx")


def _progress(enabled: bool):
    """Stage messages on stderr while a terminal watches (long solves are otherwise silent); none when piped."""
    import time

    if not (enabled and sys.stderr.isatty()):
        return None
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        click.echo(f"[{time.perf_counter() - t0:6.1f} s] {msg}", err=True)

    return say


def _echo_summary(rep, out_path: Path | None) -> None:
    from planner.report.writer import headline

    for line in headline(rep):
        click.echo(line)
    if out_path is not None:
        click.echo(f"report: {out_path}")


@main.command()
@INPUT
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Report path (default: INPUT-report.xlsx next to the input; with --scenario or --set, "
                   "INPUT-report-<scenario or edit>.xlsx, so the base report is never overwritten by a variant).")
@click.option("--json", "as_json", is_flag=True, help="Also print the Summary as one JSON object on stdout.")
@SCENARIO
@SET
@click.option("--all-scenarios", is_flag=True,
              help="Solve the base and every scenario, one report each (INPUT-report-<scenario>.xlsx).")
@click.option("--solver", type=click.Choice(["highs", "cbc"]), help="Override Settings.solver.")
@click.option("--method", type=click.Choice(["auto", "simplex", "ipm"]),
              help="HiGHS algorithm (auto: simplex below 2,000 columns, interior point above).")
@click.option("--time-limit", type=float, callback=_seconds, metavar="SECONDS",
              help="Solver time limit in seconds, > 0 (overrides Settings.time_limit_s).")
@click.option("--insights/--no-insights", default=None,
              help="R&D impact and expansion timing re-solves (default: on).")
@click.option("--explain/--no-explain", "explain_", default=None,
              help="Shortfall causes and \"what would help\" (default: on; Ctrl-C while they run keeps the plan "
                   "and reports them as not computed).")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Run the explanation's and R&D impact's re-solves on an existing Dask cluster "
                   "(pip install 'planner[distributed]'); the base solve stays here.")
@click.option("--analysis-limit", default="auto", show_default=True, callback=_analysis_limit,
              metavar="auto|none|SECONDS",
              help="Wall-time limit for the analyses, counted from the end of the base solve: the shortfall "
                   "causes and R&D impact's first program always finish; R&D impact's other programs, \"what "
                   "would help\" and expansion timing stop at it. auto = 1.5x the plan's own build and solve, at "
                   "least 15 s; none = no limit. What the limit leaves out is marked in the report.")
@FORCE_REPORT
@click.option("--baseline", type=click.Path(path_type=Path, dir_okay=False), metavar="LAST-REPORT.xlsx",
              help="A previous report of planner solve: compare with it (SinceBaseline sheets, the Overview's first "
                   "sentence) and hold its wafer starts in the first Settings.frozen_quarters quarters.")
def solve(input_path: Path, output: Path | None, as_json: bool, scenarios: tuple[str, ...], sets: tuple[str, ...],
          all_scenarios: bool, solver: str | None, method: str | None, time_limit: float | None,
          insights: bool | None, explain_: bool | None, scheduler: str | None, analysis_limit: float | str | None,
          force: bool, baseline: Path | None) -> None:
    """Solve a plan and write the Excel report.

    Reads INPUT.xlsx (or a folder of CSV files, one per sheet), allocates wafers, back-end capacity and
    finished memory across platforms and quarters under the plan's policy, and writes a report with
    Overview, charts, bottlenecks, shortfall causes, R&D impact, P&L per platform and the contract sheets.
    Example: `planner solve inputs/example.xlsx -o plan.xlsx`, with a what-if: `planner solve
    inputs/example.xlsx --scenario "HBM4 slips 1Q"`, or against last quarter's report: `planner solve
    erp-export/ --baseline plan-2026Q1-report.xlsx`. Exit 0 when optimal; 1 when the input is invalid,
    the plan infeasible or the solve stopped early.
    """
    with _json_errors(as_json):  # a script reading --json gets an object whatever stops the command
        out_path = output or default_report_path(input_path, _variant_suffix(scenarios, sets))
        _target(out_path, "report", force, input_path, baseline=baseline)
        _lock(out_path)
        if scheduler:  # a wrong address or a cluster without workers: said now, not after the base solve
            _executor(None, scheduler).close()
        plan = _load(input_path, as_json)
        base = _load_baseline(baseline, as_json) if baseline is not None else None
        if not as_json:
            _print_problems(plan.warnings)
        edits = _edits_for(plan, scenarios, sets, as_json)
        label = "; ".join([*scenarios, *sets])
        runs = [(label, _apply(plan, edits, label, as_json) if edits else plan, out_path)]
        if all_scenarios:
            from planner.io.scenarios import edits_from_sheet, scenario_names

            taken = {out_path.resolve()}
            for name in scenario_names(plan):
                target = _unique(out_path.with_name(f"{out_path.stem}-{_slug(name)}{out_path.suffix}"), taken)
                full = f"{label}; {name}" if label else name
                runs.append((full, _apply(plan, edits + edits_from_sheet(plan, name), full, as_json), target))
        for _name, _plan, target in runs[1:]:  # every report this run will write, before the first solve
            _target(target, "report", force, input_path)
        worst = 0
        summaries = []
        for name, p, target in runs:
            code, summary = _solve_and_report(p, name, target, input_path, as_json, solver, method, time_limit,
                                              insights, explain_, quiet=len(runs) > 1, force=force, baseline=base,
                                              scheduler=scheduler, analysis_limit=analysis_limit)
            worst = max(worst, code)
            summaries.append(summary)
            if len(runs) > 1 and not as_json:
                s = summary
                fill = f"{s['fill_rate']:.1%}" if s.get("fill_rate") is not None else "n/a"
                obj = f"{s['objective']:,.0f}" if s.get("objective") is not None else "n/a"
                margin = f"{s['margin']:,.0f}" if s.get("margin") is not None else "n/a"
                click.echo(f"{name or 'base':<28} {s['status']:<11} margin {margin:>18}  objective {obj:>18}  "
                           f"fill rate {fill:>6}  report {target}")
        if as_json:
            click.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, default=str))
        sys.exit(worst)


def _load_baseline(path: Path, as_json: bool):
    from planner.io.baseline import read_baseline

    try:
        return read_baseline(path)
    except ReadError as exc:
        _fail_input(exc, as_json)


def _solve_and_report(plan, scenario: str, out_path: Path, input_path: Path, as_json: bool, solver, method,
                      time_limit, insights: bool | None, explain: bool | None, quiet: bool = False,
                      force: bool = False, baseline=None, scheduler: str | None = None,
                      analysis_limit: float | str | None = None) -> tuple[int, dict]:
    from planner import api
    from planner.solve.sessions import SolverError

    try:
        say = _progress(not as_json)
        # prices_later: the capacity price checks run on a second thread while the report's other sheets are
        # written (the solve leaves the second core idle); write_report waits for them before the sheets that
        # need them
        run, rep = api.analyse(plan, solver=solver, time_limit=time_limit, method=method, insights=insights,
                               explain=explain, progress=say, scenario=scenario, baseline=baseline,
                               scheduler=scheduler, analysis_limit=analysis_limit, prices_later=True)
        from planner.report.writer import write_report  # after the solve: imported during it (api.analyse)

        try:
            if say:
                say(f"writing {out_path}")
            # a file may have appeared there during the solve
            _target(out_path, "report", force, input_path, baseline=baseline.path if baseline else None)
            written = write_report(out_path, rep, inputs=(input_path,) + ((baseline.path,) if baseline else ()))
        finally:  # not written (Ctrl-C, the target taken): the checks still running are stopped
            if rep.pending is not None:
                rep.pending.cancel()
    except SolverError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USER, {"status": "error", "message": str(exc)}
    except ValidationFailed as exc:  # numbers that are valid one by one but not together
        _print_problems(exc.problems)
        return EXIT_USER, {"status": "invalid", "problems": [p.to_dict() for p in exc.problems]}
    except OutputError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USER, {"status": "error", "message": str(exc)}
    except Exception as exc:  # the cluster of --scheduler missing, unreachable or lost
        from planner.distributed import DistributedError

        if not isinstance(exc, DistributedError):
            raise
        click.echo(f"error: {exc}", err=True)
        return EXIT_USER, {"status": "error", "message": str(exc)}
    except KeyboardInterrupt:
        click.echo("interrupted: no report written (an earlier report, if any, is unchanged)", err=True)
        sys.exit(130)
    left = [k for k, why in rep.not_computed.items() if why.startswith("not computed (") and "no solution" not in why]
    if left:  # Ctrl-C or a lost cluster during the analyses: the report has the plan, and says what is missing
        from planner.api import LABELS

        what = rep.not_computed[left[0]][len("not computed ("):-1]
        click.echo(f"{what}: " + ", ".join(LABELS[k] for k in left) + f" not computed; the plan is in {written}",
                   err=True)
    cut = next((n for n in rep.notes if n.startswith(LIMIT_NOTE)), None)
    if cut and (as_json or quiet):  # the headline (which has it) is not printed: what the limit left out is said
        click.echo(f"{scenario or 'base'}: {cut}", err=True)
    summary = {**run.results.summary, "scenario": scenario or "base", "report": str(written),
               # what the report's analyses lack and why (a script reading --json must not take absence for none)
               "analyses_not_computed": {k: why for k, why in rep.not_computed.items()},
               "analyses_note": cut}
    if not as_json and not quiet:
        _echo_summary(rep, out_path)
    if summary.get("feasibility_check", "passed") != "passed":
        click.echo(f"error: the solution failed its feasibility check ({summary['feasibility_check']}); the report "
                   "is written and says so, but do not use its numbers", err=True)
        return EXIT_USER, summary
    if summary["status"] == "error":
        click.echo(f"error: the solver stopped without a solution ({summary.get('message') or 'no detail'}); "
                   "look for extreme numbers in the input sheets, or try --solver cbc", err=True)
        return EXIT_USER, summary
    if summary["status"] != "optimal":
        click.echo(f"error: {scenario or 'the plan'} {status_clause(summary['status'])}; see the report's Overview"
                   + (" and Infeasibility sheets" if summary["status"] == "infeasible" else ""), err=True)
        return EXIT_USER, summary
    return EXIT_OK, summary


# ---- what-if ------------------------------------------------------------------------------------------------------
def _edits_for(plan, scenarios: tuple[str, ...], sets: tuple[str, ...], as_json: bool = False):
    from planner.io.scenarios import edits_from_sheet, parse_override

    try:
        edits = [e for name in scenarios for e in edits_from_sheet(plan, name)]
        edits += [parse_override(s) for s in sets]
        return edits
    except ValidationFailed as exc:
        _fail_input(exc, as_json)


def _apply(plan, edits, label: str, as_json: bool = False):
    from planner.io.scenarios import apply_edits

    try:
        return apply_edits(plan, edits, label=label)
    except ValidationFailed as exc:
        _fail_input(exc, as_json)


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "scenario"


MAX_SLUG = 60


def _edit_slug(expr: str) -> str:
    """A file-name part for a --set expression that keeps what distinguishes it: the operator in words and
    decimal points (``Programs[HBM4].qualification_quarters+=1`` → ``programs-hbm4-qualification-quarters-plus-1``,
    distinct from ``…=1`` → ``…-eq-1``)."""
    import re

    for op, word in (("+=", " plus "), ("-=", " minus "), ("*=", " times "), ("=", " eq ")):
        expr = expr.replace(op, word)
    expr = re.sub(r"(?<![A-Za-z0-9.])-(?=[0-9.])", " neg ", expr)  # x += -2 is not x += 2
    return "-".join(re.findall(r"[A-Za-z0-9]+(?:\.[0-9]+)*", expr)).lower() or "edit"


def _variant_suffix(scenarios: tuple[str, ...], sets: tuple[str, ...]) -> str:
    """``report`` for the base plan, ``report-<scenario and edit slugs>`` for a variant (bounded in length; a
    hash of the full label keeps long variants apart)."""
    import hashlib

    if not scenarios and not sets:
        return "report"
    slug = "-".join([_slug(s) for s in scenarios] + [_edit_slug(e) for e in sets])
    if len(slug) > MAX_SLUG:
        digest = hashlib.sha1("; ".join([*scenarios, *sets]).encode()).hexdigest()[:8]
        slug = slug[:MAX_SLUG - 9].rstrip("-.") + "-" + digest
    return f"report-{slug}"


def _unique(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``path`` with -2, -3… when another report of this run already goes there (two scenario
    names that slug alike must not overwrite each other)."""
    candidate, n = path, 1
    while candidate.resolve() in taken:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    taken.add(candidate.resolve())
    return candidate




def _executor(workers: int | None, scheduler: str | None):
    if scheduler:
        from planner.distributed import DaskExecutor, DistributedError, quiet_dask_logs

        quiet_dask_logs()

        try:
            return DaskExecutor(scheduler)
        except DistributedError as exc:
            raise UserError(str(exc)) from exc
    from planner.batch import LocalExecutor

    return LocalExecutor(workers)


def _run_batch(plan, cases, workers: int | None, scheduler: str | None, out_path: Path, quiet: bool, **kw):
    """Run a batch on local processes or a Dask cluster; the journal sits beside the output.

    The output is locked for the rest of the command (:func:`_lock`).
    """
    from planner.batch import run_batch
    from planner.distributed import DistributedError

    _lock(out_path)
    executor = _executor(workers, scheduler)
    journal = _journal(out_path)
    try:
        return run_batch(plan, cases, executor=executor, journal=journal, quiet=quiet, **kw), journal
    except DistributedError as exc:  # the cluster went away or lost its workers
        raise UserError(str(exc)) from exc
    finally:
        close = getattr(executor, "close", None)
        if close:
            close()


def _json_errors(as_json: bool):
    """With ``--json``, a user error that stops the command before or after the solve (the output path refused or
    taken, the cluster unreachable) is also the JSON object a failed write prints, ``{"status": "error",
    "message": …}``: stdout is never empty for a script to parse (it was for an unwritable directory, while a full
    disk at the write gave the object)."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except UserError as exc:
            if as_json:
                click.echo(json.dumps({"status": "error", "message": exc.format_message()}))
            raise
    return guard()


def _lock(out_path: Path) -> None:
    """Hold ``out_path`` for the rest of the command (released when it ends, however it ends): a second run on
    the same output is refused naming this one's process, instead of overwriting its report or its journal."""
    from planner.report.atomic import output_lock

    try:
        click.get_current_context().with_resource(output_lock(out_path))
    except OutputError as exc:
        raise UserError(str(exc)) from exc


def _journal(out_path: Path) -> Path:
    from planner.report.atomic import describe, sidecar

    j = sidecar(out_path, ".journal.jsonl")
    try:  # an earlier run's journal: this output is locked, so no running batch owns it
        j.open("w", encoding="utf-8").close()
    except OSError as exc:
        raise UserError(describe(j, exc)) from exc
    return j


def _write_batch(outcome, out_path: Path, journal: Path, write) -> Path:
    """Write a batch workbook with ``write(path)``. An interrupted batch never replaces an earlier workbook: its
    partial results go to OUT-partial.xlsx beside it. A write that fails says where the results still are."""
    target = out_path
    if outcome.interrupted and out_path.exists():
        target = out_path.with_name(f"{out_path.stem}-partial{out_path.suffix}")
    try:
        return write(target)
    except OutputError as exc:
        if outcome.reason:  # the batch had stopped already, e.g. its journal could not be written either
            raise UserError(f"{exc}; {outcome.reason}") from exc
        done = sum(r.status != "interrupted" for r in outcome.results)
        kept = f"; the {done:,} finished result(s) are in {journal}" if done else ""
        raise UserError(f"{exc}{kept}") from exc


MAX_FAILED_LISTED = 20  # the workbook lists every failed case with its reason


def _finish_batch(outcome, written: Path, journal: Path, what: str, out_path: Path | None = None) -> None:
    failed = [r for r in outcome.results if r.status not in ("optimal", "interrupted")]
    for r in failed[:MAX_FAILED_LISTED]:
        click.echo(f"failed: {r.name}: {r.error}", err=True)
    if len(failed) > MAX_FAILED_LISTED:
        click.echo(f"... and {len(failed) - MAX_FAILED_LISTED:,} more failed: see {written}", err=True)
    if outcome.interrupted:
        done = sum(r.status != "interrupted" for r in outcome.results)
        kept = (f"; {out_path} is unchanged" if out_path is not None
                and Path(written).resolve() != out_path.expanduser().resolve() else "")
        why = f"stopped ({outcome.reason})" if outcome.reason else "interrupted"
        click.echo(f"{why}: {done} of {len(outcome.results)} {what} finished and are in {written}{kept}; "
                   f"their KPIs are also in {journal}", err=True)
        sys.exit(128 + outcome.signal if outcome.signal else EXIT_USER if outcome.reason else 130)
    journal.unlink(missing_ok=True)
    ok = sum(r.ok for r in outcome.results)
    click.echo(f"{ok} of {len(outcome.results)} {what} solved in {outcome.seconds:.1f} s "
               f"({len(outcome.results) / max(outcome.seconds, 1e-9):.1f}/s); report: {written}")
    if failed:
        sys.exit(EXIT_USER)


@main.command()
@INPUT
@SCENARIO
@SET
@click.option("--all-scenarios", is_flag=True, help="Compare the base with every scenario of the Scenarios sheet.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Comparison workbook (default: INPUT-compare.xlsx).")
@click.option("--explain/--no-explain", "explain_", default=None,
              help="Shortfall causes of each scenario (default: on below 20,000 LP columns, off above).")
@WORKERS
@SCHEDULER
@QUIET
@FORCE_REPORT
def compare(input_path: Path, scenarios: tuple[str, ...], sets: tuple[str, ...], all_scenarios: bool,
            output: Path | None, explain_: bool | None, workers: int | None, scheduler: str | None,
            quiet: bool, force: bool) -> None:
    """Compare scenarios side by side with the base plan.

    KPIs with deltas (margin = revenue − cost, objective = margin less shortfall penalties, revenue, fill
    rate and units never served per platform (with backlog: unit-quarters of backlog), wafer starts per fab,
    utilisation), service differences per platform and quarter, the input cells each scenario changed,
    which constraints became or stopped binding, and charts. Example:
    `planner compare inputs/example.xlsx --all-scenarios -o compare.xlsx`.
    """
    from planner.analysis.whatif import compare_cases
    from planner.report.whatif import write_compare

    out_path = output or default_report_path(input_path, "compare")
    _target(out_path, "compare", force, input_path)
    plan = _load(input_path)
    from planner.io.scenarios import scenario_names

    names = scenario_names(plan) if all_scenarios else list(scenarios)
    if not names and not sets:
        raise click.UsageError("name scenarios with --scenario, use --all-scenarios, or give --set overrides")
    overrides = _edits_for(plan, (), sets)
    try:
        cases = compare_cases(plan, names, overrides)
    except ValidationFailed as exc:
        _fail_input(exc, False)
    outcome, journal = _run_batch(plan, cases, workers, scheduler, out_path, quiet, explain=explain_)
    moves = None
    if explain_ is not False:
        from planner.analysis.explain import cause_moves

        moves = cause_moves(outcome.results)
    _recheck(out_path, "compare", force, input_path, journal)
    written = _write_batch(outcome, out_path, journal,
                           lambda p: write_compare(p, plan, outcome, cases, moves, inputs=(input_path,)))
    from planner.report.whatif import compare_sentences

    for line in compare_sentences(plan, outcome.results, cases, moves):
        click.echo(line)
    _finish_batch(outcome, written, journal, "scenarios", out_path)


def _recheck(out_path: Path, kind: str, force: bool, input_path: Path, journal: Path) -> None:
    """The output policy once more after a batch (a file may have appeared meanwhile); the journal keeps the
    batch's KPIs when the workbook cannot be written."""
    try:
        _target(out_path, kind, force, input_path)
    except UserError as exc:
        raise UserError(f"{exc.format_message()}. The batch's KPIs are kept in {journal}") from exc


@main.command()
@INPUT
@click.option("--param", required=True, metavar="Sheet[key].column",
              help='Parameter to vary, e.g. "Programs[HBM4].qualification_quarters" or "Backend[TSV-1].units_per_quarter".')
@click.option("--values", metavar="V1,V2,...", help="Values (comma-separated), applied with --op.")
@click.option("--range", "range_", metavar="START:STOP:STEP", help="Evenly spaced values, STOP included; the same "
              "as listing them with --values (applied with --op).")
@click.option("--op", type=click.Choice(["set", "add", "scale"]),
              help="How each value applies to the cell: set it (default), add it, or multiply by it. Points are "
                   "labelled with the cell's resulting value (a '*' key over many cells: with the factor or amount).")
@click.option("--param2", metavar="Sheet[key].column", help="Second parameter: a two-parameter grid.")
@click.option("--values2", metavar="V1,V2,...", help="Values of the second parameter.")
@click.option("--range2", metavar="START:STOP:STEP", help="Range of the second parameter.")
@click.option("--op2", type=click.Choice(["set", "add", "scale"]),
              help="How the second values apply (default: set).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Sweep workbook (default: INPUT-sweep.xlsx).")
@WORKERS
@SCHEDULER
@QUIET
@FORCE_REPORT
def sweep(input_path: Path, param: str, values: str | None, range_: str | None, op: str | None, param2: str | None,
          values2: str | None, range2: str | None, op2: str | None, output: Path | None, workers: int | None,
          scheduler: str | None, quiet: bool, force: bool) -> None:
    """Vary one parameter (or two, as a grid) and tabulate the KPIs at each point.

    One row per point with margin (revenue − cost), objective (margin less shortfall penalties), fill
    rates and utilisation; a chart of them against the parameter; the break points where the binding
    bottleneck changes; with --param2, heat-map grids. Each point is labelled with the value solved.
    Example: `planner sweep inputs/example.xlsx --param "Programs[HBM4].qualification_quarters" --values 0,1,2,3,4`
    or `--param "Backend[TSV-1].units_per_quarter" --range 0.8:1.2:0.05 --op scale`.
    """
    from planner.analysis.whatif import parse_param, parse_values, sweep_cases
    from planner.io.scenarios import Edit
    from planner.report.whatif import write_sweep

    out_path = output or default_report_path(input_path, "sweep")
    _target(out_path, "sweep", force, input_path)
    try:
        vals = parse_values(values, range_)
        vals2 = parse_values(values2, range2) if param2 else None
        p1 = parse_param(param)
        p2 = parse_param(param2) if param2 else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except ValidationFailed as exc:
        _fail_input(exc, False)
    if (range_ and op is None) or (range2 and op2 is None):
        # --range used to mean factors; say once how the values apply now, since the labels will show it
        click.echo("note: --range values are set as given (--op set); add --op scale for factors of the base value "
                   "or --op add for amounts added to it.", err=True)
    op, op2 = op or "set", op2 or "set"
    plan = _load(input_path)
    first = [Edit(p1.sheet, p1.key, p1.column, op, vals[0])] + (
        [Edit(p2.sheet, p2.key, p2.column, op2, vals2[0])] if p2 and vals2 else [])
    _apply(plan, first, "; ".join(e.describe() for e in first))  # a bad parameter is one input error, not N failures
    cases, axes = sweep_cases(plan, p1, vals, op, p2, vals2, op2)
    outcome, journal = _run_batch(plan, cases, workers, scheduler, out_path, quiet, detail="binding")
    _recheck(out_path, "sweep", force, input_path, journal)
    written = _write_batch(outcome, out_path, journal,
                           lambda p: write_sweep(p, plan, outcome, axes, inputs=(input_path,)))
    _finish_batch(outcome, written, journal, "points", out_path)


@main.command()
@INPUT
@click.option("--samples", type=click.IntRange(1, 1_000_000), default=200, show_default=True,
              help="Number of samples.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed: same seed, same numbers.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Fill-rate threshold for the shortfall-risk column.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Monte Carlo workbook (default: INPUT-montecarlo.xlsx).")
@WORKERS
@SCHEDULER
@QUIET
@FORCE_REPORT
def montecarlo(input_path: Path, samples: int, seed: int, threshold: float, output: Path | None,
               workers: int | None, scheduler: str | None, quiet: bool, force: bool) -> None:
    """Sample the uncertain inputs of the Uncertainty sheet and report the spread of outcomes.

    P10/P50/P90 of margin (revenue − cost), of the objective (margin less shortfall penalties) and of each
    platform's fill rate, the probability that each platform's fill rate falls below --threshold, and a
    histogram of margin. Example:
    `planner montecarlo inputs/example.xlsx --samples 500 --seed 7`.
    """
    from planner.analysis.whatif import montecarlo_cases
    from planner.report.whatif import write_montecarlo

    out_path = output or default_report_path(input_path, "montecarlo")
    _target(out_path, "montecarlo", force, input_path)
    plan = _load(input_path)
    try:
        cases = montecarlo_cases(plan, samples, seed)
    except ValidationFailed as exc:
        _fail_input(exc, False)
    outcome, journal = _run_batch(plan, cases, workers, scheduler, out_path, quiet, detail="kpis")
    _recheck(out_path, "montecarlo", force, input_path, journal)
    written = _write_batch(outcome, out_path, journal, lambda p: write_montecarlo(
        p, plan, outcome, samples, seed, threshold, inputs=(input_path,)))
    _finish_batch(outcome, written, journal, "samples", out_path)


def _horizon_period(given: str, horizon: list[str]) -> str:
    """A quarter from the command line, read like the workbook's period cells (``2027Q2``, ``2027-Q2``,
    ``2027 q2``); anything else, or a quarter outside the plan's horizon, is a usage error (exit 2)."""
    from planner.io.problems import did_you_mean
    from planner.periods import normalise_period

    q = normalise_period(given)
    if q is None:
        hint = did_you_mean(given, horizon)
        raise click.BadParameter(f"{given!r} is not a quarter: expected a quarter label like {horizon[0]}"
                                 + (f"; {hint}" if hint else ""), param_hint="--period")
    if q not in horizon:
        raise click.BadParameter(f"{q} is outside the plan's horizon {horizon[0]}–{horizon[-1]}",
                                 param_hint="--period")
    return q


def _nothing_short(service, platforms: tuple[str, ...], periods: tuple[str, ...]) -> str:
    """What to say when the selection has no ShortfallCauses rows, read from the Service table (every
    shortfall has rows, so the selection is served in full; tests/test_explain_truth.py checks both)."""
    svc = service
    if platforms:
        svc = svc[svc["platform"].isin(platforms)]
    if periods:
        svc = svc[svc["period"].isin(periods)]
    if (svc["shortfall"] > 1e-6).any():  # pragma: no cover - would be a bug in the explanation
        raise click.ClickException("the selection is short but has no explanation rows; please report this")
    when = ", ".join(periods) if periods else "any quarter"
    if not platforms:
        return "No platform is short in this plan." if not periods else f"No platform is short in {when}."
    return f"{', '.join(platforms)} {'are' if len(platforms) > 1 else 'is'} not short in {when}."


@main.command()
@INPUT
@click.option("--samples", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Scenarios to draw when a row of the Uncertainty sheet is not discrete, or when the discrete "
                   "rows have more combinations than this (otherwise every combination is used, with its "
                   "probability).")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed: same seed, same scenarios.")
@click.option("--commit-quarters", type=click.IntRange(1), default=None, metavar="K",
              help="Quarters whose wafer starts, and the expansions decided in them, are committed now, the same in "
                   "every scenario [default: the longest cycle_quarters, at least 1].")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Fill-rate threshold for the probability that a platform falls below it.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Hedge workbook (default: INPUT-hedge.xlsx).")
@click.option("--json", "as_json", is_flag=True, help="Also print the Summary as one JSON object on stdout.")
@click.option("--solver", type=click.Choice(["highs", "cbc"]), help="Override Settings.solver.")
@click.option("--method", type=click.Choice(["auto", "simplex", "ipm"]),
              help="HiGHS algorithm (auto: by the size of one scenario's LP, simplex below 2,000 columns, "
                   "interior point above).")
@click.option("--time-limit", type=float, help="Time limit per LP in seconds (overrides Settings.time_limit_s).")
@click.option("--max-columns", "max_columns", type=click.IntRange(1_000), default=None, metavar="N",
              help="Largest extensive form solved at once, in LP columns [default: 400,000]; above it the plan "
                   "is optimised over as many scenarios as fit and evaluated in every scenario, one LP each "
                   "(on --workers or --scheduler).")
@WORKERS
@SCHEDULER
@QUIET
@FORCE_REPORT
def hedge(input_path: Path, samples: int, seed: int, commit_quarters: int | None, threshold: float,
          output: Path | None, as_json: bool, solver: str | None, method: str | None, time_limit: float | None,
          max_columns: int | None, workers: int | None, scheduler: str | None, quiet: bool, force: bool) -> None:
    """One plan to commit now that is good across the outcomes of the Uncertainty sheet.

    A two-stage stochastic LP: the wafer starts of the first K quarters and the expansions decided in them are
    the same in every scenario; everything later adapts to the scenario; the expected objective is maximised.
    Reports the plan to commit (sheets Commit and Expansions), its expected margin and objective with
    P10/P50/P90, each platform's expected fill rate and chance of falling below --threshold, and what hedging
    is worth: VSS against the plan made for the average scenario, EVPI against perfect foresight, and which
    commitments differ from the average plan. Example:
    `planner hedge inputs/example.xlsx --commit-quarters 4 --samples 300 -o hedge.xlsx`.
    Exit 0 when optimal; 1 when the input is invalid, the plan cannot be hedged or is infeasible.
    """
    from planner import api
    from planner.analysis.hedge import HedgeError
    from planner.distributed import DistributedError
    from planner.report.hedge import headline, write_hedge
    from planner.solve.sessions import SolverError

    out_path = output or default_report_path(input_path, "hedge")
    _target(out_path, "hedge", force, input_path)
    plan = _load(input_path, as_json)
    say = _progress(not (as_json or quiet))
    _lock(out_path)
    journal = _journal(out_path)
    executor = _executor(workers, scheduler)
    try:
        res = api.hedge(plan, samples=samples, seed=seed, commit_quarters=commit_quarters, threshold=threshold,
                        solver=solver, method=method, time_limit=time_limit, ef_max_columns=max_columns,
                        executor=executor, journal=journal, quiet=quiet, progress=say)
        _target(out_path, "hedge", force, input_path)  # a file may have appeared there meanwhile
        if say:
            say(f"writing {out_path}")
        written = write_hedge(out_path, res, inputs=(input_path,))
    except ValidationFailed as exc:
        journal.unlink(missing_ok=True)
        _fail_input(exc, as_json)
    except (HedgeError, SolverError, OutputError, DistributedError) as exc:
        journal.unlink(missing_ok=True)
        raise UserError(str(exc)) from exc
    except UserError:
        journal.unlink(missing_ok=True)
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: an expectation over part of the scenarios is no answer
        click.echo("interrupted: no workbook written" + (f"; finished scenarios are in {journal}"
                                                         if journal.exists() else ""), err=True)
        sys.exit(128 + getattr(exc, "signum", 2))
    finally:
        close = getattr(executor, "close", None)
        if close:
            close()
    journal.unlink(missing_ok=True)
    if as_json:
        import math

        clean = {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in res.summary.items()}
        click.echo(json.dumps({**clean, "report": str(written)}, default=str))
    else:
        for line in headline(res):
            click.echo(line)
        click.echo(f"report: {written}")
    st = res.summary["status"]
    if not res.ok or st != "optimal":
        click.echo(f"error: the hedged plan {status_clause(st)}; see the workbook's Overview", err=True)
        sys.exit(EXIT_USER)
    if res.summary["feasibility_check"] != "passed":
        click.echo(f"error: the solution failed its feasibility check ({res.summary['feasibility_check']})", err=True)
        sys.exit(EXIT_USER)


@main.command()
@INPUT
@click.option("--platform", "platforms", multiple=True, help="Only this platform (repeatable).")
@click.option("--period", "periods", multiple=True,
              help="Only this quarter, e.g. 2027Q2 (spelled as in the workbook: 2027-Q2, 2027 q2; repeatable).")
@SCENARIO
@SET
@click.option("--json", "as_json", is_flag=True, help="Print causes and fixes as JSON.")
def explain(input_path: Path, platforms: tuple[str, ...], periods: tuple[str, ...], scenarios: tuple[str, ...],
            sets: tuple[str, ...], as_json: bool) -> None:
    """Explain why each platform falls short, unit by unit, and what would close it.

    Every unit of shortfall is attributed to rd_gate (program), yield_ramp (product), fab_capacity
    (fab/node), backend_capacity (line), horizon_start, economics or policy, with the platforms that got
    the contested supply, and the cheapest single lever that closes most of it. Example:
    `planner explain inputs/example.xlsx --platform "Vera Rubin" --period 2028Q1`.
    """
    from planner import api
    from planner.analysis.explain import platform_sentences
    from planner.io.problems import did_you_mean

    plan = _load(input_path, as_json)
    edits = _edits_for(plan, scenarios, sets, as_json)
    if edits:
        plan = _apply(plan, edits, "; ".join([*scenarios, *sets]), as_json)
    known = list(plan.platforms["platform"])
    for p in platforms:
        if p not in known:
            hint = did_you_mean(p, known)
            raise click.BadParameter(f"unknown platform {p!r}" + (f"; {hint}" if hint else ""), param_hint="--platform")
    periods = tuple(_horizon_period(q, plan.periods) for q in periods)
    run, rep = api.analyse(plan, insights=False, explain=True)
    if not run.solution.has_solution:
        click.echo(f"error: the plan {status_clause(run.results.summary['status'])}; nothing to explain", err=True)
        if run.infeasibility is not None:
            from planner.report.writer import infeasible_sentence

            for r in run.infeasibility.itertuples():
                click.echo(f"  {infeasible_sentence(r)}", err=True)
        sys.exit(EXIT_USER)
    causes, fixes = rep.causes, rep.fixes
    sel = causes
    if platforms:
        sel = sel[sel["platform"].isin(platforms)]
        fixes = fixes[fixes["platform"].isin(platforms)]
    if periods:
        sel = sel[sel["period"].isin(periods)]
    if as_json:
        click.echo(json.dumps({"causes": sel.to_dict("records"), "fixes": fixes.to_dict("records")}, default=str))
        return
    if sel.empty:
        click.echo(_nothing_short(run.results.service, platforms, periods))
        return
    for line in platform_sentences(sel, plan, run.results.service):
        click.echo(line)
    level = "units in backlog at the end of the quarter" if plan.settings.backlog else "units short"
    for plat, g in sel.groupby("platform", sort=False):
        click.echo(f"\n{plat}")
        for period, gp in g.groupby("period", sort=True):
            click.echo(f"  {period}: {gp['shortfall'].iloc[0]:,.0f} {level}")
            for r in gp.sort_values("units", ascending=False).itertuples():
                who = f" [went to: {r.competitors.replace(';', ', ')}]" if r.competitors else ""
                res = f" {r.resource}" if r.resource else ""
                click.echo(f"    {r.units:>12,.0f}  {r.cause}{res}: {r.explanation}{who}")
    if causes.attrs.get("split"):  # an estimate of the Shapley split (large plans): say so, as the Overview does
        click.echo(f"\n{causes.attrs['split']}")
    if len(fixes):
        click.echo("\nWhat would help:")
        for s in fixes["sentence"]:
            click.echo(f"  {s}")


@main.command()
@click.argument("source", metavar="SRC", type=click.Path(path_type=Path, exists=True, dir_okay=True))
@click.argument("target", metavar="DST", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace DST (the workbook, or the folder's CSV files) if it exists.")
def convert(source: Path, target: Path, force: bool) -> None:
    """Turn a folder of CSV files into an input workbook, or a workbook into a folder.

    A folder holds one CSV per sheet (Products.csv, BOM.csv, ...: the workbook's headers, UTF-8 with or
    without BOM, comma or semicolon separated). Cells are copied as written (numbers as numbers), not
    validated or filled in, so an ERP export can be fixed in Excel; the result is then validated and the
    outcome printed. Existing files are never replaced without --force. Examples: `planner convert
    erp-export/ plan.xlsx`, `planner convert inputs/example.xlsx example-csv/`.
    """
    from planner.io.load import load_plan
    from planner.report.csvdir import folder_to_workbook, workbook_to_folder

    try:
        done = (folder_to_workbook(source, target, force) if source.is_dir()
                else workbook_to_folder(source, target, force))
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    except ReadError as exc:
        _fail_input(exc, False)
    if not done.written:  # files the reader could not read: nothing was written
        _print_problems(done.problems)
        click.echo("nothing written: fix the files above and run again", err=True)
        sys.exit(EXIT_USER)
    for p in done.problems:
        click.echo(p.render(), err=True)
    what = f"{target}" if source.is_dir() else f"{len(done.written)} CSV files in {target}"
    click.echo(f"wrote {what} ({', '.join(done.sheets)})")
    if done.skipped:
        click.echo(f"not converted (not planner sheets): {', '.join(done.skipped)}")
    try:
        plan = load_plan(target)
        click.echo(f"the converted plan is valid ({len(plan.warnings)} warning(s)).")
    except (ReadError, ValidationFailed) as exc:
        errors = exc.problems if isinstance(exc, ValidationFailed) else [exc.problem]
        n = sum(p.severity == "error" for p in errors)
        click.echo(f"the converted plan has {n} error(s): `planner validate {target}` lists them.")


@main.command()
@click.option("--platforms", type=click.IntRange(1), default=50, show_default=True, help="Number of platforms.")
@click.option("--products", type=click.IntRange(1), default=40, show_default=True, help="Number of memory products.")
@click.option("--fabs", type=click.IntRange(1), default=6, show_default=True, help="Number of fabs.")
@click.option("--quarters", type=click.IntRange(1, 200), default=12, show_default=True, help="Horizon in quarters.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed (same seed, same plan).")
@click.option("--wip", is_flag=True, help="Add a WIP sheet: lots in flight from the quarter before the horizon "
              "and starts committed in its first quarter.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Workbook to write (.xlsx; an existing file is kept unless --force).")
@FORCE_INPUT
def generate(platforms: int, products: int, fabs: int, quarters: int, seed: int, wip: bool, output: Path,
             force: bool) -> None:
    """Write a synthetic, contract-conformant plan of any size (for scale tests and benchmarks).

    Every feature is used (programs, ramps, capacity overrides, expansions, back-end lines, BOM options,
    min_fill, scenarios, uncertainty) and capacity is sized to bind. Example:
    `planner generate --platforms 400 --products 600 --fabs 40 --quarters 32 --seed 1 -o big.xlsx`.
    """
    from planner.io.generate import write_generated

    _target(output, "generated", force)
    try:
        write_generated(output, platforms, products, fabs, quarters, seed, wip=wip)
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"wrote {output}")
