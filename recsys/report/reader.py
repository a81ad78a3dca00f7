"""Read the report tables of one run, a directory of runs, or a glob of run directories.

Every table of every selected run is concatenated into one frame per table, so
SQL works across runs; a table no run has written yet is an empty frame with the
table's schema. Only finished parts are read (``part-*.parquet``); temporary
files and the parts of transactions that have not committed are never seen.

>>> import tempfile, pathlib
>>> from recsys.report.writer import RunWriter
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("run-a", "run-b"):
...     with RunWriter(root / name, run_id=name) as run:
...         _ = run.write("datasets", [{"dataset": "synthetic", "stage": "loaded", "n_rows": 10}])
>>> query("SELECT run_id, n_rows FROM datasets ORDER BY run_id", str(root / "run-*"))["run_id"].to_list()
['run-a', 'run-b']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa

from recsys.errors import ConfigError, DataError
from recsys.report import locations as loc
from recsys.report.locations import GLOB_CHARS, Location, RemotePath
from recsys.report.schema import TABLES
from recsys.report.writer import COMMIT_MARKER, STAGING_DIR, is_part_file
from recsys.storage import split_query

RunSpec = str | Path | RemotePath | list[str | Path | RemotePath]


def _is_run_dir(path: Location) -> bool:
    return any(child.name in TABLES and loc.is_dir(child) for child in loc.children(path))


def _run_children(path: Location) -> list[Location]:
    return [child for child in loc.children(path) if _is_run_dir(child)]


def _resolve_one(entry: str | Path | RemotePath) -> list[Location]:
    entry = str(entry) if isinstance(entry, Path) else entry
    if isinstance(entry, str) and GLOB_CHARS & set(split_query(entry)[0]):
        found: list[Location] = []
        for path in loc.glob(entry):
            if _is_run_dir(path):
                found.append(path)
            elif loc.is_dir(path):
                found.extend(_run_children(path))
        return found
    path = loc.as_location(entry)
    if not loc.exists(path):
        raise DataError("the report directory does not exist", file=str(path),
                        hint="pass a run directory, a directory of runs, or a glob such as 'reports/*'")
    if _is_run_dir(path):
        return [path]
    children = _run_children(path)
    if not children:
        raise DataError("neither a run directory nor a directory holding runs", file=str(path),
                        hint="pass a directory written by a run (it holds runs/, datasets/, ...)")
    return children


def resolve_runs(spec: RunSpec) -> list[Location]:
    """The run directories selected by ``spec``: a run directory, a parent of runs, a glob, or a list of those.

    Each may be a local path or a URI (``s3://bucket/reports/*``); local runs come back as
    absolute ``Path``s, runs behind a URI as :class:`~recsys.report.locations.RemotePath`.

    >>> resolve_runs("no-such-reports/*")
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: no report runs match 'no-such-reports/*'. What to do: run the pipeline first (python -m rayjobs.pipeline), or pass --runs with a run directory or a glob
    """
    entries = [spec] if isinstance(spec, (str, Path, RemotePath)) else list(spec)
    runs: dict[Location, None] = {}
    for entry in entries:
        for path in _resolve_one(entry):
            runs.setdefault(loc.unique_key(path), None)
    if not runs:
        shown = ", ".join(repr(str(e)) for e in entries) or "[]"
        raise DataError(f"no report runs match {shown}",
                        hint="run the pipeline first (python -m rayjobs.pipeline), "
                             "or pass --runs with a run directory or a glob")
    return list(runs)


def run_parts(run_dir: str | Location, tables: Iterable[str] = TABLES) -> dict[str, list[Location]]:
    """Finished parts of each of ``tables`` in one run, those of committed, unpublished transactions included.

    The run directory and its staging area are listed once (a few requests on an object store).

    >>> import tempfile
    >>> run_parts(Path(tempfile.mkdtemp()), ["metrics"])
    {'metrics': []}
    """
    run_dir = loc.as_location(run_dir)
    tables = list(tables)
    parts: dict[str, dict[str, Location]] = {table: {} for table in tables}
    # Staging first, then the tables: a part moved in between is then listed twice
    # (kept once, by name) rather than missed.
    for txn_dir in loc.children(run_dir / STAGING_DIR):
        try:
            entries = {child.name: child for child in loc.children(txn_dir)}
            if COMMIT_MARKER in entries:
                for table in (t for t in tables if t in entries):
                    parts[table].update((p.name, p) for p in loc.children(entries[table]) if is_part_file(p))
        except FileNotFoundError:    # published and removed while listing
            continue
    present = {child.name: child for child in loc.children(run_dir)}
    for table in (t for t in tables if t in present):
        parts[table].update((p.name, p) for p in loc.children(present[table]) if is_part_file(p))
    return {table: [found[name] for name in sorted(found)] for table, found in parts.items()}


def find_run(run: str | Path, root: str | Path = "reports") -> Location:
    """One run: a run directory (local path or URI), or the id of a run directly under ``root``.

    >>> find_run("no-such-run", root="no-such-reports")
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: no run 'no-such-run': not a run directory, nor the id of a run under 'no-such-reports' (which does not exist). What to do: pass a run directory or a run id; `recsys report list` shows the runs
    """
    path = loc.as_location(run)
    if _is_run_dir(path):
        return loc.unique_key(path)
    if loc.exists(path):
        runs = resolve_runs(path)
        if len(runs) == 1:
            return runs[0]
        raise ConfigError(f"one run is needed, but {str(run)!r} selects {len(runs)}",
                          hint="pass one run directory; `recsys report list` shows them")
    base = loc.as_location(root)
    name = str(run)
    if "/" not in name and _is_run_dir(base / name):
        return loc.unique_key(base / name)
    known = sorted(child.name for child in _run_children(base)) if loc.is_dir(base) else None
    where = (" (which does not exist)" if known is None
             else f" (runs there: {', '.join(known[-20:])})" if known else " (which holds no runs)")
    raise DataError(f"no run {name!r}: not a run directory, nor the id of a run under {str(root)!r}{where}",
                    hint="pass a run directory or a run id; `recsys report list` shows the runs")


def table_parts(run_dir: str | Location, table: str) -> list[Location]:
    """Finished parts of ``table`` in one run, including those of committed, not yet published transactions.

    >>> import tempfile
    >>> table_parts(Path(tempfile.mkdtemp()), "metrics")
    []
    """
    return run_parts(run_dir, [table])[table]


def _published_or_staged(path: Location, run_dir: Location, table: str) -> Location:
    """A staged part may be published between listing and reading; follow it."""
    staged = path.parent.parent.parent.name == STAGING_DIR
    return path if not staged or loc.exists(path) else run_dir / table / path.name


def _damaged(table: str, path: Location, exc: Exception) -> DataError:
    return DataError(f"cannot read a part of table '{table}' ({exc})", file=str(path),
                     hint="the file is damaged; move it away and rerun the stage that wrote it")


def _conform_old_part(path: Location, table: str) -> pl.LazyFrame:
    """Read a part written with an older schema: drop unknown columns, add missing ones as null."""
    schema = TABLES[table]
    try:
        data = loc.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(table, path, exc) from None
    arrays = []
    for field in schema:
        if field.name in data.column_names:
            try:
                arrays.append(data.column(field.name).cast(field.type))
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise DataError(f"part of table '{table}' has an incompatible column ({exc})",
                                file=str(path), column=field.name,
                                hint="move the file away; it was not written by this version of recsys") from None
        else:
            arrays.append(pa.nulls(data.num_rows, field.type))
    return pl.from_arrow(pa.Table.from_arrays(arrays, schema=schema)).lazy()


def _scan_remote(parts: list[RemotePath], schema: pa.Schema) -> list[pl.LazyFrame]:
    """Lazy scans of parts behind URIs, one pyarrow dataset per filesystem."""
    import pyarrow.dataset as ds

    by_fs: dict[int, list[RemotePath]] = {}
    for part in parts:
        by_fs.setdefault(id(part.fs), []).append(part)
    return [pl.scan_pyarrow_dataset(ds.dataset([p.fs_path for p in group], schema=schema, format="parquet",
                                               filesystem=group[0].fs))
            for group in by_fs.values()]


def _scan_table(table: str, parts: list[Location]) -> pl.LazyFrame:
    schema = TABLES[table]
    current: list[str] = []
    remote: list[RemotePath] = []
    frames: list[pl.LazyFrame] = []
    for path in parts:
        try:
            file_schema = loc.read_schema(path)
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(table, path, exc) from None
        if not file_schema.equals(schema, check_metadata=False):
            frames.append(_conform_old_part(path, table))
        elif isinstance(path, RemotePath):
            remote.append(path)
        else:
            current.append(str(path))
    frames[:0] = _scan_remote(remote, schema) if remote else []
    if current:
        frames.insert(0, pl.scan_parquet(current, hive_partitioning=False))
    if not frames:
        return pl.from_arrow(schema.empty_table()).lazy()
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def _all_parts(runs: Iterable[Location]) -> dict[str, list[Location]]:
    parts: dict[str, list[Location]] = {table: [] for table in TABLES}
    for run_dir in runs:
        for table, found in run_parts(run_dir).items():
            parts[table].extend(_published_or_staged(p, run_dir, table) for p in found)
    return parts


def scan_tables(spec: RunSpec) -> dict[str, pl.LazyFrame]:
    """Every report table of the selected runs as a LazyFrame (nothing is read until collected).

    >>> import tempfile
    >>> from recsys.report.writer import RunWriter
    >>> run = RunWriter(tempfile.mkdtemp(), run_id="r").start()
    >>> scan_tables(run.run_dir)["metrics"].collect().height
    0
    """
    parts = _all_parts(resolve_runs(spec))
    return {table: _scan_table(table, parts[table]) for table in TABLES}


def _find_damaged_part(tables: Iterable[str], parts: dict[str, list[Location]]) -> DataError | None:
    """Read every part of ``tables`` in full; the error for the first that fails, else None."""
    for table in tables:
        for path in parts[table]:
            try:
                loc.read_table(path)
            except (pa.ArrowException, OSError) as exc:
                return _damaged(table, path, exc)
    return None


def load_tables(spec: RunSpec) -> dict[str, pl.DataFrame]:
    """Every report table of the selected runs, all parts of all runs concatenated per table.

    >>> import tempfile
    >>> from recsys.report.writer import RunWriter
    >>> run = RunWriter(tempfile.mkdtemp(), run_id="r").start()
    >>> load_tables(run.run_dir)["runs"].select("run_id", "status").rows()
    [('r', 'running')]
    """
    runs = resolve_runs(spec)
    parts = _all_parts(runs)
    tables = {}
    for table in TABLES:
        try:
            tables[table] = _scan_table(table, parts[table]).collect()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise _find_damaged_part([table], parts) or DataError(
                f"cannot read table '{table}' ({exc})", hint="check the run directories' files") from None
    return tables


def _tables_named(sql: str) -> list[str]:
    words = set(re.findall(r"[a-z_]+", sql.lower()))
    return [name for name in TABLES if name in words]


def describe_tables(sql: str = "") -> str:
    """Name every table; give the columns of the tables ``sql`` mentions (of all, when it names none).

    >>> describe_tables("SELECT * FROM curves")
    'tables: runs, datasets, metrics, user_metrics, recommendations, comparisons, curves, grad_stats, findings, feature_importance, embedding_health, trials, rankings, insights, external_lists; columns: curves(run_id, dataset, model, trial_id, step, epoch, name, value)'
    """
    named = _tables_named(sql) or list(TABLES)
    columns = "; ".join(f"{name}({', '.join(TABLES[name].names)})" for name in named)
    return f"tables: {', '.join(TABLES)}; columns: {columns}"


def query(sql: str, spec: RunSpec) -> pl.DataFrame:
    """Run a polars SQL query over every report table of the selected runs.

    Each table is registered under its name (runs, datasets, metrics, ...). A
    failing query raises :class:`ConfigError` listing the tables and their columns.

    >>> import tempfile
    >>> from recsys.report.writer import RunWriter
    >>> run = RunWriter(tempfile.mkdtemp(), run_id="r").start()
    >>> query("SELECT COUNT(*) AS n FROM metrics", run.run_dir)["n"].item()
    0
    """
    parts = _all_parts(resolve_runs(spec))
    context = pl.SQLContext(frames={table: _scan_table(table, parts[table]) for table in TABLES})
    try:
        return context.execute(sql, eager=False).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        damaged = _find_damaged_part(_tables_named(sql), parts)
        if damaged is not None:
            raise damaged from None
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the SQL query failed: {problem}",
                          hint=f"fix the query; {describe_tables(sql)}") from None


def _read_rows(run_dir: Location, table: str, columns: list[str] | None = None) -> list[dict]:
    rows = []
    for part in table_parts(run_dir, table):
        path = _published_or_staged(part, run_dir, table)
        try:
            rows.extend(loc.read_table(path, columns=columns).to_pylist())
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(table, path, exc) from None
    return rows


def _seconds_between(start, end) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def list_runs(spec: RunSpec) -> pl.DataFrame:
    """One row per selected run: id, status, times, duration, datasets, models, completed stages and directory.

    >>> import tempfile
    >>> from recsys.report.writer import RunWriter
    >>> with RunWriter(tempfile.mkdtemp(), run_id="r") as run:
    ...     run.mark_stage_done("prepare")
    >>> list_runs(run.run_dir).select("run_id", "status", "stages").rows()
    [('r', 'succeeded', 'prepare')]
    """
    rows: list[dict] = []
    datasets: dict[str, set[str]] = {}
    models: dict[str, set[str]] = {}
    for run_dir in resolve_runs(spec):
        rows.extend({**row, "path": str(run_dir)} for row in _read_rows(run_dir, "runs"))
        for row in _read_rows(run_dir, "datasets", columns=["run_id", "dataset"]):
            datasets.setdefault(row["run_id"], set()).add(row["dataset"])
        for table in ("metrics", "curves"):
            for row in _read_rows(run_dir, table, columns=["run_id", "model"]):
                models.setdefault(row["run_id"], set()).add(row["model"])
    return pl.DataFrame(
        [
            {
                "run_id": row["run_id"],
                "status": row["status"],
                "started_at": row["started_at"],
                "ended_at": row["ended_at"],
                "duration_s": _seconds_between(row["started_at"], row["ended_at"]),
                "datasets": ",".join(sorted(datasets.get(row["run_id"], ()))),
                "models": ",".join(sorted(models.get(row["run_id"], ()))),
                "stages": ",".join(json.loads(row["stages"])),
                "error": row["error"],
                "path": row["path"],
            }
            for row in rows
        ],
        schema={
            "run_id": pl.String, "status": pl.String,
            "started_at": pl.Datetime("us", "UTC"), "ended_at": pl.Datetime("us", "UTC"),
            "duration_s": pl.Float64, "datasets": pl.String, "models": pl.String, "stages": pl.String,
            "error": pl.String, "path": pl.String,
        },
    ).sort("started_at", "run_id")
