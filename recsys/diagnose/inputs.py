"""What the rules read: the report tables as polars DataFrames, plus optional side tables.

Report tables have the columns of :mod:`recsys.report.schema`. :func:`prepare`
checks the columns the rules need, casts the rest to the schema's types, adds
missing optional columns as nulls and drops rows without a needed value, so a
rule can rely on every column being there.

Side table ``item_norms`` (for NORM_POPULARITY_COUPLING), one row per item of an
embedding: ``model``, ``embedding``, ``popularity`` (training interactions or
users of the item), ``norm`` (L2 norm of its vector), optional ``item_id``.

>>> import polars as pl
>>> curves = pl.DataFrame({"model": ["mf"], "step": [0], "name": ["train/loss"], "value": [1.0]})
>>> prepare(curves, "curves").columns
['run_id', 'dataset', 'model', 'trial_id', 'step', 'epoch', 'name', 'value']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Optional

import polars as pl

from recsys.errors import DataError
from recsys.report.schema import schema_for

UNIT_KEYS = ("run_id", "dataset", "model", "trial_id")

NEEDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "curves": ("model", "step", "name", "value"),
    "grad_stats": ("model", "step", "layer"),
    "embedding_health": ("model", "embedding", "n_rows", "dim"),
    "metrics": ("model", "split", "segment", "metric", "value"),
    "comparisons": ("baseline", "candidate", "metric", "delta"),
    "feature_importance": ("model", "feature", "metric", "drop"),
    "item_norms": ("model", "embedding", "popularity", "norm"),
}

ITEM_NORMS_SCHEMA = {"model": pl.String, "embedding": pl.String, "item_id": pl.String,
                     "popularity": pl.Float64, "norm": pl.Float64}


@lru_cache(maxsize=None)
def _polars_schema(table: str) -> dict[str, pl.DataType]:
    if table == "item_norms":
        return dict(ITEM_NORMS_SCHEMA)
    return dict(pl.from_arrow(schema_for(table).empty_table()).schema)


def prepare(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """``df`` with the columns of ``table``'s schema in order and type; a :class:`DataError` names what is missing.

    Columns outside the schema are dropped, and so are rows with a null in a needed column.

    >>> prepare(pl.DataFrame({"model": ["mf"]}), "curves")
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: table curves, column 'step': missing column(s) step, name, value needed by the diagnosis rules. What to do: pass the report table as written by the training stage
    """
    if not isinstance(df, pl.DataFrame):
        raise DataError(f"expected a polars DataFrame, got {type(df).__name__}", file=f"table {table}",
                        hint="load report tables with recsys.report.load_tables")
    missing = [c for c in NEEDED_COLUMNS[table] if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} needed by the diagnosis rules",
                        file=f"table {table}", column=missing[0],
                        hint="pass the report table as written by the training stage")
    schema = _polars_schema(table)
    columns = []
    for name, dtype in schema.items():
        if name not in df.columns:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        try:
            columns.append(df.get_column(name).cast(dtype))
        except pl.exceptions.PolarsError as err:
            raise DataError(f"values do not cast to {dtype}: {err}".splitlines()[0], file=f"table {table}",
                            column=name, hint="write the table through recsys.report") from None
    return df.select(columns).drop_nulls(list(NEEDED_COLUMNS[table]))


@dataclass(frozen=True)
class DiagnosisInputs:
    """The tables the rules read; any may be None (its rules are skipped).

    >>> DiagnosisInputs().available()
    []
    """

    curves: Optional[pl.DataFrame] = None
    grad_stats: Optional[pl.DataFrame] = None
    embedding_health: Optional[pl.DataFrame] = None
    metrics: Optional[pl.DataFrame] = None
    comparisons: Optional[pl.DataFrame] = None
    feature_importance: Optional[pl.DataFrame] = None
    item_norms: Optional[pl.DataFrame] = None

    @classmethod
    def from_tables(cls, tables: Mapping[str, pl.DataFrame], **side: pl.DataFrame) -> "DiagnosisInputs":
        """Pick the diagnosis tables out of ``load_tables`` output (other tables are ignored).

        >>> DiagnosisInputs.from_tables({"runs": pl.DataFrame(), "curves": pl.DataFrame()}).curves.shape
        (0, 0)
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**tables, **side}.items() if k in names})

    def available(self) -> list[str]:
        """Names of the tables that are present and have rows."""
        return [f.name for f in fields(self) if has_rows(getattr(self, f.name))]

    def prepared(self) -> "DiagnosisInputs":
        """Every present table passed through :func:`prepare`."""
        return DiagnosisInputs(**{f.name: prepare(getattr(self, f.name), f.name)
                                  for f in fields(self) if has_rows(getattr(self, f.name))})


def has_rows(df: Optional[pl.DataFrame]) -> bool:
    return df is not None and isinstance(df, pl.DataFrame) and df.height > 0


def by_unit(df: pl.DataFrame, keys: Sequence[str] = UNIT_KEYS) -> Iterator[tuple[dict[str, Any], pl.DataFrame]]:
    """Split ``df`` by the ``keys`` it has (run, dataset, model, trial), yielding ``(where, rows)``.

    ``where`` holds the non-null key values.

    >>> df = pl.DataFrame({"model": ["a", "b", "a"], "x": [1, 2, 3]})
    >>> [(w, rows.height) for w, rows in by_unit(df)]
    [({'model': 'a'}, 2), ({'model': 'b'}, 1)]
    """
    present = [k for k in keys if k in df.columns]
    if df.height == 0:
        return
    if not present:
        yield {}, df
        return
    for values, rows in df.partition_by(present, as_dict=True, maintain_order=True).items():
        yield {k: v for k, v in zip(present, values) if v is not None}, rows


def partition(df: pl.DataFrame, column: str) -> dict[Any, pl.DataFrame]:
    """Rows of ``df`` by the value of one column, in first-seen order.

    >>> list(partition(pl.DataFrame({"layer": ["a", "b", "a"]}), "layer"))
    ['a', 'b']
    """
    if df.height == 0:
        return {}
    return {key[0]: rows for key, rows in df.partition_by(column, as_dict=True, maintain_order=True).items()}


def same_run(df: pl.DataFrame, where: Mapping[str, Any]) -> pl.DataFrame:
    """Rows of ``df`` from the run and dataset named in ``where`` (keys ``df`` lacks are ignored).

    >>> df = pl.DataFrame({"run_id": ["r1", "r2"], "v": [1, 2]})
    >>> same_run(df, {"run_id": "r2", "model": "mf"}).get_column("v").to_list()
    [2]
    """
    for key in ("run_id", "dataset"):
        if key in where and key in df.columns:
            df = df.filter(pl.col(key) == where[key])
    return df


def _k_filter(k: Optional[int]) -> pl.Expr:
    return pl.col("k").is_null() if k is None else pl.col("k") == k


def metric_row(metrics: pl.DataFrame, *, model: str, split: str, metric: str, k: Optional[int],
               segment: str = "all") -> Optional[dict[str, Any]]:
    """The first ``metrics`` row of ``model`` for ``(split, segment, metric, k)`` with a finite value, or None.

    >>> m = pl.DataFrame({"model": ["mf"], "split": ["val"], "segment": ["all"], "metric": ["ndcg"], "k": [10],
    ...                   "value": [0.2]})
    >>> metric_row(m, model="mf", split="val", metric="ndcg", k=10)["value"]
    0.2
    """
    rows = metrics.filter((pl.col("model") == model) & (pl.col("split") == split) & (pl.col("segment") == segment)
                          & (pl.col("metric") == metric) & _k_filter(k) & pl.col("value").is_not_null()
                          & pl.col("value").is_finite())
    return rows.row(0, named=True) if rows.height else None


def pick_split(metrics: pl.DataFrame, model: str, metric: str, k: Optional[int],
               splits: Sequence[str]) -> Optional[str]:
    """The first of ``splits`` in which ``model`` has an overall ``metric@k`` value.

    >>> m = pl.DataFrame({"model": ["mf"], "split": ["test"], "segment": ["all"], "metric": ["ndcg"], "k": [10],
    ...                   "value": [0.2]})
    >>> pick_split(m, "mf", "ndcg", 10, ["val", "test"])
    'test'
    """
    for split in splits:
        if metric_row(metrics, model=model, split=split, metric=metric, k=k) is not None:
            return split
    return None


def against_baseline(metrics: pl.DataFrame, model: str, metric: str, k: Optional[int], splits: Sequence[str],
                     baseline: str) -> Optional[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(split, model's row, baseline's row)`` of overall ``metric@k`` in the first of ``splits`` where
    ``model`` has it, or None when either value is missing.

    >>> m = pl.DataFrame({"model": ["mf", "pop"], "split": "val", "segment": "all", "metric": "ndcg", "k": 10,
    ...                   "value": [0.2, 0.1]})
    >>> split, own, pop = against_baseline(m, "mf", "ndcg", 10, ["val", "test"], "pop")
    >>> split, own["value"], pop["value"]
    ('val', 0.2, 0.1)
    """
    split = pick_split(metrics, model, metric, k, splits)
    if split is None:
        return None
    own = metric_row(metrics, model=model, split=split, metric=metric, k=k)
    base = metric_row(metrics, model=baseline, split=split, metric=metric, k=k)
    return None if base is None else (split, own, base)
