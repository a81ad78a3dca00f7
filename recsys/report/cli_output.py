"""How ``recsys report`` prints frames and paths: a readable table, CSV or JSON.

>>> print_frame(pl.DataFrame({"model": ["mf"], "value": [0.25]}), "csv")
model,value
mf,0.25
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TextIO

import polars as pl

from recsys.storage import is_uri

FORMATS = ("table", "csv", "json")
TABLE_ROWS_DEFAULT = 100


def print_frame(frame: pl.DataFrame, fmt: str = "table", limit: int | None = None,
                out: TextIO | None = None) -> None:
    """Print ``frame`` as a readable table, CSV or JSON (a list of row objects).

    >>> print_frame(pl.DataFrame({"model": ["mf", "pop"]}), "json", limit=1)
    [{"model":"mf"}]
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


def short_path(path) -> str:
    """The path relative to the working directory when it lies below it; URIs unchanged.

    >>> short_path("s3://bucket/reports/r1"), short_path(os.path.join(os.getcwd(), "reports", "r1"))
    ('s3://bucket/reports/r1', 'reports/r1')
    """
    path = str(path)
    if is_uri(path):
        return path
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
