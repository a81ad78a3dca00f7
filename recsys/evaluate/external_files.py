"""Recommendation lists produced outside recsys: their settings (``eval.external``) and reading them.

A list file holds, per user, the items another system recommends, with the
dataset's **original** ids (as text):

- ``parquet``, ``csv``, ``tsv``: columns ``user_id, item_id, score`` and optionally
  ``rank`` (other columns are ignored);
- ``trec``: a TREC run file, one line ``qid Q0 docid rank score tag`` per entry,
  whitespace separated; ``qid`` is the user id and ``docid`` the item id;
- ``auto`` (the default) picks the format from the extension: ``.parquet``,
  ``.csv``, ``.tsv``, ``.trec`` / ``.run`` / ``.txt`` (TREC).

:func:`read_list` returns one tidy frame (``user_id``, ``item_id`` as text,
``score`` float64, ``rank`` int64 or null) or raises one :class:`DataError` that
names the file and the column: missing column, wrong type, empty file, a header
without rows, NaN or infinite score, a rank that is not a whole number >= 1, an
unreadable file. Joining to a dataset and counting unknown ids, duplicates and
seen items is :mod:`recsys.evaluate.external`'s part.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "prod.csv"
>>> _ = path.write_text("user_id,item_id,score\\nu1,i9,0.5\\nu1,i3,0.7\\n")
>>> read_list(str(path)).rows()
[('u1', 'i9', 0.5, None), ('u1', 'i3', 0.7, None)]
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePosixPath

import polars as pl

from recsys.errors import ConfigError, DataError

FORMATS = ("auto", "parquet", "csv", "tsv", "trec")
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv",
              ".trec": "trec", ".run": "trec", ".txt": "trec"}
LIST_SPLITS = ("val", "test")
COLUMNS = ("user_id", "item_id", "score")
TREC_LINE = r"^\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$"   # qid Q0 docid rank score tag
TREC_COLUMNS = ("user_id", "q0", "item_id", "rank", "score", "tag")
SCHEMA = {"user_id": pl.Utf8, "item_id": pl.Utf8, "score": pl.Float64, "rank": pl.Int64}


@dataclass
class ExternalListConfig:
    """One list of ``eval.external``: its name in the report, where it is, its format, the split it answers.

    The same ``name`` may appear once per split and dataset (a system's val and test
    lists). ``dataset`` (a dataset's label) ties the list to one dataset of a run with
    several (``datasets=[...]``); left empty, the list belongs to the run's only dataset.

    >>> ExternalListConfig(name="prod", path="lists/prod.parquet").split
    'test'
    """

    name: str = ""
    path: str = ""
    format: str = "auto"        # auto | parquet | csv | tsv | trec
    split: str = "test"         # val | test: the split whose users the list recommends to
    dataset: str = ""           # label of the dataset the list is for ("": the run's only dataset)


def check_external_lists(lists) -> None:
    """Raise :class:`ConfigError` naming ``eval.external`` for an unnamed, unplaced or repeated list.

    >>> check_external_lists([ExternalListConfig("a", "a.csv"), ExternalListConfig("a", "a.csv")])
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'eval.external': list 'a' is given twice for split 'test'. What to do: give each (name, split, dataset) once
    """
    seen = set()
    for i, entry in enumerate(lists):
        where = f"eval.external[{i}]"
        if not isinstance(entry.name, str) or not entry.name.strip():
            raise ConfigError("a list has no name", setting=f"{where}.name",
                              hint="name it as it should appear in the report, e.g. {name: prod, path: prod.csv}")
        if not isinstance(entry.path, str) or not entry.path.strip():
            raise ConfigError(f"list '{entry.name}' has no path", setting=f"{where}.path",
                              hint="give the file of the list, e.g. path: lists/prod.parquet")
        if entry.format not in FORMATS:
            raise ConfigError(f"unknown list format {entry.format!r}", setting=f"{where}.format",
                              hint=f"use one of {', '.join(FORMATS)}")
        if entry.split not in LIST_SPLITS:
            raise ConfigError(f"unknown split {entry.split!r} for list '{entry.name}'", setting=f"{where}.split",
                              hint=f"use one of {', '.join(LIST_SPLITS)}")
        if (entry.name, entry.split, entry.dataset) in seen:
            raise ConfigError(f"list '{entry.name}' is given twice for split '{entry.split}'"
                              + (f" of dataset '{entry.dataset}'" if entry.dataset else ""),
                              setting="eval.external", hint="give each (name, split, dataset) once")
        seen.add((entry.name, entry.split, entry.dataset))


def check_lists_for_run(lists, models, datasets) -> None:
    """Before any work: list names differ from ``models``, each list's dataset is one of ``datasets``
    (labels; with several, every list names one), and every file exists with a known format.

    >>> check_lists_for_run([ExternalListConfig("mf", "mf.csv")], models=["pop", "mf"], datasets=["synthetic"])
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting 'eval.external[0].name': list 'mf' has the name of a trained model. What to do: name the list differently, e.g. mf_external
    """
    from recsys.storage import exists

    check_external_lists(lists)
    for i, entry in enumerate(lists):
        where = f"eval.external[{i}]"
        if entry.name in models:
            raise ConfigError(f"list '{entry.name}' has the name of a trained model", setting=f"{where}.name",
                              hint=f"name the list differently, e.g. {entry.name}_external")
        if entry.dataset and entry.dataset not in datasets:
            raise ConfigError(f"list '{entry.name}' is for dataset '{entry.dataset}', which the run does not have",
                              setting=f"{where}.dataset", hint=f"use one of {', '.join(datasets)}")
        if not entry.dataset and len(datasets) > 1:
            raise ConfigError(f"the run has several datasets and list '{entry.name}' does not say which it is for",
                              setting=f"{where}.dataset", hint=f"set dataset to one of {', '.join(datasets)}")
        detect_format(entry.path, entry.format)
        if not exists(entry.path):
            raise DataError(f"list '{entry.name}' does not exist", file=str(entry.path),
                            hint=f"check {where}.path")

def detect_format(path: str, fmt: str = "auto") -> str:
    """The format of ``path``: ``fmt`` itself unless it is ``auto``, else from the extension.

    >>> detect_format("runs/bm25.run"), detect_format("x.TSV"), detect_format("x.bin", "parquet")
    ('trec', 'tsv', 'parquet')
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown list format {fmt!r}", setting="eval.external.format",
                          hint=f"use one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    suffix = PurePosixPath(str(path)).suffix.lower()
    if suffix not in EXTENSIONS:
        raise DataError(f"cannot tell the list format from the extension {suffix or '(none)'!r}", file=str(path),
                        hint=f"name the format (format: parquet, csv, tsv or trec) or use one of the extensions "
                             f"{', '.join(EXTENSIONS)}")
    return EXTENSIONS[suffix]


def _read_bytes(path: str) -> bytes:
    from recsys.storage import exists, read_bytes

    if not exists(path):
        raise DataError("the list file does not exist", file=str(path), hint="check eval.external's path")
    return read_bytes(path)


def _read_table(data: bytes, fmt: str, path: str) -> pl.DataFrame:
    """The file as a frame: every column text for csv/tsv/trec, as stored for Parquet."""
    if fmt == "parquet":
        try:
            return pl.read_parquet(io.BytesIO(data))
        except Exception as exc:        # polars and pyarrow raise several types for a damaged file
            raise DataError(f"not a readable Parquet file ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
                            file=path, hint="write the list again (e.g. DataFrame.write_parquet)") from None
    if not data.strip():
        raise DataError("the list file is empty", file=path,
                        hint="write the lists (one row per recommended item) into it")
    if fmt == "trec":
        lines = pl.DataFrame({"line": data.decode("utf-8", errors="replace").splitlines()})
        lines = lines.with_row_index("line_no", offset=1).filter(pl.col("line").str.strip_chars() != "")
        parts = lines.with_columns(pl.col("line").str.extract_groups(TREC_LINE).alias("parts"))
        bad = parts.filter(pl.col("parts").struct.field("1").is_null())
        if bad.height:
            first = bad.row(0, named=True)
            raise DataError(f"{bad.height} lines are not 'qid Q0 docid rank score tag' (six fields), e.g. line "
                            f"{first['line_no']}: {first['line'][:80]!r}", file=path,
                            hint="write one TREC run line per recommended item")
        fields = parts["parts"].struct.unnest()
        return fields.rename(dict(zip(fields.columns, TREC_COLUMNS)))
    try:
        return pl.read_csv(io.BytesIO(data), separator="\t" if fmt == "tsv" else ",", infer_schema=False)
    except Exception as exc:
        raise DataError(f"not a readable {fmt.upper()} file ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]})", file=path,
                        hint=f"write a {fmt.upper()} file with a header line user_id, item_id, score[, rank]") from None


def _ids(frame: pl.DataFrame, column: str, path: str) -> pl.Series:
    series = frame[column]
    if series.dtype in (pl.Utf8, pl.Categorical, pl.Enum) or series.dtype.is_integer():
        series = series.cast(pl.Utf8)
    else:
        raise DataError(f"ids must be text (or whole numbers), found {series.dtype}", file=path, column=column,
                        hint="store the dataset's original ids as text")
    if series.null_count():
        raise DataError(f"{series.null_count()} rows have no {column}", file=path, column=column,
                        hint="give every row a user and an item")
    return series


def _examples(frame: pl.DataFrame, bad: pl.Series, column: str) -> str:
    return ", ".join(repr(v) for v in frame.filter(bad)[column].head(3).to_list())


def _numbers(frame: pl.DataFrame, column: str, path: str) -> pl.Series:
    series = frame[column]
    if series.dtype == pl.Utf8:
        parsed = series.str.strip_chars().cast(pl.Float64, strict=False)
        bad = parsed.is_null() & series.is_not_null()
        if bad.any():
            raise DataError(f"{int(bad.sum())} values are not numbers, e.g. {_examples(frame, bad, column)}",
                            file=path, column=column, hint=f"write {column} as a number")
        series = parsed
    elif series.dtype.is_numeric():
        series = series.cast(pl.Float64)
    else:
        raise DataError(f"{column} must be numeric, found {series.dtype}", file=path, column=column,
                        hint=f"store {column} as a number")
    if series.null_count():
        raise DataError(f"{series.null_count()} rows have no {column}", file=path, column=column,
                        hint=f"give every row a {column}")
    return series


def _scores(frame: pl.DataFrame, path: str) -> pl.Series:
    scores = _numbers(frame, "score", path)
    bad = ~scores.is_finite()
    if bad.any():
        raise DataError(f"{int(bad.sum())} scores are NaN or infinite, e.g. {_examples(frame, bad, 'score')}",
                        file=path, column="score", hint="write finite scores (the system's own ranking scores)")
    return scores


def _ranks(frame: pl.DataFrame, path: str) -> pl.Series:
    ranks = _numbers(frame, "rank", path)
    bad = ~ranks.is_finite() | (ranks != ranks.floor()) | (ranks < 1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} ranks are not whole numbers >= 1, e.g. {_examples(frame, bad, 'rank')}",
                        file=path, column="rank", hint="number each user's list 1, 2, 3, ... (or leave rank out)")
    return ranks.cast(pl.Int64)


def read_list(path: str, fmt: str = "auto") -> pl.DataFrame:
    """The list file at ``path`` as ``user_id, item_id, score, rank`` (see the module doc for the checks).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bm25.run"
    >>> _ = path.write_text("7 Q0 42 1 3.5 bm25\\n7 Q0 40 2 2.0 bm25\\n")
    >>> read_list(str(path))["rank"].to_list()
    [1, 2]
    """
    fmt = detect_format(path, fmt)
    frame = _read_table(_read_bytes(path), fmt, str(path))
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"no column {', '.join(repr(c) for c in missing)} (found: {', '.join(frame.columns) or 'none'})",
                        file=str(path), column=missing[0],
                        hint="name the columns user_id, item_id, score (and optionally rank)")
    if frame.height == 0:
        raise DataError("the list file has a header but no rows", file=str(path),
                        hint="write the lists (one row per recommended item) into it")
    rank = _ranks(frame, str(path)) if "rank" in frame.columns else pl.Series("rank", [None] * frame.height,
                                                                             dtype=pl.Int64)
    return pl.DataFrame({"user_id": _ids(frame, "user_id", str(path)), "item_id": _ids(frame, "item_id", str(path)),
                         "score": _scores(frame, str(path)), "rank": rank}, schema=SCHEMA)
