"""Any Parquet or CSV table, with a mapping from canonical names to its columns.

``dataset.columns`` maps ``user_id``, ``item_id``, ``timestamp`` and optionally
``rating`` to source columns (unmapped names default to themselves; ``rating`` may
be absent). Integer ids become text. Timestamps may be integers, floats (floored),
date-times or date-time text; date-times become seconds, numbers keep their unit:
validation converts them by ``dataset.timestamp_unit`` (``auto`` detects ms, us, ns).
``dataset.item_columns`` / ``dataset.user_columns`` map ``item_id`` / ``user_id``
and the fields to keep; with only the id (or nothing) mapped, items keep every
string column and users every column. ``dataset.columns.split`` (set for
``split.protocol=given``) also reads the column of train/val/test labels, as text.
RecBole's atomic files (``.inter``, ``.item``, ``.user``: tab-separated, headers typed
like ``user_id:token``) are read as CSV with the types dropped from the names.

>>> import tempfile, pathlib, polars as pl
>>> from recsys.data.config import DatasetConfig
>>> from recsys.data.loaders.layout import detect_layout
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> pl.DataFrame({"uid": [7], "iid": [42], "ts": [1.6e9]}).write_parquet(root / "events.parquet")
>>> cfg = DatasetConfig(name="table", interactions=str(root / "events.parquet"),
...                     columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"})
>>> layout = detect_layout(cfg)
>>> read_interactions(layout, layout.interaction_files[0], cfg).row(0)
('7', '42', 1600000000, None)
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.config import DatasetConfig
from recsys.data.loaders import files
from recsys.data.loaders.layout import ATOMIC_EXTENSIONS, SourceLayout, table_format
from recsys.data.loaders.parse import (LINE, first_per_item, read_delimited, require_columns, require_rows,
                                       to_number, to_seconds, warn)
from recsys.data.schema import INTERACTION_SCHEMA, SPLIT, conform_interactions
from recsys.errors import ConfigError, DataError

REQUIRED = ("user_id", "item_id", "timestamp")
_ATOMIC_HEADER = re.compile(r":(token|token_seq|float|float_seq)$")
_FIX_OR_MAP = "fix those values, or map another column with dataset.columns"


def read_interactions(layout: SourceLayout, file: str, cfg: DatasetConfig) -> pl.DataFrame:
    """One interactions file (Parquet or CSV) as the canonical interaction table."""
    mapping = interaction_mapping(cfg)
    hint = "map it with dataset.columns.<name>=<source column>"
    found: dict[str, str | None] = {}

    def choose(available: list[str]) -> list[str]:
        require_columns([mapping[name] for name in REQUIRED], available, file, hint=hint)
        found["rating"] = mapping.get("rating", "rating" if "rating" in available else None)
        if found["rating"] is not None:
            require_columns([found["rating"]], available, file, hint=hint)
        labels = [mapping[SPLIT]] if SPLIT in mapping else []
        require_columns(labels, available, file,
                        hint="name the column of train/val/test labels with split.column=NAME "
                        "(or dataset.columns.split=NAME)")
        return [mapping[name] for name in REQUIRED] + ([found["rating"]] if found["rating"] else []) + labels

    frame = read_table(file, layout.format, choose)
    require_rows(frame, file)
    rating = found["rating"]
    _check_unit_applies(frame, mapping["timestamp"], cfg, file)
    frame = frame.select(
        as_id(frame, mapping["user_id"], file).alias("user_id"),
        as_id(frame, mapping["item_id"], file).alias("item_id"),
        to_seconds(frame, mapping["timestamp"], file, allow_datetime_text=True, hint=_FIX_OR_MAP)
        .alias("timestamp"),
        (_rating(frame, rating, file) if rating else pl.lit(None, dtype=pl.Float32)).alias("rating"),
        *([frame[mapping[SPLIT]].cast(pl.Utf8).alias(SPLIT)] if SPLIT in mapping else []),
    )
    if SPLIT in mapping:
        return conform_interactions(frame).with_columns(frame[SPLIT])
    return conform_interactions(frame)


def read_items(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame:
    """``item_id`` plus the mapped text fields (default: every string column), one row per item."""
    if not layout.item_files:
        return pl.DataFrame(schema={"item_id": pl.Utf8})
    file = layout.item_files[0]
    items = _read_entities(file, layout.format, "item_id", cfg.item_columns, cfg.columns, "dataset.item_columns",
                           keep=lambda dtype: dtype == pl.Utf8)
    items = items.with_columns(pl.exclude("item_id").cast(pl.Utf8))
    return first_per_item(items, file)


def read_users(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame | None:
    """``user_id`` plus the mapped attributes (default: every other column), one row per user."""
    if not layout.user_files:
        return None
    users = _read_entities(layout.user_files[0], layout.format, "user_id", cfg.user_columns, cfg.columns,
                           "dataset.user_columns", keep=lambda dtype: True)
    return users.unique(subset="user_id", keep="first", maintain_order=True)


def _read_entities(file: str, fmt: str, id_name: str, mapping: dict[str, str], interaction_columns: dict[str, str],
                   setting: str, keep: Callable[[pl.DataType], bool]) -> pl.DataFrame:
    """An item or user file: the id as text plus the mapped fields, or every column ``keep`` accepts."""
    chosen: dict[str, object] = {}

    def choose(available: list[str]) -> list[str] | None:
        chosen["id"], chosen["fields"] = _entity_columns(mapping, id_name, interaction_columns, available,
                                                         file, setting)
        return None if chosen["fields"] is None else [chosen["id"], *chosen["fields"].values()]

    frame = read_table(file, table_format(file) or fmt, choose)
    id_column, fields = chosen["id"], chosen["fields"]
    if fields is None:
        fields = {c: c for c in frame.columns if c not in (id_column, LINE) and keep(frame[c].dtype)}
    entities = frame.select(as_id(frame, id_column, file).alias(id_name),
                            *[pl.col(source).alias(name) for name, source in fields.items()])
    kept = entities.filter(pl.col(id_name).is_not_null())
    if kept.height < entities.height:
        warn(f"{file}: {entities.height - kept.height} row(s) without {id_name} were left out")
    return kept


def interaction_mapping(cfg: DatasetConfig) -> dict[str, str]:
    """Canonical name -> source column, from ``dataset.columns`` (unmapped names map to themselves).

    >>> interaction_mapping(DatasetConfig(columns={"user_id": "uid"}))
    {'user_id': 'uid', 'item_id': 'item_id', 'timestamp': 'timestamp'}
    """
    for key, value in cfg.columns.items():
        if value is None:
            continue
        if key not in INTERACTION_SCHEMA and key != SPLIT:
            close = difflib.get_close_matches(key, list(INTERACTION_SCHEMA), n=1)
            raise ConfigError(f"'{key}' is not a canonical column" + (f" (did you mean '{close[0]}'?)" if close else ""),
                              setting=f"dataset.columns.{key}",
                              hint=f"map these names: {', '.join(INTERACTION_SCHEMA)}")
    mapping = {name: cfg.columns.get(name) or name for name in REQUIRED}
    for optional in ("rating", SPLIT):
        if cfg.columns.get(optional):
            mapping[optional] = cfg.columns[optional]
    return mapping


def read_table(file: str, fmt: str, choose: Callable[[list[str]], list[str] | None]) -> pl.DataFrame:
    """A Parquet file (native types) or CSV file (strings plus ``__line``), columns picked by ``choose``.

    ``choose`` gets the file's column names and returns those to read (None: all);
    it raises when a needed column is missing. Parquet reads only the chosen columns.
    """
    if fmt == "table-csv":
        atomic = is_atomic(file)
        frame = read_delimited(files.read_bytes(file), file, separator=_separator(file), quoting=not atomic)
        if atomic:
            frame = frame.rename(atomic_names(frame.columns))
        columns = choose([c for c in frame.columns if c != LINE])
        return frame if columns is None else frame.select(LINE, *dict.fromkeys(columns))
    parquet = _parquet(file)
    columns = choose(parquet.schema_arrow.names)
    try:
        table = parquet.read(columns=None if columns is None else list(dict.fromkeys(columns)))
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(file, err) from None
    return pl.from_arrow(table)


def as_id(frame: pl.DataFrame, column: str, file: str) -> pl.Series:
    """Ids as text: integers (and whole floats such as ``7.0``) without a fraction, others cast.

    >>> as_id(pl.DataFrame({"iid": [7.0, 8.0]}), "iid", "items.parquet").to_list()
    ['7', '8']
    """
    series = frame[column]
    if series.dtype.is_float():
        whole = series.is_null() | (series.is_finite() & (series == series.floor()))
        if whole.all():
            series = series.cast(pl.Int64)
    try:
        return series.cast(pl.Utf8)
    except pl.exceptions.PolarsError:
        raise DataError(f"ids of type {series.dtype} cannot be turned into text", file=file, column=column,
                        hint="map a column of integer or string ids") from None


def _check_unit_applies(frame: pl.DataFrame, column: str, cfg: DatasetConfig, file: str) -> None:
    """A unit other than seconds makes sense for numbers only; date-times are converted here, exactly."""
    if cfg.timestamp_unit in ("auto", "s"):
        return
    raw = frame[column]
    dated = raw.dtype == pl.Date or isinstance(raw.dtype, pl.Datetime)
    if raw.dtype == pl.Utf8:
        dated = bool((raw.is_not_null() & raw.str.strip_chars().cast(pl.Float64, strict=False).is_null()).any())
    if dated:
        raise ConfigError(f"dataset.timestamp_unit={cfg.timestamp_unit} applies to numeric timestamps, but "
                          f"{files.basename(file)} column '{column}' holds date-times",
                          setting="dataset.timestamp_unit", hint="leave dataset.timestamp_unit=auto")


def _rating(frame: pl.DataFrame, column: str, file: str) -> pl.Series:
    series = frame[column]
    if series.dtype.is_numeric() or series.dtype == pl.Boolean:
        return series.cast(pl.Float32)
    if series.dtype == pl.Utf8:
        return to_number(frame, column, pl.Float32, file, hint=_FIX_OR_MAP)
    raise DataError(f"ratings have type {series.dtype}, expected numbers", file=file, column=column,
                    hint="map a numeric column as dataset.columns.rating, or leave rating unmapped")


def _entity_columns(mapping: dict[str, str], id_name: str, interaction_columns: dict[str, str],
                    available: list[str], file: str, setting: str) -> tuple[str, dict[str, str] | None]:
    """(id column, {field: source column} or None for 'every column') for an item or user file."""
    if id_name in mapping:
        id_column = mapping[id_name]
    elif id_name in available:
        id_column = id_name
    else:
        id_column = interaction_columns.get(id_name, id_name)
    require_columns([id_column], available, file, hint=f"map it with {setting}.{id_name}=<column>")
    fields = {name: source for name, source in mapping.items() if name != id_name}
    require_columns(list(fields.values()), available, file, hint=f"fix the column names in {setting}")
    return id_column, (fields or None)


def _separator(file: str) -> str:
    name = files.basename(file).lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", *ATOMIC_EXTENSIONS)) else ","


def is_atomic(file: str) -> bool:
    """Whether ``file`` is one of RecBole's atomic files (``.inter``, ``.item``, ``.user``).

    >>> is_atomic("ml-1m.train.inter"), is_atomic("ratings.csv")
    (True, False)
    """
    return files.basename(file).lower().removesuffix(".gz").endswith(ATOMIC_EXTENSIONS)


def atomic_names(columns: list[str]) -> dict[str, str]:
    """Plain names for RecBole's typed headers (``user_id:token`` -> ``user_id``).

    >>> atomic_names(["user_id:token", "rating:float", "__line"])
    {'user_id:token': 'user_id', 'rating:float': 'rating'}
    """
    return {c: _ATOMIC_HEADER.sub("", c) for c in columns if _ATOMIC_HEADER.search(c)}


def _parquet(file: str) -> pq.ParquetFile:
    fs, path = files.resolve(file)
    try:
        return pq.ParquetFile(fs.open_input_file(path))
    except FileNotFoundError:
        raise DataError("file not found", file=file, hint="check the path") from None
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(file, err) from None


def _corrupt(file: str, err: Exception) -> DataError:
    return DataError(f"cannot read the file as Parquet ({str(err).splitlines()[0]})", file=file,
                     hint="the file is corrupt, truncated or not Parquet: write it again, or set "
                     "dataset.format=table-csv if it is CSV")
