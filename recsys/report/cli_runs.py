"""``recsys report show | export | html | compare RUN_A RUN_B``: commands about one run (or two).

A RUN is a run directory (local path or URI) or the id of a run under ``--root``
(default ``reports``). Rows of one table can be narrowed with ``--where`` (a
polars SQL condition) and ``--filter column=value`` (repeatable, all must hold).

>>> filter_rows(pl.DataFrame({"model": ["mf", "pop"], "k": [10, 20]}), "metrics", ["model=mf"], None).rows()
[('mf', 10)]
"""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from pathlib import Path

import polars as pl

from recsys.errors import ConfigError, DataError
from recsys.report import locations as loc
from recsys.report.cli_output import print_frame, short_path
from recsys.report.reader import find_run, list_runs, run_parts, scan_tables
from recsys.report.schema import TABLES, schema_for

ALL = "*"


def _columns_hint(table: str, columns: list[str]) -> str:
    return f"columns of {table}: {', '.join(columns)}"


def filter_rows(frame: pl.DataFrame, table: str, filters: list[str] | None, where: str | None) -> pl.DataFrame:
    """Rows of ``frame`` where every ``column=value`` holds (compared as text) and the SQL condition ``where``."""
    for item in filters or []:
        column, sep, value = item.partition("=")
        column = column.strip()
        if not sep or not column:
            raise ConfigError(f"cannot read filter {item!r}", setting="--filter",
                              hint="write it as column=value, e.g. --filter model=mf")
        if column not in frame.columns:
            raise ConfigError(f"table '{table}' has no column {column!r}", setting="--filter",
                              hint=_columns_hint(table, frame.columns))
        frame = frame.filter(pl.col(column).cast(pl.String) == value.strip())
    if where:
        try:
            frame = pl.SQLContext(frames={table: frame}).execute(f"SELECT * FROM {table} WHERE {where}",
                                                                 eager=True)
        except (pl.exceptions.PolarsError, ValueError) as exc:
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"the --where condition failed on table '{table}': {problem}", setting="--where",
                              hint=_columns_hint(table, frame.columns)) from None
    return frame


def _select_columns(frame: pl.DataFrame, table: str, columns: str | None) -> pl.DataFrame:
    if not columns:
        return frame
    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in frame.columns]
    if unknown:
        raise ConfigError(f"table '{table}' has no column {unknown[0]!r}", setting="--columns",
                          hint=_columns_hint(table, frame.columns))
    return frame.select(wanted)


def _utc(moment) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _print_summary(run_dir) -> None:
    listing = list_runs(run_dir)
    if listing.is_empty():
        raise DataError("the run has no runs row (it did not start through RunWriter)", file=str(run_dir),
                        hint="use `recsys report show RUN TABLE` to look at its tables")
    run = listing.row(0, named=True)
    duration = f"{run['duration_s']:.1f} s" if run["duration_s"] is not None else "-"
    out = sys.stdout
    for key, value in [("run", run["run_id"]), ("status", run["status"]), ("started", _utc(run["started_at"])),
                       ("ended", _utc(run["ended_at"])), ("duration", duration), ("stages", run["stages"] or "-"),
                       ("datasets", run["datasets"] or "-"), ("models", run["models"] or "-"),
                       ("error", run["error"] or "-"), ("directory", short_path(run["path"]))]:
        out.write(f"{key:<10} {value}\n")
    out.write("\ntable               rows\n")
    for table, parts in run_parts(run_dir).items():
        out.write(f"{table:<18} {sum(loc.row_count(p) for p in parts):>6}\n")
    runs_row = scan_tables(run_dir)["runs"].collect().row(0, named=True)
    for key in ("versions", "cluster", "config"):
        out.write(f"\n{key}\n{json.dumps(json.loads(runs_row[key]), indent=2, sort_keys=True)}\n")


def cmd_show(args: argparse.Namespace) -> int:
    """``show RUN [TABLE]``: the run's summary, or one of its tables (filtered)."""
    if args.table and args.table_name and args.table != args.table_name:
        raise ConfigError(f"two tables given: {args.table_name!r} and --table {args.table!r}",
                          hint="give the table once, e.g. `recsys report show RUN metrics`")
    table = args.table_name or args.table
    run_dir = find_run(args.run, args.root)
    if not table:
        if args.where or args.filter or args.columns:
            raise ConfigError("--where, --filter and --columns apply to a table",
                              hint="name one, e.g. `recsys report show RUN metrics --filter model=mf`")
        _print_summary(run_dir)
        return 0
    schema_for(table)
    frame = filter_rows(scan_tables(run_dir)[table].collect(), table, args.filter, args.where)
    print_frame(_select_columns(frame, table, args.columns), args.format, args.limit)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``export RUN --format csv|json``: each table (or the --table ones) to a file, or one to stdout."""
    run_dir = find_run(args.run, args.root)
    tables = args.table or list(TABLES)
    for table in tables:
        schema_for(table)
    frames = scan_tables(run_dir)
    if args.out == "-":
        if len(tables) != 1:
            raise ConfigError("--out - writes one table to stdout", setting="--table",
                              hint="add --table NAME, or give --out DIR for every table")
        frame = filter_rows(frames[tables[0]].collect(), tables[0], args.filter, args.where)
        print_frame(frame, args.format)
        return 0
    out = Path(args.out or f"{run_dir.name}-export")
    out.mkdir(parents=True, exist_ok=True)
    for table in tables:
        frame = filter_rows(frames[table].collect(), table, args.filter, args.where)
        if frame.is_empty() and not args.table:
            continue                       # every table: leave out the ones no stage wrote
        path = out / f"{table}.{args.format}"
        if args.format == "csv":
            frame.write_csv(path)
        else:
            path.write_text(frame.write_json() + "\n", encoding="utf-8")
        print(f"{table:<18} {frame.height:>8} rows  {short_path(path)}")
    return 0


def cmd_html(args: argparse.Namespace) -> int:
    """``html RUN``: write the run's report.html (or --out FILE), print where; --open shows it."""
    from recsys.report.html import write_html

    run_dir = find_run(args.run, args.root)
    path = write_html(run_dir, args.out)
    print(short_path(path))
    if args.open:
        if isinstance(path, Path):
            webbrowser.open(path.resolve().as_uri())
        else:
            print("(not opened: the report is behind a URI; download it first)", file=sys.stderr)
    return 0


def parse_metric(text: str | None) -> tuple[str | None, int | None]:
    """``ndcg@10`` -> ('ndcg', 10); ``auc`` -> ('auc', None); None -> (None, None).

    >>> parse_metric("ndcg@10"), parse_metric(None)
    (('ndcg', 10), (None, None))
    """
    if text is None:
        return None, None
    metric, _, k = text.partition("@")
    if not metric or (k and not k.isdigit()):
        raise ConfigError(f"cannot read metric {text!r}", setting="--metric",
                          hint="write it as name@k, e.g. ndcg@10, or a bare name such as auc")
    return metric, int(k) if k else None


def cmd_compare_runs(args: argparse.Namespace) -> int:
    """``compare RUN_A RUN_B``: metric deltas (B - A) with paired tests where per-user rows exist."""
    from recsys.report.diff import compare_runs

    if len(args.pair) != 2:
        raise ConfigError(f"compare takes two runs (or none), got {len(args.pair)}",
                          hint="`recsys report compare RUN_A RUN_B`, or `recsys report compare --runs GLOB`")
    a, b = (find_run(run, args.root) for run in args.pair)
    metric, k = parse_metric(args.metric)
    frame = compare_runs(a, b, metric=metric, k=k, segment=None if args.segment == ALL else args.segment,
                         split=None if args.split == ALL else args.split, test=args.test)
    if args.format == "table":
        sys.stdout.write(f"run A {short_path(a)}\nrun B {short_path(b)}\n"
                         f"delta = B - A; p: {args.test} over the users both runs evaluated "
                         "(segment all, where user_metrics exist), Holm-adjusted\n")
    print_frame(frame, args.format, args.limit)
    return 0
