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
from planner.atomic import OutputError
from planner.problems import Problem, ValidationFailed
from planner.reader import ReadError

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


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
    from planner.validate import load_plan

    try:
        return load_plan(path)
    except (ReadError, ValidationFailed) as exc:
        _fail_input(exc, as_json)


INPUT = click.argument("input_path", metavar="INPUT.xlsx", type=click.Path(path_type=Path, dir_okay=False))


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
    from planner.template import write_template

    try:
        write_template(output)
    except OutputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER)
    click.echo(f"wrote {output}")


@main.command()
@click.argument("output", metavar="OUT.xlsx", type=click.Path(path_type=Path, dir_okay=False),
                default="inputs/example.xlsx")
def example(output: Path) -> None:
    """Write the hypothetical example plan (the one in inputs/example.xlsx).

    Example: `planner example my-copy.xlsx`.
    """
    from planner.example import write_example

    try:
        write_example(output)
    except OutputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER)
    click.echo(f"wrote {output}")


def default_report_path(input_path: Path, suffix: str = "report") -> Path:
    return input_path.with_name(f"{input_path.stem}-{suffix}.xlsx")


def _solve_one(plan, solver, time_limit, method, insights: bool, progress=None):
    """Run one plan and the analysis the report needs; returns (run, ReportInput)."""
    from planner import api
    from planner.insights import bottlenecks, rd_impact
    from planner.report.writer import ReportInput

    run = api.run(plan, solver=solver, time_limit=time_limit, method=method)
    rep = ReportInput(plan=plan, results=run.results, infeasibility=run.infeasibility)
    if run.solution.has_solution:
        rep.bottlenecks = bottlenecks(plan, run.results)
        if insights and len(plan.programs):
            def resolve(p):
                r = api.run(p, solver=solver, time_limit=time_limit, method=method)
                return r.results
            rep.rd_impact = rd_impact(plan, run.results, resolve)
    return run, rep


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
@click.option("--solver", type=click.Choice(["highs", "cbc"]), help="Override Settings.solver.")
@click.option("--method", type=click.Choice(["auto", "simplex", "ipm"]),
              help="HiGHS algorithm (auto: simplex below 50k columns, interior point above).")
@click.option("--time-limit", type=float, help="Solver time limit in seconds (overrides Settings.time_limit_s).")
@click.option("--no-insights", is_flag=True, help="Skip the R&D impact re-solves (faster on large plans).")
def solve(input_path: Path, output: Path | None, as_json: bool, solver: str | None, method: str | None,
          time_limit: float | None, no_insights: bool) -> None:
    """Solve a plan and write the Excel report.

    Reads INPUT.xlsx, allocates wafers, back-end capacity and finished memory across platforms and
    quarters under the plan's policy, and writes a report with Overview, charts, bottlenecks, R&D impact
    and the contract sheets. Example: `planner solve inputs/example.xlsx -o plan.xlsx`.
    Exit 0 when optimal; 1 when the input is invalid, the plan infeasible or the solve stopped early.
    """
    from planner.report.writer import write_report
    from planner.solve import SolverError

    out_path = output or default_report_path(input_path)
    try:
        from planner.atomic import check_output_path

        check_output_path(out_path, (input_path,))
    except OutputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER)
    plan = _load(input_path, as_json)
    _print_problems(plan.warnings)
    try:
        run, rep = _solve_one(plan, solver, time_limit, method, insights=not no_insights)
        written = write_report(out_path, rep, inputs=(input_path,))
    except SolverError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER)
    except OutputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        click.echo("interrupted: no report written (an earlier report, if any, is unchanged)", err=True)
        sys.exit(130)
    summary = run.results.summary
    if as_json:
        click.echo(json.dumps({**summary, "report": str(written)}, default=str))
    else:
        _echo_summary(rep, out_path)
    if summary["status"] != "optimal":
        click.echo(f"error: the plan is {summary['status']}; see the report's Overview"
                   + (" and Infeasibility sheets" if summary["status"] == "infeasible" else ""), err=True)
        sys.exit(EXIT_USER)
