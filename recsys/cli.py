"""The ``recsys`` console script.

``recsys report list | show | query | compare`` read the Parquet report tables
that runs leave behind (docs/report.md). Errors print one line on stderr and exit with 2.

>>> main(["report", "list", "--runs", "no-such-reports/*"])
2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import TextIO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.errors import ConfigError, DataError, RecsysError
from recsys.report.reader import list_runs, query, resolve_runs, scan_tables, table_parts
from recsys.report.schema import TABLES, schema_for

DEFAULT_RUNS = "reports/*"
FORMATS = ("table", "csv", "json")
COMPARE_PARTS = ("rankings", "insights", "both")
TABLE_ROWS_DEFAULT = 100


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

    show = report_commands.add_parser("show", help="summary of one run, or one of its tables")
    show.add_argument("run_dir", metavar="RUN_DIR", help="the run's directory")
    show.add_argument("--table", metavar="NAME", help=f"print this table of the run ({', '.join(TABLES)})")
    _add_output_options(show)
    show.set_defaults(handler=_cmd_show)

    sql = report_commands.add_parser("query", help="run polars SQL over every table of the selected runs")
    sql.add_argument("sql", metavar="SQL", help="the query; tables are named runs, datasets, metrics, ...")
    sql.add_argument("--runs", default=DEFAULT_RUNS, metavar="GLOB",
                     help=f"run directory, directory of runs, or glob (default: {DEFAULT_RUNS})")
    _add_output_options(sql)
    sql.set_defaults(handler=_cmd_query)

    compare = report_commands.add_parser("compare", help="models ranked per dataset and segment, and the lines "
                                                         "that compare them (tables rankings and insights)")
    compare.add_argument("--runs", default=DEFAULT_RUNS, metavar="GLOB",
                         help=f"run directory, directory of runs, or glob (default: {DEFAULT_RUNS})")
    compare.add_argument("--metric", default="ndcg@10", metavar="NAME@K",
                         help="metric of the ranking shown (default: ndcg@10)")
    compare.add_argument("--segment", default="all", help="segment of the ranking shown (default: all)")
    compare.add_argument("--split", default="test", help="split of the ranking shown (default: test)")
    compare.add_argument("--show", choices=COMPARE_PARTS, default="both",
                         help="rankings, insights or both (default; table format only)")
    _add_output_options(compare)
    compare.set_defaults(handler=_cmd_compare)
    return parser


# ---------------------------------------------------------------- output


def print_frame(frame: pl.DataFrame, fmt: str = "table", limit: int | None = None,
                out: TextIO | None = None) -> None:
    """Print ``frame`` as a readable table, CSV or JSON (a list of row objects).

    >>> print_frame(pl.DataFrame({"model": ["mf"], "value": [0.25]}), "csv")
    model,value
    mf,0.25
    """
    out = out or sys.stdout
    total = frame.height
    if fmt == "table" and limit is None:
        limit = TABLE_ROWS_DEFAULT
    if limit is not None:
        frame = frame.head(limit)
    if fmt == "csv":
        out.write(frame.write_csv())
    elif fmt == "json":
        out.write(frame.write_json() + "\n")
    else:
        width = max(shutil.get_terminal_size((200, 24)).columns, 200)
        with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=max(width, 70 * frame.width),
                       fmt_str_lengths=60, fmt_table_cell_list_len=10):
            out.write(f"{frame}\n")
        if frame.height < total:
            print(f"(showing {frame.height} of {total} rows; use --limit N or --format csv for more)",
                  file=sys.stderr)


def _row_count(path) -> int:
    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read a report part ({exc})", file=str(path),
                        hint="the file is damaged; move it away and rerun the stage that wrote it") from None


def _short_path(path: str) -> str:
    """The path relative to the working directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _utc(moment) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _print_run_summary(run: dict, counts: dict[str, int], out: TextIO) -> None:
    duration = f"{run['duration_s']:.1f} s" if run["duration_s"] is not None else "-"
    lines = [
        ("run", run["run_id"]),
        ("status", run["status"]),
        ("started", _utc(run["started_at"])),
        ("ended", _utc(run["ended_at"])),
        ("duration", duration),
        ("stages", run["stages"] or "-"),
        ("datasets", run["datasets"] or "-"),
        ("error", run["error"] or "-"),
        ("directory", _short_path(run["path"])),
    ]
    for key, value in lines:
        out.write(f"{key:<10} {value}\n")
    out.write("\ntable               rows\n")
    for table, count in counts.items():
        out.write(f"{table:<18} {count:>6}\n")


# ---------------------------------------------------------------- commands


def _cmd_list(args: argparse.Namespace) -> int:
    runs = list_runs(args.runs).select(
        "run_id", "status", pl.col("started_at").dt.truncate("1s"), "duration_s",
        "datasets", "stages", "error", pl.col("path").map_elements(_short_path, return_dtype=pl.String),
    )
    print_frame(runs, args.format, args.limit)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    runs = resolve_runs(args.run_dir)
    if len(runs) != 1:
        raise ConfigError(f"show takes one run, but {args.run_dir!r} selects {len(runs)}",
                          hint="pass one run directory; `recsys report list` shows them")
    run_dir = runs[0]
    if args.table:
        schema_for(args.table)
        print_frame(scan_tables(run_dir)[args.table].collect(), args.format, args.limit)
        return 0
    listing = list_runs(run_dir)
    if listing.is_empty():
        raise DataError("the run has no runs row (it did not start through RunWriter)",
                        file=str(run_dir), hint="use --table NAME to look at its tables")
    counts = {table: sum(_row_count(p) for p in table_parts(run_dir, table)) for table in TABLES}
    _print_run_summary(listing.row(0, named=True), counts, sys.stdout)
    runs_row = scan_tables(run_dir)["runs"].collect().row(0, named=True)
    for key in ("versions", "cluster", "config"):
        sys.stdout.write(f"\n{key}\n{json.dumps(json.loads(runs_row[key]), indent=2, sort_keys=True)}\n")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    print_frame(query(args.sql, args.runs), args.format, args.limit)
    return 0


def _compare_frames(args: argparse.Namespace) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rankings of the chosen metric, segment and split, and every insight, over the selected runs."""
    from recsys.evaluate.compare import compare_reports
    from recsys.evaluate.rows import split_column_name

    try:
        metric, k = split_column_name(args.metric)
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
    if args.format != "table" and args.show == "both":
        raise ConfigError(f"--format {args.format} prints one table", setting="--show",
                          hint="add --show rankings or --show insights")
    rankings, insights = _compare_frames(args)
    if args.format != "table":
        print_frame(rankings if args.show == "rankings" else insights, args.format, args.limit)
        return 0
    if args.show in ("rankings", "both"):
        sys.stdout.write(f"rankings by {args.metric}, segment {args.segment}, {args.split} split:\n")
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
