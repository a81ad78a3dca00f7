"""Amazon Reviews, as published by McAuley's lab: the 2018 and 2023 releases.

=========== ============================================= ==============================================
format      reviews (one JSON object per line)            meta (``meta_*``)
=========== ============================================= ==============================================
amazon-2018 ``*.json.gz``/``*_5.json.gz``: reviewerID,     ``meta_*.json.gz``: asin, title, description,
            asin, overall, unixReviewTime (seconds)        category, brand, feature
amazon-2023 ``*.jsonl(.gz)``: user_id, parent_asin,       ``meta_*.jsonl(.gz)``: parent_asin, title,
            rating, timestamp (milliseconds)               description, features, categories, store
=========== ============================================= ==============================================

Lists are joined into one text field (``description``/``features`` by spaces,
``categories`` by ``|``); ``store`` becomes ``brand``. Older meta dumps hold Python
dict literals instead of JSON: such files are parsed line by line (``json``, then
``ast.literal_eval``); a few unreadable meta lines are tolerated with a warning.

>>> import tempfile, pathlib
>>> from recsys.data.config import DatasetConfig
>>> from recsys.data.loaders.layout import detect_layout
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "Books.jsonl").write_text(
...     '{"user_id": "U1", "parent_asin": "B1", "rating": 5.0, "timestamp": 1588687728923}\\n')
>>> _ = (root / "meta_Books.jsonl").write_text(
...     '{"parent_asin": "B1", "title": "Dune", "description": ["Spice.", "Sand."], "categories": ["Books", "SF"]}\\n')
>>> cfg = DatasetConfig(name="amazon", path=str(root))
>>> layout = detect_layout(cfg)
>>> read_interactions(layout, layout.interaction_files[0], cfg).row(0)
('U1', 'B1', 1588687728, 5.0)
>>> read_items(layout, cfg).select("item_id", "title", "description", "categories").row(0)
('B1', 'Dune', 'Spice. Sand.', 'Books|SF')
"""

from __future__ import annotations

import ast
import json

import polars as pl

from recsys.data.config import DatasetConfig
from recsys.data.loaders import files
from recsys.data.loaders.layout import SourceLayout
from recsys.data.loaders.parse import (first_per_item, missing_column, require_rows, strip_cr, to_number,
                                       to_seconds, warn)
from recsys.data.schema import conform_interactions
from recsys.errors import ConfigError, DataError

REVIEW_KEYS = {
    "amazon-2018": {"user_id": "reviewerID", "item_id": "asin", "rating": "overall", "timestamp": "unixReviewTime"},
    "amazon-2023": {"user_id": "user_id", "item_id": "parent_asin", "rating": "rating", "timestamp": "timestamp"},
}
TIMESTAMP_UNIT = {"amazon-2018": "s", "amazon-2023": "ms"}
# item field -> meta keys, first present wins
META_KEYS = {
    "amazon-2018": {"item_id": ("asin",), "title": ("title",), "description": ("description",),
                    "categories": ("category", "categories"), "brand": ("brand",), "features": ("feature",)},
    "amazon-2023": {"item_id": ("parent_asin",), "title": ("title",), "description": ("description",),
                    "categories": ("categories",), "brand": ("store",), "features": ("features",)},
}
LIST_JOINERS = {"description": " ", "features": " ", "categories": "|"}
MAX_BAD_META_SHARE = 0.01
_REQUIRED = ("user_id", "item_id", "timestamp")


def read_interactions(layout: SourceLayout, file: str, cfg: DatasetConfig) -> pl.DataFrame:
    """The reviews of one file as the canonical interaction table (timestamps in seconds)."""
    keys = REVIEW_KEYS[layout.format]
    if layout.format == "amazon-2023" and cfg.timestamp_unit not in ("auto", "s"):
        raise ConfigError("Amazon 2023 timestamps are milliseconds and the loader turns them into seconds; "
                          f"dataset.timestamp_unit={cfg.timestamp_unit} would convert them again",
                          setting="dataset.timestamp_unit", hint="leave dataset.timestamp_unit=auto")
    data = files.read_bytes(file)
    frame = _json_lines(data, file, list(keys.values()))
    require_rows(frame, file)
    _require_keys(frame, data, file, keys, layout.format)
    locate = _record_locator(data)
    for name in _REQUIRED:
        missing = frame[keys[name]].is_null()
        if missing.any():
            raise DataError(f"{int(missing.sum())} review(s) have no {keys[name]}, "
                            f"first at {locate(int(missing.arg_max()))}", file=file, column=keys[name],
                            hint="fix or remove those lines; no interaction is skipped silently")
    frame = frame.select(
        pl.col(keys["user_id"]).alias("user_id"),
        pl.col(keys["item_id"]).alias("item_id"),
        to_number(frame, keys["rating"], pl.Float32, file, name="rating", locate=locate),
        to_seconds(frame, keys["timestamp"], file, unit=TIMESTAMP_UNIT[layout.format], locate=locate)
        .alias("timestamp"),
    )
    return conform_interactions(frame)


def read_items(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame:
    """One row per product (``item_id`` = asin / parent_asin) with its text fields, from every meta file."""
    fields = META_KEYS[layout.format]
    frames = [_read_meta(file, fields) for file in layout.item_files]
    if not frames:
        return pl.DataFrame(schema={name: pl.Utf8 for name in fields})
    items = pl.concat(frames, how="vertical")
    return first_per_item(items, ", ".join(files.basename(f) for f in layout.item_files))


def read_users(layout: SourceLayout, cfg: DatasetConfig) -> pl.DataFrame | None:
    """Amazon reviews publish no user attributes."""
    return None


def _json_lines(data: bytes, file: str, keys: list[str]) -> pl.DataFrame:
    """The named keys of every JSON line, all as strings (numbers and lists as their JSON text)."""
    try:
        return pl.read_ndjson(data, schema={key: pl.Utf8 for key in keys})
    except pl.exceptions.PolarsError as err:
        files.check_utf8(data, file)
        raise _bad_json_lines(data, file, err) from None


def _bad_json_lines(data: bytes, file: str, err: Exception) -> DataError:
    bad, first = 0, None
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if not ok:
            bad += 1
            first = first or (number, line[:200].decode("utf-8", "replace"))
    if first is None:
        return DataError(f"cannot read the JSON lines ({str(err).splitlines()[0]})", file=file,
                         hint="check that the file is the publisher's original")
    return DataError(f"{bad} line(s) are not JSON objects; first at line {first[0]}: {first[1]!r}", file=file,
                     hint="re-download the file or fix those lines; no review is skipped silently")


def _record_locator(data: bytes):
    """Maps a record index to its line (blank lines do not make records) — used only to word errors."""
    def locate(index: int) -> str:
        seen = -1
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                seen += 1
                if seen == index:
                    return f"line {number}"
        return f"record {index + 1}"
    return locate


def _first_keys(data: bytes) -> list[str]:
    for line in data.split(b"\n", 50)[:50]:
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                return []
            return list(record) if isinstance(record, dict) else []
    return []


def _require_keys(frame: pl.DataFrame, data: bytes, file: str, keys: dict[str, str], fmt: str) -> None:
    absent = [key for name, key in keys.items() if name != "rating" and frame[key].null_count() == frame.height]
    if not absent:
        return
    found = _first_keys(data)
    other = next((f for f, k in REVIEW_KEYS.items()
                  if f != fmt and {k[name] for name in _REQUIRED} <= set(found)), None)
    hint = (f"these look like {other} reviews: set dataset.format={other}" if other
            else f"use the publisher's {fmt} review files unchanged")
    raise missing_column(absent[0], found, file, hint=hint)


def _read_meta(file: str, fields: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    data = files.read_bytes(file)
    source_keys = [key for keys in fields.values() for key in keys]
    try:
        raw = pl.read_ndjson(data, schema={key: pl.Utf8 for key in source_keys})
        items = raw.select([_field(name, keys) for name, keys in fields.items()])
    except pl.exceptions.PolarsError:
        items = _meta_line_by_line(files.decode(data, "utf-8", file), file, fields)
    items = strip_cr(items.filter(pl.col("item_id").is_not_null()))
    return items.with_columns(pl.when(pl.col(name).str.strip_chars() != "").then(pl.col(name)).alias(name)
                              for name in fields if name != "item_id")


def _field(name: str, keys: tuple[str, ...]) -> pl.Expr:
    """One item field from its meta keys; JSON lists (kept as text by the reader) are joined."""
    value = pl.coalesce([pl.col(key) for key in keys])
    if name not in LIST_JOINERS:
        return value.str.strip_chars().alias(name)
    is_list = value.str.starts_with("[")
    joined = (pl.when(is_list).then(value).str.json_decode(pl.List(pl.Utf8))
              .list.eval(pl.element().str.strip_chars().filter(pl.element().str.len_chars() > 0))
              .list.join(LIST_JOINERS[name]))
    return pl.when(is_list).then(joined).otherwise(value.str.strip_chars()).alias(name)


def _meta_line_by_line(text: str, file: str, fields: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """Meta lines that are JSON or Python dict literals (older dumps); counts lines that are neither."""
    rows: list[dict[str, str | None]] = []
    bad, first_bad = 0, None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        record = _literal(line)
        if not isinstance(record, dict):
            bad += 1
            first_bad = first_bad or number
            continue
        rows.append({name: _text(next((record[k] for k in keys if k in record), None), LIST_JOINERS.get(name, " "))
                     for name, keys in fields.items()})
    total = len(rows) + bad
    if bad and bad > MAX_BAD_META_SHARE * total:
        raise DataError(f"{bad} of {total} lines are neither JSON nor Python dict literals; first at line "
                        f"{first_bad}", file=file, hint="re-download the meta file; it looks damaged")
    if bad:
        warn(f"{file}: skipped {bad} unreadable metadata line(s) of {total} (first at line {first_bad})")
    return pl.DataFrame(rows, schema={name: pl.Utf8 for name in fields})


def _literal(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        pass
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _text(value: object, joiner: str) -> str | None:
    """A meta value as one string: lists (possibly nested) joined, other values as text."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [_text(v, joiner) for v in value]
        return joiner.join(p for p in parts if p) or None
    return str(value).strip() or None
