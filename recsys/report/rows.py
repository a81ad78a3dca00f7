"""Check rows against a report table's schema and cast them to it.

Rows come as a polars DataFrame, a pyarrow Table or a list of dicts. Anything
that does not fit the table is refused with an error that names the table and
the column; nothing is dropped or guessed silently.

>>> conform_rows("curves", [{"model": "mf", "step": 0, "name": "lr", "value": 0.1}], "r1").num_rows
1
>>> conform_rows("curves", [{"model": "mf", "step": 0, "name": "lr", "value": 0.1, "loss": 1.0}], "r1")
Traceback (most recent call last):
...
recsys.errors.DataError: column 'loss': report table 'curves' has no column(s) 'loss'. What to do: use only the table's columns: run_id, dataset, model, trial_id, step, epoch, name, value
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from recsys.errors import DataError
from recsys.report.schema import json_columns, schema_for

Rows = pl.DataFrame | pa.Table | list[Mapping[str, Any]]


def _to_arrow(table: str, rows: Rows) -> pa.Table:
    if isinstance(rows, pl.DataFrame):
        return rows.to_arrow()
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, list) and all(isinstance(row, Mapping) for row in rows):
        return _rows_to_arrow(table, rows)
    raise DataError(
        f"report table '{table}': rows must be a polars DataFrame, a pyarrow Table or a list of "
        f"dicts, got {type(rows).__name__}",
        hint="convert the rows to one of those before writing",
    )


def _rows_to_arrow(table: str, rows: list[Mapping[str, Any]]) -> pa.Table:
    schema = schema_for(table)
    if not rows:
        return schema.empty_table()
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    _check_columns(table, list(names))
    as_json = set(json_columns(table))
    arrays = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name in as_json:
            values = [v if v is None or isinstance(v, str) else _dump_json(table, name, v) for v in values]
        try:
            arrays[name] = pa.array(values, type=schema.field(name).type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise DataError(
                f"report table '{table}': values do not fit type {schema.field(name).type} ({exc})",
                column=name,
                hint="pass values of the documented type (docs/report.md)",
            ) from None
    return pa.table(arrays)


def _dump_json(table: str, column: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False, default=str)
    except (TypeError, ValueError) as exc:
        raise DataError(f"report table '{table}': value cannot be written as JSON ({exc})",
                        column=column, hint="pass plain dicts/lists of numbers and strings") from None


def _check_columns(table: str, names: list[str]) -> None:
    schema = schema_for(table)
    extra = [n for n in names if n not in schema.names]
    if extra:
        raise DataError(
            f"report table '{table}' has no column(s) {', '.join(map(repr, extra))}",
            column=extra[0],
            hint=f"use only the table's columns: {', '.join(schema.names)}",
        )
    missing = [f.name for f in schema if not f.nullable and f.name != "run_id" and f.name not in names]
    if missing:
        raise DataError(
            f"report table '{table}' is missing required column(s) {', '.join(map(repr, missing))}",
            column=missing[0],
            hint="add the column; see docs/report.md for what it holds",
        )


def conform_rows(table: str, rows: Rows, run_id: str) -> pa.Table:
    """Validate ``rows`` against ``table``'s schema, fill ``run_id`` and cast to the schema.

    Raises :class:`ConfigError` for an unknown table and :class:`DataError` naming
    the column for an extra, missing, uncastable, null-where-required or non-JSON column.

    >>> conform_rows("curves", [{"model": "mf", "step": 1, "name": "lr", "value": 0.1}], "r1").column("run_id")[0]
    <pyarrow.StringScalar: 'r1'>
    """
    schema = schema_for(table)
    data = _to_arrow(table, rows)
    _check_columns(table, data.column_names)
    if "run_id" in data.column_names:
        given = data.column("run_id").drop_null()
        if len(given) and not pc.all(pc.equal(given, run_id)).as_py():
            raise DataError(
                f"report table '{table}': rows carry a run_id other than the writer's '{run_id}'",
                column="run_id",
                hint="leave run_id out; the writer fills it",
            )
    arrays = []
    for field in schema:
        if field.name == "run_id":
            arrays.append(pa.array([run_id] * data.num_rows, pa.string()))
        elif field.name in data.column_names:
            arrays.append(_cast_column(table, field, data.column(field.name)))
        else:
            arrays.append(pa.nulls(data.num_rows, field.type))
    conformed = pa.Table.from_arrays(arrays, schema=schema)
    _check_values(table, conformed)
    return conformed


def _cast_column(table: str, field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    if column.type == field.type:
        return column
    try:
        return pc.cast(column, field.type, safe=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DataError(
            f"report table '{table}': cannot cast {column.type} to {field.type} ({exc})",
            column=field.name,
            hint="pass values of the documented type (docs/report.md)",
        ) from None


def _check_values(table: str, data: pa.Table) -> None:
    for field in data.schema:
        column = data.column(field.name)
        if not field.nullable and column.null_count:
            raise DataError(
                f"report table '{table}': {column.null_count} null value(s) in a required column",
                column=field.name,
                hint="fill the column for every row",
            )
    for name in json_columns(table):
        for value in data.column(name).drop_null().to_pylist():
            try:
                json.loads(value)
            except ValueError:
                raise DataError(
                    f"report table '{table}': value is not valid JSON: {value[:60]!r}",
                    column=name,
                    hint="pass a dict/list (it is serialised for you) or a JSON string",
                ) from None
