"""The ``recsys`` console script.

``recsys report list | show | query | compare | export | html`` read the Parquet
report tables that runs leave behind (docs/report.md), from local directories or
``s3://``/``gs://`` URIs. ``recsys evaluate --lists FILE --dataset DIR`` evaluates
recommendation lists made elsewhere (:mod:`recsys.evaluate.cli`). Errors print one
line on stderr and exit with 2.

>>> main(["report", "list", "--runs", "no-such-reports/*"])
2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import polars as pl

from recsys.errors import ConfigError, DataError, RecsysError
from recsys.evaluate.config import SIGNIFICANCE_TESTS
from recsys.evaluate import cli as evaluate_cli
from recsys.report import cli_runs
from recsys.report.cli_output import FORMATS, TABLE_ROWS_DEFAULT, print_frame, short_path
from recsys.report.reader import list_runs, query
from recsys.report.schema import TABLES

DEFAULT_RUNS = "reports/*"
DEFAULT_ROOT = "reports"
COMPARE_PARTS = ("rankings", "insights", "both")

__all__ = ["build_parser", "main", "print_frame"]


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default: table)")
    parser.add_argument("--limit", type=_non_negative, default=None, metavar="N",
                        help=f"print at most N rows (default: all for csv/json, {TABLE_ROWS_DEFAULT} for table)")


def _add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run directory (path or s3://, gs:// URI) or a run id under --root")
    parser.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                        help=f"where run ids are looked up (default: {DEFAULT_ROOT})")


def _add_row_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--where", metavar="SQL", help="keep rows where this SQL condition holds, e.g. \"model = 'mf'\"")
    parser.add_argument("--filter", action="append", metavar="COL=VALUE",
                        help="keep rows whose column equals the value (repeatable; compared as text)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``recsys`` command.

    >>> build_parser().parse_args(["report", "query", "SELECT 1"]).runs
    'reports/*'
    """
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    report = commands.add_parser("report", help="list, show and query the report tables of runs")
    report.set_defaults(help_parser=report)
    report_commands = report.add_subparsers(title="report commands", dest="report_command", metavar="COMMAND")

    listing = report_commands.add_parser("list", help="one line per run: status, times, datasets, stages")
    listing.add_argument("--runs", default=DEFAULT_RUNS, metavar="GLOB",
                         help=f"run directory, directory of runs, or glob (default: {DEFAULT_RUNS})")
    _add_output_options(listing)
    listing.set_defaults(handler=_cmd_list)

    show = report_commands.add_parser("show", help="summary of one run, or one of its tables (filtered)")
    _add_run_argument(show)
    show.add_argument("table_name", nargs="?", metavar="TABLE", help=f"print this table ({', '.join(TABLES)})")
    show.add_argument("--table", metavar="NAME", help="the same as TABLE")
    _add_row_filters(show)
    show.add_argument("--columns", metavar="A,B", help="print only these columns")
    _add_output_options(show)
    show.set_defaults(handler=cli_runs.cmd_show)

    export = report_commands.add_parser("export", help="write a run's tables as CSV or JSON files")
    _add_run_argument(export)
    export.add_argument("--format", choices=("csv", "json"), default="csv", help="file format (default: csv)")
    export.add_argument("--table", action="append", metavar="NAME",
                        help="export this table (repeatable; default: every table with rows)")
    export.add_argument("--out", metavar="DIR",
                        help="directory for <table>.<format> files (default: <run_id>-export); "
                             "'-' prints one table on stdout")
    _add_row_filters(export)
    export.set_defaults(handler=cli_runs.cmd_export)

    page = report_commands.add_parser("html", help="write the run's HTML report (report.html) and print its path")
    _add_run_argument(page)
    page.add_argument("--out", metavar="FILE", help="write here instead of <run>/report.html")
    page.add_argument("--open", action="store_true", help="open it in the default web browser")
    page.set_defaults(handler=cli_runs.cmd_html)

    sql = report_commands.add_parser("query", help="run polars SQL over every table of the selected runs")
    sql.add_argument("sql", metavar="SQL", help="the query; tables are named runs, datasets, metrics, ...")
    sql.add_argument("--runs", default=DEFAULT_RUNS, metavar="GLOB",
                     help=f"run directory, directory of runs, or glob (default: {DEFAULT_RUNS})")
    _add_output_options(sql)
    sql.set_defaults(handler=_cmd_query)

    compare = report_commands.add_parser(
        "compare", help="RUN_A RUN_B: metric deltas between two runs with significance; without runs: models "
                        "ranked per dataset and segment, and the lines that compare them (rankings, insights)")
    compare.add_argument("pair", nargs="*", metavar="RUN", help="two runs to compare (directories or run ids)")
    compare.add_argument("--runs", default=DEFAULT_RUNS, metavar="GLOB",
                         help=f"without RUN_A RUN_B: the runs whose models are ranked (default: {DEFAULT_RUNS})")
    compare.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                         help=f"where run ids are looked up (default: {DEFAULT_ROOT})")
    compare.add_argument("--metric", default=None, metavar="NAME@K",
                         help="metric shown (rankings default: ndcg@10; run vs run default: every metric)")
    compare.add_argument("--segment", default="all", help="segment shown (default: all; '*' every segment)")
    compare.add_argument("--split", default="test", help="split shown (default: test; '*' every split)")
    compare.add_argument("--test", choices=SIGNIFICANCE_TESTS, default="paired_t",
                         help="run vs run: paired test over the users both runs evaluated (default: paired_t)")
    compare.add_argument("--show", choices=COMPARE_PARTS, default="both",
                         help="rankings, insights or both (default; table format only)")
    _add_output_options(compare)
    compare.set_defaults(handler=_cmd_compare)

    evaluate = commands.add_parser("evaluate", help="evaluate recommendation lists from outside on a prepared "
                                                    "dataset and write a report directory")
    evaluate_cli.add_arguments(evaluate)
    return parser


# ---------------------------------------------------------------- commands


def _cmd_list(args: argparse.Namespace) -> int:
    runs = list_runs(args.runs).select(
        "run_id", "status", pl.col("started_at").dt.truncate("1s"), "duration_s",
        "datasets", "models", "stages", "error", pl.col("path").map_elements(short_path, return_dtype=pl.String),
    )
    print_frame(runs, args.format, args.limit)
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    print_frame(query(args.sql, args.runs), args.format, args.limit)
    return 0


def _compare_frames(args: argparse.Namespace) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rankings of the chosen metric, segment and split, and every insight, over the selected runs."""
    from recsys.evaluate.compare import compare_reports
    from recsys.evaluate.rows import split_column_name

    try:
        metric, k = split_column_name(args.metric or "ndcg@10")
    except (ValueError, TypeError):
        raise ConfigError(f"cannot read metric {args.metric!r}", setting="--metric",
                          hint="write it as name@k, e.g. ndcg@10, or a bare name such as auc") from None
    runs = compare_reports(args.runs)
    if not runs:
        raise DataError(f"no selected run has metrics ({args.runs})",
                        hint="run the evaluate stage first (python -m rayjobs.pipeline), or pick other --runs")
    for run in runs:
        if not run.stored:
            print(f"run {run.run_id} has no rankings table; computed from its metrics and comparisons",
                  file=sys.stderr)
    same_k = pl.col("k").is_null() if k is None else pl.col("k") == k
    rankings = pl.concat([run.comparison.rankings.with_columns(run_id=pl.lit(run.run_id)) for run in runs],
                         how="diagonal_relaxed")
    rankings = (rankings.filter((pl.col("metric") == metric) & same_k & (pl.col("segment") == args.segment)
                                & (pl.col("split") == args.split))
                .select("run_id", "dataset", "protocol", "model", "rank", "n_models", "value", "ci_low", "ci_high")
                .sort("run_id", "dataset", "protocol", "rank", "model", nulls_last=True))
    insights = pl.concat([run.comparison.insights.with_columns(run_id=pl.lit(run.run_id)) for run in runs],
                         how="diagonal_relaxed")
    insights = insights.select("run_id", "dataset", "kind", "text")
    return rankings, insights


def _cmd_compare(args: argparse.Namespace) -> int:
    if args.pair:
        return cli_runs.cmd_compare_runs(args)
    if args.format != "table" and args.show == "both":
        raise ConfigError(f"--format {args.format} prints one table", setting="--show",
                          hint="add --show rankings or --show insights")
    rankings, insights = _compare_frames(args)
    if args.format != "table":
        print_frame(rankings if args.show == "rankings" else insights, args.format, args.limit)
        return 0
    if args.show in ("rankings", "both"):
        sys.stdout.write(f"rankings by {args.metric or 'ndcg@10'}, segment {args.segment}, {args.split} split:\n")
        print_frame(rankings, "table", args.limit)
    if args.show in ("insights", "both"):
        sys.stdout.write("insights:\n")
        shown = insights.head(args.limit) if args.limit is not None else insights
        for run_id, dataset, text in shown.select("run_id", "dataset", "text").iter_rows():
            sys.stdout.write(f"  {run_id} [{dataset or 'all datasets'}] {text}\n")
        if insights.is_empty():
            sys.stdout.write("  none: no significant trade-off, no clear segment difference, no rank change\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``recsys`` command with ``argv`` (default: the process arguments); return the exit code.

    >>> main(["report", "query", "SELECT 1", "--runs", "no-such-reports"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        getattr(args, "help_parser", parser).print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except RecsysError as exc:
        print(f"recsys: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
