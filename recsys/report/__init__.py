"""Report tables: schemas, an atomic Parquet writer, and a reader that queries runs with SQL.

>>> sorted(TABLES) == sorted(TABLE_DOCS)
True
"""

from recsys.report.reader import list_runs, load_tables, query, resolve_runs, scan_tables
from recsys.report.schema import TABLE_DOCS, TABLES, column_docs, required_columns, schema_for
from recsys.report.rows import conform_rows
from recsys.report.writer import RunWriter, new_run_id, write_part

__all__ = [
    "TABLES",
    "TABLE_DOCS",
    "RunWriter",
    "column_docs",
    "conform_rows",
    "list_runs",
    "load_tables",
    "new_run_id",
    "query",
    "required_columns",
    "resolve_runs",
    "scan_tables",
    "schema_for",
    "write_part",
]
