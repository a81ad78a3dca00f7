"""Cleaning steps between validation and the split: implicit feedback, duplicates, k-core.

Each step returns the new frame and what it removed, so the manifest can record
every step's row counts. k-core is also offered as pieces
(:func:`interaction_counts`, :func:`kcore_step`, :func:`kcore_is_stable`) so a
distributed caller can sum count tables over blocks and run one iteration at a time.

>>> import polars as pl
>>> frame = pl.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "a"],
...                       "timestamp": [1, 2, 3], "rating": [5.0, 2.0, 4.0]})
>>> to_implicit(frame, 4.0)[1]
1
"""

from __future__ import annotations

import polars as pl

from recsys.data.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID
from recsys.errors import ConfigError, DataError

DUPLICATE_POLICIES = ("keep", "first", "last", "error")
DUPLICATE_KEY = (USER_ID, ITEM_ID, TIMESTAMP)
COUNT = "n"
_ROW = "__row"


def to_implicit(frame: pl.DataFrame, threshold: float | None) -> tuple[pl.DataFrame, int]:
    """Keep rows with ``rating >= threshold`` (rows without a rating are removed too).

    ``threshold=None`` keeps everything.

    >>> frame = pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [1], "rating": [None]},
    ...                      schema_overrides={"rating": pl.Float32})
    >>> to_implicit(frame, 4.0)
    Traceback (most recent call last):
    ...
    recsys.errors.DataError: column 'rating', setting 'data.implicit_threshold': the interactions have no rating values to compare with the threshold 4. What to do: unset data.implicit_threshold (the data is already implicit), or map a rating column with dataset.columns.rating=NAME
    """
    if threshold is None:
        return frame, 0
    if RATING not in frame.columns or frame[RATING].null_count() == frame.height:
        raise DataError(f"the interactions have no rating values to compare with the threshold {threshold:g}",
                        column=RATING, setting="data.implicit_threshold",
                        hint="unset data.implicit_threshold (the data is already implicit), "
                             "or map a rating column with dataset.columns.rating=NAME")
    kept = frame.filter(pl.col(RATING) >= threshold)
    if kept.height == 0:
        raise DataError(f"no rating is >= {threshold:g} (largest {frame[RATING].max():g}), so nothing is left",
                        column=RATING, setting="data.implicit_threshold",
                        hint="lower data.implicit_threshold to a value on the source's rating scale")
    return kept, frame.height - kept.height


def count_duplicates(frame: pl.DataFrame) -> int:
    """Rows beyond the first of each (user_id, item_id, timestamp) group.

    >>> count_duplicates(pl.DataFrame({"user_id": ["u"] * 3, "item_id": ["a"] * 3, "timestamp": [1, 1, 2]}))
    1
    """
    return frame.height - frame.select(DUPLICATE_KEY).n_unique() if frame.height else 0


def _tie_order(frame: pl.DataFrame) -> list[str]:
    """Columns that order rows within a duplicate group: rating first, then every other orderable column."""
    rest = [c for c, t in frame.schema.items()
            if c not in (*DUPLICATE_KEY, RATING)
            and (t.is_numeric() or t == pl.Utf8 or t == pl.Boolean or t.is_temporal())]
    return ([RATING] if RATING in frame.columns else []) + rest


def deduplicate(frame: pl.DataFrame, policy: str, *, source: str | None = None) -> tuple[pl.DataFrame, int]:
    """Resolve rows that repeat (user_id, item_id, timestamp) by ``policy`` (``data.duplicates``).

    - ``keep``: keep them all (they count as separate interactions).
    - ``first`` / ``last``: keep one row per group. Rows of a group are put in a
      total order that does not depend on input order: by ``rating`` ascending
      (null first), then by the other columns' values; ``first`` keeps the
      first row of that order (lowest rating), ``last`` the last (highest).
    - ``error``: raise naming the count and an example.

    Kept rows stay in input order.

    >>> frame = pl.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["a", "a", "b"],
    ...                       "timestamp": [1, 1, 1], "rating": [5.0, 3.0, 4.0]})
    >>> kept, removed = deduplicate(frame, "last")
    >>> kept["rating"].to_list(), removed
    ([5.0, 4.0], 1)
    """
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(f"unknown duplicate policy {policy!r}", setting="data.duplicates",
                          hint="use one of " + ", ".join(DUPLICATE_POLICIES))
    missing = [c for c in DUPLICATE_KEY if c not in frame.columns]
    if missing:
        raise DataError(f"cannot find duplicates without column(s) {missing}", file=source, column=missing[0],
                        hint="deduplicate the validated interaction table")
    if policy == "keep":
        return frame, 0
    if policy == "error":
        n = count_duplicates(frame)
        if n:
            groups = frame.group_by(DUPLICATE_KEY).agg(pl.len().alias(COUNT)).filter(pl.col(COUNT) > 1)
            example = groups.sort(list(DUPLICATE_KEY)).row(0, named=True)
            raise DataError(
                f"{n} duplicate (user_id, item_id, timestamp) rows, e.g. user_id={example[USER_ID]!r}, "
                f"item_id={example[ITEM_ID]!r}, timestamp={example[TIMESTAMP]} appears {example[COUNT]} times",
                file=source, setting="data.duplicates",
                hint="set data.duplicates to keep, first or last, or remove the repeats from the source")
        return frame, 0
    ordered = frame.with_row_index(_ROW).sort([*DUPLICATE_KEY, *_tie_order(frame), _ROW], nulls_last=False)
    kept = ordered.unique(subset=list(DUPLICATE_KEY), keep=policy, maintain_order=True).sort(_ROW).drop(_ROW)
    return kept, frame.height - kept.height


def interaction_counts(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Rows per value of ``column`` as a table (``column``, ``n``); sum such tables over blocks.

    >>> interaction_counts(pl.DataFrame({"user_id": ["u", "v", "u"]}), "user_id").sort("user_id").rows()
    [('u', 2), ('v', 1)]
    """
    return frame.group_by(column).agg(pl.len().cast(pl.Int64).alias(COUNT))


def sum_counts(tables: list[pl.DataFrame], column: str) -> pl.DataFrame:
    """Add up :func:`interaction_counts` tables from several blocks.

    >>> a = pl.DataFrame({"item_id": ["x"], "n": [2]}); b = pl.DataFrame({"item_id": ["x", "y"], "n": [1, 1]})
    >>> sum_counts([a, b], "item_id").sort("item_id").rows()
    [('x', 3), ('y', 1)]
    """
    return pl.concat(tables).group_by(column).agg(pl.col(COUNT).sum().cast(pl.Int64))


def kcore_is_stable(user_counts: pl.DataFrame, item_counts: pl.DataFrame, min_user: int, min_item: int) -> bool:
    """Whether every user has ``>= min_user`` rows and every item ``>= min_item`` rows.

    >>> kcore_is_stable(pl.DataFrame({"user_id": ["u"], "n": [3]}), pl.DataFrame({"item_id": ["a"], "n": [1]}), 2, 2)
    False
    """
    return bool((user_counts[COUNT] >= min_user).all() and (item_counts[COUNT] >= min_item).all())


def kcore_step(
    frame: pl.DataFrame, user_counts: pl.DataFrame, item_counts: pl.DataFrame, min_user: int, min_item: int
) -> tuple[pl.DataFrame, int]:
    """One k-core iteration from global count tables: drop rows of users or items below the thresholds.

    Users or items absent from the count tables count as 0.

    >>> frame = pl.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "a"]})
    >>> kept, removed = kcore_step(frame, interaction_counts(frame, "user_id"),
    ...                            interaction_counts(frame, "item_id"), 1, 2)
    >>> kept.rows(), removed
    ([('u', 'a'), ('v', 'a')], 1)
    """
    good_users = user_counts.filter(pl.col(COUNT) >= min_user).select(USER_ID)
    good_items = item_counts.filter(pl.col(COUNT) >= min_item).select(ITEM_ID)
    kept = frame.join(good_users, on=USER_ID, how="semi", maintain_order="left") \
                .join(good_items, on=ITEM_ID, how="semi", maintain_order="left")
    return kept, frame.height - kept.height


def kcore(
    frame: pl.DataFrame, min_user: int, min_item: int, max_iterations: int
) -> tuple[pl.DataFrame, list[dict]]:
    """Iterative k-core: the largest subset where every user has ``>= min_user`` rows and every item ``>= min_item``.

    Rows are counted (repeated events count each time). Each iteration removes,
    at once, every row whose user or item is below its threshold in the current
    frame; this reaches the unique maximal such subset. Returns the frame and
    one dict per removal iteration (``iteration``, ``n_rows``, ``n_users``,
    ``n_items`` after it, ``n_removed``). ``max_iterations`` bounds the removal
    iterations (``data.kcore_max_iterations``).

    >>> frame = pl.DataFrame({"user_id": ["u", "u", "v", "v", "w"], "item_id": ["a", "b", "a", "b", "c"]})
    >>> kept, history = kcore(frame, 2, 2, 10)
    >>> kept.height, [h["n_removed"] for h in history]
    (4, [1])
    """
    for value, name in ((min_user, "data.min_user_interactions"), (min_item, "data.min_item_interactions"),
                        (max_iterations, "data.kcore_max_iterations")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"expected an integer >= 0, got {value!r}", setting=name,
                              hint="set it to a whole number such as 5 (0 or 1 disables the filter)")
    history: list[dict] = []
    if min_user <= 1 and min_item <= 1:
        return frame, history
    for iteration in range(max_iterations + 1):
        users, items = interaction_counts(frame, USER_ID), interaction_counts(frame, ITEM_ID)
        if kcore_is_stable(users, items, min_user, min_item):
            return frame, history
        if iteration == max_iterations:
            raise ConfigError(
                f"the k-core filter (users >= {min_user}, items >= {min_item}) is still removing rows after "
                f"{max_iterations} iterations ({frame.height} rows left)", setting="data.kcore_max_iterations",
                hint="raise data.kcore_max_iterations, or lower data.min_user_interactions / data.min_item_interactions")
        frame, removed = kcore_step(frame, users, items, min_user, min_item)
        if frame.height == 0:
            raise ConfigError(
                f"the k-core filter (users >= {min_user}, items >= {min_item}) removes every interaction",
                setting="data.min_user_interactions / data.min_item_interactions",
                hint="lower data.min_user_interactions and/or data.min_item_interactions")
        history.append({"iteration": iteration + 1, "n_rows": frame.height, "n_users": frame[USER_ID].n_unique(),
                        "n_items": frame[ITEM_ID].n_unique(), "n_removed": removed})
    return frame, history  # not reached: the loop returns or raises
