"""Command line: thin click commands over the library API (`planner.api`).

Exit codes: 0 success; 1 the input is invalid, the plan is infeasible or did not solve to optimality, or the
output cannot be written; 2 usage errors (click's own). Problems go to stderr, results to stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from planner import __version__
from planner.io.problems import Problem, ValidationFailed
from planner.io.reader import ReadError
from planner.report.atomic import OutputError

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


class UserError(click.ClickException):
    """A problem the user can fix (unwritable output, unreachable cluster): one line ``error: …``, exit 1."""

    exit_code = EXIT_USER

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def _print_problems(problems: list[Problem], as_json: bool = False) -> None:
    if as_json:
        return
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for p in problems:
        click.echo(p.render(), err=True)
    if errors:
        click.echo(f"{len(errors)} error(s), {len(warnings)} warning(s): fix the errors above and run again.",
                   err=True)


def _fail_input(exc: Exception, as_json: bool) -> None:
    problems = exc.problems if isinstance(exc, ValidationFailed) else [exc.problem]  # type: ignore[attr-defined]
    if as_json:
        click.echo(json.dumps({"status": "invalid", "problems": [p.to_dict() for p in problems]}, indent=2))
    _print_problems(problems)
    sys.exit(EXIT_USER)


def _load(path: Path, as_json: bool = False):
    from planner.io.load import load_plan

    try:
        return load_plan(path)
    except (ReadError, ValidationFailed) as exc:
        _fail_input(exc, as_json)


INPUT = click.argument("input_path", metavar="INPUT.xlsx", type=click.Path(path_type=Path, dir_okay=False))
SCENARIO = click.option("--scenario", "scenarios", multiple=True, metavar="NAME",
                        help="Apply a scenario from the Scenarios sheet (repeatable: applied in order).")
SET = click.option("--set", "sets", multiple=True, metavar="EXPR",
                   help='Override a cell, e.g. --set "Programs[HBM4].qualification_quarters+=2" or '
                        '--set "Settings.policy=priority" (repeatable).')
WORKERS = click.option("--workers", type=int, default=None,
                       help="Local worker processes (default: number of cores, at most 4; 1 = in this process).")
SCHEDULER = click.option("--scheduler", metavar="tcp://HOST:PORT",
                         help="Run the batch on an existing Dask cluster (pip install 'planner[distributed]').")
QUIET = click.option("--quiet", is_flag=True, help="No progress bar.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
        click.echo(json.dumps({"status": "valid", "problems": [p.to_dict() for p in plan.warnings]}, indent=2))
    else:
        _print_problems(plan.warnings)
        s = plan.settings
        click.echo(f"{input_path}: valid. {len(plan.products)} products, {len(plan.platforms)} platforms, "
                   f"{len(plan.fabs)} fab/node lines, {s.horizon_quarters} quarters from {s.first_period}; "
                   f"{len(plan.warnings)} warning(s).")


@main.command()
@click.argument("output", metavar="OUT.xlsx", type=click.Path(path_type=Path, dir_okay=False))
def template(output: Path) -> None:
    """Write an empty input workbook with every sheet, header comments and drop-downs.

    Example: `planner template my-plan.xlsx`, fill it in, then `planner validate my-plan.xlsx`.
    """
    from planner.report.template import write_template

    try:
        write_template(output)
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"wrote {output}")


@main.command()
@click.argument("output", metavar="OUT.xlsx", type=click.Path(path_type=Path, dir_okay=False),
                default="inputs/example.xlsx")
def example(output: Path) -> None:
    """Write the hypothetical example plan (the one in inputs/example.xlsx).

    Example: `planner example my-copy.xlsx`.
    """
    from planner.io.example import write_example

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
              help="Report path (default: INPUT-report.xlsx next to the input).")
@click.option("--json", "as_json", is_flag=True, help="Also print the Summary as one JSON object on stdout.")
@SCENARIO
@SET
@click.option("--all-scenarios", is_flag=True,
              help="Solve the base and every scenario, one report each (INPUT-report-<scenario>.xlsx).")
@click.option("--solver", type=click.Choice(["highs", "cbc"]), help="Override Settings.solver.")
@click.option("--method", type=click.Choice(["auto", "simplex", "ipm"]),
              help="HiGHS algorithm (auto: simplex below 2,000 columns, interior point above).")
@click.option("--time-limit", type=float, help="Solver time limit in seconds (overrides Settings.time_limit_s).")
@click.option("--insights/--no-insights", default=None,
              help="R&D impact re-solves (default: on below 20,000 LP columns, off above).")
@click.option("--explain/--no-explain", "explain_", default=None,
              help="Shortfall causes and fixes (default: on below 20,000 LP columns, off above).")
def solve(input_path: Path, output: Path | None, as_json: bool, scenarios: tuple[str, ...], sets: tuple[str, ...],
          all_scenarios: bool, solver: str | None, method: str | None, time_limit: float | None,
          insights: bool | None, explain_: bool | None) -> None:
    """Solve a plan and write the Excel report.

    Reads INPUT.xlsx, allocates wafers, back-end capacity and finished memory across platforms and
    quarters under the plan's policy, and writes a report with Overview, charts, bottlenecks, shortfall
    causes, R&D impact and the contract sheets. Example: `planner solve inputs/example.xlsx -o plan.xlsx`,
    or with a what-if: `planner solve inputs/example.xlsx --scenario "HBM4 slips 1Q"`.
    Exit 0 when optimal; 1 when the input is invalid, the plan infeasible or the solve stopped early.
    """
    out_path = output or default_report_path(input_path)
    _check_out(out_path, input_path)
    plan = _load(input_path, as_json)
    if not as_json:
        _print_problems(plan.warnings)
    edits = _edits_for(plan, scenarios, sets, as_json)
    label = "; ".join([*scenarios, *sets])
    runs = [(label, _apply(plan, edits, label, as_json) if edits else plan, out_path)]
    if all_scenarios:
        from planner.io.scenarios import edits_from_sheet, scenario_names

        for name in scenario_names(plan):
            target = out_path.with_name(f"{out_path.stem}-{_slug(name)}{out_path.suffix}")
            full = f"{label}; {name}" if label else name
            runs.append((full, _apply(plan, edits + edits_from_sheet(plan, name), full, as_json), target))
    worst = 0
    summaries = []
    for name, p, target in runs:
        code, summary = _solve_and_report(p, name, target, input_path, as_json, solver, method, time_limit,
                                          insights, explain_, quiet=len(runs) > 1)
        worst = max(worst, code)
        summaries.append(summary)
        if len(runs) > 1 and not as_json:
            s = summary
            fill = f"{s['fill_rate']:.1%}" if s.get("fill_rate") is not None else "n/a"
            obj = f"{s['objective']:,.0f}" if s.get("objective") is not None else "n/a"
            click.echo(f"{name or 'base':<28} {s['status']:<11} margin {obj:>18}  fill rate {fill:>6}  "
                       f"report {target}")
    if as_json:
        click.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, default=str))
    sys.exit(worst)


def _solve_and_report(plan, scenario: str, out_path: Path, input_path: Path, as_json: bool, solver, method,
                      time_limit, insights: bool | None, explain: bool | None, quiet: bool = False) -> tuple[int, dict]:
    from planner import api
    from planner.report.writer import write_report
    from planner.solve.sessions import SolverError

    try:
        say = _progress(not as_json)
        run, rep = api.analyse(plan, solver=solver, time_limit=time_limit, method=method, insights=insights,
                               explain=explain, progress=say, scenario=scenario)
        if say:
            say(f"writing {out_path}")
        written = write_report(out_path, rep, inputs=(input_path,))
    except SolverError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USER, {"status": "error", "message": str(exc)}
    except ValidationFailed as exc:  # numbers that are valid one by one but not together
        _print_problems(exc.problems)
        return EXIT_USER, {"status": "invalid", "problems": [p.to_dict() for p in exc.problems]}
    except OutputError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USER, {"status": "error", "message": str(exc)}
    except KeyboardInterrupt:
        click.echo("interrupted: no report written (an earlier report, if any, is unchanged)", err=True)
        sys.exit(130)
    summary = {**run.results.summary, "scenario": scenario or "base", "report": str(written)}
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
        click.echo(f"error: {scenario or 'the plan'} is {summary['status']}; see the report's Overview"
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




def _executor(workers: int | None, scheduler: str | None):
    if scheduler:
        from planner.distributed import DaskExecutor, DistributedError

        try:
            return DaskExecutor(scheduler)
        except DistributedError as exc:
            raise UserError(str(exc)) from exc
    from planner.batch import LocalExecutor

    return LocalExecutor(workers)


def _run_batch(plan, cases, workers: int | None, scheduler: str | None, out_path: Path, quiet: bool, **kw):
    """Run a batch on local processes or a Dask cluster; the journal sits beside the output."""
    from planner.batch import run_batch

    executor = _executor(workers, scheduler)
    journal = _journal(out_path)
    try:
        return run_batch(plan, cases, executor=executor, journal=journal, quiet=quiet, **kw), journal
    finally:
        close = getattr(executor, "close", None)
        if close:
            close()


def _journal(out_path: Path) -> Path:
    j = out_path.with_name(out_path.name + ".journal.jsonl")
    j.unlink(missing_ok=True)
    return j


def _finish_batch(outcome, written: Path, journal: Path, what: str) -> None:
    failed = [r for r in outcome.results if r.status not in ("optimal", "interrupted")]
    for r in failed:
        click.echo(f"failed: {r.name}: {r.error}", err=True)
    if outcome.interrupted:
        done = sum(r.status != "interrupted" for r in outcome.results)
        click.echo(f"interrupted: {done} of {len(outcome.results)} {what} finished and are in {written}; "
                   f"their KPIs are also in {journal}", err=True)
        sys.exit(130)
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
def compare(input_path: Path, scenarios: tuple[str, ...], sets: tuple[str, ...], all_scenarios: bool,
            output: Path | None, explain_: bool | None, workers: int | None, scheduler: str | None,
            quiet: bool) -> None:
    """Compare scenarios side by side with the base plan.

    KPIs with deltas (margin, revenue, fill rate and shortfall per platform, wafer starts per fab,
    utilisation), service differences per platform and quarter, the input cells each scenario changed,
    which constraints became or stopped binding, and charts. Example:
    `planner compare inputs/example.xlsx --all-scenarios -o compare.xlsx`.
    """
    from planner.analysis.whatif import compare_cases
    from planner.report.whatif import write_compare

    out_path = output or default_report_path(input_path, "compare")
    _check_out(out_path, input_path)
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
    written = write_compare(out_path, plan, outcome, cases, moves, inputs=(input_path,))
    from planner.report.whatif import compare_sentences

    for line in compare_sentences(plan, outcome.results, cases, moves):
        click.echo(line)
    _finish_batch(outcome, written, journal, "scenarios")


def _check_out(out_path: Path, input_path: Path) -> None:
    from planner.report.atomic import check_output_path

    try:
        check_output_path(out_path, (input_path,))
    except OutputError as exc:
        raise UserError(str(exc)) from exc


@main.command()
@INPUT
@click.option("--param", required=True, metavar="Sheet[key].column",
              help='Parameter to vary, e.g. "Programs[HBM4].qualification_quarters" or "Backend[TSV-1].units_per_quarter".')
@click.option("--values", metavar="V1,V2,...", help="Values to set (comma-separated).")
@click.option("--range", "range_", metavar="START:STOP:STEP", help="Evenly spaced values, STOP included; "
              "applied as scale factors unless --op says otherwise.")
@click.option("--op", type=click.Choice(["set", "add", "scale"]), help="How values apply (default: set for "
              "--values, scale for --range).")
@click.option("--param2", metavar="Sheet[key].column", help="Second parameter: a two-parameter grid.")
@click.option("--values2", metavar="V1,V2,...", help="Values of the second parameter.")
@click.option("--range2", metavar="START:STOP:STEP", help="Range of the second parameter.")
@click.option("--op2", type=click.Choice(["set", "add", "scale"]), help="How the second values apply.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Sweep workbook (default: INPUT-sweep.xlsx).")
@WORKERS
@SCHEDULER
@QUIET
def sweep(input_path: Path, param: str, values: str | None, range_: str | None, op: str | None, param2: str | None,
          values2: str | None, range2: str | None, op2: str | None, output: Path | None, workers: int | None,
          scheduler: str | None, quiet: bool) -> None:
    """Vary one parameter (or two, as a grid) and tabulate the KPIs at each point.

    One row per point with margin, fill rates and utilisation; a chart of margin and fill rate against the
    parameter; the break points where the binding bottleneck changes; with --param2, heat-map grids.
    Example: `planner sweep inputs/example.xlsx --param "Programs[HBM4].qualification_quarters" --values 0,1,2,3,4`
    or `--param "Backend[TSV-1].units_per_quarter" --range 0.8:1.2:0.05`.
    """
    from planner.analysis.whatif import parse_param, parse_values, sweep_cases
    from planner.report.whatif import write_sweep

    out_path = output or default_report_path(input_path, "sweep")
    _check_out(out_path, input_path)
    try:
        vals = parse_values(values, range_)
        vals2 = parse_values(values2, range2) if param2 else None
        p1 = parse_param(param)
        p2 = parse_param(param2) if param2 else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except ValidationFailed as exc:
        _fail_input(exc, False)
    plan = _load(input_path)
    cases = sweep_cases(p1, vals, op or ("scale" if range_ else "set"), p2, vals2,
                        op2 or ("scale" if range2 else "set"))
    _apply(plan, cases[0].edits, cases[0].name)  # a bad parameter is one input error, not N failed points
    outcome, journal = _run_batch(plan, cases, workers, scheduler, out_path, quiet, detail="binding")
    label = p1.describe().split(" ")[0]
    written = write_sweep(out_path, plan, outcome, label, p2.describe().split(" ")[0] if p2 else None,
                          inputs=(input_path,))
    _finish_batch(outcome, written, journal, "points")


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
def montecarlo(input_path: Path, samples: int, seed: int, threshold: float, output: Path | None,
               workers: int | None, scheduler: str | None, quiet: bool) -> None:
    """Sample the uncertain inputs of the Uncertainty sheet and report the spread of outcomes.

    P10/P50/P90 of margin and of each platform's fill rate, the probability that each platform's fill
    rate falls below --threshold, and a histogram of margin. Example:
    `planner montecarlo inputs/example.xlsx --samples 500 --seed 7`.
    """
    from planner.analysis.whatif import montecarlo_cases
    from planner.report.whatif import write_montecarlo

    out_path = output or default_report_path(input_path, "montecarlo")
    _check_out(out_path, input_path)
    plan = _load(input_path)
    try:
        cases = montecarlo_cases(plan, samples, seed)
    except ValidationFailed as exc:
        _fail_input(exc, False)
    outcome, journal = _run_batch(plan, cases, workers, scheduler, out_path, quiet, detail="kpis")
    written = write_montecarlo(out_path, plan, outcome, samples, seed, threshold, inputs=(input_path,))
    _finish_batch(outcome, written, journal, "samples")


@main.command()
@INPUT
@click.option("--platform", "platforms", multiple=True, help="Only this platform (repeatable).")
@click.option("--period", "periods", multiple=True, help="Only this quarter, e.g. 2027Q2 (repeatable).")
@SCENARIO
@SET
@click.option("--json", "as_json", is_flag=True, help="Print causes and fixes as JSON.")
def explain(input_path: Path, platforms: tuple[str, ...], periods: tuple[str, ...], scenarios: tuple[str, ...],
            sets: tuple[str, ...], as_json: bool) -> None:
    """Explain why each platform falls short, unit by unit, and what would close it.

    Every unit of shortfall is attributed to rd_gate (program), yield_ramp (product), fab_capacity
    (fab/node), backend_capacity (line), economics or policy, with the platforms that got the contested
    supply, and the cheapest single lever that closes most of it. Example:
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
    run, rep = api.analyse(plan, insights=False, explain=True)
    if not run.solution.has_solution:
        click.echo(f"error: the plan is {run.results.summary['status']}; nothing to explain", err=True)
        if run.infeasibility is not None:
            for r in run.infeasibility.itertuples():
                click.echo(f"  {r.platform} {r.period}: min_fill needs {r.required:,.0f}, at most {r.achievable:,.0f} "
                           f"possible. {r.reason}", err=True)
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
        click.echo("No shortfall" + (" for the selection." if platforms or periods else " in this plan."))
        return
    for line in platform_sentences(sel, plan):
        click.echo(line)
    for plat, g in sel.groupby("platform", sort=False):
        click.echo(f"\n{plat}")
        for period, gp in g.groupby("period", sort=True):
            click.echo(f"  {period}: {gp['shortfall'].iloc[0]:,.0f} units short")
            for r in gp.sort_values("units", ascending=False).itertuples():
                who = f" [went to: {r.competitors.replace(';', ', ')}]" if r.competitors else ""
                res = f" {r.resource}" if r.resource else ""
                click.echo(f"    {r.units:>12,.0f}  {r.cause}{res}: {r.explanation}{who}")
    if len(fixes):
        click.echo("\nWhat would help:")
        for s in fixes["sentence"]:
            click.echo(f"  {s}")


@main.command()
@click.option("--platforms", type=click.IntRange(1), default=50, show_default=True, help="Number of platforms.")
@click.option("--products", type=click.IntRange(1), default=40, show_default=True, help="Number of memory products.")
@click.option("--fabs", type=click.IntRange(1), default=6, show_default=True, help="Number of fabs.")
@click.option("--quarters", type=click.IntRange(1, 200), default=12, show_default=True, help="Horizon in quarters.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed (same seed, same plan).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Workbook to write.")
def generate(platforms: int, products: int, fabs: int, quarters: int, seed: int, output: Path) -> None:
    """Write a synthetic, contract-conformant plan of any size (for scale tests and benchmarks).

    Every feature is used (programs, ramps, capacity overrides, expansions, back-end lines, BOM options,
    min_fill, scenarios, uncertainty) and capacity is sized to bind. Example:
    `planner generate --platforms 400 --products 600 --fabs 40 --quarters 32 --seed 1 -o big.xlsx`.
    """
    from planner.io.generate import write_generated

    try:
        write_generated(output, platforms, products, fabs, quarters, seed)
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"wrote {output}")
