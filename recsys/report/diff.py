"""Run against run: metric deltas between two runs, with paired significance where per-user rows exist.

``compare_runs(a, b)`` matches the ``metrics`` rows of both runs on (dataset,
model, split, protocol, segment, metric, k) and reports ``delta = value_b -
value_a``. For the segment ``all`` of a metric whose ``user_metrics`` rows exist
in both runs, the users evaluated in both are paired on ``user_id`` and tested
(:func:`recsys.evaluate.significance.paired_test`; ``paired_t`` by default), and
the p-values are adjusted over every tested row (Holm by default). A test that
is undefined (identical values for every shared user, as for a deterministic
``pop`` on the same split) leaves ``p_value`` null. Rows that one run has and the
other lacks are kept with a null on the missing side.

>>> import tempfile, pathlib
>>> from recsys.report.writer import RunWriter
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name, values in (("a", [0.0, 0.5, 0.5, 1.0]), ("b", [0.5, 1.0, 0.5, 1.0])):
...     with RunWriter(root / name, run_id=name) as run:
...         _ = run.write("metrics", [{"dataset": "d", "model": "mf", "split": "test", "segment": "all",
...                                    "metric": "ndcg", "k": 10, "value": sum(values) / 4, "n_users": 4}])
...         _ = run.write("user_metrics", [{"dataset": "d", "model": "mf", "split": "test", "user_id": str(u),
...                                         "metric": "ndcg", "k": 10, "value": v} for u, v in enumerate(values)])
>>> row = compare_runs(root / "a", root / "b").row(0, named=True)
>>> row["value_a"], row["value_b"], row["delta"], round(row["p_value"], 3), row["n_paired"]
(0.5, 0.75, 0.25, 0.182, 4)
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.errors import ConfigError, DataError
from recsys.evaluate.significance import TESTS, adjust_p_values, paired_test
from recsys.report.locations import Location
from recsys.report.reader import resolve_runs, scan_tables

KEYS = ["dataset", "model", "split", "protocol", "segment", "metric", "k"]
USER_KEYS = ["dataset", "model", "split", "protocol", "metric", "k"]
COLUMNS = [*KEYS, "value_a", "value_b", "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "test", "n_paired"]


def _one(spec: str | Location, which: str) -> Location:
    runs = resolve_runs(spec)
    if len(runs) != 1:
        raise ConfigError(f"run {which} must be one run, but {str(spec)!r} selects {len(runs)}",
                          hint="pass a run directory or a run id; `recsys report list` shows them")
    return runs[0]


def _selected(frame: pl.LazyFrame, metric: str | None, k: int | None, segment: str | None,
              split: str | None) -> pl.LazyFrame:
    if metric is not None:
        frame = frame.filter((pl.col("metric") == metric)
                             & (pl.col("k").is_null() if k is None else pl.col("k") == k))
    if segment is not None and "segment" in frame.collect_schema().names():
        frame = frame.filter(pl.col("segment") == segment)
    if split is not None:
        frame = frame.filter(pl.col("split") == split)
    return frame


def _paired(users_a: pl.DataFrame, users_b: pl.DataFrame, test: str, confidence: float) -> pl.DataFrame:
    """One paired test per (dataset, model, split, protocol, metric, k) present in both runs."""
    joined = users_a.join(users_b, on=[*USER_KEYS, "user_id"], how="inner", nulls_equal=True, suffix="_b")
    rows = []
    for key, group in joined.group_by(USER_KEYS, maintain_order=True):
        result = paired_test(group["value"].to_numpy(), group["value_b"].to_numpy(), test,
                             n_samples=1000, confidence=confidence)
        rows.append({**dict(zip(USER_KEYS, key)), "segment": "all", "ci_low": result.ci_low,
                     "ci_high": result.ci_high, "p_value": result.p_value, "test": test, "n_paired": result.n})
    schema = {**{k: users_a.schema[k] for k in USER_KEYS}, "segment": pl.String, "ci_low": pl.Float64,
              "ci_high": pl.Float64, "p_value": pl.Float64, "test": pl.String, "n_paired": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def compare_runs(run_a: str | Location, run_b: str | Location, *, metric: str | None = None,
                 k: int | None = None, segment: str | None = "all", split: str | None = "test",
                 test: str = "paired_t", correction: str = "holm", confidence: float = 0.95) -> pl.DataFrame:
    """Metric deltas ``b - a`` between two runs; p-values where both runs have per-user rows.

    ``metric``/``k``, ``segment`` and ``split`` narrow the rows (None: all of them).
    """
    if test not in TESTS:
        raise ConfigError(f"unknown significance test {test!r}", setting="--test", hint=f"use one of {', '.join(TESTS)}")
    a, b = _one(run_a, "A"), _one(run_b, "B")
    frames_a, frames_b = scan_tables(a), scan_tables(b)
    metrics = [_selected(f["metrics"], metric, k, segment, split).select(*KEYS, "value").collect()
               for f in (frames_a, frames_b)]
    if metrics[0].is_empty() and metrics[1].is_empty():
        raise DataError("neither run has metrics rows for the selection", file=f"{a}, {b}",
                        hint="run the evaluate stage, or widen --metric/--segment/--split")
    joined = metrics[0].rename({"value": "value_a"}).join(metrics[1].rename({"value": "value_b"}), on=KEYS,
                                                           how="full", coalesce=True, nulls_equal=True)
    joined = joined.with_columns(delta=pl.col("value_b") - pl.col("value_a"))
    if segment in (None, "all"):
        users = [_selected(f["user_metrics"], metric, k, None, split)
                 .select(*USER_KEYS, "user_id", "value").drop_nulls("value").collect()
                 for f in (frames_a, frames_b)]
        tests = _paired(users[0], users[1], test, confidence)
        joined = joined.join(tests, on=[*USER_KEYS, "segment"], how="left", nulls_equal=True)
    else:
        joined = joined.with_columns(ci_low=pl.lit(None, pl.Float64), ci_high=pl.lit(None, pl.Float64),
                                     p_value=pl.lit(None, pl.Float64), test=pl.lit(None, pl.String),
                                     n_paired=pl.lit(None, pl.Int64))
    p = joined["p_value"].fill_null(np.nan).to_numpy()
    joined = joined.with_columns(pl.col("p_value").fill_nan(None),   # NaN: undefined (e.g. identical values)
                                 p_adjusted=pl.Series(adjust_p_values(p, correction)).fill_nan(None))
    return joined.select(COLUMNS).sort(["dataset", "split", "segment", "metric", "k", "model", "protocol"],
                                       nulls_last=True)
