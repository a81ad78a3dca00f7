"""Vectorised parsing shared by the loaders, with errors that name the file, column and line.

Text files are first read as all-string columns (fast, in polars); each column is
then converted with a check that every non-empty value converted, so a bad value is
reported with its line instead of silently becoming null.

>>> frame = read_delimited(b"1::10::4::978300760\\n", "ratings.dat", separator="::",
...                        names=["user", "item", "rating", "ts"])
>>> frame.select(to_number(frame, "rating", pl.Float32, "ratings.dat")).to_series().to_list()
[4.0]
"""

from __future__ import annotations

import csv
import difflib
import io
import warnings
from typing import Callable

import polars as pl

from recsys.errors import DataError
from recsys.data.loaders.files import check_utf8

Locator = Callable[[int], str]     # row index -> "line 12" (for formats without a __line column)
LINE = "__line"                      # 1-based line number of each parsed row
_SPARE_SEPARATORS = ("\x1f", "\x1e", "\x1d", "\x1c", "\x01")
FIX_VALUES = "fix those values in the file (every interaction must parse; none is skipped silently)"


class SourceWarning(UserWarning):
    """Something in a source file was tolerated (e.g. a few unreadable metadata lines)."""


def warn(message: str) -> None:
    """Emit a :class:`SourceWarning` (``load_source`` also keeps it in ``LoadedSource.notes``)."""
    warnings.warn(message, SourceWarning, stacklevel=3)


def read_delimited(
    data: bytes,
    file: str,
    *,
    separator: str,
    names: list[str] | None = None,
    quoting: bool = False,
) -> pl.DataFrame:
    """All-string columns of a delimited UTF-8 text, plus ``__line``; blank lines dropped.

    ``names`` given: the file has no header and must have exactly that many fields per
    line. ``names`` None: the first line is the header. ``separator`` may be several
    characters (MovieLens ``::``). Lines with too few fields keep nulls in the missing
    columns: check them with :func:`require_values`.

    >>> read_delimited(b"a,b\\r\\n1,\\"x, y\\"\\r\\n", "f.csv", separator=",", quoting=True).to_dicts()
    [{'__line': 2, 'a': '1', 'b': 'x, y'}]
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise DataError("the file is empty", file=file,
                        hint="check that the download finished and the file is the right one")
    sep = separator
    if len(separator.encode()) > 1:
        sep = next((c for c in _SPARE_SEPARATORS if c.encode() not in data), None)
        if sep is None:
            raise DataError(f"cannot split on {separator!r}: every spare separator byte occurs in the file",
                            file=file, hint="check that the file is the publisher's original")
        data = data.replace(separator.encode(), sep.encode())
    has_header = names is None
    try:
        frame = pl.read_csv(
            data,
            separator=sep,
            has_header=has_header,
            schema=None if has_header else {name: pl.Utf8 for name in names},
            infer_schema=False,
            quote_char='"' if quoting else None,
        )
    except pl.exceptions.NoDataError:
        raise DataError("the file is empty", file=file, hint="check the file") from None
    except pl.exceptions.PolarsError as err:
        raise _delimited_error(data, file, sep, separator, names, quoting, err) from None
    if has_header and LINE in frame.columns:
        raise DataError(f"the column name {LINE!r} is reserved", file=file, hint="rename that column")
    frame = frame.with_row_index(LINE, offset=2 if has_header else 1)
    frame = frame.with_columns(pl.col(LINE).cast(pl.Int64))
    data_columns = [c for c in frame.columns if c != LINE]
    if not data_columns:
        return frame
    return frame.filter(~pl.all_horizontal(pl.col(data_columns).is_null()))


def _delimited_error(data, file, sep, separator, names, quoting, err) -> DataError:
    """Explain a parse failure: invalid UTF-8, or the lines whose field count differs (error path only)."""
    if "utf-8" in str(err).lower() or "utf8" in str(err).lower():
        check_utf8(data, file)
    text = data.decode("utf-8", "replace")
    if quoting:
        rows = ((reader.line_num, row) for reader in [csv.reader(io.StringIO(text, newline=""), delimiter=sep)]
                for row in reader)
    else:
        rows = ((number, line.rstrip("\r").split(sep)) for number, line in enumerate(text.split("\n"), start=1))
    expected = len(names) if names is not None else None
    bad = []
    for number, fields in rows:
        if not any(field.strip() for field in fields):
            continue
        if expected is None:
            expected = len(fields)
        elif len(fields) != expected:
            bad.append((number, sep.join(fields)))
    if bad:
        first_number, first_line = bad[0]
        shown = first_line.replace(sep, separator)[:200]
        return DataError(
            f"{len(bad)} malformed line(s) without exactly {expected} {separator!r}-separated fields; "
            f"first at line {first_number}: {shown!r}",
            file=file,
            hint="fix or remove those lines; no interaction is skipped silently",
        )
    return DataError(f"cannot parse the file as {separator!r}-separated text ({str(err).splitlines()[0]})",
                     file=file, hint="check the separator, quoting and that every line has the same fields")


def require_values(frame: pl.DataFrame, columns: list[str], file: str, *, what: str = "field") -> None:
    """Raise if any row misses a value in ``columns`` (short line or empty field), naming the first.

    >>> frame = read_delimited(b"1\\t2\\t3\\n4\\t5\\n", "u.data", separator="\\t", names=["a", "b", "c"])
    >>> require_values(frame, ["a", "b", "c"], "u.data")
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: u.data, column 'c': 1 line(s) have no value in this field (a short line or an empty field); first at line 2. What to do: fix or remove those lines; no interaction is skipped silently
    """
    for column in columns:
        missing = frame.filter(pl.col(column).is_null())
        if missing.height:
            first = missing.row(0, named=True)
            raise DataError(
                f"{missing.height} line(s) have no value in this {what} (a short line or an empty field); "
                f"first at line {first[LINE]}",
                file=file,
                column=column,
                hint="fix or remove those lines; no interaction is skipped silently",
            )


def to_number(frame: pl.DataFrame, column: str, dtype: pl.DataType, file: str,
              *, name: str | None = None, locate: Locator | None = None, hint: str = FIX_VALUES) -> pl.Series:
    """``frame[column]`` (strings) converted to ``dtype``; any value that does not convert is an error.

    Integers also accept values written as floats with no fraction (``"3.0"``).
    Null stays null (check required columns with :func:`require_values` first).

    >>> frame = pl.DataFrame({"__line": [2, 3], "rating": ["4.5", "five"]})
    >>> to_number(frame, "rating", pl.Float32, "ratings.csv")
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: ratings.csv, column 'rating': 1 row(s) are not numbers, e.g. 'five' at line 3. What to do: fix those values in the file (every interaction must parse; none is skipped silently)
    """
    raw = frame[column]
    if raw.dtype != pl.Utf8:
        raw = raw.cast(pl.Utf8)
    text = raw.str.strip_chars()
    if dtype.is_integer():
        as_float = text.cast(pl.Float64, strict=False)
        converted = text.cast(dtype, strict=False)
        whole = as_float.is_finite() & (as_float == as_float.floor()) & converted.is_null()
        converted = pl.select(pl.when(whole).then(as_float.cast(dtype, strict=False))
                              .otherwise(converted)).to_series()
    else:
        converted = text.cast(dtype, strict=False)
    failed = raw.is_not_null() & converted.is_null()
    if failed.any():
        raise _bad_values(frame, raw, failed, column, file, "are not numbers", locate, hint)
    return converted.alias(name or column)


def where_is(frame: pl.DataFrame, index: int, locate: Locator | None = None) -> str:
    """Where row ``index`` of ``frame`` came from: ``locate(index)``, its ``__line``, or its row number."""
    if locate is not None:
        return locate(index)
    return f"line {frame[LINE][index]}" if LINE in frame.columns else f"row {index + 1}"


def _bad_values(frame, raw, failed, column, file, problem, locate=None, hint=None) -> DataError:
    index = int(failed.arg_max())
    where = where_is(frame, index, locate)
    return DataError(
        f"{int(failed.sum())} row(s) {problem}, e.g. {raw[index]!r} at {where}",
        file=file,
        column=column,
        hint=hint or FIX_VALUES,
    )


def to_seconds(frame: pl.DataFrame, column: str, file: str, *, unit: str = "s",
               allow_datetime_text: bool = False, locate: Locator | None = None,
               hint: str = FIX_VALUES) -> pl.Series:
    """Timestamps in ``frame[column]`` as Int64 seconds since the epoch.

    Accepts integers, floats (floored), datetimes and dates; strings are parsed as
    numbers, and as date-times when ``allow_datetime_text``. ``unit`` ``ms`` divides
    numbers by 1000.

    >>> frame = pl.DataFrame({"ts": ["1588687728923"]})
    >>> to_seconds(frame, "ts", "Books.jsonl", unit="ms").to_list()
    [1588687728]
    """
    raw = frame[column]
    if raw.dtype in (pl.Date,) or isinstance(raw.dtype, pl.Datetime):
        return raw.dt.epoch("s").cast(pl.Int64).alias(column)
    if raw.dtype.is_numeric():
        seconds = raw.cast(pl.Float64) if raw.dtype.is_float() else raw.cast(pl.Int64)
    elif raw.dtype == pl.Utf8:
        text = raw.str.strip_chars()
        numbers = text.cast(pl.Float64, strict=False)
        integers = text.cast(pl.Int64, strict=False)
        failed = raw.is_not_null() & numbers.is_null()
        if failed.any() and allow_datetime_text:
            try:
                parsed = text.str.to_datetime(strict=False, time_zone=None)
            except pl.exceptions.ComputeError:     # polars finds no date-time format that fits any value
                parsed = pl.Series(column, [None] * len(text), dtype=pl.Datetime("us"))
            if parsed.is_not_null().any():
                seconds = parsed.dt.epoch("s")
                failed = raw.is_not_null() & seconds.is_null()
                if failed.any():
                    raise _bad_values(frame, raw, failed, column, file, "are neither numbers nor date-times",
                                      locate, hint)
                return seconds.cast(pl.Int64).alias(column)
        if failed.any():
            raise _bad_values(frame, raw, failed, column, file, "are not numbers", locate, hint)
        seconds = integers if (integers.is_null() == raw.is_null()).all() else numbers
    else:
        raise DataError(f"timestamps have type {raw.dtype}, expected numbers or date-times", file=file,
                        column=column, hint="map a numeric or datetime column as the timestamp")
    if unit == "ms":
        seconds = seconds // 1000
    if seconds.dtype.is_float():
        seconds = seconds.floor().cast(pl.Int64, strict=False)
    return seconds.cast(pl.Int64).alias(column)


def missing_column(column: str, available: list[str], file: str, *, hint: str) -> DataError:
    """The error for a column that is not there, suggesting close names among ``available``.

    >>> print(missing_column("userId", ["userid", "movieId"], "ratings.csv", hint="rename it"))
    ratings.csv, column 'userId': column 'userId' is missing; did you mean 'userid'? Columns found: userid, movieId. What to do: rename it
    """
    lower = {name.lower(): name for name in available}
    close = [lower[column.lower()]] if column.lower() in lower else []
    close += [c for c in difflib.get_close_matches(column, available, n=3, cutoff=0.6) if c not in close]
    suggestion = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(available[:30]) + (", ..." if len(available) > 30 else "")
    return DataError(f"column '{column}' is missing{suggestion or '.'} Columns found: {shown or '(none)'}",
                     file=file, column=column, hint=hint)


def require_columns(columns: list[str], available: list[str], file: str, *, hint: str) -> None:
    """Raise :func:`missing_column` for the first of ``columns`` not in ``available``."""
    for column in columns:
        if column not in available:
            raise missing_column(column, available, file, hint=hint)


def require_rows(frame: pl.DataFrame, file: str) -> None:
    """An interaction file must hold at least one interaction."""
    if frame.height == 0:
        raise DataError("the file holds no interactions (only a header or blank lines)", file=file,
                        hint="check that the download finished and that this is the ratings/reviews file")


def strip_cr(frame: pl.DataFrame) -> pl.DataFrame:
    """Remove carriage returns left in string columns (CRLF files, quoted fields).

    >>> strip_cr(pl.DataFrame({"title": ["Heat\\r"], "year": [1995]})).row(0)
    ('Heat', 1995)
    """
    return frame.with_columns(pl.col(pl.Utf8).str.replace_all("\r", "", literal=True))


def first_per_item(items: pl.DataFrame, file: str) -> pl.DataFrame:
    """One row per ``item_id`` (the first), warning how many repeated rows were merged."""
    unique = items.unique(subset="item_id", keep="first", maintain_order=True)
    if unique.height < items.height:
        warn(f"{file}: {items.height - unique.height} repeated item rows; kept the first row of each item")
    return unique
